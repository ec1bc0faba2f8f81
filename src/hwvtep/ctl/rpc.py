"""A blocking JSON-RPC session to an OVSDB server, cheap to start.

`hwvtep ctl` makes two or three calls and exits, so this is deliberately small: connect
(``unix:``, ``tcp:``, ``ssl:``), write a request, read until the reply with its id has
arrived, answering the server's ``echo`` requests and queueing its notifications.

`open_usable` picks the server as vtep-ctl's IDL does (it is leader-only): each of the
comma-separated remotes gets one try, and a server is taken only if ``_Server`` says it
can serve the database read-write (for a Raft cluster: a connected leader). That check
travels with the first request, so it costs no round trip of its own. It uses
the interpreter's C socket module directly (the ``socket`` module imports ``enum`` and
friends, which cost more than a whole short command) and the standard ``json`` module for
small messages (through its C accelerator, see `jsonfast`); large replies are parsed with
orjson, imported only then.
"""

from __future__ import annotations

import _socket
import os

from hwvtep.ctl import jsonfast

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

_BIG = 1 << 20  # replies larger than this are parsed with orjson
_RECV = 1 << 20
_HEAD = 1 << 16  # how much of a large buffer is searched for a small first message
_DEFAULT_PORT = 6640


EOF = -1  # an "error number" for a connection the peer closed, as Open vSwitch has it


class ConnectionFailed(Exception):
    """The connection could not be made or broke; ``errno`` says why (`EOF`: the peer
    closed it; 0: no server would do, which Open vSwitch reports with no reason)."""

    def __init__(self, errno: int) -> None:
        super().__init__("" if errno == 0 else "End of file" if errno == EOF
                         else os.strerror(errno))
        self.errno = errno


class _Ssl:
    private_key: str | None = None
    certificate: str | None = None
    ca_cert: str | None = None
    peer_ca_cert: str | None = None


ssl_options = _Ssl()


def _inet(addr: str, default_port: int | None) -> tuple[int, tuple[Any, ...]]:
    """(family, sockaddr) for "IP[:PORT]" or "[IPv6][:PORT]"."""
    host = addr
    port: int | None = default_port
    if addr.startswith("["):
        end = addr.find("]")
        if end < 0:
            raise ConnectionFailed(97)
        host = addr[1:end]
        rest = addr[end + 1:]
        if rest.startswith(":") and rest[1:]:
            port = _port(rest[1:])
        elif rest:
            raise ConnectionFailed(97)
    elif addr.count(":") == 1:
        host, p = addr.split(":")
        port = _port(p) if p else default_port
    elif ":" in addr:
        host = addr
    if port is None:
        raise ConnectionFailed(97)
    for family in (_socket.AF_INET, _socket.AF_INET6):
        try:
            _socket.inet_pton(family, host)
        except OSError:
            continue
        if family == _socket.AF_INET6:
            return family, (host, port, 0, 0)
        return family, (host, port)
    try:
        infos = _socket.getaddrinfo(host, port, 0, _socket.SOCK_STREAM)
    except OSError:
        raise ConnectionFailed(97) from None
    family, _, _, _, sockaddr = infos[0]
    return family, sockaddr


def _port(s: str) -> int:
    if not s.isdigit() or not 0 < int(s) < 65536:
        raise ConnectionFailed(97)
    return int(s)


def _connect_one(target: str) -> Any:
    kind, _, rest = target.partition(":")
    try:
        if kind == "unix":
            sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
            try:
                sock.connect(rest)
            except OSError:
                sock.close()
                raise
            return sock
        if kind in ("tcp", "ssl"):
            family, addr = _inet(rest, _DEFAULT_PORT)
            if kind == "ssl" and not (ssl_options.private_key and ssl_options.certificate
                                      and ssl_options.ca_cert):
                raise ConnectionFailed(92)  # ENOPROTOOPT, as Open vSwitch reports it
            sock = _socket.socket(family, _socket.SOCK_STREAM)
            try:
                sock.connect(addr)
            except OSError:
                sock.close()
                raise
            sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
            if kind == "ssl":
                return _wrap_ssl(sock)
            return sock
    except OSError as e:
        raise ConnectionFailed(e.errno or 5) from None
    raise ConnectionFailed(97)  # EAFNOSUPPORT


