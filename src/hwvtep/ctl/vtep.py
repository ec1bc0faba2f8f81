"""The hardware_vtep commands of vtep-ctl: switches, ports, bindings, MACs, managers.

They work on a *view* of the database built from the snapshot the way vtep-ctl builds its
cache: physical switches reachable from the Global row, their ports and VLAN bindings,
logical switches and routers by name, MACs per logical switch and the locators already
known (those of MACs and tunnels). Parts of the view are built only when a command needs
them, so that ``list-ps`` does not read 100,000 MACs; each command fetches only the
tables and columns its part needs. Changes go through `idl.Idl` exactly as vtep-ctl makes
them (which columns it rewrites, which it verifies, which rows it deletes).
"""

from __future__ import annotations

from hwvtep.ctl.commands import RO, RW, Syntax, register
from hwvtep.ctl.values import UINT_MAX, CtlError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any

    from hwvtep.ctl.commands import Context
    from hwvtep.ctl.idl import Idl, Row

ENCAP_DEFAULT = "vxlan_over_ipv4"


class ExitStatus(Exception):
    """A command ends the program at once with this status (ps-exists and friends)."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class PSwitch:
    __slots__ = ("name", "ports", "row")

    def __init__(self, row: Row, name: str) -> None:
        self.row = row
        self.name = name
        self.ports: list[Port] = []


class Port:
    __slots__ = ("bindings", "ps", "row")

    def __init__(self, row: Row, ps: PSwitch) -> None:
        self.row = row
        self.ps = ps
        self.bindings: dict[str, LSwitch] = {}


class LSwitch:
    __slots__ = ("mcast_local", "mcast_remote", "name", "row", "shadowed", "ucast_local",
                 "ucast_remote")

    def __init__(self, row: Row, name: str) -> None:
        self.row = row
        self.name = name
        # mac -> entry. A MAC may repeat in the database: vtep-ctl then finds the one met
        # last and lists them all; the others wait in ``shadowed`` (local?, mac, row).
        self.ucast_local: dict[str, Row] = {}
        self.ucast_remote: dict[str, Row] = {}
        self.shadowed: list[tuple[bool, str, Row]] = []
        self.mcast_local: dict[str, list[McastMac]] = {}
        self.mcast_remote: dict[str, list[McastMac]] = {}


class McastMac:
    __slots__ = ("locators", "ploc_set", "row")

    def __init__(self, row: Row | None, ploc_set: Row) -> None:
        self.row = row
        self.ploc_set = ploc_set
        self.locators: list[Row] = []


class View:
    """vtep-ctl's cache, built part by part."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.idl: Idl = ctx.idl
        self.pswitches: dict[str, PSwitch] | None = None
        self.ports: dict[str, Port] = {}
        self.lswitches: dict[str, LSwitch] | None = None
        self.lrouters: dict[str, Row] | None = None
        self.plocs: dict[str, Row] | None = None
        self.verified_ports = False

    # --- reading helpers ---------------------------------------------------------------

    def refs(self, row: Row, column: str, table: str) -> list[Row]:
        """The rows a reference column points to, as vtep-ctl's IDL resolves them.

        References to rows missing from the database are dropped. A row this run deleted
        is still reached through a column the run did not rewrite (the IDL parsed it
        before the deletion), but not through one it rewrote.
        """
        col = row.table.columns[column]
        rows = self.idl.tables.get(table, {})
        written = column in row.new
        out = []
        for u in row.get(col):
            r = rows.get(u)
            if r is not None and not (written and r.deleted):
                out.append(r)
        return out

    def warn(self, msg: str) -> None:
        self.ctx.env.warn("vtep_ctl", msg)

    # --- building ----------------------------------------------------------------------

    def _named_rows(self, table: str) -> list[Row]:
        """The table's rows; in vtep-ctl's order if two share a name (it keeps the first
        one it meets and warns about the others in that order)."""
        rows = list(self.idl.rows_unordered(table))
        if len({r.string("name") for r in rows}) < len(rows):
            return list(self.idl.rows(table))
        return rows

    def lsw(self) -> dict[str, LSwitch]:
        if self.lswitches is None:
            self.lswitches = {}
            for row in self._named_rows("Logical_Switch"):
                name = row.string("name")
                if name in self.lswitches:
                    self.warn(f"{name}: database contains duplicate logical switch name")
                    continue
                self.lswitches[name] = LSwitch(row, name)
        return self.lswitches

    def lrs(self) -> dict[str, Row]:
        if self.lrouters is None:
            self.lrouters = {}
            for row in self._named_rows("Logical_Router"):
                name = row.string("name")
                if name in self.lrouters:
                    self.warn(f"{name}: database contains duplicate logical router name")
                    continue
                self.lrouters[name] = row
        return self.lrouters

    def psw(self) -> dict[str, PSwitch]:
        if self.pswitches is not None:
            return self.pswitches
        gl = self.ctx.global_row
        assert gl is not None
        self.pswitches = {}
        switches = self.refs(gl, "switches", "Physical_Switch")
        for ps_row in switches:
            name = ps_row.string("name")
            if name in self.pswitches:
                self.warn(f"{name}: database contains duplicate physical switch name")
                continue
            self.pswitches[name] = PSwitch(ps_row, name)
        lsw = self.lsw()
        seen: set[str] = set()
        for ps_row in switches:
            name = ps_row.string("name")
            if name in seen:
                continue
            seen.add(name)
            ps = self.pswitches[name]
            for port_row in self.refs(ps_row, "ports", "Physical_Port"):
                pname = port_row.string("name")
                # vtep-ctl looks ports up here by bare name in a cache keyed by
                # "switch+port", so this never finds one; kept for the same outcome.
                if pname in self.ports:
                    continue
                port = self._add_port(ps, port_row)
                col = port_row.table.columns["vlan_bindings"]
                for vlan, ls_uuid in port_row.get(col):
                    ls_row = self.idl.row("Logical_Switch", ls_uuid)
                    if ls_row is None:
                        continue
                    ls_name = ls_row.string("name")
                    ls = lsw.get(ls_name)
                    if ls is None:
                        raise CtlError(f"no logical switch named {ls_name}")
                    port.bindings[str(vlan)] = ls
        return self.pswitches

    def _add_port(self, ps: PSwitch, port_row: Row) -> Port:
        port = Port(port_row, ps)
        ps.ports.append(port)
        self.ports[f"{ps.name}+{port_row.string('name')}"] = port
        return port

    def macs(self) -> dict[str, Row]:
        """Fill the MAC maps of the logical switches; returns the known locators."""
        if self.plocs is not None:
            return self.plocs
        lsw = self.lsw()
        plocs: dict[str, Row] = {}
        self.plocs = plocs
        idl = self.idl
        ls_by_uuid: dict[str, LSwitch] = {}
        for ls_row in idl.rows_unordered("Logical_Switch"):
            found_ls = lsw.get(ls_row.string("name"))
            if found_ls is not None:
                ls_by_uuid[ls_row.uuid] = found_ls
        locators = idl.tables.get("Physical_Locator", {})
        seen: dict[str, Row | None] = {}

        def add_ploc(uuid: str | None) -> Row | None:
            if uuid is None:
                return None
            if uuid in seen:
                return seen[uuid]
            r = locators.get(uuid)
            seen[uuid] = r
            if r is not None:
                key = f"{r.string('encapsulation_type')}+{r.string('dst_ip')}"
                if key not in plocs:
                    plocs[key] = r
            return r

        # The hot loop of list-*-macs over large tables: rows this run did not change
        # are read straight from the server's JSON.
        for table, local in (("Ucast_Macs_Local", True), ("Ucast_Macs_Remote", False)):
            for row in idl.tables.get(table, {}).values():
                raw = row.raw
                if raw is not None and not row.new:
                    if row.deleted:
                        continue
                    j = raw.get("logical_switch")
                    ls = ls_by_uuid.get(j[1]) if j and j[0] == "uuid" else None
                    if ls is None:
                        continue
                    j = raw.get("locator")
                    if j and j[0] == "uuid":
                        add_ploc(j[1])
                    mac = raw.get("MAC", "")
                else:
                    if row.deleted:
                        continue
                    ls_uuid = row.ref("logical_switch")
                    ls = ls_by_uuid.get(ls_uuid) if ls_uuid is not None else None
                    if ls is None:
                        continue
                    add_ploc(row.ref("locator"))
                    mac = row.string("MAC")
                target = ls.ucast_local if local else ls.ucast_remote
                prev = target.get(mac)
                if prev is not None:
                    ls.shadowed.append((local, mac, prev))
                target[mac] = row
        for table, local in (("Mcast_Macs_Local", True), ("Mcast_Macs_Remote", False)):
            for row in idl.rows_unordered(table):
                ls_uuid = row.ref("logical_switch")
                ls = ls_by_uuid.get(ls_uuid) if ls_uuid is not None else None
                if ls is None:
                    continue
                set_uuid = row.ref("locator_set")
                set_row = idl.row("Physical_Locator_Set", set_uuid) if set_uuid else None
                if set_row is None:
                    continue
                self._add_mcast(ls, row.string("MAC"), set_row, local, row, add_ploc)
        for row in idl.rows_unordered("Tunnel"):
            add_ploc(row.ref("local"))
            add_ploc(row.ref("remote"))
        return plocs

    def _ls_of(self, row: Row) -> Row | None:
        u = row.ref("logical_switch")
        return self.idl.row("Logical_Switch", u) if u is not None else None

    def _add_mcast(self, ls: LSwitch, mac: str, set_row: Row, local: bool, row: Row | None,
                   add_ploc: Any) -> McastMac:
        m = McastMac(row, set_row)
        (ls.mcast_local if local else ls.mcast_remote).setdefault(mac, []).append(m)
        col = set_row.table.columns["locators"]
        for u in set_row.get(col):
            ploc = add_ploc(u)
            if ploc is not None:
                m.locators.append(ploc)
        return m

    def add_ploc_row(self, ploc: Row) -> None:
        assert self.plocs is not None
        key = f"{ploc.string('encapsulation_type')}+{ploc.string('dst_ip')}"
        self.plocs.setdefault(key, ploc)

    # --- look-ups as vtep-ctl does them ------------------------------------------------

    def verify_ports(self) -> None:
        if self.verified_ports:
            return
        gl = self.ctx.global_row
        assert gl is not None
        idl = self.idl
        idl.verify(gl, gl.table.columns["switches"])
        for ps_row in idl.rows_unordered("Physical_Switch"):
            idl.verify(ps_row, ps_row.table.columns["ports"])
        self.verified_ports = True

    def find_pswitch(self, name: str, must_exist: bool) -> PSwitch | None:
        ps = self.psw().get(name)
        if must_exist and ps is None:
            raise CtlError(f"no physical switch named {name}")
        gl = self.ctx.global_row
        assert gl is not None
        self.idl.verify(gl, gl.table.columns["switches"])
        return ps

    def find_port(self, ps_name: str, port_name: str, must_exist: bool) -> Port | None:
        self.psw()
        port = self.ports.get(f"{ps_name}+{port_name}")
        if port is not None and port_name == port.ps.name:
            port = None
        if must_exist and port is None:
            raise CtlError(f"no port named {port_name}")
        self.verify_ports()
        return port

    def find_lswitch(self, name: str, must_exist: bool) -> LSwitch | None:
        ls = self.lsw().get(name)
        if must_exist and ls is None:
            raise CtlError(f"no logical switch named {name}")
        return ls

    def find_lrouter(self, name: str, must_exist: bool) -> Row | None:
        lr = self.lrs().get(name)
        if must_exist and lr is None:
            raise CtlError(f"no logical router named {name}")
        return lr


