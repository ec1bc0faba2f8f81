"""Where vtep-ctl's IDL files rows, as `hwvtep ctl` models it (ctl.idl.Layout).

The IDL lists a table by walking a hash map keyed by the first 32 bits of each row's
UUID; rows sharing a bucket come out in an order that depends on when each was inserted
and on the doublings in between. These tests pin the pieces of that model on small,
hand-checked cases: the hash map's growth and removals (ovshash.hmap_replay), rows filed
in the order the IDL walks its update (a string-keyed map of the reply's text), rows
filed early because a row met before them refers to them, the all-zero UUID an
unmonitored required reference column holds, and rows a run inserts and deletes. The
differential tests against vtep-ctl itself are in tests/integration/test_ctl_generic.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from hwvtep.ctl import main as ctl
from hwvtep.ctl import vtep
from hwvtep.ctl.idl import Idl, Layout, NeedExactSnapshot, depends_on_others
from hwvtep.ctl.values import Schema
from hwvtep.ovsdb.ovshash import hmap_order, hmap_replay, shash_order

SCHEMA = Schema(ctl._bundled_schema())


def uuid(first: int, last: int = 1) -> str:
    return f"{first:08x}-0000-4000-8000-{last:012x}"


def walk(uuids: list[str]) -> list[str]:
    """The IDL's listing of rows inserted in this order."""
    return hmap_replay((True, int(u[:8], 16), u) for u in uuids)


# --- the hash map -------------------------------------------------------------------------


def test_growth_and_bucket_order() -> None:
    # One bucket, then four when the second node arrives (growth walks each old chain
    # from its head, the newest node first); a new node goes first in its bucket.
    events = [(True, 0, "a"), (True, 2, "b"), (True, 4, "c"), (True, 6, "d")]
    assert hmap_replay(events) == ["c", "a", "d", "b"]
    assert hmap_order([(h, v) for _, h, v in events]) == ["c", "a", "d", "b"]
    assert hmap_replay(events[:3]) == ["c", "a", "b"]
    # all in one bucket: the second node's growth reversed the first two, the eighth's
    # reverses the lot
    eight = [(True, 8 * i, str(i)) for i in range(8)]
    assert hmap_replay(eight[:7]) == ["6", "5", "4", "3", "2", "0", "1"]
    assert hmap_replay(eight) == ["1", "0", "2", "3", "4", "5", "6", "7"]


def test_removal_keeps_the_size_the_map_grew_to() -> None:
    # x, z, y survive in an 8-bucket map (hashes 1, 3, 5 each alone in a bucket); built
    # afresh, 4 buckets would put x and y together, y first.
    events = [(True, 1, "x"), (True, 0, "a"), (True, 3, "z"), (True, 2, "b"),
              (True, 5, "y"), (True, 4, "c"), (True, 6, "d"), (True, 7, "e")]
    gone = [(False, h, v) for _, h, v in events if v in "abcde"]
    assert hmap_replay([*events, *gone]) == ["x", "z", "y"]
    assert hmap_replay([(True, 1, "x"), (True, 3, "z"), (True, 5, "y")]) == ["y", "x", "z"]
    assert hmap_replay([*events, *gone, (False, 9, "nothing")]) == ["x", "z", "y"]


# --- what the IDL monitors decides whether other tables matter -----------------------------


def test_tables_whose_order_depends_on_others() -> None:
    info = {t: set(c) for t, c in vtep._GET_INFO.items()}
    for t in ("Logical_Switch", "Physical_Port", "Physical_Switch", "Physical_Locator",
              "Physical_Locator_Set", "Tunnel"):
        assert depends_on_others(SCHEMA, info, t), t
    for t in ("Global", "Logical_Router", "Manager", "Ucast_Macs_Remote"):
        assert not depends_on_others(SCHEMA, info, t), t
    # `list Logical_Switch` alone: nothing refers to it
    assert not depends_on_others(
        SCHEMA, {"Global": set(), "Logical_Switch": {"name", "tunnel_key"}}, "Logical_Switch")
    # `--columns=MAC list Ucast_Macs_Remote -- list Logical_Switch`: logical_switch is not
    # monitored, but it is required, so the IDL follows its default, the all-zero UUID
    monitor = {"Global": set(), "Ucast_Macs_Remote": {"MAC"}, "Logical_Switch": {"name"}}
    assert depends_on_others(SCHEMA, monitor, "Logical_Switch")
    # an optional reference column that is not monitored is not followed
    assert not depends_on_others(SCHEMA, {"Global": set(), "Physical_Switch": set()},
                                 "Physical_Port")


# --- filing the reply -----------------------------------------------------------------------


