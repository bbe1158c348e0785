"""Request/reply from outside an actor: ``ref.ask(msg, timeout=)`` and ``ref.ask_async(msg)``.

The wire protocol has no correlation id, so a reply is matched to its request by the
address it is sent to. Each outstanding ask gets a reply name of its own (``_ask.N``):
the request goes out with ``sender_actor = "_ask.N"`` and this Manager's endpoint, the
answering actor's ``reply()`` addresses ``_ask.N``, and the first message that arrives for
that name completes that ask and no other. Any number of asks may be outstanding, to the
same or to different actors, and a reply may come from another actor the request was
forwarded to (it is addressed to the same name).

Names are reused only after their ask got its reply. The name of an ask that timed out
or was cancelled is never used again, so a reply that arrives late cannot complete a
newer ask: it is counted as a drop (``late_reply``) and not answered with a Reject. The
pool of reusable names is as large as the largest number of asks outstanding at once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import threading
from typing import TYPE_CHECKING, Any, Optional

from .actor import ActorRef
from .messages import Reject, Timeout, message_type_name

if TYPE_CHECKING:  # pragma: no cover
    from .actor import ActorRef as _Ref
    from .manager import Manager

__all__ = ["AskFuture", "AskRejected", "PREFIX"]

#: Reply names start with this; ``Manager.manage()`` refuses actor names that do.
PREFIX = "_ask."


class AskRejected(RuntimeError):
    """The asked actor (or its process) answered the request with a Reject.

    ``reject`` is the Reject message (``message_type``, ``reason``, ``rejected_by``)."""

    def __init__(self, what: str, reject: Reject) -> None:
        super().__init__(f"{what} was rejected by {reject.rejected_by!r}: {reject.reason}")
        self.reject = reject


class AskFuture(concurrent.futures.Future):
    """A ``concurrent.futures.Future`` that is also awaitable from asyncio
    (``await ref.ask_async(msg)``). Its result is the reply message; it fails with
    TimeoutError, AskRejected, or RuntimeError if the Manager ends first."""

    def __await__(self):
        return asyncio.wrap_future(self).__await__()


class _ReplyRef(ActorRef):
    """The sender an ask puts on its request. A local actor's ``reply()`` calls ``send()``
    here directly; a remote actor answers ``reply_address()`` through the transport, and
    the Manager routes it to ``put()``."""

    __slots__ = ("_ask",)

    def __init__(self, ask: "_Ask") -> None:
        super().__init__(ask.name, None, ask.inbox.manager)
        self._ask = ask

    def send(self, msg: Any, sender: Optional[ActorRef] = None, **_options: Any) -> bool:
        return self._ask.complete(msg)

    def reply_address(self) -> tuple[Optional[str], Optional[str]]:
        return self.name, self._manager.advertised_endpoint

    def __repr__(self) -> str:
        return f"_ReplyRef({self.name!r})"


class _Ask:
    """One outstanding request. ``timers``/``put`` let the Manager's timer thread deliver
    the deadline as it does for actors (see manager._Timers)."""

    def __init__(self, inbox: "Inbox", name: str, what: str, timeout: Optional[float]) -> None:
        self.inbox = inbox
        self.name = name
        self.what = what
        self.timeout = timeout
        self.future = AskFuture()
        self.timers: set[int] = set()
        self.ref = _ReplyRef(self)

    def complete(self, msg: Any) -> bool:
        """The reply arrived (transport thread or the answering actor's thread)."""
        if isinstance(msg, Reject):
            ok = self._settle(exc=AskRejected(self.what, msg))
        else:
            ok = self._settle(result=msg)
        if not ok:
            self.inbox.manager._stats.drop("late_reply")
        return True  # accepted: a late reply is counted here, never bounced as a Reject

    def put(self, msg: Any, _sender: Any) -> bool:
        """Called by Manager._route (a reply from the network) and by the timer thread
        (our deadline, as ``Timeout``)."""
        if isinstance(msg, Timeout):
            if msg.id in self.timers:
                self._settle(exc=TimeoutError(
                    f"{self.what} got no reply within {self.timeout:g}s"))
            return True
        return self.complete(msg)

    def _settle(self, result: Any = None, exc: Optional[BaseException] = None) -> bool:
        fut = self.future
        try:
            if exc is None:
                fut.set_result(result)
            else:
                fut.set_exception(exc)
        except concurrent.futures.InvalidStateError:
            return False  # already done (timed out, cancelled, or a second reply)
        return True


class Inbox:
    """Per Manager: the outstanding asks by reply name, and the names free for reuse."""

    def __init__(self, manager: "Manager") -> None:
        self.manager = manager
        self._lock = threading.Lock()
        self._pending: dict[str, _Ask] = {}
        self._free: list[str] = []
        self._ids = itertools.count(1)

    def lookup(self, name: str) -> Optional[_Ask]:
        """The outstanding ask a reply addressed to ``name`` belongs to, else None."""
        return self._pending.get(name)

    def ask(self, ref: "_Ref", msg: Any, timeout: Optional[float]) -> AskFuture:
        mgr = self.manager
        if timeout is not None and not (isinstance(timeout, (int, float)) and timeout > 0):
            raise ValueError(f"ask timeout must be None or seconds > 0, got {timeout!r}")
        where = f"{ref.name!r}" if ref.endpoint is None else f"{ref.name!r} at {ref.endpoint}"
        what = f"ask({message_type_name(msg)}) to actor {where}"
        if mgr._state != "running":
            raise RuntimeError(f"{what}: the Manager is {mgr._state}; "
                               f"ask() needs a Manager between init() and end()")
        if ref.endpoint is not None and mgr.advertised_endpoint is None:
            raise RuntimeError(f"{what}: this Manager has no endpoint, so the reply has "
                               f"nowhere to go; create it with Manager('tcp://127.0.0.1:PORT')")
        with self._lock:
            name = self._free.pop() if self._free else f"{PREFIX}{next(self._ids)}"
            a = _Ask(self, name, what, timeout)
            self._pending[name] = a
        a.future.add_done_callback(lambda _f, a=a: self._done(a))
        if timeout is not None:
            mgr._timers.add(a, timeout, False)
        try:
            sent = ref.send(msg, a.ref)
        except BaseException:
            a.future.cancel()
            raise
        if not sent:
            a._settle(exc=RuntimeError(f"{what}: the request was not sent "
                                       f"(see Manager.stats()['dropped'])"))
        return a.future

    def _done(self, a: _Ask) -> None:
        """Runs once per ask, on whichever thread settled it."""
        mgr = self.manager
        for tid in list(a.timers):
            mgr._timers.cancel(a, tid)
        fut = a.future
        answered = not fut.cancelled() and (
            fut.exception() is None or isinstance(fut.exception(), AskRejected))
        with self._lock:
            self._pending.pop(a.name, None)
            if answered:  # no reply can still be on its way to this name: reuse it
                self._free.append(a.name)

    def close(self) -> None:
        """Manager.end(): fail what is still outstanding."""
        with self._lock:
            pending = list(self._pending.values())
        for a in pending:
            a._settle(exc=RuntimeError(f"{a.what}: the Manager ended before the reply"))


def inbox_of(manager: "Manager") -> Inbox:
    """The Manager's Inbox, created on first use."""
    inbox = manager.__dict__.get("_inbox")
    if inbox is None:
        with manager._lock:
            inbox = manager.__dict__.get("_inbox")
            if inbox is None:
                inbox = manager._inbox = Inbox(manager)
    return inbox


def is_reply_name(name: str) -> bool:
    return name.startswith(PREFIX)
