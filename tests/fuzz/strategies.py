"""Building blocks for the fuzzers: valid requests, and the mutations that break them.

Each fuzzer starts from a request that is valid for its endpoint (real client ids, registered
redirect URIs, live codes and tokens, well-formed JSON-RPC) and applies a few mutations, none in
a good share of examples, so that many requests get deep into the handlers while the rest probe
the edges: unicode (lone surrogates included), control characters, CR/LF, invalid
percent-encoding, values near the body limit, wrong JSON types, duplicated and unknown
parameters, wrong methods and content types.
"""

from __future__ import annotations

import json
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote_from_bytes

from hypothesis import strategies as st

BODY_LIMIT = 256 * 1024

HOSTILE_STRINGS = (
    "",
    " ",
    "\t",
    "\r\n",
    "\n",
    "\r\nSet-Cookie: pwned=1",
    "\x00",
    "\x1b[31m",
    "\x7f",
    "\u0085",
    "\u2028",
    "\u202e",
    "\ufeff",
    "\ufffd",
    "\U0001f600",
    "e\u0301",
    "\u0130",
    "%",
    "%zz",
    "%0",
    "%00",
    "%C3%28",
    "%FF%FE",
    "%u0041",
    "%%",
    "+",
    "&",
    "=",
    "&&==",
    ";",
    "#",
    "?",
    "\\",
    "/",
    "//",
    "../../etc/passwd",
    "' OR '1'='1",
    "1; DROP TABLE users; --",
    '" OR ""="',
    "') OR 1=1 --",
    "%' --",
    "*",
    "_",
    "<script>alert(1)</script>",
    "{{7*7}}",
    "${7*7}",
    "${jndi:ldap://127.0.0.1/a}",
    "null",
    "undefined",
    "true",
    "NaN",
    "-0",
    "1e309",
    "0",
    "-1",
    "9223372036854775808",
    "-9223372036854775809",
    "javascript:alert(1)",
    "data:text/html,<b>x</b>",
    "http://evil.example/",
    "//evil.example",
    "https://evil.example@127.0.0.1/",
)
# Only where the value travels as JSON (escaped) or as raw bytes: no UTF-8 text can hold them.
SURROGATES = ("\ud800", "\udfff", "a\udbff\udc00b\ud800")
HUGE_SIZES = (4001, 8193, 65_536, BODY_LIMIT - 400, BODY_LIMIT - 1, BODY_LIMIT + 1, BODY_LIMIT + 4096)


def short(value: str | bytes, limit: int = 120) -> str:
    """A repr that keeps failure reports readable when values are huge."""
    if len(value) <= limit:
        return repr(value)
    return f"{value[:limit]!r}...<{len(value)} in all>"


def huge_strings() -> st.SearchStrategy[str]:
    """Values near the body limit, built by repetition (drawing them character by character is slow)."""
    return st.builds(lambda size, char: char * size, st.sampled_from(HUGE_SIZES), st.sampled_from("A%\u00e9\x00 "))


def long_strings() -> st.SearchStrategy[str]:
    """Long, but well under the body limit: past the length checks of single fields."""
    return st.builds(
        lambda size, char: char * size, st.sampled_from([101, 201, 501, 1001, 4001]), st.sampled_from("1a\u00e9")
    )


def hostile_text(*, surrogates: bool = False) -> st.SearchStrategy[str]:
    options: list[st.SearchStrategy[str]] = [
        st.sampled_from(HOSTILE_STRINGS),
        st.sampled_from(HOSTILE_STRINGS),
        long_strings(),
        st.text(max_size=30),
        st.text(alphabet=string.printable, max_size=30),
    ]
    if surrogates:
        # Rarely: a JSON parser refuses the whole body for one, so the rest of it goes untested.
        options.append(
            st.one_of(
                st.sampled_from(SURROGATES), st.text(st.characters(codec=None, categories=["Cs", "L"]), max_size=8)
            )
        )
    return st.one_of(*options)


HOSTILE = hostile_text()
HOSTILE_JSON_TEXT = hostile_text(surrogates=True)


def pooled(pool: Callable[[], Sequence[str]], fallback: str = "") -> st.SearchStrategy[str]:
    """An item of a pool that changes during the run (live codes, tokens), newest first. The draw is
    an index, the same whatever the pool holds, so Hypothesis can replay and shrink it."""

    def pick(index: int) -> str:
        items = pool()
        return items[-1 - index % len(items)] if items else fallback

    return st.one_of(st.integers(0, 2), st.integers(0, 2**16)).map(pick)


def hostile_ints() -> st.SearchStrategy[int]:
    return st.one_of(
        st.integers(-3, 12),
        st.sampled_from([2**31 - 1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, -(2**63) - 1, 2**64, 10**30, -(10**30)]),
        st.integers(),
    )


