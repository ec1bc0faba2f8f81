"""Where a client connects: remote strings as Open vSwitch tools take them, and TLS files.

``unix:PATH``, ``tcp:HOST[:PORT]`` and ``ssl:HOST[:PORT]`` (port 6640 by default, IPv6 in
brackets); a comma-separated list names several servers (the members of a cluster), tried
in turn. The ``ssl`` module is imported only when a TLS context is built: most runs of
the command-line tools never need it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hwvtep.client.errors import RemoteError

if TYPE_CHECKING:
    import ssl

DEFAULT_PORT = 6640
KINDS = ("unix", "tcp", "ssl")


@dataclass(frozen=True, slots=True)
class Remote:
    kind: str  # "unix", "tcp" or "ssl"
    host: str = ""
    port: int = 0
    path: str = ""

    @property
    def needs_probes(self) -> bool:
        """Open vSwitch does not probe unix sockets: a dead peer closes them."""
        return self.kind != "unix"

    def __str__(self) -> str:
        if self.kind == "unix":
            return f"unix:{self.path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.kind}:{host}:{self.port}"


def parse_remote(spec: str | Remote) -> Remote:
    if isinstance(spec, Remote):
        return spec
    kind, sep, rest = spec.strip().partition(":")
    if not sep or kind not in KINDS:
        if kind in ("punix", "ptcp", "pssl"):
            raise RemoteError(f"{spec}: a client connects to a server; passive remotes "
                              "(punix:, ptcp:, pssl:) are for servers")
        raise RemoteError(f"{spec}: unknown remote (expected unix:PATH, tcp:IP:PORT or "
                          "ssl:IP:PORT)")
    if kind == "unix":
        if not rest:
            raise RemoteError(f"{spec}: missing socket path")
        return Remote("unix", path=rest)
    if rest.startswith("["):
        end = rest.find("]")
        if end < 0:
            raise RemoteError(f"{spec}: bad IPv6 address")
        host, tail = rest[1:end], rest[end + 1:]
        if tail and not tail.startswith(":"):
            raise RemoteError(f"{spec}: bad address")
        port_s = tail[1:]
    elif rest.count(":") > 1:
        host, port_s = rest, ""  # a bare IPv6 address, default port
    else:
        host, _, port_s = rest.partition(":")
    if not host:
        raise RemoteError(f"{spec}: missing host")
    try:
        port = int(port_s) if port_s else DEFAULT_PORT
    except ValueError:
        raise RemoteError(f'{spec}: bad port number "{port_s}"') from None
    if not 0 < port <= 65535:
        raise RemoteError(f'{spec}: bad port number "{port_s}"')
    return Remote(kind, host=host, port=port)


def parse_remotes(spec: str | Remote | Sequence[str | Remote]) -> tuple[Remote, ...]:
    """One remote, a comma-separated list of them, or a sequence of either."""
    items: list[str | Remote]
    if isinstance(spec, Remote):
        items = [spec]
    elif isinstance(spec, str):
        items = [s for s in spec.split(",") if s.strip()]
    else:
        items = []
        for s in spec:
            items.extend([s] if isinstance(s, Remote) else [x for x in s.split(",")
                                                            if x.strip()])
    if not items:
        raise RemoteError("no remote given")
    return tuple(parse_remote(s) for s in items)


@dataclass(frozen=True, slots=True)
class SslConfig:
    """Our private key and certificate, and the CA certificate that signs the server's.

    As in Open vSwitch, the server's certificate must be signed by ``ca_cert``; its name
    is not checked against the host (clusters are usually addressed by IP).
    """

    private_key: str
    certificate: str
    ca_cert: str

    def context(self) -> ssl.SSLContext:
        import ssl

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            ctx.load_cert_chain(self.certificate, self.private_key)
            ctx.load_verify_locations(self.ca_cert)
        except (OSError, ssl.SSLError) as e:
            raise RemoteError(f"cannot load SSL files: {e}") from None
        return ctx
