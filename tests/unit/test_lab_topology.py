"""Lab topology parsing and validation (pure), plus the lab's other pure helpers."""

from __future__ import annotations

import ipaddress
import json
import re
import textwrap
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import pytest

from hwvtep.lab import graph, icmp
from hwvtep.lab.topology import (
    Endpoint,
    Route,
    Topology,
    TopologyError,
    load_file,
    parse,
)

WALKTHROUGH = Path(str(resources.files("hwvtep.lab") / "examples" / "walkthrough.yaml"))

ROUTED = """\
name: routed
nodes:
  h1:
    kind: host
    interfaces:
      eth0: {addresses: [10.1.0.1/24], mac: "02:00:00:00:00:01"}
    gateway: 10.1.0.254
  h2:
    kind: host
    interfaces:
      eth0: {addresses: [10.2.0.1/24], mac: "02:00:00:00:00:02"}
    gateway: 10.2.0.254
  r:
    kind: router
    interfaces:
      eth1: 10.1.0.254/24
      eth2: 10.2.0.254/24
links:
  - ["h1:eth0", "r:eth1"]
  - ["h2:eth0", "r:eth2"]
"""


def problems(text: str) -> list[str]:
    with pytest.raises(TopologyError) as info:
        parse(textwrap.dedent(text), "t.yaml")
    return [str(p) for p in info.value.problems]


def one_problem(text: str) -> str:
    found = problems(text)
    assert len(found) == 1, found
    return found[0]


# --------------------------------------------------------------------------- valid input


def test_routed_model() -> None:
    topo = parse(ROUTED, "routed.yaml")
    assert topo.name == "routed"
    assert [n.name for n in topo.nodes] == ["h1", "h2", "r"]
    h1 = topo.node("h1")
    assert h1.interface("eth0").addresses == (ipaddress.ip_interface("10.1.0.1/24"),)
    assert h1.interface("eth0").mac == "02:00:00:00:00:01"
    assert h1.routes == (Route(ipaddress.ip_network("0.0.0.0/0"),
                               ipaddress.ip_address("10.1.0.254")),)
    assert topo.node("r").all_sysctls() == (("net.ipv4.ip_forward", "1"),)
    assert h1.all_sysctls() == ()
    assert topo.links[0].a == Endpoint("h1", "eth0")
    assert str(topo.links[1].b) == "r:eth2"


def test_walkthrough_example() -> None:
    topo = load_file(WALKTHROUGH)
    kinds = {n.name: n.kind for n in topo.nodes}
    assert kinds == {"red1": "host", "blue1": "host", "red2": "host", "blue2": "host",
                     "server1": "hypervisor", "server2": "hwvtep", "internet": "router",
                     "controller": "controller"}
    s1 = topo.node("server1")
    assert [(n.name, n.vni, n.ports) for n in s1.networks] == [
        ("red", 5000, ("s1-eth1",)), ("blue", 5001, ("s1-eth2",))]
    assert s1.networks[0].remote_macs == (("02:00:00:00:02:01",
                                           ipaddress.ip_address("172.16.2.1")),)
    # link-implied interfaces are added to their node
    assert [i.name for i in s1.interfaces] == ["eth0", "s1-eth1", "s1-eth2"]
    s2 = topo.node("server2")
    assert s2.physical_ports == ("s2-eth1", "s2-eth2")
    assert topo.ovsdb_endpoints(s2) == ("tcp:172.16.2.1:6640",)
    assert topo.node("controller").targets == ("server2",)
    # red and blue reuse addresses: the overlay keeps them apart
    assert topo.node("red1").interface("eth0").addresses == \
        topo.node("blue1").interface("eth0").addresses
    # only private 10.x / 172.16.x addresses
    for node in topo.nodes:
        for _, addr in node.addresses():
            assert addr.ip in ipaddress.ip_network("10.0.0.0/8") or \
                addr.ip in ipaddress.ip_network("172.16.0.0/16")
    # underlay links leave room for VXLAN headers
    assert {lk.mtu for lk in topo.links if lk.a.node.startswith("server")} == {1600}


def test_topology_equality_ignores_the_file_name() -> None:
    assert parse(ROUTED, "a.yaml") == parse(ROUTED + "\n# comment\n", "b.yaml")
    assert parse(ROUTED) != parse(ROUTED.replace("10.2.0.1/24", "10.2.0.7/24"))


def test_shorthands_merges_and_quoting() -> None:
    topo = parse(textwrap.dedent("""\
        name: s
        x-defaults: &host {kind: host}
        nodes:
          a:
            <<: *host
            interfaces:
              eth0: [10.0.0.1/24, "fd00::1/64"]
            routes:
              - {to: default, via: 10.0.0.2}
              - {to: "fd01::/64", via: "fd00::2"}
          b:
            <<: *host
            interfaces:
              eth0: {addresses: 10.0.0.2/24, mac: 12:34:56:78:9A:bc}
            daemons:
              web: python3 -m http.server 8080
              echo: [sh, -c, "echo hi"]
            sysctls: {net.ipv4.conf.all.rp_filter: 0}
        links: [[a:eth0, b:eth0]]
        """))
    a = topo.node("a")
    assert a.kind == "host"
    assert [str(x) for x in a.interface("eth0").addresses] == ["10.0.0.1/24", "fd00::1/64"]
    assert [str(r.to) for r in a.routes] == ["0.0.0.0/0", "fd01::/64"]
    b = topo.node("b")
    # unquoted 12:34:56:78:9A:bc would be a base-60 integer to a YAML 1.1 loader
    assert b.interface("eth0").mac == "12:34:56:78:9a:bc"
    assert [(d.name, d.argv) for d in b.daemons] == [
        ("web", ("python3", "-m", "http.server", "8080")), ("echo", ("sh", "-c", "echo hi"))]
    assert b.sysctls == (("net.ipv4.conf.all.rp_filter", "0"),)