def _view(ctx: Context) -> View:
    if ctx.cache is None:
        ctx.cache = View(ctx)
    view: View = ctx.cache
    return view


def _col(row: Row, name: str) -> Any:
    return row.table.columns[name]


def _write(ctx: Context, row: Row, column: str, datum: tuple[Any, ...]) -> None:
    ctx.idl.write(row, _col(row, column), datum)


def _set_refs(ctx: Context, row: Row, column: str, rows: list[Row]) -> None:
    _write(ctx, row, column, tuple(sorted({r.uuid for r in rows})))


def _insert(ctx: Context, table: str) -> Row:
    return ctx.idl.insert(ctx.env.schema.table(table))


def _sorted_lines(lines: list[str]) -> list[str]:
    # svec_sort() compares with strcmp(): byte order, which code point order equals.
    return [line + "\n" for line in sorted(lines)]


# --- physical switches and ports ------------------------------------------------------


def _cmd_add_ps(ctx: Context) -> None:
    v = _view(ctx)
    name = ctx.argv[1]
    if v.find_pswitch(name, False) is not None:
        if "--may-exist" not in ctx.options:
            raise CtlError(f"cannot create physical switch {name} because it already exists")
        return
    ps = _insert(ctx, "Physical_Switch")
    _write(ctx, ps, "name", (name,))
    gl = ctx.global_row
    assert gl is not None
    _set_refs(ctx, gl, "switches", [*v.refs(gl, "switches", "Physical_Switch"), ps])
    ctx.invalidate_cache()


