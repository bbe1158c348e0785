"""Subscribing to a C++ topic (tern::TopicExport, include/tern/topic_export.hpp).

A research actor that is slower than a market-data feed gets the latest value per key
(e.g. per symbol), never a stale backlog: it holds at most ``window`` values it has not
handed credit back for, and the C++ side keeps only the newest value of each key for it
while it has none::

    class Research(tern.Actor):
        def on_start(self, _):
            self.feed = tern.TopicFeed(self, self.manager.remote("ticks", endpoint), window=8)
        def on_feed_tick(self, tick):
            ...                      # slow work
            self.feed.done()         # one value handled: credit goes back in batches

The value type is registered as usual (``@tern.register_message``) with the C++ type's
wire name and fields. See docs/python.md ("Topics").
"""
from typing import Any, Optional

from .messages import register_message


@register_message(name="TopicSubscribe", fields={"window": "int32"})
class TopicSubscribe:
    def __init__(self, window: int) -> None:
        self.window = window


@register_message(name="TopicCredit", fields={"credit": "int32"})
class TopicCredit:
    def __init__(self, credit: int) -> None:
        self.credit = credit


@register_message(name="TopicUnsubscribe")
class TopicUnsubscribe:
    def __init__(self) -> None:
        pass


class TopicFeed:
    """A subscription of ``actor`` (a managed tern.Actor) to the TopicExport behind ``ref``.

    ``window`` (1..4096, the C++ side caps it): values in flight before credit comes back.
    Call ``done()`` once per value handled, from the actor's handlers; credit goes back every
    ``max(1, window // 2)`` values. ``close()`` unsubscribes. Sends come from the actor, so
    the C++ side answers it (its Manager needs an endpoint).
    """

    def __init__(self, actor: Any, ref: Any, window: int = 16) -> None:
        if not isinstance(window, int) or not 1 <= window <= 4096:
            raise ValueError(f"window must be an int in 1..4096, got {window!r}")
        if actor.self_ref is None:
            raise ValueError("TopicFeed needs a managed actor (Manager.manage it first)")
        self.ref = ref
        self.window = window
        self._batch = max(1, window // 2)
        self._owed = 0
        self._me = actor.self_ref
        self.handled = 0
        if not ref.send(TopicSubscribe(window), self._me):
            raise RuntimeError(f"TopicSubscribe to {ref!r} was not sent")

    def done(self, n: int = 1) -> None:
        """``n`` values were handled: credit for them goes back (batched)."""
        self.handled += n
        self._owed += n
        if self._owed >= self._batch:
            owed, self._owed = self._owed, 0
            if not self.ref.send(TopicCredit(owed), self._me):
                self._owed += owed  # not sent: tried again with the next done()

    def close(self, timeout: Optional[float] = None) -> bool:
        """Unsubscribes; True when the request was handed to the transport."""
        return self.ref.send(TopicUnsubscribe(), self._me, timeout=timeout)