def test_yaml_merge_key() -> None:
    topo = parse(textwrap.dedent("""\
        name: m
        nodes:
          a: &h
            kind: host
            interfaces: {eth0: 10.0.0.1/24}
          b:
            <<: *h
            interfaces: {eth0: 10.0.0.2/24}
        links: [[a:eth0, b:eth0]]
        """))
    assert topo.node("b").kind == "host"
    assert str(topo.node("b").interface("eth0").addresses[0]) == "10.0.0.2/24"


def test_ipv6_router_forwards_both_families() -> None:
    topo = parse(textwrap.dedent("""\
        name: v6
        nodes:
          r: {kind: router, interfaces: {e1: "fd00:1::1/64", e2: 10.0.0.1/24}}
          h: {kind: host, interfaces: {eth0: "fd00:1::2/64"}, gateway: "fd00:1::1"}
          g: {kind: host, interfaces: {eth0: 10.0.0.2/24}}
        links: [[r:e1, h:eth0], [r:e2, g:eth0]]
        """))
    assert dict(topo.node("r").all_sysctls()) == {
        "net.ipv4.ip_forward": "1", "net.ipv6.conf.all.forwarding": "1"}
    assert str(topo.node("h").routes[0].to) == "::/0"


def test_address_to_reach() -> None:
    topo = load_file(WALKTHROUGH)
    ip = ipaddress.ip_address
    assert topo.address_to_reach("red1", "red2") == ip("10.0.0.2")  # same subnet wins
    assert topo.address_to_reach("controller", "server2") == ip("172.16.2.1")  # tunnel IP
    assert topo.address_to_reach("controller", "internet") == ip("172.16.3.254")
    assert topo.address_to_reach("red1", "internet:eth2") == ip("172.16.2.254")
    assert topo.address_to_reach("red1", "192.0.2.9") == ip("192.0.2.9")
    with pytest.raises(KeyError):
        topo.address_to_reach("red1", "nosuch")
    with pytest.raises(KeyError):
        topo.address_to_reach("red1", "server1:s1-eth1")  # a bridged port has no address


def test_ovsdb_endpoints_forms() -> None:
    topo = parse(textwrap.dedent("""\
        name: o
        nodes:
          v:
            kind: hwvtep
            tunnel_ip: 10.0.0.1
            interfaces: {eth0: [10.0.0.1/24, 10.0.1.1/24]}
            ovsdb: [ptcp:6640, "ptcp:6641:10.0.1.1", "pssl:6642:0.0.0.0", punix:/tmp/x.sock]
          c: {kind: controller, interfaces: {eth0: [10.0.0.2/24]}, targets: [v]}
        links: [[v:eth0, c:eth0]]
        """))
    assert topo.ovsdb_endpoints(topo.node("v")) == (
        "tcp:10.0.0.1:6640", "tcp:10.0.1.1:6641", "ssl:10.0.0.1:6642", "unix:/tmp/x.sock")


# --------------------------------------------------------------------------- errors


def test_yaml_syntax_error_has_position() -> None:
    assert one_problem("name: x\nnodes: [a\n") == \
        "t.yaml:3:1: invalid YAML: expected ',' or ']', but got '<stream end>'"


def test_empty_and_non_mapping() -> None:
    assert one_problem("") == "t.yaml:1:1: the file is empty"
    assert one_problem("- a\n") == "t.yaml:1:1: expected a mapping"


def test_top_level_fields() -> None:
    assert problems("colour: red\n") == [
        "t.yaml:1:1: colour: unknown field 'colour' for a topology (allowed: name, nodes, links)",
        "t.yaml:1:1: name: missing required field 'name'",
        "t.yaml:1:1: nodes: missing required field 'nodes'",
    ]
    assert one_problem("name: a b\nnodes: {h: {kind: host}}\n") == (
        "t.yaml:1:7: name: lab name 'a b' must be 1-20 letters, digits, '-' or '_', "
        "starting with a letter or digit")
    assert one_problem("name: x\nnodes: {}\n") == \
        "t.yaml:2:8: nodes: a lab needs at least one node"


def test_unknown_kind_and_missing_kind() -> None:
    assert one_problem("""\
        name: x
        nodes:
          s1:
            kind: switch
        """) == ("t.yaml:4:11: nodes.s1.kind: unknown kind 'switch' "
                 "(expected one of: host, hypervisor, hwvtep, router, controller)")
    assert one_problem("""\
        name: x
        nodes:
          s1:
            interfaces: {}
        """) == ("t.yaml:4:5: nodes.s1: missing required field 'kind' "
                 "(one of: host, hypervisor, hwvtep, router, controller)")


def test_field_not_allowed_for_kind() -> None:
    assert one_problem("""\
        name: x
        nodes:
          h:
            kind: host
            tunnel_ip: 10.0.0.1
        """) == ("t.yaml:5:5: nodes.h.tunnel_ip: unknown field 'tunnel_ip' for a node of kind "
                 "host (allowed: kind, interfaces, routes, gateway, sysctls, daemons)")


def test_duplicate_node_names() -> None:
    assert one_problem("""\
        name: x
        nodes:
          h1: {kind: host}
          h2: {kind: host}
          h1: {kind: router}
        """) == "t.yaml:5:3: nodes.h1: duplicate key 'h1' (first at line 3)"


