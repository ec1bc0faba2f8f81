"""When to connect, probe and give up on an OVSDB connection, with time as a parameter.

Clients (and servers with active remotes or listeners) need the same policy as Open
vSwitch's ``reconnect`` module: exponential backoff between connection attempts, a
timeout on attempts, and an inactivity probe (after an interval with nothing received,
send an ``echo``; after another one, drop the connection). Keeping the policy in a pure
state machine that is told what happened and when (milliseconds, from any monotonic
clock) lets the asyncio layers stay thin and lets tests drive time by hand.

The caller's loop: ``action = fsm.run(now)``; do what it says (``CONNECT``: start a
connection attempt and call :meth:`Reconnect.connecting`, then :meth:`connected` or
:meth:`connect_failed`; ``PROBE``: send an echo request; ``DISCONNECT``: drop the
connection or attempt and call :meth:`disconnected`); report traffic with
:meth:`received`; sleep at most :meth:`timeout` milliseconds before calling ``run`` again.
"""

from __future__ import annotations

import enum
from typing import Final


class Action(enum.Enum):
    CONNECT = "connect"
    DISCONNECT = "disconnect"
    PROBE = "probe"


class State(enum.Enum):
    """The states, named as Open vSwitch reports them (e.g. in Manager ``status``)."""

    VOID = "VOID"  # disabled, or out of tries
    BACKOFF = "BACKOFF"  # waiting before the next attempt
    CONNECTING = "CONNECTING"  # attempt (or listen) in progress
    LISTENING = "LISTENING"  # passive: waiting for a peer
    ACTIVE = "ACTIVE"  # connected, heard from the peer recently
    IDLE = "IDLE"  # connected, probe sent, waiting for any answer
    RECONNECT = "RECONNECT"  # asked to drop the connection and start over


_CONNECTED: Final = frozenset((State.ACTIVE, State.IDLE))

MIN_BACKOFF: Final = 1000
DEFAULT_MAX_BACKOFF: Final = 8000
DEFAULT_PROBE_INTERVAL: Final = 5000
MIN_PROBE_INTERVAL: Final = 1000


