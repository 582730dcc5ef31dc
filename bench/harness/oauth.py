"""Tokens the way a real client gets them: registration, sign-in and consent on EpicMe's own pages
(read from the served HTML, as a browser would), then the code exchange at `/token` with PKCE."""

from __future__ import annotations

import base64
import hashlib
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx2

VERIFIER = "bench-" + "v" * 43
CHALLENGE = base64.urlsafe_b64encode(hashlib.sha256(VERIFIER.encode()).digest()).rstrip(b"=").decode()
REDIRECT_URI = "http://127.0.0.1:45455/callback"
ALL_SCOPES = "user:read entries:read entries:write tags:read tags:write"


class _Forms(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if tag == "form":
            self.forms.append((attributes.get("action", ""), {}))
        elif tag == "input" and self.forms and attributes.get("type") == "hidden":
            self.forms[-1][1][attributes.get("name", "")] = attributes.get("value", "")


def _form(html: str, action_endswith: str) -> tuple[str, dict[str, str]]:
    parser = _Forms()
    parser.feed(html)
    for action, fields in parser.forms:
        if action.endswith(action_endswith):
            return action, dict(fields)
    raise RuntimeError(f"no form posting to {action_endswith} in the page:\n{html[:800]}")


class OAuthUser:
    """One user agent (cookies kept) and one registered public client of the authorization server."""

    def __init__(self, as_url: str, email: str, password: str) -> None:
        self.as_url = as_url
        self.email = email
        self.password = password
        self.http = httpx2.Client(follow_redirects=False, timeout=30)
        self.client_id = self._register()

    def close(self) -> None:
        self.http.close()

    def _register(self) -> str:
        body = {
            "redirect_uris": [REDIRECT_URI],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
            "client_name": "EpicMe benchmark",
            "application_type": "native",
        }
        response = self.http.post(self.as_url + "/register", json=body)
        response.raise_for_status()
        return str(response.json()["client_id"])

    def authorization_url(self, resource: str, scope: str) -> str:
        query = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": REDIRECT_URI,
            "code_challenge": CHALLENGE,
            "code_challenge_method": "S256",
            "state": "bench",
            "scope": scope,
            "resource": resource,
        }
        return str(httpx2.URL(self.as_url + "/authorize", params=query))

    def code(self, resource: str, scope: str = ALL_SCOPES) -> str:
        """Sign in (the first time) and consent (remembered afterwards); returns a fresh code."""
        response = self.http.get(self.authorization_url(resource, scope))
        for _ in range(8):
            if response.status_code in (302, 303):
                target = urljoin(str(response.url), response.headers["location"])
                if target.startswith(REDIRECT_URI):
                    params = {k: v[0] for k, v in parse_qs(urlsplit(target).query).items()}
                    if "code" not in params:
                        raise RuntimeError(f"authorization failed: {target}")
                    return params["code"]
                response = self.http.get(target)
                continue
            if response.status_code != 200:
                raise RuntimeError(f"authorization step answered {response.status_code}: {response.text[:500]}")
            if 'action="/login"' in response.text:
                action, fields = _form(response.text, "/login")
                fields.update(email=self.email, password=self.password)
                response = self.http.post(urljoin(self.as_url, action), data=fields)
            elif 'name="decision"' in response.text:
                action, fields = _form(response.text, "/authorize")
                fields["decision"] = "allow"
                response = self.http.post(urljoin(self.as_url, action), data=fields)
            else:
                raise RuntimeError(f"unexpected page:\n{response.text[:800]}")
        raise RuntimeError("too many authorization steps")

    def exchange_form(self, code: str) -> dict[str, str]:
        return {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "code_verifier": VERIFIER,
            "client_id": self.client_id,
        }

    def token(self, resource: str, scope: str = ALL_SCOPES) -> dict[str, Any]:
        response = self.http.post(self.as_url + "/token", data=self.exchange_form(self.code(resource, scope)))
        if response.status_code != 200:
            raise RuntimeError(f"/token answered {response.status_code}: {response.text[:500]}")
        return dict(response.json())


async def authorize_async(http: httpx2.AsyncClient, as_url: str, url: str, email: str, password: str) -> str:
    """The same user agent, async (for the SDK's OAuth client): returns the client redirect URL."""
    response = await http.get(url)
    for _ in range(8):
        if response.status_code in (302, 303):
            target = urljoin(str(response.url), response.headers["location"])
            if not target.startswith(as_url):
                return target
            response = await http.get(target)
            continue
        if response.status_code != 200:
            raise RuntimeError(f"authorization step answered {response.status_code}: {response.text[:500]}")
        if 'action="/login"' in response.text:
            action, fields = _form(response.text, "/login")
            fields.update(email=email, password=password)
            response = await http.post(urljoin(as_url, action), data=fields)
        elif 'name="decision"' in response.text:
            action, fields = _form(response.text, "/authorize")
            fields["decision"] = "allow"
            response = await http.post(urljoin(as_url, action), data=fields)
        else:
            raise RuntimeError(f"unexpected page:\n{response.text[:800]}")
    raise RuntimeError("too many authorization steps")
