"""Pictures of a lab topology: Mermaid, Graphviz dot, and a self-contained HTML page.

The HTML page draws its own SVG (no script, no network access) so it can be opened
anywhere; the Mermaid and dot texts are for documents and for `dot -Tsvg`.
"""

from __future__ import annotations

import html
import math
from collections import deque

from hwvtep.lab.topology import Link, Node, Topology

_SHAPES = {  # mermaid node shapes per kind
    "host": ('["', '"]'),
    "hypervisor": ('[["', '"]]'),
    "hwvtep": ('{{"', '"}}'),
    "router": ('(("', '"))'),
    "controller": ('[/"', '"/]'),
}
_DOT_SHAPES = {"host": "box", "hypervisor": "box3d", "hwvtep": "hexagon",
               "router": "circle", "controller": "parallelogram"}
_COLOURS = {"host": "#dbeafe", "hypervisor": "#fde68a", "hwvtep": "#fecaca",
            "router": "#d1fae5", "controller": "#e9d5ff"}


def _label_lines(node: Node) -> list[str]:
    lines = [f"{node.name} ({node.kind})"]
    for iface in node.interfaces:
        if iface.addresses:
            lines.append(f"{iface.name} {', '.join(str(a) for a in iface.addresses)}")
    if node.tunnel_ip is not None:
        lines.append(f"VTEP {node.tunnel_ip}")
    for net in node.networks:
        lines.append(f"{net.name}: VNI {net.vni} on {', '.join(net.ports) or '-'}")
    if node.ovsdb:
        lines.append("OVSDB " + ", ".join(node.ovsdb))
    return lines


def _mid(name: str) -> str:
    return "n_" + "".join(c if c.isalnum() else "_" for c in name)


def to_mermaid(topo: Topology) -> str:
    out = ["graph LR"]
    for node in topo.nodes:
        left, right = _SHAPES[node.kind]
        label = "<br/>".join(line.replace('"', "#quot;") for line in _label_lines(node))
        out.append(f"  {_mid(node.name)}{left}{label}{right}")
    for link in topo.links:
        label = f"{link.a.interface} — {link.b.interface}"
        if link.mtu:
            label += f" (mtu {link.mtu})"
        out.append(f'  {_mid(link.a.node)} ---|"{label}"| {_mid(link.b.node)}')
    for kind, colour in _COLOURS.items():
        members = [_mid(n.name) for n in topo.nodes if n.kind == kind]
        if members:
            out.append(f"  classDef {kind} fill:{colour},stroke:#333")
            out.append(f"  class {','.join(members)} {kind}")
    return "\n".join(out) + "\n"


def _dot_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(topo: Topology) -> str:
    out = [f"graph {_dot_quote(topo.name)} {{", "  layout=neato; overlap=false; splines=true;",
           '  node [style=filled, fontname="monospace", fontsize=10];',
           '  edge [fontname="monospace", fontsize=9];']
    for node in topo.nodes:
        label = "\\n".join(line.replace("\\", "\\\\").replace('"', '\\"')
                           for line in _label_lines(node))
        out.append(f'  {_dot_quote(node.name)} [label="{label}", '
                   f'shape={_DOT_SHAPES[node.kind]}, fillcolor="{_COLOURS[node.kind]}"];')
    for link in topo.links:
        attrs = f"taillabel={_dot_quote(link.a.interface)}, " \
                f"headlabel={_dot_quote(link.b.interface)}"
        if link.mtu:
            attrs += f", label={_dot_quote(f'mtu {link.mtu}')}"
        out.append(f"  {_dot_quote(link.a.node)} -- {_dot_quote(link.b.node)} [{attrs}];")
    out.append("}")
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- layout


def layout(topo: Topology, width: float = 900.0) -> dict[str, tuple[float, float]]:
    """Radial tree layout: each connected part around its best-connected node."""
    adj: dict[str, list[str]] = {n.name: [] for n in topo.nodes}
    for link in topo.links:
        if link.b.node not in adj[link.a.node] and link.a.node != link.b.node:
            adj[link.a.node].append(link.b.node)
            adj[link.b.node].append(link.a.node)
    order = {n.name: i for i, n in enumerate(topo.nodes)}
    placed: dict[str, tuple[float, float]] = {}
    parts: list[dict[str, tuple[float, float]]] = []
    for node in topo.nodes:
        if node.name in placed:
            continue
        # the component of this node
        comp, queue = {node.name}, deque([node.name])
        while queue:
            for peer in adj[queue.popleft()]:
                if peer not in comp:
                    comp.add(peer)
                    queue.append(peer)
        root = max(comp, key=lambda n: (len(adj[n]), topo.node(n).kind == "router", -order[n]))
        part = _radial(root, adj, order)
        placed.update(part)
        parts.append(part)
    # lay the parts side by side
    out: dict[str, tuple[float, float]] = {}
    x_offset = 0.0
    for part in parts:
        xs = [p[0] for p in part.values()]
        ys = [p[1] for p in part.values()]
        min_x, max_x = min(xs), max(xs)
        for name, (x, y) in part.items():
            out[name] = (x - min_x + x_offset, y - min(ys))
        x_offset += max_x - min_x + 220.0
    return out