def test_bad_node_name() -> None:
    assert one_problem("""\
        name: x
        nodes:
          "red one": {kind: host}
        """) == ("t.yaml:3:3: nodes.red one: node name 'red one' must be 1-24 letters, digits, "
                 "'-' or '_', starting with a letter or digit")


def test_interface_name_too_long_and_invalid() -> None:
    assert problems("""\
        name: x
        nodes:
          h:
            kind: host
            interfaces:
              a-very-long-name0: {}
              "a/b": {}
              lo: {}
        """) == [
        "t.yaml:6:7: nodes.h.interfaces.a-very-long-name0: interface name "
        "'a-very-long-name0' is longer than 15 characters",
        "t.yaml:7:7: nodes.h.interfaces.a/b: interface name 'a/b' may not be '.', '..' or "
        "contain '/', ':' or spaces",
        "t.yaml:8:7: nodes.h.interfaces.lo: interface name 'lo' is the namespace's loopback",
    ]


def test_link_endpoint_interface_name_too_long() -> None:
    assert one_problem("""\
        name: x
        nodes: {h: {kind: host}, g: {kind: host}}
        links:
          - [h:eth0, g:this-name-is-too-long]
        """) == ("t.yaml:4:14: links[0][1]: interface name 'this-name-is-too-long' is longer "
                 "than 15 characters")


def test_invalid_addresses() -> None:
    assert problems("""\
        name: x
        nodes:
          h:
            kind: host
            interfaces:
              eth0: [10.0.0.300/24, 10.0.0.1, 10.0.0.0/24, 10.0.0.255/24, 127.0.0.1/8, ~]
        """) == [
        "t.yaml:6:14: nodes.h.interfaces.eth0.addresses[0]: '10.0.0.300/24' is not an IP "
        "address with a prefix length (CIDR)",
        "t.yaml:6:29: nodes.h.interfaces.eth0.addresses[1]: '10.0.0.1' lacks a prefix length "
        "(write it as CIDR, e.g. 10.0.0.1/24)",
        "t.yaml:6:39: nodes.h.interfaces.eth0.addresses[2]: 10.0.0.0/24 is the network "
        "address of 10.0.0.0/24",
        "t.yaml:6:52: nodes.h.interfaces.eth0.addresses[3]: 10.0.0.255/24 is the broadcast "
        "address of 10.0.0.0/24",
        "t.yaml:6:67: nodes.h.interfaces.eth0.addresses[4]: 127.0.0.1/8 is not a usable "
        "interface address",
        "t.yaml:6:80: nodes.h.interfaces.eth0.addresses[5]: missing value",
    ]


def test_invalid_macs() -> None:
    assert problems("""\
        name: x
        nodes:
          h:
            kind: host
            interfaces:
              e0: {mac: "02:00:00:00:01"}
              e1: {mac: "03:00:00:00:00:01"}
              e2: {mac: "00:00:00:00:00:00"}
              e3: {mac: "02:00:00:00:00:0g"}
        """) == [
        "t.yaml:6:17: nodes.h.interfaces.e0.mac: '02:00:00:00:01' is not a MAC address "
        "(six hex bytes separated by ':')",
        "t.yaml:7:17: nodes.h.interfaces.e1.mac: 03:00:00:00:00:01 is a multicast MAC; an "
        "interface needs a unicast one",
        "t.yaml:8:17: nodes.h.interfaces.e2.mac: 00:00:00:00:00:00 is not a usable MAC",
        "t.yaml:9:17: nodes.h.interfaces.e3.mac: '02:00:00:00:00:0g' is not a MAC address "
        "(six hex bytes separated by ':')",
    ]


def test_duplicate_mac_in_lab() -> None:
    assert one_problem("""\
        name: x
        nodes:
          a: {kind: host, interfaces: {eth0: {mac: "02:00:00:00:00:01"}}}
          b: {kind: host, interfaces: {eth0: {mac: "02:00:00:00:00:01"}}}
        links: [[a:eth0, b:eth0]]
        """) == ("t.yaml:4:44: nodes.b.interfaces.eth0.mac: MAC 02:00:00:00:00:01 is already "
                 "used by a:eth0 (line 3)")


def test_links_to_missing_nodes_and_interfaces_used_twice() -> None:
    assert problems("""\
        name: x
        nodes:
          a: {kind: host}
          b: {kind: host}
          c: {kind: host}
        links:
          - [a:eth0, b:eth0]
          - [a:eth0, c:eth0]
          - [c:eth1, ghost:eth0]
        """) == [
        "t.yaml:8:6: links[1][0]: interface a:eth0 is already used by the link at line 7",
        "t.yaml:9:14: links[2][1]: no node named 'ghost'",
    ]


def test_link_shapes() -> None:
    assert problems("""\
        name: x
        nodes: {a: {kind: host}, b: {kind: host}}
        links:
          - [a:eth0]
          - [a-eth1, b:eth1]
          - {endpoints: [a:eth2, b:eth2], mtu: 20}
          - {mtu: 1500}
          - {endpoints: [a:eth3, b:eth3], colour: red}
        """) == [
        "t.yaml:4:5: links[0]: a link joins exactly 2 endpoints, not 1",
        "t.yaml:5:6: links[1][0]: 'a-eth1' is not NODE:INTERFACE",
        "t.yaml:6:40: links[2].mtu: mtu 20 is out of range 68..65535",
        "t.yaml:7:5: links[3]: missing required field 'endpoints'",
        "t.yaml:8:35: links[4].colour: unknown field 'colour' for a link "
        "(allowed: endpoints, mtu)",
    ]


