"""Our transaction engine against Open vSwitch's, transaction by transaction.

Each scenario is a sequence of ``transact`` params run on a fresh database, through
``ovsdb-tool transact FILE TXN`` (on a file made by ``ovsdb-tool create``) and through
our engine; the results must be equal once the UUIDs (random on both sides) are renumbered
in order of appearance. A string ``"@N.M"`` inside a transaction stands for the UUID that
operation M of transaction N (counted from 0) inserted, on each side its own.

Every scenario ends with a select of every table, so the database contents are compared
too. ``_version`` values are not compared: ovsdb-tool does not store them, so each of its
runs makes new ones (the unit tests check them). Where ovsdb-server's output depends on
its hash tables' iteration order (the order of selected rows, of the two rows named by a
unique index error) the comparison ignores it.
"""

from __future__ import annotations

import itertools
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from hwvtep.ovsdb.database import Database
from hwvtep.ovsdb.schema import DatabaseSchema, bundled_schema_text
from hwvtep.ovsdb.transaction import execute
from hwvtep.server.storage import Storage

OVSDB_TOOL = shutil.which("ovsdb-tool")
DATA = Path(__file__).parent.parent / "data"
TEST_SCHEMA = DATA / "txn_test.ovsschema"

pytestmark = pytest.mark.ovs

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_REF = re.compile(r"@(\d+)\.(\d+)")


def _resolve(j: Any, results: list[Any]) -> Any:
    """Replace "@N.M" strings by the UUID inserted by operation M of transaction N."""
    if isinstance(j, str):
        m = _REF.fullmatch(j)
        if m:
            return results[int(m.group(1))][int(m.group(2))]["uuid"][1]
        return j
    if isinstance(j, list):
        return [_resolve(x, results) for x in j]
    if isinstance(j, dict):
        return {k: _resolve(v, results) for k, v in j.items()}
    return j


def run_ovs(schema: Path, txns: list[Any], tmp: Path) -> list[Any]:
    assert OVSDB_TOOL is not None
    db = tmp / "ovs.db"
    subprocess.run([OVSDB_TOOL, "create", str(db), str(schema)], check=True)
    results: list[Any] = []
    for t in txns:
        text = orjson.dumps(_resolve(t, results)).decode()
        out = subprocess.run([OVSDB_TOOL, "transact", str(db), text], check=True,
                             capture_output=True, text=True)
        results.append(orjson.loads(out.stdout))
    return results


def run_ours(schema: Path, txns: list[Any]) -> list[Any]:
    """Our side, as run_ovs: ``hwvtep ovsdb-tool transact`` on a file it created. After
    each transaction the file must replay into a consistent database."""
    hwvtep = str(Path(sys.executable).with_name("hwvtep"))
    results: list[Any] = []
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "ours.db"
        subprocess.run([hwvtep, "ovsdb-tool", "create", str(db), str(schema)], check=True)
        for t in txns:
            text = orjson.dumps(_resolve(t, results)).decode()
            out = subprocess.run([hwvtep, "ovsdb-tool", "transact", str(db), text],
                                 check=True, capture_output=True, text=True)
            results.append(orjson.loads(out.stdout))
            with Storage.open(str(db), read_only=True, strict=True) as stored:
                replayed: Database = stored.db
                assert stored.read_error is None
                assert replayed.consistency_errors() == []
    return results


class _Renumber:
    def __init__(self, canonical_index: bool) -> None:
        self.names: dict[str, str] = {}
        self.canonical_index = canonical_index

    def name(self, u: str, assign: bool) -> str:
        if u not in self.names:
            if not assign:
                return "?"
            self.names[u] = f"<{len(self.names)}>"
        return self.names[u]

    def walk(self, j: Any, assign: bool = True) -> Any:
        if isinstance(j, str):
            s = _UUID.sub(lambda m: self.name(m.group(0), assign), j)
            return _canonical_index_error(s) if self.canonical_index else s
        if isinstance(j, list):
            if len(j) == 2 and j[0] in ("set", "map") and isinstance(j[1], list):
                return [j[0], sorted((self.walk(x, assign) for x in j[1]), key=orjson.dumps)]
            return [self.walk(x, assign) for x in j]
        if isinstance(j, dict):
            out = {}
            for k in sorted(j):
                v = j[k]
                if k == "_version":
                    # ovsdb-tool does not store _version: every run makes new ones.
                    out[k] = "<version>"
                    continue
                if k == "rows" and isinstance(v, list):
                    # ovsdb-server lists rows in hash order: sort them by what does not
                    # depend on new UUIDs, then number those.
                    v = sorted(v, key=lambda r: orjson.dumps(self.walk(r, False),
                                                              option=orjson.OPT_SORT_KEYS))
                out[k] = self.walk(v, assign)
            return out
        return j


_INDEX_ERR = re.compile(r"(.*for index on .*?\.  )First row, with UUID (<\d+>), (.*?)  "
                        r"Second row, with UUID (<\d+>), (.*)", re.S)


def _canonical_index_error(s: str) -> str:
    m = _INDEX_ERR.fullmatch(s)
    if not m:
        return s
    a, b = sorted([(m.group(2), m.group(3)), (m.group(4), m.group(5))])
    return f"{m.group(1)}First row, with UUID {a[0]}, {a[1]}  Second row, with UUID {b[0]}, {b[1]}"


def normalize(results: list[Any], canonical_index: bool = True) -> list[Any]:
    r = _Renumber(canonical_index)
    return [r.walk(x) for x in results]


def _select_all(schema: Path) -> list[Any]:
    s = DatabaseSchema.from_text(schema.read_text())
    return [s.name, *({"op": "select", "table": t, "where": []} for t in s.tables)]


# --- the corpus ------------------------------------------------------------------------------

HV = "hardware_vtep"
VXLAN = "vxlan_over_ipv4"


def _ls(name: str, key: int | None = None, **extra: Any) -> dict[str, Any]:
    row: dict[str, Any] = {"name": name}
    if key is not None:
        row["tunnel_key"] = key
    row.update(extra)
    return {"op": "insert", "table": "Logical_Switch", "row": row}


