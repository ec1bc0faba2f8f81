"""The control socket that `ovs-appctl -t TARGET COMMAND ARG...` talks to.

The wire is OVSDB's JSON-RPC: a request whose method is the command and whose params are
the string arguments; the reply's "result" (success) or "error" (failure) is the text to
print. Command handlers may be coroutines (e.g. compaction); one request per connection at
a time, as Open vSwitch does.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from hwvtep.ovsdb.jsonrpc import Closed, Connection, ProtocolError, Reply, Request, error_reply

log = logging.getLogger("hwvtep.unixctl")


class CommandError(Exception):
    """Raised by a handler: the text becomes the error reply."""


Handler = Callable[[list[str]], "str | Awaitable[str]"]


@dataclass(frozen=True, slots=True)
class Command:
    usage: str | None
    min_args: int
    max_args: int
    handler: Handler


@dataclass
class CommandTable:
    commands: dict[str, Command] = field(default_factory=dict)
    version: str = ""

    def __post_init__(self) -> None:
        self.register("list-commands", "", 0, 0, self._list_commands)
        self.register("help", "", 0, 0, self._list_commands)
        self.register("version", "", 0, 0, lambda _a: self.version)

    def register(self, name: str, usage: str | None, min_args: int, max_args: int,
                 handler: Handler) -> None:
        self.commands[name] = Command(usage, min_args, max_args, handler)

    def _list_commands(self, _args: list[str]) -> str:
        lines = ["The available commands are:"]
        for name in sorted(self.commands):
            usage = self.commands[name].usage
            if usage is not None:
                lines.append(f"  {name:<23} {usage}".rstrip())
        return "\n".join(lines) + "\n"

    async def run(self, method: str, params: Any) -> tuple[bool, str]:
        """Run one command: (success, text with a final newline unless empty)."""
        cmd = self.commands.get(method)
        if cmd is None:
            return False, _nl(f'"{method}" is not a valid command (use "list-commands" '
                              "to see a list of valid commands)")
        args = params if isinstance(params, list) else []
        if len(args) < cmd.min_args:
            return False, _nl(f'"{method}" command requires at least {cmd.min_args} arguments')
        if len(args) > cmd.max_args:
            return False, _nl(f'"{method}" command takes at most {cmd.max_args} arguments')
        if not all(isinstance(a, str) for a in args):
            return False, _nl(f'"{method}" command has non-string argument')
        try:
            out = cmd.handler(list(args))
            if inspect.isawaitable(out):
                out = await out
        except CommandError as e:
            return False, _nl(str(e))
        except Exception as e:  # a bug in a handler must not kill the daemon
            log.exception("unixctl command %s failed", method)
            return False, _nl(f"{method}: internal error: {e}")
        return True, _nl(str(out))


def _nl(text: str) -> str:
    return text if not text or text.endswith("\n") else text + "\n"


class UnixctlServer:
    """Listens on a unix socket and serves a CommandTable."""

    def __init__(self, path: str, table: CommandTable) -> None:
        self.path = path
        self.table = table
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        self._server = await asyncio.start_unix_server(self._serve, path=self.path)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = Connection()
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    return
                conn.receive_data(data)
                for msg in conn.events():
                    if isinstance(msg, ProtocolError | Closed):
                        return
                    if not isinstance(msg, Request):
                        continue
                    ok, text = await self.table.run(msg.method, msg.params)
                    out = Reply(text, msg.id) if ok else error_reply(text, msg.id)
                    writer.write(conn.send(out))
                    await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
