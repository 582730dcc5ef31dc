"""What the consent page asks, and what a person's answer grants.

- **Granular:** each scope asked for is listed on its own. Write scopes are checkboxes the person may
  untick; read scopes are required, because reading the journal is what the app connects for (a
  person who does not want that denies the request as a whole). An unticked write scope leaves its
  read scope, which it implies and which is therefore listed as required.
- **Incremental:** when the client already holds a grant for this person and resource, the page
  shows what it has (collapsed) and asks only about what is new; approving adds to the same grant,
  and the new token carries the whole grant, so a step-up for one scope never costs the others.

RFC 6749 §3.3: the authorization server may issue a scope other than the one requested; the token
response then names the scope issued (tokens.issue_tokens always includes it).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from epicme.oauth.scopes import DESCRIPTIONS, IMPLIED, effective_scopes

# The consent form's checkboxes: one `grant` field per optional scope still ticked.
GRANT_FIELD = "grant"


def is_optional(scope: str) -> bool:
    """Write scopes may be unticked; every other scope is needed to use the journal at all."""
    return scope in IMPLIED


def ordered(scopes: Iterable[str], order: Sequence[str]) -> tuple[str, ...]:
    """`scopes` without duplicates, in the server's order of `order` (unknown ones last)."""
    wanted = set(scopes)
    known = [scope for scope in order if scope in wanted]
    return (*known, *sorted(wanted - set(known)))


@dataclass(frozen=True)
class ConsentPlan:
    """One consent decision: what the client already has, and what it newly asks for."""

    already: tuple[str, ...]  # the scopes of the client's current grant, if it holds one
    new: tuple[str, ...]  # requested, not covered by `already`, with the reads its writes imply
    requested: tuple[str, ...]  # as the client asked

    @classmethod
    def of(cls, requested: Sequence[str], already: Sequence[str], order: Sequence[str]) -> ConsentPlan:
        covered = effective_scopes(already)
        new = [scope for scope in requested if scope not in covered]
        # A write scope brings its read scope: listed, so unticking the write leaves the read.
        implied = [read for scope in new for read in IMPLIED.get(scope, ()) if read not in covered]
        return cls(tuple(already), ordered([*new, *implied], order), tuple(requested))

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(scope for scope in self.new if not is_optional(scope))

    @property
    def optional(self) -> tuple[str, ...]:
        return tuple(scope for scope in self.new if is_optional(scope))

    def granted(self, ticked: Collection[str], order: Sequence[str]) -> tuple[str, ...]:
        """The grant's scope after the person allowed with `ticked` checkboxes. A field for a scope
        the page did not offer is ignored: a form can only narrow what was asked."""
        chosen = [scope for scope in self.optional if scope in ticked]
        return ordered([*self.already, *self.required, *chosen], order)

    def issued(self, granted: Sequence[str], order: Sequence[str]) -> tuple[str, ...]:
        """The scope of the code: the whole grant when something was added (incremental), else
        what the client asked for, which may be narrower than its grant."""
        if self.new:
            return tuple(granted)
        return ordered(self.requested, order)

    def rows(self, which: Literal["already", "new"]) -> list[dict[str, object]]:
        """One of the page's lists, each scope with its plain-words description."""
        return [
            {"name": scope, "description": DESCRIPTIONS.get(scope, scope), "optional": is_optional(scope)}
            for scope in getattr(self, which)
        ]