def _del_port(ctx: Context, v: View, port: Port) -> None:
    ps_row = port.ps.row
    remaining = [r for r in v.refs(ps_row, "ports", "Physical_Port") if r is not port.row]
    _set_refs(ctx, ps_row, "ports", remaining)
    port.ps.ports.remove(port)
    v.ports.pop(f"{port.ps.name}+{port.row.string('name')}", None)
    ctx.idl.delete(port.row)


def _cmd_del_ps(ctx: Context) -> None:
    v = _view(ctx)
    ps = v.find_pswitch(ctx.argv[1], "--if-exists" not in ctx.options)
    if ps is None:
        return
    for port in list(ps.ports):
        _del_port(ctx, v, port)
    ctx.idl.delete(ps.row)
    gl = ctx.global_row
    assert gl is not None
    _set_refs(ctx, gl, "switches",
              [r for r in v.refs(gl, "switches", "Physical_Switch") if r is not ps.row])
    assert v.pswitches is not None
    v.pswitches.pop(ps.name, None)


def _cmd_list_ps(ctx: Context) -> None:
    ctx.output.extend(_sorted_lines(list(_view(ctx).psw())))


def _cmd_ps_exists(ctx: Context) -> None:
    if _view(ctx).find_pswitch(ctx.argv[1], False) is None:
        raise ExitStatus(2)


