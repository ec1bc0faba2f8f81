"""What can go wrong talking to an OVSDB server, as exceptions a caller can sort out.

Two families. Answers from the server (an error reply, a failed transaction operation) are
:class:`~hwvtep.ovsdb.errors.OvsdbError` subclasses, so ``e.tag`` is the RFC 7047 error tag
("constraint violation", "timed out", "unknown method"...) and ``e.details`` its text, the
same type the core raises for local validation. Problems on our side of the wire
(unreachable server, connection lost mid-call, no answer in time) are :class:`ClientError`
subclasses, which also derive from the matching built-in exception.
"""

from __future__ import annotations

from typing import Any

from hwvtep.ovsdb.errors import OvsdbError


class ClientError(Exception):
    """A failure on the client's side of the wire (not an answer from the server)."""


class RemoteError(ClientError, ValueError):
    """A remote specification (``unix:PATH``, ``tcp:IP:PORT``, ``ssl:IP:PORT``) is bad."""


class ConnectionLost(ClientError, ConnectionError):
    """The connection went away before the answer came; the request may have been run."""

    def __init__(self, reason: str = "connection lost") -> None:
        super().__init__(reason)
        self.reason = reason


class CallTimeout(ClientError, TimeoutError):
    """No answer (or no usable server) within the time allowed."""


class SessionClosed(ClientError):
    """The client was closed; no more requests can be made."""


class ProtocolViolation(ClientError):
    """The server's answer does not have the shape RFC 7047 gives it."""


class RpcError(OvsdbError):
    """The server answered a request with an error.

    ``tag``/``details``/``syntax`` come from the RFC 7047 error object (a bare string error,
    such as ovsdb-server's ``"unknown method"``, becomes the tag); ``error`` is the object
    as received and ``method`` the request that failed.
    """

    __slots__ = ("error", "method")

    def __init__(self, tag: str, details: str | None = None, syntax: Any = None, *,
                 method: str = "", error: Any = None) -> None:
        super().__init__(tag, details, syntax)
        self.method = method
        self.error = error

    @classmethod
    def from_json(cls, error: Any, method: str = "") -> RpcError:
        tag, details, syntax = parse_error_object(error)
        return cls(tag, details, syntax, method=method, error=error)


class TxnError(RpcError):
    """An operation of a transaction failed (or its commit did), so nothing was committed.

    ``index`` is the position of the failing operation in the request (equal to the
    number of operations when the commit itself failed), ``results`` the whole result
    array as received. ``conflict``: a verification (see :mod:`hwvtep.client.txn`) found
    that data read before the transaction has changed since.
    """

    __slots__ = ("conflict", "index", "results")

    def __init__(self, tag: str, details: str | None = None, syntax: Any = None, *,
                 index: int = 0, results: list[Any] | None = None, error: Any = None,
                 conflict: bool = False) -> None:
        super().__init__(tag, details, syntax, method="transact", error=error)
        self.index = index
        self.results = results if results is not None else []
        self.conflict = conflict


class TxnConflict(TxnError):
    """Data a transaction verified kept changing; it was given up after its attempts."""


def parse_error_object(error: Any) -> tuple[str, str | None, Any]:
    """(tag, details, syntax) of an error as servers send it (object or bare string)."""
    if isinstance(error, dict):
        tag = error.get("error")
        details = error.get("details")
        return (
            tag if isinstance(tag, str) else str(tag),
            details if isinstance(details, str) or details is None else str(details),
            error.get("syntax"),
        )
    if isinstance(error, str):
        return error, None, None
    return str(error), None, None


def error_tag(error: Any) -> str:
    """Just the tag of an error object or string."""
    return parse_error_object(error)[0]
