"""One error type for the whole core, carrying the RFC 7047 error tag.

Every failure the core can report to a peer is an :class:`OvsdbError`; its JSON form is
the RFC 7047 error object (``{"error": tag, "details": text}``), so adapters never need
to translate exceptions.
"""

from __future__ import annotations

from typing import Any, Final

import orjson

# The tags RFC 7047 and Open vSwitch use; kept here so callers do not misspell them.
SYNTAX_ERROR = "syntax error"
CONSTRAINT_VIOLATION = "constraint violation"
REFERENTIAL_INTEGRITY = "referential integrity violation"
RESOURCES_EXHAUSTED = "resources exhausted"
IO_ERROR = "I/O error"
DUPLICATE_UUID_NAME = "duplicate uuid-name"
DOMAIN_ERROR = "domain error"
RANGE_ERROR = "range error"
TIMED_OUT = "timed out"
NOT_SUPPORTED = "not supported"
ABORTED = "aborted"
NOT_OWNER = "not owner"
UNKNOWN_DATABASE = "unknown database"
UNKNOWN_METHOD = "unknown method"
CANCELED = "canceled"
PERMISSION_ERROR = "permission error"


class _NoSyntax:
    """The type of :data:`NO_SYNTAX`."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NO_SYNTAX"

    def __reduce__(self) -> str:
        return "NO_SYNTAX"


# "This error names no offending JSON." A JSON null is a value like any other: an error
# about a null carries ``"syntax": "null"``, as Open vSwitch's do, so None cannot mean this.
NO_SYNTAX: Final[Any] = _NoSyntax()


class OvsdbError(Exception):
    """An error with an RFC 7047 tag, optional details and optional offending syntax.

    *syntax* is the JSON value the error is about (None being JSON null), or
    :data:`NO_SYNTAX` when there is none.
    """

    __slots__ = ("details", "syntax", "tag")

    def __init__(self, tag: str, details: str | None = None, syntax: Any = NO_SYNTAX) -> None:
        super().__init__(f"{tag}: {details}" if details else tag)
        self.tag = tag
        self.details = details
        self.syntax = syntax

    @property
    def has_syntax(self) -> bool:
        return self.syntax is not NO_SYNTAX

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": self.tag}
        if self.syntax is not NO_SYNTAX:
            # Open vSwitch prints the offending JSON with its object members sorted.
            out["syntax"] = orjson.dumps(self.syntax, option=orjson.OPT_SORT_KEYS).decode()
        if self.details is not None:
            out["details"] = self.details
        return out

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, OvsdbError)
            and (self.tag, self.details) == (other.tag, other.details)
        )

    def __hash__(self) -> int:
        return hash((self.tag, self.details))


def syntax_error(details: str, syntax: Any = NO_SYNTAX) -> OvsdbError:
    return OvsdbError(SYNTAX_ERROR, details, syntax)


def constraint_violation(details: str) -> OvsdbError:
    return OvsdbError(CONSTRAINT_VIOLATION, details)