def idl_for(data: dict[str, dict[str, Any]], monitor: dict[str, set[str]] | None,
            exact: bool) -> Idl:
    from hwvtep.ctl.idl import Row

    idl = Idl(SCHEMA, "hardware_vtep", Layout(SCHEMA, monitor, data, exact))
    for t, rows in data.items():
        table = SCHEMA.table(t)
        idl.tables[t] = {u: Row(table, u, raw) for u, raw in rows.items()}
    return idl


def listed(idl: Idl, table: str) -> list[str]:
    return [r.uuid for r in idl.rows(table)]


# Four logical switches whose UUIDs share their low bits: one bucket until 8 rows.
SWITCHES = [uuid(8 * i, i) for i in range(4)]


def test_rows_filed_in_the_order_the_idl_walks_the_reply() -> None:
    text = list(reversed(SWITCHES))
    data = {"Logical_Switch": {u: {"name": f"ls{i}"} for i, u in enumerate(text)}}
    idl = idl_for(data, {"Global": set(), "Logical_Switch": {"name"}}, False)
    assert listed(idl, "Logical_Switch") == walk(shash_order(text))
    # the text order itself would not do: the walk of the string map reorders it
    assert walk(shash_order(text)) != walk(text)


def test_rows_met_first_through_references() -> None:
    # The IDL walks Ucast_Macs_Remote before Logical_Switch, so the switches are filed in
    # the order the MACs refer to them, not in their own update's order.
    assert shash_order(["Global", "Logical_Switch", "Ucast_Macs_Remote"])[0] == \
        "Ucast_Macs_Remote"
    loc = uuid(0x77, 9)
    macs = {uuid(0x100 + i, 50 + i): {"MAC": f"00:00:00:00:00:0{i}",
                                       "logical_switch": ["uuid", ls],
                                       "locator": ["uuid", loc]}
            for i, ls in enumerate([SWITCHES[2], SWITCHES[0], SWITCHES[3], SWITCHES[1]])}
    data = {"Ucast_Macs_Remote": macs,
            "Logical_Switch": {u: {"name": f"ls{i}"} for i, u in enumerate(SWITCHES)},
            "Physical_Locator": {loc: {}}}
    monitor = {t: set(c) for t, c in vtep._GET_INFO.items()}
    met = [macs[m]["logical_switch"][1] for m in shash_order(macs)]
    expected = walk(met)
    assert expected != walk(shash_order(SWITCHES))  # the case tells the two apart
    assert listed(idl_for(data, monitor, True), "Logical_Switch") == expected
    with pytest.raises(NeedExactSnapshot):
        listed(idl_for(data, monitor, False), "Logical_Switch")


def test_unmonitored_required_reference_files_the_zero_uuid() -> None:
    # Three switches and, walked first, a MAC whose logical_switch column is not
    # monitored: its default (the all-zero UUID) is filed in Logical_Switch as a fourth
    # row, which grows that map to 4 buckets. The placeholder is never listed.
    switches = [uuid(2 * i + 1, i) for i in range(3)]
    data = {"Ucast_Macs_Remote": {uuid(0x100): {"MAC": "00:00:00:00:00:01"}},
            "Logical_Switch": {u: {"name": f"ls{i}"} for i, u in enumerate(switches)}}
    monitor = {"Global": set(), "Ucast_Macs_Remote": {"MAC"},
               "Logical_Switch": {"name"}}
    expected = [u for u in walk(["00000000-0000-0000-0000-000000000000",
                                 *shash_order(switches)]) if u in switches]
    assert expected != walk(shash_order(switches))
    assert listed(idl_for(data, monitor, True), "Logical_Switch") == expected


def test_rows_the_run_inserts_and_deletes_count() -> None:
    # Seven switches in one bucket; the run inserts an eighth, which grows the map to 8
    # buckets, deletes it, and inserts another, which then goes first in the bucket (had
    # the deleted row never been there, the new one would have grown the map and gone last).
    seven = [uuid(8 * i, i) for i in range(7)]
    data = {"Logical_Switch": {u: {"name": f"ls{i}"} for i, u in enumerate(seven)}}
    idl = idl_for(data, {"Global": set(), "Logical_Switch": {"name"}}, False)
    table = SCHEMA.table("Logical_Switch")
    gone = idl.insert(table, uuid(0x38, 7), persist=True)
    idl.delete(gone)
    kept = idl.insert(table, uuid(0x40, 8), persist=True)
    filed = shash_order(seven)
    assert listed(idl, "Logical_Switch") == [kept.uuid, *walk([*filed, gone.uuid])[:-1]]
    assert walk([*filed, kept.uuid])[-1] == kept.uuid