def _cmd_list_ports(ctx: Context) -> None:
    v = _view(ctx)
    ps = v.find_pswitch(ctx.argv[1], True)
    assert ps is not None
    ctx.idl.verify(ps.row, _col(ps.row, "ports"))
    names = [p.row.string("name") for p in ps.ports]
    ctx.output.extend(_sorted_lines([n for n in names if n != ps.name]))


def _cmd_add_port(ctx: Context) -> None:
    v = _view(ctx)
    ps_name, port_name = ctx.argv[1], ctx.argv[2]
    if v.find_port(ps_name, port_name, False) is not None:
        if "--may-exist" not in ctx.options:
            raise CtlError(f"cannot create a port named {port_name} on {ps_name} because a "
                           "port with that name already exists")
        return
    ps = v.find_pswitch(ps_name, True)
    assert ps is not None
    port_row = _insert(ctx, "Physical_Port")
    _write(ctx, port_row, "name", (port_name,))
    _set_refs(ctx, ps.row, "ports", [*v.refs(ps.row, "ports", "Physical_Port"), port_row])
    v._add_port(ps, port_row)


def _cmd_del_port(ctx: Context) -> None:
    v = _view(ctx)
    port = v.find_port(ctx.argv[1], ctx.argv[2], "--if-exists" not in ctx.options)
    if port is None:
        return
    ps = v.find_pswitch(ctx.argv[1], True)
    if port.ps is not ps:
        raise CtlError(f"physical switch {ctx.argv[1]} does not have a port {ctx.argv[2]}")
    _del_port(ctx, v, port)


# --- logical switches, bindings, routers ----------------------------------------------


def _cmd_add_ls(ctx: Context) -> None:
    v = _view(ctx)
    name = ctx.argv[1]
    if v.find_lswitch(name, False) is not None:
        if "--may-exist" not in ctx.options:
            raise CtlError(f"cannot create logical switch {name} because it already exists")
        return
    ls = _insert(ctx, "Logical_Switch")
    _write(ctx, ls, "name", (name,))
    ctx.invalidate_cache()


def _cmd_del_ls(ctx: Context) -> None:
    v = _view(ctx)
    ls = v.find_lswitch(ctx.argv[1], "--if-exists" not in ctx.options)
    if ls is None:
        return
    ctx.idl.delete(ls.row)
    assert v.lswitches is not None
    v.lswitches.pop(ls.name, None)


def _cmd_list_ls(ctx: Context) -> None:
    ctx.output.extend(_sorted_lines(list(_view(ctx).lsw())))


def _cmd_ls_exists(ctx: Context) -> None:
    if _view(ctx).find_lswitch(ctx.argv[1], False) is None:
        raise ExitStatus(2)


def _cmd_list_bindings(ctx: Context) -> None:
    port = _view(ctx).find_port(ctx.argv[1], ctx.argv[2], True)
    assert port is not None
    lines = [f"{_c_int(_strtoll0(vlan), 4)} {ls.name}" for vlan, ls in port.bindings.items()]
    ctx.output.extend(_sorted_lines(lines))


def _c_int(v: int, width: int) -> str:
    """printf's "%0*lld"."""
    return f"-{str(-v).rjust(width - 1, '0')}" if v < 0 else str(v).rjust(width, "0")


def _strtoll0(s: str) -> int:
    """strtoll(s, NULL, 0): the longest valid prefix, 0 if none, clamped on overflow."""
    i = 0
    n = len(s)
    while i < n and s[i] in " \t\n\v\f\r":
        i += 1
    neg = False
    if i < n and s[i] in "+-":
        neg = s[i] == "-"
        i += 1
    base = 10
    if s[i:i + 2].lower() == "0x" and i + 2 < n and s[i + 2] in "0123456789abcdefABCDEF":
        base = 16
        i += 2
    elif s[i:i + 1] == "0":
        base = 8
    digits = "0123456789abcdef"[:base]
    j = i
    while j < n and s[j].lower() in digits:
        j += 1
    v = int(s[i:j], base) if j > i else 0
    v = -v if neg else v
    return max(-(2**63), min(2**63 - 1, v))


