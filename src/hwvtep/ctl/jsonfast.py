"""JSON through the interpreter's C accelerator, without importing the ``json`` package.

``import json`` pulls in ``re`` and compiles a few patterns: several milliseconds, as much
as a short `hwvtep ctl` run needs for everything else. The C functions behind ``json``
(``_json.make_scanner``/``make_encoder``) need no more than a small settings object.
Malformed or incomplete input raises ValueError: Python 3.11's scanner reports it with
``json.decoder``'s exception class and, if that module was never imported, fails with a
SystemError instead, which `scan` turns into a plain ValueError (no import for it).
"""

from __future__ import annotations

import _json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_WS = " \t\n\r"


def _parse_constant(name: str) -> float:
    return {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}[name]


class _Settings:
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = staticmethod(_parse_constant)
    memo: dict[str, str] = {}


def _no_default(value: Any) -> Any:
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


# The stubs describe make_scanner's argument as the class itself; it only reads attributes.
_scan = _json.make_scanner(_Settings())  # type: ignore[arg-type]
_encode = _json.make_encoder(None, _no_default, _json.encode_basestring, None, ":", ",",
                             False, False, False)


def scan(text: str, pos: int = 0) -> tuple[Any, int]:
    """The JSON value starting at *pos* (after white space) and where it ends.

    Raises ValueError when the text holds no complete value there.
    """
    n = len(text)
    while pos < n and text[pos] in _WS:
        pos += 1
    try:
        value, end = _scan(text, pos)
    except StopIteration:
        raise ValueError("no JSON value") from None
    except SystemError:
        raise ValueError("malformed or incomplete JSON") from None
    finally:
        _Settings.memo.clear()
    return value, end


def loads(text: str) -> Any:
    value, end = scan(text)
    n = len(text)
    while end < n and text[end] in _WS:
        end += 1
    if end != n:
        raise ValueError("extra data after JSON value")
    return value


def dumps(value: Any) -> str:
    """Compact JSON, non-ASCII characters kept as they are."""
    return "".join(_encode(value, 0))
