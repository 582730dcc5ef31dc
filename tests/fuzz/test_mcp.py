"""Fuzzing `/mcp`: JSON-RPC 2.0 messages from the MCP vocabulary, batches, broken JSON, and the
HTTP around them (tokens, Accept, Content-Type, protocol version headers, Origin, Host, methods).

Each example starts from a valid message (a real tool with well-typed arguments naming real
entries and tags, a real resource URI, the real prompt) with the valid all-scopes token, on the
handshake protocol revisions or on the 2026-07-28 envelope, then mutates a few parts of it. Every
answer is the gate's bearer challenge or a JSON-RPC 2.0 shaped answer (invariants.mcp_response).
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from mcp.shared.inbound import encode_header_value

from tests.fuzz import invariants
from tests.fuzz.harness import Fuzzer, Headers, fuzz_settings
from tests.fuzz.strategies import (
    HOSTILE_JSON_TEXT,
    HTTP_METHODS,
    MALFORMED_JSON,
    MUTATION_COUNTS,
    WRONG_JSON,
    dump_json,
    header_values,
    hostile_ints,
    huge_strings,
    json_texts,
    pooled,
    truncated,
    usually,
)
from tests.fuzz.system import FuzzSystem

MODERN_VERSION = "2026-07-28"
HANDSHAKE_VERSIONS = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
ENVELOPE_VERSION = "io.modelcontextprotocol/protocolVersion"
ENVELOPE_CAPABILITIES = "io.modelcontextprotocol/clientCapabilities"
SQL = ("' OR 1=1 --", "1; DROP TABLE entries; --", "%", "_", "\\", "') UNION SELECT password_hash FROM users --")
TEXTS = st.one_of(
    st.just("A day at the sea"),
    st.sampled_from(SQL),
    st.text(max_size=60),
    st.sampled_from(["\U0001f600 \u202e", "<script>alert(1)</script>", "\x00\r\n", "e\u0301"]),
)
SHORT = st.one_of(st.none(), st.sampled_from(["happy", "", "\u2600 sunny"]), st.text(max_size=20))
# Past the journal's limits: title 500, content 100,000, mood and weather 100, location 200, tag name 100.
TOO_LONG = st.builds(lambda size: "x" * size, st.sampled_from([101, 201, 501, 1001, 100_001]))


def _ids(system: FuzzSystem) -> st.SearchStrategy[int]:
    return st.one_of(st.sampled_from(system.entry_ids + system.tag_ids), st.integers(1, 60))


def tool_arguments(system: FuzzSystem) -> dict[str, tuple[dict[str, st.SearchStrategy[Any]], frozenset[str]]]:
    """Each tool's arguments with valid values, and which of them are required."""
    ids = _ids(system)
    flags = st.booleans()
    entry = {"title": TEXTS, "content": TEXTS, "mood": SHORT, "location": SHORT, "weather": SHORT}
    return {
        "whoami": ({}, frozenset()),
        "create_entry": ({**entry, "isPrivate": flags, "isFavorite": flags}, frozenset({"title", "content"})),
        "get_entry": ({"id": ids}, frozenset({"id"})),
        "list_entries": (
            {"tagId": st.one_of(st.none(), ids), "limit": st.integers(1, 100), "offset": st.integers(0, 50)},
            frozenset(),
        ),
        "update_entry": ({"id": ids, **entry, "isPrivate": flags, "isFavorite": flags}, frozenset({"id"})),
        "delete_entry": ({"id": st.integers(1, 400)}, frozenset({"id"})),
        "add_tag_to_entry": ({"entryId": ids, "tagId": ids}, frozenset({"entryId", "tagId"})),
        "create_tag": ({"name": TEXTS, "description": SHORT}, frozenset({"name"})),
        "get_tag": ({"id": ids}, frozenset({"id"})),
        "list_tags": ({}, frozenset()),
        "update_tag": ({"id": ids, "name": TEXTS, "description": SHORT}, frozenset({"id"})),
        "delete_tag": ({"id": st.integers(1, 400)}, frozenset({"id"})),
    }


ARGUMENT_HOSTILE = st.one_of(
    WRONG_JSON,
    HOSTILE_JSON_TEXT,
    hostile_ints(),
    TOO_LONG,
    st.sampled_from(["1", "1.0", 1.0, 1.5, True, None, [1], {"id": 1}, "1 OR 1=1"]),
)


def resource_uris(system: FuzzSystem) -> st.SearchStrategy[str]:
    real = [f"epicme://entries/{i}" for i in system.entry_ids] + [f"epicme://tags/{i}" for i in system.tag_ids]
    return st.sampled_from(["epicme://users/current", "epicme://tags", *real, "epicme://entries/999"])


