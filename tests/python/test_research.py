"""A researcher's habits: ask() from a notebook cell, re-running the cell that makes a
Manager, handler errors counted apart, and pandas views of stats and .hgrm files."""

import asyncio
import concurrent.futures
import errno
import os
import subprocess
import sys
import threading
import time

import pytest
import zmq

import tern
from conftest import PYDIR, WAIT, free_port, wait_until
from tern import Actor, Manager, register_message


@register_message
class Question:
    def __init__(self, n: int, delay: float = 0.0):
        self.n = n
        self.delay = delay


@register_message
class Answer:
    def __init__(self, n: int, doubled: int):
        self.n = n
        self.doubled = doubled


class Doubler(Actor):
    def on_question(self, msg, sender):
        if msg.delay:
            time.sleep(msg.delay)
        self.reply(Answer(msg.n, 2 * msg.n))


class Silent(Actor):
    def on_question(self, msg):
        pass


def tern_threads():
    return [t for t in threading.enumerate() if t.name.startswith("tern-") and t.is_alive()]


# -- ask -----------------------------------------------------------------------------------

def test_ask_returns_the_reply_of_a_local_actor(start_manager):
    mgr = start_manager(lambda m: m.manage("doubler", Doubler()), remote=False)
    reply = mgr.lookup("doubler").ask(Question(21), timeout=WAIT)
    assert isinstance(reply, Answer) and reply.doubled == 42


def test_ask_returns_the_reply_of_a_remote_actor(start_manager):
    server = start_manager(lambda m: m.manage("doubler", Doubler()))
    client = start_manager()
    ref = client.remote("doubler", server.advertised_endpoint)
    for n in range(5):
        assert ref.ask(Question(n), timeout=WAIT).doubled == 2 * n
    assert client.stats()["messages_in"] == 5


def test_ask_times_out_naming_the_actor_and_the_message_type(start_manager):
    mgr = start_manager(lambda m: m.manage("silent", Silent()))
    t0 = time.monotonic()
    with pytest.raises(TimeoutError) as err:
        mgr.lookup("silent").ask(Question(1), timeout=0.2)
    assert 0.15 < time.monotonic() - t0 < WAIT
    assert "ask(Question) to actor 'silent'" in str(err.value)
    assert "within 0.2s" in str(err.value)


def test_concurrent_asks_each_get_their_own_reply(start_manager):
    server = start_manager(lambda m: m.manage("doubler", Doubler()))
    client = start_manager()
    ref = client.remote("doubler", server.advertised_endpoint)
    futures = [ref.ask_async(Question(n), timeout=WAIT) for n in range(50)]
    assert all(isinstance(f, concurrent.futures.Future) for f in futures)
    assert [f.result(WAIT).n for f in futures] == list(range(50))
    # and from several threads at once
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda n: ref.ask(Question(n), timeout=WAIT).doubled, range(40)))
    assert got == [2 * n for n in range(40)]


def test_a_late_reply_is_counted_and_never_taken_for_a_newer_ask(start_manager):
    server = start_manager(lambda m: m.manage("doubler", Doubler()))
    client = start_manager()
    ref = client.remote("doubler", server.advertised_endpoint)
    with pytest.raises(TimeoutError):
        ref.ask(Question(1, delay=0.5), timeout=0.1)
    # The next ask is queued behind the slow one: it must get its own answer (n=2), not
    # the late answer to n=1.
    assert ref.ask(Question(2), timeout=WAIT).n == 2
    wait_until(lambda: client.stats()["dropped"].get("late_reply") == 1, what="late_reply")
    assert server.stats()["rejects_received"] == 0  # the late reply was not bounced


def test_ask_async_is_awaitable_from_asyncio(start_manager):
    server = start_manager(lambda m: m.manage("doubler", Doubler()))
    client = start_manager()
    ref = client.remote("doubler", server.advertised_endpoint)

    async def research():
        one = await ref.ask_async(Question(3))
        many = await asyncio.gather(*(ref.ask_async(Question(n)) for n in range(10)))
        return one, many

    one, many = asyncio.run(asyncio.wait_for(research(), WAIT))
    assert one.doubled == 6 and [a.doubled for a in many] == [2 * n for n in range(10)]


