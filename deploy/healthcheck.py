#!/usr/bin/env python3
"""The container's HEALTHCHECK: every service `epicme serve` runs here answers `/readyz` with 200
(store reachable and migrated, signing key loaded). Standard library only: the image has no
curl. Exit status 0 healthy, 1 not, with the reason on one line."""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def main() -> int:
    ports = [os.environ.get("EPICME_RS_PORT", "8787")]
    if not os.environ.get("EPICME_AUTHORIZATION_SERVER"):  # the embedded authorization server runs too
        ports.insert(0, os.environ.get("EPICME_AS_PORT", "7788"))
    for port in ports:
        url = f"http://127.0.0.1:{port}/readyz"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            print(f"{url}: {exc.code} {exc.read(300).decode(errors='replace')}")
            return 1
        except OSError as exc:
            print(f"{url}: {exc}")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
