"""`hwvtep ctl`'s small JSON-RPC session: which server it keeps, and message framing.

The server choice follows vtep-ctl's leader-only IDL: the ``_Server`` row of the database
decides (clustered: a connected leader; relay: never; any model: a schema), every remote
is tried once, and the error reported is the last connection error (none if every server
answered but would not do). Fake servers on unix sockets answer the check here; the real
thing is in tests/integration/test_ctl_cluster.py.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hwvtep.ctl import rpc

DB = "hardware_vtep"


def check_reply(model: str = "standalone", connected: bool = True, leader: bool = True,
                schema: bool = True, present: bool = True) -> list[Any]:
    row = {"model": model, "connected": connected, "leader": leader}
    return [{"rows": [row] if present else []},
            {"rows": [] if schema or not present else [{"name": DB}]}]


@pytest.mark.parametrize(("reply", "problem"), [
    (check_reply(), None),
    (check_reply("clustered"), None),
    (check_reply("clustered", leader=False),
     "clustered database server is not cluster leader; trying another server"),
    (check_reply("clustered", connected=False, leader=False),
     "clustered database server is disconnected from cluster; trying another server"),
    (check_reply("clustered", connected=False, schema=False),
     "clustered database server has not yet joined cluster; trying another server"),
    (check_reply("relay"), "relay database server cannot be a leader; trying another server"),
    (check_reply("relay", connected=False), "relay database server is disconnected from "
     "the relay source; trying another server"),
    (check_reply(schema=False), "missing database schema"),
    (check_reply(present=False), "server does not have hardware_vtep database"),
])
def test_server_problem(reply: list[Any], problem: str | None) -> None:
    assert rpc.server_problem(DB, reply, None) == problem


def test_server_without_server_database_is_taken() -> None:
    assert rpc.server_problem(DB, None, {"error": "unknown database"}) is None
    assert rpc.server_problem(DB, [{"error": "unknown column"}, {"rows": []}], None) is None


def test_check_is_a_select_of_the_database_row() -> None:
    ops = rpc.server_check(DB)
    assert ops[0] == "_Server"
    assert [op["op"] for op in ops[1:]] == ["select", "select"]
    assert all(["name", "==", DB] in op["where"] for op in ops[1:])


def test_small_message_before_a_large_one_is_split_off() -> None:
    small = {"id": 0, "result": [{"rows": []}], "error": None}
    big = {"id": 1, "result": [{"rows": [{"name": "x" * 100, "n": i}
                                         for i in range(20000)]}], "error": None}
    buf = (json.dumps(small) + json.dumps(big)).encode()
    assert len(buf) > rpc._BIG
    first, rest = rpc._decode(buf)
    assert first == small
    second, rest = rpc._decode(rest)
    assert second == big and rest == b""
    # A large message first: the next one stays in the buffer.
    first, rest = rpc._decode(json.dumps(big).encode() + json.dumps(small).encode())
    assert first == big
    assert rpc._decode(rest) == (small, b"")
    # Incomplete large message: nothing yet.
    assert rpc._decode(buf[:-10])[0] == small
    assert rpc._decode(json.dumps(big).encode()[:-1])[0] is None


class FakeServer:
    """Answers the `_Server` check with *reply* and the request with [] (or just closes
    the connection if *reply* is None); counts connections."""

    def __init__(self, path: Path, reply: list[Any] | None) -> None:
        self.path = path
        self.reply = reply
        self.connections = 0
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(path))
        self.listener.listen(8)
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                dec = json.JSONDecoder()
                buf = ""
                msgs: list[Any] = []
                while len(msgs) < 2:
                    data = conn.recv(65536)
                    if not data:
                        break
                    buf += data.decode()
                    while buf.strip():
                        try:
                            msg, end = dec.raw_decode(buf.lstrip())
                        except ValueError:
                            break
                        msgs.append(msg)
                        buf = buf.lstrip()[end:]
                if self.reply is None or len(msgs) < 2:
                    continue
                answers = [{"id": msgs[0]["id"], "result": self.reply, "error": None},
                           {"id": msgs[1]["id"], "result": [], "error": None}]
                try:
                    conn.sendall("".join(json.dumps(a) for a in answers).encode())
                    conn.recv(1)  # until the client closes
                except OSError:
                    pass

    @property
    def remote(self) -> str:
        return f"unix:{self.path}"

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def fakes(tmp_path: Path) -> Iterator[dict[str, FakeServer]]:
    servers = {
        "leader": FakeServer(tmp_path / "l", check_reply("clustered")),
        "follower": FakeServer(tmp_path / "f", check_reply("clustered", leader=False)),
        "closes": FakeServer(tmp_path / "c", None),
    }
    yield servers
    for s in servers.values():
        s.close()


def open_usable(db: str) -> tuple[str, list[str]]:
    logged: list[str] = []
    session, result, error = rpc.open_usable(db, DB, "transact", [DB], logged.append)
    session.close()
    assert (result, error) == ([], None)
    return session.name, logged


def test_follower_is_skipped_for_the_leader(fakes: dict[str, FakeServer]) -> None:
    f, leader = fakes["follower"], fakes["leader"]
    name, logged = open_usable(f"{f.remote},{leader.remote}")
    assert name == leader.remote
    assert logged == [f"{f.remote}: clustered database server is not cluster leader; "
                      "trying another server"]
    assert (f.connections, leader.connections) == (1, 1)


def test_each_remote_is_tried_once_and_the_last_error_is_reported(
        fakes: dict[str, FakeServer], tmp_path: Path) -> None:
    f, closes = fakes["follower"], fakes["closes"]
    nowhere = f"unix:{tmp_path}/nowhere"
    cases = {f.remote: "", f"{f.remote},{f.remote}": "",
             closes.remote: "End of file", f"{nowhere},{f.remote}": "No such file or directory",
             f"{closes.remote},{nowhere}": "No such file or directory",
             f"{nowhere},{closes.remote},{f.remote}": "End of file"}
    for db, reason in cases.items():
        with pytest.raises(rpc.ConnectionFailed) as e:
            open_usable(db)
        assert str(e.value) == reason, db
    assert f.connections == 5


def test_incomplete_json_in_a_fresh_interpreter() -> None:
    """Without the json package loaded (as in `hwvtep ctl`; orjson loads it, but only
    for large replies), incomplete input is a ValueError, so a large reply read in
    pieces, or one after the server check, is decoded once complete (Python 3.11's C
    scanner fails otherwise with a SystemError)."""
    code = """
import sys
from hwvtep.ctl import jsonfast, rpc
for bad in ('{"a": [1, 2', '{"a": "abc', '{"a": 1', '{"a":'):
    try:
        jsonfast.scan(bad)
    except ValueError:
        pass
    else:
        raise SystemExit(f"no error for {bad!r}")
assert "json.decoder" not in sys.modules
small = b'{"id":0,"result":[],"error":null}'
big = b'{"id":1,"result":[' + b",".join(b'"%07d"' % i for i in range(200000)) + b'],"error":null}'
assert len(big) > rpc._BIG
assert rpc._decode(big[:-1])[0] is None
assert rpc._decode(small + big[:-1])[0] == {"id": 0, "result": [], "error": None}
msg, rest = rpc._decode(big + small)
assert len(msg["result"]) == 200000 and rpc._decode(rest)[0]["id"] == 0
print("ok")
"""
    cp = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                        timeout=60)
    assert (cp.stdout, cp.stderr, cp.returncode) == ("ok\n", "", 0)
