"""Message classes, the wire-type registry and payload validation.

A message is a plain Python object. ``@register_message`` makes a class known to the
wire codec under its class name; the payload on the wire is the object's attributes.
Decoding checks the incoming payload against the class's constructor (or dataclass
fields) *before* calling it, so a peer that sends a missing or mistyped field gets a
precise reason instead of crashing anything; fields the class does not take are ignored
(counted), as by the C++ gateway.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import re
import threading
import typing
from typing import Any, Optional

__all__ = [
    "register_message",
    "registered",
    "message_type_name",
    "PayloadError",
    "Start",
    "Shutdown",
    "Timeout",
    "Reject",
]

log = logging.getLogger("tern")

_registry: dict[str, "_MessageSpec"] = {}
_registry_lock = threading.Lock()

# Annotations we check on decode. Anything else (generics, unions, user classes) is
# passed through unchecked: the payload is flat JSON and the class decides.
_CHECKED_TYPES = {
    int: "int",
    float: "float",
    str: "str",
    bool: "bool",
    list: "list",
    dict: "dict",
}
_JSON_NAMES = {
    bool: "bool",
    int: "int",
    float: "float",
    str: "str",
    list: "list",
    dict: "dict",
    type(None): "null",
}


class PayloadError(ValueError):
    """A payload that does not fit the registered class; ``str(e)`` is the Reject reason."""


class _MessageSpec:
    """What the codec needs to know about one registered class (built once per class)."""

    __slots__ = ("cls", "name", "fields", "required", "var_kw", "_hints", "_hints_done")

    def __init__(self, cls: type, name: str) -> None:
        self.cls = cls
        self.name = name
        self._hints: dict[str, type] = {}
        self._hints_done = False
        if dataclasses.is_dataclass(cls):
            flds = [f for f in dataclasses.fields(cls) if f.init]
            self.fields = tuple(f.name for f in flds)
            self.required = frozenset(
                f.name
                for f in flds
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            )
            self.var_kw = False
            return
        init = cls.__init__
        if init is object.__init__:
            self.fields, self.required, self.var_kw = (), frozenset(), False
            return
        params = list(inspect.signature(init).parameters.values())[1:]  # drop self
        kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        self.fields = tuple(p.name for p in params if p.kind in kinds)
        self.required = frozenset(
            p.name for p in params if p.kind in kinds and p.default is inspect.Parameter.empty
        )
        self.var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)

    def hints(self) -> dict[str, type]:
        # Resolved lazily: forward references may only resolve after the module loaded.
        if not self._hints_done:
            target = self.cls if dataclasses.is_dataclass(self.cls) else self.cls.__init__
            try:
                raw = typing.get_type_hints(target)
            except Exception:  # unresolvable annotations: skip type checks
                raw = {}
            self._hints = {k: v for k, v in raw.items() if k in self.fields and v in _CHECKED_TYPES}
            self._hints_done = True
        return self._hints

    def build(self, payload: dict) -> Any:
        """Check ``payload`` and construct the message; raises PayloadError."""
        return self.build_counted(payload)[0]

    def build_counted(self, payload: dict) -> tuple[Any, int]:
        """(message, number of payload keys ignored). The tolerant rule shared with the C++
        gateway (docs/gateway.md): fields the class does not take are ignored, an integral
        float fills an ``int`` field, a Reject's camelCase keys are its snake_case ones.
        Raises PayloadError."""
        fields = self.fields
        ignored = 0
        aliases = _KEY_ALIASES.get(self.name)
        if aliases is not None:
            payload = _unalias(payload, aliases, self.name)
        if not self.var_kw:
            extra = [key for key in payload if key not in fields]
            if extra:
                payload = {k: v for k, v in payload.items() if k in fields}
                ignored = len(extra)
        for key in fields:
            if key in self.required and key not in payload:
                raise PayloadError(f"Missing field '{key}' for {self.name}")
        hints = self.hints()
        if hints:
            for key, want in hints.items():
                if key not in payload:
                    continue
                value = payload[key]
                got = type(value)
                if got is want:
                    continue
                if want is float and got is int:
                    payload[key] = float(value)  # JSON does not distinguish 1 from 1.0
                    continue
                if want is int and got is float and value.is_integer():
                    payload[key] = int(value)  # 1.0, -3.0, 1e3: Python float arithmetic
                    continue
                raise PayloadError(
                    f"Field '{key}' for {self.name} must be {_CHECKED_TYPES[want]}, "
                    f"got {_JSON_NAMES.get(got, got.__name__)}"
                )
        try:
            return self.cls(**payload), ignored
        except Exception as exc:  # the class's own validation refused it
            raise PayloadError(f"Invalid payload for {self.name}: {exc}") from None


# Payload keys other peers spell differently, per wire type: the Java peer writes a Reject's
# keys in camelCase.
_KEY_ALIASES = {"Reject": {"messageType": "message_type", "rejectedBy": "rejected_by"}}


def _unalias(payload: dict, aliases: dict, type_name: str) -> dict:
    if not any(k in payload for k in aliases):
        return payload
    out = {}
    for key, value in payload.items():
        name = aliases.get(key, key)
        if name in out:
            raise PayloadError(f"Duplicate field '{name}' for {type_name}")
        out[name] = value
    return out


def register_message(cls: Optional[type] = None, *, name: Optional[str] = None) -> Any:
    """Class decorator: make ``cls`` sendable to and receivable from remote peers.

    The wire type name is the class name (or ``name=``). Works on plain classes whose
    ``__init__`` takes the fields as keyword arguments and on dataclasses. Registering a
    different class under a name already taken replaces the old one (with a warning).
    """

    def deco(c: type) -> type:
        if not isinstance(c, type):
            raise TypeError("register_message decorates classes")
        wire = name or c.__name__
        if not isinstance(wire, str) or not wire:
            raise ValueError(f"invalid message type name {wire!r}")
        spec = _MessageSpec(c, wire)
        with _registry_lock:
            old = _registry.get(wire)
            if old is not None and old.cls is not c:
                if (old.cls.__module__, old.cls.__qualname__) != (c.__module__, c.__qualname__):
                    log.warning("message type %r re-registered: %s replaces %s", wire,
                                _qualname(c), _qualname(old.cls))
            _registry[wire] = spec
        c.__tern_type__ = wire
        return c

    if cls is not None:
        return deco(cls)
    return deco


def _qualname(c: type) -> str:
    return f"{c.__module__}.{c.__qualname__}"


def registered(type_name: str) -> Optional[type]:
    """The class registered under ``type_name``, or None."""
    spec = _registry.get(type_name)
    return spec.cls if spec else None


def _spec_for(type_name: str) -> Optional[_MessageSpec]:
    return _registry.get(type_name)


def message_type_name(msg: Any) -> str:
    """The type name a message travels under (its registered name, else its class name)."""
    return class_type_name(type(msg))


def class_type_name(cls: type) -> str:
    # Look in the class's own dict: a subclass must not inherit its parent's wire name.
    return cls.__dict__.get("__tern_type__", cls.__name__)


def payload_of(msg: Any) -> dict:
    """The flat field dict sent on the wire for ``msg``."""
    if dataclasses.is_dataclass(msg):
        return {f.name: getattr(msg, f.name) for f in dataclasses.fields(msg)}
    try:
        return dict(vars(msg))
    except TypeError:
        raise TypeError(f"{type(msg).__name__} has no attributes to send (no __dict__)") from None


_snake_re = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def handler_names(type_name: str) -> tuple[str, ...]:
    """Handler method names tried for a type, in order: on_ping, on_Ping, on_price_update."""
    names = [f"on_{type_name.lower()}", f"on_{type_name}"]
    snake = f"on_{_snake_re.sub('_', type_name).lower()}"
    if snake not in names:
        names.append(snake)
    return tuple(dict.fromkeys(names))


# --- built-in messages --------------------------------------------------------------


class Start:
    """Delivered first to every actor when its Manager starts (handler ``on_start``)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "Start()"


class Shutdown:
    """Delivered last to every actor by ``Manager.end()`` (handler ``on_shutdown``)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "Shutdown()"


class Timeout:
    """A timer fired (handler ``on_timeout``); ``id`` is what ``start_timer`` returned."""

    __slots__ = ("id",)

    def __init__(self, id: int) -> None:
        self.id = id

    def __repr__(self) -> str:
        return f"Timeout(id={self.id})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Timeout) and other.id == self.id

    __hash__ = None  # type: ignore[assignment]


@register_message
class Reject:
    """A peer could not deliver one of our messages (handler ``on_reject``).

    ``message_type`` is the rejected message's type, ``reason`` says why,
    ``rejected_by`` is the receiver name the message was addressed to.
    """

    def __init__(self, message_type: str, reason: str, rejected_by: str) -> None:
        self.message_type = message_type
        self.reason = reason
        self.rejected_by = rejected_by

    def __repr__(self) -> str:
        return (f"Reject(message_type={self.message_type!r}, reason={self.reason!r}, "
                f"rejected_by={self.rejected_by!r})")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Reject) and vars(other) == vars(self)

    __hash__ = None  # type: ignore[assignment]

