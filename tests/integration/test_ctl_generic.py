"""`hwvtep ctl` against vtep-ctl: the generic database commands and every output format.

In the spirit of Open vSwitch's ovs-vsctl tests (written here for the hardware_vtep
schema): list, find (every comparison operator), get, set, add, remove, clear, create
(with --id), destroy (with --all), wait-until and comment, with table/column
abbreviations, record look-up by name, ".", or UUID prefix, the error messages, and each
--format / --data combination. Same method as test_ctl_vtep: both tools, same server,
every step's stdout, stderr and exit status compared.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator

import pytest
from srvhelp import HWVTEP, RunningServer, needs_ovs
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


def test_row_order_same_as_vtep_ctl_on_the_same_database(
        servers: dict[str, RunningServer]) -> None:
    """Both tools read the same rows: they list them in the same order (vtep-ctl's IDL
    order, which `hwvtep ctl` reproduces for rows as our server sends them).

    Not on Open vSwitch's ovsdb-server: vtep-ctl meets the rows in the order of the
    server's JSON object of rows (its own hash order), `hwvtep ctl` in the order of a
    select's array, and rows sharing a hash bucket can come out swapped."""
    srv = servers["hwvtep"]
    reset(srv)
    for i in range(12):
        run_tool(srv, "vtep-ctl", ["add-lr", f"lr{i}"])
        run_tool(srv, "vtep-ctl", ["add-ls", f"ls{i}"])
    run_tool(srv, "vtep-ctl", ["set", "Logical_Switch", "ls3", "tunnel_key=3"])
    for args in (["list", "Logical_Router"], ["--columns=name", "find", "Logical_Switch"],
                 ["--columns=name", "find", "Logical_Switch", "name!=ls5"],
                 ["--format=table", "list", "Logical_Switch"]):
        assert run_tool(srv, "hwvtep", args) == run_tool(srv, "vtep-ctl", args), args


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
