"""What every authorization-server handler needs, built once per app."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from epicme.authorization_server.clients import ClientRegistry
from epicme.authorization_server.keys import KeyStore
from epicme.authorization_server.sessions import SessionCodec
from epicme.authorization_server.throttle import LoginThrottle
from epicme.config import Settings
from epicme.storage.database import Database


@dataclass
class ServerContext:
    settings: Settings
    db: Database
    clients: ClientRegistry
    keys: KeyStore
    sessions: SessionCodec
    throttle: LoginThrottle
    # The one wall clock every expiry, issue time and window is read from (the parts above that
    # keep time were built with it too), so tests can move time instead of waiting for it.
    clock: Callable[[], float] = time.time

    def now(self) -> int:
        """The current time in whole seconds, as stored and as put in tokens."""
        return int(self.clock())

    @property
    def resources(self) -> frozenset[str]:
        """The resource indicators (RFC 8707) this server issues tokens for."""
        return frozenset({self.settings.mcp_url})
