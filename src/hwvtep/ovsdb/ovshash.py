"""Open vSwitch's string hash and the order its hash maps are walked in.

Several outputs of Open vSwitch depend on hash-table layout: the member of a JSON object
ovsdb-server complains about first, the order ovsdb-tool and ovsdb-client list tables,
rows and columns, the order vtep-ctl lists rows. Reproducing them takes OVS's
``hash_string()`` (murmur3-style, on little-endian words, as built without SSE4.2, which
is Debian's build) and its ``hmap`` layout: buckets in index order, the newest node first
in each bucket, the table doubling (and so reversing each bucket) as it fills. Pure and
standard-library only: ``hwvtep ctl`` uses it on its fast start-up path.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import TypeVar

    T = TypeVar("T")

_M32 = 0xFFFFFFFF


def _rotl(x: int, k: int) -> int:
    return ((x << k) | (x >> (32 - k))) & _M32


def _mhash_add(h: int, data: int) -> int:
    if data:
        data = (data * 0xCC9E2D51) & _M32
        data = _rotl(data, 15)
        data = (data * 0x1B873593) & _M32
        h ^= data
    h = _rotl(h, 13)
    return (h * 5 + 0xE6546B64) & _M32


def ovs_hash_string(s: str, basis: int = 0) -> int:
    """OVS's hash_string(s, basis) on a little-endian machine."""
    b = s.encode()
    n = len(b)
    h = basis
    full = n - n % 4
    for i in range(0, full, 4):
        h = _mhash_add(h, int.from_bytes(b[i:i + 4], "little"))
    if n % 4:
        h = _mhash_add(h, int.from_bytes(b[full:], "little"))
    h ^= n
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & _M32
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & _M32
    return h ^ (h >> 16)


def _calc_mask(capacity: int) -> int:
    mask = capacity // 2
    for shift in (1, 2, 4, 8, 16, 32):
        mask |= mask >> shift
    return mask | (mask & 1) << 1


def hmap_order(items: Iterable[tuple[int, T]]) -> list[T]:
    """The order an OVS hmap walks the values inserted as (hash, value) in *items*' order."""
    return hmap_replay((True, h, value) for h, value in items)


def hmap_replay(events: Iterable[tuple[bool, int, T]]) -> list[T]:
    """The order an OVS hmap walks after these (insert?, hash, value) events, in order.

    A value goes in at the head of its bucket (hmap_insert), and once the map holds twice
    as many values as it has buckets it grows (hmap_expand), rebuilding every
    bucket by walking the old ones, which reverses the order of values that stay together.
    A removal takes the value out of its bucket and never shrinks the map (hmap_remove),
    so it still counts for the growth an earlier insertion caused. Removing a value that is
    not there does nothing.
    """
    mask = 0
    n = 0
    buckets: list[list[tuple[int, T]]] = [[]]
    for insert, h, value in events:
        if not insert:
            bucket = buckets[h & mask]
            for i, node in enumerate(bucket):
                if node[1] == value:
                    del bucket[i]
                    n -= 1
                    break
            continue
        buckets[h & mask].insert(0, (h, value))
        n += 1
        if n // 2 > mask:
            new_mask = _calc_mask(n)
            if new_mask > mask:
                grown: list[list[tuple[int, T]]] = [[] for _ in range(new_mask + 1)]
                for bucket in buckets:
                    for node in bucket:
                        grown[node[0] & new_mask].insert(0, node)
                buckets, mask = grown, new_mask
    return [value for bucket in buckets for _, value in bucket]


def shash_order(names: Iterable[str]) -> list[str]:
    """The order OVS walks a string-keyed hash map (shash: a JSON object's members) whose
    keys were added in *names*' order."""
    return hmap_order((ovs_hash_string(name), name) for name in names)
