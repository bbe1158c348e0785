"""In-process behaviour: local send/reply, ordering, handlers, timers, lifecycle, stats."""

import logging
import threading
import time

import pytest

import tern
from conftest import WAIT, Collector, wait_until
from messages_for_tests import LocalOnly, Ping, Pong, Tick


class Echo(tern.Actor):
    def on_ping(self, msg, sender):
        self.reply(Pong(msg.count))


def test_local_send_and_reply(start_manager):
    coll = Collector()

    def setup(m):
        m.manage("echo", Echo())
        m.manage("coll", coll)

    mgr = start_manager(setup, remote=False)
    echo = mgr.lookup("echo")
    assert echo.name == "echo" and echo.endpoint is None and echo.is_local
    for i in range(100):
        assert echo.send(Ping(i), mgr.lookup("coll"))
    items = coll.wait_for(100)
    assert [m for m, _ in items] == [Pong(i) for i in range(100)]
    assert all(s == echo for _, s in items)  # reply comes from echo's self_ref
    assert mgr.lookup("nobody") is None


def test_start_is_first_and_shutdown_is_last_with_queue_drained(start_manager):
    seen = []

    class Lifecycle(tern.Actor):
        def on_Start(self, msg, sender):  # the seed's exact-case spelling
            seen.append("start")
            assert self.self_ref.name == "life" and self.manager is not None

        def on_ping(self, msg):  # one-argument handlers are fine too
            seen.append(msg.count)

        def on_shutdown(self, msg, sender):
            seen.append("shutdown")

    mgr = tern.Manager()
    ref = mgr.manage("life", Lifecycle())
    for i in range(50):
        ref.send(Ping(i))  # queued before init: still after Start
    mgr.init()
    for i in range(50, 100):
        ref.send(Ping(i))
    mgr.end()
    assert seen == ["start"] + list(range(100)) + ["shutdown"]
    assert not ref.send(Ping(0))  # after end(): dropped and counted
    assert mgr.stats()["dropped"]["actor_stopped"] == 1