def _commit_bindings(ctx: Context, port: Port) -> None:
    pairs = sorted((_strtoll0(vlan), ls.row.uuid) for vlan, ls in port.bindings.items())
    unique: list[tuple[int, str]] = []
    for p in pairs:
        if not unique or unique[-1][0] != p[0]:
            unique.append(p)
    _write(ctx, port.row, "vlan_bindings", tuple(unique))


def _cmd_bind_ls(ctx: Context) -> None:
    v = _view(ctx)
    port = v.find_port(ctx.argv[1], ctx.argv[2], True)
    assert port is not None
    vlan = ctx.argv[3]
    ls = v.find_lswitch(ctx.argv[4], True)
    assert ls is not None
    if vlan in port.bindings:
        raise CtlError(f"multiple bindings for vlan {vlan}")
    port.bindings[vlan] = ls
    _commit_bindings(ctx, port)
    ctx.invalidate_cache()


def _cmd_unbind_ls(ctx: Context) -> None:
    v = _view(ctx)
    port = v.find_port(ctx.argv[1], ctx.argv[2], True)
    assert port is not None
    vlan = ctx.argv[3]
    if vlan not in port.bindings:
        raise CtlError(f"no binding for vlan {vlan}")
    del port.bindings[vlan]
    _commit_bindings(ctx, port)
    ctx.invalidate_cache()


def _cmd_set_replication_mode(ctx: Context) -> None:
    v = _view(ctx)
    v.lsw()
    mode = ctx.argv[2]
    if mode not in ("service_node", "source_node"):
        raise CtlError("Replication mode must be 'service_node' or 'source_node'")
    ls = v.find_lswitch(ctx.argv[1], True)
    assert ls is not None
    _write(ctx, ls.row, "replication_mode", (mode,))
    ctx.invalidate_cache()


def _cmd_get_replication_mode(ctx: Context) -> None:
    ls = _view(ctx).find_lswitch(ctx.argv[1], True)
    assert ls is not None
    mode = ls.row.get(_col(ls.row, "replication_mode"))
    ctx.output.append(f"{mode[0] if mode else '(null)'}\n")


def _cmd_add_lr(ctx: Context) -> None:
    v = _view(ctx)
    name = ctx.argv[1]
    if v.find_lrouter(name, False) is not None:
        if "--may-exist" not in ctx.options:
            raise CtlError(f"cannot create logical router {name} because it already exists")
        return
    lr = _insert(ctx, "Logical_Router")
    _write(ctx, lr, "name", (name,))
    ctx.invalidate_cache()


def _cmd_del_lr(ctx: Context) -> None:
    v = _view(ctx)
    name = ctx.argv[1]
    lr = v.find_lrouter(name, "--if-exists" not in ctx.options)
    if lr is None:
        return
    ctx.idl.delete(lr)
    assert v.lrouters is not None
    v.lrouters.pop(name, None)


def _cmd_list_lr(ctx: Context) -> None:
    ctx.output.extend(_sorted_lines(list(_view(ctx).lrs())))


def _cmd_lr_exists(ctx: Context) -> None:
    if _view(ctx).find_lrouter(ctx.argv[1], False) is None:
        raise ExitStatus(2)


# --- MACs -----------------------------------------------------------------------------


def _encap_ip(ctx: Context) -> tuple[str, str]:
    if len(ctx.argv) == 4:
        return ENCAP_DEFAULT, ctx.argv[3]
    return ctx.argv[3], ctx.argv[4]


def _locator(ctx: Context, v: View, encap: str, ip: str) -> Row:
    plocs = v.macs()
    ploc = plocs.get(f"{encap}+{ip}")
    if ploc is None:
        ploc = _insert(ctx, "Physical_Locator")
        _write(ctx, ploc, "dst_ip", (ip,))
        _write(ctx, ploc, "encapsulation_type", (encap,))
        v.add_ploc_row(ploc)
    return ploc


def _add_ucast(ctx: Context, local: bool) -> None:
    v = _view(ctx)
    ls = v.find_lswitch(ctx.argv[1], True)
    assert ls is not None
    mac = ctx.argv[2]
    encap, ip = _encap_ip(ctx)
    ploc = _locator(ctx, v, encap, ip)
    entries = ls.ucast_local if local else ls.ucast_remote
    found = entries.get(mac)
    if found is not None:
        row = found
    else:
        row = _insert(ctx, "Ucast_Macs_Local" if local else "Ucast_Macs_Remote")
        _write(ctx, row, "MAC", (mac,))
        _write(ctx, row, "logical_switch", (ls.row.uuid,))
        entries[mac] = row
    _write(ctx, row, "locator", (ploc.uuid,))
    ctx.invalidate_cache()


