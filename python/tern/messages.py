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
import math
import numbers
import re
import threading
import typing
from typing import Any, Optional

from . import wire

__all__ = [
    "register_message",
    "FieldLimitError",
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


class FieldLimitError(ValueError):
    """A field value outside the C++-compatible limit its type declared (raised at send).

    ``str(e)`` names the type, the field, the value and the limit; ``message_type``,
    ``field``, ``value`` and ``limit`` (the declared type text, e.g. ``"int32"``) hold them.
    """

    def __init__(self, reason: str, message_type: str, field: str, value: Any,
                 limit: str) -> None:
        super().__init__(reason)
        self.message_type = message_type
        self.field = field
        self.value = value
        self.limit = limit


# --- C++-compatible field limits (register_message(fields=...)) ----------------------

_INT_RANGES = {
    "int8": (-(1 << 7), (1 << 7) - 1),
    "int16": (-(1 << 15), (1 << 15) - 1),
    "int32": (-(1 << 31), (1 << 31) - 1),
    "int64": (-(1 << 63), (1 << 63) - 1),
    "uint8": (0, (1 << 8) - 1),
    "uint16": (0, (1 << 16) - 1),
    "uint32": (0, (1 << 32) - 1),
    "uint64": (0, (1 << 64) - 1),
}
# The C++ names ("float", "double") and the numpy-style ones mean the same kinds.
_FLOAT_KINDS = {"float": "float", "float32": "float", "double": "double", "float64": "double"}
# float: FLT_MAX plus half its ULP (0x1.ffffffp127), the gateway's bound: a double at or
# beyond it rounds to infinity as a float (lib/gateway/codec.cpp, kFloatRoundsToInf).
_FLOAT32_ROUNDS_TO_INF = float.fromhex("0x1.ffffffp127")
_LIMIT_RE = re.compile(r"^\s*([a-z0-9]+)\s*(?:\[\s*([0-9]+)\s*\])?\s*$")


def _is_numpy(value: Any) -> bool:
    mod = type(value).__module__
    return mod == "numpy" or mod.startswith("numpy.")


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool) or (_is_numpy(value) and type(value).__name__ in
                                       ("bool_", "bool"))


def _value_text(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if _is_bool(value):
        return "bool"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)) or (_is_numpy(value) and hasattr(value, "shape")
                                            and getattr(value, "shape", ()) != ()):
        return "array"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, numbers.Integral):
        return "integer"
    if isinstance(value, numbers.Real):
        return "float"
    return type(value).__name__


class _Limit:
    """One declared field type: how the C++ gateway would read the field (docs/gateway.md).

    ``kind`` is ``bool``, ``string``, ``chars`` (``char[N]``: at most N UTF-8 bytes, no
    NUL), an integer kind (``int8`` .. ``uint64``), ``float`` or ``double``; ``count`` is N
    for ``char[N]`` and for arrays ``T[N]`` of numbers (then ``kind`` is T).
    """

    __slots__ = ("text", "kind", "count", "array")

    def __init__(self, text: str) -> None:
        if not isinstance(text, str):
            raise ValueError(f"field limit must be a string like 'int32' or 'char[16]', "
                             f"got {text!r}")
        m = _LIMIT_RE.match(text)
        base, n = (m.group(1), m.group(2)) if m else (None, None)
        numeric = base in _INT_RANGES or base in _FLOAT_KINDS
        ok = m is not None and (
            (base in ("bool", "string") and n is None)
            or (base == "char" and n is not None and int(n) > 0)
            or (numeric and (n is None or int(n) > 0)))
        if not ok:
            raise ValueError(
                f"unknown field limit {text!r}: expected bool, int8..int64, uint8..uint64, "
                f"float (float32), double (float64), string, char[N], or a number type "
                f"with [N] for an array")
        self.text = text.replace(" ", "")
        self.array = numeric and n is not None
        self.kind = "chars" if base == "char" else _FLOAT_KINDS.get(base, base)
        self.count = int(n) if n is not None else 0

    def check(self, type_name: str, field: str, value: Any) -> tuple[Optional[str], Any]:
        """(reason or None, the value to keep). Reasons follow the gateway's wording."""
        where = f"Field '{field}' for {type_name}"
        if self.array:
            seq = value.tolist() if _is_numpy(value) and hasattr(value, "tolist") else value
            if not isinstance(seq, (list, tuple)):
                return (f"{where} must be an array of {self.count} {self.kind}, got "
                        f"{_json_kind(value)} {_value_text(value)}"), value
            if len(seq) != self.count:
                return (f"{where} must be an array of {self.count} {self.kind}, got "
                        f"{len(seq)} element{'' if len(seq) == 1 else 's'}"), value
            for i, elem in enumerate(seq):
                reason = self._check_scalar(f"{where} element {i}", elem)
                if reason is not None:
                    return reason, value
            return None, value
        if self.kind == "bool":
            if _is_bool(value):
                return None, value
            return f"{where} must be bool, got {_json_kind(value)} {_value_text(value)}", value
        if self.kind in ("string", "chars"):
            if not isinstance(value, str):
                return (f"{where} must be string, got {_json_kind(value)} "
                        f"{_value_text(value)}"), value
            try:
                size = len(value.encode("utf-8"))
            except UnicodeEncodeError:
                return f"{where} is not valid UTF-8: {_value_text(value)}", value
            if self.kind == "chars":
                if size > self.count:
                    return (f"{where} is longer than {self.count} bytes: "
                            f"{_value_text(value)} is {size} bytes in UTF-8 "
                            f"(limit {self.text})"), value
                if "\0" in value:
                    return f"{where} must not contain NUL: {_value_text(value)}", value
            return None, value
        return self._check_scalar(where, value), value

    def _check_scalar(self, where: str, value: Any) -> Optional[str]:
        kind = self.kind
        if _is_bool(value) or not isinstance(value, numbers.Real):
            return f"{where} must be {kind}, got {_json_kind(value)} {_value_text(value)}"
        if kind in ("float", "double"):
            x = float(value)
            if not math.isfinite(x):
                return (f"{where} is {_value_text(value)}: JSON cannot carry NaN or "
                        f"infinity ({kind})")
            if kind == "float" and not -_FLOAT32_ROUNDS_TO_INF < x < _FLOAT32_ROUNDS_TO_INF:
                return (f"{where} is out of range for float: {_value_text(value)} "
                        f"(float holds about +-3.4028235e38)")
            return None
        if not isinstance(value, numbers.Integral):
            return f"{where} must be {kind}, got float {_value_text(value)}"
        lo, hi = _INT_RANGES[kind]
        x = int(value)
        if not lo <= x <= hi:
            return f"{where} is out of range for {kind}: {x} ({kind} holds {lo}..{hi})"
        return None


