"""RFC 7047 locks: lock, steal, unlock, with the owner first in each lock's queue.

Pure bookkeeping: the caller sends the "locked"/"stolen" notifications this returns.
A stolen-from session stays in the queue and gets the lock back when the thief releases it,
as ovsdb-server does.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field

from hwvtep.ovsdb.errors import NO_SYNTAX, OvsdbError


@dataclass
class LockTable:
    # lock name -> queue of sessions; the first one owns the lock
    queues: dict[str, list[Hashable]] = field(default_factory=dict)

    def owner(self, name: str) -> Hashable | None:
        q = self.queues.get(name)
        return q[0] if q else None

    def has_lock(self, session: Hashable, name: str) -> bool:
        return self.owner(name) is session

    def _check_new(self, session: Hashable, name: str, method: str, params: object) -> None:
        if session in self.queues.get(name, ()):
            raise OvsdbError("syntax error", f'must issue "unlock" before new "{method}"',
                             params)

    def lock(self, session: Hashable, name: str, params: object = NO_SYNTAX) -> bool:
        """Queue *session* for *name*; True if it owns the lock now."""
        self._check_new(session, name, "lock", params)
        q = self.queues.setdefault(name, [])
        q.append(session)
        return q[0] is session

    def steal(self, session: Hashable, name: str,
              params: object = NO_SYNTAX) -> Hashable | None:
        """Make *session* the owner at once; returns the previous owner (to notify)."""
        self._check_new(session, name, "steal", params)
        q = self.queues.setdefault(name, [])
        victim = q[0] if q else None
        q.insert(0, session)
        return victim

    def unlock(self, session: Hashable, name: str, params: object = NO_SYNTAX) -> Hashable | None:
        """Release; returns the session that now owns the lock (to notify), if any."""
        q = self.queues.get(name)
        if not q or session not in q:
            raise OvsdbError("syntax error", 'unlock: "unlock" without "lock" or "steal"',
                             params)
        was_owner = q[0] is session
        q.remove(session)
        if not q:
            del self.queues[name]
            return None
        return q[0] if was_owner else None

    def drop_session(self, session: Hashable) -> list[tuple[str, Hashable]]:
        """Release every lock of a closed session; (lock, new owner) pairs to notify."""
        granted: list[tuple[str, Hashable]] = []
        for name in [n for n, q in self.queues.items() if session in q]:
            new_owner = self.unlock(session, name)
            if new_owner is not None:
                granted.append((name, new_owner))
        return granted
