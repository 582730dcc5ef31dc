"""Access token verification: local JWT checks (RFC 9068) or introspection (RFC 7662).

MCP authorization, Token Handling: the resource server MUST validate every token (OAuth 2.1 §5.2),
MUST check that it was issued for this resource (RFC 8707 §2) and MUST NOT accept any other token.
A token that fails raises `TokenInvalid` (answered `401 invalid_token`); an authorization server
that cannot be reached raises `UpstreamUnavailable` (answered `502`), so an outage never makes
clients throw away good tokens.

Neither verifier ever logs or echoes a token.
"""

from __future__ import annotations

import base64
import time
from typing import Any, Protocol
from urllib.parse import quote_plus

import httpx2
import jwt
from jwt import PyJWK

from epicme.cache import ExpiringLRU
from epicme.config import Settings
from epicme.oauth.errors import clean_description
from epicme.oauth.principal import Principal
from epicme.oauth.scopes import parse_scope
from epicme.resource_server.as_metadata_proxy import AuthorizationServerMetadata
from epicme.resource_server.upstream import Clock, DocumentCache, Fetched, UpstreamUnavailable, request_json

# RFC 8725 §3.1: an explicit allow-list of asymmetric algorithms; never `none`, never HS*
# (a symmetric algorithm would let anyone holding the public key sign tokens).
ALLOWED_ALGORITHMS = frozenset({"ES256", "RS256", "PS256", "EdDSA"})
# RFC 9068 §4: `typ` is `at+jwt` (or `application/at+jwt`), which EpicMe's own authorization
# server always writes; plain `JWT` is accepted only from a configured external authorization
# server (EPICME_AUTHORIZATION_SERVER), for those that predate RFC 9068. Compared
# case-insensitively (RFC 7515 §4.1.9).
ACCESS_TOKEN_TYPES = frozenset({"at+jwt", "application/at+jwt"})
EXTERNAL_TOKEN_TYPES = ACCESS_TOKEN_TYPES | {"jwt"}
_ASYMMETRIC_KEY_TYPES = frozenset({"EC", "RSA", "OKP"})
LEEWAY_SECONDS = 30
KEY_REFRESH_INTERVAL = 30.0
TOKEN_CACHE_SIZE = 1024
INTROSPECTION_CACHE_SECONDS = 30
MAX_TOKEN_LENGTH = 8192


# The width of the journal's owner column (storage/schema.py).
MAX_SUBJECT_LENGTH = 255


class TokenInvalid(Exception):
    """The token cannot be accepted; `description` is safe to put in a header."""

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = clean_description(description)


class TokenVerifier(Protocol):
    def cached(self, token: str) -> Principal | None:
        """The principal of a token verified before and not yet expired, without any I/O; None
        when the token has to be verified."""
        ...

    async def verify(self, token: str) -> Principal:
        """The token's principal, or raises TokenInvalid / UpstreamUnavailable."""
        ...


class PrincipalCache(ExpiringLRU[str, Principal]):
    """Verified tokens, so a client's repeated calls cost a dict lookup. Bounded (least recently
    used goes first), keyed by the whole token, and never answers for a token past `until`."""

    __slots__ = ()

    def __init__(self, max_size: int = TOKEN_CACHE_SIZE, wall_clock: Clock = time.time) -> None:
        super().__init__(max_size, wall_clock)


_TIME_CLAIMS = ("exp", "nbf", "iat")


def principal_from_claims(claims: dict[str, Any]) -> Principal:
    """Who the token speaks for and what it grants, from JWT claims or an introspection answer."""
    for name in _TIME_CLAIMS:
        when = claims.get(name)
        # RFC 7519 §2 and §4.1.4-6: a NumericDate is a JSON number. PyJWT reads "1767225600" (a
        # string) as one; a token that writes its times as text is not well-formed: refused.
        if when is not None and (isinstance(when, bool) or not isinstance(when, int | float)):
            raise TokenInvalid(f"The access token's {name} claim is not a number.")
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        # RFC 9068 §2.2: `sub` is REQUIRED; without it there is no user to scope the journal to.
        raise TokenInvalid("The access token has no subject.")
    if len(sub) > MAX_SUBJECT_LENGTH:
        # The journal stores the subject as its owner; a longer one cannot be stored faithfully.
        raise TokenInvalid(f"The access token's subject is longer than {MAX_SUBJECT_LENGTH} characters.")
    scope = claims.get("scope")
    scp = claims.get("scp")
    if isinstance(scope, str):
        scopes = parse_scope(scope)
    elif scope is None and isinstance(scp, list) and all(isinstance(s, str) for s in scp):
        scopes = list(scp)
    elif scope is None and isinstance(scp, str):
        scopes = parse_scope(scp)
    elif scope is None and scp is None:
        scopes = []
    else:
        raise TokenInvalid("The access token's scope claim is malformed.")
    client_id = claims.get("client_id", claims.get("azp"))
    aud = claims.get("aud")
    audience = (aud,) if isinstance(aud, str) else tuple(a for a in aud or () if isinstance(a, str))
    exp = claims.get("exp")
    return Principal(
        user_id=sub,
        client_id=client_id if isinstance(client_id, str) else None,
        scopes=frozenset(scopes),
        expires_at=int(exp) if isinstance(exp, int | float) else None,
        audience=audience,
    )