def _wrap_ssl(sock: Any) -> Any:
    import socket
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.load_cert_chain(ssl_options.certificate or "", ssl_options.private_key)
    ctx.load_verify_locations(ssl_options.ca_cert)
    plain = socket.socket(fileno=sock.detach())
    return ctx.wrap_socket(plain)


class Session:
    """One connection; ``call()`` returns (result, error) of one request."""

    def __init__(self, remote: str) -> None:
        self.name = remote
        self.sock: Any = _connect_one(remote)
        self._buf = b""
        self._next_id = 0
        self.notifications: list[Any] = []

    def close(self) -> None:
        try:  # noqa: SIM105 (contextlib costs an import)
            self.sock.close()
        except OSError:
            pass

    def send(self, method: str, params: list[Any]) -> int:
        return self.send_many([(method, params)])[0]

    def send_many(self, requests: list[tuple[str, list[Any]]]) -> list[int]:
        """Write several requests at once (the server answers them in order)."""
        ids = list(range(self._next_id, self._next_id + len(requests)))
        self._next_id += len(requests)
        self._write(*[{"id": rid, "method": m, "params": p}
                      for rid, (m, p) in zip(ids, requests, strict=True)])
        return ids

    def _write(self, *msgs: Any) -> None:
        data = "".join(map(jsonfast.dumps, msgs)).encode("utf-8", "surrogateescape")
        try:
            self.sock.sendall(data)
        except OSError as e:
            raise ConnectionFailed(e.errno or 32) from None

    def call(self, method: str, params: list[Any]) -> tuple[Any, Any]:
        rid = self.send(method, params)
        return self.wait_reply(rid)

    def wait_reply(self, rid: int) -> tuple[Any, Any]:
        while True:
            msg = self.receive()
            if msg.get("id") == rid and "method" not in msg:
                return msg.get("result"), msg.get("error")
            self._handle_other(msg)

    def wait_notification(self) -> Any:
        while not self.notifications:
            self._handle_other(self.receive())
        return self.notifications.pop(0)

    def _handle_other(self, msg: dict[str, Any]) -> None:
        method = msg.get("method")
        if method == "echo" and msg.get("id") is not None:
            self._write({"id": msg["id"], "result": msg.get("params", []), "error": None})
        elif method is not None:
            self.notifications.append(msg)

    def receive(self) -> dict[str, Any]:
        """The next complete JSON message from the server."""
        if self._buf:
            msg, rest = _decode(self._buf)
            if msg is not None:
                self._buf = rest
                return msg  # type: ignore[no-any-return]
        chunks = [self._buf] if self._buf else []
        while True:
            try:
                chunk = self.sock.recv(_RECV)
            except OSError as e:
                raise ConnectionFailed(e.errno or 104) from None
            if not chunk:
                raise ConnectionFailed(EOF)
            chunks.append(chunk)
            # A complete message ends with "}": only then is decoding worth trying.
            if chunk.rstrip().endswith(b"}"):
                buf = b"".join(chunks)
                msg, rest = _decode(buf)
                if msg is not None:
                    self._buf = rest
                    return msg  # type: ignore[no-any-return]
                chunks = [buf]


def _decode(buf: bytes) -> tuple[Any, bytes]:
    """(first message, remaining bytes) or (None, buf) if the message is incomplete."""
    if len(buf) > _BIG:
        # A small reply may come first (the server check before a large snapshot): find
        # where it ends in the buffer's head rather than copy the whole buffer as text.
        head = buf[:_HEAD].decode("utf-8", "replace")
        try:
            msg, end = jsonfast.scan(head)
        except ValueError:
            pass
        else:
            return msg, buf[len(head[:end].encode()):]
        import orjson

        try:
            return orjson.loads(buf), b""
        except orjson.JSONDecodeError:
            pass
    text = buf.decode("utf-8", "replace")
    try:
        msg, end = jsonfast.scan(text)
    except ValueError:
        return None, buf
    rest = text[end:]
    return msg, rest.encode() if rest.strip() else b""