def _del_ucast(ctx: Context, local: bool) -> None:
    v = _view(ctx)
    ls = v.find_lswitch(ctx.argv[1], True)
    assert ls is not None
    v.macs()
    entries = ls.ucast_local if local else ls.ucast_remote
    mac = ctx.argv[2]
    found = entries.pop(mac, None)
    if found is None:
        return
    ctx.idl.delete(found)
    for i in range(len(ls.shadowed) - 1, -1, -1):
        if ls.shadowed[i][:2] == (local, mac):
            entries[mac] = ls.shadowed.pop(i)[2]
            break
    ctx.invalidate_cache()


def _commit_mcast(ctx: Context, m: McastMac) -> None:
    assert m.locators
    _write(ctx, m.ploc_set, "locators", tuple(sorted({r.uuid for r in m.locators})))


def _add_del_mcast(ctx: Context, add: bool, local: bool) -> None:
    v = _view(ctx)
    ls = v.find_lswitch(ctx.argv[1], True)
    assert ls is not None
    mac = ctx.argv[2]
    encap, ip = _encap_ip(ctx)
    plocs = v.macs()
    entries = ls.mcast_local if local else ls.mcast_remote
    table = "Mcast_Macs_Local" if local else "Mcast_Macs_Remote"
    found = entries.get(mac)
    if add:
        ploc_set = _insert(ctx, "Physical_Locator_Set")
        if not found:
            m = v._add_mcast(ls, mac, ploc_set, local, None, lambda u: None)
            m.row = _insert(ctx, table)
            _write(ctx, m.row, "MAC", (mac,))
            _write(ctx, m.row, "locator_set", (ploc_set.uuid,))
            _write(ctx, m.row, "logical_switch", (ls.row.uuid,))
        else:
            m = found[-1]
            m.ploc_set = ploc_set
            assert m.row is not None
            _write(ctx, m.row, "locator_set", (ploc_set.uuid,))
        m.locators.append(_locator(ctx, v, encap, ip))
        _commit_mcast(ctx, m)
    elif found:
        ploc = plocs.get(f"{encap}+{ip}")
        if ploc is not None:
            m = found[-1]
            ploc_set = _insert(ctx, "Physical_Locator_Set")
            m.ploc_set = ploc_set
            for i, r in enumerate(m.locators):
                if r is ploc:
                    del m.locators[i]
                    break
            assert m.row is not None
            if not m.locators:
                ctx.idl.delete(ploc_set)
                ctx.idl.delete(m.row)
                found.pop()
                if not found:
                    del entries[mac]
            else:
                _write(ctx, m.row, "locator_set", (ploc_set.uuid,))
                _commit_mcast(ctx, m)
    ctx.invalidate_cache()


def _clear_macs(ctx: Context, local: bool) -> None:
    v = _view(ctx)
    ls = v.find_lswitch(ctx.argv[1], True)
    assert ls is not None
    v.macs()
    for row in (ls.ucast_local if local else ls.ucast_remote).values():
        ctx.idl.delete(row)
    for is_local, _, row in ls.shadowed:
        if is_local == local:
            ctx.idl.delete(row)
    for ms in (ls.mcast_local if local else ls.mcast_remote).values():
        for m in ms:
            if m.row is not None:
                ctx.idl.delete(m.row)
    ctx.invalidate_cache()


def _list_macs(ctx: Context, local: bool) -> None:
    v = _view(ctx)
    ls = v.find_lswitch(ctx.argv[1], True)
    assert ls is not None
    v.macs()
    kind = "local" if local else "remote"
    loc_rows = ctx.idl.tables.get("Physical_Locator", {})
    where: dict[str, str | None] = {}  # locator uuid -> "encap/ip"
    lines: list[str] = []
    entries = list((ls.ucast_local if local else ls.ucast_remote).items())
    entries += [(mac, row) for is_local, mac, row in ls.shadowed if is_local == local]
    for mac, row in entries:
        raw = row.raw
        if raw is not None and not row.new:
            j = raw.get("locator")
            uuid = j[1] if j and j[0] == "uuid" else None
        else:
            uuid = row.ref("locator")
        if uuid is None:
            continue
        text = where.get(uuid, "")
        if text == "":
            ploc = loc_rows.get(uuid)
            text = where[uuid] = (None if ploc is None else
                                  f"{ploc.string('encapsulation_type')}/"
                                  f"{ploc.string('dst_ip')}")
        if text is not None:
            lines.append(f"  {mac} -> {text}")
    lines.sort()
    out = ctx.output
    out.append(f"ucast-mac-{kind}\n")
    if lines:
        out.append("\n".join(lines))
        out.append("\n")
    out.append("\n")
    lines = []
    for mac, ms in (ls.mcast_local if local else ls.mcast_remote).items():
        for m in ms:
            for ploc in m.locators:
                lines.append(f"  {mac} -> {ploc.string('encapsulation_type')}/"
                             f"{ploc.string('dst_ip')}")
    out.append(f"mcast-mac-{kind}\n")
    out.extend(_sorted_lines(lines))
    out.append("\n")


