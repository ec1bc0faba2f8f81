"""Random transactions keep every database invariant.

Hypothesis draws sequences of transactions (inserts with named-uuid forward references,
updates, mutations, deletes, selects, waits, some of them ill-formed) against
hardware_vtep and a small schema with weak references, maxRows, multi-column indexes and
non-root tables. After every commit the database must satisfy its schema, hold no
reference to a missing row, have no unreferenced non-root row, keep its indexes unique
and its derived structures (reference counts, weak back-references, indexes) exact; a
transaction that fails must leave it exactly as it was.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwvtep.ovsdb.database import Database
from hwvtep.ovsdb.schema import ColumnSchema, DatabaseSchema, TableSchema, bundled_schema
from hwvtep.ovsdb.transaction import execute
from hwvtep.ovsdb.types import BOOLEAN, INTEGER, REAL, STRING, UUID, BaseType, ColumnType

TEST_SCHEMA = Path(__file__).parent.parent / "data" / "txn_test.ovsschema"
GHOST = "11111111-2222-4333-8444-555555555555"
NAMES = ["n0", "n1", "n2", "n3"]


def _schemas() -> dict[str, Any]:
    return {"hardware_vtep": bundled_schema("hardware_vtep"),
            "txntest": DatabaseSchema.from_text(TEST_SCHEMA.read_text())}


SCHEMAS = _schemas()


class Gen:
    """Draws JSON operations for a database's current state."""

    def __init__(self, data: st.DataObject, db: Database,
                 uuids: Iterator[str] | None = None, ephemeral: bool = True) -> None:
        self.data = data
        self.db = db
        self.draw = data.draw
        # When given, every insert names its row's UUID (so that two databases fed the
        # same operations have the same rows).
        self.uuids = uuids
        # Whether to use ephemeral columns (ovsdb-tool forgets them between its runs).
        self.ephemeral = ephemeral
        # uuid-name -> table, for the inserts drawn so far in this transaction
        self.named: dict[str, str] = {}
        # names referred to before any insert had them: never given to a later insert, so
        # that no row can refer to its own UUID in another table (which ovsdb-server lets
        # dangle and we refuse)
        self.referenced: set[str] = set()

    def sometimes_wrong(self) -> bool:
        return self.draw(st.integers(0, 59)) == 37  # (hypothesis favours 0 and the ends)

    def atom(self, base: BaseType) -> Any:
        t = base.type
        if base.enum is not None and not self.sometimes_wrong():
            return self.draw(st.sampled_from(base.enum))
        if t == STRING:
            if base.max_length < 100 and not self.sometimes_wrong():
                return self.draw(st.sampled_from(["", "a", "b", "ab"]))
            return self.draw(st.sampled_from(
                ["", "a", "b", "red", "green", "10.0.0.1", "10.0.0.2", "toolongtag"]))
        if t == INTEGER:
            lo, hi = max(base.min_integer, -3), min(base.max_integer, 12)
            if not self.sometimes_wrong():
                return self.draw(st.integers(lo, max(lo, hi)))
            return self.draw(st.sampled_from([-1, 0, 100, 101, 2**62]))
        if t == REAL:
            return self.draw(st.sampled_from([-2.5, -1.5, 0.5, 1.5, 2.5]))
        if t == BOOLEAN:
            return self.draw(st.booleans())
        assert t == UUID
        if self.sometimes_wrong():
            # A reference to a name no insert in this transaction has (yet), or to nothing.
            ref = self.draw(st.sampled_from(
                [["uuid", GHOST]] + [["named-uuid", n] for n in [*NAMES, "x0"]
                                     if n not in self.named]))
            if ref[0] == "named-uuid":
                self.referenced.add(ref[1])
            return ref
        choices: list[Any] = [["named-uuid", n] for n, t in self.named.items()
                              if t == base.ref_table]
        if base.ref_table is not None:
            choices += [["uuid", u] for u in self.db.tables[base.ref_table]]
        if not choices:
            return ["uuid", GHOST]
        return self.draw(st.sampled_from(choices))

    def value(self, ctype: ColumnType) -> Any:
        hi = min(ctype.n_max, 3)
        if self.sometimes_wrong():
            n = self.draw(st.integers(0, 4))
        else:
            n = self.draw(st.integers(ctype.n_min, max(ctype.n_min, hi)))
        if ctype.value is not None:
            pairs: dict[str, Any] = {}
            for _ in range(n):
                k = self.atom(ctype.key)
                pairs[repr(k)] = [k, self.atom(ctype.value)]
            return ["map", list(pairs.values())]
        if n == 1 and self.draw(st.booleans()):
            return self.atom(ctype.key)
        atoms: dict[str, Any] = {}
        for _ in range(n):
            a = self.atom(ctype.key)
            atoms[repr(a)] = a
        if self.sometimes_wrong():
            return ["set", [self.atom(ctype.key) for _ in range(n)]]
        return ["set", list(atoms.values())]

    def columns(self, table: TableSchema) -> list[ColumnSchema]:
        return [c for c in table.user_columns if self.ephemeral or not c.ephemeral]

    def row(self, table: TableSchema) -> dict[str, Any]:
        usable = self.columns(table)
        cols = self.draw(st.lists(st.sampled_from(usable), max_size=4,
                                  unique=True)) if usable else []
        # Required references (their default, the all-zeros UUID, refers to nothing) and
        # columns whose default breaks their constraints.
        bad_defaults = {n for n, _ in self.db.info[table.name].bad_defaults}
        cols += [c for c in self.columns(table)
                 if ((c.type.key.ref_table and c.type.n_min == 1) or c.name in bad_defaults)
                 and c not in cols and not self.sometimes_wrong()]
        return {c.name: self.value(c.type) for c in cols}

    def where(self, table: TableSchema) -> list[Any]:
        rows = list(self.db.tables[table.name])
        kind = self.draw(st.sampled_from([0, 1, 1, 1, 2]))
        if kind == 0 or not rows:
            return []
        if kind == 1 or not self.columns(table):
            return [["_uuid", "==", ["uuid", self.draw(st.sampled_from(rows))]]]
        col = self.draw(st.sampled_from(self.columns(table)))
        if col.type.is_scalar and col.type.key.type != UUID:
            return [[col.name, self.draw(st.sampled_from(["==", "!="])),
                     self.atom(col.type.key)]]
        return [[col.name, "!=", self.value(col.type)]]

    def mutation(self, table: TableSchema) -> list[Any]:
        cols = [c for c in self.columns(table)
                if not c.type.is_scalar or c.type.key.type in (INTEGER, REAL)]
        if not cols or self.sometimes_wrong():
            cols = self.columns(table) or list(table.user_columns)
        col = self.draw(st.sampled_from(cols))
        ct = col.type
        if ct.key.type in (INTEGER, REAL) and ct.value is None and (
                ct.is_scalar or self.draw(st.booleans())):
            mutator = self.draw(st.sampled_from(["+=", "-=", "*=", "/=", "%="]))
            return [col.name, mutator, self.atom(ct.key)]
        if ct.is_scalar and not self.sometimes_wrong():
            return [col.name, "+=", 1] if ct.key.type == INTEGER else ["nosuch", "+=", 1]
        return [col.name, self.draw(st.sampled_from(["insert", "delete"])),
                self.value(ColumnType(ct.key, ct.value, 0, 4))]

    def op(self) -> dict[str, Any]:
        schema = self.db.schema
        table = schema.tables[self.draw(st.sampled_from(sorted(schema.tables)))]
        kind = self.draw(st.sampled_from(
            ["insert"] * 8 + ["update"] * 3 + ["mutate"] * 3 + ["delete"] * 2
            + ["select", "wait", "comment"]))
        if self.sometimes_wrong():
            kind = "bad"
        t = table.name
        if kind == "insert":
            op: dict[str, Any] = {"op": "insert", "table": t, "row": self.row(table)}
            if self.uuids is not None:
                op["uuid"] = next(self.uuids)
            if self.draw(st.integers(0, 2)):
                free = [n for n in NAMES if n not in self.named and n not in self.referenced]
                if self.sometimes_wrong() or not free:
                    free = NAMES
                name = self.draw(st.sampled_from(free))
                op["uuid-name"] = name
                self.named.setdefault(name, t)
            return op
        if kind == "update":
            return {"op": "update", "table": t, "where": self.where(table),
                    "row": self.row(table)}
        if kind == "mutate":
            return {"op": "mutate", "table": t, "where": self.where(table),
                    "mutations": [self.mutation(table)
                                  for _ in range(self.draw(st.integers(1, 2)))]}
        if kind == "delete":
            return {"op": "delete", "table": t, "where": self.where(table)}
        if kind == "select":
            return {"op": "select", "table": t, "where": self.where(table)}
        if kind == "wait":
            return {"op": "wait", "table": t, "where": [["_uuid", "==", ["uuid", GHOST]]],
                    "until": self.draw(st.sampled_from(["==", "=="])), "rows": [],
                    "columns": ["_uuid"], "timeout": 0}
        if kind == "comment":
            return {"op": "comment", "comment": "c"}
        return self.draw(st.sampled_from([
            {"op": "insert", "table": "Nope", "row": {}},
            {"op": "insert", "table": t, "row": {"nosuch": 1}},
            {"op": "update", "table": t, "where": [], "row": {"_uuid": ["uuid", GHOST]}},
            {"op": "select", "table": t, "where": [["nosuch", "==", 1]]},
            {"op": "delete", "table": t},
            {"op": "frob"},
            [],
        ]))


