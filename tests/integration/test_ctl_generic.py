"""`hwvtep ctl` against vtep-ctl: the generic database commands and every output format.

In the spirit of Open vSwitch's ovs-vsctl tests (written here for the hardware_vtep
schema): list, find (every comparison operator), get, set, add, remove, clear, create
(with --id), destroy (with --all), wait-until and comment, with table/column
abbreviations, record look-up by name, ".", or UUID prefix, the error messages, and each
--format / --data combination. Same method as test_ctl_vtep: both tools, same server,
every step's stdout, stderr and exit status compared.
"""

from __future__ import annotations

import json
import random
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
from srvhelp import HWVTEP, Rpc, RunningServer, needs_ovs
from test_ctl_vtep import (
    KINDS,
    Step,
    assert_same,
    each,
    expect,
    expect_error,
    fails,
    on,
    reset,
    run_tool,
    start_servers,
    unordered,
)

pytestmark = [pytest.mark.ovs, needs_ovs]


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, RunningServer]]:
    yield from start_servers()

SETUP = [
    ["add-ls", "ls1"],
    ["set", "Logical_Switch", "ls1", "description=first", "tunnel_key=5",
     "other_config:a=1", 'other_config:b="x y"', "other_config:c=\u00e9t\u00e9"],
    ["add-ps", "ps1"],
    ["set", "Physical_Switch", "ps1", "management_ips=[10.0.0.1,10.0.0.2]",
     'description="quoted, with \\"escapes\\" and \\n"'],
    ["add-port", "ps1", "p1"],
]

# Two rows whose UUIDs share their first four digits (and no more of their first eight).
U1 = "abcd1111-0000-4000-8000-000000000001"
U2 = "abcd2222-0000-4000-8000-000000000002"

FORMATS = [[f"--format={f}", *d] for f in ("list", "table", "csv", "html", "json")
           for d in ([], ["--data=bare"], ["--data=json"], ["--no-headings"])]

