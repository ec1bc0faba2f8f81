"""Schema parsing: the bundled schemas, OVS's own schemas, and errors naming the bad member."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hwvtep.ovsdb.errors import OvsdbError
from hwvtep.ovsdb.schema import DatabaseSchema, bundled_schema, bundled_schema_text
from hwvtep.ovsdb.types import UNLIMITED, WEAK

OVS_SHARE = Path("/usr/share/openvswitch")
OVS_VTEP = OVS_SHARE / "vtep.ovsschema"
OVS_VSWITCH = OVS_SHARE / "vswitch.ovsschema"


def _normalized_by_ovs_library(text: str) -> Any:
    """Open vSwitch's own Python schema parser, as an independent reference."""
    ovs_schema = pytest.importorskip("ovs.db.schema", reason="pip package 'ovs' missing")
    return ovs_schema.DbSchema.from_json(json.loads(text)).to_json()


@pytest.mark.ovs
def test_hardware_vtep_is_semantically_identical_to_open_vswitch() -> None:
    if not OVS_VTEP.exists():
        pytest.skip(f"MISSING PREREQUISITE: {OVS_VTEP} (Debian openvswitch-vtep)")
    ours_text = bundled_schema_text("hardware_vtep")
    theirs_text = OVS_VTEP.read_text()
    # 1. By OVS's own parser: every table, column, type, constraint, index and isRoot.
    assert _normalized_by_ovs_library(ours_text) == _normalized_by_ovs_library(theirs_text)
    # 2. By ours.
    assert DatabaseSchema.from_text(ours_text) == DatabaseSchema.from_text(theirs_text)
    ours = bundled_schema("hardware_vtep")
    assert (ours.name, ours.version) == ("hardware_vtep", "1.7.0")


def test_hardware_vtep_structure() -> None:
    s = bundled_schema("hardware_vtep")
    assert set(s.tables) == {
        "Global", "Manager", "Physical_Switch", "Physical_Port", "Tunnel",
        "Logical_Binding_Stats", "Logical_Switch", "Ucast_Macs_Local", "Ucast_Macs_Remote",
        "Mcast_Macs_Local", "Mcast_Macs_Remote", "Logical_Router", "Arp_Sources_Local",
        "Arp_Sources_Remote", "Physical_Locator_Set", "Physical_Locator", "ACL_entry", "ACL",
    }
    assert s.tables["Global"].is_root and not s.tables["Physical_Locator"].is_root
    assert s.tables["Physical_Switch"].indexes == (("name",),)
    assert s.tables["Physical_Locator"].indexes == (("encapsulation_type", "dst_ip", "tunnel_key"),)
    vb = s.tables["Physical_Port"].columns["vlan_bindings"].type
    assert vb.is_map and vb.key.max_integer == 4095 and vb.value is not None
    assert vb.value.ref_table == "Logical_Switch" and vb.n_max == UNLIMITED
    assert s.tables["Physical_Locator_Set"].columns["locators"].mutable is False


def test_server_schema() -> None:
    s = bundled_schema("_server")
    assert (s.name, s.version) == ("_Server", "1.2.0")
    model = s.tables["Database"].columns["model"].type.key
    assert model.enum == ("clustered", "relay", "standalone")


@pytest.mark.ovs
def test_any_open_vswitch_schema_loads() -> None:
    if not OVS_VSWITCH.exists():
        pytest.skip(f"MISSING PREREQUISITE: {OVS_VSWITCH} (Debian openvswitch-common)")
    s = DatabaseSchema.from_text(OVS_VSWITCH.read_text())
    assert s.name == "Open_vSwitch"
    assert s.tables["Mirror"].columns["select_src_port"].type.key.ref_type == WEAK
    # to_json round-trips to an equal schema.
    assert DatabaseSchema.from_json(s.to_json()) == s


def _schema(tables: Any, **extra: Any) -> dict[str, Any]:
    return {"name": "t", "version": "1.0.0", "tables": tables, **extra}


@pytest.mark.parametrize(
    ("doc", "fragment"),
    [
        ([], "must be a JSON object"),
        ({"version": "1.0.0", "tables": {}}, "'name' member is missing"),
        (_schema({}, version="1.0"), "not a valid version"),
        (_schema({"T": {"columns": {"c": {"type": "strin"}}}}), 'unknown atomic type "strin"'),
        (_schema({"T": {"columns": {"c": {"type": "string", "x": 1}}}}), "T.c: Member 'x'"),
        (_schema({"T": {"columns": {"_c": {"type": "string"}}}}), "reserved"),
        (_schema({"T": {"columns": {}}}), "at least one column"),
        (_schema({"T": {"columns": {"c": {"type": {"key": "uuid"}}}, "maxRows": 0}}),
         "maxRows"),
        (_schema({"T": {"columns": {"c": {"type": "string"}}, "indexes": [["d"]]}}),
         "index column d"),
        (_schema({"T": {"columns": {"c": {"type": {"key": {"type": "uuid",
                                                             "refTable": "U"}}}}}}),
         "undefined table U"),
        (_schema({"T": {"columns": {"c": {"type": {"key": "string", "min": 2}}}}}),
         "minimum must be 0 or 1"),
        (_schema({"T": {"columns": {"c": {"type": {"key": "string", "max": 0}}}}}),
         "maximum must be"),
        (_schema({"T": {"columns": {"c": {"type": {"key": {"type": "string",
                                                             "minInteger": 1}}}}}}),
         "Member 'minInteger'"),
        (_schema({"T": {"columns": {"c": {"type": {"key": {
            "type": "integer", "minInteger": 5, "maxInteger": 1}}}}}}), "minInteger exceeds"),
    ],
)
def test_bad_schemas_name_the_bad_member(doc: Any, fragment: str) -> None:
    with pytest.raises(OvsdbError) as e:
        DatabaseSchema.from_json(doc)
    assert e.value.tag == "syntax error"
    assert fragment in (e.value.details or "")


def test_no_root_tables_means_all_root() -> None:
    s = DatabaseSchema.from_json(_schema({"A": {"columns": {"x": {"type": "integer"}}},
                                          "B": {"columns": {"y": {"type": "integer"}}}}))
    assert all(t.is_root for t in s.tables.values())
    assert "isRoot" not in json.dumps(s.to_json())