def _describe(exc: jwt.PyJWTError) -> str:
    if isinstance(exc, jwt.ExpiredSignatureError):
        return "The access token has expired."
    if isinstance(exc, jwt.ImmatureSignatureError):
        return "The access token is not valid yet."
    if isinstance(exc, jwt.InvalidAudienceError):
        return "The access token was not issued for this resource."
    if isinstance(exc, jwt.InvalidIssuerError):
        return "The access token was not issued by the trusted authorization server."
    if isinstance(exc, jwt.InvalidSignatureError):
        return "The access token's signature is invalid."
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"The access token has no {exc.claim} claim."
    return "The access token is malformed."


class JwtVerifier:
    """Verifies JWT access tokens with the keys at the authorization server's `jwks_uri`."""

    def __init__(
        self,
        settings: Settings,
        metadata: AuthorizationServerMetadata,
        http_client: httpx2.AsyncClient,
        *,
        clock: Clock = time.monotonic,
        wall_clock: Clock = time.time,
        leeway: int = LEEWAY_SECONDS,
        key_refresh_interval: float = KEY_REFRESH_INTERVAL,
        cache_size: int = TOKEN_CACHE_SIZE,
    ) -> None:
        self._audience = settings.mcp_url
        self._issuer = settings.trusted_issuer
        self._types = ACCESS_TOKEN_TYPES if settings.uses_embedded_authorization_server else EXTERNAL_TOKEN_TYPES
        self._metadata = metadata
        self._client = http_client
        self._leeway = leeway
        self._key_refresh_interval = key_refresh_interval
        self._cache = PrincipalCache(cache_size, wall_clock)
        self.keys = DocumentCache(self._load_jwks, clock=clock)
        self._parsed: dict[tuple[str, str], PyJWK] = {}
        self._parsed_from: Fetched | None = None

    def cached(self, token: str) -> Principal | None:
        return self._cache.get(token)

    async def verify(self, token: str) -> Principal:
        cached = self._cache.get(token)
        if cached is not None:
            return cached
        if len(token) > MAX_TOKEN_LENGTH:
            raise TokenInvalid("The access token is malformed.")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise TokenInvalid("The access token is malformed.") from None
        alg = header.get("alg")
        if alg not in ALLOWED_ALGORITHMS:
            raise TokenInvalid("The access token's signing algorithm is not accepted.")
        typ = header.get("typ")
        if not isinstance(typ, str) or typ.lower() not in self._types:
            # RFC 9068 §4: the resource server MUST verify `typ`, so an ID token cannot pass.
            raise TokenInvalid("The access token's type is not at+jwt.")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise TokenInvalid("The access token does not name its signing key (kid).")
        key = await self._key(kid, alg)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[alg],
                # MCP / RFC 8707 §2: the token MUST have been issued for this resource.
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                # RFC 9068 §2.2: iss, exp, aud and sub are REQUIRED.
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError as exc:
            raise TokenInvalid(_describe(exc)) from None
        principal = principal_from_claims(claims)
        self._cache.put(token, principal, until=float(claims["exp"]))
        return principal

    async def _key(self, kid: str, alg: str) -> PyJWK:
        jwks = await self.keys.get()
        jwk = self._find(jwks, kid)
        if jwk is None:
            # An unknown kid may mean the keys were rotated: fetch them again, at most once per
            # interval, so tokens with made-up kids cannot make us hammer the authorization server.
            jwks = await self.keys.refresh(self._key_refresh_interval)
            jwk = self._find(jwks, kid)
        if jwk is None:
            raise TokenInvalid("The access token was signed with an unknown key.")
        if jwks is not self._parsed_from:
            self._parsed, self._parsed_from = {}, jwks
        parsed = self._parsed.get((kid, alg))
        if parsed is None:
            if jwk.get("alg", alg) != alg:
                raise TokenInvalid("The access token's algorithm does not match its key.")
            try:
                parsed = PyJWK(jwk, algorithm=alg)
            except jwt.PyJWTError:
                raise TokenInvalid("The access token's algorithm does not match its key.") from None
            self._parsed[(kid, alg)] = parsed
        return parsed

    @staticmethod
    def _find(jwks: Fetched, kid: str) -> dict[str, Any] | None:
        keys = jwks.data.get("keys")
        for jwk in keys if isinstance(keys, list) else ():
            if (
                isinstance(jwk, dict)
                and jwk.get("kid") == kid
                # Only public signature keys: a symmetric (`oct`) key must never verify anything.
                and jwk.get("kty") in _ASYMMETRIC_KEY_TYPES
                and jwk.get("use", "sig") == "sig"
            ):
                return jwk
        return None

    async def _load_jwks(self) -> Fetched:
        url = await self._metadata.endpoint("jwks_uri")
        fetched = await request_json(self._client, "GET", url)
        if fetched.status != 200 or not isinstance(fetched.data.get("keys"), list):
            raise UpstreamUnavailable(f"{url} did not answer with a JWK set.")
        return fetched