def _loc(ip: str, name: str | None = None) -> dict[str, Any]:
    op: dict[str, Any] = {"op": "insert", "table": "Physical_Locator",
                          "row": {"dst_ip": ip, "encapsulation_type": VXLAN}}
    if name:
        op["uuid-name"] = name
    return op


def _named(op: dict[str, Any], name: str) -> dict[str, Any]:
    return {**op, "uuid-name": name}


def _ucast(mac: str, ls: Any, loc: Any, **extra: Any) -> dict[str, Any]:
    return {"op": "insert", "table": "Ucast_Macs_Remote",
            "row": {"MAC": mac, "logical_switch": ls, "locator": loc, **extra}}


def _sel(table: str, where: list[Any] | None = None, **kw: Any) -> dict[str, Any]:
    return {"op": "select", "table": table, "where": where or [], **kw}


def _nu(name: str) -> list[str]:
    return ["named-uuid", name]


def _u(ref: str) -> list[str]:
    return ["uuid", ref]


HV_SCENARIOS: dict[str, list[Any]] = {
    "basic-ops": [
        [HV, _named(_ls("ls1", 10), "ls"), _loc("10.0.0.1", "loc"),
         _ucast("00:00:00:00:00:01", _nu("ls"), _nu("loc"), ipaddr="10.1.1.1"),
         _sel("Logical_Switch", [["name", "==", "ls1"]], columns=["name", "tunnel_key"])],
        [HV, {"op": "update", "table": "Logical_Switch", "where": [["name", "==", "ls1"]],
              "row": {"description": "red", "tunnel_key": 11}},
         {"op": "mutate", "table": "Logical_Switch", "where": [],
          "mutations": [["tunnel_key", "+=", 5], ["other_config", "insert",
                                                  ["map", [["k", "v"]]]]]},
         _sel("Logical_Switch", columns=["tunnel_key", "other_config", "description"])],
        [HV, {"op": "comment", "comment": "hello"}, {"op": "commit", "durable": False},
         {"op": "commit", "durable": True}, _sel("Ucast_Macs_Remote", columns=["MAC"])],
        [HV, {"op": "update", "table": "Logical_Switch", "where": [["_uuid", "==", _u("@0.0")]],
              "row": {"description": "red"}}],
        [HV, {"op": "delete", "table": "Ucast_Macs_Remote", "where": [["MAC", "==",
                                                                       "00:00:00:00:00:01"]]},
         _sel("Physical_Locator")],
        [HV, {"op": "delete", "table": "Logical_Switch", "where": []},
         {"op": "delete", "table": "Logical_Switch", "where": []}],
        [HV],
        [HV, _sel("Logical_Switch"), _sel("Logical_Switch", [False])],
    ],
    "versions-and-noops": [
        [HV, _ls("a", 1), _ls("b", 2)],
        [HV, _sel("Logical_Switch", columns=["_uuid", "_version", "name"])],
        # Updating to the same values changes nothing: same _version afterwards.
        [HV, {"op": "update", "table": "Logical_Switch", "where": [], "row": {"tunnel_key": 1}},
         {"op": "update", "table": "Logical_Switch", "where": [["name", "==", "a"]],
          "row": {"name": "a"}},
         _sel("Logical_Switch", columns=["_version", "name", "tunnel_key"])],
        [HV, _sel("Logical_Switch", columns=["_uuid", "_version", "name"])],
        [HV, {"op": "mutate", "table": "Logical_Switch", "where": [],
              "mutations": [["tunnel_key", "*=", 1]]}],
        [HV, _sel("Logical_Switch", columns=["_uuid", "_version", "name"])],
        [HV, _sel("Logical_Switch", columns=["tunnel_key"]),
         _sel("Logical_Switch", columns=["tunnel_key"], sort=["tunnel_key"])],
    ],
    "gc-and-refs": [
        # An unreferenced row of a non-root table disappears at commit.
        [HV, _loc("10.0.0.9"), _sel("Physical_Locator")],
        [HV, _sel("Physical_Locator")],
        [HV, _named(_ls("ls1", 1), "ls"), _loc("10.0.0.1", "l1"), _loc("10.0.0.2", "l2"),
         {"op": "insert", "table": "Physical_Locator_Set", "uuid-name": "set",
          "row": {"locators": ["set", [_nu("l1"), _nu("l2")]]}},
         {"op": "insert", "table": "Mcast_Macs_Remote",
          "row": {"MAC": "unknown-dst", "logical_switch": _nu("ls"), "locator_set": _nu("set")}},
         _ucast("00:00:00:00:00:01", _nu("ls"), _nu("l1"))],
        [HV, {"op": "delete", "table": "Logical_Switch", "where": []}],
        # Cascade: the set goes, and with it the locator only it referenced.
        [HV, {"op": "delete", "table": "Mcast_Macs_Remote", "where": []}],
        [HV, _sel("Physical_Locator", columns=["dst_ip"]),
         _sel("Physical_Locator_Set", columns=["locators"])],
        # References to rows that do not exist.
        [HV, _ucast("00:00:00:00:00:02", _u("@2.0"),
                    _u("11111111-2222-3333-4444-555555555555"))],
        [HV, _ucast("00:00:00:00:00:02", _nu("nobody"), _u("@2.1"))],
        [HV, _ucast("00:00:00:00:00:02", _u("@2.0"), _u("@2.1"))],
        [HV, {"op": "delete", "table": "Physical_Locator", "where": []}],
        # A row referenced twice.
        [HV, _ucast("00:00:00:00:00:03", _u("@2.0"), _u("@2.1"))],
        [HV, {"op": "delete", "table": "Logical_Switch", "where": []}],
        # Deleting the referrers and the referenced row together is fine.
        [HV, {"op": "delete", "table": "Ucast_Macs_Remote", "where": []},
         {"op": "delete", "table": "Logical_Switch", "where": []}],
        # Inserting a reference to a row deleted in the same transaction.
        [HV, _named(_ls("ls2", 2), "ls2"), _loc("10.0.0.3", "l3"),
         _ucast("00:00:00:00:00:04", _nu("ls2"), _nu("l3"))],
        [HV, {"op": "delete", "table": "Logical_Switch", "where": [["name", "==", "ls2"]]},
         _ucast("00:00:00:00:00:05", _u("@13.0"), _u("@13.1"))],
        # Moving the only reference to a locator elsewhere collects it.
        [HV, _loc("10.0.0.4", "l4"),
         {"op": "update", "table": "Ucast_Macs_Remote", "where": [],
          "row": {"locator": _nu("l4")}}],
    ],
    "physical-switch-tree": [
        [HV, {"op": "insert", "table": "Global", "uuid-name": "g",
              "row": {"switches": _nu("ps")}},
         {"op": "insert", "table": "Physical_Switch", "uuid-name": "ps",
          "row": {"name": "ps1", "tunnel_ips": "10.0.0.1",
                  "ports": ["set", [_nu("p1"), _nu("p2")]]}},
         {"op": "insert", "table": "Physical_Port", "uuid-name": "p1",
          "row": {"name": "eth1", "vlan_bindings": ["map", [[0, _nu("ls")]]]}},
         {"op": "insert", "table": "Physical_Port", "uuid-name": "p2", "row": {"name": "eth2"}},
         _named(_ls("ls1", 5000), "ls")],
        # A second Global row breaks maxRows.
        [HV, {"op": "insert", "table": "Global", "row": {}}],
        [HV, {"op": "mutate", "table": "Physical_Switch", "where": [],
              "mutations": [["ports", "delete", ["set", [_u("@0.3")]]]]}],
        [HV, _sel("Physical_Port", columns=["name"])],
        [HV, {"op": "delete", "table": "Logical_Switch", "where": []}],
        # Removing the switch from Global cascades down to the ports.
        [HV, {"op": "update", "table": "Global", "where": [],
              "row": {"switches": ["set", []]}},
         _sel("Physical_Port", columns=["name"])],
        [HV, {"op": "delete", "table": "Logical_Switch", "where": []}],
        [HV, {"op": "delete", "table": "Global", "where": []},
         {"op": "insert", "table": "Global", "row": {}}],
    ],
    "indexes": [
        [HV, _ls("ls1", 1), _ls("ls1", 2)],
        [HV, _ls("ls1", 1), _ls("ls2", 2)],
        [HV, _ls("ls1", 3)],
        [HV, {"op": "update", "table": "Logical_Switch", "where": [["name", "==", "ls2"]],
              "row": {"name": "ls1"}}],
        [HV, {"op": "update", "table": "Logical_Switch", "where": [["name", "==", "ls2"]],
              "row": {"name": "ls1", "tunnel_key": 9}},
         {"op": "update", "table": "Logical_Switch", "where": [["name", "==", "ls1"]],
          "row": {"description": "x"}}],
        # Swapping names in one transaction keeps the index unique.
        [HV, {"op": "update", "table": "Logical_Switch", "where": [["name", "==", "ls1"]],
              "row": {"name": "tmp"}},
         {"op": "update", "table": "Logical_Switch", "where": [["name", "==", "ls2"]],
          "row": {"name": "ls1"}},
         {"op": "update", "table": "Logical_Switch", "where": [["name", "==", "tmp"]],
          "row": {"name": "ls2"}}],
        [HV, _sel("Logical_Switch", columns=["name", "tunnel_key"])],
        # Delete then re-insert the same name in one transaction.
        [HV, {"op": "delete", "table": "Logical_Switch", "where": [["name", "==", "ls1"]]},
         _ls("ls1", 7)],
        # The multi-column index of Physical_Locator.
        [HV, _named(_ls("ls3", 3), "ls"), _loc("10.0.0.1", "a"), _loc("10.0.0.1", "b"),
         _ucast("00:00:00:00:00:01", _nu("ls"), _nu("a")),
         _ucast("00:00:00:00:00:02", _nu("ls"), _nu("b"))],
        # A duplicate that is garbage anyway does not count.
        [HV, _named(_ls("ls3", 3), "ls"), _loc("10.0.0.1", "a"), _loc("10.0.0.1", "b"),
         _ucast("00:00:00:00:00:01", _nu("ls"), _nu("a"))],
        [HV, _loc("10.0.0.1", "c"),
         _ucast("00:00:00:00:00:03", _u("@9.0"), _nu("c"))],
    ],
    "immutable": [
        [HV, _named(_ls("ls1", 1), "ls"), _loc("10.0.0.1", "l1"),
         {"op": "insert", "table": "Physical_Locator_Set", "uuid-name": "s",
          "row": {"locators": _nu("l1")}},
         {"op": "insert", "table": "Mcast_Macs_Remote",
          "row": {"MAC": "unknown-dst", "logical_switch": _nu("ls"), "locator_set": _nu("s")}}],
        [HV, {"op": "update", "table": "Physical_Locator_Set", "where": [],
              "row": {"locators": _u("@0.1")}}],
        [HV, {"op": "mutate", "table": "Physical_Locator_Set", "where": [],
              "mutations": [["locators", "insert", ["set", []]]]}],
        [HV, {"op": "update", "table": "Logical_Switch", "where": [],
              "row": {"_uuid": _u("@0.0")}}],
        [HV, {"op": "update", "table": "Logical_Switch", "where": [],
              "row": {"_version": _u("@0.0")}}],
        # Setting _uuid or _version on insert is accepted and ignored.
        [HV, {"op": "insert", "table": "Logical_Switch",
              "row": {"name": "ls2", "_uuid": _u("@0.0"), "_version": _u("@0.0")}}],
        [HV, {"op": "insert", "table": "Logical_Switch", "row": {"name": "ls3",
                                                                 "_uuid": "bad"}}],
    ],
    "uuids": [
        [HV, {"op": "insert", "table": "Logical_Switch", "uuid":
              "AAAAAAAA-1111-2222-3333-444444444444", "row": {"name": "a"}}],
        [HV, {"op": "insert", "table": "Logical_Switch", "uuid":
              "aaaaaaaa-1111-2222-3333-444444444444", "row": {"name": "b"}}],
        [HV, {"op": "insert", "table": "Physical_Locator", "uuid":
              "aaaaaaaa-1111-2222-3333-444444444444",
              "row": {"dst_ip": "1.1.1.1", "encapsulation_type": VXLAN}}],
        [HV, {"op": "insert", "table": "Logical_Switch", "uuid": "not-a-uuid",
              "row": {"name": "c"}}],
        [HV, {"op": "insert", "table": "Logical_Switch", "uuid": 5, "row": {"name": "c"}}],
        [HV, {"op": "delete", "table": "Logical_Switch", "where": []},
         {"op": "insert", "table": "Logical_Switch", "uuid":
          "aaaaaaaa-1111-2222-3333-444444444444", "row": {"name": "d"}}],
        [HV, {"op": "insert", "table": "Logical_Switch", "uuid":
              "bbbbbbbb-1111-2222-3333-444444444444", "row": {"name": "e"}},
         {"op": "delete", "table": "Logical_Switch", "where": [["name", "==", "e"]]},
         {"op": "insert", "table": "Logical_Switch", "uuid":
          "bbbbbbbb-1111-2222-3333-444444444444", "row": {"name": "f"}}],
        # uuid-name and uuid together; forward references see the given UUID.
        [HV, {"op": "insert", "table": "Logical_Switch", "uuid-name": "x",
              "uuid": "cccccccc-1111-2222-3333-444444444444", "row": {"name": "g"}},
         _loc("2.2.2.2", "l"), _ucast("00:00:00:00:00:01", _nu("x"), _nu("l")),
         _sel("Ucast_Macs_Remote", columns=["logical_switch"])],
        [HV, _ls("h", 1), {"op": "insert", "table": "Logical_Switch", "uuid-name": "h",
                           "row": {"name": "i"}},
         {"op": "insert", "table": "Logical_Switch", "uuid-name": "h", "row": {"name": "j"}}],
        [HV, {"op": "insert", "table": "Logical_Switch", "uuid-name": "9bad",
              "row": {"name": "k"}}],
        [HV, _ucast("00:00:00:00:00:02", _nu("9bad"), _nu("l"))],
        # A forward reference to a row inserted later in the transaction.
        [HV, _ucast("00:00:00:00:00:03", _nu("later"), _nu("loc")),
         _named(_ls("later", 3), "later"), _loc("3.3.3.3", "loc"),
         _sel("Ucast_Macs_Remote", [["MAC", "==", "00:00:00:00:00:03"]],
              columns=["logical_switch", "locator"])],
    ],
    "waits": [
        [HV, _ls("a", 1), _ls("b", 2)],
        [HV, {"op": "wait", "table": "Logical_Switch", "where": [], "columns": ["name"],
              "until": "==", "rows": [{"name": "a"}, {"name": "b"}]},
         {"op": "wait", "table": "Logical_Switch", "where": [], "columns": ["name"],
          "until": "!=", "rows": [{"name": "a"}]},
         {"op": "wait", "table": "Logical_Switch", "where": [["name", "==", "zzz"]],
          "until": "==", "rows": []},
         {"op": "wait", "table": "Logical_Switch", "where": [["name", "==", "a"]],
          "columns": ["name", "tunnel_key"], "until": "==",
          "rows": [{"name": "a", "tunnel_key": 1}, {"name": "a", "tunnel_key": 1}]}],
        [HV, {"op": "wait", "table": "Logical_Switch", "where": [], "columns": ["name"],
              "until": "==", "rows": [{"name": "a"}], "timeout": 0}],
        [HV, {"op": "wait", "table": "Logical_Switch", "where": [], "columns": ["name"],
              "until": "!=", "rows": [{"name": "a"}, {"name": "b"}], "timeout": 1000}],
        [HV, {"op": "wait", "table": "Logical_Switch", "where": [], "columns": ["name"],
              "until": "==", "rows": [{"name": "a"}]}],
        [HV, {"op": "wait", "table": "Logical_Switch", "where": [],
              "until": "==", "rows": [{"name": "a"}], "timeout": -1}],
        [HV, {"op": "wait", "table": "Logical_Switch", "where": [],
              "until": "<", "rows": [], "timeout": 0}],
        [HV, {"op": "wait", "table": "Logical_Switch", "where": [],
              "until": "==", "rows": [5], "timeout": 0}],
        [HV, {"op": "wait", "table": "Logical_Switch", "where": [],
              "until": "==", "rows": [{"nosuch": 5}], "timeout": 0}],
        [HV, {"op": "wait", "table": "Logical_Switch", "where": [], "columns": ["nosuch"],
              "until": "==", "rows": []}],
        [HV, {"op": "wait", "table": "Logical_Switch", "where": [], "until": "==",
              "rows": [], "timeout": 1.5}],
        # Without "columns", every column (even _uuid and _version) must match.
        [HV, {"op": "wait", "table": "Logical_Switch", "where": [], "until": "!=",
              "rows": [{"name": "a"}], "timeout": 0}],
        # A wait sees the transaction's own earlier changes.
        [HV, _ls("c", 3), {"op": "wait", "table": "Logical_Switch",
                           "where": [["name", "==", "c"]], "columns": ["tunnel_key"],
                           "until": "==", "rows": [{"tunnel_key": 3}], "timeout": 0}],
    ],
    "selects": [
        [HV, _ls("a", 1, description="x"), _ls("b", 1, description="x"), _ls("c", 2)],
        [HV, _sel("Logical_Switch", columns=["description"]),
         _sel("Logical_Switch", columns=["tunnel_key", "description"]),
         _sel("Logical_Switch", columns=[]),
         _sel("Logical_Switch", columns=["name"], sort=["tunnel_key", "name"])],
        [HV, _sel("Logical_Switch", columns=["nosuch"])],
        [HV, _sel("Logical_Switch", columns=["name", "name"])],
        [HV, _sel("Logical_Switch", columns=[5])],
        [HV, _sel("Logical_Switch", columns="name")],
        [HV, _sel("Logical_Switch", sort=["nosuch"])],
        [HV, _sel("Logical_Switch", [["tunnel_key", ">", 1]], columns=["name"]),
         _sel("Logical_Switch", [["tunnel_key", "<=", 1], ["name", "!=", "a"]],
              columns=["name"]),
         _sel("Logical_Switch", [["_uuid", "==", _u("@0.2")]], columns=["name"]),
         _sel("Logical_Switch", [["_uuid", "==", _u("@0.2")], ["name", "==", "a"]],
              columns=["name"])],
        [HV, _sel("Logical_Switch", [["nosuch", "==", 1]])],
        [HV, _sel("Logical_Switch", [["name", "~~", "a"]])],
        [HV, _sel("Logical_Switch", [["name", "==", 1]])],
        [HV, _sel("Logical_Switch", "all")],
    ],
    "malformed": [
        {"op": "select"},
        ["wrongdb", _sel("Logical_Switch")],
        [],
        [5],
        [HV, 5, {"op": "commit", "durable": True}],
        [HV, {"table": "Logical_Switch"}],
        [HV, {"op": 5}],
        [HV, {"op": "no such op"}],
        [HV, {"op": "frobnicate"}],
        [HV, {"op": "insert", "table": "Nope", "row": {}}],
        [HV, {"op": "insert", "table": "bad table", "row": {}}],
        [HV, {"op": "insert", "table": "Logical_Switch"}],
        [HV, {"op": "insert", "table": "Logical_Switch", "row": []}],
        [HV, {"op": "insert", "table": "Logical_Switch", "row": {"nosuch": 1}}],
        [HV, {"op": "insert", "table": "Logical_Switch", "row": {"name": 5}}],
        [HV, {"op": "insert", "table": "Logical_Switch", "row": {"name": None}}],
        [HV, {"op": "insert", "table": "Logical_Switch", "row": {"tunnel_key": "x"}}],
        [HV, {"op": "insert", "table": "Logical_Switch", "row": {"tunnel_key": 1.5}}],
        [HV, {"op": "insert", "table": "Logical_Switch",
              "row": {"tunnel_key": ["set", [1, 2]]}}],
        [HV, {"op": "insert", "table": "Logical_Switch", "row": {"name": ["set", []]}}],
        [HV, {"op": "insert", "table": "Logical_Switch", "row": {"other_config": ["k", "v"]}}],
        [HV, {"op": "insert", "table": "Logical_Switch",
              "row": {"other_config": ["map", [["k", "v"], ["k", "w"]]]}}],
        [HV, {"op": "insert", "table": "Physical_Locator",
              "row": {"dst_ip": "1.1.1.1", "encapsulation_type": "gre"}}],
        [HV, {"op": "insert", "table": "Physical_Locator", "row": {"dst_ip": "1.1.1.1"}}],
        [HV, {"op": "insert", "table": "Logical_Switch", "row": {}, "extra": 1}],
        [HV, {"op": "insert", "table": "Logical_Switch", "row": {"nosuch": 1}, "extra": 1}],
        [HV, {"op": "delete", "table": "Logical_Switch"}],
        [HV, {"op": "delete", "where": []}],
        [HV, {"op": "delete", "table": "Logical_Switch", "where": {}}],
        [HV, {"op": "update", "table": "Logical_Switch", "where": []}],
        [HV, {"op": "update", "table": "Logical_Switch", "where": [], "row": {"nosuch": 1}}],
        [HV, {"op": "mutate", "table": "Logical_Switch", "where": []}],
        [HV, {"op": "mutate", "table": "Logical_Switch", "where": [],
              "mutations": [["tunnel_key", "^=", 1]]}],
        [HV, {"op": "commit"}],
        [HV, {"op": "commit", "durable": "yes"}],
        [HV, {"op": "abort"}, _ls("x")],
        [HV, _ls("x"), {"op": "abort", "why": 1}],
        [HV, {"op": "comment"}],
        [HV, {"op": "comment", "comment": 5}],
        [HV, {"op": "assert"}],
        [HV, {"op": "assert", "lock": "my_lock"}],
        [HV, {"op": "assert", "lock": "not an id"}],
        [HV, _sel("Logical_Switch"), {"op": "select", "table": "Logical_Switch"}],
        # A JSON null is offending syntax like any other value ("syntax": "null"), unlike
        # an operation that is no object at all (no "syntax").
        [HV, None],
        [HV, {"op": None}],
        [HV, _sel("Logical_Switch", [None])],
        [HV, _sel("Logical_Switch", [["name", "==", None]])],
        [HV, {"op": "delete", "table": "Logical_Switch", "where": [True, None]}],
        [HV, {"op": "mutate", "table": "Logical_Switch", "where": [], "mutations": [None]}],
        [HV, {"op": "mutate", "table": "Logical_Switch", "where": [],
              "mutations": [["tunnel_key", "+=", None]]}],
        [HV, {"op": "mutate", "table": "Logical_Switch", "where": [],
              "mutations": [["other_config", "insert", ["map", [None]]]]}],
        [HV, {"op": "wait", "table": "Logical_Switch", "where": [], "until": "==",
              "rows": [None]}],
        [HV, {"op": "wait", "table": "Logical_Switch", "where": [], "until": "==",
              "rows": [{"name": None}]}],
        [HV, {"op": "insert", "table": "Logical_Switch",
              "row": {"name": "a", "other_config": ["map", [["k", None]]]}}],
        [HV, {"op": "insert", "table": "Logical_Switch",
              "row": {"name": "a", "other_config": ["map", [None]]}}],
        [HV, {"op": "update", "table": "Logical_Switch", "where": [],
              "row": {"tunnel_key": None}}],
    ],
    "mutations": [
        [HV, _ls("a", 9223372036854775807)],
        [HV, {"op": "mutate", "table": "Logical_Switch", "where": [],
              "mutations": [["tunnel_key", "+=", 1]]}],
        [HV, {"op": "mutate", "table": "Logical_Switch", "where": [],
              "mutations": [["tunnel_key", "/=", 0]]}],
        [HV, {"op": "mutate", "table": "Logical_Switch", "where": [],
              "mutations": [["tunnel_key", "-=", 7], ["tunnel_key", "%=", 10]]},
         _sel("Logical_Switch", columns=["tunnel_key"])],
        [HV, {"op": "mutate", "table": "Logical_Switch", "where": [],
              "mutations": [["name", "+=", 1]]}],
        [HV, {"op": "mutate", "table": "Logical_Switch", "where": [],
              "mutations": [["tunnel_key", "insert", ["set", [1, 2]]]]}],
        [HV, {"op": "mutate", "table": "Logical_Switch", "where": [],
              "mutations": [["other_config", "insert", ["map", [["a", "1"], ["b", "2"]]]],
                            ["other_config", "delete", ["set", ["a"]]]]},
         _sel("Logical_Switch", columns=["other_config"])],
        [HV, {"op": "mutate", "table": "Logical_Switch", "where": [["name", "==", "zz"]],
              "mutations": [["tunnel_key", "+=", 1]]}],
    ],
}

