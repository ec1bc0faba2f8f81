"""Database: rows stored by apply(), and the structures derived from them kept exact."""

from __future__ import annotations

from pathlib import Path

import pytest

from hwvtep.ovsdb.database import Database, Row, TableInfo, datum_parser, index_key
from hwvtep.ovsdb.errors import OvsdbError
from hwvtep.ovsdb.schema import DatabaseSchema, bundled_schema
from hwvtep.ovsdb.types import ColumnType

TEST_SCHEMA = Path(__file__).parent.parent / "data" / "txn_test.ovsschema"

U1 = "11111111-0000-4000-8000-000000000001"
U2 = "11111111-0000-4000-8000-000000000002"
U3 = "11111111-0000-4000-8000-000000000003"
V = "99999999-0000-4000-8000-000000000000"


@pytest.fixture
def db() -> Database:
    return Database(DatabaseSchema.from_text(TEST_SCHEMA.read_text()))


def row(db: Database, table: str, uuid: str, **values: tuple[object, ...]) -> Row:
    r = dict(db.info[table].defaults)
    r.update(values)
    r["_uuid"] = (uuid,)
    r["_version"] = (V,)
    return r


def test_table_info_of_hardware_vtep() -> None:
    db = Database(bundled_schema("hardware_vtep"))
    ucast = db.info["Ucast_Macs_Remote"]
    assert ucast.is_root
    assert {(r.column, r.ref_table, r.scalar) for r in ucast.strong} == {
        ("logical_switch", "Logical_Switch", True), ("locator", "Physical_Locator", True)}
    assert list(ucast.defaults) == ["MAC", "logical_switch", "locator", "ipaddr",
                                    "_uuid", "_version"]
    assert db.info["Physical_Locator_Set"].immutable == {"locators", "_uuid", "_version"}
    # The enum of encapsulation_type does not admit the default "".
    assert [n for n, _ in db.info["Physical_Locator"].bad_defaults] == ["encapsulation_type"]
    assert set(ucast.ovs_columns) == set(ucast.schema.columns)
    assert not db.has_weak


def test_table_info_weak_columns(db: Database) -> None:
    root = db.info["Root"]
    weak = {w.column: (w.key_table, w.value_table, w.n_min, w.is_map) for w in root.weak}
    assert weak == {"targets": ("Target", None, 0, False), "target": ("Target", None, 0, False),
                    "target_map": (None, "Target", 0, True),
                    "weak_keys": ("Target", None, 0, True)}
    # Declared immutable, but a weak reference column is always mutable.
    assert "frozen_weak" not in db.info["Holder"].immutable
    assert "fixed" in root.immutable
    assert db.has_weak


def test_apply_insert_update_delete_keeps_reference_counts(db: Database) -> None:
    c1 = row(db, "Child", U1, name=("c1",))
    r = row(db, "Root", U2, name=("r",), children=(U1,), child=(U1,),
            child_map=((U1, 5),))
    db.apply({"Child": {U1: (None, c1)}, "Root": {U2: (None, r)}})
    assert db.tables["Root"][U2] is r
    assert db.ref_count("Child", U1) == 3
    assert db.consistency_errors() == []
    r2 = dict(r, children=(), child_map=())
    db.apply({"Root": {U2: (r, r2)}})
    assert db.ref_count("Child", U1) == 1
    db.apply({"Root": {U2: (r2, None)}, "Child": {U1: (c1, None)}})
    assert db.refs == {t: {} for t in db.tables}
    assert len(db) == 0


def test_self_references_do_not_count(db: Database) -> None:
    c = row(db, "Child", U1, sibling=(U1,))
    r = row(db, "Root", U2, child=(U1,))
    db.apply({"Child": {U1: (None, c)}, "Root": {U2: (None, r)}})
    assert db.ref_count("Child", U1) == 1


def test_delete_referrer_after_referenced_in_one_change(db: Database) -> None:
    c = row(db, "Child", U1)
    r = row(db, "Root", U2, child=(U1,))
    db.apply({"Child": {U1: (None, c)}, "Root": {U2: (None, r)}})
    # The referenced row comes first in the change: counts must still end at zero.
    db.apply({"Child": {U1: (c, None)}, "Root": {U2: (r, None)}})
    assert db.refs["Child"] == {}


def test_weak_back_references(db: Database) -> None:
    t1 = row(db, "Target", U1, a=(1,), b=("x",))
    r = row(db, "Root", U2, targets=(U1,), target=(U1,), weak_keys=((U1, 3),))
    db.apply({"Target": {U1: (None, t1)}, "Root": {U2: (None, r)}})
    assert db.weak_referrers("Target", U1) == {("Root", U2)}
    # One column still refers to it: the back-reference stays.
    r2 = dict(r, targets=(), weak_keys=())
    db.apply({"Root": {U2: (r, r2)}})
    assert db.weak_referrers("Target", U1) == {("Root", U2)}
    r3 = dict(r2, target=())
    db.apply({"Root": {U2: (r2, r3)}})
    assert db.weak_referrers("Target", U1) == frozenset()
    assert db.weak_in["Target"] == {}
    assert db.consistency_errors() == []


