"""The ``--help`` text of `hwvtep ctl` (kept apart: only ``--help`` pays for it)."""

from __future__ import annotations

_TEXT = """\
{prog}: configure a hardware_vtep database (vtep-ctl compatible, hwvtep)
usage: {prog} [OPTIONS] COMMAND [ARG...] [-- [OPTIONS] COMMAND [ARG...]]...

Commands joined by "--" run as one transaction.

Overview:
  show                              tree of managers, switches, ports, bindings

Managers:
  get-manager                       the manager targets
  del-manager                       remove every manager
  [--inactivity-probe=MSECS] set-manager TARGET...
                                    replace the managers by TARGET...

Physical switches and ports:
  [--may-exist] add-ps PS           add physical switch PS
  [--if-exists] del-ps PS           remove PS and its ports
  list-ps                           names of the physical switches
  ps-exists PS                      exit status 2 unless PS exists
  list-ports PS                     names of the ports of PS
  [--may-exist] add-port PS PORT    add PORT to PS
  [--if-exists] del-port PS PORT    remove PORT from PS

Logical switches and routers:
  [--may-exist] add-ls LS           add logical switch LS
  [--if-exists] del-ls LS           remove LS
  list-ls                           names of the logical switches
  ls-exists LS                      exit status 2 unless LS exists
  bind-ls PS PORT VLAN LS           map VLAN on PORT of PS to LS
  unbind-ls PS PORT VLAN            remove the mapping of VLAN on PORT
  list-bindings PS PORT             VLAN to logical switch mappings of PORT
  set-replication-mode LS MODE      MODE: service_node or source_node
  get-replication-mode LS           the replication mode of LS
  [--may-exist] add-lr LR           add logical router LR
  [--if-exists] del-lr LR           remove LR
  list-lr                           names of the logical routers
  lr-exists LR                      exit status 2 unless LR exists

MACs (ENCAP defaults to vxlan_over_ipv4):
  add-ucast-local LS MAC [ENCAP] IP   set the locator of a local unicast MAC
  del-ucast-local LS MAC              remove a local unicast MAC
  add-mcast-local LS MAC [ENCAP] IP   add a locator to a local multicast MAC
  del-mcast-local LS MAC [ENCAP] IP   remove a locator from a local multicast MAC
  clear-local-macs LS                 remove every local MAC of LS
  list-local-macs LS                  local MACs of LS and their locators
  add-ucast-remote LS MAC [ENCAP] IP  the same for remote MACs
  del-ucast-remote LS MAC
  add-mcast-remote LS MAC [ENCAP] IP
  del-mcast-remote LS MAC [ENCAP] IP
  clear-remote-macs LS
  list-remote-macs LS

Database commands (TBL and COL may be abbreviated; a record REC is a UUID or a unique
prefix of one, "." in a table of one row, or a name: Logical_Switch, Physical_Switch,
Physical_Port and Logical_Router by "name", Manager by "target"):
  [--if-exists] [--columns=COL,...] list TBL [REC...]
  [--columns=COL,...] find TBL [COL[:KEY]{{OP}}VALUE]...
        OP: = != < > <= >= {{=}} {{!=}} {{<}} {{>}} {{<=}} {{>=}} {{in}} {{not-in}}
  [--if-exists] [--id=@NAME] get TBL REC [COL[:KEY]]...
  [--if-exists] set TBL REC COL[:KEY]=VALUE...
  [--if-exists] add TBL REC COL [KEY=]VALUE...
  [--if-exists] remove TBL REC COL KEY|VALUE|KEY=VALUE...
  [--if-exists] clear TBL REC COL...
  [--id=@NAME|UUID] create TBL COL[:KEY]=VALUE...
  [--if-exists] [--all] destroy TBL [REC...]
  wait-until TBL REC [COL[:KEY]=VALUE]...
  comment [ARG...]

Options:
  --db=DATABASE               the server: unix:PATH, tcp:IP[:PORT], ssl:IP[:PORT]
                              (default: $HWVTEP_DB, else {default_db})
  -t, --timeout=SECS          give up after SECS seconds
  --dry-run                   do everything but commit
  --oneline                   one line of output per command

Output formatting:
  -f, --format=FORMAT         list (default), table, csv, html or json
  -d, --data=FORMAT           cells as string (default), bare or json
  --no-headings               no column headings
  --pretty                    indented JSON
  --bare                      same as --format=list --data=bare --no-headings
  --max-column-width=N        cut table cells to N bytes

Logging:
  -v, --verbose[=SPEC]        log levels, e.g. -vconsole:off or -vvtep_ctl:dbg

SSL (for ssl: targets):
  -p, --private-key=FILE      private key
  -c, --certificate=FILE      certificate for the private key
  -C, --ca-cert=FILE          CA certificate that signs the server's certificate

Other options:
  -h, --help                  this text
  -V, --version               version of hwvtep and of the bundled schema
"""


def usage_text(prog: str, default_db: str) -> str:
    return _TEXT.format(prog=prog, default_db=default_db)