def _radial(root: str, adj: dict[str, list[str]],
            order: dict[str, int]) -> dict[str, tuple[float, float]]:
    children: dict[str, list[str]] = {root: []}
    depth = {root: 0}
    queue = deque([root])
    while queue:
        cur = queue.popleft()
        for peer in sorted(adj[cur], key=order.__getitem__):
            if peer not in depth:
                depth[peer] = depth[cur] + 1
                children[cur].append(peer)
                children[peer] = []
                queue.append(peer)

    leaves: dict[str, int] = {}

    def count(n: str) -> int:
        leaves[n] = sum(count(c) for c in children[n]) or 1
        return leaves[n]

    count(root)
    pos: dict[str, tuple[float, float]] = {}
    ring = 250.0  # > the diagonal of a node box: a ring never overlaps its centre

    def place(n: str, start: float, span: float) -> None:
        angle = start + span / 2
        r = depth[n] * ring
        pos[n] = (r * math.cos(angle), r * math.sin(angle))
        at = start
        for c in children[n]:
            share = span * leaves[c] / leaves[n]
            place(c, at, share)
            at += share

    place(root, -math.pi / 2, 2 * math.pi)
    return pos


def to_html(topo: Topology) -> str:
    """A standalone page: an SVG drawing, a table of nodes, and the Mermaid source."""
    pos = layout(topo)
    box_w, line_h, pad = 210.0, 14.0, 60.0
    boxes = {n.name: _label_lines(n) for n in topo.nodes}
    max_x = max((x for x, _ in pos.values()), default=0.0)
    max_y = max((y for _, y in pos.values()), default=0.0)
    width = max_x + box_w + 2 * pad
    height = max_y + 2 * pad + line_h * max((len(v) for v in boxes.values()), default=1) + 20
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
           f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="monospace" font-size="11">']

    def centre(name: str) -> tuple[float, float]:
        x, y = pos[name]
        return x + pad + box_w / 2, y + pad + line_h * len(boxes[name]) / 2 + 5

    for link in topo.links:
        (x1, y1), (x2, y2) = centre(link.a.node), centre(link.b.node)
        svg.append(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" '
                   'stroke="#555" stroke-width="1.5"/>')
        for end, (xa, ya), (xb, yb) in ((link.a, (x1, y1), (x2, y2)),
                                        (link.b, (x2, y2), (x1, y1))):
            lx, ly = xa + (xb - xa) * 0.3, ya + (yb - ya) * 0.3
            svg.append(f'<text x="{lx:.1f}" y="{ly:.1f}" fill="#1d4ed8" text-anchor="middle">'
                       f"{html.escape(end.interface)}</text>")
    for node in topo.nodes:
        x, y = pos[node.name]
        lines = boxes[node.name]
        h = line_h * len(lines) + 10
        svg.append(f'<g><title>{html.escape(node.name)}</title>'
                   f'<rect x="{x + pad:.1f}" y="{y + pad:.1f}" width="{box_w:.0f}" '
                   f'height="{h:.0f}" rx="8" fill="{_COLOURS[node.kind]}" stroke="#333"/>')
        for i, line in enumerate(lines):
            weight = ' font-weight="bold"' if i == 0 else ""
            svg.append(f'<text x="{x + pad + 8:.1f}" y="{y + pad + 16 + i * line_h:.1f}"'
                       f"{weight}>{html.escape(line)}</text>")
        svg.append("</g>")
    svg.append("</svg>")

    rows = []
    for node in topo.nodes:
        addrs = "<br>".join(html.escape(f"{i.name} {' '.join(map(str, i.addresses))}"
                                        f"{' ' + i.mac if i.mac else ''}")
                            for i in node.interfaces)
        ovsdb = "<br>".join(html.escape(e) for e in topo.ovsdb_endpoints(node))
        rows.append(f"<tr><td>{html.escape(node.name)}</td><td>{node.kind}</td>"
                    f"<td>{addrs}</td><td>{ovsdb}</td></tr>")
    links = "".join(f"<li>{html.escape(str(lk.a))} — {html.escape(str(lk.b))}"
                    f"{f' (mtu {lk.mtu})' if lk.mtu else ''}</li>" for lk in topo.links)
    title = html.escape(f"hwvtep lab {topo.name}")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; }}
td, th {{ border: 1px solid #ccc; padding: 4px 8px; font-family: monospace; vertical-align: top; }}
pre {{ background: #f4f4f4; padding: 1em; }}
</style></head>
<body>
<h1>{title}</h1>
{"".join(svg)}
<h2>Nodes</h2>
<table><tr><th>node</th><th>kind</th><th>interfaces</th><th>OVSDB</th></tr>
{"".join(rows)}
</table>
<h2>Links</h2>
<ul>{links}</ul>
<details><summary>Mermaid source</summary><pre>{html.escape(to_mermaid(topo))}</pre></details>
</body></html>
"""


def describe_link(link: Link) -> str:
    return f"{link.a} -- {link.b}" + (f" (mtu {link.mtu})" if link.mtu else "")