def test_per_sender_fifo_with_concurrent_senders(start_manager):
    coll = Collector()
    mgr = start_manager(lambda m: m.manage("coll", coll), remote=False)
    ref = mgr.lookup("coll")
    n, senders = 3000, 4

    def blast(sid):
        for seq in range(n):
            ref.send(Tick(sid, seq))

    threads = [threading.Thread(target=blast, args=(s,)) for s in range(senders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT)
    coll.wait_for(n * senders)
    per = {s: [m.seq for m in coll.msgs if m.sender_id == s] for s in range(senders)}
    for s in range(senders):
        assert per[s] == list(range(n))


def test_handler_exception_is_logged_counted_and_actor_survives(start_manager, caplog):
    done = threading.Event()

    class Fragile(tern.Actor):
        def on_ping(self, msg, sender):
            if msg.count == 0:
                raise RuntimeError("boom")
            done.set()

    mgr = start_manager(lambda m: m.manage("fragile", Fragile()), remote=False)
    with caplog.at_level(logging.ERROR, logger="tern"):
        mgr.lookup("fragile").send(Ping(0))
        mgr.lookup("fragile").send(Ping(1))
        assert done.wait(WAIT)
    assert mgr.stats()["handler_errors"] == 1
    assert any("boom" in r.getMessage() or (r.exc_info and "boom" in str(r.exc_info[1]))
               for r in caplog.records)


def test_unhandled_messages_go_to_on_unhandled(start_manager):
    got = []
    done = threading.Event()

    class Picky(tern.Actor):
        def on_unhandled(self, msg, sender):
            got.append(msg)
            done.set()

    mgr = start_manager(lambda m: m.manage("picky", Picky()), remote=False)
    mgr.lookup("picky").send(LocalOnly(3))  # local sends need no registration
    assert done.wait(WAIT)
    assert type(got[0]) is LocalOnly and got[0].n == 3
    assert mgr.stats()["unhandled"] == 1


def test_reply_without_sender_is_dropped_and_counted(start_manager):
    done = threading.Event()
    result = []

    class Replier(tern.Actor):
        def on_ping(self, msg, sender):
            result.append(self.reply(Pong(1)))
            done.set()

    mgr = start_manager(lambda m: m.manage("r", Replier()), remote=False)
    mgr.lookup("r").send(Ping(1))  # no sender
    assert done.wait(WAIT)
    assert result == [False]
    assert mgr.stats()["dropped"] == {"reply_without_sender": 1}


def test_terminate_from_an_actor_returns_run(start_manager):
    class Quitter(tern.Actor):
        def on_ping(self, msg, sender):
            self.manager.terminate()

    mgr = start_manager(lambda m: m.manage("q", Quitter()), remote=False)
    assert mgr.run(timeout=0.05) is False  # not yet terminated
    mgr.lookup("q").send(Ping(1))
    t0 = time.monotonic()
    assert mgr.run(timeout=WAIT) is True
    assert time.monotonic() - t0 < WAIT
    assert mgr.terminated


def test_run_returns_on_terminate_from_another_thread():
    mgr = tern.Manager()
    mgr.init()
    threading.Timer(0.05, mgr.terminate).start()
    assert mgr.run(timeout=WAIT) is True
    mgr.end()


def test_timers_one_shot_periodic_and_cancel(start_manager):
    class Timed(tern.Actor):
        def __init__(self):
            self.fired = []
            self.cond = threading.Condition()

        def on_start(self, msg, sender):
            self.one = self.start_timer(0.02)
            self.periodic = self.start_timer(0.01, periodic=True)
            self.cancelled = self.start_timer(0.05)
            assert self.cancel_timer(self.cancelled)
            assert not self.cancel_timer(99999)

        def on_timeout(self, msg: tern.Timeout, sender):
            assert sender is None
            with self.cond:
                self.fired.append(msg.id)
                if self.fired.count(self.periodic) == 5:
                    assert self.cancel_timer(self.periodic)
                self.cond.notify_all()

    actor = Timed()
    mgr = start_manager(lambda m: m.manage("timed", actor), remote=False)
    with actor.cond:
        assert actor.cond.wait_for(
            lambda: actor.fired.count(actor.periodic) >= 5 and actor.one in actor.fired, WAIT)
    time.sleep(0.1)  # longer than the cancelled timer and two more periods
    with actor.cond:
        assert actor.fired.count(actor.one) == 1
        assert actor.fired.count(actor.periodic) == 5
        assert actor.cancelled not in actor.fired
    assert mgr.stats()["timers_fired"] == 6


def test_timer_argument_checks():
    mgr = tern.Manager()
    a = Collector()
    mgr.manage("a", a)
    with pytest.raises(ValueError):
        a.start_timer(-1)
    with pytest.raises(ValueError):
        a.start_timer(0, periodic=True)
    with pytest.raises(RuntimeError):
        Collector().start_timer(1)
    mgr.end()


def test_manage_errors():
    mgr = tern.Manager()
    a = Collector()
    mgr.manage("a", a)
    with pytest.raises(ValueError):
        mgr.manage("a", Collector())
    with pytest.raises(ValueError):
        mgr.manage("b", a)  # already managed
    with pytest.raises(ValueError):
        mgr.manage("", Collector())
    with pytest.raises(TypeError):
        mgr.manage("c", object())
    with pytest.raises(ValueError):
        tern.Manager("not an endpoint")
    with pytest.raises(ValueError):
        mgr.remote("x", "localhost:5001")
    mgr.end()
    with pytest.raises(RuntimeError):
        mgr.manage("late", Collector())


def test_manage_after_init_starts_the_actor(start_manager):
    mgr = start_manager(remote=False)
    coll = Collector()
    ref = mgr.manage("late", coll)
    ref.send(Ping(1))
    assert coll.wait_for(1)[0][0] == Ping(1)


def test_context_manager_ends_and_end_is_idempotent():
    coll = Collector()
    with tern.Manager() as mgr:
        ref = mgr.manage("c", coll)
        mgr.init()
        ref.send(Ping(1))
        coll.wait_for(1)
    assert not ref.send(Ping(2))
    mgr.end()


def test_end_from_an_actor_thread_is_refused(start_manager):
    errors = []
    done = threading.Event()

    class Bad(tern.Actor):
        def on_ping(self, msg, sender):
            try:
                self.manager.end()
            except RuntimeError as exc:
                errors.append(str(exc))
            done.set()

    mgr = start_manager(lambda m: m.manage("bad", Bad()), remote=False)
    mgr.lookup("bad").send(Ping(1))
    assert done.wait(WAIT)
    assert errors and "terminate()" in errors[0]


def test_stats_count_local_traffic(start_manager):
    coll = Collector()

    def setup(m):
        m.manage("echo", Echo())
        m.manage("coll", coll)

    mgr = start_manager(setup, remote=False)
    for i in range(10):
        mgr.lookup("echo").send(Ping(i), mgr.lookup("coll"))
    coll.wait_for(10)
    wait_until(lambda: mgr.stats()["local_messages"] == 20, what="local stats")
    s = mgr.stats()
    assert s["local_messages"] == 20 and s["messages_in"] == 0 and s["messages_out"] == 0
    assert s["unhandled"] == 10  # the Collector's Pongs
    assert s["dropped_total"] == 0


def test_cancel_after_fire_suppresses_the_queued_timeout(start_manager):
    class Canceller(tern.Actor):
        def __init__(self):
            self.fired = []
            self.result = None
            self.done = threading.Event()

        def on_start(self, msg, sender):
            tid = self.start_timer(0.0)
            time.sleep(0.05)  # the Timeout is fired and queued behind this handler
            self.result = self.cancel_timer(tid)
            self.self_ref.send(Ping(1))

        def on_timeout(self, msg, sender):
            self.fired.append(msg.id)

        def on_ping(self, msg, sender):
            self.done.set()

    actor = Canceller()
    mgr = start_manager(lambda m: m.manage("c", actor), remote=False)
    assert actor.done.wait(WAIT)
    assert actor.result is True and actor.fired == []
    assert mgr.stats()["timers_fired"] == 0
