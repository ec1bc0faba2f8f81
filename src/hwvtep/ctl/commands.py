"""The command language shared by vtep-ctl and ovs-vsctl (Open vSwitch's db-ctl-base).

Parsing a command line into commands joined by ``--``, the per-command options, and the
generic database commands: comment, get, list, find, set, add, remove, clear, create,
destroy, wait-until and show. Every command has a *prerequisite* step, run before any
connection is made (so bad table or column names fail first, as in vtep-ctl), that names
the tables it needs, and a *run* step that works on the snapshot (`idl.Idl`). Errors are
`CtlError`s worded as Open vSwitch words them.
"""

from __future__ import annotations

from hwvtep.ctl.values import (
    UINT_MAX,
    UUID,
    UUID_TYPE,
    CtlError,
    atom_from_string,
    atom_to_string,
    compare_3way,
    datum_from_string,
    datum_to_string,
    default_datum,
    excludes_all,
    includes_all,
    is_uuid,
    partial_uuid_len,
    subtract,
    token_parse,
    union,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from hwvtep.ctl.idl import Idl, Row
    from hwvtep.ctl.table import OutTable
    from hwvtep.ctl.values import Column, Datum, Schema, SymbolTable, Table

    Needs = dict[str, set[str] | None]  # table -> columns to fetch (None: all of them)

RO = "ro"
RW = "rw"


class Syntax:
    """What a command accepts and the functions that carry it out."""

    __slots__ = ("max_args", "min_args", "mode", "name", "options", "post", "pre", "run")

    def __init__(self, name: str, min_args: int, max_args: int,
                 pre: Callable[[Context], None] | None,
                 run: Callable[[Context], None] | None,
                 post: Callable[[Context, dict[str, str]], None] | None, options: str,
                 mode: str) -> None:
        self.name = name
        self.min_args = min_args
        self.max_args = max_args
        self.pre = pre
        self.run = run
        self.post = post
        self.options = options
        self.mode = mode


REGISTRY: dict[str, Syntax] = {}


def register(*syntaxes: Syntax) -> None:
    for s in syntaxes:
        REGISTRY[s.name] = s


class Plan:
    """What the prerequisites of a run's commands found, besides what to fetch (`Needs`):
    what vtep-ctl's IDL would monitor (table -> columns), and the tables whose row order
    the run prints (`list` without records, `find`)."""

    def __init__(self) -> None:
        self.monitor: dict[str, set[str]] = {"Global": set()}
        self.ordered: set[str] = set()


class Command:
    __slots__ = ("argv", "options", "output", "syntax", "table")

    def __init__(self, syntax: Syntax, argv: list[str], options: dict[str, str | None]) -> None:
        self.syntax = syntax
        self.argv = argv
        self.options = options
        self.output: list[str] = []
        self.table: OutTable | None = None


class RowId:
    """A column that names the rows of a table (vtep-ctl's ctl_row_id, without refs)."""

    __slots__ = ("name_column",)

    def __init__(self, name_column: str) -> None:
        self.name_column = name_column


class ShowTable:
    __slots__ = ("columns", "name_column", "table")

    def __init__(self, table: str, name_column: str | None, columns: tuple[str, ...]) -> None:
        self.table = table
        self.name_column = name_column
        self.columns = columns


class Env:
    """What the generic commands need to know about the database and the program."""

    def __init__(self, schema: Schema, row_ids: dict[str, tuple[RowId, ...]],
                 show_tables: tuple[ShowTable, ...],
                 warn: Callable[[str, str], None], stdout_isatty: bool) -> None:
        self.schema = schema
        self.row_ids = row_ids
        self.show_tables = show_tables
        self.warn = warn
        self.stdout_isatty = stdout_isatty


class Context:
    """One command being run: its arguments, output and the run's shared state."""

    def __init__(self, env: Env, idl: Idl | None, symtab: SymbolTable | None,
                 needs: Needs | None = None, plan: Plan | None = None) -> None:
        self.env = env
        self.idl: Idl = idl  # type: ignore[assignment]
        self.symtab: SymbolTable = symtab  # type: ignore[assignment]
        self.needs: Needs = needs if needs is not None else {}
        self.plan: Plan = plan if plan is not None else Plan()
        self.argv: list[str] = []
        self.options: dict[str, str | None] = {}
        self.output: list[str] = []
        self.table: OutTable | None = None
        self.try_again = False
        self.last_command = False
        self.cache: Any = None  # the vtep commands' view, built on demand
        self.invalidate: Callable[[], None] | None = None
        self.global_row: Row | None = None

    def set_command(self, cmd: Command, last: bool) -> None:
        self.argv = cmd.argv
        self.options = cmd.options
        self.output = cmd.output
        self.table = cmd.table
        self.try_again = False
        self.last_command = last

    def invalidate_cache(self) -> None:
        if self.invalidate is not None:
            self.invalidate()

    def idl_table(self, table: str) -> None:
        """vtep-ctl's ovsdb_idl_add_table(): its IDL monitors the table's rows."""
        self.plan.monitor.setdefault(table, set())

    def idl_column(self, table: Table, col: Column) -> None:
        """vtep-ctl's ovsdb_idl_add_column(): the column, and the tables it refers to."""
        self.plan.monitor.setdefault(table.name, set()).add(col.name)
        for base in (col.type.key, col.type.value):
            if base is not None and base.ref_table is not None:
                self.plan.monitor.setdefault(base.ref_table, set())

    def need(self, table: str, columns: tuple[str, ...] | None = None) -> None:
        if columns is None:
            self.needs[table] = None
            return
        have = self.needs.get(table, set())
        if have is not None:
            have.update(columns)
            self.needs[table] = have


# --- parsing the command line ---------------------------------------------------------


def parse_commands(args: list[str], local_options: dict[str, str | None]) -> list[Command]:
    commands: list[Command] = []
    start = 0
    for i in range(len(args) + 1):
        if i == len(args) or args[i] == "--":
            if i > start:
                commands.append(_parse_command(args[start:i], local_options))
                local_options = {}
            elif local_options:
                raise CtlError("missing command name (use --help for help)")
            start = i + 1
    if not commands:
        raise CtlError("missing command name (use --help for help)")
    return commands


def _parse_command(args: list[str], local_options: dict[str, str | None]) -> Command:
    options = dict(local_options)
    i = 0
    while i < len(args) and args[i].startswith("-"):
        key, eq, value = args[i].partition("=")
        if key in options:
            raise CtlError(f"'{args[i]}' option specified multiple times")
        options[key] = value if eq else None
        i += 1
    if i == len(args):
        raise CtlError("missing command name (use --help for help)")
    name = args[i]
    syntax = REGISTRY.get(name)
    if syntax is None:
        raise CtlError(f"unknown command '{name}'; use --help for help")
    for opt, optval in options.items():
        pos = syntax.options.find(opt)
        end = syntax.options[pos + len(opt):pos + len(opt) + 1] if pos >= 0 else None
        if end is None or end not in ("=", ",", "?", " ", ""):
            raise CtlError(f"'{name}' command has no '{opt}' option")
        if end != "?" and (end == "=") != (optval is not None):
            if end == "=":
                raise CtlError(f"missing argument to '{opt}' option on '{name}' command")
            raise CtlError(f"'{opt}' option on '{name}' does not accept an argument")
    n_arg = len(args) - i - 1
    if n_arg < syntax.min_args:
        raise CtlError(f"'{name}' command requires at least {syntax.min_args} arguments")
    if n_arg > syntax.max_args:
        if any(a.startswith("-") for a in args[i + 1:]):
            raise CtlError(f"'{name}' command takes at most {syntax.max_args} arguments "
                           '(note that options must precede command names and follow a '
                           '"--" argument)')
        raise CtlError(f"'{name}' command takes at most {syntax.max_args} arguments")
    return Command(syntax, args[i:], options)


# --- tables, columns, rows ------------------------------------------------------------


def _canon(c: str) -> str:
    return "_" if c == "-" else c.lower()


def score_partial_match(name: str, s: str) -> int:
    if name == s:
        return UINT_MAX
    n = 0
    for a, b in zip(name, s, strict=False):
        if _canon(a) != _canon(b):
            break
        n += 1
    if n == len(name) == len(s):
        return UINT_MAX - 1
    return n if n == len(s) else 0


def _best(names: list[str], s: str) -> tuple[str | None, list[str]]:
    best: list[str] = []
    best_score = 0
    for name in names:
        score = score_partial_match(name, s)
        if score and score >= best_score:
            if score > best_score:
                best = []
            best.append(name)
            best_score = score
    if not best:
        return None, []
    return (best[0] if len(best) == 1 else None), best


def get_table(schema: Schema, name: str) -> Table:
    match, matches = _best(list(schema.table_names), name)
    if not matches:
        raise CtlError(f'unknown table "{name}"')
    if match is None:
        raise CtlError(f'"{name}" matches multiple table names: {", ".join(sorted(matches))}')
    return schema.table(match)


def get_column(table: Table, name: str) -> Column:
    match, matches = _best([c.name for c in table.sorted_columns], name)
    if not matches:
        raise CtlError(f'{table.name} does not contain a column whose name matches "{name}"')
    if match is None:
        raise CtlError(f"{table.name} contains more than one column whose name matches "
                       f'"{name}": {", ".join(sorted(matches))}')
    return table.columns[match]


def pre_get_table(ctx: Context, name: str) -> Table:
    t = get_table(ctx.env.schema, name)
    ctx.need(t.name)
    ctx.idl_table(t.name)
    for rid in ctx.env.row_ids.get(t.name, ()):
        col = t.columns.get(rid.name_column)
        if col is not None:
            ctx.idl_column(t, col)
    return t


def _pre_parse_column(ctx: Context, arg: str, table: Table) -> None:
    name, _ = token_parse(arg, 0)
    if not name:
        raise CtlError(f"{arg}: missing column name")
    ctx.idl_column(table, get_column(table, name))


def _pre_list_columns(ctx: Context, table: Table) -> None:
    for col in parse_column_names(ctx.options.get("--columns"), table):
        if col is not None:
            ctx.idl_column(table, col)


def get_row(ctx: Context, table: Table, record_id: str, must_exist: bool) -> Row | None:
    """ctl_get_row(): by UUID, ".", a naming column, or a unique UUID prefix."""
    idl = ctx.idl
    row: Row | None = None
    if is_uuid(record_id):
        row = idl.row(table.name, record_id.lower())
    # Only listing and the ambiguous-prefix message depend on the IDL's row order: the
    # rest looks rows up in any order (which needs no more of the database).
    if row is None and record_id == ".":
        rows = list(idl.rows_unordered(table.name))
        if len(rows) == 1:
            row = rows[0]
    if row is None:
        for rid in ctx.env.row_ids.get(table.name, ()):
            col = table.columns.get(rid.name_column)
            if col is None:
                continue
            found: Row | None = None
            for r in idl.rows_unordered(table.name):
                d = r.get(col)
                if len(d) != 1:
                    continue
                name = d[0]
                if name == record_id or (len(record_id) >= 4 and is_uuid(name)
                                         and name.startswith(record_id)):
                    if found is not None:
                        raise CtlError(f'multiple rows in {table.name} match "{record_id}"')
                    found = r
            if found is not None:
                row = found
                break
    if row is None and partial_uuid_len(record_id) >= 4:
        found_rows = [r for r in idl.rows_unordered(table.name)
                      if r.uuid.startswith(record_id)]
        if len(found_rows) > 1:
            a, b = [r for r in idl.rows(table.name) if r.uuid.startswith(record_id)][:2]
            raise CtlError(f"{table.name} contains 2 or more rows whose UUIDs begin with "
                           f"{record_id}: at least {a.uuid} and {b.uuid}")
        if found_rows:
            row = found_rows[0]
    if must_exist and row is None:
        raise CtlError(f'no row "{record_id}" in table {table.name}')
    return row


def _missing_operator(arg: str, ops: tuple[str, ...]) -> CtlError:
    q = [f'"{o}"' for o in ops]
    if len(q) == 1:
        s = q[0]
    elif len(q) == 2:
        s = f"{q[0]} or {q[1]}"
    else:
        s = ", ".join(q[:-1]) + ", or " + q[-1]
    return CtlError(f"{arg}: argument does not end in {s} followed by a value.")


def parse_column_key_value(arg: str, table: Table, want_value: bool,
                           ops: tuple[str, ...] = ("=",)
                           ) -> tuple[Column, str | None, int, str | None]:
    """(column, key token or None, operator index, value text or None)."""
    name, p = token_parse(arg, 0)
    if not name:
        raise CtlError(f"{arg}: missing column name")
    col = get_column(table, name)
    key: str | None = None
    if p < len(arg) and arg[p] == ":":
        key, p = token_parse(arg, p + 1)
    if want_value:
        best = -1
        best_len = 0
        rest = arg[p:]
        for i, op in enumerate(ops):
            if len(op) > best_len and rest.startswith(op) and len(rest) > len(op):
                best, best_len = i, len(op)
        if best < 0:
            raise _missing_operator(arg, ops)
        return col, key, best, rest[best_len:]
    if p < len(arg):
        raise CtlError(f'{arg}: trailing garbage "{arg[p:]}" in argument')
    return col, key, -1, None


def check_mutable(row: Row, col: Column) -> None:
    if not col.mutable and not row.inserted:
        raise CtlError(f"cannot modify read-only column {col.name} in table {row.table.name}")


RELOPS = ("=", "!=", "<", ">", "<=", ">=", "{=}", "{!=}", "{<}", "{>}", "{<=}", "{>=}",
          "{in}", "{not-in}")
_SET_OPS = frozenset(range(6, 14))


def _relop(t: Any, a: Datum, b: Datum, op: int) -> bool:
    if op in (0, 6):
        return compare_3way(t, a, b) == 0
    if op in (1, 7):
        return compare_3way(t, a, b) != 0
    if op == 2:
        return compare_3way(t, a, b) < 0
    if op == 3:
        return compare_3way(t, a, b) > 0
    if op == 4:
        return compare_3way(t, a, b) <= 0
    if op == 5:
        return compare_3way(t, a, b) >= 0
    if op == 8:
        return len(b) > len(a) and includes_all(t, a, b)
    if op == 9:
        return len(a) > len(b) and includes_all(t, b, a)
    if op in (10, 12):
        return includes_all(t, a, b)
    if op == 11:
        return includes_all(t, b, a)
    return excludes_all(t, a, b)


def check_condition(ctx: Context, table: Table, row: Row, arg: str) -> bool:
    col, key, op, value = parse_column_key_value(arg, table, True, RELOPS)
    assert value is not None
    have = row.get(col)
    if key is not None:
        ctype = col.type
        if ctype.value is None:
            raise CtlError(f"cannot specify key to check for non-map column {col.name}")
        want_key, _ = atom_from_string(ctype.key, key, ctx.symtab)
        vtype = type(ctype)(ctype.value, None, ctype.n_min, UINT_MAX)
        b = datum_from_string(vtype, value, ctx.symtab)
        pairs = dict(have)
        if want_key not in pairs and op not in _SET_OPS:
            return False
        a: Datum = (pairs[want_key],) if want_key in pairs else ()
        return _relop(vtype, a, b, op)
    want = datum_from_string(col.type, value, ctx.symtab)
    return _relop(col.type, have, want, op)


# --- the generic commands -------------------------------------------------------------


def _pre_get(ctx: Context) -> None:
    if "--id" not in ctx.options and len(ctx.argv) <= 3 and ctx.env.stdout_isatty:
        ctx.env.warn("db_ctl_base",
                     '"get" command without row arguments or "--id" is possibly erroneous')
    t = pre_get_table(ctx, ctx.argv[1])
    for arg in ctx.argv[3:]:
        if arg.lower() in ("_uuid", "-uuid"):
            continue
        _pre_parse_column(ctx, arg, t)


def _create_symbol(ctx: Context, id_: str) -> tuple[Any, bool]:
    if not id_.startswith("@"):
        raise CtlError(f'row id "{id_}" does not begin with "@"')
    new = ctx.symtab.get(id_) is None
    sym = ctx.symtab.insert(id_)
    if sym.created:
        raise CtlError(f'row id "{id_}" may only be specified on one --id option')
    sym.created = True
    return sym, new


def _cmd_get(ctx: Context) -> None:
    id_ = ctx.options.get("--id")
    must_exist = "--if-exists" not in ctx.options
    if "--id" in ctx.options and not must_exist:
        raise CtlError("--if-exists and --id may not be specified together")
    table = get_table(ctx.env.schema, ctx.argv[1])
    record_id = ctx.argv[2]
    row = get_row(ctx, table, record_id, must_exist)
    if row is None:
        return
    if id_ is not None:
        sym, new = _create_symbol(ctx, id_)
        if not new:
            raise CtlError(f'row id "{id_}" specified on "get" command was used before it '
                           "was defined")
        sym.uuid = row.uuid
        sym.strong_ref = True
    out = ctx.output
    for arg in ctx.argv[3:]:
        if arg.lower() in ("_uuid", "-uuid"):
            out.append(row.uuid + "\n")
            continue
        col, key, _, _ = parse_column_key_value(arg, table, False)
        ctx.idl.verify(row, col)
        datum = row.get(col)
        if key is not None:
            if col.type.value is None:
                raise CtlError(f"cannot specify key to get for non-map column {col.name}")
            k, _ = atom_from_string(col.type.key, key, ctx.symtab)
            pairs = dict(datum)
            if k not in pairs:
                if must_exist:
                    raise CtlError(f'no key "{key}" in {table.name} record "{record_id}" '
                                   f"column {col.name}")
            else:
                out.append(atom_to_string(col.type.value.type, pairs[k]))
        else:
            out.append(datum_to_string(col.type, datum))
        out.append("\n")


def parse_column_names(names: str | None, table: Table) -> list[Column | None]:
    if names is None:
        return [None, *table.sorted_columns]
    cols: list[Column | None] = []
    for name in names.replace(",", " ").split():
        cols.append(None if name.lower() == "_uuid" else get_column(table, name))
    if not cols:
        raise CtlError("must specify at least one column name")
    return cols


def _pre_list(ctx: Context) -> None:
    t = pre_get_table(ctx, ctx.argv[1])
    _pre_list_columns(ctx, t)
    if len(ctx.argv) == 2:
        ctx.plan.ordered.add(t.name)


def _make_table(cols: list[Column | None]) -> OutTable:
    from hwvtep.ctl.table import OutTable

    return OutTable([c.name if c is not None else "_uuid" for c in cols])


def _list_record(row: Row, cols: list[Column | None], out: OutTable) -> None:
    out.rows.append([(UUID_TYPE, (row.uuid,)) if c is None else (c.type, row.get(c))
                     for c in cols])


def _cmd_list(ctx: Context) -> None:
    must_exist = "--if-exists" not in ctx.options
    table = get_table(ctx.env.schema, ctx.argv[1])
    cols = parse_column_names(ctx.options.get("--columns"), table)
    out = ctx.table = _make_table(cols)
    if len(ctx.argv) > 2:
        for record in ctx.argv[2:]:
            row = get_row(ctx, table, record, must_exist)
            if row is not None:
                _list_record(row, cols, out)
    else:
        for row in ctx.idl.rows(table.name):
            _list_record(row, cols, out)


def _pre_find(ctx: Context) -> None:
    t = pre_get_table(ctx, ctx.argv[1])
    _pre_list_columns(ctx, t)
    for arg in ctx.argv[2:]:
        _pre_parse_column(ctx, arg, t)
    ctx.plan.ordered.add(t.name)


def _cmd_find(ctx: Context) -> None:
    table = get_table(ctx.env.schema, ctx.argv[1])
    cols = parse_column_names(ctx.options.get("--columns"), table)
    out = ctx.table = _make_table(cols)
    for row in list(ctx.idl.rows(table.name)):
        if all(check_condition(ctx, table, row, arg) for arg in ctx.argv[2:]):
            _list_record(row, cols, out)


def set_column(ctx: Context, table: Table, row: Row, arg: str, partial: bool) -> None:
    col, key, _, value = parse_column_key_value(arg, table, True)
    assert value is not None
    check_mutable(row, col)
    if key is not None:
        if col.type.value is None:
            raise CtlError(f"cannot specify key to set for non-map column {col.name}")
        k, _ = atom_from_string(col.type.key, key, ctx.symtab)
        v, _ = atom_from_string(col.type.value, value, ctx.symtab)
        if partial:
            ctx.idl.write_partial_map(row, col, k, v)
        else:
            d = union(col.type, ((k, v),), row.get(col))
            ctx.idl.verify(row, col)
            ctx.idl.write(row, col, d)
    else:
        ctx.idl.write(row, col, datum_from_string(col.type, value, ctx.symtab))


def _pre_set(ctx: Context) -> None:
    t = pre_get_table(ctx, ctx.argv[1])
    for arg in ctx.argv[3:]:
        _pre_parse_column(ctx, arg, t)


def _table_record(ctx: Context) -> tuple[Table, Row] | None:
    """A command's TABLE RECORD arguments (None: a missing record with --if-exists)."""
    table = get_table(ctx.env.schema, ctx.argv[1])
    row = get_row(ctx, table, ctx.argv[2], "--if-exists" not in ctx.options)
    return None if row is None else (table, row)


def _cmd_set(ctx: Context) -> None:
    target = _table_record(ctx)
    if target is None:
        return
    table, row = target
    for arg in ctx.argv[3:]:
        set_column(ctx, table, row, arg, ctx.last_command)
    ctx.invalidate_cache()


def _pre_add_remove(ctx: Context) -> None:
    t = pre_get_table(ctx, ctx.argv[1])
    ctx.idl_column(t, get_column(t, ctx.argv[3]))


def _add_remove_target(ctx: Context) -> tuple[Table, Column, Row] | None:
    """add/remove TABLE RECORD COLUMN ...: what they change (None: a missing record with
    --if-exists)."""
    table = get_table(ctx.env.schema, ctx.argv[1])
    col = get_column(table, ctx.argv[3])
    row = get_row(ctx, table, ctx.argv[2], "--if-exists" not in ctx.options)
    if row is None:
        return None
    check_mutable(row, col)
    return table, col, row


def _cmd_add(ctx: Context) -> None:
    target = _add_remove_target(ctx)
    if target is None:
        return
    table, col, row = target
    t = col.type
    new: Datum = () if ctx.last_command else row.get(col)
    add_type = t.relaxed(1, UINT_MAX)
    for arg in ctx.argv[4:]:
        new = union(t, new, datum_from_string(add_type, arg, ctx.symtab))
    if not ctx.last_command and len(new) > t.n_max:
        what = "values" if t.value is None else "pairs"
        raise CtlError(f'"add" operation would put {len(new)} {what} in column {col.name} of '
                       f"table {table.name} but the maximum number is {t.n_max}")
    if ctx.last_command:
        for e in new:
            if t.value is not None:
                ctx.idl.write_partial_map(row, col, e[0], e[1])
            else:
                ctx.idl.write_partial_set(row, col, e)
    else:
        ctx.idl.verify(row, col)
        ctx.idl.write(row, col, new)
    ctx.invalidate_cache()


def _cmd_remove(ctx: Context) -> None:
    target = _add_remove_target(ctx)
    if target is None:
        return
    table, col, row = target
    t = col.type
    old = row.get(col)
    rm_type = t.relaxed(1, UINT_MAX)
    for arg in ctx.argv[4:]:
        try:
            rm = datum_from_string(rm_type, arg, ctx.symtab)
            keys_only = False
        except CtlError:
            if t.value is None:
                raise
            key_type = type(t)(t.key, None, 1, UINT_MAX)
            rm = datum_from_string(key_type, arg, ctx.symtab)
            keys_only = True
        old = subtract(t, old, rm, keys_only)
    if len(old) < t.n_min:
        what = "values" if t.value is None else "pairs"
        raise CtlError(f'"remove" operation would put {len(old)} {what} in column {col.name} '
                       f"of table {table.name} but the minimum number is {t.n_min}")
    ctx.idl.verify(row, col)
    ctx.idl.write(row, col, old)
    ctx.invalidate_cache()


def _pre_clear(ctx: Context) -> None:
    t = pre_get_table(ctx, ctx.argv[1])
    for arg in ctx.argv[3:]:
        ctx.idl_column(t, get_column(t, arg))


def _cmd_clear(ctx: Context) -> None:
    target = _table_record(ctx)
    if target is None:
        return
    table, row = target
    for arg in ctx.argv[3:]:
        col = get_column(table, arg)
        check_mutable(row, col)
        if col.type.n_min > 0:
            raise CtlError(f'"clear" operation cannot be applied to column {col.name} of '
                           f"table {table.name}, which is not allowed to be empty")
        ctx.idl.write(row, col, ())
    ctx.invalidate_cache()


def _pre_create(ctx: Context) -> None:
    t = get_table(ctx.env.schema, ctx.argv[1])
    if "--id" not in ctx.options and not t.is_root:
        ctx.env.warn("db_ctl_base", f'applying "create" command to table {t.name} without '
                     "--id option will have no effect")


def _cmd_create(ctx: Context) -> None:
    id_ = ctx.options.get("--id")
    table = get_table(ctx.env.schema, ctx.argv[1])
    uuid: str | None = None
    persist = False
    if id_ is not None:
        if is_uuid(id_):
            uuid = id_.lower()
            persist = True
        else:
            sym, _ = _create_symbol(ctx, id_)
            if table.is_root:
                sym.strong_ref = True
            uuid = sym.uuid
    row = ctx.idl.insert(table, uuid, persist)
    for arg in ctx.argv[2:]:
        set_column(ctx, table, row, arg, False)
    ctx.output.append(row.uuid)


def post_create(ctx: Context, real: dict[str, str]) -> None:
    dummy = "".join(ctx.output)
    ctx.output[:] = [real.get(dummy, dummy), "\n"]


def _pre_destroy(ctx: Context) -> None:
    pre_get_table(ctx, ctx.argv[1])


def _cmd_destroy(ctx: Context) -> None:
    must_exist = "--if-exists" not in ctx.options
    delete_all = "--all" in ctx.options
    table = get_table(ctx.env.schema, ctx.argv[1])
    if delete_all and len(ctx.argv) > 2:
        raise CtlError("--all and records argument should not be specified together")
    if delete_all and not must_exist:
        raise CtlError("--all and --if-exists should not be specified together")
    if not delete_all and len(ctx.argv) == 2:
        ctx.env.warn("db_ctl_base", "either --all or records argument should be specified")
        return
    if delete_all:
        for row in list(ctx.idl.rows_unordered(table.name)):
            ctx.idl.delete(row)
    else:
        for record in ctx.argv[2:]:
            found = get_row(ctx, table, record, must_exist)
            if found is not None:
                ctx.idl.delete(found)
    ctx.invalidate_cache()


def _pre_wait_until(ctx: Context) -> None:
    t = pre_get_table(ctx, ctx.argv[1])
    for arg in ctx.argv[3:]:
        _pre_parse_column(ctx, arg, t)


def _cmd_wait_until(ctx: Context) -> None:
    table = get_table(ctx.env.schema, ctx.argv[1])
    row = get_row(ctx, table, ctx.argv[2], False)
    if row is None:
        ctx.try_again = True
        return
    for arg in ctx.argv[3:]:
        if not check_condition(ctx, table, row, arg):
            ctx.try_again = True
            return


# --- show -----------------------------------------------------------------------------


def _pre_show(ctx: Context) -> None:
    schema = ctx.env.schema
    for st in ctx.env.show_tables:
        ctx.need(st.table)
        t = schema.table(st.table)
        ctx.idl_table(t.name)
        for name in (st.name_column, *st.columns):
            if name is not None:
                ctx.idl_column(t, t.columns[name])


def _show_row(ctx: Context, row: Row, level: int, shown: set[str]) -> None:
    env = ctx.env
    show = next((s for s in env.show_tables if s.table == row.table.name), None)
    out = ctx.output
    out.append(" " * (level * 4))
    if show is not None and show.name_column is not None:
        col = row.table.columns[show.name_column]
        out.append(f"{show.table} {datum_to_string(col.type, row.get(col))}")
    else:
        out.append(row.uuid)
    out.append("\n")
    if show is None or show.table in shown:
        return
    shown.add(show.table)
    for cname in show.columns:
        col = row.table.columns[cname]
        t = col.type
        datum = row.get(col)
        if t.key.type == UUID and t.key.ref_table is not None:
            ref = next((s for s in env.show_tables if s.table == t.key.ref_table), None)
            if ref is not None:
                for u in datum:
                    ref_row = ctx.idl.row(ref.table, u)
                    if ref_row is not None:
                        _show_row(ctx, ref_row, level + 1, shown)
                continue
        elif t.value is not None and t.value.type == UUID and t.value.ref_table is not None:
            ref = next((s for s in env.show_tables if s.table == t.value.ref_table), None)
            if ref is not None and ref.name_column is not None:
                out.append(" " * ((level + 1) * 4) + f"{col.name}:\n")
                for k, v in datum:
                    ref_row = ctx.idl.row(ref.table, v)
                    out.append(" " * ((level + 2) * 4) + atom_to_string(t.key.type, k) + "=")
                    if ref_row is not None:
                        ncol = ref_row.table.columns[ref.name_column]
                        out.append(datum_to_string(ncol.type, ref_row.get(ncol)))
                    else:
                        out.append('"<null>"')
                    out.append("\n")
                continue
        if datum != default_datum(t):
            out.append(" " * ((level + 1) * 4) + f"{col.name}: {datum_to_string(t, datum)}\n")
    shown.discard(show.table)


def _cmd_show(ctx: Context) -> None:
    shown: set[str] = set()
    for row in list(ctx.idl.rows(ctx.env.show_tables[0].table)):
        _show_row(ctx, row, 0, shown)


register(
    Syntax("comment", 0, UINT_MAX, None, None, None, "", RO),
    Syntax("get", 2, UINT_MAX, _pre_get, _cmd_get, None, "--if-exists,--id=", RO),
    Syntax("list", 1, UINT_MAX, _pre_list, _cmd_list, None, "--if-exists,--columns=", RO),
    Syntax("find", 1, UINT_MAX, _pre_find, _cmd_find, None, "--columns=", RO),
    Syntax("set", 3, UINT_MAX, _pre_set, _cmd_set, None, "--if-exists", RW),
    Syntax("add", 4, UINT_MAX, _pre_add_remove, _cmd_add, None, "--if-exists", RW),
    Syntax("remove", 4, UINT_MAX, _pre_add_remove, _cmd_remove, None, "--if-exists", RW),
    Syntax("clear", 3, UINT_MAX, _pre_clear, _cmd_clear, None, "--if-exists", RW),
    Syntax("create", 2, UINT_MAX, _pre_create, _cmd_create, post_create, "--id=", RW),
    Syntax("destroy", 1, UINT_MAX, _pre_destroy, _cmd_destroy, None, "--if-exists,--all", RW),
    Syntax("wait-until", 2, UINT_MAX, _pre_wait_until, _cmd_wait_until, None, "", RO),
    Syntax("show", 0, 0, _pre_show, _cmd_show, None, "", RO),
)
