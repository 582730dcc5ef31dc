"""Reading `WWW-Authenticate` the way a careful client does, and noting every departure from the grammar.

RFC 9110 §11.6.1 / §11.2:

    WWW-Authenticate = #challenge
    challenge        = auth-scheme [ 1*SP ( token68 / #auth-param ) ]
    auth-param       = token BWS "=" BWS ( token / quoted-string )

The parser is lenient where lenient clients are (an unquoted value runs to the next comma), so the
doctor can still say what such a client would read, and it records each problem for the strict
ones. Its counterpart, the builder, is `epicme.resource_server.challenge.format_challenge`.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable
from dataclasses import dataclass, field

# RFC 9110 §5.6.2: tchar.
TCHAR = frozenset("!#$%&'*+-.^_`|~" + string.ascii_letters + string.digits)
# RFC 9110 §11.2: token68.
_TOKEN68 = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_WHITESPACE = " \t"


@dataclass
class AuthChallenge:
    scheme: str
    params: dict[str, str] = field(default_factory=dict)
    quoted: dict[str, bool] = field(default_factory=dict)
    token68: str | None = None

    def param(self, name: str) -> str | None:
        return self.params.get(name.lower())


@dataclass
class ParsedChallenges:
    challenges: list[AuthChallenge]
    problems: list[str]

    def first(self, scheme: str) -> AuthChallenge | None:
        """The first challenge of `scheme` (compared case-insensitively, RFC 9110 §11.1)."""
        return next((c for c in self.challenges if c.scheme.lower() == scheme.lower()), None)


def _skip(text: str, i: int, chars: str) -> int:
    while i < len(text) and text[i] in chars:
        i += 1
    return i


def _token(text: str, i: int) -> tuple[str, int]:
    start = i
    while i < len(text) and text[i] in TCHAR:
        i += 1
    return text[start:i], i


def _quoted(text: str, i: int) -> tuple[str, int, bool]:
    """The unescaped quoted-string starting at text[i] == '"', the index after it, and whether it
    was terminated."""
    out: list[str] = []
    i += 1
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
            continue
        if char == '"':
            return "".join(out), i + 1, True
        out.append(char)
        i += 1
    return "".join(out), i, False


def _is_token68(text: str, i: int) -> int | None:
    """The end of a token68 at `i` that stands alone (followed by the end or a comma), else None."""
    match = _TOKEN68.match(text, i)
    if match is None:
        return None
    after = _skip(text, match.end(), _WHITESPACE)
    if after == len(text) or text[after] == ",":
        # `name=value` is an auth-param, not a token68 ending in "=": a token68's "=" run ends it.
        return match.end()
    return None


def _comma_or_end(text: str, i: int) -> int:
    comma = text.find(",", i)
    return len(text) if comma < 0 else comma


def parse_challenges(values: Iterable[str]) -> ParsedChallenges:
    """Every challenge in the given header values (a response may send the header more than once)."""
    result = ParsedChallenges([], [])
    for value in values:
        _parse_value(value, result)
    return result


def _parse_value(text: str, result: ParsedChallenges) -> None:
    current: AuthChallenge | None = None
    i = 0
    while True:
        i = _skip(text, i, _WHITESPACE + ",")
        if i >= len(text):
            return
        name, end = _token(text, i)
        if not name:
            result.problems.append(f"unexpected {text[i]!r} at position {i} of {text!r}")
            i = _comma_or_end(text, i + 1)
            continue
        after_name = _skip(text, end, _WHITESPACE)
        if current is not None and after_name < len(text) and text[after_name] == "=":
            i = _param(text, name, _skip(text, after_name + 1, _WHITESPACE), current, result)
            continue
        current = AuthChallenge(name)
        result.challenges.append(current)
        i = after_name
        if i < len(text) and text[i] != ",":
            token68_end = _is_token68(text, i)
            if token68_end is not None:
                current.token68 = text[i:token68_end]
                i = token68_end


def _param(text: str, name: str, i: int, current: AuthChallenge, result: ParsedChallenges) -> int:
    key = name.lower()
    if i < len(text) and text[i] == '"':
        value, i, terminated = _quoted(text, i)
        quoted = True
        if not terminated:
            result.problems.append(f'{name}: the quoted-string never ends (missing closing ")')
    else:
        value, end = _token(text, i)
        quoted = False
        after = _skip(text, end, _WHITESPACE)
        if after < len(text) and text[after] != ",":
            # Lenient clients read up to the next comma; strict parsers stop here.
            stop = _comma_or_end(text, i)
            value, end = text[i:stop].strip(), stop
            result.problems.append(
                f"{name}={value}: neither a token nor a quoted-string (RFC 9110 §11.2); it must be quoted"
            )
        elif not value:
            result.problems.append(f"{name} has no value")
        i = end
    if key in current.params:
        # RFC 9110 §11.2: each parameter name MUST only occur once per challenge.
        result.problems.append(f"{name} appears more than once in the {current.scheme} challenge")
    else:
        current.params[key] = value
        current.quoted[key] = quoted
    return i
