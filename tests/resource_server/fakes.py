"""Test doubles for the resource server: a fake authorization server (really listening, with its
own keys), a stand-in MCP app that echoes who it was called for, and a clock."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from epicme.oauth.principal import attached
from epicme.resource_server.mcp_endpoint import McpRequest
from tests.support.servers import LiveServer, free_port


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass
class SigningKey:
    kid: str
    alg: str
    private_key: Any
    jwk: dict[str, Any]

    @classmethod
    def generate(cls, kid: str, alg: str = "ES256") -> SigningKey:
        private_key: Any
        if alg == "ES256":
            private_key = ec.generate_private_key(ec.SECP256R1())
            jwk = json.loads(ECAlgorithm.to_jwk(private_key.public_key()))
        elif alg in ("RS256", "PS256"):
            private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            jwk = json.loads(RSAAlgorithm.to_jwk(private_key.public_key()))
        elif alg == "EdDSA":
            private_key = ed25519.Ed25519PrivateKey.generate()
            jwk = json.loads(OKPAlgorithm.to_jwk(private_key.public_key()))
        else:
            raise ValueError(alg)
        jwk.update(kid=kid, alg=alg, use="sig")
        return cls(kid, alg, private_key, jwk)

    def public_pem(self) -> bytes:
        return bytes(
            self.private_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )

    def sign(self, claims: dict[str, Any], **header: Any) -> str:
        headers = {"kid": self.kid, "typ": "at+jwt", **header}
        # PyJWT drops a `typ` of None itself (and would otherwise add "JWT"); other Nones go here.
        headers = {k: v for k, v in headers.items() if v is not None or k == "typ"}
        return jwt.encode(claims, self.private_key, algorithm=self.alg, headers=headers)


def hs256_with(secret: bytes, claims: dict[str, Any], kid: str) -> str:
    """An HS256 token MACed with `secret` (e.g. a public key's bytes), built by hand because
    PyJWT refuses to do this (key confusion is exactly what it guards against)."""
    header = _b64(json.dumps({"alg": "HS256", "typ": "at+jwt", "kid": kid}).encode())
    payload = _b64(json.dumps(claims).encode())
    signing_input = f"{header}.{payload}".encode()
    return f"{header}.{payload}.{_b64(hmac.new(secret, signing_input, hashlib.sha256).digest())}"


def unsigned(claims: dict[str, Any], kid: str) -> str:
    header = _b64(json.dumps({"alg": "none", "typ": "at+jwt", "kid": kid}).encode())
    return f"{header}.{_b64(json.dumps(claims).encode())}."


@dataclass
class FakeAuthorizationServer:
    """Serves RFC 8414 metadata, a JWKS and optionally RFC 7662 introspection; counts every hit."""

    issuer_path: str = ""
    cache_control: str = "public, max-age=300"
    serve_oauth_metadata: bool = True
    issuer_override: str | None = None
    delay: float = 0.0
    fail_metadata: bool = False
    hits: Counter[str] = field(default_factory=Counter)
    keys: list[SigningKey] = field(default_factory=lambda: [SigningKey.generate("key-1")])
    introspection: dict[str, dict[str, Any]] = field(default_factory=dict)
    introspection_auth: list[str | None] = field(default_factory=list)

    def __post_init__(self) -> None:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        self.issuer = base + self.issuer_path
        self.metadata = {
            "issuer": self.issuer_override or self.issuer,
            "authorization_endpoint": self.issuer + "/authorize",
            "token_endpoint": self.issuer + "/token",
            "jwks_uri": base + "/jwks",
            "introspection_endpoint": base + "/introspect",
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": ["user:read", "entries:read", "entries:write", "tags:read", "tags:write"],
        }
        # Deliberately odd formatting: the proxy must re-serve these exact bytes.
        self.metadata_bytes = json.dumps(self.metadata, indent=1).encode()
        oauth_path = "/.well-known/oauth-authorization-server" + self.issuer_path
        openid_path = "/.well-known/openid-configuration" + self.issuer_path
        routes = [
            Route(openid_path, self._metadata, methods=["GET"]),
            Route("/jwks", self._jwks, methods=["GET"]),
            Route("/introspect", self._introspect, methods=["POST"]),
        ]
        if self.serve_oauth_metadata:
            routes.append(Route(oauth_path, self._metadata, methods=["GET"]))
        self.server = LiveServer(Starlette(routes=routes), port)

    @property
    def key(self) -> SigningKey:
        return self.keys[0]

    async def start(self) -> FakeAuthorizationServer:
        await self.server.start()
        return self

    async def stop(self) -> None:
        """Stop answering (connections are refused); `start()` brings it back."""
        await self.server.stop()

    async def _metadata(self, request: Request) -> Response:
        self.hits[request.url.path] += 1
        if self.fail_metadata:
            return Response("down for maintenance", status_code=503)
        if self.delay:
            await asyncio.sleep(self.delay)
        return Response(
            self.metadata_bytes, media_type="application/json", headers={"Cache-Control": self.cache_control}
        )

    async def _jwks(self, request: Request) -> Response:
        self.hits["jwks"] += 1
        return JSONResponse({"keys": [k.jwk for k in self.keys]}, headers={"Cache-Control": "max-age=300"})

    async def _introspect(self, request: Request) -> Response:
        self.hits["introspect"] += 1
        self.introspection_auth.append(request.headers.get("authorization"))
        form = await request.form()
        expected = "Basic " + base64.b64encode(b"rs-client:s3cret+with+spaces%26symbols").decode()
        if request.headers.get("authorization") != expected:
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        return JSONResponse(self.introspection.get(str(form.get("token")), {"active": False}))


def claims_for(settings_mcp_url: str, issuer: str, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": "user-1",
        "aud": settings_mcp_url,
        "client_id": "client-1",
        "scope": "user:read entries:read tags:read",
        "iat": now,
        "exp": now + 600,
        "jti": f"jti-{time.monotonic_ns()}",
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


async def echo_app(request: McpRequest, scope: Scope, receive: Receive, send: Send) -> None:
    """The MCP app stand-in: answers with what the gate handed it, the McpRequest."""
    principal = request.principal
    payload = {
        "path": scope["path"],
        "method": scope["method"],
        "user_id": principal.user_id,
        "client_id": principal.client_id,
        "scopes": sorted(principal.scopes),
        # What the gate hands on is the request, never the token: nothing in it may carry one.
        "carried": sorted(
            scope.keys()
            - {
                "type",
                "asgi",
                "http_version",
                "server",
                "client",
                "scheme",
                "method",
                "root_path",
                "path",
                "raw_path",
                "query_string",
                "headers",
                "state",
                "extensions",
                "app",
                "starlette.exception_handlers",
                "router",
                "endpoint",
                "path_params",
                "route_root_path",
            }
        ),
        "principal": attached_user(scope),
        "body": request.body.decode(errors="replace"),
    }
    await JSONResponse(payload)(scope, receive, send)


def attached_user(scope: Scope) -> str | None:
    principal = attached(scope)
    return principal.user_id if principal is not None else None


TOOL_SCOPES: dict[str, frozenset[str]] = {
    "list_entries": frozenset({"entries:read"}),
    "create_entry": frozenset({"entries:write"}),
    "tag_entry": frozenset({"entries:write", "tags:write"}),
}


def required_scopes(message: dict[str, Any]) -> frozenset[str] | None:
    """The journal's permissions stand-in."""
    method = message.get("method")
    if method == "tools/call":
        params = message.get("params") or {}
        name = params.get("name")
        if name == "echo_scope":
            # Hostile: the scope name comes straight from the request.
            return frozenset({str(params.get("arguments", {}).get("scope"))})
        return TOOL_SCOPES.get(str(name), frozenset())
    if method in ("initialize", "ping", "tools/list"):
        return frozenset()
    return None


def tool_call(name: str, **arguments: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": name, "arguments": arguments}}
