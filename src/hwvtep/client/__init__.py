"""The OVSDB client library: sessions, typed calls, transactions and replicas.

Names are imported on first use, so that a program using only the blocking helpers
(:mod:`hwvtep.client.sync`) never pays for asyncio.

- :class:`Client` (``api``): typed RFC 7047 calls over a reconnecting session.
- :class:`Replica` (``replica``): a live copy of a database kept by monitors.
- :class:`Txn` (``txn``): transaction builder; :class:`SyncClient`/:func:`call` (``sync``).
- :class:`Session` (``connection``) and :class:`SessionCore` (``session``) underneath.

Typical use::

    replica = await Replica.open("tcp:10.0.0.1:6641,tcp:10.0.0.2:6641", "hardware_vtep")
    for row in replica.rows("Logical_Switch").values():   # dict[str, Datum]
        ...
    async for changes in replica.changes():               # table -> uuid -> (old, new)
        ...

    def build(txn: Txn) -> None:                          # re-run if verification fails
        ls = next(replica.find("Logical_Switch", name=("ls0",)))
        txn.verify("Logical_Switch", ls, ["tunnel_key"])
        txn.update_row("Logical_Switch", ls["_uuid"][0], {"tunnel_key": (5000,)})
    result, _ = await replica.transact(build)

    dbs = call("unix:/run/db.sock", "list_dbs", [])     # one blocking request
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "Client": "api",
    "NotificationStream": "api",
    "Session": "connection",
    "SessionListener": "connection",
    "SessionCore": "session",
    "Replica": "replica",
    "ReplicaCore": "replica",
    "ChangeStream": "replica",
    "Txn": "txn",
    "TxnResult": "txn",
    "NamedUuid": "txn",
    "where_uuid": "txn",
    "SyncClient": "sync",
    "call": "sync",
    "Remote": "remote",
    "SslConfig": "remote",
    "parse_remotes": "remote",
    "ClientError": "errors",
    "ConnectionLost": "errors",
    "CallTimeout": "errors",
    "SessionClosed": "errors",
    "RemoteError": "errors",
    "ProtocolViolation": "errors",
    "RpcError": "errors",
    "TxnError": "errors",
    "TxnConflict": "errors",
}

__all__ = [
    "CallTimeout",
    "ChangeStream",
    "Client",
    "ClientError",
    "ConnectionLost",
    "NamedUuid",
    "NotificationStream",
    "ProtocolViolation",
    "Remote",
    "RemoteError",
    "Replica",
    "ReplicaCore",
    "RpcError",
    "Session",
    "SessionClosed",
    "SessionCore",
    "SessionListener",
    "SslConfig",
    "SyncClient",
    "Txn",
    "TxnConflict",
    "TxnError",
    "TxnResult",
    "call",
    "parse_remotes",
    "where_uuid",
]

if TYPE_CHECKING:
    from hwvtep.client.api import Client, NotificationStream
    from hwvtep.client.connection import Session, SessionListener
    from hwvtep.client.errors import (
        CallTimeout,
        ClientError,
        ConnectionLost,
        ProtocolViolation,
        RemoteError,
        RpcError,
        SessionClosed,
        TxnConflict,
        TxnError,
    )
    from hwvtep.client.remote import Remote, SslConfig, parse_remotes
    from hwvtep.client.replica import ChangeStream, Replica, ReplicaCore
    from hwvtep.client.session import SessionCore
    from hwvtep.client.sync import SyncClient, call
    from hwvtep.client.txn import NamedUuid, Txn, TxnResult, where_uuid


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'hwvtep.client' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"hwvtep.client.{module}"), name)
    globals()[name] = value
    return value
