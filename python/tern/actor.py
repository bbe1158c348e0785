"""Actors, actor references and the per-actor mailbox thread."""

from __future__ import annotations

import inspect
import logging
import queue
import threading
from typing import TYPE_CHECKING, Any, Callable, Optional

from . import wire
from .messages import (Reject, Shutdown, Start, class_type_name, encode_message,
                       handler_names, message_type_name)

if TYPE_CHECKING:  # pragma: no cover
    from .manager import Manager

__all__ = ["Actor", "ActorRef", "LocalActorRef", "RemoteActorRef", "SendError"]

log = logging.getLogger("tern")


class SendError(RuntimeError):
    """Raised instead of returning False when a send was asked to raise on a drop
    (``send(..., raise_on_drop=True)`` or ``Manager(raise_on_drop=True)``).

    ``cause`` is the drop counter key (``peer_backlog_full``, ``too_many_peers``,
    ``transport_stopped``, ``actor_stopped``, ``reply_without_sender``), ``receiver`` the
    actor name and ``endpoint`` its endpoint (None for a local actor).
    """

    def __init__(self, message_type: str, receiver: str, endpoint: Optional[str],
                 cause: str, detail: str = "") -> None:
        where = f"{receiver!r} at {endpoint}" if endpoint else repr(receiver)
        super().__init__(f"{message_type} to {where} not sent: {cause}"
                         + (f" ({detail})" if detail else ""))
        self.message_type = message_type
        self.receiver = receiver
        self.endpoint = endpoint
        self.cause = cause


def _check_timeout(timeout: Optional[float]) -> None:
    if timeout is not None and not (isinstance(timeout, (int, float)) and timeout >= 0):
        raise ValueError(f"send timeout must be None or seconds >= 0, got {timeout!r}")

# Markers riding in the sender slot of a mailbox item; handlers see sender=None.
_FROM_TIMER = object()   # a Timeout from the timer service (checked against cancellation)
_FINAL = object()        # the Shutdown queued by Manager.end(): the thread exits after it


class ActorRef:
    """A handle to send messages to an actor, local or remote, with one API.

    ``name`` is the actor's name; ``endpoint`` is the remote PULL endpoint, or None for an
    actor in this process.
    """

    __slots__ = ("name", "endpoint", "_manager")

    def __init__(self, name: str, endpoint: Optional[str], manager: "Manager") -> None:
        self.name = name
        self.endpoint = endpoint
        self._manager = manager

    @property
    def is_local(self) -> bool:
        return self.endpoint is None

    def send(self, msg: Any, sender: Optional["ActorRef"] = None, *,
             timeout: Optional[float] = None, raise_on_drop: Optional[bool] = None) -> bool:
        """Send ``msg``; ``sender`` (usually ``self.self_ref``) is where replies go.

        Any thread. True means accepted: queued to the local actor, or (remote) handed to
        the transport, which hands it to ZeroMQ or, if it cannot, records it as not sent
        in ``Manager.stats()["unsent"]`` and ``Manager.end()``'s EndReport. False means
        not accepted (counted as a drop by cause); with ``raise_on_drop`` (default: the
        Manager's setting) a SendError is raised instead. Remote sends wait for room in
        the peer's backlog for at most ``timeout`` seconds (None or 0: never wait;
        ``math.inf``: until room or end()); local sends never wait.
        """
        raise NotImplementedError

    def _refused(self, msg: Any, cause: str, raise_on_drop: Optional[bool],
                 detail: str = "") -> bool:
        if raise_on_drop is None:
            raise_on_drop = self._manager.raise_on_drop
        if raise_on_drop:
            raise SendError(message_type_name(msg), self.name, self.endpoint, cause, detail)
        return False

    def reply_address(self) -> tuple[Optional[str], Optional[str]]:
        """(sender_actor, sender_endpoint) a remote peer must use to answer this actor."""
        raise NotImplementedError

    def ask(self, msg: Any, timeout: Optional[float] = 10.0) -> Any:
        """Send ``msg`` and block until the actor's reply, which is returned. For a
        notebook cell or a script: no actor of your own needed (see tern.ask).

        Any thread but the asked actor's own (that would wait on itself). Raises
        TimeoutError naming the actor and the message type after ``timeout`` seconds
        (None: wait until the reply or ``end()``), ``tern.AskRejected`` if the request
        was answered with a Reject, RuntimeError if the Manager is not running (or ends
        meanwhile), or for a remote actor when this Manager has no endpoint to be answered
        at. The reply type must be registered (``@register_message``) to come back from a
        remote actor.
        """
        cell = getattr(self, "_cell", None)
        if cell is not None and cell.thread is threading.current_thread():
            raise RuntimeError(f"ask() to {self.name!r} from its own handler would wait "
                               f"for itself; send() and handle the reply instead")
        fut = self.ask_async(msg, timeout)
        try:
            return fut.result()
        except BaseException:  # e.g. KeyboardInterrupt in a notebook: retire the ask now
            fut.cancel()
            raise

    def ask_async(self, msg: Any, timeout: Optional[float] = 10.0) -> Any:
        """Like ``ask()`` without blocking: returns a ``tern.AskFuture``, a
        ``concurrent.futures.Future`` (``.result()``, ``.add_done_callback()``) that is
        also awaitable (``reply = await ref.ask_async(msg)`` in asyncio or Jupyter). It
        fails with the exceptions ``ask()`` raises; a callback runs on the thread that
        delivered the reply (the transport thread or the answering actor's).
        """
        from .ask import inbox_of  # here: tern.ask imports this module
        return inbox_of(self._manager).ask(self, msg, timeout)