def test_declared_interface_without_link() -> None:
    assert one_problem("""\
        name: x
        nodes:
          a: {kind: host, interfaces: {eth0: 10.0.0.1/24, eth1: 10.0.1.1/24}}
          b: {kind: host, interfaces: {eth0: 10.0.0.2/24}}
        links: [[a:eth0, b:eth0]]
        """) == ("t.yaml:3:57: nodes.a.interfaces.eth1: interface eth1 of node a is not "
                 "connected by any link")


def test_overlapping_subnets_in_one_node() -> None:
    assert problems("""\
        name: x
        nodes:
          r:
            kind: router
            interfaces:
              e1: 10.0.0.1/24
              e2: 10.0.0.129/25
              e3: [10.0.1.1/24, 10.0.1.1/24]
          a: {kind: host}
          b: {kind: host}
          c: {kind: host}
        links: [[r:e1, a:eth0], [r:e2, b:eth0], [r:e3, c:eth0]]
        """) == [
        "t.yaml:7:11: nodes.r.interfaces.e2.addresses[0]: 10.0.0.129/25 overlaps 10.0.0.0/24 "
        "on interface e1 (line 6)",
        "t.yaml:8:25: nodes.r.interfaces.e3.addresses[1]: address 10.0.1.1 is already on "
        "interface e3 (line 8)",
    ]


def test_same_addresses_in_separate_nodes_are_fine() -> None:
    parse(textwrap.dedent("""\
        name: x
        nodes:
          red: {kind: host, interfaces: {eth0: 10.0.0.1/24}}
          blue: {kind: host, interfaces: {eth0: 10.0.0.1/24}}
          redp: {kind: host, interfaces: {eth0: 10.0.0.2/24}}
          bluep: {kind: host, interfaces: {eth0: 10.0.0.2/24}}
        links: [[red:eth0, redp:eth0], [blue:eth0, bluep:eth0]]
        """))


def test_link_ends_must_share_a_subnet() -> None:
    assert problems("""\
        name: x
        nodes:
          a: {kind: host, interfaces: {eth0: 10.0.0.1/24, eth1: 10.0.1.1/24}}
          b: {kind: host, interfaces: {eth0: 10.9.0.1/24, eth1: 10.0.1.1/24}}
        links:
          - [a:eth0, b:eth0]
          - [a:eth1, b:eth1]
        """) == [
        "t.yaml:6:5: links[0]: a:eth0 (10.0.0.1/24) and b:eth0 (10.9.0.1/24) share no subnet",
        "t.yaml:7:5: links[1]: both ends of a:eth1 -- b:eth1 have address 10.0.1.1",
    ]


def test_routes() -> None:
    assert problems("""\
        name: x
        nodes:
          a:
            kind: host
            interfaces: {eth0: 10.0.0.1/24}
            gateway: 10.0.0.254
            routes:
              - {to: 0.0.0.0/0, via: 10.0.0.253}
              - {to: 10.5.0.0/16, via: 10.9.9.9}
              - {to: 10.6.0.1/16, via: 10.0.0.2}
              - {to: 10.7.0.0/16}
              - {to: "fd00::/64", via: 10.0.0.2}
              - {to: 10.8.0.0/16, via: 10.0.0.2, metric: 5}
          b: {kind: host, interfaces: {eth0: 10.0.0.2/24}}
        links: [[a:eth0, b:eth0]]
        """) == [
        "t.yaml:10:14: nodes.a.routes[2].to: '10.6.0.1/16' is not a destination network: "
        "10.6.0.1/16 has host bits set",
        "t.yaml:11:9: nodes.a.routes[3]: missing required field 'via'",
        "t.yaml:12:32: nodes.a.routes[4].via: next hop 10.0.0.2 is not of the same IP version "
        "as fd00::/64",
        "t.yaml:13:42: nodes.a.routes[5].metric: unknown field 'metric' for a route "
        "(allowed: to, via)",
    ]
    # semantic route checks (run once every field is well-formed)
    assert problems("""\
        name: x
        nodes:
          a:
            kind: host
            interfaces: {eth0: 10.0.0.1/24}
            gateway: 10.0.0.254
            routes:
              - {to: 0.0.0.0/0, via: 10.0.0.253}
              - {to: 10.5.0.0/16, via: 10.9.9.9}
          b: {kind: host, interfaces: {eth0: 10.0.0.2/24}}
        links: [[a:eth0, b:eth0]]
        """) == [
        "t.yaml:8:9: nodes.a.routes[0]: a route to 0.0.0.0/0 is already given at line 6",
        "t.yaml:9:9: nodes.a.routes[1]: next hop 10.9.9.9 is not in a subnet of any interface "
        "of node a",
    ]


HV = """\
name: x
nodes:
  hv:
    kind: hypervisor
    tunnel_ip: {tip}
    interfaces:
      eth0: 172.16.0.1/24
    networks:
      red: {{vni: {vni}, ports: [p1], remote_macs: {{"02:00:00:00:00:09": {remote}}}}}
      blue: {{vni: 5000, ports: [{blue_port}], flood: [172.16.0.2]}}
  r: {{kind: router, interfaces: {{eth0: 172.16.0.2/24}}}}
  h1: {{kind: host}}
  h2: {{kind: host}}
links: [[hv:eth0, r:eth0], [hv:p1, h1:eth0], [hv:p2, h2:eth0]]
"""


def hv(tip: str = "172.16.0.1", vni: str = "5001", remote: str = "172.16.0.2",
       blue_port: str = "p2") -> str:
    return HV.format(tip=tip, vni=vni, remote=remote, blue_port=blue_port)


