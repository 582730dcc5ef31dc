"""One view of a client, whether it registered (RFC 7591) or is named by its metadata document URL."""

from __future__ import annotations

from dataclasses import dataclass

from epicme.authorization_server.client_metadata import ClientMetadataFetcher, is_metadata_document_client_id
from epicme.storage import clients as client_store
from epicme.storage.database import Database


@dataclass(frozen=True)
class Client:
    client_id: str
    client_name: str | None
    redirect_uris: tuple[str, ...]
    token_endpoint_auth_method: str
    grant_types: tuple[str, ...]
    # The scopes this client asks for when its request names none (its registered `scope`).
    scope: frozenset[str] | None
    client_uri: str | None
    logo_uri: str | None
    secret_hash: str | None = None
    client_secret_expires_at: int = 0
    from_metadata_document: bool = False

    @property
    def is_public(self) -> bool:
        return self.token_endpoint_auth_method == "none"

    @property
    def display_name(self) -> str:
        return self.client_name or self.client_id


class ClientRegistry:
    def __init__(self, db: Database, fetcher: ClientMetadataFetcher) -> None:
        self._db = db
        self._fetcher = fetcher

    async def load(self, client_id: str) -> Client | None:
        """The client, or None if no such client exists.

        A URL-shaped client_id is resolved through its metadata document; a failure to fetch or
        validate it raises the fetcher's OAuth error, whose description says what was wrong.
        """
        if is_metadata_document_client_id(client_id, allow_http=self._fetcher.allow_http):
            document = await self._fetcher.load(client_id)
            return Client(
                client_id=document.client_id,
                client_name=document.client_name,
                redirect_uris=tuple(document.redirect_uris),
                token_endpoint_auth_method=document.token_endpoint_auth_method,
                grant_types=tuple(document.grant_types),
                scope=frozenset(document.scope.split()) if document.scope else None,
                client_uri=document.client_uri,
                logo_uri=document.logo_uri,
                from_metadata_document=True,
            )
        stored = await client_store.load_client(self._db, client_id)
        if stored is None:
            return None
        meta = stored.metadata
        scope = meta.get("scope")
        return Client(
            client_id=stored.client_id,
            client_name=meta.get("client_name"),
            redirect_uris=tuple(meta.get("redirect_uris", ())),
            token_endpoint_auth_method=meta.get("token_endpoint_auth_method", "none"),
            grant_types=tuple(meta.get("grant_types", ("authorization_code", "refresh_token"))),
            scope=frozenset(str(scope).split()) if scope else None,
            client_uri=meta.get("client_uri"),
            logo_uri=meta.get("logo_uri"),
            secret_hash=stored.secret_hash,
            client_secret_expires_at=stored.client_secret_expires_at,
        )

    async def aclose(self) -> None:
        await self._fetcher.aclose()