class LocalActorRef(ActorRef):
    """Reference to an actor managed by a Manager in this process: a direct queue put."""

    __slots__ = ("_cell",)

    def __init__(self, cell: "_Cell", manager: "Manager") -> None:
        super().__init__(cell.name, None, manager)
        self._cell = cell

    def send(self, msg: Any, sender: Optional[ActorRef] = None, *,
             timeout: Optional[float] = None, raise_on_drop: Optional[bool] = None) -> bool:
        # Local messages are passed by reference, not copied: do not mutate after send.
        # The mailbox is unbounded, so timeout never applies (it is only checked).
        _check_timeout(timeout)
        if self._cell.put(msg, sender):
            self._manager._stats.inc("local_messages")
            return True
        self._manager._stats.drop("actor_stopped")
        return self._refused(msg, "actor_stopped", raise_on_drop)

    def reply_address(self) -> tuple[Optional[str], Optional[str]]:
        return self.name, self._manager.advertised_endpoint

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LocalActorRef) and other._cell is self._cell

    def __hash__(self) -> int:
        return hash(("local", id(self._cell)))

    def __repr__(self) -> str:
        return f"LocalActorRef({self.name!r})"


class RemoteActorRef(ActorRef):
    """Reference to an actor behind a ZeroMQ PULL endpoint (any language's peer)."""

    __slots__ = ("server_key",)

    def __init__(self, name: str, endpoint: str, manager: "Manager",
                 server_key: Optional[str] = None) -> None:
        super().__init__(name, endpoint, manager)
        #: CURVE: the public key (Z85) the peer's PULL socket must prove; None when off
        self.server_key = server_key

    def send(self, msg: Any, sender: Optional[ActorRef] = None, *,
             timeout: Optional[float] = None, raise_on_drop: Optional[bool] = None) -> bool:
        # Encoded on the calling thread, so a bad message raises here, at the caller:
        # TypeError (unregistered, or a value JSON cannot carry), FieldLimitError (a
        # declared field limit), ValueError (NaN, infinity).
        _check_timeout(timeout)
        cls = type(msg)
        if "__tern_type__" not in cls.__dict__:
            raise TypeError(f"{cls.__name__} is not registered: decorate it with "
                            f"@register_message to send it to a remote actor")
        sa, se = sender.reply_address() if sender is not None else (None, None)
        data = encode_message(sa, se, self.name, msg)
        transport = self._manager._transport
        cause = transport.post(self.endpoint, data, timeout, self.server_key)
        if cause is None:
            return True
        cfg = transport._cfg
        detail = {"peer_backlog_full": f"max_backlog={cfg.max_backlog} messages already "
                                       f"held for that peer",
                  "too_many_peers": f"max_peers={cfg.max_peers} peers already have "
                                    f"messages held",
                  "transport_stopped": "the Manager has ended"}.get(cause, "")
        if timeout:
            detail += f"; waited {timeout:g}s"
        return self._refused(msg, cause, raise_on_drop, detail)

    def reply_address(self) -> tuple[Optional[str], Optional[str]]:
        return self.name, self.endpoint

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, RemoteActorRef) and other.name == self.name
                and wire.connect_address(other.endpoint) == wire.connect_address(self.endpoint)
                and other.server_key == self.server_key)

    def __hash__(self) -> int:
        return hash(("remote", self.name, wire.connect_address(self.endpoint), self.server_key))

    def __repr__(self) -> str:
        return f"RemoteActorRef({self.name!r}, {self.endpoint!r})"