T = "txntest"


def _root(name: str, **row: Any) -> dict[str, Any]:
    return {"op": "insert", "table": "Root", "row": {"name": name, **row}}


def _target(a: int, b: str, name: str | None = None) -> dict[str, Any]:
    op: dict[str, Any] = {"op": "insert", "table": "Target", "row": {"a": a, "b": b}}
    if name:
        op["uuid-name"] = name
    return op


TEST_SCENARIOS: dict[str, list[Any]] = {
    "weak-refs": [
        [T, _target(1, "x", "t1"), _target(2, "y", "t2"),
         _root("r1", targets=["set", [_nu("t1"), _nu("t2")]], target=_nu("t1"),
               target_map=["map", [["a", _nu("t1")], ["b", _nu("t2")]]])],
        # Deleting a target removes the weak references to it.
        [T, {"op": "delete", "table": "Target", "where": [["a", "==", 1]]},
         _sel("Root", columns=["targets", "target", "target_map"])],
        [T, _sel("Root", columns=["targets", "target", "target_map"])],
        # References to rows that never existed vanish silently.
        [T, _root("r2", targets=_u("11111111-2222-3333-4444-555555555555"),
                  target=_nu("ghost"))],
        [T, _sel("Root", [["name", "==", "r2"]], columns=["targets", "target"])],
        # A required weak reference whose target goes away.
        [T, _target(3, "z", "t3"), {"op": "insert", "table": "Holder",
                                    "row": {"required": _nu("t3")}}],
        [T, {"op": "delete", "table": "Target", "where": [["a", "==", 3]]}],
        [T, {"op": "delete", "table": "Target", "where": [["a", "==", 3]]},
         {"op": "delete", "table": "Holder", "where": []}],
        # The default of a required weak reference is the all-zeros UUID.
        [T, {"op": "insert", "table": "Holder", "row": {}}],
        [T, {"op": "insert", "table": "Holder",
             "row": {"required": _u("11111111-2222-3333-4444-555555555555")}}],
        # A weak reference to a row deleted in the same transaction.
        [T, _target(4, "w", "t4")],
        [T, {"op": "delete", "table": "Target", "where": [["a", "==", 4]]},
         _root("r3", targets=_u("@10.0"))],
        [T, _sel("Root", [["name", "==", "r3"]], columns=["targets"])],
        # A weak column declared immutable is mutable anyway.
        [T, _target(5, "v", "t5"), {"op": "insert", "table": "Holder",
                                    "row": {"required": _nu("t5"), "frozen_weak": _nu("t5")}}],
        [T, {"op": "update", "table": "Holder", "where": [],
             "row": {"frozen_weak": ["set", []]}}],
        # Weak references between two rows of the same table and to itself.
        [T, {"op": "insert", "table": "Holder", "uuid-name": "h",
             "row": {"required": _nu("t6")}},
         _target(6, "u", "t6"),
         {"op": "update", "table": "Target", "where": [["a", "==", 6]],
          "row": {"holder": _nu("h")}}],
        [T, {"op": "delete", "table": "Holder", "where": [["required", "includes",
                                                          _u("@15.1")]]},
         _sel("Target", columns=["a", "holder"])],
        [T, {"op": "delete", "table": "Target", "where": [["a", "==", 6]]}],
    ],
    "strong-maps-and-cycles": [
        [T, {"op": "insert", "table": "Child", "uuid-name": "c1",
             "row": {"name": "c1", "sibling": _nu("c2"),
                     "grandchildren": ["set", [_nu("g1"), _nu("g2")]]}},
         {"op": "insert", "table": "Child", "uuid-name": "c2",
          "row": {"name": "c2", "sibling": _nu("c1")}},
         {"op": "insert", "table": "Grandchild", "uuid-name": "g1", "row": {"value": 1}},
         {"op": "insert", "table": "Grandchild", "uuid-name": "g2", "row": {"value": 2}},
         _root("r", child_map=["map", [[_nu("c1"), 1]]])],
        # A cycle of non-root rows survives losing its root reference (as in OVS).
        [T, {"op": "update", "table": "Root", "where": [], "row": {"child_map": ["map", []]}}],
        [T, _sel("Child", columns=["name"]), _sel("Grandchild", columns=["value"])],
        # A child referencing only itself is garbage.
        [T, {"op": "insert", "table": "Child", "uuid-name": "me",
             "row": {"name": "self", "sibling": _nu("me")}}],
        [T, _root("r2", child=_nu("c"), children=["set", [_nu("c")]]),
         {"op": "insert", "table": "Child", "uuid-name": "c", "row": {"name": "c3"}}],
        [T, {"op": "update", "table": "Root", "where": [["name", "==", "r2"]],
             "row": {"child": ["set", []]}}],
        [T, _sel("Child", [["name", "==", "c3"]], columns=["name"])],
        [T, {"op": "delete", "table": "Root", "where": [["name", "==", "r2"]]},
         _sel("Child", [["name", "==", "c3"]], columns=["name"])],
        [T, {"op": "delete", "table": "Child", "where": [["name", "==", "c1"]]}],
        [T, {"op": "delete", "table": "Child", "where": []}, _sel("Grandchild")],
    ],
    "limits-and-constraints": [
        [T, _target(1, "a"), _target(2, "b"), _target(3, "c")],
        [T, _target(4, "d")],
        [T, {"op": "delete", "table": "Target", "where": [["a", "==", 1]]}, _target(4, "d")],
        [T, _target(5, "e"), _target(6, "f"),
         {"op": "delete", "table": "Target", "where": [["a", "<", 4]]}],
        [T, _target(4, "d")],
        [T, {"op": "update", "table": "Target", "where": [["a", "==", 5]],
             "row": {"a": 4, "b": "d"}}],
        [T, {"op": "update", "table": "Target", "where": [["a", "==", 5]],
             "row": {"a": 4}}],
        [T, {"op": "insert", "table": "Enumed", "row": {"level": 1}}],
        [T, {"op": "insert", "table": "Enumed", "row": {"color": "red"}}],
        [T, {"op": "insert", "table": "Enumed", "row": {"color": "blue", "level": 1}}],
        [T, {"op": "insert", "table": "Enumed", "row": {"color": "red", "level": 10}}],
        [T, {"op": "insert", "table": "Enumed", "row": {"color": "red", "level": 1}},
         {"op": "insert", "table": "Enumed", "row": {"color": "green", "level": 9}},
         {"op": "insert", "table": "Enumed", "row": {"color": "green", "level": 5}}],
        [T, {"op": "insert", "table": "Enumed", "row": {"color": "red", "level": 1}},
         {"op": "insert", "table": "Enumed", "row": {"color": "green", "level": 9}},
         {"op": "insert", "table": "Enumed", "row": {"color": "green", "level": 5}},
         {"op": "delete", "table": "Enumed", "where": [["level", "==", 5]]}],
        [T, _root("n", num=101)],
        [T, _root("n", num=-1)],
        [T, _root("n", ratio=2.5)],
        [T, _root("n", tags=["set", ["a", "b", "c", "d"]])],
        [T, _root("n", tags="toolongtag")],
        [T, _root("n", fixed="f", num=100, ratio=-1.5, tags=["set", ["a", "b"]],
                  kv=["map", [["x", "y"]]], flag=True)],
        [T, {"op": "update", "table": "Root", "where": [], "row": {"fixed": "g"}}],
        [T, {"op": "mutate", "table": "Root", "where": [], "mutations": [["fixed", "insert",
                                                                         "x"]]}],
        [T, {"op": "mutate", "table": "Root", "where": [],
             "mutations": [["num", "+=", 1]]}],
        [T, {"op": "mutate", "table": "Root", "where": [],
             "mutations": [["tags", "insert", ["set", ["c", "d"]]]]}],
        [T, {"op": "mutate", "table": "Root", "where": [],
             "mutations": [["num", "-=", 1], ["ratio", "+=", 1]]},
         _sel("Root", columns=["num", "ratio"])],
    ],
}


