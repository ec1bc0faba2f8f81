"""``hwvtep ovsdb-tool``: offline commands on database files, compatible with OVS's."""