SCENARIOS: dict[str, list[Step]] = {
    "list in every format": [
        *SETUP,
        *[[*f, "list", "Logical_Switch"] for f in FORMATS],
        *[[*f, "list", "Physical_Switch", "ps1"] for f in FORMATS],
        ["--pretty", "--format=json", "list", "Logical_Switch"],
        ["--bare", "list", "Logical_Switch"],
        ["--format=table", "--max-column-width=8", "--columns=name,other_config,tunnel_key",
         "list", "Logical_Switch"],
        ["--format=table", "--max-column-width=3", "--no-headings", "--columns=name,"
         "description,management_ips", "list", "Physical_Switch"],
        ["--columns=name,other_config,_uuid", "list", "Logical_Switch"],
        ["--columns=name", "--format=csv", "list", "Logical_Switch", "ls1"],
        ["--columns=", "list", "Logical_Switch"],
        ["--columns=bogus", "list", "Logical_Switch"],
        ["list", "Logical_Switch", "nope"],
        ["--if-exists", "list", "Logical_Switch", "nope", "ls1"],
        ["list", "Manager"],
        ["--format=table", "list", "Manager"],
        ["--format=json", "list", "Manager"],
        ["--format=html", "list", "Manager"],
        ["--format=csv", "list", "Manager"],
        # several tables in one run: separated by a blank line (not in json or html)
        *[[*f, "list", "Manager", "--", "list", "Logical_Switch", "--", "list-ls"]
          for f in FORMATS[::4]],
    ],
    "get": [
        *SETUP,
        ["get", "Logical_Switch", "ls1", "name", "description", "tunnel_key", "other_config",
         "replication_mode"],
        ["get", "Logical_Switch", "ls1", "other_config:a", "other_config:b",
         "other_config:c"],
        ["get", "Logical_Switch", "ls1", "other_config:zz"],
        ["--if-exists", "get", "Logical_Switch", "ls1", "other_config:zz", "name"],
        ["get", "Logical_Switch", "ls1", "name:x"],
        ["get", "Logical_Switch", "ls1", "nam"],
        ["get", "Logical_Switch", "ls1", "_uuid", "-uuid", "_UUID"],
        ["get", "logical_switch", "ls1", "NAME", "Tunnel-Key"],
        ["get", "Log", "ls1", "name"],
        ["get", "Logical_Sw", "ls1", "name"],
        ["get", "Bogus", "ls1", "name"],
        ["get", "Logical_Switch", "ls1", "bogus"],
        ["get", "Logical_Switch", "ls1", ":x"],
        ["get", "Logical_Switch", "ls1", "name=x"],
        ["get", "Logical_Switch", "nope", "name"],
        ["--if-exists", "get", "Logical_Switch", "nope", "name"],
        ["--if-exists", "--id=@x", "get", "Logical_Switch", "ls1"],
        ["--id=x", "get", "Logical_Switch", "ls1"],
        ["get", "Global", ".", "switches"],
        ["get", "Physical_Switch", "ps1", "management_ips", "description", "ports"],
        ["--oneline", "get", "Physical_Switch", "ps1", "management_ips", "description",
         "--", "get", "Logical_Switch", "ls1", "name"],
        ["get", "Physical_Port", "p1", "name"],
        ["get", "Physical_Locator", ".", "dst_ip"],
        ["get", "Logical_Switch", "ls1"],
        ["get", "Logical_Switch"],
    ],
    "find": [
        *SETUP,
        ["add-ls", "ls2"],
        ["set", "Logical_Switch", "ls2", "tunnel_key=7", "other_config:a=2"],
        ["add-ls", "ls3"],
        *[unordered("--columns=name", "find", "Logical_Switch", f"tunnel_key{op}{v}")
          for op in ("=", "!=", "<", ">", "<=", ">=", "{=}", "{!=}", "{<}", "{>}", "{<=}",
                     "{>=}", "{in}", "{not-in}")
          for v in ("5", "[]", "[5,7]")],
        *[unordered("--columns=name", "find", "Logical_Switch", f"other_config:a{op}{v}")
          for op in ("=", "!=", "<", ">", "{=}", "{!=}", "{<=}", "{>=}", "{in}")
          for v in ("1", "2", "[]")],
        *[unordered("--columns=name", "find", "Logical_Switch", f"other_config{op}{v}")
          for op in ("=", "{<=}", "{>=}", "{>}")
          for v in ("{}", "{a=1}", '{a=1,b="x y",c=été}')],
        ["--columns=name", "find", "Logical_Switch", "name=ls1", "tunnel_key=5"],
        ["--columns=name", "find", "Logical_Switch", "name=ls1", "tunnel_key=6"],
        unordered("--columns=name", "find", "Logical_Switch", "name>ls1"),
        ["--columns=name", "find", "Physical_Switch", "management_ips{>=}10.0.0.1"],
        ["--columns=name", "find", "Physical_Switch", "management_ips=[10.0.0.2,10.0.0.1]"],
        ["--columns=name", "find", "Physical_Switch", "management_ips{<}[10.0.0.1]"],
        ["find", "Logical_Switch", "tunnel_key"],
        ["find", "Logical_Switch", "tunnel_key=x"],
        ["find", "Logical_Switch", "name:k=1"],
        ["find", "Logical_Switch", "bogus=1"],
        ["find", "Logical_Switch", "name=[]"],
        ["find", "Logical_Switch", "tunnel_key=[1,2]"],
        ["find", "Manager", "target=x"],
        ["find", "Manager", "bogus=x"],
        ["--format=table", "--columns=name,tunnel_key", "find", "Logical_Switch",
         "name=ls1"],
    ],
    "set": [
        *SETUP,
        ["set", "Logical_Switch", "ls1", "tunnel_key=[]", "description=x"],
        ["get", "Logical_Switch", "ls1", "tunnel_key", "description"],
        ["set", "Logical_Switch", "ls1", "other_config:a=9", "--", "get",
         "Logical_Switch", "ls1", "other_config"],
        ["set", "Logical_Switch", "ls1", "other_config:a=10"],
        ["get", "Logical_Switch", "ls1", "other_config"],
        ["set", "Logical_Switch", "ls1", "other_config={}"],
        ["get", "Logical_Switch", "ls1", "other_config"],
        ["set", "Logical_Switch", "ls1", "replication_mode=bogus"],
        ["set", "Logical_Switch", "ls1", "replication_mode=source_node"],
        ["set", "Logical_Switch", "ls1", "tunnel_key=abc"],
        ["set", "Logical_Switch", "ls1", "tunnel_key=1-3"],
        ["set", "Logical_Switch", "ls1", "tunnel_key=[1,2]"],
        ["set", "Logical_Switch", "ls1", "name="],
        ["set", "Logical_Switch", "ls1", 'name="unterminated'],
        ["set", "Logical_Switch", "ls1", 'name="bad \\q escape"'],
        ["set", "Logical_Switch", "ls1", "name:k=v"],
        ["set", "Logical_Switch", "ls1", "name"],
        ["set", "Logical_Switch", "ls1", "other_config={a}"],
        ["set", "Logical_Switch", "ls1", "other_config={a=1,a=2}"],
        ["set", "Logical_Switch", "ls1", "other_config={a=1} x"],
        ["set", "Logical_Switch", "ls1", "other_config=a=1,b=2"],
        ["set", "Logical_Switch", "ls1", "other_config=[a=1]"],
        ["set", "Physical_Switch", "ps1", "management_ips=[a,a]"],
        ["set", "Physical_Switch", "ps1", "management_ips=a b, c"],
        ["set", "Physical_Switch", "ps1", "management_ips=["],
        ["set", "Physical_Switch", "ps1", "management_ips="],
        ["set", "Physical_Switch", "ps1", "management_ips=a\\"],
        ["get", "Physical_Switch", "ps1", "management_ips"],
        ["set", "Physical_Port", "p1", "vlan_bindings:5000=@x"],
        ["set", "Physical_Port", "p1", "vlan_bindings:5=00000000-0000-0000-0000-000000000000"],
        ["set", "Global", ".", "other_config:x=y", "other_config:x=z"],
        ["get", "Global", ".", "other_config"],
        ["--if-exists", "set", "Logical_Switch", "nope", "name=x"],
        ["set", "Logical_Switch", "nope", "name=x"],
        ["set", "Logical_Switch", "ls1", "bogus=1"],
        ["set", "Manager", "x", "target=y"],
    ],
    "read-only columns": [
        *SETUP,
        ["add-ucast-remote", "ls1", "00:00:00:00:00:01", "10.1.1.1"],
        ["set", "Physical_Locator", ".", "dst_ip=1.1.1.1"],
        ["clear", "Physical_Locator", ".", "tunnel_key"],
        ["add", "Physical_Locator", ".", "tunnel_key", "5"],
        ["set", "Physical_Locator", ".", "tunnel_key=5"],
        ["get", "Physical_Locator", ".", "tunnel_key", "dst_ip", "encapsulation_type"],
    ],
    "add and remove": [
        *SETUP,
        ["add", "Physical_Switch", "ps1", "management_ips", "10.0.0.3", "10.0.0.1"],
        ["get", "Physical_Switch", "ps1", "management_ips"],
        ["add", "Physical_Switch", "ps1", "management_ips", "[10.0.0.4, 10.0.0.5]", "--",
         "get", "Physical_Switch", "ps1", "management_ips"],
        ["remove", "Physical_Switch", "ps1", "management_ips", "10.0.0.1", "9.9.9.9"],
        ["get", "Physical_Switch", "ps1", "management_ips"],
        ["add", "Logical_Switch", "ls1", "other_config", "a=2", "d=4"],
        ["get", "Logical_Switch", "ls1", "other_config"],
        ["add", "Logical_Switch", "ls1", "other_config", "a=3", "--", "get",
         "Logical_Switch", "ls1", "other_config"],
        ["remove", "Logical_Switch", "ls1", "other_config", "a"],
        ["remove", "Logical_Switch", "ls1", "other_config", "b=wrong", 'b="x y"'],
        ["get", "Logical_Switch", "ls1", "other_config"],
        ["remove", "Logical_Switch", "ls1", "other_config", "{}"],
        ["remove", "Logical_Switch", "ls1", "other_config", "="],
        ["add", "Logical_Switch", "ls1", "tunnel_key", "6", "--", "get", "Logical_Switch",
         "ls1", "tunnel_key"],
        ["add", "Logical_Switch", "ls1", "tunnel_key", "6", "7"],
        ["remove", "Logical_Switch", "ls1", "name", "ls1"],
        ["remove", "Logical_Switch", "ls1", "tunnel_key", "5", "--", "get",
         "Logical_Switch", "ls1", "tunnel_key"],
        ["add", "Logical_Switch", "ls1", "bogus", "1"],
        ["add", "Logical_Switch", "ls1", "tunnel_key", "x"],
        ["remove", "Logical_Switch", "ls1", "tunnel_key", "x"],
        ["--if-exists", "add", "Logical_Switch", "nope", "tunnel_key", "1"],
        ["--if-exists", "remove", "Logical_Switch", "nope", "tunnel_key", "1"],
    ],
    "clear": [
        *SETUP,
        ["clear", "Logical_Switch", "ls1", "other_config", "tunnel_key", "--", "get",
         "Logical_Switch", "ls1", "other_config", "tunnel_key"],
        ["clear", "Logical_Switch", "ls1", "description"],
        ["clear", "Logical_Switch", "ls1", "bogus"],
        ["--if-exists", "clear", "Logical_Switch", "nope", "description"],
        ["clear", "Logical_Switch", "nope", "description"],
    ],
    "create": [
        *SETUP,
        ["create", "Logical_Switch", "name=ls9", "description=new"],
        ["list-ls"],
        ["--id=@m", "create", "Manager", "target=tcp:1.2.3.4", "--", "add", "Global", ".",
         "managers", "@m"],
        ["get-manager"],
        ["--id=@m", "create", "Manager", 'target="tcp:1.2.3.4"', "inactivity_probe=5",
         "--", "add", "Global", ".", "managers", "@m"],
        ["get-manager"],
        ["list", "Manager"],
        ["create", "Manager", "target=tcp:9.9.9.9"],
        ["create", "Manager", 'target="tcp:9.9.9.9"'],
        ["get-manager"],
        ["--id=@m", "create", "Manager", "target=tcp:9.9.9.8"],
        ["--id=@m", "create", "Manager", "target=tcp:9.9.9.8", "--", "--id=@m", "create",
         "Manager", "target=tcp:9.9.9.7"],
        ["--id=m", "create", "Manager", "target=tcp:9.9.9.8"],
        ["add", "Global", ".", "managers", "@nope"],
        ["--id=@ls", "get", "Logical_Switch", "ls1", "--", "create", "Physical_Port",
         "name=p9", "vlan_bindings:7=@ls", "--", "add", "Physical_Switch", "ps1", "ports",
         "@p", "--", "--id=@p", "get", "Physical_Port", "p9"],
        ["--id=@p", "create", "Physical_Port", "name=p9", "vlan_bindings:7=@ls", "--",
         "add", "Physical_Switch", "ps1", "ports", "@p", "--", "--id=@ls", "get",
         "Logical_Switch", "ls1"],
        ["--id=@ls", "get", "Logical_Switch", "ls1", "--", "--id=@p", "create",
         "Physical_Port", "name=p9", "vlan_bindings:7=@ls", "--", "add", "Physical_Switch",
         "ps1", "ports", "@p"],
        ["list-ports", "ps1"],
        ["list-bindings", "ps1", "p9"],
        ["create", "Logical_Switch", "name=ls1"],
        ["create", "Logical_Switch", "bogus=1"],
        ["create", "Bogus", "name=x"],
        ["--id=11111111-2222-3333-4444-555555555555", "create", "Logical_Switch",
         "name=fixed"],
        ["get", "Logical_Switch", "fixed", "_uuid"],
        ["--dry-run", "create", "Logical_Switch", "name=dry"],
        ["list-ls"],
    ],
    "destroy": [
        *SETUP,
        ["add-ls", "ls2"],
        ["add-ls", "ls3"],
        ["destroy", "Logical_Switch", "ls2"],
        ["list-ls"],
        ["destroy", "Logical_Switch", "nope"],
        ["--if-exists", "destroy", "Logical_Switch", "nope", "ls3"],
        ["list-ls"],
        ["destroy", "Logical_Switch"],
        ["--all", "destroy", "Logical_Switch", "ls1"],
        ["--all", "--if-exists", "destroy", "Logical_Switch"],
        ["destroy", "Logical_Switch", "ls1"],
        ["--all", "destroy", "Manager"],
        ["destroy", "Physical_Port", "p1"],
        ["list-ports", "ps1"],
        ["destroy", "Physical_Switch", "ps1", "--", "list-ps"],
        ["list-ps"],
        ["--all", "destroy", "Logical_Switch"],
        ["list-ls"],
    ],
    "wait-until satisfied and comment": [
        *SETUP,
        ["wait-until", "Logical_Switch", "ls1", "tunnel_key=5", "name=ls1"],
        ["wait-until", "Logical_Switch", "ls1"],
        ["wait-until", "Logical_Switch", "ls1", "bogus=5"],
        ["wait-until", "Logical_Switch", "ls1", "tunnel_key=x"],
        ["comment", "anything", "--", "list-ls"],
        ["comment"],
    ],
    "records": [
        *SETUP,
        ["add-ps", "ps2"],
        ["add-port", "ps2", "p1"],
        ["list", "Physical_Port", "p1"],
        ["get", "Global", ".", "other_config"],
        ["list", "Physical_Switch", "."],
        ["list", "Physical_Switch", "ps1", "ps1"],
        ["get", "Manager", "tcp:1.2.3.4", "target"],
        ["list", "Logical_Switch", "00000000-0000-0000-0000-000000000000"],
        ["list", "Logical_Switch", "0000"],
        ["list", "Logical_Switch", "000"],
    ],
    "ambiguous UUID prefix": [
        [f"--id={U1}", "create", "Logical_Switch", "name=u1"],
        [f"--id={U2}", "create", "Logical_Switch", "name=u2"],
        *[expect_error(f"vtep-ctl: Logical_Switch contains 2 or more rows whose UUIDs begin "
                       f"with {p}: at least {U1} and {U2}\n", 1, cmd)
          for p, cmd in (("abcd", "get Logical_Switch abcd name"),
                         ("abcd", "--if-exists get Logical_Switch abcd name"),
                         ("abcd", "list Logical_Switch abcd"),
                         ("abcd", "destroy Logical_Switch abcd"),
                         ("abcd", "set Logical_Switch abcd description=x"))],
        expect_error('vtep-ctl: no row "ABCD" in table Logical_Switch\n', 1,
                     "get Logical_Switch ABCD name"),
        expect("u1\n", "get Logical_Switch abcd1 name"),
        expect("u2\n", "get Logical_Switch abcd2222 name"),
        # a name is looked up before UUID prefixes
        ["create", "Logical_Switch", "name=abcd"],
        expect("abcd\n", "get Logical_Switch abcd name"),
        ["list-ls"],
    ],
    "data formats with -d": [
        *SETUP,
        *[[*d, "--columns=name,description,other_config,tunnel_key", "list",
           "Logical_Switch", "ls1"]
          for d in (["-d", "string"], ["-dstring"], ["-d", "bare"], ["-d", "json"],
                    ["--data", "string"], ["-d", "string", "--format=table"],
                    ["-d", "string", "--format=csv"], ["-d", "json", "--format=table"])],
        ["-d", "string", "get", "Logical_Switch", "ls1", "description"],
        ["-d"],
        ["-d", "foo", "list-ls"],
        ["-d", "String", "list-ls"],
    ],
    "oneline and dry-run": [
        *SETUP,
        ["--oneline", "get", "Physical_Switch", "ps1", "description", "--", "list-ls", "--",
         "get", "Logical_Switch", "ls1", "other_config:b"],
        ["--dry-run", "add-ls", "dry", "--", "list-ls"],
        ["list-ls"],
        ["--dry-run", "set", "Logical_Switch", "ls1", "description=dry"],
        ["get", "Logical_Switch", "ls1", "description"],
    ],
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
@pytest.mark.parametrize("kind", KINDS)
def test_same_as_vtep_ctl(servers: dict[str, RunningServer], kind: str, name: str) -> None:
    assert_same(on(servers, kind), SCENARIOS[name])


@pytest.mark.parametrize("kind", KINDS)
def test_several_rows(servers: dict[str, RunningServer], kind: str) -> None:
    steps = [*each("add-ls a", "add-ls b", "add-ls c", "add-ps x", "add-ps y"),
             unordered("list", "Logical_Switch"),
             unordered("--columns=name", "find", "Logical_Switch", "name!=b"),
             unordered("--bare", "--columns=name", "list", "Physical_Switch"),
             unordered("--format=csv", "--no-headings", "--columns=name", "list",
                       "Logical_Switch")]
    assert_same(on(servers, kind), steps)


def _fill_for_row_order(srv: RunningServer, seed: int) -> list[str]:
    """Some 330 rows in six tables, written over several transactions with deletions in
    between (so that the servers' tables have a history): logical switches and routers,
    physical switches whose ports bind VLANs to switches (Global refers to the physical
    switches), remote MACs on switches and locators. Returns the switches' names."""
    rng = random.Random(seed)
    reset(srv)
    with Rpc(str(srv.sock)) as rpc:
        def txn(*ops: Any) -> list[Any]:
            reply = rpc.call("transact", ["hardware_vtep", *ops])
            assert reply.get("error") is None and all(
                "error" not in r for r in reply["result"]), reply
            return reply["result"]  # type: ignore[no-any-return]

        def delete(table: str, uuids: list[str]) -> None:
            txn(*[{"op": "delete", "table": table,
                   "where": [["_uuid", "==", ["uuid", u]]]} for u in uuids])

        switches: dict[str, str] = {}
        routers: list[str] = []
        for b in range(5):
            names = [f"ls{b}_{i}" for i in range(30)]
            res = txn(*[{"op": "insert", "table": "Logical_Switch",
                         "row": {"name": n, "tunnel_key": 100 * b + i}}
                        for i, n in enumerate(names)])
            switches.update((n, r["uuid"][1]) for n, r in zip(names, res, strict=True))
            gone = rng.sample(sorted(switches), 7)
            delete("Logical_Switch", [switches.pop(n) for n in gone])
            res = txn(*[{"op": "insert", "table": "Logical_Router", "row": {"name": f"lr{b}_{i}"}}
                        for i in range(15)])
            routers += [r["uuid"][1] for r in res]
            delete("Logical_Router", [routers.pop(rng.randrange(len(routers))) for _ in range(4)])
        ls_uuids = sorted(switches.values())
        for b in range(3):
            ops: list[Any] = []
            for i in range(8):
                ports = []
                for j in range(rng.randrange(5)):
                    ports.append(["named-uuid", f"p{i}_{j}"])
                    bindings = [[vlan, ["uuid", rng.choice(ls_uuids)]]
                                for vlan in range(rng.randrange(3))]
                    ops.append({"op": "insert", "table": "Physical_Port",
                                "uuid-name": f"p{i}_{j}",
                                "row": {"name": f"p{b}_{i}_{j}",
                                        "vlan_bindings": ["map", bindings]}})
                ops.append({"op": "insert", "table": "Physical_Switch", "uuid-name": f"s{i}",
                            "row": {"name": f"ps{b}_{i}", "ports": ["set", ports]}})
            ops.append({"op": "mutate", "table": "Global", "where": [], "mutations": [
                ["switches", "insert", ["set", [["named-uuid", f"s{i}"] for i in range(8)]]]]})
            txn(*ops)
            ops = [{"op": "insert", "table": "Physical_Locator", "uuid-name": "loc",
                    "row": {"dst_ip": f"10.0.0.{b}", "encapsulation_type": "vxlan_over_ipv4"}}]
            ops += [{"op": "insert", "table": "Ucast_Macs_Remote",
                     "row": {"MAC": f"00:00:00:00:{b:02x}:{i:02x}",
                             "logical_switch": ["uuid", rng.choice(ls_uuids)],
                             "locator": ["named-uuid", "loc"]}} for i in range(30)]
            macs = [r["uuid"][1] for r in txn(*ops)[1:]]
            delete("Ucast_Macs_Remote", rng.sample(macs, 5))
        # switches whose UUIDs share their first 4 digits (and more, for some)
        txn(*[{"op": "insert", "table": "Logical_Switch", "uuid": u,
               "row": {"name": f"prefix{i}"}} for i, u in enumerate(PREFIXED)])
    return sorted(switches)


PREFIXED = [f"abcd{i % 3}{i:03x}-0000-4000-8000-{i:012x}" for i in range(9)]


# (vtep-ctl's own order shows in these outputs; each must come out the same from both
# tools reading the same database)
ROW_ORDER_STEPS: list[Step] = [
    ["list", "Logical_Router"],
    ["--columns=name", "find", "Logical_Switch"],
    ["--columns=name,tunnel_key", "find", "Logical_Switch", "tunnel_key>150"],
    ["--format=table", "list", "Logical_Switch"],
    ["--format=csv", "--columns=_uuid,name,vlan_bindings", "list", "Physical_Port"],
    ["--bare", "--columns=MAC,logical_switch", "list", "Ucast_Macs_Remote"],
    ["--columns=name", "list", "Physical_Switch", "--", "--columns=name", "list",
     "Physical_Port"],
    # the IDL meets logical switches first through the MACs, and physical ports through
    # the physical switches, when it monitors those (as for the vtep commands)
    ["list-ls", "--", "--columns=name", "list", "Logical_Switch"],
    ["list-ps", "--", "--columns=name", "find", "Physical_Port"],
    ["list-ps", "--", "--columns=dst_ip", "list", "Physical_Locator"],
    ["show", "--", "--columns=name", "list", "Physical_Port"],
    # an unmonitored required reference: the IDL follows its default, the zero UUID
    ["--columns=MAC", "list", "Ucast_Macs_Remote", "--", "--columns=name", "list",
     "Logical_Switch"],
]


@pytest.mark.parametrize("kind", KINDS)
def test_row_order_same_as_vtep_ctl_on_the_same_database(
        servers: dict[str, RunningServer], kind: str) -> None:
    """Both tools read the same rows: they list them in the same order, vtep-ctl's IDL
    order, on our server and on Open vSwitch's (which sends them in another order).

    Several databases of some 330 rows, so that many rows share hash buckets; also rows
    the run inserts and deletes itself (with fixed UUIDs, in a dry run)."""
    srv = on(servers, kind)
    for seed in (1, 2, 3):
        switches = _fill_for_row_order(srv, seed)
        steps = [*ROW_ORDER_STEPS,
                 ["--dry-run", "--", f"--id={U1}", "create", "Logical_Switch", "name=new1",
                  "--", f"--id={U2}", "create", "Logical_Switch", "name=new2",
                  "--", "destroy", "Logical_Switch", switches[0], "new1",
                  "--", "--columns=name", "find", "Logical_Switch"]]
        for args in steps:
            ours = run_tool(srv, "hwvtep", args, raw=True)
            assert ours == run_tool(srv, "vtep-ctl", args, raw=True), (seed, args)
            assert ours[2] == 0 and ours[0].count("\n") > 20, (seed, args, ours)
        # an ambiguous UUID prefix is reported with the first two rows in the IDL's order
        for prefix in ("abcd", "abcd1", "abcd2"):
            for args in (["get", "Logical_Switch", prefix, "name"],
                         ["list-ls", "--", "get", "Logical_Switch", prefix, "name"]):
                ours = run_tool(srv, "hwvtep", args, raw=True)
                assert ours == run_tool(srv, "vtep-ctl", args, raw=True), (seed, args)
                assert "2 or more rows whose UUIDs begin with" in ours[1], ours


@pytest.mark.parametrize("kind", KINDS)
def test_row_order_of_rows_that_arrive_while_waiting(
        servers: dict[str, RunningServer], kind: str) -> None:
    """wait-until, then find: both tools wait on the same database while four
    transactions add switches (the last one the awaited "last"); the rows that arrived
    in updates are listed in the same order as vtep-ctl lists them."""
    srv = on(servers, kind)
    _fill_for_row_order(srv, 4)
    args = ["wait-until", "Logical_Switch", "last", "--", "--columns=name", "find",
            "Logical_Switch"]
    waiters = [subprocess.Popen([*cmd, f"--db={srv.unix}", *args], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=srv.env)
               for cmd in (["vtep-ctl", "-vreconnect:emer"], [HWVTEP, "ctl"])]
    try:
        time.sleep(1.0)
        assert all(w.poll() is None for w in waiters)
        rng = random.Random(4)
        with Rpc(str(srv.sock)) as rpc:
            for b in range(4):
                names = [f"w{b}_{i}" for i in range(rng.randrange(5, 20))]
                reply = rpc.call("transact", ["hardware_vtep", *[
                    {"op": "insert", "table": "Logical_Switch", "row": {"name": n}}
                    for n in [*names, *(["last"] if b == 3 else [])]]])
                assert all("error" not in r for r in reply["result"]), reply
                time.sleep(0.2)
        ref, ours = (w.communicate(timeout=20) for w in waiters)
    finally:
        for w in waiters:
            if w.poll() is None:
                w.kill()
                w.wait()
    assert ours == ref
    assert ref[0].count("name") > 150 and "last" in ref[0]


MONITOR_CASES = [
    ["list-ps"], ["get-manager"], ["show"], ["list", "Logical_Switch"],
    ["--columns=name", "find", "Logical_Switch", "tunnel_key>1"],
    ["list", "Ucast_Macs_Remote"], ["--columns=MAC", "list", "Ucast_Macs_Remote"],
    ["get", "Physical_Port", "p", "vlan_bindings", "name"],
    ["set", "Physical_Switch", "s", "description=x", "--", "clear", "Logical_Switch", "l",
     "other_config"],
    ["add", "Global", ".", "managers", "@m", "--", "--id=@m", "create", "Manager",
     "target=x"],
    ["remove", "Physical_Switch", "s", "ports", "x", "--", "destroy", "Manager", "m"],
    ["wait-until", "Logical_Switch", "l", "tunnel_key=1", "--", "list-ls"],
    ["list", "Physical_Switch", "--", "list", "Physical_Port", "--", "comment", "x"],
]


@pytest.mark.parametrize("args", MONITOR_CASES, ids=" ".join)
def test_monitors_what_vtep_ctl_monitors(servers: dict[str, RunningServer],
                                         args: list[str]) -> None:
    """Where vtep-ctl's IDL files rows depends on what it monitors (references in the
    monitored columns, defaults of the others): `hwvtep ctl` works that out from the
    commands as vtep-ctl's prerequisites do. Compared with the monitor request vtep-ctl
    sends (for a server without these rows, so that it gives up at once where it waits),
    and, where `hwvtep ctl` asks for the same, its tables in the same order."""
    from hwvtep.ctl import commands as cmds
    from hwvtep.ctl import main as ctl
    from hwvtep.ctl.values import Schema

    srv = servers["hwvtep"]
    reset(srv)
    cp = subprocess.run(["vtep-ctl", "-vjsonrpc:dbg", "-t", "1", f"--db={srv.unix}", *args],
                        capture_output=True, text=True, env=srv.env, timeout=30)
    sent = [line for line in cp.stderr.splitlines()
            if 'method="monitor_cond_since"' in line and '"hardware_vtep"' in line]
    assert sent, cp.stderr
    request = json.loads(sent[0].split("params=", 1)[1].rsplit(", id=", 1)[0])[2]
    theirs = {t: sorted(r[0]["columns"]) for t, r in request.items()}
    schema = Schema(ctl._bundled_schema())
    env = cmds.Env(schema, {t: (cmds.RowId(c),) for t, c in ctl.vtep.VTEP_ROW_IDS.items()},
                   ctl.SHOW_TABLES, lambda m, s: None, False)
    opts, rest = ctl.parse_options(list(args), ctl.Log())
    commands = cmds.parse_commands(rest, opts.local)
    needs, plan = ctl.prerequisites(env, commands)
    assert {t: sorted(c) for t, c in plan.monitor.items()} == theirs
    runner = ctl.Runner(opts, commands, env, needs, "", "", plan)
    runner.exact = True
    ((method, params),) = runner.fetch_requests()
    assert method == "monitor_cond" and list(params[2]) == list(request)


# Hex letters in the first digits, so that an upper-case prefix differs from the UUID's.
FIXED_UUID = "abcdef12-3456-4789-8abc-def012345678"


@pytest.mark.parametrize("kind", KINDS)
def test_uuid_and_prefix_lookup(servers: dict[str, RunningServer], kind: str) -> None:
    """A record by its whole UUID in either case, or by a unique prefix of at least four
    digits, in lower case only. (The row has a fixed UUID: with a random one the
    upper-case prefix could be all decimal digits for one tool and not the other.)"""
    u = FIXED_UUID
    steps = [expect("<0>\n", [f"--id={u}", "create", "Logical_Switch", "name=ls1"]),
             *[expect("ls1\n", ["get", "Logical_Switch", r, "name"])
               for r in (u, u.upper(), u[:4], u[:8])],
             *[fails(1, ["get", "Logical_Switch", r, "name"]) for r in (u[:3], u[:6].upper())]]
    assert_same(on(servers, kind), steps, statuses=True)


@pytest.mark.parametrize("kind", KINDS)
def test_wait_until_waits_for_a_change(servers: dict[str, RunningServer], kind: str) -> None:
    srv = on(servers, kind)
    for tool in ("vtep-ctl", "hwvtep"):
        reset(srv)
        cmd = (["vtep-ctl", "-vreconnect:emer"] if tool == "vtep-ctl" else [HWVTEP, "ctl"])
        waiter = subprocess.Popen(
            [*cmd, f"--db={srv.unix}", "wait-until", "Logical_Switch", "lsw",
             "tunnel_key=9", "--", "get", "Logical_Switch", "lsw", "description"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=srv.env)
        try:
            time.sleep(0.5)
            assert waiter.poll() is None, waiter.communicate()
            run_tool(srv, tool, ["add-ls", "lsw"])
            time.sleep(0.3)
            assert waiter.poll() is None, waiter.communicate()
            run_tool(srv, tool, ["set", "Logical_Switch", "lsw", "tunnel_key=9",
                                 "description=done"])
            out, err = waiter.communicate(timeout=20)
        finally:
            if waiter.poll() is None:
                waiter.kill()
                waiter.wait()
        assert (out, err, waiter.returncode) == ("done\n", "", 0), tool


def test_timeout_kills_like_vtep_ctl(servers: dict[str, RunningServer]) -> None:
    srv = servers["hwvtep"]
    reset(srv)
    ref = run_tool(srv, "vtep-ctl", ["-t", "1", "wait-until", "Logical_Switch", "never"])
    ours = run_tool(srv, "hwvtep", ["-t", "1", "wait-until", "Logical_Switch", "never"])
    assert ours == ref
    assert ref[2] == -14


def test_ovs_ctl_timeout_variable(servers: dict[str, RunningServer]) -> None:
    srv = servers["hwvtep"]
    reset(srv)
    args = ["wait-until", "Logical_Switch", "never"]
    ref = run_tool(srv, "vtep-ctl", args, {"OVS_CTL_TIMEOUT": "1"})
    ours = run_tool(srv, "hwvtep", args, {"OVS_CTL_TIMEOUT": "1"})
    assert ours == ref