def test_ask_raises_the_reject_of_an_unknown_actor(start_manager):
    server = start_manager(lambda m: m.manage("doubler", Doubler()))
    client = start_manager()
    with pytest.raises(tern.AskRejected) as err:
        client.remote("nobody", server.advertised_endpoint).ask(Question(1), timeout=WAIT)
    assert "Actor 'nobody' not found" in str(err.value)
    assert err.value.reject.rejected_by == "nobody"


def test_ask_refuses_what_cannot_work_with_clear_errors(start_manager):
    mgr = Manager()
    ref = mgr.manage("doubler", Doubler())
    with pytest.raises(RuntimeError, match="between init\\(\\) and end\\(\\)"):
        ref.ask(Question(1))
    mgr.end()
    sender_only = start_manager(remote=False)
    with pytest.raises(RuntimeError, match="no endpoint"):
        sender_only.remote("x", "tcp://127.0.0.1:1").ask(Question(1))
    with pytest.raises(ValueError, match="timeout"):
        sender_only.manage("d", Doubler()).ask(Question(1), timeout=-1)
    with pytest.raises(ValueError, match="reserved"):
        sender_only.manage("_ask.1", Doubler())


def test_ask_from_the_asked_actors_own_handler_is_refused(start_manager):
    errors = []

    class SelfAsker(Actor):
        def on_question(self, msg):
            try:
                self.self_ref.ask(Question(0))
            except RuntimeError as exc:
                errors.append(str(exc))
            self.reply(Answer(msg.n, 0))

    mgr = start_manager(lambda m: m.manage("me", SelfAsker()), remote=False)
    mgr.lookup("me").ask(Question(1), timeout=WAIT)
    assert errors and "would wait for itself" in errors[0]


def test_end_fails_an_outstanding_ask():
    mgr = Manager()
    ref = mgr.manage("silent", Silent())
    mgr.init()
    fut = ref.ask_async(Question(1), timeout=None)
    mgr.end()
    with pytest.raises(RuntimeError, match="ended before the reply"):
        fut.result(WAIT)


# -- Manager lifecycle --------------------------------------------------------------------

def test_with_block_ends_the_manager_and_frees_its_port():
    port = free_port()
    with Manager(f"tcp://127.0.0.1:{port}") as mgr:
        mgr.manage("doubler", Doubler())
        mgr.init()
        assert tern_threads()
    assert not tern_threads()
    with zmq.Context() as ctx, ctx.socket(zmq.PULL) as s:  # the port is free again
        s.setsockopt(zmq.LINGER, 0)
        s.bind(f"tcp://127.0.0.1:{port}")


def test_rerunning_the_cell_that_makes_a_manager_just_works():
    """The notebook habit: the same cell, three times, never calling end()."""
    endpoint = f"tcp://*:{free_port()}"
    with Manager(f"tcp://127.0.0.1:{free_port()}") as client:
        client.init()
        for run in range(3):
            mgr = Manager(endpoint)                      # the cell ...
            mgr.manage("doubler", Doubler())
            mgr.init()                                   # ... never calls end()
            got = client.remote("doubler", endpoint).ask(Question(run), timeout=WAIT)
            assert got.doubled == 2 * run
            doublers = [t for t in tern_threads() if t.name == "tern-actor-doubler"]
            assert len(doublers) == 1, doublers  # the previous run's Manager was ended
    mgr.end()
    assert not tern_threads()


def test_an_abandoned_manager_is_ended_when_another_takes_its_endpoint(caplog):
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    old = Manager(endpoint)
    old.manage("doubler", Doubler())
    old.init()
    old_threads = tern_threads()
    del old
    new = Manager(endpoint.replace("127.0.0.1", "*"))  # the wildcard collides as well
    with caplog.at_level("WARNING", logger="tern"):
        new.init()
    assert "still holds" in caplog.text and "test_research.py" in caplog.text
    assert not [t for t in old_threads if t.is_alive()]
    new.end()