# Scenarios where ovsdb-server's choice among several errors, or its order of the rows a
# unique index error names, is deterministic (the first differing column it compares is a
# user column): we follow its hash order exactly, so compare without canonical forms.
STRICT_SCENARIOS: dict[str, tuple[str, list[Any]]] = {
    "first-error-in-ovs-order": ("test", [
        [T, {"op": "insert", "table": "Enumed", "row": {}}],
        [T, {"op": "insert", "table": "Enumed", "row": {"note": "x"}}],
        [T, _root("n", num=101, tags="toolongtag")],
        [T, _root("n", num=101, nosuch=1)],
        [T, _root("n", zzz=1, nosuch=1, ratio=9.5)],
        [T, {"op": "update", "table": "Root", "where": [],
             "row": {"_uuid": _u("11111111-2222-3333-4444-555555555555"), "fixed": "x",
                     "_version": _u("11111111-2222-3333-4444-555555555555")}}],
        [T, {"op": "wait", "table": "Root", "where": [], "until": "==",
             "rows": [{"num": 101, "tags": "toolongtag"}]}],
        [T, {"op": "insert", "table": "Target", "row": {"a": 9, "b": "z"}, "bogus": 1,
             "more": 2}],
        [T, {"op": "insert", "table": "Target", "row": {"a": 9, "b": "z"}, "bogus": 1,
             "more": 2, "evenmore": 3}],
    ]),
    "index-error-row-order": ("hardware_vtep", [
        [HV, _ls("ls1", 1), _ls("ls1", 2)],
        [HV, _ls("ls1", 2), _ls("ls1", 1)],
        [HV, _ls("ls1", 2, description="b"), _ls("ls1", 2, description="a")],
        [HV, _ls("ls1", 2, description="a"), _ls("ls2", 2, description="b")],
        [HV, _ls("ls1", 3)],
        [HV, {"op": "update", "table": "Logical_Switch", "where": [["name", "==", "ls2"]],
              "row": {"name": "ls1"}}],
        [HV, {"op": "update", "table": "Logical_Switch", "where": [["name", "==", "ls2"]],
              "row": {"name": "ls1", "tunnel_key": 1}},
         {"op": "update", "table": "Logical_Switch", "where": [["name", "==", "ls1"]],
          "row": {"description": "z"}}],
        [HV, {"op": "update", "table": "Logical_Switch", "where": [["name", "==", "ls1"]],
              "row": {"tunnel_key": 1}},
         {"op": "update", "table": "Logical_Switch", "where": [["name", "==", "ls2"]],
          "row": {"name": "ls1", "tunnel_key": 5}}],
    ]),
}