def json_values(*, surrogates: bool = True) -> st.SearchStrategy[Any]:
    """Any JSON value, a little nested, including NaN/Infinity (which `json.dumps` emits)."""
    leaves = st.one_of(
        st.none(),
        st.booleans(),
        hostile_ints(),
        st.floats(),
        hostile_text(surrogates=surrogates),
    )
    return st.recursive(
        leaves,
        lambda children: st.one_of(
            st.lists(children, max_size=3), st.dictionaries(st.text(max_size=8), children, max_size=3)
        ),
        max_leaves=6,
    )


WRONG_JSON = json_values()
# How many mutations an example gets: none in four examples out of ten.
MUTATION_COUNTS = st.sampled_from([0, 0, 0, 0, 1, 1, 1, 2, 2, 3])


def usually(right: Any, others: Sequence[Any], *, one_in: int = 12) -> st.SearchStrategy[Any]:
    """`right`, except about once in `one_in` draws, one of `others`."""
    return st.integers(0, one_in - 1).flatmap(lambda n: st.sampled_from(others) if n == 0 else st.just(right))


# ---- forms ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Param:
    """One form parameter: its valid values (None: valid to leave it out) and its hostile ones."""

    valid: st.SearchStrategy[str | None]
    hostile: st.SearchStrategy[str] = HOSTILE


def encode_pairs(pairs: Sequence[tuple[str, str]]) -> bytes:
    """application/x-www-form-urlencoded; lone surrogates become their (invalid) UTF-8 bytes."""
    return "&".join(f"{_quote(name)}={_quote(value)}" for name, value in pairs).encode("ascii")


def _quote(text: str) -> str:
    return quote_from_bytes(text.encode("utf-8", "surrogatepass"), safe="")


_RAW_SPLICES = (b"%", b"%zz", b"%C3%28", b"%ff", b"&&", b"=", b"==&=", b";", b"+", b"%00", b"%0D%0A", b"%%41")
# Only in bodies: a request line carries visible ASCII alone.
_BODY_SPLICES = (b"\xff\xfe", b"\x00", b"\r\n", b"\xc3(")
FORM_MUTATIONS = ("hostile", "hostile", "hostile", "drop", "empty", "duplicate", "extra", "splice", "huge")
EXTRA_NAMES = ("x", "client_id[]", "", "grant_type ", "CLIENT_ID", "_method", "__proto__")


@dataclass(frozen=True)
class Form:
    pairs: tuple[tuple[str, str], ...]
    encoded: bytes
    mutations: tuple[str, ...] = field(default=())

    @property
    def spliced(self) -> bool:
        """Raw bytes were spliced in: what the server reads is not `pairs`."""
        return any(mutation.startswith("splice") for mutation in self.mutations)

    def __repr__(self) -> str:
        pairs = ", ".join(f"({short(name)}, {short(value)})" for name, value in self.pairs)
        return f"Form(pairs=[{pairs}], mutations={self.mutations}, encoded={short(self.encoded)})"

    def single(self, name: str) -> str | None:
        """The value of `name` if it was sent exactly once and arrives as sent, else None."""
        values = [value for key, value in self.pairs if key == name]
        if self.spliced or len(values) != 1 or any("\ud800" <= c <= "\udfff" for c in values[0]):
            return None
        return values[0]


@st.composite
def forms(draw: st.DrawFn, vocabulary: dict[str, Param], *, in_body: bool = True) -> Form:
    """A valid form from `vocabulary`, then a few mutations: a hostile, empty, dropped, duplicated or
    unknown parameter, a value near the body limit (bodies only), raw bytes spliced in."""
    pairs = [(name, value) for name, param in vocabulary.items() if (value := draw(param.valid)) is not None]
    mutations: list[str] = []
    splices: list[bytes] = []
    for _ in range(draw(MUTATION_COUNTS)):
        kind = draw(st.sampled_from(FORM_MUTATIONS))
        name = draw(st.sampled_from(sorted(vocabulary)))
        others = [(key, value) for key, value in pairs if key != name]
        if kind == "hostile":
            pairs = [*others, (name, draw(vocabulary[name].hostile))]
        elif kind == "drop":
            pairs = others
        elif kind == "empty":
            pairs = [*others, (name, "")]
        elif kind == "duplicate":
            pairs.append((name, draw(st.one_of(vocabulary[name].hostile, st.just("")))))
        elif kind == "extra":
            name = draw(st.sampled_from(EXTRA_NAMES))
            pairs.append((name, draw(HOSTILE)))
        elif kind == "huge" and in_body:
            pairs = [*others, (name, draw(huge_strings()))]
        elif kind == "splice":
            splices.append(draw(st.sampled_from(_RAW_SPLICES + (_BODY_SPLICES if in_body else ()))))
            name = ""
        mutations.append(f"{kind} {name}".strip())
    body = encode_pairs(pairs)
    for splice in splices:
        at = draw(st.integers(0, len(body)))
        body = body[:at] + splice + body[at:]
    return Form(tuple(pairs), body, tuple(mutations))


