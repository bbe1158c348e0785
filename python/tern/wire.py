"""The JSON envelope: encoding ours, and checking every inbound frame as untrusted.

See docs/python.md and the shared wire-protocol page. One ZeroMQ frame holds one UTF-8
JSON object with five keys. Decoding follows the tolerant rule shared with the C++ gateway
(docs/gateway.md, "Tolerant decoding"): missing sender keys read as null, unknown keys
are ignored (counted), bare NaN / Infinity / -Infinity are numbers.
"""

from __future__ import annotations

import json
import re
from typing import Any, Optional

__all__ = ["ENVELOPE_KEYS", "Envelope", "FrameError", "encode", "decode_frame", "connect_address"]

ENVELOPE_KEYS = ("sender_actor", "sender_endpoint", "receiver", "message_type", "message")
_KEYSET = frozenset(ENVELOPE_KEYS)

def _encode_default(obj: Any) -> Any:
    """JSON for values the json module does not know: numpy scalars (``np.int64``,
    ``np.float32``, ``np.bool_``, ...) become the Python int/float/bool of the same value,
    numpy arrays nested lists of them. numpy is never imported: an object is recognised
    by its type's module."""
    mod = type(obj).__module__
    if mod == "numpy" or mod.startswith("numpy."):
        tolist = getattr(obj, "tolist", None)
        if tolist is not None:
            value = tolist()
            if value is not obj:
                return value
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


# NaN/Infinity are not JSON; peers would choke. Values from numpy pass through
# _encode_default first, so a numpy NaN is refused the same.
_encoder = json.JSONEncoder(allow_nan=False, default=_encode_default)


class Envelope:
    """A checked inbound envelope (all five keys present with the right types)."""

    __slots__ = ENVELOPE_KEYS + ("ignored",)

    def __init__(self, sender_actor: Optional[str], sender_endpoint: Optional[str],
                 receiver: str, message_type: str, message: dict, ignored: int = 0) -> None:
        self.sender_actor = sender_actor
        self.sender_endpoint = sender_endpoint
        self.receiver = receiver
        self.message_type = message_type
        self.message = message
        #: unknown envelope keys skipped (tolerated; counted as keys_ignored on delivery)
        self.ignored = ignored

    @property
    def replyable(self) -> bool:
        """True when both sender fields are non-null strings (and the endpoint is tcp:// or
        ipc://): only then may we answer."""
        return _replyable(self.sender_actor, self.sender_endpoint)


# Transports a reply may be pushed to. An endpoint taken from the network must not make
# us connect to an inproc:// socket of our own process (or any other odd transport).
_REPLY_SCHEMES = ("tcp://", "ipc://")


def _replyable(actor: Any, endpoint: Any) -> bool:
    return (isinstance(actor, str) and bool(actor) and isinstance(endpoint, str)
            and endpoint.startswith(_REPLY_SCHEMES))


class FrameError(Exception):
    """An inbound frame we cannot deliver.

    ``cause`` is the drop counter key; ``reason`` the Reject reason; the ``sender_*``,
    ``receiver`` and ``message_type`` attributes hold whatever could be salvaged, so a
    Reject can still be sent when the sender is known.
    """

    def __init__(self, cause: str, reason: str, obj: Any = None) -> None:
        super().__init__(reason)
        self.cause = cause
        self.reason = reason
        get = obj.get if isinstance(obj, dict) else (lambda _k: None)
        self.sender_actor = get("sender_actor")
        self.sender_endpoint = get("sender_endpoint")
        receiver = get("receiver")
        mtype = get("message_type")
        self.receiver = receiver if isinstance(receiver, str) else ""
        self.message_type = mtype if isinstance(mtype, str) else ""

    @property
    def replyable(self) -> bool:
        return _replyable(self.sender_actor, self.sender_endpoint)


def encode(sender_actor: Optional[str], sender_endpoint: Optional[str], receiver: str,
           message_type: str, message: dict) -> bytes:
    """One envelope as UTF-8 JSON bytes, keys in the Python peer's order.

    Raises TypeError/ValueError if the payload is not JSON-serialisable.
    """
    return _encoder.encode({
        "sender_actor": sender_actor,
        "sender_endpoint": sender_endpoint,
        "receiver": receiver,
        "message_type": message_type,
        "message": message,
    }).encode("utf-8")