# --- picking a server ------------------------------------------------------------------

_TRY_ANOTHER = "trying another server"


def server_check(db_name: str) -> list[Any]:
    """``_Server`` ops: the database's row, and the row again if its schema is missing."""
    where: list[Any] = [["name", "==", db_name]]
    return ["_Server",
            {"op": "select", "table": "Database", "where": where,
             "columns": ["model", "connected", "leader"]},
            {"op": "select", "table": "Database",
             "where": [*where, ["schema", "==", ["set", []]]], "columns": ["name"]}]


def server_problem(db_name: str, result: Any, error: Any) -> str | None:
    """Why the server that sent this reply to `server_check` will not do, or None.

    A server without ``_Server`` (an error reply) is taken as it is, as Open vSwitch
    does. The reasons are the IDL's words, logged by vtep-ctl at level info.
    """
    if error is not None or not isinstance(result, list) or len(result) != 2:
        return None
    found, empty = result
    if not isinstance(found, dict) or not isinstance(found.get("rows"), list):
        return None
    if not found["rows"]:
        return f"server does not have {db_name} database"
    row = found["rows"][0]
    no_schema = isinstance(empty, dict) and bool(empty.get("rows"))
    model = row.get("model")
    if model == "clustered":
        if no_schema:
            return f"clustered database server has not yet joined cluster; {_TRY_ANOTHER}"
        if row.get("connected") is not True:
            return f"clustered database server is disconnected from cluster; {_TRY_ANOTHER}"
        if row.get("leader") is not True:
            return f"clustered database server is not cluster leader; {_TRY_ANOTHER}"
    elif model == "relay":
        if no_schema:
            return ("relay database server has not yet connected to the relay source; "
                    f"{_TRY_ANOTHER}")
        if row.get("connected") is not True:
            return ("relay database server is disconnected from the relay source; "
                    f"{_TRY_ANOTHER}")
        return f"relay database server cannot be a leader; {_TRY_ANOTHER}"
    elif no_schema:
        return "missing database schema"
    return None


def open_usable(db: str, db_name: str, method: str, params: list[Any],
                info: Callable[[str], None]) -> tuple[Session, Any, Any]:
    """A session to the first remote in *db* that will do, and its reply to the request
    (see `open_usable_many`)."""
    session, ((result, error),) = open_usable_many(db, db_name, [(method, params)], info)
    return session, result, error


def open_usable_many(db: str, db_name: str, requests: list[tuple[str, list[Any]]],
                     info: Callable[[str], None]) -> tuple[Session, list[tuple[Any, Any]]]:
    """A session to the first remote in *db* that will do, and its (result, error) for
    each request.

    The requests go out together with `server_check`, whose answer is read first. Each
    remote is tried once, in the order given (vtep-ctl shuffles them: for a cluster, the
    server it ends on is the same, the leader). A refused server is reported through
    *info*. If none will do, raises `ConnectionFailed` with the last connection error
    (errno 0 if there was none, e.g. every server was a follower), as vtep-ctl reports.
    """
    last = 0
    for target in db.split(","):
        remote = target.strip()
        try:
            session = Session(remote)
        except ConnectionFailed as e:
            last = e.errno
            continue
        try:
            check, *rids = session.send_many([("transact", server_check(db_name)),
                                              *requests])
            problem = server_problem(db_name, *session.wait_reply(check))
            if problem is None:
                return session, [session.wait_reply(rid) for rid in rids]
            info(f"{remote}: {problem}")
        except ConnectionFailed as e:
            last = e.errno
        session.close()
    raise ConnectionFailed(last)