RESOURCE_URI_HOSTILE = st.one_of(
    st.builds(
        lambda kind, id: f"epicme://{kind}/{id}",
        st.sampled_from(["entries", "tags", "users"]),
        st.one_of(
            st.sampled_from(["0", "-1", "1.0", "01", "1 OR 1=1", "1;", "%31", "..", "9" * 30, ""]), HOSTILE_JSON_TEXT
        ),
    ),
    st.sampled_from(
        [
            "EPICME://Entries/1",
            "epicme://users/current?x=1",
            "epicme://tags#frag",
            "epicme://entries/1/../../users/current",
            "epicme:///entries/1",
            "epicme:entries/1",
            "epicme://",
            "file:///etc/passwd",
            "http://127.0.0.1:1/",
        ]
    ),
    WRONG_JSON,
)


@st.composite
def valid_params(draw: st.DrawFn, system: FuzzSystem, method: str) -> dict[str, Any]:
    if method == "tools/call":
        tools = tool_arguments(system)
        name = draw(st.sampled_from(sorted(tools)))
        arguments_vocabulary, required = tools[name]
        arguments = {
            key: draw(values) for key, values in arguments_vocabulary.items() if key in required or draw(st.booleans())
        }
        return {"name": name, "arguments": arguments}
    if method in ("resources/read", "resources/subscribe", "resources/unsubscribe"):
        return {"uri": draw(resource_uris(system))}
    if method == "prompts/get":
        return {"name": "suggest_tags", "arguments": {"entryId": str(draw(_ids(system)))}}
    if method == "completion/complete":
        ref = draw(
            st.sampled_from(
                [
                    ({"type": "ref/prompt", "name": "suggest_tags"}, "entryId"),
                    ({"type": "ref/resource", "uri": "epicme://entries/{id}"}, "id"),
                    ({"type": "ref/resource", "uri": "epicme://tags/{id}"}, "id"),
                ]
            )
        )
        value = draw(st.one_of(st.sampled_from(["", "1", "2"]), st.text(max_size=5)))
        return {"ref": ref[0], "argument": {"name": ref[1], "value": value}}
    if method == "initialize":
        return {
            "protocolVersion": draw(st.sampled_from(HANDSHAKE_VERSIONS)),
            "capabilities": draw(st.sampled_from([{}, {"elicitation": {}}, {"roots": {"listChanged": True}}])),
            "clientInfo": {"name": "fuzzer", "version": "1.0"},
        }
    if method == "logging/setLevel":
        return {"level": draw(st.sampled_from(["debug", "info", "emergency"]))}
    if method == "notifications/cancelled":
        return {"requestId": draw(st.integers(0, 10)), "reason": "fuzz"}
    if method in ("tools/list", "resources/list", "prompts/list", "resources/templates/list"):
        return draw(st.sampled_from([{}, {"cursor": "x"}]))
    return {}


METHODS = (
    *["tools/call"] * 8,
    *["resources/read"] * 2,
    "prompts/get",
    "completion/complete",
    "initialize",
    "ping",
    "tools/list",
    "resources/list",
    "resources/templates/list",
    "prompts/list",
    "logging/setLevel",
    "resources/subscribe",
    "notifications/initialized",
    "notifications/cancelled",
)
UNKNOWN_METHODS = ("sampling/createMessage", "roots/list", "tasks/list", "tools/call/", "TOOLS/CALL", "rpc.discover")
MESSAGE_MUTATIONS = (
    "id",
    "id",
    "drop id",
    "jsonrpc",
    "method",
    "params",
    "argument",
    "argument",
    "argument",
    "drop argument",
    "extra argument",
    "tool name",
    "uri",
    "meta",
    "extra member",
)


