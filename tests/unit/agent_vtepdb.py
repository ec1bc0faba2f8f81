"""A hardware_vtep database in memory for the agent's pure tests, driven by real transactions.

Rows are made with the project's own transaction engine, so they are the shape a replica
holds (every column, canonical datums), and the agent's report operations are proven by
running them.
"""

from __future__ import annotations

from typing import Any

from hwvtep.ovsdb.database import Database
from hwvtep.ovsdb.schema import bundled_schema
from hwvtep.ovsdb.transaction import execute

SCHEMA = bundled_schema("hardware_vtep")


def named(name: str) -> list[str]:
    return ["named-uuid", name]


def uuid(u: str) -> list[str]:
    return ["uuid", u]


class VtepDb:
    def __init__(self) -> None:
        self.db = Database(SCHEMA)

    @property
    def tables(self) -> dict[str, dict[str, dict[str, Any]]]:
        return self.db.tables  # type: ignore[return-value]

    def transact(self, *ops: dict[str, Any]) -> list[Any]:
        out = execute(self.db, ["hardware_vtep", *ops])
        errors = [r for r in out.result if isinstance(r, dict) and "error" in r]
        assert not errors, f"transaction failed: {out.result} for {ops}"
        if out.changes:
            self.db.apply(out.changes)
        return list(out.result)

    def rows(self, table: str) -> dict[str, dict[str, Any]]:
        return self.tables.get(table, {})

    def find(self, table: str, **match: Any) -> list[tuple[str, dict[str, Any]]]:
        out = []
        for u, row in self.rows(table).items():
            if all(row.get(k) == (v if isinstance(v, tuple) else (v,)) for k, v in match.items()):
                out.append((u, row))
        return out

    def one(self, table: str, **match: Any) -> tuple[str, dict[str, Any]]:
        found = self.find(table, **match)
        assert len(found) == 1, f"{table} {match}: {len(found)} rows"
        return found[0]

    # -- what a controller and vtep-ctl do --

    def add_ps(self, name: str, tunnel_ips: list[str] | None = None) -> str:
        if not self.rows("Global"):
            self.transact({"op": "insert", "table": "Global", "row": {}})
        g = next(iter(self.rows("Global")))
        res = self.transact(
            {
                "op": "insert",
                "table": "Physical_Switch",
                "row": {"name": name, "tunnel_ips": ["set", tunnel_ips or []]},
                "uuid-name": "ps",
            },
            {
                "op": "mutate",
                "table": "Global",
                "where": [["_uuid", "==", uuid(g)]],
                "mutations": [["switches", "insert", ["set", [named("ps")]]]],
            },
        )
        return str(res[0]["uuid"][1])

    def add_port(self, ps: str, name: str) -> str:
        res = self.transact(
            {"op": "insert", "table": "Physical_Port", "row": {"name": name}, "uuid-name": "p"},
            {
                "op": "mutate",
                "table": "Physical_Switch",
                "where": [["_uuid", "==", uuid(ps)]],
                "mutations": [["ports", "insert", ["set", [named("p")]]]],
            },
        )
        return str(res[0]["uuid"][1])

    def add_ls(self, name: str, key: int | None = None, mode: str | None = None) -> str:
        row: dict[str, Any] = {"name": name}
        if key is not None:
            row["tunnel_key"] = key
        if mode is not None:
            row["replication_mode"] = mode
        res = self.transact({"op": "insert", "table": "Logical_Switch", "row": row})
        return str(res[0]["uuid"][1])

    def bind(self, port: str, vlan: int, ls: str) -> None:
        self.transact(
            {
                "op": "mutate",
                "table": "Physical_Port",
                "where": [["_uuid", "==", uuid(port)]],
                "mutations": [
                    ["vlan_bindings", "delete", ["set", [vlan]]],
                    ["vlan_bindings", "insert", ["map", [[vlan, uuid(ls)]]]],
                ],
            }
        )

    def unbind(self, port: str, vlan: int) -> None:
        self.transact(
            {
                "op": "mutate",
                "table": "Physical_Port",
                "where": [["_uuid", "==", uuid(port)]],
                "mutations": [["vlan_bindings", "delete", ["set", [vlan]]]],
            }
        )

    def locator(self, ip: str, key: int | None = None) -> list[Any]:
        """A reference to the locator of `ip`, or an insert op's named-uuid (see `_loc_ops`)."""
        for u, row in self.rows("Physical_Locator").items():
            if row["dst_ip"] == (ip,) and row["tunnel_key"] == (() if key is None else (key,)):
                return uuid(u)
        return []

    def _loc(self, ip: str, name: str, key: int | None, ops: list[dict[str, Any]]) -> list[Any]:
        ref = self.locator(ip, key)
        if ref:
            return ref
        row: dict[str, Any] = {"encapsulation_type": "vxlan_over_ipv4", "dst_ip": ip}
        if key is not None:
            row["tunnel_key"] = key
        ops.append({"op": "insert", "table": "Physical_Locator", "row": row, "uuid-name": name})
        return named(name)

    def add_ucast_remote(self, ls: str, mac: str, ip: str, key: int | None = None) -> str:
        ops: list[dict[str, Any]] = []
        loc = self._loc(ip, "loc", key, ops)
        ops.append(
            {
                "op": "insert",
                "table": "Ucast_Macs_Remote",
                "row": {"MAC": mac, "logical_switch": uuid(ls), "locator": loc},
                "uuid-name": "mac",
            }
        )
        res = self.transact(*ops)
        return str(res[-1]["uuid"][1])

    def add_mcast_remote(self, ls: str, mac: str, ips: list[str]) -> str:
        ops: list[dict[str, Any]] = []
        locs = [self._loc(ip, f"loc{i}", None, ops) for i, ip in enumerate(ips)]
        ops.append(
            {
                "op": "insert",
                "table": "Physical_Locator_Set",
                "row": {"locators": ["set", locs]},
                "uuid-name": "set",
            }
        )
        ops.append(
            {
                "op": "insert",
                "table": "Mcast_Macs_Remote",
                "row": {"MAC": mac, "logical_switch": uuid(ls), "locator_set": named("set")},
                "uuid-name": "mac",
            }
        )
        res = self.transact(*ops)
        return str(res[-1]["uuid"][1])

    def delete(self, table: str, u: str) -> None:
        self.transact({"op": "delete", "table": table, "where": [["_uuid", "==", uuid(u)]]})

    def update(self, table: str, u: str, row: dict[str, Any]) -> None:
        self.transact(
            {"op": "update", "table": table, "where": [["_uuid", "==", uuid(u)]], "row": row}
        )