def test_hypervisor_valid() -> None:
    node = parse(hv()).node("hv")
    assert [(n.name, n.vni, n.bridge, n.vxlan) for n in node.networks] == [
        ("red", 5001, "br5001", "vx5001"), ("blue", 5000, "br5000", "vx5000")]


def test_hypervisor_errors() -> None:
    assert one_problem(hv(tip="172.16.0.9")) == \
        "t.yaml:5:16: nodes.hv.tunnel_ip: tunnel_ip 172.16.0.9 is not an address of any " \
        "interface of node hv"
    assert one_problem(hv(vni="5000")) == \
        "t.yaml:10:19: nodes.hv.networks.blue.vni: vni 5000 is already used by network red"
    assert one_problem(hv(vni="16777216")) == \
        "t.yaml:9:18: nodes.hv.networks.red.vni: vni 16777216 is out of range 1..16777215"
    assert one_problem(hv(vni="red")) == \
        "t.yaml:9:18: nodes.hv.networks.red.vni: vni must be an integer"
    assert one_problem(hv(remote="172.16.0.1")) == \
        "t.yaml:9:72: nodes.hv.networks.red.remote_macs.02:00:00:00:00:09: remote VTEP " \
        "172.16.0.1 is this node's own tunnel_ip"
    assert one_problem(hv(remote='"fd00::1"')) == \
        "t.yaml:9:72: nodes.hv.networks.red.remote_macs.02:00:00:00:00:09: remote VTEP " \
        "fd00::1 is not of the same IP version as tunnel_ip 172.16.0.1"
    assert one_problem(hv(blue_port="p1")) == \
        "t.yaml:10:33: nodes.hv.networks.blue.ports[0]: port p1 is already in another " \
        "network (line 9)"
    assert one_problem(hv(blue_port="p9")) == \
        "t.yaml:10:33: nodes.hv.networks.blue.ports[0]: port 'p9' is not an interface of " \
        "node hv"


def test_hypervisor_reserved_names_and_missing_vni() -> None:
    assert one_problem(hv().replace("hv:p2", "hv:vx5000").replace("[p2]", "[vx5000]")) == \
        "t.yaml:14:47: nodes.hv.interfaces.vx5000: interface name 'vx5000' is reserved for " \
        "network blue (vni 5000)"
    assert one_problem(hv().replace("vni: 5000, ", "")) == \
        "t.yaml:10:13: nodes.hv.networks.blue: missing required field 'vni'"
    assert one_problem(hv().replace("    tunnel_ip: 172.16.0.1\n", "")) == \
        "t.yaml:4:5: nodes.hv: missing required field 'tunnel_ip'"


def test_tunnel_ip_on_a_bridged_port() -> None:
    assert problems(hv(blue_port="eth0")) == [
        "t.yaml:5:16: nodes.hv.tunnel_ip: tunnel_ip 172.16.0.1 is on eth0, which is a bridged "
        "port",
        "t.yaml:10:33: nodes.hv.networks.blue.ports[0]: port eth0 is bridged and must not have "
        "addresses",
    ]
    text = hv().replace("tunnel_ip: 172.16.0.1", "tunnel_ip: 172.16.5.1").replace(
        "eth0: 172.16.0.1/24", "eth0: 172.16.0.1/24\n      p1: 172.16.5.1/24")
    assert problems(text) == [
        "t.yaml:5:16: nodes.hv.tunnel_ip: tunnel_ip 172.16.5.1 is on p1, which is a bridged "
        "port",
        "t.yaml:10:32: nodes.hv.networks.red.ports[0]: port p1 is bridged and must not have "
        "addresses",
    ]


HW = """\
name: x
nodes:
  vt:
    kind: hwvtep
    tunnel_ip: 172.16.0.1
    interfaces:
      eth0: 172.16.0.1/24
    physical_ports: [{ports}]
    ovsdb: [{ovsdb}]
  c: {{kind: controller, interfaces: {{eth0: 172.16.0.2/24}}, targets: [{targets}]}}
  h1: {{kind: host}}
links: [[vt:eth0, c:eth0], [vt:s1-eth1, h1:eth0]]
"""


def hw(ports: str = "s1-eth1", ovsdb: str = "ptcp:6640", targets: str = "vt") -> str:
    return HW.format(ports=ports, ovsdb=ovsdb, targets=targets)


def test_hwvtep_and_controller() -> None:
    topo = parse(hw())
    assert topo.node("vt").physical_ports == ("s1-eth1",)
    assert topo.node("c").targets == ("vt",)
    assert one_problem(hw(ports="s1-eth1, s1-eth1")) == \
        "t.yaml:8:31: nodes.vt.physical_ports[1]: physical port s1-eth1 is listed twice"
    assert problems(hw(ports="s1-eth1, eth0")) == [
        "t.yaml:5:16: nodes.vt.tunnel_ip: tunnel_ip 172.16.0.1 is on eth0, which is a bridged "
        "port",
        "t.yaml:8:31: nodes.vt.physical_ports[1]: port eth0 is bridged and must not have "
        "addresses",
    ]
    assert one_problem(hw(ports="s1-eth1, s1-eth9")) == \
        "t.yaml:8:31: nodes.vt.physical_ports[1]: port 's1-eth9' is not an interface of node vt"
    assert one_problem(hw(ovsdb="tcp:6640")) == \
        "t.yaml:9:13: nodes.vt.ovsdb[0]: 'tcp:6640' is not a listener (expected " \
        "ptcp:PORT[:IP], pssl:PORT[:IP] or punix:PATH)"
    assert one_problem(hw(ovsdb="ptcp:0")) == \
        "t.yaml:9:13: nodes.vt.ovsdb[0]: 'ptcp:0' is not a listener: port 0 is out of range " \
        "1..65535"
    assert one_problem(hw(ovsdb='"ptcp:6640:10.9.9.9"')) == \
        "t.yaml:9:13: nodes.vt.ovsdb[0]: listener address 10.9.9.9 is not an address of node vt"
    assert one_problem(hw(targets="h1")) == \
        "t.yaml:10:70: nodes.c.targets[0]: target h1 is a host, not an hwvtep node"
    assert one_problem(hw(targets="zz")) == \
        "t.yaml:10:70: nodes.c.targets[0]: no node named 'zz'"
    assert one_problem(hw(ovsdb="", targets="vt")) == \
        "t.yaml:10:70: nodes.c.targets[0]: target vt has no ovsdb listener"


