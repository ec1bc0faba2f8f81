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


# --- the order in which Open vSwitch visits a JSON object's members -----------------------
# ovsdb-server keeps an object's members in a hash table (shash) and reports the first
# problem it meets while walking it, so with several bad members the one it names depends
# on that table's layout: murmur3-style string hashes, buckets in index order, newest node
# first in each bucket, doubling as members are added.

_M32 = 0xFFFFFFFF


def _rot(x: int, k: int) -> int:
    return ((x << k) | (x >> (32 - k))) & _M32


def _mhash_add(h: int, d: int) -> int:
    if d:
        d = (d * 0xCC9E2D51) & _M32
        d = _rot(d, 15)
        d = (d * 0x1B873593) & _M32
        h ^= d
    h = _rot(h, 13)
    return (h * 5 + 0xE6546B64) & _M32


def ovs_hash_string(s: str) -> int:
    """Open vSwitch's hash_string(s, 0) on a little-endian machine."""
    b = s.encode()
    n = len(b)
    h = 0
    i = 0
    while n - i >= 4:
        h = _mhash_add(h, int.from_bytes(b[i:i + 4], "little"))
        i += 4
    if i < n:
        h = _mhash_add(h, int.from_bytes(b[i:], "little"))
    h ^= n
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & _M32
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & _M32
    h ^= h >> 16
    return h


def _calc_mask(capacity: int) -> int:
    mask = capacity // 2
    for shift in (1, 2, 4, 8, 16, 32):
        mask |= mask >> shift
    return mask | (mask & 1) << 1


def ovs_object_order(names: list[str]) -> list[str]:
    """The order Open vSwitch iterates an object whose members were added in this order."""
    mask = 0
    buckets: list[list[tuple[int, str]]] = [[]]
    for n, name in enumerate(names, 1):
        h = ovs_hash_string(name)
        buckets[h & mask].insert(0, (h, name))
        if n // 2 > mask:
            new_mask = _calc_mask(n)
            if new_mask > mask:
                grown: list[list[tuple[int, str]]] = [[] for _ in range(new_mask + 1)]
                for bucket in buckets:
                    for node in bucket:
                        grown[node[0] & new_mask].insert(0, node)
                buckets, mask = grown, new_mask
    return [name for bucket in buckets for _, name in bucket]