# --- managers -------------------------------------------------------------------------


def _managers(ctx: Context) -> list[Row]:
    gl = ctx.global_row
    assert gl is not None
    idl = ctx.idl
    idl.verify(gl, _col(gl, "managers"))
    rows = _view(ctx).refs(gl, "managers", "Manager")
    for m in rows:
        idl.verify(m, _col(m, "target"))
    return rows


def _cmd_get_manager(ctx: Context) -> None:
    targets = {m.string("target") for m in _managers(ctx)}
    ctx.output.extend(_sorted_lines(list(targets)))


def _delete_managers(ctx: Context, managers: list[Row]) -> None:
    for m in managers:
        ctx.idl.delete(m)
    gl = ctx.global_row
    assert gl is not None
    _write(ctx, gl, "managers", ())


def _cmd_del_manager(ctx: Context) -> None:
    _delete_managers(ctx, _managers(ctx))


_ACTIVE = ("tcp:", "ssl:", "unix:")
_PASSIVE = ("ptcp:", "pssl:", "punix:")


def _atoll(s: str) -> int:
    i = 0
    n = len(s)
    while i < n and s[i] in " \t\n\v\f\r":
        i += 1
    j = i + 1 if i < n and s[i] in "+-" else i
    while j < n and s[j].isdigit() and s[j].isascii():
        j += 1
    try:
        return max(-(2**63), min(2**63 - 1, int(s[i:j])))
    except ValueError:
        return 0


def _cmd_set_manager(ctx: Context) -> None:
    _delete_managers(ctx, _managers(ctx))
    probe = ctx.options.get("--inactivity-probe")
    rows = []
    for target in ctx.argv[1:]:
        if not target.startswith(_ACTIVE) and not target.startswith(_PASSIVE):
            ctx.env.warn("vtep_ctl", f'target type "{target}" is possibly erroneous')
        m = _insert(ctx, "Manager")
        _write(ctx, m, "target", (target,))
        if probe is not None:
            _write(ctx, m, "inactivity_probe", (_atoll(probe),))
        rows.append(m)
    gl = ctx.global_row
    assert gl is not None
    _set_refs(ctx, gl, "managers", rows)


# --- what each command fetches --------------------------------------------------------

_LS_COLS = ("name", "replication_mode")
_PS = {"Physical_Switch": ("name", "ports"), "Physical_Port": ("name", "vlan_bindings"),
       "Logical_Switch": _LS_COLS}
_LS = {"Logical_Switch": _LS_COLS}
_LR = {"Logical_Router": ("name",)}
_MAC = {"Logical_Switch": _LS_COLS,
        "Ucast_Macs_Local": ("MAC", "locator", "logical_switch"),
        "Ucast_Macs_Remote": ("MAC", "locator", "logical_switch"),
        "Mcast_Macs_Local": ("MAC", "locator_set", "logical_switch"),
        "Mcast_Macs_Remote": ("MAC", "locator_set", "logical_switch"),
        "Physical_Locator_Set": ("locators",),
        "Physical_Locator": ("dst_ip", "encapsulation_type"),
        "Tunnel": ("local", "remote")}
_MGR = {"Manager": ("target", "inactivity_probe")}

# What vtep-ctl's IDL monitors for these commands (its pre_get_info and pre_manager):
# more than they read, which decides where it files rows (see idl.Layout).
_GET_INFO = {"Global": ("switches",), "Physical_Switch": ("name", "ports", "tunnels"),
             "Physical_Port": ("name", "vlan_bindings"), "Logical_Router": ("name",),
             **{t: c for t, c in _MAC.items() if t != "Logical_Switch"},
             "Logical_Switch": _LS_COLS}
_MANAGER_INFO = {"Global": ("managers",), **_MGR}


