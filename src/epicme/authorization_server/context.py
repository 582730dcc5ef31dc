"""What every authorization-server handler needs, built once per app."""

from __future__ import annotations

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

    @property
    def resources(self) -> frozenset[str]:
        """The resource indicators (RFC 8707) this server issues tokens for."""
        return frozenset({self.settings.mcp_url})