def optional(strategy: st.SearchStrategy[str], *, absent: int = 1, present: int = 1) -> st.SearchStrategy[str | None]:
    """`strategy` in `present` draws out of `present + absent`, else None (the parameter is left out)."""
    return st.one_of(*([st.none()] * absent), *([strategy] * present))


FORM_TYPE = "application/x-www-form-urlencoded"
CONTENT_TYPES = (
    FORM_TYPE + "; charset=utf-8",
    FORM_TYPE + "; charset=latin-1",
    "application/x-www-form-urlencodedx",
    "application/json",
    "multipart/form-data; boundary=xyz",
    "multipart/form-data",
    "text/plain",
    "text/html; charset=utf-7",
    "",
    "*/*",
    "application/x-www-form-urlencoded, application/json",
    None,
)
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "PROPFIND", "FOO")


def content_types(preferred: str) -> st.SearchStrategy[str | None]:
    """Usually the right content type; sometimes another, a broken one, or none at all."""
    return usually(preferred, CONTENT_TYPES, one_in=10)


def methods(preferred: str) -> st.SearchStrategy[str]:
    return usually(preferred, HTTP_METHODS, one_in=12)


# ---- JSON bodies ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class JsonText:
    """How a JSON value is put on the wire."""

    ensure_ascii: bool  # True: non-ASCII and lone surrogates as \\u escapes; False: raw UTF-8
    indent: int | None
    prefix: bytes  # a BOM or whitespace
    suffix: bytes  # trailing garbage or whitespace


json_texts = st.builds(
    JsonText,
    st.booleans(),
    usually(None, [0, 2], one_in=8),
    usually(b"", [b"\xef\xbb\xbf", b" \n\t"], one_in=60),
    usually(b"", [b"\n", b" trailing", b"}", b"]", b"\x00"], one_in=60),
)


def dump_json(value: Any, text: JsonText) -> bytes:
    encoded = json.dumps(value, ensure_ascii=text.ensure_ascii, indent=text.indent).encode("utf-8", "surrogatepass")
    return text.prefix + encoded + text.suffix


MALFORMED_JSON = (
    b"",
    b" ",
    b"{",
    b"}",
    b"[",
    b"[]",
    b"{}",
    b"null",
    b"0",
    b"-1e999",
    b'"just a string"',
    b"{'single': 'quotes'}",
    b'{"a": }',
    b'{"a": 1,}',
    b'{"a": 1 "b": 2}',
    b'{"a": NaN, "b": -Infinity}',
    b'{"a": "\\ud800"}',
    b'{"a": "\\x41"}',
    b'{"a": "\xff\xfe"}',
    b'{"a": 1}{"b": 2}',
    b'{"a": 1, "a": 2}',
    b"\xef\xbb\xbf{}",
    b"\x00\x00\x00{",
    b"[" * 5000 + b"]" * 5000,
    b'{"a":' * 3000 + b"1" + b"}" * 3000,
    b"1" * 5000,
)


def truncated(body: bytes) -> st.SearchStrategy[bytes]:
    return st.integers(0, max(0, len(body) - 1)).map(lambda at: body[:at])


def mutate_object(draw: st.DrawFn, value: dict[str, Any], hostile: dict[str, st.SearchStrategy[Any]]) -> list[str]:
    """Mutate a JSON object in place: a field hostile (from `hostile`, else of a wrong type),
    dropped, or unknown. Returns what was done."""
    done: list[str] = []
    for _ in range(draw(MUTATION_COUNTS)):
        kind = draw(st.sampled_from(["hostile", "hostile", "wrong type", "drop", "extra"]))
        name = draw(st.sampled_from(sorted(set(hostile) | set(value)))) if hostile or value else "x"
        if kind == "hostile":
            value[name] = draw(hostile.get(name, WRONG_JSON))
        elif kind == "wrong type":
            value[name] = draw(WRONG_JSON)
        elif kind == "drop":
            value.pop(name, None)
        else:
            name = draw(st.text(max_size=10))
            value[name] = draw(WRONG_JSON)
        done.append(f"{kind} {name!r}")
    return done


# ---- headers -------------------------------------------------------------------------------------

# Header values as bytes: h11 sends any visible latin-1 byte, never CR, LF, NUL or edge whitespace.
header_values = st.one_of(
    st.sampled_from(["", "x", "null", "*", "\u00e9t\u00e9", "a" * 9000]),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=30),
).map(lambda value: value.strip(" \t").encode("latin-1"))