def test_replace_false_names_the_manager_that_holds_the_endpoint():
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    old = Manager(endpoint)
    old.manage("keeper", Doubler())
    old.init()
    new = Manager(endpoint, replace=False)
    with pytest.raises(OSError) as err:
        new.init()
    assert err.value.errno == errno.EADDRINUSE
    msg = str(err.value)
    assert endpoint in msg and "['keeper']" in msg and "test_research.py" in msg
    assert "end()" in msg
    new.end()
    old.end()


def test_after_a_failed_bind_a_new_manager_works_and_nothing_is_left():
    port = free_port()
    with zmq.Context() as ctx, ctx.socket(zmq.PULL) as squatter:
        squatter.setsockopt(zmq.LINGER, 0)
        squatter.bind(f"tcp://127.0.0.1:{port}")
        failed = Manager(f"tcp://127.0.0.1:{port}")
        failed.manage("doubler", Doubler())
        with pytest.raises(OSError) as err:
            failed.init()
        assert "another program or socket" in str(err.value)
        assert not tern_threads()
    with Manager(f"tcp://127.0.0.1:{port}") as mgr:   # same endpoint, once freed
        ref = mgr.manage("doubler", Doubler())
        mgr.init()
        assert ref.ask(Question(4), timeout=WAIT).doubled == 8
    failed.end()


def test_a_manager_never_ended_is_ended_at_interpreter_exit():
    code = (
        "import tern\n"
        "class A(tern.Actor):\n"
        "    def on_shutdown(self): print('shutdown handled', flush=True)\n"
        "m = tern.Manager()\n"
        "m.manage('a', A())\n"
        "m.init()\n"
        "print('exiting', flush=True)\n"
    )
    env = dict(os.environ, PYTHONPATH=PYDIR)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, timeout=WAIT * 2)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == ["exiting", "shutdown handled"]


def test_actors_lists_the_local_actor_names_in_order(start_manager):
    mgr = start_manager(lambda m: (m.manage("b", Doubler()), m.manage("a", Silent())),
                        remote=False)
    assert mgr.actors == ["b", "a"]
    mgr.lookup("b").ask(Question(1), timeout=WAIT)
    assert mgr.actors == ["b", "a"]  # ask() adds no actor


# -- stats -------------------------------------------------------------------------------

def test_handler_errors_are_counted_apart_from_handled(start_manager):
    class Flaky(Actor):
        def on_question(self, msg):
            if msg.n % 2:
                raise ValueError(f"odd {msg.n}")
            self.reply(Answer(msg.n, 0))

    mgr = start_manager(lambda m: m.manage("flaky", Flaky()), remote=False)
    before = mgr.stats()
    ref = mgr.lookup("flaky")
    for n in range(6):
        ref.send(Question(n))
    ref.ask(Question(10), timeout=WAIT)  # behind the six in the mailbox
    s = mgr.stats()
    assert s["handler_errors"] - before["handler_errors"] == 3
    assert s["handled"] - before["handled"] == 4  # 0, 2, 4 and 10; not 1, 3, 5


# -- pandas -------------------------------------------------------------------------------

HGRM = (  # written by tern::Histogram::write_hgrm (tests/histogram_test.cpp), abridged
    "       Value     Percentile TotalCount 1/(1-Percentile)\n"
    "\n"
    "       1.000 0.000000000000          1           1.00\n"
    "      11.000 0.500000000000         11           2.00\n"
    "      19.000 0.900000000000         19          10.00\n"
    "    1000.000 0.956250000000         21          22.86\n"
    "    1000.000 1.000000000000         21\n"
    "#[Mean    =       57.619, StdDeviation   =      210.798]\n"
    "#[Max     =     1000.000, Total count    =           21]\n"
    "#[Buckets =           32, SubBuckets     =         2048]\n"
)


def test_hgrm_rows_need_no_pandas(tmp_path):
    path = tmp_path / "lat.hgrm"
    path.write_text(HGRM)
    rows = tern.hgrm.read(path, frame=False)
    assert [r.value for r in rows] == [1.0, 11.0, 19.0, 1000.0, 1000.0]
    assert rows[1].percentile == 0.5 and rows[-1].total_count == 21
    assert rows[-1].inverse == float("inf")
    assert tern.hgrm.summary(path) == {"mean": 57.619, "stddev": 210.798, "max": 1000.0,
                                       "total_count": 21.0, "buckets": 32.0,
                                       "sub_buckets": 2048.0}


