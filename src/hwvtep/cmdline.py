"""glibc's getopt_long() as Open vSwitch's programs meet it, for our look-alikes of them.

``hwvtep ctl`` (vtep-ctl), ``hwvtep ovsdb-client`` and ``hwvtep ovsdb-tool`` must accept
and refuse options, abbreviations and option clusters exactly as their C originals, with
the same messages. They live in layers that may not import each other, so the parser lives
here, outside the layers, importing nothing of ours (and nothing slow: ``hwvtep ctl`` starts
on every call of a script).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import NoReturn

NO, REQ, OPT = 0, 1, 2  # an option's argument: none, required, optional


def short_options(longs: dict[str, tuple[int, str]]) -> dict[str, str]:
    """Short option letter -> long name, from a table of name -> (argument, short)."""
    return {short: name for name, (_, short) in longs.items() if short}


def getopt_long(argv: list[str], longs: dict[str, int], shorts: dict[str, str],
                apply: Callable[[str, str | None], None],
                fail: Callable[[str], NoReturn],
                permute: bool) -> list[str]:
    """glibc's getopt_long(): long options may be abbreviated, each option takes effect (or
    fails) in turn, and the non-options are returned. With *permute* options may follow
    non-options (until ``--``); without it (a leading "+") the first non-option ends them.
    *shorts* maps a letter to a name in *longs*."""
    args: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--":
            args.extend(argv[i:])
            break
        if not arg.startswith("-") or arg == "-":
            if not permute:
                args.extend(argv[i - 1:])
                break
            args.append(arg)
            continue
        if arg.startswith("--"):
            name, eq, value = arg[2:].partition("=")
            if name in longs:
                full = name
            else:
                cands = [n for n in longs if n.startswith(name)]
                if not cands:
                    fail(f"unrecognized option '{arg}'")
                if len(cands) > 1:
                    fail(f"option '{arg}' is ambiguous; possibilities: "
                         + " ".join(f"'--{c}'" for c in cands))
                full = cands[0]
            has = longs[full]
            val: str | None = value if eq else None
            if has == NO and eq:
                fail(f"option '--{full}' doesn't allow an argument")
            if has == REQ and not eq:
                if i >= len(argv):
                    fail(f"option '--{full}' requires an argument")
                val = argv[i]
                i += 1
            apply(full, val)
            continue
        j = 1
        while j < len(arg):
            c = arg[j]
            name = shorts.get(c, "")
            if not name:
                fail(f"invalid option -- '{c}'")
            has = longs[name]
            if has == NO:
                apply(name, None)
                j += 1
                continue
            rest = arg[j + 1:]
            if rest:
                apply(name, rest)
            elif has == REQ:
                if i >= len(argv):
                    fail(f"option requires an argument -- '{c}'")
                apply(name, argv[i])
                i += 1
            else:
                apply(name, None)
            break
    return args