def decode_frame(frame: bytes) -> Envelope:
    """Check one frame and return its Envelope; raises FrameError, never anything else."""
    if not frame:
        raise FrameError("empty", "Empty frame")
    try:
        text = frame.decode("utf-8")  # strict: json.loads(bytes) would guess UTF-16/32
    except UnicodeDecodeError:
        raise FrameError("invalid_utf8", "Frame is not valid UTF-8", salvage(frame)) from None
    try:
        # Bare NaN / Infinity / -Infinity (what json.dumps writes) are accepted as floats.
        obj = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise FrameError("bad_json", f"Malformed JSON: {exc}", salvage(frame)) from None
    if "\\u" in text and _has_lone_surrogate(obj):  # as simdjson: a lone surrogate is no text
        raise FrameError("bad_json", "Malformed JSON: a lone surrogate escape in a string",
                         salvage(frame))
    if not isinstance(obj, dict):
        raise FrameError("not_object", "Envelope must be a JSON object")
    ignored = 0
    if len(obj) != 5 or obj.keys() != _KEYSET:
        for key in ENVELOPE_KEYS[2:]:  # absent sender keys read as null (Java omits nulls)
            if key not in obj:
                raise FrameError("bad_envelope", f"Missing envelope key '{key}'", obj)
        ignored = sum(1 for k in obj if k not in _KEYSET)
    sa, se = obj.get("sender_actor"), obj.get("sender_endpoint")
    receiver, mtype, message = obj["receiver"], obj["message_type"], obj["message"]
    if sa is not None and not isinstance(sa, str):
        raise FrameError("bad_envelope", "Envelope key 'sender_actor' must be a string or null", obj)
    if se is not None and not isinstance(se, str):
        raise FrameError("bad_envelope",
                         "Envelope key 'sender_endpoint' must be a string or null", obj)
    if not isinstance(receiver, str):
        raise FrameError("bad_envelope", "Envelope key 'receiver' must be a string", obj)
    if not isinstance(mtype, str):
        raise FrameError("bad_envelope", "Envelope key 'message_type' must be a string", obj)
    if not isinstance(message, dict):
        raise FrameError("bad_envelope", "Envelope key 'message' must be an object", obj)
    return Envelope(sa, se, receiver, mtype, message, ignored)


_SURROGATE = re.compile("[\ud800-\udfff]")


def _has_lone_surrogate(value: Any) -> bool:
    # Only asked when the frame holds a \u escape; bounded by the JSON nesting Python parsed.
    if isinstance(value, str):
        return _SURROGATE.search(value) is not None
    if isinstance(value, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_lone_surrogate(v) for v in value)
    return False


# A string token (escapes skipped whole), a bracket, a colon or a comma; a lone quote is an
# unterminated string and ends the scan.
_SCAN_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|[{}\[\]:,]|"', re.S)
_SCAN_LIMIT = 1 << 20  # as the C++ gateway: a bounded scan of the first 1 MiB
_SALVAGED = ("sender_actor", "sender_endpoint", "receiver", "message_type")


def salvage(frame: bytes) -> dict:
    """The top-level string values of the envelope keys of a frame that is being dropped
    anyway, found by a bounded byte scan (no parse), each UTF-8 without escapes: enough to
    address a Reject. The same scan as the C++ gateway's salvage_envelope."""
    data = bytes(frame[:_SCAN_LIMIT])
    found: dict = {}
    start = len(data) - len(data.lstrip(b" \t\r\n"))
    if start >= len(data) or data[start:start + 1] != b"{":
        return found
    depth, expect_key, key = 1, True, None
    for m in _SCAN_TOKEN.finditer(data, start + 1):
        tok = m.group()
        c = tok[:1]
        if c == b'"':
            if len(tok) == 1:
                break  # never closed
            if depth == 1:
                if expect_key:
                    key = tok[1:-1]
                elif key is not None and b"\\" not in key and b"\\" not in tok:
                    name = key.decode("ascii", "replace")
                    if name in _SALVAGED:
                        try:
                            found[name] = tok[1:-1].decode("utf-8")
                        except UnicodeDecodeError:
                            pass
        elif c in (b"{", b"["):
            depth += 1
        elif c in (b"}", b"]"):
            depth -= 1
            if depth == 0:
                break
        elif depth == 1:
            expect_key = c == b","
    return found


def connect_address(endpoint: str) -> str:
    """The address to connect to: bind hosts ``*`` / ``0.0.0.0`` become ``localhost``."""
    for wild in ("tcp://*:", "tcp://0.0.0.0:", "tcp://[::]:"):
        if endpoint.startswith(wild):
            return "tcp://localhost:" + endpoint[len(wild):]
    return endpoint