def test_physical_switch_name_and_reserved_daemons() -> None:
    assert parse(hw()).node("vt").switch_name == "vt"  # default: the node's name
    named = parse(hw().replace("    ovsdb:", "    physical_switch: s9\n    ovsdb:"))
    assert named.node("vt").physical_switch == "s9" and named.node("vt").switch_name == "s9"
    assert parse(WALKTHROUGH.read_text()).node("server2").switch_name == "s2"
    assert one_problem(hw().replace("    ovsdb:", '    physical_switch: " s9"\n    ovsdb:')) \
        == "t.yaml:9:22: nodes.vt.physical_switch: physical switch name ' s9' must be " \
        "printable, without surrounding spaces"
    taken = hw().replace("    ovsdb:", "    daemons: {agent: sleep 1, mine: sleep 1}\n    ovsdb:")
    assert one_problem(taken) == \
        "t.yaml:9:22: nodes.vt.daemons.agent: daemon name 'agent' is taken by the hwvtep " \
        "node's own daemons (ovsdb-server, agent)"
    # a host may call its daemon anything
    assert parse(ROUTED.replace("    gateway: 10.2.0.254\n",
                                "    gateway: 10.2.0.254\n    daemons: {agent: sleep 1}\n"))


def finder(*missing: str) -> Callable[[str], str | None]:
    return lambda name: None if name in missing else f"/usr/bin/{name}"


def test_programs_that_up_would_start_must_exist() -> None:
    text = hw().replace("  h1: {kind: host}",
                        "  h1: {kind: host, daemons: {d: nosuchd -x, p: /opt/nope, ok: sleep 1}}")
    assert parse(textwrap.dedent(text), "t.yaml", tools=finder()).node("h1").daemons
    with pytest.raises(TopologyError) as info:
        parse(text, "t.yaml", tools=finder("nosuchd", "/opt/nope", "hwvtep"))
    assert [str(p) for p in info.value.problems] == [
        "t.yaml:4:11: nodes.vt.kind: an hwvtep node runs `hwvtep ovsdb-server` and "
        "`hwvtep agent`, but the hwvtep command is not found",
        "t.yaml:11:33: nodes.h1.daemons.d: command 'nosuchd' is not found on PATH",
        "t.yaml:11:48: nodes.h1.daemons.p: command '/opt/nope' is not an executable file",
    ]
    with pytest.raises(TopologyError) as info:
        parse(text, "t.yaml", tools=finder("ip"))
    assert [str(p) for p in info.value.problems] == [
        "t.yaml:3:3: nodes: command 'ip' (iproute2) is not found on PATH; the lab starts its "
        "daemons with `ip netns exec`"]
    # without daemons nothing is looked up; without `tools` nothing is checked
    assert parse(ROUTED, "t.yaml", tools=finder("ip", "hwvtep"))
    assert parse(text, "t.yaml")
    # other problems first: the program check runs on a file that is otherwise right
    with pytest.raises(TopologyError) as info:
        parse(text.replace("vt:eth0", "ghost:eth0"), "t.yaml", tools=finder("nosuchd"))
    assert "command 'nosuchd' is not found on PATH" not in str(info.value)
    assert "no node named 'ghost'" in str(info.value)


def test_walkthrough_files_fit_the_example() -> None:
    from hwvtep.lab import walkthrough as wt

    topo = load_file(WALKTHROUGH)
    assert wt.json_dir(WALKTHROUGH) == WALKTHROUGH.parent
    assert wt.fit_problems(topo, wt.EXAMPLES) == []
    red = wt.Attachment.read(wt.EXAMPLES / "attach_red2.json")
    blue = wt.Attachment.read(wt.EXAMPLES / "attach_blue2.json")
    assert (red.port, red.vni, red.locator_ip, red.remote_mac) == \
        ("s2-eth1", 5000, "172.16.1.1", "02:00:00:00:01:01")
    assert (blue.port, blue.vni, blue.locator_ip, blue.remote_mac) == \
        ("s2-eth2", 5001, "172.16.1.1", "02:00:00:00:01:02")
    assert wt.fit_problems(parse(ROUTED), wt.EXAMPLES)[0] == \
        "node red1 must be a host node (missing)"
    moved = parse(WALKTHROUGH.read_text().replace("s1-eth1", "s1-eth3"))
    assert wt.fit_problems(moved, wt.EXAMPLES) == []
    swapped = parse(WALKTHROUGH.read_text().replace('"red2:eth0", "server2:s2-eth1"',
                                                    '"red2:eth0", "server2:s2-eth3"')
                    .replace("physical_ports: [s2-eth1,", "physical_ports: [s2-eth3,"))
    assert wt.fit_problems(swapped, wt.EXAMPLES) == [
        f"{wt.EXAMPLES / 'attach_red2.json'} binds server2 port s2-eth1, which must be a "
        "physical port linked to red2"]
    recolored = parse(WALKTHROUGH.read_text().replace("vni: 5000", "vni: 5005"))
    assert wt.fit_problems(recolored, wt.EXAMPLES) == [
        f"{wt.EXAMPLES / 'attach_red2.json'} uses VNI 5000, but server1 puts red1 on [5005]"]


