"""Tables of records printed the way Open vSwitch's table printer prints them.

`list` and `find` produce a table (headings and rows of cells holding a column value);
``--format`` picks the layout (list, table, csv, html, json), ``--data`` the cell text
(string, bare, json), plus ``--no-headings``, ``--pretty``, ``--bare`` and
``--max-column-width``. Widths are counted in bytes, as C's ``printf`` counts them.

`hwvtep ovsdb-client` prints through the same code: its tables also have a caption and a
timestamp, and cells that are literal text (``str``), empty (``None``) or a value as the
server sent it (:class:`JsonCell`, shown as JSON when it does not fit its type).
"""

from __future__ import annotations

from hwvtep.ctl.values import (
    datum_to_bare,
    datum_to_json,
    datum_to_string,
    is_uuid,
    json_dumps,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from hwvtep.ctl.common import Style
    from hwvtep.ctl.values import Datum, Type


class JsonCell:
    """A cell holding a value as received: *json*, of column type *type* (None: untyped,
    always printed as JSON). Printed as JSON too when it is not a valid *type* value."""

    __slots__ = ("json", "type")

    def __init__(self, json: Any, type: Type | None = None) -> None:
        self.json = json
        self.type = type


if TYPE_CHECKING:
    Cell = tuple[Type, Datum] | str | JsonCell | None


class OutTable:
    """Headings and rows of cells: (type, datum), literal text, None or a JsonCell."""

    __slots__ = ("caption", "headings", "rows", "timestamp")

    def __init__(self, headings: list[str], caption: str | None = None,
                 timestamp: bool = False) -> None:
        self.headings = headings
        self.rows: list[list[Cell]] = []
        self.caption = caption
        self.timestamp = timestamp


_first_table = [True]


def _cell_text(cell: Cell, style: Style) -> str:
    if isinstance(cell, tuple):
        t, d = cell
        if style.cell_format == "json":
            return json_dumps(datum_to_json(t, d))
        if style.cell_format == "string":
            return datum_to_string(t, d)
        return datum_to_bare(t, d)
    if cell is None:
        return ""
    if isinstance(cell, str):
        return cell
    return _json_cell_text(cell, style)


def _json_cell_text(cell: JsonCell, style: Style) -> str:
    t = cell.type
    if t is not None and style.cell_format != "json":
        from hwvtep.ctl.values import datum_from_json

        try:
            d = datum_from_json(t, cell.json)
        except (TypeError, ValueError, IndexError, KeyError):
            d = None
        if d is not None and t.n_min <= len(d) <= t.n_max and _unique(t, d):
            if style.cell_format == "string":
                return datum_to_string(t, d)
            return datum_to_bare(t, d)
    return json_dumps(cell.json)


def _unique(t: Type, d: Datum) -> bool:
    keys = [p[0] for p in d] if t.value is not None else d
    return all(keys[i] != keys[i + 1] for i in range(len(keys) - 1))


def _cell_json(cell: Cell) -> Any:
    if isinstance(cell, tuple):
        t, d = cell
        return datum_to_json(t, d)
    if cell is None or isinstance(cell, str):
        return cell
    return cell.json


def format_timestamp(now: float) -> str:
    """Open vSwitch's table timestamp: UTC, milliseconds."""
    import time

    ms = int(now * 1000)
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}"


def _preamble(tbl: OutTable, out: list[str]) -> None:
    if tbl.timestamp:
        import time

        out.append(format_timestamp(time.time()) + "\n")
    if tbl.caption is not None:
        out.append(tbl.caption + "\n")


def _separator(out: list[str]) -> None:
    if _first_table[0]:
        _first_table[0] = False
    else:
        out.append("\n")


def _blen(s: str) -> int:
    return len(s) if s.isascii() else len(s.encode("utf-8", "surrogateescape"))