def _pre(*parts: Mapping[str, Sequence[str]]) -> Any:
    monitor = _MANAGER_INFO if parts == (_MGR,) else _GET_INFO

    def pre(ctx: Context) -> None:
        for part in parts:
            for table, cols in part.items():
                ctx.need(table, tuple(cols))
        # (every table these columns refer to is in the set already)
        for table, cols in monitor.items():
            ctx.plan.monitor.setdefault(table, set()).update(cols)
    return pre


def _cmd(name: str, n_min: int, n_max: int, run: Any, options: str, mode: str,
         *parts: Mapping[str, Sequence[str]]) -> Syntax:
    return Syntax(name, n_min, n_max, _pre(*parts), run, None, options, mode)


register(
    _cmd("add-ps", 1, 1, _cmd_add_ps, "--may-exist", RW, _PS),
    _cmd("del-ps", 1, 1, _cmd_del_ps, "--if-exists", RW, _PS),
    _cmd("list-ps", 0, 0, _cmd_list_ps, "", RO, _PS),
    _cmd("ps-exists", 1, 1, _cmd_ps_exists, "", RO, _PS),
    _cmd("list-ports", 1, 1, _cmd_list_ports, "", RO, _PS),
    _cmd("add-port", 2, 2, _cmd_add_port, "--may-exist", RW, _PS),
    _cmd("del-port", 2, 2, _cmd_del_port, "--if-exists", RW, _PS),
    _cmd("add-ls", 1, 1, _cmd_add_ls, "--may-exist", RW, _LS),
    _cmd("del-ls", 1, 1, _cmd_del_ls, "--if-exists", RW, _LS),
    _cmd("list-ls", 0, 0, _cmd_list_ls, "", RO, _LS),
    _cmd("ls-exists", 1, 1, _cmd_ls_exists, "", RO, _LS),
    _cmd("list-bindings", 2, 2, _cmd_list_bindings, "", RO, _PS),
    _cmd("bind-ls", 4, 4, _cmd_bind_ls, "", RO, _PS),
    _cmd("unbind-ls", 3, 3, _cmd_unbind_ls, "", RO, _PS),
    _cmd("set-replication-mode", 2, 2, _cmd_set_replication_mode, "", RW, _LS),
    _cmd("get-replication-mode", 1, 1, _cmd_get_replication_mode, "", RO, _LS),
    _cmd("add-lr", 1, 1, _cmd_add_lr, "--may-exist", RW, _LR),
    _cmd("del-lr", 1, 1, _cmd_del_lr, "--if-exists", RW, _LR),
    _cmd("list-lr", 0, 0, _cmd_list_lr, "", RO, _LR),
    _cmd("lr-exists", 1, 1, _cmd_lr_exists, "", RO, _LR),
    _cmd("add-ucast-local", 3, 4, lambda c: _add_ucast(c, True), "", RW, _MAC),
    _cmd("del-ucast-local", 2, 2, lambda c: _del_ucast(c, True), "", RW, _MAC),
    _cmd("add-mcast-local", 3, 4, lambda c: _add_del_mcast(c, True, True), "", RW, _MAC),
    _cmd("del-mcast-local", 3, 4, lambda c: _add_del_mcast(c, False, True), "", RW, _MAC),
    _cmd("clear-local-macs", 1, 1, lambda c: _clear_macs(c, True), "", RO, _MAC),
    _cmd("list-local-macs", 1, 1, lambda c: _list_macs(c, True), "", RO, _MAC),
    _cmd("add-ucast-remote", 3, 4, lambda c: _add_ucast(c, False), "", RW, _MAC),
    _cmd("del-ucast-remote", 2, 2, lambda c: _del_ucast(c, False), "", RW, _MAC),
    _cmd("add-mcast-remote", 3, 4, lambda c: _add_del_mcast(c, True, False), "", RW, _MAC),
    _cmd("del-mcast-remote", 3, 4, lambda c: _add_del_mcast(c, False, False), "", RW, _MAC),
    _cmd("clear-remote-macs", 1, 1, lambda c: _clear_macs(c, False), "", RO, _MAC),
    _cmd("list-remote-macs", 1, 1, lambda c: _list_macs(c, False), "", RO, _MAC),
    _cmd("get-manager", 0, 0, _cmd_get_manager, "", RO, _MGR),
    _cmd("del-manager", 0, 0, _cmd_del_manager, "", RW, _MGR),
    _cmd("set-manager", 1, UINT_MAX, _cmd_set_manager, "--inactivity-probe=", RW, _MGR),
)

VTEP_ROW_IDS = {
    "Logical_Switch": "name",
    "Manager": "target",
    "Physical_Port": "name",
    "Physical_Switch": "name",
    "Logical_Router": "name",
}
