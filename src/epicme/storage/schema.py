"""Every table, in one place. Times are integer Unix seconds so both backends agree exactly.

Secrets never stand here in the clear: client secrets, authorization codes and refresh tokens are
stored as SHA-256 digests (they are long random values, so a fast hash is the right one); passwords
as argon2id hashes.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

schema_migrations = Table(
    "schema_migrations",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("name", String(200), nullable=False),
    Column("applied_at", BigInteger, nullable=False),
)

users = Table(
    "users",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("email", String(320), nullable=False, unique=True),
    Column("password_hash", String(200), nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

clients = Table(
    "clients",
    metadata,
    Column("client_id", String(200), primary_key=True),
    Column("secret_hash", String(64)),
    Column("client_secret_expires_at", BigInteger, nullable=False, default=0),
    Column("client_id_issued_at", BigInteger, nullable=False),
    # The registered metadata as returned to the client (RFC 7591 §3.2.1), without the secret.
    Column("metadata", JSON, nullable=False),
)

signing_keys = Table(
    "signing_keys",
    metadata,
    Column("kid", String(64), primary_key=True),
    Column("alg", String(16), nullable=False),
    Column("private_pem", Text, nullable=False),
    Column("public_jwk", JSON, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    # Set when a newer key takes over signing; the key is still published until `expires_at`.
    Column("retired_at", BigInteger),
    Column("expires_at", BigInteger),
)

server_secrets = Table(
    "server_secrets",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", String(200), nullable=False),
)

# A grant: one user's consent to one client for one resource, the root of one refresh token family.
grants = Table(
    "grants",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("client_id", String(200), nullable=False),
    Column("user_id", String(64), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("resource", String(2000), nullable=False),
    Column("scope", String(1000), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("revoked_at", BigInteger),
    # The consent page looks up the grant a client already holds (incremental consent).
    Index("ix_grants_user_client", "user_id", "client_id"),
)

authorization_codes = Table(
    "authorization_codes",
    metadata,
    Column("code_hash", String(64), primary_key=True),
    Column("grant_id", String(64), ForeignKey("grants.id", ondelete="CASCADE"), nullable=False),
    Column("client_id", String(200), nullable=False),
    Column("redirect_uri", String(2000), nullable=False),
    # Whether the authorization request named redirect_uri: only then must the token request
    # repeat it (RFC 6749 §4.1.3).
    Column("redirect_uri_sent", Boolean, nullable=False, default=True),
    Column("code_challenge", String(64), nullable=False),
    Column("scope", String(1000), nullable=False),
    Column("resource", String(2000), nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("used_at", BigInteger),
)

refresh_tokens = Table(
    "refresh_tokens",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("grant_id", String(64), ForeignKey("grants.id", ondelete="CASCADE"), nullable=False),
    Column("scope", String(1000), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    # Set when the token is exchanged; presenting it again is reuse (OAuth 2.1 §4.3.1).
    Column("used_at", BigInteger),
    Index("ix_refresh_tokens_grant", "grant_id"),
)

access_tokens = Table(
    "access_tokens",
    metadata,
    Column("jti", String(64), primary_key=True),
    Column("grant_id", String(64), ForeignKey("grants.id", ondelete="CASCADE"), nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("revoked_at", BigInteger),
    Index("ix_access_tokens_grant", "grant_id"),
)

consents = Table(
    "consents",
    metadata,
    Column("user_id", String(64), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("client_id", String(200), primary_key=True),
    Column("scope", String(1000), nullable=False),
    Column("resource", String(2000), nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

# Consent forms already submitted (the digest of each form's one-time token), so that re-posting
# one cannot issue a second code. Kept until the form could no longer be valid anyway.
spent_forms = Table(
    "spent_forms",
    metadata,
    Column("form_hash", String(64), primary_key=True),
    Column("expires_at", BigInteger, nullable=False),
)

login_throttle = Table(
    "login_throttle",
    metadata,
    # "account:<email>" or "address:<ip>": failures in the current window.
    Column("key", String(400), primary_key=True),
    Column("failures", Integer, nullable=False),
    Column("window_start", BigInteger, nullable=False),
)

# The journal's owner is the access token's `sub`. With an external authorization server that
# subject has no row in `users`, so the journal's tables name it without a foreign key.
entries = Table(
    "entries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_id", String(255), nullable=False),
    Column("title", String(500), nullable=False),
    Column("content", Text, nullable=False),
    Column("mood", String(100)),
    Column("location", String(200)),
    Column("weather", String(100)),
    Column("is_private", Boolean, nullable=False, default=True),
    Column("is_favorite", Boolean, nullable=False, default=False),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Index("ix_entries_user", "user_id", "id"),
)

tags = Table(
    "tags",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_id", String(255), nullable=False),
    Column("name", String(100), nullable=False),
    Column("description", String(1000)),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    UniqueConstraint("user_id", "name", name="uq_tags_user_name"),
)

entry_tags = Table(
    "entry_tags",
    metadata,
    Column("entry_id", Integer, ForeignKey("entries.id", ondelete="CASCADE"), primary_key=True),
    Column("tag_id", Integer, ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", String(255), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Index("ix_entry_tags_tag", "tag_id"),
)