def _fit(s: str, width: int) -> str:
    """printf's "%-*.*s": cut to *width* bytes, then pad with spaces."""
    n = _blen(s)
    if n > width:
        b = s.encode("utf-8", "surrogateescape")[:width]
        return b.decode("utf-8", "surrogateescape")
    return s + " " * (width - n)


def format_table(tbl: OutTable, style: Style) -> str:
    out: list[str] = []
    fmt = style.format
    if fmt == "table":
        _separator(out)
        _preamble(tbl, out)
        texts = [[_cell_text(c, style) for c in row] for row in tbl.rows]
        widths = []
        for x, heading in enumerate(tbl.headings):
            w = max((_blen(r[x]) for r in texts), default=0)
            if style.max_column_width > 0 and w > style.max_column_width:
                w = style.max_column_width
            if style.headings:
                w = max(w, _blen(heading))
            widths.append(w)
        if style.headings:
            out.append(" ".join(_fit(h, w) for h, w in zip(tbl.headings, widths, strict=True))
                       .rstrip(" ") + "\n")
            out.append(" ".join("-" * w for w in widths).rstrip(" ") + "\n")
        for r in texts:
            out.append(" ".join(_fit(t, w) for t, w in zip(r, widths, strict=True))
                       .rstrip(" ") + "\n")
    elif fmt == "list":
        _separator(out)
        _preamble(tbl, out)
        for y, row in enumerate(tbl.rows):
            if y:
                out.append("\n")
            for heading, cell in zip(tbl.headings, row, strict=True):
                text = _cell_text(cell, style)
                if style.headings:
                    out.append(f"{heading:<20}: {text}\n")
                else:
                    out.append(text + "\n")
    elif fmt == "csv":
        _separator(out)
        _preamble(tbl, out)
        if style.headings:
            out.append(",".join(_csv(h) for h in tbl.headings) + "\n")
        for row in tbl.rows:
            out.append(",".join(_csv(_cell_text(c, style)) for c in row) + "\n")
    elif fmt == "html":
        if tbl.timestamp:
            import time

            out.append(format_timestamp(time.time()) + "\n")
        out.append("<table border=1>\n")
        if tbl.caption is not None:
            out.append(_html_cell("caption", tbl.caption))
        if style.headings:
            out.append("  <tr>\n")
            out.extend(_html_cell("th", h) for h in tbl.headings)
            out.append("  </tr>\n")
        for row in tbl.rows:
            out.append("  <tr>\n")
            for heading, cell in zip(tbl.headings, row, strict=True):
                text = _cell_text(cell, style)
                if heading == "_uuid":
                    out.append(f'    <td><a name="{_html_escape(text)}">'
                               f"{_html_escape(text[:8])}</a></td>\n")
                else:
                    out.append(_html_cell("td", text))
            out.append("  </tr>\n")
        out.append("</table>\n")
    else:
        j: dict[str, Any] = {
            "headings": list(tbl.headings),
            "data": [[_cell_json(c) for c in row] for row in tbl.rows],
        }
        if tbl.caption is not None:
            j["caption"] = tbl.caption
        if tbl.timestamp:
            import time

            j["time"] = format_timestamp(time.time())
        out.append(json_dumps(j, style.pretty) + "\n")
    return "".join(out)


def _csv(s: str) -> str:
    if "\n" not in s and '"' not in s and "," not in s:
        return s
    return '"' + s.replace('"', '""') + '"'


def _html_escape(s: str) -> str:
    return (s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))


def _html_cell(element: str, content: str) -> str:
    parts = [f"    <{element}>"]
    i = 0
    n = len(content)
    while i < n:
        if n - i >= 36 and is_uuid(content[i:i + 36]):
            u = content[i:i + 36]
            parts.append(f'<a href="#{u}">{u[:8]}</a>')
            i += 36
        else:
            parts.append(_html_escape(content[i]))
            i += 1
    parts.append(f"</{element}>\n")
    return "".join(parts)
