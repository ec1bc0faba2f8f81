"""The single `hwvtep` entry point.

Subcommands are looked up in a table and imported lazily, so that a short command such as
`hwvtep ctl list-ps` pays only for the modules it uses.
"""

from __future__ import annotations

import importlib
import sys

# subcommand -> (module, function, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str, str]] = {
    "ovsdb-server": ("hwvtep.server.main", "main", "serve OVSDB databases (RFC 7047)"),
    "ovsdb-tool": ("hwvtep.tool.main", "main", "create, query and transform OVSDB files"),
    "lab": ("hwvtep.lab.cli", "main", "network-namespace labs from a YAML topology"),
    "agent": ("hwvtep.agent.main", "main", "hardware VTEP emulator on the Linux kernel"),
    "ctl": ("hwvtep.ctl.main", "main",
            "vtep-ctl compatible configuration of a hardware_vtep database"),
    "ovsdb-client": ("hwvtep.ctl.ovsdb_client", "main",
                     "ovsdb-client compatible queries, transactions and monitors"),
}


def usage() -> str:
    lines = ["usage: hwvtep COMMAND [ARG...]", "", "commands:"]
    for name, (_, _, text) in SUBCOMMANDS.items():
        lines.append(f"  {name:<14} {text}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help", "help"):
        sys.stdout.write(usage())
        return 0
    if args[0] in ("-V", "--version"):
        from hwvtep import __version__

        print(f"hwvtep {__version__}")
        return 0
    entry = SUBCOMMANDS.get(args[0])
    if entry is None:
        sys.stderr.write(f"hwvtep: unknown command '{args[0]}'; use --help for help\n")
        return 2
    module = importlib.import_module(entry[0])
    func = getattr(module, entry[1])
    result: int = func(args[1:])
    return result


if __name__ == "__main__":
    sys.exit(main())