def test_unique_indexes(db: Database) -> None:
    t1 = row(db, "Target", U1, a=(1,), b=("x",))
    t2 = row(db, "Target", U2, a=(2,), b=("x",))
    db.apply({"Target": {U1: (None, t1), U2: (None, t2)}})
    assert db.index_lookup("Target", 0, ((1,), ("x",))) == U1
    assert db.index_lookup("Target", 0, index_key(t2, ("a", "b"))) == U2
    # Swapping keys within one change.
    t1b = dict(t1, a=(2,))
    t2b = dict(t2, a=(1,))
    db.apply({"Target": {U1: (t1, t1b), U2: (t2, t2b)}})
    assert db.index_lookup("Target", 0, ((1,), ("x",))) == U2
    assert db.index_lookup("Target", 0, ((2,), ("x",))) == U1
    assert db.consistency_errors() == []
    db.apply({"Target": {U1: (t1b, None)}})
    assert db.index_lookup("Target", 0, ((2,), ("x",))) is None


def test_single_column_index_key_is_the_datum() -> None:
    db = Database(bundled_schema("hardware_vtep"))
    ls = dict(db.info["Logical_Switch"].defaults, name=("ls1",), _uuid=(U1,), _version=(V,))
    db.apply({"Logical_Switch": {U1: (None, ls)}})
    assert db.index_lookup("Logical_Switch", 0, ("ls1",)) == U1


def test_consistency_errors_find_problems(db: Database) -> None:
    c = row(db, "Child", U1)
    r = row(db, "Root", U2, child=(U3,), num=(500,))
    db.tables["Child"][U1] = c
    db.tables["Root"][U2] = r
    errs = "\n".join(db.consistency_errors())
    assert "refers to missing Child row " + U3 in errs
    assert "non-root Child row " + U1 + " is not referenced" in errs
    assert "500 is not in the valid range" in errs
    assert "reference counts" in errs


def test_consistency_errors_max_rows_and_index(db: Database) -> None:
    for i, u in enumerate((U1, U2, U3, V)):
        db.tables["Target"][u] = row(db, "Target", u, a=(i % 2,), b=("x",))
    errs = "\n".join(db.consistency_errors())
    assert "more than maxRows 3" in errs
    assert "share index" in errs


@pytest.mark.parametrize(("ctype", "good", "datum"), [
    ({"key": "string"}, "a", ("a",)),
    ({"key": {"type": "string", "enum": ["set", ["a", "b"]]}}, "b", ("b",)),
    ({"key": "integer", "min": 0, "max": 1}, 5, (5,)),
    ({"key": "boolean"}, True, (True,)),
    ({"key": "real"}, 1.5, (1.5,)),
    ({"key": "uuid"}, ["uuid", U1], (U1,)),
    ({"key": "uuid"}, ["uuid", U1.upper()], (U1,)),
    ({"key": "string", "min": 0, "max": "unlimited"}, ["set", ["b", "a"]], ("a", "b")),
])
def test_datum_parser_fast_paths_agree_with_data(ctype: object, good: object,
                                                 datum: tuple[object, ...]) -> None:
    from hwvtep.ovsdb.data import datum_from_json

    ct = ColumnType.from_json(ctype)
    assert datum_parser(ct)(good, None) == datum == datum_from_json(ct, good)


@pytest.mark.parametrize(("ctype", "bad"), [
    ({"key": "string"}, 5),
    ({"key": {"type": "string", "enum": ["set", ["a", "b"]]}}, "c"),
    ({"key": {"type": "integer", "maxInteger": 3}}, 4),
    ({"key": "integer"}, True),
    ({"key": "boolean"}, 1),
    ({"key": "real"}, "x"),
    ({"key": "uuid"}, ["uuid", "nope"]),
    ({"key": "uuid"}, ["named-uuid", "x"]),
])
def test_datum_parser_errors_are_those_of_data(ctype: object, bad: object) -> None:
    from hwvtep.ovsdb.data import datum_from_json

    ct = ColumnType.from_json(ctype)
    with pytest.raises(OvsdbError) as ours:
        datum_parser(ct)(bad, None)
    with pytest.raises(OvsdbError) as theirs:
        datum_from_json(ct, bad)
    assert ours.value.to_json() == theirs.value.to_json()


def test_table_info_is_derived_once_per_table(db: Database) -> None:
    assert isinstance(db.info["Root"], TableInfo)
    assert db.info["Root"].schema is db.schema.tables["Root"]