def test_malformed_hgrm_names_the_line(tmp_path):
    path = tmp_path / "bad.hgrm"
    path.write_text(HGRM.replace("0.500000000000", "1.5"))
    with pytest.raises(ValueError, match="line 4: percentile 1.5 outside"):
        tern.hgrm.read(path, frame=False)
    path.write_text("1.0 0.5\n")
    with pytest.raises(ValueError, match="line 1: expected 3 or 4 fields"):
        tern.hgrm.read(path, frame=False)


def test_hgrm_and_stats_as_dataframes(tmp_path, start_manager):
    pd = pytest.importorskip("pandas")
    path = tmp_path / "lat.hgrm"
    path.write_text(HGRM)
    df = tern.hgrm.read(path)
    assert isinstance(df, pd.DataFrame)
    assert list(df.columns) == ["value", "percentile", "total_count", "inverse"]
    assert df.loc[df.percentile == 0.5, "value"].item() == 11.0
    assert df.attrs["max"] == 1000.0

    mgr = start_manager(lambda m: m.manage("doubler", Doubler()), remote=False)
    snaps = [mgr.stats()]
    replies = [mgr.lookup("doubler").ask(Question(n), timeout=WAIT) for n in range(3)]
    mgr._stats.drop("empty", 2)
    snaps.append(mgr.stats())
    sf = tern.frames.stats_frame(snaps)
    assert len(sf) == 2 and sf["handled"].iloc[1] - sf["handled"].iloc[0] == 3
    assert list(sf["dropped.empty"]) == [0, 2]
    mf = tern.frames.messages_frame(replies)
    assert list(mf.columns) == ["type", "n", "doubled"]
    assert list(mf["doubled"]) == [0, 2, 4] and set(mf["type"]) == {"Answer"}


def test_without_pandas_the_error_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)  # makes `import pandas` fail
    path = tmp_path / "lat.hgrm"
    path.write_text(HGRM)
    with pytest.raises(ImportError, match="python3-pandas.*frame=False"):
        tern.hgrm.read(path)
    with pytest.raises(ImportError, match="python3-pandas"):
        tern.frames.stats_frame({"handled": 1})
    assert len(tern.hgrm.read(path, frame=False)) == 5


def test_a_cancelled_ask_retires_its_name(start_manager):
    server = start_manager(lambda m: m.manage("doubler", Doubler()))
    client = start_manager()
    ref = client.remote("doubler", server.advertised_endpoint)
    fut = ref.ask_async(Question(1, delay=0.3), timeout=None)
    assert fut.cancel()
    assert ref.ask(Question(2), timeout=WAIT).n == 2  # a fresh name, not the cancelled one
    wait_until(lambda: client.stats()["dropped"].get("late_reply") == 1, what="late_reply")
    seen = []
    done = threading.Event()
    fut = ref.ask_async(Question(3))
    fut.add_done_callback(lambda f: (seen.append(f.result().doubled), done.set()))
    assert done.wait(WAIT) and seen == [6]


def test_an_ask_whose_request_is_refused_fails_at_once(start_manager):
    # Nothing listens at the peer and it may hold at most one message each in ZeroMQ and
    # in our backlog: among 50 asks, send() refuses some, and those asks fail at once.
    client = start_manager(max_backlog=1, sndhwm=1)
    ref = client.remote("x", f"tcp://127.0.0.1:{free_port()}")
    futures = [ref.ask_async(Question(n), timeout=WAIT) for n in range(50)]
    refused = [f for f in futures if f.done()]
    assert refused, "no request was refused"
    for f in refused:
        with pytest.raises(RuntimeError, match="the request was not sent"):
            f.result(0)
    for f in futures:
        f.cancel()
    strict = start_manager(max_backlog=1, sndhwm=1, raise_on_drop=True)
    ref = strict.remote("x", f"tcp://127.0.0.1:{free_port()}")
    futures = []
    with pytest.raises(tern.SendError, match="peer_backlog_full"):
        for n in range(50):
            futures.append(ref.ask_async(Question(n), timeout=WAIT))
    for f in futures:
        f.cancel()