TEST_SCENARIOS["edge-cases"] = [
    [T, _target(1, "a", "t1"), _target(2, "b", "t2"),
     _root("r", weak_keys=["map", [[_nu("t1"), 1], [_nu("t2"), 2]]])],
    [T, {"op": "delete", "table": "Target", "where": [["a", "==", 1]]}],
    [T, _sel("Root", columns=["weak_keys"])],
    # An unreferenced inserted child is collected with what only it referenced...
    [T, {"op": "insert", "table": "Child", "row": {"name": "orphan", "grandchildren": _nu("g")}},
     {"op": "insert", "table": "Grandchild", "uuid-name": "g", "row": {"value": 7}}],
    # ...but its references are checked first.
    [T, {"op": "insert", "table": "Child",
         "row": {"name": "orphan", "sibling": _u("11111111-2222-3333-4444-555555555555")}}],
    [T, _root("x", children=["set", [_nu("c")]], child=_nu("c")),
     {"op": "insert", "table": "Child", "uuid-name": "c", "row": {"name": "cc"}}],
    [T, {"op": "delete", "table": "Child", "where": []}],
    # Operations see the transaction's own rows, by named-uuid too.
    [T, {"op": "insert", "table": "Target", "row": {"a": 9, "b": "z"}, "uuid-name": "q"},
     {"op": "update", "table": "Target", "where": [["_uuid", "==", _nu("q")]],
      "row": {"b": "zz"}},
     _sel("Target", [["_uuid", "==", _nu("q")]], columns=["b"])],
    [T, {"op": "delete", "table": "Target", "where": [["a", "==", 9]]},
     {"op": "update", "table": "Target", "where": [["a", "==", 9]], "row": {"b": "q"}},
     {"op": "mutate", "table": "Target", "where": [["a", "==", 9]],
      "mutations": [["a", "+=", 1]]}],
    # A uuid-name given a "uuid" after a forward reference to it: the reference dangles.
    [T, _root("fwr", child=_nu("c9")),
     {"op": "insert", "table": "Child", "uuid-name": "c9",
      "uuid": "eeeeeeee-1111-2222-3333-444444444444", "row": {"name": "c9"}}],
    [T, {"op": "mutate", "table": "Target", "where": [],
         "mutations": [["a", "*=", 4611686018427387904]]}],
    [T, _target(1, "a"), _target(3, "c")],
]