def test_walkthrough_json_files_are_transactions() -> None:
    from hwvtep.lab import walkthrough as wt

    for name in wt.JSON_FILES:
        ops = json.loads((wt.EXAMPLES / name).read_text())
        assert ops[0] == "hardware_vtep" and all("op" in op for op in ops[1:]), name
    # the locator is inserted once (by attach_red2), reused by blue through its UUID
    red = json.loads((wt.EXAMPLES / "attach_red2.json").read_text())
    blue = json.loads((wt.EXAMPLES / "attach_blue2.json").read_text())
    loc = next(op["uuid"] for op in red[1:] if op.get("table") == "Physical_Locator")
    assert not any(op["op"] == "insert" and op["table"] == "Physical_Locator"
                   for op in blue[1:])
    assert any(op["op"] == "wait" and op["where"] == [["_uuid", "==", ["uuid", loc]]]
               for op in blue[1:])


def test_duplicate_tunnel_ips() -> None:
    v2 = ("  v2:\n"
          "    kind: hwvtep\n"
          "    tunnel_ip: 172.16.0.1\n"
          "    interfaces: {eth0: 172.16.1.1/24, eth1: 172.16.0.1/24}\n")
    text = hw().replace("  h1: {kind: host}\n", "  h1: {kind: host}\n" + v2).replace(
        "links: [", "links: [[v2:eth0, h1:eth1], [v2:eth1, h1:eth2], ")
    assert problems(text) == [
        "t.yaml:14:16: nodes.v2.tunnel_ip: tunnel_ip 172.16.0.1 is also the tunnel_ip of "
        "node vt",
    ]


def test_daemons_and_sysctls_errors() -> None:
    assert problems("""\
        name: x
        nodes:
          h:
            kind: host
            daemons:
              "bad/name": sleep 1
              quote: "sleep 'unterminated"
              empty: []
            sysctls:
              kernel.pid_max: 10
              net.ipv4.ip_forward: ~
        """) == [
        "t.yaml:6:7: nodes.h.daemons.bad/name: daemon name 'bad/name' must be letters, digits, "
        "'.', '-', '_'",
        "t.yaml:7:14: nodes.h.daemons.quote: cannot split the command line: No closing "
        "quotation",
        "t.yaml:8:14: nodes.h.daemons.empty: empty command",
        "t.yaml:10:7: nodes.h.sysctls.kernel.pid_max: sysctl 'kernel.pid_max' is not a "
        "per-namespace 'net.' setting",
        "t.yaml:11:28: nodes.h.sysctls.net.ipv4.ip_forward: missing value",
    ]


def test_shape_errors() -> None:
    assert problems("""\
        name: [x]
        nodes:
          h:
            kind: host
            interfaces: [eth0]
            routes: {to: x}
        links: {a: b}
        """) == [
        "t.yaml:1:7: name: expected a string",
        "t.yaml:5:17: nodes.h.interfaces: expected a mapping",
        "t.yaml:6:13: nodes.h.routes: expected a list",
        "t.yaml:7:8: links: expected a list",
    ]


def test_all_problems_reported_in_file_order() -> None:
    found = problems("""\
        name: bad lab
        nodes:
          h1:
            kind: host
            interfaces:
              eth0: {addresses: [10.0.0.300/24], mac: "03:00:00:00:00:01"}
          h2:
            kind: switch
        """)
    assert [f.split(":")[1] for f in found] == ["1", "6", "6", "8"]


def test_load_file_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(TopologyError) as info:
        load_file(tmp_path / "nope.yaml")
    assert str(info.value) == f"{tmp_path / 'nope.yaml'}:1:1: cannot read: No such file " \
        "or directory"
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nnodes:\n  h: {kind: nope}\n")
    with pytest.raises(TopologyError) as info:
        load_file(bad)
    assert str(info.value).startswith(f"{bad}:3:13: nodes.h.kind: unknown kind 'nope'")


# --------------------------------------------------------------------------- graph


def test_graph_outputs_mention_every_node_and_link() -> None:
    topo = load_file(WALKTHROUGH)
    mermaid = graph.to_mermaid(topo)
    assert mermaid.startswith("graph LR\n")
    assert 'n_server2{{"server2 (hwvtep)<br/>eth0 172.16.2.1/24<br/>VTEP 172.16.2.1' in mermaid
    assert mermaid.count("---|") == len(topo.links)
    assert 'n_server1 ---|"eth0 — eth1 (mtu 1600)"| n_internet' in mermaid
    dot = graph.to_dot(topo)
    assert dot.startswith('graph "walkthrough" {')
    assert dot.count(" -- ") == len(topo.links)
    assert '"red2" -- "server2" [taillabel="eth0", headlabel="s2-eth1"];' in dot
    page = graph.to_html(topo)
    assert page.startswith("<!DOCTYPE html>") and "<svg" in page
    assert "<script" not in page and "http://" not in page.replace(
        'xmlns="http://www.w3.org/2000/svg"', "")  # self-contained
    for node in topo.nodes:
        assert f"<title>{node.name}</title>" in page
    assert "tcp:172.16.2.1:6640" in page