def _mutate_message(draw: st.DrawFn, message: dict[str, Any]) -> list[str]:
    done: list[str] = []
    params = message.get("params")
    for _ in range(draw(MUTATION_COUNTS)):
        kind = draw(st.sampled_from(MESSAGE_MUTATIONS))
        arguments = params.get("arguments") if isinstance(params, dict) else None
        if kind == "id":
            message["id"] = draw(
                st.one_of(hostile_ints(), HOSTILE_JSON_TEXT, st.sampled_from([None, 1.5, True, [1], {}]))
            )
        elif kind == "drop id":
            message.pop("id", None)
        elif kind == "jsonrpc":
            message["jsonrpc"] = draw(st.sampled_from(["1.0", "2", 2.0, None, ""]))
        elif kind == "method":
            message["method"] = draw(st.one_of(st.sampled_from(UNKNOWN_METHODS), HOSTILE_JSON_TEXT, WRONG_JSON))
        elif kind == "params":
            message["params"] = draw(WRONG_JSON)
        elif kind.endswith("argument") and isinstance(arguments, dict):
            name = draw(st.sampled_from(sorted(arguments))) if arguments else "id"
            if kind == "argument":
                arguments[name] = draw(ARGUMENT_HOSTILE)
            elif kind == "drop argument":
                arguments.pop(name, None)
            else:
                arguments[draw(st.text(max_size=10))] = draw(WRONG_JSON)
        elif kind == "tool name" and isinstance(params, dict) and "name" in params:
            params["name"] = draw(
                st.one_of(st.sampled_from(["WHOAMI", "whoami ", "delete_entries"]), HOSTILE_JSON_TEXT)
            )
        elif kind == "uri" and isinstance(params, dict) and "uri" in params:
            params["uri"] = draw(RESOURCE_URI_HOSTILE)
        elif kind == "meta" and isinstance(params, dict):
            params["_meta"] = draw(st.one_of(st.fixed_dictionaries({"progressToken": hostile_ints()}), WRONG_JSON))
        elif kind == "extra member":
            message[draw(st.text(max_size=8))] = draw(WRONG_JSON)
        done.append(kind)
    return done


@st.composite
def jsonrpc_messages(draw: st.DrawFn, system: FuzzSystem, modern: bool) -> dict[str, Any]:
    method = draw(st.sampled_from(METHODS))
    message: dict[str, Any] = {"jsonrpc": "2.0"}
    if not method.startswith("notifications/"):
        message["id"] = draw(st.one_of(st.integers(0, 10_000), st.text(max_size=12)))
    message["method"] = method
    params = draw(valid_params(system, method))
    if modern:
        capabilities: dict[str, Any] = draw(st.sampled_from([{}, {"elicitation": {}}]))
        params["_meta"] = {ENVELOPE_VERSION: MODERN_VERSION, ENVELOPE_CAPABILITIES: capabilities}
    if bool(params) or draw(st.booleans()):  # bool(): else mypy reads draw()'s type from `params`
        message["params"] = params
    _mutate_message(draw, message)
    return message


ACCEPT = "application/json, text/event-stream"
ACCEPTS = ("application/json", "text/event-stream", "*/*", "application/*", "", "text/html", "application/json;q=0")
CONTENT_TYPES = (
    "application/json; charset=utf-8",
    "application/json-seq",
    "APPLICATION/JSON",
    "application/json, text/plain",
    "text/plain",
    "application/x-www-form-urlencoded",
    "",
)


def _name_of(message: Any) -> str | None:
    params = message.get("params") if isinstance(message, dict) else None
    if not isinstance(params, dict):
        return None
    value = params.get("uri") if message.get("method") == "resources/read" else params.get("name")
    return value if isinstance(value, str) else None


def _header_safe(value: str) -> str:
    # As MCP clients send it: verbatim when it can be, else in the `=?base64?...?=` form.
    return encode_header_value(value.encode("utf-8", "surrogatepass").decode("utf-8", "replace"))


@st.composite
def mcp_headers(draw: st.DrawFn, system: FuzzSystem, message: Any, modern: bool) -> Headers:
    """The headers a client sends with `message` (the routing headers too, on 2026-07-28), now and
    then with the Accept, Content-Type or protocol version header changed."""
    headers: Headers = [("Authorization", f"Bearer {system.access_token}")]
    if modern:
        headers.append(("mcp-protocol-version", draw(usually(MODERN_VERSION, ["2026-07-29", "", "2026-07-28x"]))))
        method = message.get("method") if isinstance(message, dict) else None
        if isinstance(method, str):
            headers.append(("mcp-method", draw(usually(_header_safe(method), ["tools/list", ""]))))
        name = _name_of(message)
        if name is not None:
            headers.append(("mcp-name", draw(usually(_header_safe(name), ["whoami", "=?base64?!!?="]))))
    else:
        version = draw(usually(None, [*HANDSHAKE_VERSIONS, "garbage"], one_in=3))
        if version is not None:
            headers.append(("mcp-protocol-version", version))
    headers.append(("Accept", draw(usually(ACCEPT, ACCEPTS, one_in=15))))
    headers.append(("Content-Type", draw(usually("application/json", CONTENT_TYPES, one_in=15))))
    return headers


@st.composite
def mcp_bodies(draw: st.DrawFn, system: FuzzSystem, modern: bool) -> tuple[Any, bytes]:
    """(the message or messages, as sent; the bytes on the wire)."""
    choice = draw(st.integers(0, 39))
    if choice == 0:
        return None, draw(st.sampled_from(MALFORMED_JSON))
    if choice == 1:
        messages = draw(st.lists(jsonrpc_messages(system, modern), max_size=4))
        return messages, dump_json(messages, draw(json_texts))
    if choice == 2:
        # Near the body limit: a tool call with one huge argument.
        message: dict[str, Any] = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {"name": "create_entry"},
        }
        message["params"]["arguments"] = {"title": "big", "content": draw(huge_strings())}
        return message, json.dumps(message).encode()
    message = draw(jsonrpc_messages(system, modern))
    body = dump_json(message, draw(json_texts))
    if choice == 3:
        return None, draw(truncated(body))
    return message, body


