"""Remote specifications as Open vSwitch writes them.

``punix:PATH``, ``ptcp:PORT[:IP]``, ``pssl:PORT[:IP]`` listen; ``unix:PATH``,
``tcp:IP:PORT``, ``ssl:IP:PORT`` connect out (with reconnect backoff); ``db:DB,TABLE,COLUMN``
reads remotes from the database. Parsing is pure so both the server and the client use it.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_PORT = 6640


class RemoteError(ValueError):
    """A remote string that cannot be understood."""


@dataclass(frozen=True, slots=True)
class Remote:
    kind: str  # "punix" "ptcp" "pssl" "unix" "tcp" "ssl" "db"
    host: str = ""
    port: int = 0
    path: str = ""
    # For db: remotes.
    db: str = ""
    table: str = ""
    column: str = ""

    @property
    def passive(self) -> bool:
        return self.kind in ("punix", "ptcp", "pssl")

    @property
    def uses_ssl(self) -> bool:
        return self.kind in ("ssl", "pssl")

    def __str__(self) -> str:
        if self.kind in ("punix", "unix"):
            return f"{self.kind}:{self.path}"
        if self.kind == "db":
            return f"db:{self.db},{self.table},{self.column}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.passive:
            return f"{self.kind}:{self.port}" + (f":{host}" if self.host else "")
        return f"{self.kind}:{host}:{self.port}"


def _port(text: str, spec: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise RemoteError(f"{spec}: bad port number \"{text}\"") from None
    if not 0 <= port <= 65535:
        raise RemoteError(f"{spec}: bad port number \"{text}\"")
    return port


def _split_host_port(rest: str, spec: str) -> tuple[str, str | None]:
    """Split "HOST[:PORT]" where HOST may be a bracketed IPv6 address."""
    if rest.startswith("["):
        end = rest.find("]")
        if end < 0:
            raise RemoteError(f"{spec}: bad IPv6 address")
        host = rest[1:end]
        tail = rest[end + 1:]
        if not tail:
            return host, None
        if not tail.startswith(":"):
            raise RemoteError(f"{spec}: bad address")
        return host, tail[1:]
    if rest.count(":") > 1:  # a bare IPv6 address without a port
        return rest, None
    host, sep, port = rest.partition(":")
    return host, (port if sep else None)


def parse_remote(spec: str) -> Remote:
    kind, sep, rest = spec.partition(":")
    if not sep:
        raise RemoteError(f"{spec}: unknown remote (expected e.g. punix:PATH, ptcp:PORT)")
    if kind in ("punix", "unix"):
        if not rest:
            raise RemoteError(f"{spec}: missing socket path")
        return Remote(kind, path=rest)
    if kind in ("ptcp", "pssl"):
        port_s, _, host = rest.partition(":")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        return Remote(kind, host=host, port=_port(port_s or str(DEFAULT_PORT), spec))
    if kind in ("tcp", "ssl"):
        host, port_opt = _split_host_port(rest, spec)
        port_s = port_opt or ""
        if not host:
            raise RemoteError(f"{spec}: missing host")
        return Remote(kind, host=host, port=_port(port_s or str(DEFAULT_PORT), spec))
    if kind == "db":
        parts = rest.split(",")
        if len(parts) != 3 or not all(parts):
            raise RemoteError(f"{spec}: expected db:DB,TABLE,COLUMN")
        return Remote(kind, db=parts[0], table=parts[1], column=parts[2])
    raise RemoteError(f"{spec}: unknown remote type \"{kind}\"")
