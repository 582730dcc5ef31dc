"""Audit events: what happened to sign-ins, consents, tokens, grants and keys, as structured
records for operators (logger `epicme.audit`; logs.py prints the fields as `key=value` or JSON).

Every record's `fields` start with `event` and hold identifiers only (user and client ids, grant
ids, scopes, key ids, an e-mail for a sign-in): never a password, code, token or secret.

    sign_in          outcome=success|failure|throttled, user_id or email, address
    sign_out         user_id
    consent          decision=allow|deny|remembered, user_id, client_id, scope, grant_id
    client_registered client_id, auth_method
    token_issued     grant_type, client_id, user_id, grant_id, scope
    token_refused    grant_type, client_id, error
    code_replayed    client_id, grant_id: the grant is revoked (warning)
    refresh_reused   client_id, grant_id: the token family is revoked (warning)
    revoked          what (refresh_token|access_token|grant), client_id or by=admin, grant_id
    key_rotated      kid, by
    user_added, user_deleted, password_changed   user_id, email, by=admin
"""

from __future__ import annotations

import logging
from collections.abc import Callable

AUDIT_LOGGER = "epicme.audit"
_log = logging.getLogger(AUDIT_LOGGER)
# Who else hears of each event (metrics count them), whatever the log level.
Listener = Callable[[str, dict[str, object]], None]
_listeners: list[Listener] = []


def audit(event: str, message: str, *, level: int = logging.INFO, **fields: object) -> None:
    """One audit record: `message` for people, `event` and `fields` for machines."""
    if _log.isEnabledFor(level):
        _log.log(level, message, extra={"fields": {"event": event, **fields}})
    for listener in _listeners:
        listener(event, fields)


def listen(listener: Listener) -> None:
    _listeners.append(listener)