class Actor:
    """Base class for actors. Subclasses define ``on_<type>(self, msg, sender)`` handlers.

    The handler for a message of type ``Ping`` is looked up as ``on_ping``, then
    ``on_Ping``, then the snake-case form (``PriceUpdate`` -> ``on_price_update``).
    A handler may also take only ``msg``. Built-ins: ``on_start``, ``on_shutdown``,
    ``on_timeout`` (msg.id), ``on_reject``. Handlers of one actor always run on that
    actor's own thread, one message at a time.

    Calling ``super().__init__()`` is optional; the Manager fills in ``self.manager``
    and ``self.self_ref`` when the actor is managed.
    """

    manager: Optional["Manager"] = None
    self_ref: Optional[LocalActorRef] = None
    _tern_cell: Optional["_Cell"] = None
    _tern_sender: Optional[ActorRef] = None

    @property
    def sender(self) -> Optional[ActorRef]:
        """The sender of the message being handled (None if unknown or outside a handler)."""
        return self._tern_sender

    def reply(self, msg: Any, *, timeout: Optional[float] = None,
              raise_on_drop: Optional[bool] = None) -> bool:
        """Send ``msg`` to the sender of the message being handled, from ``self_ref``,
        with ``ActorRef.send``'s result, ``timeout`` and ``raise_on_drop``.

        Call from a handler. When the current message has no known sender: logged,
        counted as a drop (``reply_without_sender``), and False (or SendError).
        """
        sender = self._tern_sender
        if sender is None:
            log.warning("%s: reply(%s) dropped: the current message has no sender",
                        self._tern_name(), type(msg).__name__)
            if self.manager is not None:
                self.manager._stats.drop("reply_without_sender")
                if raise_on_drop is None:
                    raise_on_drop = self.manager.raise_on_drop
            if raise_on_drop:
                raise SendError(message_type_name(msg), "(unknown sender)", None,
                                "reply_without_sender")
            return False
        return sender.send(msg, self.self_ref, timeout=timeout, raise_on_drop=raise_on_drop)

    def start_timer(self, seconds: float, periodic: bool = False) -> int:
        """Deliver ``Timeout(id)`` to this actor after ``seconds`` (and every ``seconds``
        after that if ``periodic``). Returns the timer id. Does not block."""
        cell = self._tern_cell
        if cell is None:
            raise RuntimeError("start_timer() needs the actor to be managed first")
        return cell.manager._timers.add(cell, seconds, periodic)

    def cancel_timer(self, timer_id: int) -> bool:
        """Stop a timer; a Timeout already queued for it is not delivered. Returns False
        if the timer was unknown or had already fired (one-shot)."""
        cell = self._tern_cell
        if cell is None:
            return False
        return cell.manager._timers.cancel(cell, timer_id)

    def on_unhandled(self, msg: Any, sender: Optional[ActorRef]) -> None:
        """Called for a message with no handler. Default: log (Reject at warning level)."""
        if isinstance(msg, Reject):
            log.warning("%s: unhandled %r", self._tern_name(), msg)
        else:
            log.debug("%s: no handler for %s", self._tern_name(), type(msg).__name__)

    def _tern_name(self) -> str:
        return self.self_ref.name if self.self_ref is not None else type(self).__name__


