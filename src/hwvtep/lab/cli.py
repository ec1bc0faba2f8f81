"""`hwvtep lab`: containerlab/netlab-style verbs around a YAML topology.

    hwvtep lab up FILE            build (or complete) the lab, print its nodes
    hwvtep lab down [NAME]        remove what the lab created (no NAME: the lab that is up)
    hwvtep lab status [NAME]      is every recorded object still there?
    hwvtep lab exec NODE -- CMD   run a command inside a node
    hwvtep lab shell NODE         interactive shell inside a node
    hwvtep lab ping A B           ICMP echo from A to B; the exit status tells
    hwvtep lab graph [FILE|NAME]  Mermaid, Graphviz dot or a standalone HTML page
    hwvtep lab walkthrough [FILE] the reference HW VTEP walkthrough, step by step, checked
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from hwvtep.lab import state as st
from hwvtep.lab.state import LabError, LabState
from hwvtep.lab.topology import Topology, TopologyError, load_file


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--lab-dir", type=Path, default=None,
                        help=f"where lab state lives (default $HWVTEP_LAB_DIR or "
                             f"{st.DEFAULT_ROOT})")
    which = argparse.ArgumentParser(add_help=False)
    which.add_argument("--lab", default=None, help="lab name (default: the lab that is up)")

    p = argparse.ArgumentParser(prog="hwvtep lab", description="network-namespace labs")
    sub = p.add_subparsers(dest="verb", required=True, metavar="VERB")

    s = sub.add_parser("up", parents=[common], help="create the lab described by FILE")
    s.add_argument("file", type=Path)
    s.add_argument("-q", "--quiet", action="store_true", help="print only the final table")

    s = sub.add_parser("down", parents=[common], help="remove what a lab created")
    s.add_argument("name", nargs="?")

    s = sub.add_parser("status", parents=[common], help="check a lab's objects")
    s.add_argument("name", nargs="?")

    s = sub.add_parser("exec", parents=[common, which], help="run a command in a node")
    s.add_argument("node")
    s.add_argument("cmd", nargs=argparse.REMAINDER, help="-- COMMAND [ARG...]")

    s = sub.add_parser("shell", parents=[common, which], help="interactive shell in a node")
    s.add_argument("node")

    s = sub.add_parser("ping", parents=[common, which], help="ping from node A to B")
    s.add_argument("src", metavar="A")
    s.add_argument("dst", metavar="B", help="node, NODE:INTERFACE or IP address")
    s.add_argument("-c", "--count", type=int, default=3)
    s.add_argument("-i", "--interval", type=float, default=0.2)
    s.add_argument("-W", "--wait", type=float, default=1.0,
                   help="seconds to wait for replies after the last request")

    s = sub.add_parser("graph", parents=[common], help="draw a topology")
    s.add_argument("source", nargs="?", help="topology FILE or lab NAME (default: the lab up)")
    s.add_argument("-f", "--format", choices=("mermaid", "dot", "html"), default="mermaid")
    s.add_argument("-o", "--output", type=Path, help="write here instead of stdout")

    s = sub.add_parser("walkthrough", parents=[common],
                       help="bring the walkthrough lab up and run its steps, checked")
    s.add_argument("file", type=Path, nargs="?",
                   help="topology (default: the bundled examples/walkthrough.yaml)")
    s.add_argument("--client", default="hwvtep ovsdb-client", metavar="CMD",
                   help="the OVSDB client the controller uses (default: %(default)s; "
                        "e.g. ovsdb-client, Open vSwitch's)")
    return p


def _root(args: argparse.Namespace) -> Path:
    return Path(args.lab_dir) if args.lab_dir is not None else st.default_root()


def _need_root() -> None:
    if os.geteuid() != 0:
        raise LabError("network namespaces need root; run as root (or with sudo)")


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    try:
        result: int = _VERBS[args.verb](args)
        return result
    except TopologyError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(f"hwvtep lab: {len(exc.problems)} problem(s); nothing was created",
              file=sys.stderr)
        return 1
    except (LabError, KeyError) as exc:
        text = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        print(f"hwvtep lab: {text}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # e.g. `hwvtep lab status | head`: the reader is gone
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


# --------------------------------------------------------------------------- verbs


def _up(args: argparse.Namespace) -> int:
    from hwvtep.lab import netns

    # refuse a bad file (or one naming programs that are not there) before anything exists
    topo = load_file(args.file, tools=netns.find_tool)
    _need_root()
    text = Path(args.file).read_text(encoding="utf-8")
    root = _root(args)

    def progress(line: str) -> None:
        if not args.quiet:
            print(f"  {line}", flush=True)

    try:
        result = netns.up(topo, text, root=root, progress=progress)
    except LabError:
        raise
    except Exception as exc:
        raise LabError(
            f"up failed: {type(exc).__name__}: {exc}\n"
            f"  what was created is recorded in {st.state_path(root, topo.name)}; "
            f"`hwvtep lab up {args.file}` completes it, "
            f"`hwvtep lab down {topo.name}` removes it") from exc
    verb = "already up" if result.created == 0 else f"up in {result.seconds:.2f} s"
    print(f"lab {topo.name} {verb} (id {result.state.lab_id}, state {result.state.path})")
    print(node_table(topo, result.state))
    return 0


def node_table(topo: Topology, state: LabState | None) -> str:
    """NODE / KIND / INTERFACE / ADDRESS / MAC / OVSDB, one row per interface."""
    from hwvtep.lab.netns import DB_SOCKET, node_dir

    rows = [("NODE", "KIND", "INTERFACE", "ADDRESSES", "MAC", "OVSDB")]
    for node in topo.nodes:
        endpoints = list(topo.ovsdb_endpoints(node))
        if node.kind == "hwvtep" and state is not None:
            endpoints.append(f"unix:{node_dir(state, node.name) / DB_SOCKET}")
        roles: dict[str, str] = {}
        for net in node.networks:
            for port in net.ports:
                roles[port] = f"(port, {net.name} vni {net.vni})"
        for port in node.physical_ports:
            roles[port] = "(physical port)"
        for i, iface in enumerate(node.interfaces or ()):
            addrs = " ".join(str(a) for a in iface.addresses) or roles.get(iface.name, "")
            rows.append((node.name if i == 0 else "", node.kind if i == 0 else "", iface.name,
                         addrs, iface.mac or "", endpoints.pop(0) if endpoints else ""))
        if not node.interfaces:
            rows.append((node.name, node.kind, "", "", "", endpoints.pop(0) if endpoints else ""))
        for extra in endpoints:
            rows.append(("", "", "", "", "", extra))
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip()
             for r in rows]
    if state is not None:
        for node in topo.nodes:
            if node.kind != "hwvtep":
                continue
            pids = {}
            for name in ("ovsdb-server", "agent"):
                obj = state.find("process", node=node.name, name=name)
                pids[name] = obj.get("pid") if obj is not None else None
            lines.append(f"{node.name}: hwvtep ovsdb-server (pid {pids['ovsdb-server']}) "
                         f"serves hardware_vtep; hwvtep agent (pid {pids['agent']}) serves "
                         f"physical switch {node.switch_name} "
                         f"(ports {', '.join(node.physical_ports) or 'none'}); "
                         f"`hwvtep lab exec {node.name} -- hwvtep ctl show` talks to it")
        lines.append(f"namespaces: {state.prefix}<node>   "
                     f"(e.g. hwvtep lab exec {topo.nodes[0].name} -- ip addr)")
    return "\n".join(lines)


def _down(args: argparse.Namespace) -> int:
    from hwvtep.lab import netns

    _need_root()
    state = st.pick_lab(_root(args), args.name)
    result = netns.down(state, progress=lambda line: print(f"  {line}", flush=True))
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"lab {state.lab} down in {result.seconds:.2f} s "
          f"({len(result.removed)} object(s) removed)")
    return 0


def _status(args: argparse.Namespace) -> int:
    from hwvtep.lab import netns

    root = _root(args)
    if args.name is None and not st.list_labs(root):
        print(f"no lab is up (nothing under {root})")
        return 0
    state = st.pick_lab(root, args.name)
    objects = netns.status(state)
    print(f"lab {state.lab}: {state.phase} (id {state.lab_id}, from {state.source_file})")
    for obj in objects:
        mark = "ok " if obj.ok else "BAD"
        detail = f"  {obj.detail}" if obj.detail else ""
        print(f"  {mark} {obj.kind:<8} {obj.what}{detail}")
    healthy = state.phase == st.UP and all(o.ok for o in objects)
    if not healthy:
        print(f"lab {state.lab} is not complete: `hwvtep lab up {state.source_file}` completes "
              f"it, `hwvtep lab down {state.lab}` removes it")
    return 0 if healthy else 1


def _exec(args: argparse.Namespace) -> int:
    from hwvtep.lab import netns

    _need_root()
    cmd = list(args.cmd)
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    if not cmd:
        raise LabError("nothing to run: hwvtep lab exec NODE -- COMMAND [ARG...]")
    state = st.pick_lab(_root(args), args.lab)
    return netns.run_in_node(state, args.node, cmd)


def _shell(args: argparse.Namespace) -> int:
    from hwvtep.lab import netns

    _need_root()
    state = st.pick_lab(_root(args), args.lab)
    shell = os.environ.get("SHELL") or "/bin/bash"
    print(f"{args.node} in lab {state.lab}; leave with exit", file=sys.stderr)
    return netns.run_in_node(state, args.node, [shell, "-i"],
                             env={"PS1": f"[{state.lab}:{args.node}] \\w# "})


def _ping(args: argparse.Namespace) -> int:
    from hwvtep.lab import icmp

    _need_root()
    state = st.pick_lab(_root(args), args.lab)
    topo = state.topology()
    target = topo.address_to_reach(args.src, args.dst)
    result = icmp.ping(state.netns_of(args.src), target, count=args.count,
                       interval=args.interval, wait=args.wait)
    print(f"{args.src} -> {args.dst} ({target}): {result.summary()}")
    return 0 if result.ok else 1


def _graph(args: argparse.Namespace) -> int:
    from hwvtep.lab import graph

    source = args.source
    if source is not None and (Path(source).is_file() or source.endswith((".yaml", ".yml"))):
        topo = load_file(source)
    else:
        topo = st.pick_lab(_root(args), source).topology()
    text = {"mermaid": graph.to_mermaid, "dot": graph.to_dot, "html": graph.to_html}[
        args.format](topo)
    if args.output is not None:
        args.output.write_text(text, encoding="utf-8")
        print(f"wrote {args.output}")
    else:
        sys.stdout.write(text)
    return 0


def _walkthrough(args: argparse.Namespace) -> int:
    from hwvtep.lab import walkthrough

    if args.file is not None:
        load_file(args.file)  # a bad file is refused before root is asked for
    _need_root()
    return walkthrough.run(args.file, root=_root(args), client=args.client)


_VERBS = {"up": _up, "down": _down, "status": _status, "exec": _exec, "shell": _shell,
          "ping": _ping, "graph": _graph, "walkthrough": _walkthrough}
