"""The reconnect state machine (``hwvtep.ovsdb.reconnect``), time driven by hand.

Scenarios spell out the policy; a property test replays random histories on this machine
and on python-ovs's ``ovs.reconnect`` (the reference behaviour) and requires the same
actions, states, backoffs and wake-up times.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwvtep.ovsdb.reconnect import Action, Reconnect, State


def started(now: int = 0, **kw: Any) -> Reconnect:
    fsm = Reconnect(now, **kw)
    fsm.enable(now)
    return fsm


# --- scenarios --------------------------------------------------------------------------


def test_new_machine_is_disabled_until_enabled() -> None:
    fsm = Reconnect(0)
    assert fsm.state is State.VOID and not fsm.is_enabled
    assert fsm.run(10_000) is None and fsm.timeout(10_000) is None
    fsm.enable(100)
    assert fsm.state is State.BACKOFF
    assert fsm.timeout(100) == 0
    assert fsm.run(100) is Action.CONNECT
    assert fsm.run(100) is Action.CONNECT  # until told an attempt started


def test_backoff_doubles_from_one_second_up_to_the_maximum() -> None:
    fsm = started(max_backoff=8000)
    now = 0
    waits = []
    for _ in range(6):
        assert fsm.run(now) is Action.CONNECT
        fsm.connecting(now)
        fsm.connect_failed(now + 10)
        now += 10
        waits.append(fsm.timeout(now))
        assert fsm.run(now + fsm.backoff - 1) is None
        now += fsm.backoff
    assert waits == [1000, 2000, 4000, 8000, 8000, 8000]
    assert fsm.n_attempted_connections == 6 and fsm.n_successful_connections == 0


def test_backoff_limits_are_clamped() -> None:
    fsm = Reconnect(0, min_backoff=10, max_backoff=500)
    assert (fsm.min_backoff, fsm.max_backoff) == (1000, 1000)
    fsm.set_backoff(3000, 2000)
    assert (fsm.min_backoff, fsm.max_backoff) == (3000, 3000)
    fsm.set_backoff(1000, 0)
    assert fsm.max_backoff == 8000


def test_connection_attempt_times_out() -> None:
    fsm = started()
    fsm.connecting(0)
    assert fsm.state is State.CONNECTING
    assert fsm.timeout(0) == 1000  # at least a second, or the current backoff
    assert fsm.run(999) is None
    assert fsm.run(1000) is Action.DISCONNECT
    fsm.connect_failed(1000)
    assert fsm.state is State.BACKOFF and fsm.backoff == 1000


def test_inactivity_probe_then_disconnect() -> None:
    fsm = started()
    fsm.connecting(0)
    fsm.connected(50)
    assert fsm.is_connected and fsm.state is State.ACTIVE
    assert fsm.timeout(50) == 5000
    assert fsm.run(5049) is None
    assert fsm.run(5050) is Action.PROBE
    assert fsm.state is State.IDLE
    assert fsm.timeout(5050) == 5000
    assert fsm.run(10_049) is None
    assert fsm.run(10_050) is Action.DISCONNECT
    fsm.disconnected(10_050)
    assert not fsm.is_connected and fsm.state is State.BACKOFF
    assert fsm.last_disconnected == 10_050


def test_traffic_postpones_the_probe_and_answers_it() -> None:
    fsm = started()
    fsm.connected(0)
    fsm.received(3000)
    assert fsm.timeout(3000) == 5000
    assert fsm.run(7999) is None
    assert fsm.run(8000) is Action.PROBE
    fsm.received(9000)  # the echo reply
    assert fsm.state is State.ACTIVE
    assert fsm.run(13_999) is None
    assert fsm.run(14_000) is Action.PROBE


def test_probe_interval_zero_disables_probing_and_small_values_are_raised() -> None:
    fsm = started(probe_interval=0)
    fsm.connected(0)
    assert fsm.timeout(0) is None and fsm.run(10**9) is None
    fsm.set_probe_interval(10)
    assert fsm.probe_interval == 1000


def test_long_lived_connection_resets_the_backoff() -> None:
    fsm = started()
    for now in (0, 1000, 3000, 7000):  # three failures: backoff 1 s, 2 s, 4 s
        fsm.connecting(now)
        fsm.connect_failed(now)
    assert fsm.backoff == 8000
    before = fsm.backoff
    fsm.connected(20_000)
    fsm.received(20_000 + before)  # still talking after as long as we had waited
    fsm.disconnected(20_000 + before + 1)
    assert fsm.backoff == 1000


def test_short_lived_connection_keeps_backing_off() -> None:
    fsm = started()
    fsm.connecting(0)
    fsm.connect_failed(0)
    assert fsm.backoff == 1000
    fsm.connected(1000)
    fsm.disconnected(1100)  # no traffic: probably refused at a higher level
    assert fsm.backoff == 2000


def test_passive_mode_listens_and_never_backs_off_after_a_session() -> None:
    fsm = started(passive=True)
    assert fsm.run(0) is Action.CONNECT  # i.e. start listening
    fsm.listening(0)
    assert fsm.state is State.LISTENING and fsm.timeout(0) is None
    fsm.connected(500)
    assert fsm.state is State.ACTIVE
    fsm.disconnected(600)
    assert fsm.state is State.BACKOFF and fsm.backoff == 0
    assert fsm.run(600) is Action.CONNECT


def test_passive_listen_error_backs_off() -> None:
    fsm = started(passive=True)
    fsm.listening(0)
    fsm.listen_error(10)
    assert fsm.state is State.BACKOFF and fsm.backoff == 1000
    fsm.listen_error(20)  # not listening: ignored
    assert fsm.backoff == 1000


def test_switching_modes() -> None:
    fsm = started()
    fsm.connecting(0)
    fsm.set_passive(True, 10)
    assert fsm.state is State.BACKOFF and fsm.backoff == 0 and fsm.passive
    fsm.listening(20)
    fsm.set_passive(False, 30)
    assert fsm.state is State.BACKOFF and fsm.run(30) is Action.CONNECT


def test_max_tries() -> None:
    fsm = Reconnect(0, max_tries=2)
    fsm.enable(0)  # first try
    fsm.connecting(0)
    fsm.connect_failed(5)  # second try
    assert fsm.state is State.BACKOFF and fsm.max_tries == 0
    fsm.connecting(1005)
    fsm.connect_failed(1010)
    assert fsm.state is State.VOID and fsm.run(10**6) is None


def test_backoff_free_tries_for_several_remotes() -> None:
    fsm = started()
    fsm.set_backoff_free_tries(3)
    waits = []
    for now in range(0, 5):
        fsm.connecting(now)
        fsm.connect_failed(now)
        waits.append(fsm.backoff)
    assert waits == [0, 0, 1000, 2000, 4000]


def test_force_reconnect_and_disable() -> None:
    fsm = started()
    fsm.connected(0)
    fsm.force_reconnect(100)
    assert fsm.state is State.RECONNECT and fsm.run(100) is Action.DISCONNECT
    fsm.disconnected(100)
    assert fsm.state is State.BACKOFF
    fsm.disable(200)
    assert fsm.state is State.VOID and fsm.run(10**6) is None


def test_receive_attempt_gating_protects_a_stalled_loop() -> None:
    fsm = started()
    fsm.connected(0)
    fsm.receive_attempted(0)
    # The loop stalled past the probe time: read first, then decide.
    assert fsm.run(6000) is None
    assert fsm.timeout(6000) == 1
    fsm.receive_attempted(6000)
    assert fsm.run(6000) is Action.PROBE
    fsm.received(7000)  # keeps the gating on, and answers the probe
    assert fsm.state is State.ACTIVE
    assert fsm.run(12_500) is None
    fsm.receive_attempted(12_500)
    assert fsm.run(12_500) is Action.PROBE
    fsm.receive_attempted(None)
    assert fsm.run(17_500) is Action.DISCONNECT


def test_activity_outside_a_connection_does_not_fake_one() -> None:
    fsm = started()
    fsm.activity(10)
    assert fsm.state is State.BACKOFF and not fsm.is_connected


def test_seqno_counts_connection_changes() -> None:
    fsm = started()
    assert fsm.seqno == 0
    fsm.connected(0)
    assert fsm.seqno == 1
    fsm.run(5000)  # probe: still connected
    assert fsm.seqno == 1
    fsm.disconnected(5001)
    assert fsm.seqno == 2
    assert fsm.last_connected == 0


# --- the same as python-ovs, for any history ------------------------------------------

ovs_reconnect = pytest.importorskip("ovs.reconnect", reason="python-ovs is a dev dependency")

ops = st.one_of(
    st.tuples(st.just("run")),
    st.tuples(st.just("follow"), st.sampled_from(["connected", "connect_failed", "wait"])),
    st.tuples(st.just("enable")),
    st.tuples(st.just("disable")),
    st.tuples(st.just("force_reconnect")),
    st.tuples(st.just("connecting")),
    st.tuples(st.just("connected")),
    st.tuples(st.just("connect_failed")),
    st.tuples(st.just("disconnected")),
    st.tuples(st.just("listening")),
    st.tuples(st.just("listen_error")),
    st.tuples(st.just("received")),
    st.tuples(st.just("receive_attempted"), st.booleans()),
    st.tuples(st.just("set_passive"), st.booleans()),
    st.tuples(st.just("set_probe_interval"), st.sampled_from([0, 1, 999, 1000, 5000, 7777])),
    st.tuples(st.just("set_backoff"), st.integers(0, 9000), st.integers(1, 20000)),
    st.tuples(st.just("set_max_tries"), st.none() | st.integers(0, 4)),
    st.tuples(st.just("set_backoff_free_tries"), st.integers(0, 3)),
)


def _apply(ours: Reconnect, theirs: Any, op: tuple[Any, ...], now: int) -> None:
    name, *args = op
    if name in ("run", "follow"):
        mine = ours.run(now)
        ref = theirs.run(now)
        assert (mine.value if mine else None) == ref
        if name == "follow":  # do what a client would
            if mine is Action.CONNECT:
                ours.connecting(now)
                theirs.connecting(now)
                if args[0] != "wait":
                    _apply(ours, theirs, (args[0],), now)
            elif mine is Action.DISCONNECT:
                _apply(ours, theirs, ("disconnected",), now)
    elif name in ("connect_failed", "disconnected", "listen_error"):
        getattr(ours, name)(now)
        getattr(theirs, name)(now, 0)
    elif name == "received":
        # python-ovs makes any activity a connection; only report traffic on one.
        if ours.is_connected:
            ours.received(now)
            if theirs.last_receive_attempt is not None:
                theirs.receive_attempted(now)
            theirs.activity(now)
    elif name == "receive_attempted":
        when = now if args[0] else None
        ours.receive_attempted(when)
        theirs.receive_attempted(when)
    elif name == "set_passive":
        ours.set_passive(args[0], now)
        theirs.set_passive(args[0], now)
    elif name in ("set_probe_interval", "set_backoff", "set_max_tries", "set_backoff_free_tries"):
        getattr(ours, name)(*args)
        getattr(theirs, name)(*args)
    else:
        getattr(ours, name)(now)
        getattr(theirs, name)(now)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 12_000), ops), max_size=60), st.booleans())
def test_same_behaviour_as_python_ovs(history: list[tuple[int, Any]], passive: bool) -> None:
    now = 1_000_000
    ours = Reconnect(now, passive=passive)
    theirs = ovs_reconnect.Reconnect(now)
    theirs.set_passive(passive, now)
    theirs.receive_attempted(None)  # ours starts without receive-attempt gating
    for dt, op in history:
        now += dt
        _apply(ours, theirs, op, now)
        assert ours.state.value == theirs.state.name
        assert ours.is_connected == theirs.is_connected()
        assert ours.backoff == theirs.backoff
        assert ours.timeout(now) == theirs.timeout(now)
        assert (ours.min_backoff, ours.max_backoff) == (theirs.min_backoff, theirs.max_backoff)
        assert ours.probe_interval == theirs.probe_interval
        assert ours.max_tries == theirs.get_max_tries()
        stats = theirs.get_stats(now)
        assert ours.seqno == stats.seqno
        assert ours.n_attempted_connections == stats.n_attempted_connections
        assert ours.n_successful_connections == stats.n_successful_connections
        assert ours.last_connected == stats.last_connected
        assert ours.last_disconnected == stats.last_disconnected