SERVER_SCENARIOS: dict[str, list[Any]] = {
    "reserved-database": [
        ["_Server", _sel("Database"), {"op": "insert", "table": "Database", "row": {}}],
        ["_Server", {"op": "insert", "table": "Database",
                     "row": {"name": "x", "model": "standalone"}}],
        ["_Server", {"op": "comment", "comment": "x"}, {"op": "commit", "durable": False}],
        ["_Server", {"op": "delete", "table": "Database", "where": [], "x": 1}],
        ["_Server", {"op": "delete", "table": "Database", "where": []}],
        ["_Server", {"op": "wait", "table": "Database", "where": [], "until": "==",
                     "rows": []}, {"op": "assert", "lock": "x"}],
    ],
}


def _scenarios() -> list[Any]:
    out = []
    for name, txns in HV_SCENARIOS.items():
        out.append(pytest.param("hardware_vtep", txns, True, id=f"hv-{name}"))
    for name, txns in TEST_SCENARIOS.items():
        out.append(pytest.param("test", txns, True, id=f"test-{name}"))
    for name, txns in SERVER_SCENARIOS.items():
        out.append(pytest.param("_server", txns, True, id=f"server-{name}"))
    for name, (schema, txns) in STRICT_SCENARIOS.items():
        out.append(pytest.param(schema, txns, False, id=f"strict-{name}"))
    return out


