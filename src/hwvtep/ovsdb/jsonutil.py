"""JSON text in and out, as Open vSwitch writes it (compact, UTF-8, no ASCII escaping)."""

from __future__ import annotations

from typing import Any

import orjson


class JsonError(ValueError):
    """Text that is not one valid JSON value."""


def dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def dumpb(value: Any) -> bytes:
    return orjson.dumps(value)


def dumps_pretty(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()


def dumps_str(s: str) -> str:
    return orjson.dumps(s).decode()


def loads(text: str | bytes) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as e:
        raise JsonError(str(e)) from None