def _sent_id(message: Any) -> Any:
    if isinstance(message, dict):
        identifier = message.get("id")
        if isinstance(identifier, int | str) and not isinstance(identifier, bool):
            return identifier
    return None


@fuzz_settings(max_examples=1900)
@given(data=st.data())
def test_mcp_messages(fuzz: Fuzzer, data: st.DataObject) -> None:
    """JSON-RPC over `/mcp` with the valid token: every MCP method, every tool, broken arguments,
    batches and broken JSON; on the handshake protocol revisions and on the modern envelope."""
    system = fuzz.system
    modern = data.draw(st.integers(0, 3), label="modern") == 0
    message, body = data.draw(mcp_bodies(system, modern), label="body")
    headers = data.draw(mcp_headers(system, message, modern), label="headers")
    reply = fuzz.send("RS /mcp", "POST", system.mcp_url, headers=headers, content=body)
    invariants.mcp_response(reply, sent_id=_sent_id(message))


@st.composite
def authorizations(draw: st.DrawFn, system: FuzzSystem) -> Headers:
    choice = draw(st.integers(0, 11))
    token = system.access_token
    if choice < 4:
        return [("Authorization", f"Bearer {token}")]
    if choice == 4:
        return []
    if choice == 5:
        return [("Authorization", f"Bearer {token}"), ("Authorization", f"Bearer {token}")]
    if choice == 6:
        # Tokens the other fuzzers may have revoked, refreshed away or never had.
        other = draw(pooled(lambda: system.access_tokens + system.confidential_tokens[:1]))
        return [("Authorization", f"Bearer {other}")]
    value = draw(
        st.one_of(
            st.sampled_from(
                [
                    f"bearer {token}",
                    f"BEARER  {token}",
                    f"Bearer {token[:-3]}",
                    f"Bearer {token}x",
                    f"Bearer {token}.x",
                    f"Bearer {token} extra",
                    "Bearer",
                    "Bearer ===",
                    "Bearer a.b.c",
                    "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",
                    f"Basic {token}",
                    f"Token {token}",
                    f"Bearer {'a' * 9000}",
                ]
            ),
            header_values,
        )
    )
    return [("Authorization", value)]


@fuzz_settings(max_examples=700)
@given(data=st.data())
def test_mcp_transport(fuzz: Fuzzer, data: st.DataObject) -> None:
    """The HTTP around the messages: missing, broken, doubled or revoked tokens, Origin and Host,
    Accept and Content-Type, protocol version and session headers, and every method."""
    system = fuzz.system
    method = data.draw(usually("POST", HTTP_METHODS, one_in=3), label="method")
    message = data.draw(jsonrpc_messages(system, modern=False), label="message")
    body = json.dumps(message).encode("utf-8", "surrogatepass") if method not in ("GET", "HEAD") else None
    headers = data.draw(authorizations(system), label="authorization")
    optional_headers: dict[str, st.SearchStrategy[Any]] = {
        "Origin": st.one_of(
            st.sampled_from(
                ["http://127.0.0.1:6274", "http://localhost", system.rs_url, "https://evil.example", "null", "file://"]
            ),
            header_values,
        ),
        "Host": st.sampled_from(["evil.example", "127.0.0.1", "localhost:1", "[::1]", "127.0.0.1.nip.io", "", "a:b:c"]),
        "Accept": st.sampled_from([ACCEPT, *ACCEPTS]),
        "Content-Type": st.sampled_from(["application/json", *CONTENT_TYPES]),
        "mcp-protocol-version": st.one_of(st.sampled_from([*HANDSHAKE_VERSIONS, MODERN_VERSION]), header_values),
        "mcp-session-id": header_values,
        "Last-Event-ID": st.sampled_from(["0", "x", "-1"]),
    }
    for name, values in optional_headers.items():
        if data.draw(st.integers(0, 3), label=f"send {name}") == 0:
            headers.append((name, data.draw(values, label=name)))
    if not any(name == "Accept" for name, _ in headers):
        headers.append(("Accept", ACCEPT))
    if body is not None and not any(name == "Content-Type" for name, _ in headers):
        headers.append(("Content-Type", "application/json"))
    reply = fuzz.send("RS /mcp", method, system.mcp_url, headers=headers, content=body)
    invariants.mcp_response(reply, sent_id=_sent_id(message))
