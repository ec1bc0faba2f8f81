"""JSON text in and out, as Open vSwitch writes it (compact, UTF-8, no ASCII escaping)."""

from __future__ import annotations

from typing import Any

import orjson

from hwvtep.ovsdb.ovshash import shash_order


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


# --- the order in which Open vSwitch visits a JSON object's members -----------------------
# ovsdb-server keeps an object's members in a hash table (shash) and reports the first
# problem it meets while walking it, so with several bad members the one it names depends
# on that table's layout: murmur3-style string hashes, buckets in index order, newest node
# first in each bucket, doubling as members are added.

def ovs_object_order(names: list[str]) -> list[str]:
    """The order Open vSwitch iterates an object whose members were added in this order."""
    return shash_order(names)