class _MessageSpec:
    """What the codec needs to know about one registered class (built once per class)."""

    __slots__ = ("cls", "name", "fields", "required", "var_kw", "limits", "_hints",
                 "_hints_done")

    def __init__(self, cls: type, name: str) -> None:
        self.cls = cls
        self.name = name
        self.limits: dict[str, _Limit] = {}
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

    def check_limits(self, payload: dict) -> None:
        """Raise FieldLimitError for the first field outside its declared limit, or for a
        declared field missing from the payload."""
        for key, limit in self.limits.items():
            if key not in payload:
                raise FieldLimitError(f"Missing field '{key}' for {self.name} "
                                      f"(declared {limit.text})", self.name, key, None,
                                      limit.text)
            reason, _ = limit.check(self.name, key, payload[key])
            if reason is not None:
                raise FieldLimitError(reason, self.name, key, payload[key], limit.text)

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
        for key, limit in self.limits.items():
            if key in payload:
                value = payload[key]
                if type(value) is float and not limit.array:  # the tolerant rule on decode
                    if limit.kind in _INT_RANGES and value.is_integer():
                        payload[key] = int(value)  # an integral float fills an int field
                    elif limit.kind in ("float", "double") and not math.isfinite(value):
                        continue  # a bare NaN/Infinity fills a float field, as in C++
                reason, _ = limit.check(self.name, key, payload[key])
                if reason is not None:
                    raise PayloadError(reason)
                if limit.kind in ("float", "double") and not limit.array \
                        and type(payload[key]) is int:
                    payload[key] = float(payload[key])  # JSON does not distinguish 1 from 1.0
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


def register_message(cls: Optional[type] = None, *, name: Optional[str] = None,
                     fields: Optional[dict] = None) -> Any:
    """Class decorator: make ``cls`` sendable to and receivable from remote peers.

    The wire type name is the class name (or ``name=``). Works on plain classes whose
    ``__init__`` takes the fields as keyword arguments and on dataclasses. Registering a
    different class under a name already taken replaces the old one (with a warning).

    ``fields`` declares C++-compatible limits, {field: type text}: ``bool``, ``int8`` ..
    ``int64``, ``uint8`` .. ``uint64``, ``float`` (or ``float32``), ``double`` (or
    ``float64``), ``string``, ``char[N]`` (at most N UTF-8 bytes, no NUL), ``T[N]`` (an
    array of exactly N numbers of type T). A remote send checks them and raises
    FieldLimitError naming the type, field, value and limit; an inbound payload that
    breaks them is refused (a Reject with the same reason). Fields not named are not
    checked. An unknown type text or a name that is not a field raises ValueError here.
    """

    def deco(c: type) -> type:
        if not isinstance(c, type):
            raise TypeError("register_message decorates classes")
        wire = name or c.__name__
        if not isinstance(wire, str) or not wire:
            raise ValueError(f"invalid message type name {wire!r}")
        spec = _MessageSpec(c, wire)
        if fields is not None:
            if not isinstance(fields, dict):
                raise TypeError(f"register_message(fields=...) takes a dict, got {fields!r}")
            for key, text in fields.items():
                if key not in spec.fields and not spec.var_kw:
                    raise ValueError(f"{wire}: field limit for {key!r}, which is not a field "
                                     f"of {c.__name__} (fields: {', '.join(spec.fields)})")
                spec.limits[key] = _Limit(text)
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


def encode_message(sender_actor: Optional[str], sender_endpoint: Optional[str],
                   receiver: str, msg: Any) -> bytes:
    """One envelope for ``msg`` as bytes, its declared field limits checked first.

    Raises FieldLimitError (a declared limit), TypeError (a value JSON cannot carry) or
    ValueError (NaN, infinity), each naming the type and the field.
    """

    type_name = message_type_name(msg)
    payload = payload_of(msg)
    spec = _registry.get(type_name)
    if spec is not None and spec.limits and spec.cls is type(msg):
        spec.check_limits(payload)
    try:
        return wire.encode(sender_actor, sender_endpoint, receiver, type_name, payload)
    except (TypeError, ValueError) as exc:
        for key, value in payload.items():
            try:
                wire.encode(None, None, "", "", {key: value})
            except (TypeError, ValueError) as field_exc:
                raise type(exc)(f"cannot send {type_name}: field '{key}' = "
                                f"{_value_text(value)}: {field_exc}") from None
        raise


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