@pytest.fixture(scope="module")
def schemas(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("schema")
    out = {"test": TEST_SCHEMA}
    for name in ("hardware_vtep", "_server"):
        out[name] = d / f"{name}.ovsschema"
        out[name].write_text(bundled_schema_text(name))
    return out


@pytest.mark.skipif(OVSDB_TOOL is None, reason="ovsdb-tool (Debian openvswitch) not installed")
@pytest.mark.parametrize(("schema_name", "txns", "canonical"), _scenarios())
def test_same_results_as_ovsdb_tool(schema_name: str, txns: list[Any], canonical: bool,
                                    schemas: dict[str, Path], tmp_path: Path) -> None:
    schema = schemas[schema_name]
    txns = [*txns, _select_all(schema)]
    theirs = normalize(run_ovs(schema, txns, tmp_path), canonical)
    ours = normalize(run_ours(schema, txns), canonical)
    for i, (t, a, b) in enumerate(zip(txns, theirs, ours, strict=True)):
        assert b == a, f"transaction {i}: {orjson.dumps(t).decode()}"


# --- random sequences ---------------------------------------------------------------------------
# The transactions of tests/unit/test_txn_properties.py, every insert naming its row's UUID
# so that both databases hold the same rows, run through ovsdb-tool and, in process, through
# our engine.

sys.path.insert(0, str(Path(__file__).parent.parent / "unit"))
from test_txn_properties import Gen  # noqa: E402


def _same(theirs: Any, ours: Any) -> bool:
    """Equal, except that error details may differ where several errors were possible and
    ovsdb-server picks one in its hash order (two bad rows, say): the tags must agree."""
    if isinstance(theirs, dict) and isinstance(ours, dict) and "error" in theirs:
        return theirs.get("error") == ours.get("error")
    if isinstance(theirs, list) and isinstance(ours, list):
        return len(theirs) == len(ours) and all(map(_same, theirs, ours))
    return bool(theirs == ours)


def _ovs_transact(db: Path, txn: Any) -> Any:
    assert OVSDB_TOOL is not None
    out = subprocess.run([OVSDB_TOOL, "transact", str(db), orjson.dumps(txn).decode()],
                         check=True, capture_output=True, text=True)
    return orjson.loads(out.stdout)


@pytest.mark.skipif(OVSDB_TOOL is None, reason="ovsdb-tool (Debian openvswitch) not installed")
@pytest.mark.parametrize("schema_name", ["hardware_vtep", "test"])
@settings(max_examples=25, deadline=None, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_sequences_match_ovsdb_tool(schema_name: str, schemas: dict[str, Path],
                                           tmp_path: Path, data: st.DataObject) -> None:
    assert OVSDB_TOOL is not None
    schema = schemas[schema_name]
    ovs_db = tmp_path / "random.db"
    ovs_db.unlink(missing_ok=True)
    subprocess.run([OVSDB_TOOL, "create", str(ovs_db), str(schema)], check=True)
    # The schema as ovsdb-tool stored it (its members in hash order), since the order in
    # which ovsdb-server walks the columns decides which of several errors it reports.
    db = Database(DatabaseSchema.from_text(ovs_db.read_text().split("\n")[1]))
    counter = itertools.count(1)
    uuids = (f"{next(counter):08x}-0000-4000-8000-000000000000" for _ in itertools.count())
    history = []
    for _ in range(data.draw(st.integers(1, 10))):
        gen = Gen(data, db, uuids, ephemeral=False)
        txn = [db.schema.name, *(gen.op() for _ in range(data.draw(st.integers(1, 4))))]
        history.append(orjson.dumps(txn).decode())
        theirs = normalize([_ovs_transact(ovs_db, txn)])[0]
        out = execute(db, txn, triggers=False)
        if out.changes is not None:
            db.apply(out.changes)
        ours = normalize([orjson.loads(orjson.dumps(out.result))])[0]
        assert _same(theirs, ours), f"{orjson.dumps(txn).decode()}\n{theirs}\n{ours}"
    final = _select_all(schema)
    theirs, ours = normalize([_ovs_transact(ovs_db, final),
                              orjson.loads(orjson.dumps(execute(db, final).result))])
    for table, a, b in zip(final[1:], theirs, ours, strict=True):
        assert a == b, (f"{table['table']}: ovsdb-tool has {a}, we have {b} after\n"
                        + "\n".join(history))