def test_graph_layout_boxes_do_not_overlap() -> None:
    topo = load_file(WALKTHROUGH)
    pos = graph.layout(topo)
    names = list(pos)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            (xa, ya), (xb, yb) = pos[a], pos[b]
            assert abs(xa - xb) >= 210 or abs(ya - yb) >= 100, (a, b)


def test_graph_escapes_labels() -> None:
    topo = parse(textwrap.dedent("""\
        name: e
        nodes:
          a: {kind: host, daemons: {x: "echo '<b>'"}}
        """))
    assert "<b>" not in graph.to_html(topo).split("<h1>")[1]
    assert isinstance(topo, Topology)


# --------------------------------------------------------------------------- icmp


def test_icmp_checksum_and_echo_roundtrip() -> None:
    packet = icmp.echo_request(0x1234, 7, b"abcdefgh")
    assert icmp.checksum(packet) == 0  # a correct checksum sums to zero
    assert packet[:2] == b"\x08\x00"
    # a reply is the request with type 0 and a fixed checksum; v4 raw sockets add the IP header
    reply = bytearray(packet)
    reply[0] = 0
    reply[2:4] = b"\0\0"
    reply[2:4] = icmp.checksum(bytes(reply)).to_bytes(2, "big")
    ip_header = bytes([0x45]) + bytes(19)
    assert icmp.parse_echo_reply(ip_header + bytes(reply), 0x1234) == 7
    assert icmp.parse_echo_reply(ip_header + bytes(reply), 0x4321) is None
    assert icmp.parse_echo_reply(ip_header + packet, 0x1234) is None  # a request, not a reply
    assert icmp.parse_echo_reply(b"\x45", 0x1234) is None
    v6 = icmp.echo_request(1, 2, b"", v6=True)
    assert v6[0] == 128
    assert icmp.parse_echo_reply(bytes([129]) + v6[1:], 1, v6=True) == 2


def test_ping_summary() -> None:
    result = icmp.PingResult(ipaddress.ip_address("10.0.0.2"), sent=4, received=3,
                             rtts_ms=[1.0, 2.0, 3.0])
    assert result.ok
    assert result.summary() == "4 sent, 3 received, 25% loss, rtt min/avg/max " \
        "1.000/2.000/3.000 ms"
    assert not icmp.PingResult(ipaddress.ip_address("10.0.0.2"), sent=2).ok


# --------------------------------------------------------------------------- state file


def test_state_file_records_before_and_round_trips(tmp_path: Path) -> None:
    from hwvtep.lab import state as st

    topo = parse(ROUTED, str(tmp_path / "routed.yaml"))
    state = st.LabState.create(tmp_path, topo, ROUTED)
    assert state.path == tmp_path / "routed" / "state.json"
    assert re.fullmatch(r"hwl-routed-[0-9a-f]{6}-h1", state.namespace("h1"))
    obj = state.record({"kind": "netns", "node": "h1", "name": state.namespace("h1"),
                        "inode": None})
    on_disk = st.LabState.load(state.path)  # written before the caller creates anything
    assert on_disk.objects[-1] == obj
    assert on_disk.topology() == topo and on_disk.phase == st.CREATING
    assert on_disk.netns_of("h1") == state.namespace("h1")
    with pytest.raises(st.LabError, match="has no node h9"):
        on_disk.netns_of("h9")
    state.forget(obj)
    assert st.LabState.load(state.path).find("netns", node="h1") is None
    assert [s.lab for s in st.list_labs(tmp_path)] == ["routed"]
    assert st.pick_lab(tmp_path, None).lab_id == state.lab_id
    with pytest.raises(st.LabError, match="no lab named nope"):
        st.pick_lab(tmp_path, "nope")


def test_state_file_errors(tmp_path: Path) -> None:
    from hwvtep.lab import state as st

    with pytest.raises(st.LabError, match="no lab is up"):
        st.pick_lab(tmp_path, None)
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "state.json").write_text('{"version": 99}')
    with pytest.raises(st.LabError, match="is not a version 1 lab state file"):
        st.LabState.load(tmp_path / "x" / "state.json")
    (tmp_path / "x" / "state.json").write_text('{"version": 1, "lab": "x"}')
    with pytest.raises(st.LabError, match="is damaged"):
        st.LabState.load(tmp_path / "x" / "state.json")
    # a lab directory holding foreign files is never adopted
    topo = parse(ROUTED.replace("name: routed", "name: x"))
    with pytest.raises(st.LabError, match="exists and holds no lab state"):
        st.LabState.create(tmp_path, topo, ROUTED)
    a = parse(ROUTED.replace("name: routed", "name: a"))
    b = parse(ROUTED.replace("name: routed", "name: b"))
    st.LabState.create(tmp_path, a, ROUTED)
    st.LabState.create(tmp_path, b, ROUTED)
    with pytest.raises(st.LabError, match=r"several labs are up \(a, b\); name one"):
        st.pick_lab(tmp_path, None)


def test_node_table() -> None:
    from hwvtep.lab.cli import node_table

    table = node_table(load_file(WALKTHROUGH), None).splitlines()
    assert table[0].split() == ["NODE", "KIND", "INTERFACE", "ADDRESSES", "MAC", "OVSDB"]
    assert table[8].split() == ["server2", "hwvtep", "eth0", "172.16.2.1/24",
                                "02:00:00:00:0a:02", "tcp:172.16.2.1:6640"]
    assert table[9].split() == ["s2-eth1", "(physical", "port)"]
    assert table[6].split() == ["s1-eth1", "(port,", "red", "vni", "5000)"]