class Reconnect:
    """Connection policy for one remote (active: we connect; passive: we listen).

    A new machine is disabled (``VOID``); :meth:`enable` makes the next :meth:`run` return
    ``CONNECT``. All times are integers in milliseconds.
    """

    __slots__ = (
        "_backoff_free_tries",
        "_last_receive_attempt",
        "_max_tries",
        "backoff",
        "last_activity",
        "last_connected",
        "last_disconnected",
        "max_backoff",
        "min_backoff",
        "n_attempted_connections",
        "n_successful_connections",
        "passive",
        "probe_interval",
        "seqno",
        "state",
        "state_entered",
    )

    def __init__(
        self,
        now: int,
        *,
        passive: bool = False,
        min_backoff: int = MIN_BACKOFF,
        max_backoff: int = DEFAULT_MAX_BACKOFF,
        probe_interval: int = DEFAULT_PROBE_INTERVAL,
        max_tries: int | None = None,
    ) -> None:
        self.state = State.VOID
        self.state_entered = now
        self.passive = passive
        self.backoff = 0  # current wait before the next attempt
        self.min_backoff = MIN_BACKOFF
        self.max_backoff = DEFAULT_MAX_BACKOFF
        self.set_backoff(min_backoff, max_backoff)
        self.probe_interval = 0
        self.set_probe_interval(probe_interval)
        self.last_activity = now
        self.last_connected: int | None = None
        self.last_disconnected: int | None = None
        # None: the probe timer is not gated on receive attempts (see receive_attempted).
        self._last_receive_attempt: int | None = None
        self._max_tries = max_tries
        self._backoff_free_tries = 0
        self.n_attempted_connections = 0
        self.n_successful_connections = 0
        # Changes whenever the machine goes from connected to not connected or back.
        self.seqno = 0

    # --- configuration -------------------------------------------------------------------

    def set_backoff(self, min_backoff: int, max_backoff: int) -> None:
        """Wait at least ``min_backoff`` (>= 1000) and at most ``max_backoff`` between tries.

        A ``max_backoff`` of 0 means the default (8000).
        """
        self.min_backoff = max(min_backoff, MIN_BACKOFF)
        self.max_backoff = max(max_backoff, MIN_BACKOFF) if max_backoff else DEFAULT_MAX_BACKOFF
        self.max_backoff = max(self.max_backoff, self.min_backoff)
        if self.state is State.BACKOFF and self.backoff > self.max_backoff:
            self.backoff = self.max_backoff

    def set_probe_interval(self, interval: int) -> None:
        """Probe after ``interval`` ms of silence (at least 1000); 0 turns probing off."""
        self.probe_interval = max(interval, MIN_PROBE_INTERVAL) if interval else 0

    def set_max_tries(self, max_tries: int | None) -> None:
        """Connect at most ``max_tries`` more times (None: no limit), then disable."""
        self._max_tries = max_tries

    @property
    def max_tries(self) -> int | None:
        return self._max_tries

    def set_backoff_free_tries(self, tries: int) -> None:
        """Make the next ``tries - 1`` retries without waiting (for several remotes)."""
        self._backoff_free_tries = tries

    def set_passive(self, passive: bool, now: int) -> None:
        if self.passive == passive:
            return
        self.passive = passive
        if (passive and self.state in (State.CONNECTING, State.RECONNECT)) or (
            not passive and self.state is State.LISTENING and self._may_retry()
        ):
            self._transition(now, State.BACKOFF)
            self.backoff = 0

    # --- what the caller reports ---------------------------------------------------------

    def enable(self, now: int) -> None:
        """Start trying: the next ``run`` returns ``CONNECT`` (no effect unless disabled)."""
        if self.state is State.VOID and self._may_retry():
            self._transition(now, State.BACKOFF)
            self.backoff = 0

    def disable(self, now: int) -> None:
        if self.state is not State.VOID:
            self._transition(now, State.VOID)

    def force_reconnect(self, now: int) -> None:
        """Make the next ``run`` return ``DISCONNECT`` if connected or connecting."""
        if self.state in (State.CONNECTING, State.ACTIVE, State.IDLE):
            self._transition(now, State.RECONNECT)

    def connecting(self, now: int) -> None:
        """A connection (or listen) attempt is under way; it times out after the backoff."""
        if self.state is not State.CONNECTING:
            self._transition(now, State.CONNECTING)

    def listening(self, now: int) -> None:
        """Passive: listening succeeded; stays so until a peer connects or listening fails."""
        if self.state is not State.LISTENING:
            self._transition(now, State.LISTENING)

    def listen_error(self, now: int) -> None:
        """Passive: accepting failed; back off, then ``CONNECT`` means listen again."""
        if self.state is State.LISTENING:
            self.disconnected(now)

    def connected(self, now: int) -> None:
        """The connection is up; the probe timer starts."""
        if self.state not in _CONNECTED:
            self.connecting(now)
            self._transition(now, State.ACTIVE)
            self.last_connected = now

    def connect_failed(self, now: int) -> None:
        """The attempt failed; back off and try again (unless out of tries)."""
        self.connecting(now)
        self.disconnected(now)

    def disconnected(self, now: int) -> None:
        """The connection (or attempt) is gone; back off and try again (unless out of tries)."""
        state = self.state
        if state in (State.BACKOFF, State.VOID):
            return
        if state in _CONNECTED:
            self.last_disconnected = now
        if not self._may_retry():
            self._transition(now, State.VOID)
            return
        if self._backoff_free_tries > 1:
            self._backoff_free_tries -= 1
            self.backoff = 0
        elif state in _CONNECTED and (
            self.passive
            or (
                self.last_connected is not None
                and self.last_activity - self.last_connected >= self.backoff
            )
        ):
            # The connection lived (and talked) longer than we had waited for it.
            self.backoff = 0 if self.passive else self.min_backoff
        elif self.backoff < self.min_backoff:
            self.backoff = self.min_backoff
        elif self.backoff < self.max_backoff / 2:
            self.backoff *= 2
        else:
            self.backoff = self.max_backoff
        self._transition(now, State.BACKOFF)

    def activity(self, now: int) -> None:
        """The peer showed signs of life (resets the probe timer, ends ``IDLE``)."""
        if self.state is State.IDLE:
            self._transition(now, State.ACTIVE)
        self.last_activity = now

    def received(self, now: int) -> None:
        """Something arrived from the peer (so a read was attempted too)."""
        if self._last_receive_attempt is not None:
            self._last_receive_attempt = now
        self.activity(now)

    def receive_attempted(self, now: int | None) -> None:
        """The caller tried to read at ``now``.

        Once reported, a probe or probe timeout only fires if a read was attempted after the
        timer expired, so that a stalled event loop does not blame a peer whose data is
        waiting unread. ``None`` turns this gating off again (the default).
        """
        self._last_receive_attempt = now

    # --- what the caller asks ------------------------------------------------------------

    @property
    def is_enabled(self) -> bool:
        return self.state is not State.VOID

    @property
    def is_connected(self) -> bool:
        return self.state in _CONNECTED

    def run(self, now: int) -> Action | None:
        """What to do now, if anything (call again after at most ``timeout(now)`` ms)."""
        deadline = self._deadline(now)
        if deadline is None or now < deadline:
            return None
        state = self.state
        if state is State.BACKOFF:
            return Action.CONNECT
        if state is State.ACTIVE:
            self._transition(now, State.IDLE)
            return Action.PROBE
        return Action.DISCONNECT  # attempt timed out, probe unanswered, or reconnect asked

    def timeout(self, now: int) -> int | None:
        """Milliseconds until ``run`` has something to say, or None if it is up to events."""
        deadline = self._deadline(now)
        return None if deadline is None else max(0, deadline - now)

    def _deadline(self, now: int) -> int | None:
        state = self.state
        if state is State.BACKOFF:
            return self.state_entered + self.backoff
        if state is State.CONNECTING:
            return self.state_entered + max(MIN_BACKOFF, self.backoff)
        if state in _CONNECTED:
            if not self.probe_interval:
                return None
            base = self.state_entered
            if state is State.ACTIVE:
                base = max(base, self.last_activity)
            expiration = base + self.probe_interval
            attempt = self._last_receive_attempt
            if now < expiration or attempt is None or attempt >= expiration:
                return expiration
            return now + 1  # expired, but nobody tried to read since: read first
        if state is State.RECONNECT:
            return self.state_entered
        return None

    def _may_retry(self) -> bool:
        if self._max_tries is None:
            return True
        if self._max_tries > 0:
            self._max_tries -= 1
            return True
        return False

    def _transition(self, now: int, state: State) -> None:
        if self.state is State.CONNECTING:
            self.n_attempted_connections += 1
            if state is State.ACTIVE:
                self.n_successful_connections += 1
        if (self.state in _CONNECTED) != (state in _CONNECTED):
            self.seqno += 1
        self.state = state
        self.state_entered = now
