"""Managers that outlive their variable: re-running a notebook cell must just work.

A Manager's threads keep it alive after the last variable naming it is rebound, and its
PULL socket keeps the port. This module remembers every running Manager (weakly: an
ended Manager is forgotten and can be collected) so that

- ``init()`` of a new Manager whose endpoint another running Manager *in this process*
  already binds ends that old Manager first (``replace=True``, the default; logged at
  warning level), or raises OSError naming it (``replace=False``);
- a bind refused by another *process* raises OSError saying so;
- at interpreter exit every Manager still running is ended (atexit), so its threads stop
  and what it held is flushed within each Manager's ``linger_ms``.
"""

from __future__ import annotations

import atexit
import errno
import logging
import threading
import weakref
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:  # pragma: no cover
    from .manager import Manager

__all__ = ["running_managers"]

log = logging.getLogger("tern")

_lock = threading.Lock()
_running: "weakref.WeakSet[Manager]" = weakref.WeakSet()
# Why a cap at exit: an actor stuck in a handler must not hold up interpreter exit for the
# Manager's full join_timeout (10 s by default).
_EXIT_JOIN_TIMEOUT = 2.0


def running_managers() -> list["Manager"]:
    """The Managers of this process between ``init()`` and ``end()``."""
    with _lock:
        return list(_running)


def _bind_key(endpoint: Optional[str]) -> Optional[tuple]:
    """What two bind endpoints must share to collide: ('tcp', host, port) or ('ipc', path).
    None when binding it cannot collide (no endpoint, an ephemeral port, inproc)."""
    if endpoint is None:
        return None
    scheme, _, rest = endpoint.partition("://")
    if scheme == "tcp":
        host, _, port = rest.rpartition(":")
        if not port.isdigit() or port == "0":
            return None
        host = host.strip("[]")
        if host in ("*", "0.0.0.0", "::"):
            host = "*"
        elif host == "localhost":
            host = "127.0.0.1"
        return ("tcp", host, int(port))
    if scheme == "ipc":
        return ("ipc", rest)
    return None


def _collide(a: tuple, b: tuple) -> bool:
    if a[0] != b[0]:
        return False
    if a[0] == "ipc":
        return a == b
    return a[2] == b[2] and (a[1] == b[1] or "*" in (a[1], b[1]))


def describe(mgr: "Manager") -> str:
    """'Manager(tcp://*:5001) created at file.py:12 with actors [...]'."""
    return (f"Manager({mgr.endpoint}) created at {getattr(mgr, '_origin', '?')} "
            f"with actors {mgr.actors}")


def holder_of(endpoint: Optional[str], exclude: "Manager") -> Optional["Manager"]:
    """A running Manager of this process whose endpoint collides with ``endpoint``."""
    key = _bind_key(endpoint)
    if key is None:
        return None
    for other in running_managers():
        if other is exclude:
            continue
        k = _bind_key(other.endpoint)
        if k is not None and _collide(key, k):
            return other
    return None


def before_bind(mgr: "Manager", replace: bool) -> None:
    """Called by ``Manager.init()`` before it binds: ends (or names) a running Manager of
    this process that holds the endpoint."""
    old = holder_of(mgr.endpoint, mgr)
    if old is None:
        return
    if not replace:
        raise OSError(errno.EADDRINUSE, f"cannot bind {mgr.endpoint!r}: it is bound by another running "
                          f"{describe(old)}; call its end() first (or create this Manager "
                          f"with replace=True)")
    log.warning("%s still holds %s: ending it so the new Manager can bind",
                describe(old), mgr.endpoint)
    old.end()


def bind_failed(mgr: "Manager", exc: OSError) -> OSError:
    """The OSError init() raises when the bind failed although no Manager of this process
    holds the endpoint."""
    if exc.errno == errno.EADDRINUSE:
        return OSError(exc.errno, f"{exc.strerror} (no tern Manager of this process "
                                  f"holds it: another program or socket does)")
    return exc


def started(mgr: "Manager") -> None:
    with _lock:
        _running.add(mgr)


def ended(mgr: "Manager") -> None:
    with _lock:
        _running.discard(mgr)


@atexit.register
def _end_all() -> None:
    for mgr in running_managers():
        try:
            mgr.join_timeout = min(mgr.join_timeout, _EXIT_JOIN_TIMEOUT)
            mgr.end()
        except Exception:  # noqa: BLE001 - interpreter exit: report and go on
            log.exception("ending %s at exit failed", describe(mgr))