class IntrospectionVerifier:
    """Asks the authorization server's introspection endpoint (RFC 7662), caching answers briefly
    so a revoked token stops working within INTROSPECTION_CACHE_SECONDS."""

    def __init__(
        self,
        settings: Settings,
        metadata: AuthorizationServerMetadata,
        http_client: httpx2.AsyncClient,
        *,
        wall_clock: Clock = time.time,
        leeway: int = LEEWAY_SECONDS,
        cache_seconds: float = INTROSPECTION_CACHE_SECONDS,
        cache_size: int = TOKEN_CACHE_SIZE,
    ) -> None:
        if not settings.introspection_client_id or not settings.introspection_client_secret:
            raise ValueError("token_verification=introspection needs introspection_client_id and _secret")
        # RFC 7662 §2.1 / RFC 6749 §2.3.1 client_secret_basic: form-encode, then base64.
        pair = f"{quote_plus(settings.introspection_client_id)}:{quote_plus(settings.introspection_client_secret)}"
        self._authorization = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
        self._audience = settings.mcp_url
        self._issuer = settings.trusted_issuer
        self._metadata = metadata
        self._client = http_client
        self._wall_clock = wall_clock
        self._leeway = leeway
        self._cache_seconds = cache_seconds
        self._cache = PrincipalCache(cache_size, wall_clock)

    def cached(self, token: str) -> Principal | None:
        return self._cache.get(token)

    async def verify(self, token: str) -> Principal:
        cached = self._cache.get(token)
        if cached is not None:
            return cached
        if len(token) > MAX_TOKEN_LENGTH:
            raise TokenInvalid("The access token is malformed.")
        endpoint = await self._metadata.endpoint("introspection_endpoint")
        answer = await request_json(
            self._client,
            "POST",
            endpoint,
            data={"token": token, "token_type_hint": "access_token"},
            headers={"Authorization": self._authorization},
        )
        if answer.status != 200:
            raise UpstreamUnavailable(f"The introspection endpoint answered {answer.status}.")
        claims = answer.data
        # RFC 7662 §2.2: `active` is REQUIRED; anything but true means the token is not usable.
        if claims.get("active") is not True:
            raise TokenInvalid("The access token is not active.")
        token_type = claims.get("token_type")
        if token_type is not None and str(token_type).lower() not in ("access_token", "bearer"):
            raise TokenInvalid("The token is not an access token.")
        if "iss" in claims and claims["iss"] != self._issuer:
            raise TokenInvalid("The access token was not issued by the trusted authorization server.")
        principal = principal_from_claims(claims)
        # MCP / RFC 8707 §2: MUST only accept tokens issued for this resource. Introspection makes
        # `aud` optional, but without it nothing says the token is ours, so it is required here.
        if self._audience not in principal.audience:
            raise TokenInvalid("The access token was not issued for this resource.")
        now = self._wall_clock()
        until = now + self._cache_seconds
        if principal.expires_at is not None:
            if principal.expires_at + self._leeway <= now:
                raise TokenInvalid("The access token has expired.")
            until = min(until, principal.expires_at)
        self._cache.put(token, principal, until=until)
        return principal


def build_token_verifier(
    settings: Settings,
    metadata: AuthorizationServerMetadata,
    http_client: httpx2.AsyncClient,
    *,
    clock: Clock = time.monotonic,
) -> TokenVerifier:
    """The verifier `settings.token_verification` asks for."""
    if settings.token_verification == "introspection":
        return IntrospectionVerifier(settings, metadata, http_client)
    return JwtVerifier(settings, metadata, http_client, clock=clock)