def _arity(fn: Callable) -> int:
    """How many of (msg, sender) a handler takes."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 2
    n = 0
    for p in params:
        if p.kind is inspect.Parameter.VAR_POSITIONAL:
            return 2
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD):
            n += 1
    return min(n, 2)


class _Cell:
    """One managed actor: its mailbox, thread and handler cache."""

    def __init__(self, name: str, actor: Actor, manager: "Manager") -> None:
        self.name = name
        self.actor = actor
        self.manager = manager
        self.mailbox: "queue.SimpleQueue[tuple[Any, Any]]" = queue.SimpleQueue()
        self.thread: Optional[threading.Thread] = None
        self.closed = False
        self.timers: set[int] = set()  # ids live for this actor; touched on its thread
        self._handlers: dict[type, tuple[Optional[Callable], int]] = {}
        self.ref = LocalActorRef(self, manager)

    def put(self, msg: Any, sender: Any) -> bool:
        """Queue one message; False once the actor has stopped (the caller counts it)."""
        if self.closed:
            return False
        self.mailbox.put((msg, sender))
        return True

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name=f"tern-actor-{self.name}",
                                       daemon=True)
        self.thread.start()

    def _run(self) -> None:
        get = self.mailbox.get
        dispatch = self._dispatch
        while True:
            msg, sender = get()
            if sender is _FINAL:
                dispatch(msg, None)
                break
            if sender is _FROM_TIMER:
                tid = msg.id
                if tid not in self.timers:
                    continue  # cancelled after it was queued
                if not self.manager._timers.is_periodic(tid):
                    self.timers.discard(tid)
                self.manager._stats.inc("timers_fired")
                sender = None
            dispatch(msg, sender)
        self.closed = True
        left = 0
        while True:  # anything that raced in behind the final Shutdown
            try:
                self.mailbox.get_nowait()
            except queue.Empty:
                break
            left += 1
        if left:
            self.manager._stats.drop("actor_stopped", left)

    def _handler(self, cls: type) -> tuple[Optional[Callable], int]:
        entry = self._handlers.get(cls)
        if entry is None:
            fn = None
            for name in handler_names(class_type_name(cls)):
                cand = getattr(self.actor, name, None)
                if callable(cand):
                    fn = cand
                    break
            entry = (fn, _arity(fn) if fn is not None else 0)
            self._handlers[cls] = entry
        return entry

    def _dispatch(self, msg: Any, sender: Optional[ActorRef]) -> None:
        actor = self.actor
        stats = self.manager._stats
        actor._tern_sender = sender
        try:
            fn, nargs = self._handler(type(msg))
            if fn is None:
                if type(msg) in (Start, Shutdown):
                    return
                stats.inc("unhandled")
                actor.on_unhandled(msg, sender)
                return
            if nargs == 2:
                fn(msg, sender)
            elif nargs == 1:
                fn(msg)
            else:
                fn()
            stats.inc("handled")  # only when it returned: an exception counts apart
        except BaseException:  # noqa: BLE001 - a handler must never kill the actor thread
            stats.inc("handler_errors")
            log.exception("%s: handler for %s raised", self.name, type(msg).__name__)
        finally:
            actor._tern_sender = None