def _state(db: Database) -> Any:
    return ({t: dict(rows) for t, rows in db.tables.items()}, copy.deepcopy(db.refs),
            copy.deepcopy(db.weak_in), copy.deepcopy(db.indexes))


def _same_rows(a: dict[str, dict[str, Any]], b: dict[str, dict[str, Any]]) -> bool:
    return a.keys() == b.keys() and all(
        a[t].keys() == b[t].keys() and all(a[t][u] is b[t][u] for u in a[t]) for t in a)


@pytest.mark.parametrize("schema_name", sorted(SCHEMAS))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_transactions_keep_the_invariants(schema_name: str, data: st.DataObject) -> None:
    db = Database(SCHEMAS[schema_name])
    name = db.schema.name
    for _ in range(data.draw(st.integers(1, 20))):
        gen = Gen(data, db)
        ops = [gen.op() for _ in range(data.draw(st.integers(1, 5)))]
        if all(isinstance(op, dict) and op.get("op") == "insert" for op in ops):
            # References to rows inserted later in the transaction are as good.
            ops = data.draw(st.permutations(ops))
        before = _state(db)
        out = execute(db, [name, *ops], triggers=False)
        assert isinstance(out.result, list)
        assert len(out.result) in (len(ops), len(ops) + 1)
        failed = any(isinstance(r, dict) and "error" in r for r in out.result)
        if failed:
            assert out.changes is None
            i = next(i for i, r in enumerate(out.result) if isinstance(r, dict) and "error" in r)
            assert all(r is None for r in out.result[i + 1:])
        else:
            assert len(out.result) == len(ops)
        # Executing never changes the database by itself.
        after = _state(db)
        assert _same_rows(before[0], after[0]) and before[1:] == after[1:]
        if out.changes is None:
            continue
        db.apply(out.changes)
        assert db.consistency_errors() == []
        for tname, rows in out.changes.items():
            for u, (old, new) in rows.items():
                assert (old is None) == (u not in before[0][tname])
                assert old != new
                if new is not None:
                    assert db.tables[tname][u] is new
                    if old is not None:
                        assert new["_version"] != old["_version"]
                else:
                    assert u not in db.tables[tname]
        # Root rows only go away through a delete of their table.
        deleted_tables = {op.get("table") for op in ops
                          if isinstance(op, dict) and op.get("op") == "delete"}
        for tname, ti in db.info.items():
            if ti.is_root and tname not in deleted_tables:
                assert before[0][tname].keys() <= db.tables[tname].keys()
        # Unchanged rows are the very same objects.
        for tname, table in db.tables.items():
            changed = out.changes.get(tname, {})
            for u, r in table.items():
                if u not in changed:
                    assert before[0][tname][u] is r
