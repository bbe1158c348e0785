"""Codec unit tests: registration, payload checks, envelope checks. No threads."""

import json
from dataclasses import dataclass

import pytest

import tern
from tern import wire
from tern.messages import _spec_for, handler_names, payload_of
import messages_for_tests  # noqa: F401  (registers Tick, WithDefaults, Loose, Strict)
from messages_for_tests import Ping, Quote


def build(type_name, payload):
    return _spec_for(type_name).build(dict(payload))


def test_register_message_uses_the_class_name_and_returns_the_class():
    assert tern.registered("Ping") is Ping
    assert tern.registered("Quote") is Quote
    assert tern.message_type_name(Ping(1)) == "Ping"
    assert tern.registered("NoSuchType") is None


def test_plain_class_payload_is_its_attributes_and_decodes_back():
    assert payload_of(Ping(7)) == {"count": 7}
    msg = build("Ping", {"count": 7})
    assert type(msg) is Ping and msg.count == 7


def test_dataclass_payload_round_trips():
    q = Quote("ES", 4000.25, 4000.5, 3)
    assert payload_of(q) == {"symbol": "ES", "bid": 4000.25, "ask": 4000.5, "seq": 3}
    assert build("Quote", payload_of(q)) == q


def test_missing_field_names_the_field_and_type():
    with pytest.raises(tern.PayloadError) as e:
        build("Ping", {})
    assert str(e.value) == "Missing field 'count' for Ping"
    with pytest.raises(tern.PayloadError) as e:
        build("Tick", {"sender_id": 1})
    assert str(e.value) == "Missing field 'seq' for Tick"


def test_extra_fields_are_ignored_and_counted():
    spec = _spec_for("Ping")
    msg, ignored = spec.build_counted({"count": 1, "x": 2, "y": None})
    assert msg.count == 1 and ignored == 2
    assert build("Ping", {"count": 1, "x": 2}).count == 1


def test_integral_float_fills_an_int_field_and_a_fractional_one_is_refused():
    assert build("Ping", {"count": 3.0}).count == 3
    assert type(build("Ping", {"count": -1e3}).count) is int
    for bad in (1.5, float("nan"), float("inf")):
        with pytest.raises(tern.PayloadError) as e:
            build("Ping", {"count": bad})
        assert str(e.value) == "Field 'count' for Ping must be int, got float"


def test_reject_takes_camel_case_keys():
    r = build("Reject", {"messageType": "Ping", "reason": "r", "rejectedBy": "x"})
    assert (r.message_type, r.reason, r.rejected_by) == ("Ping", "r", "x")
    with pytest.raises(tern.PayloadError) as e:
        build("Reject", {"messageType": "Ping", "message_type": "P", "reason": "r",
                         "rejected_by": "x"})
    assert str(e.value) == "Duplicate field 'message_type' for Reject"


def test_mistyped_field_is_named():
    with pytest.raises(tern.PayloadError) as e:
        build("Ping", {"count": "one"})
    assert str(e.value) == "Field 'count' for Ping must be int, got str"
    with pytest.raises(tern.PayloadError) as e:
        build("Ping", {"count": True})
    assert str(e.value) == "Field 'count' for Ping must be int, got bool"
    with pytest.raises(tern.PayloadError) as e:
        build("Quote", {"symbol": "ES", "bid": None, "ask": 1.0, "seq": 1})
    assert str(e.value) == "Field 'bid' for Quote must be float, got null"


def test_int_is_accepted_for_a_float_field_and_converted():
    q = build("Quote", {"symbol": "ES", "bid": 4000, "ask": 4001, "seq": 1})
    assert q.bid == 4000.0 and type(q.bid) is float


def test_defaults_make_fields_optional():
    m = build("WithDefaults", {"a": 1})
    assert (m.a, m.b, m.c) == (1, "x", [])


def test_var_keyword_init_accepts_extra_fields():
    m = build("Loose", {"x": 1, "y": 2})
    assert m.x == 1 and m.rest == {"y": 2}


def test_constructor_errors_become_payload_errors():
    with pytest.raises(tern.PayloadError) as e:
        build("Strict", {"value": -1})
    assert str(e.value) == "Invalid payload for Strict: value must be >= 0"


def test_reject_is_registered_with_its_three_fields():
    r = build("Reject", {"message_type": "Ping", "reason": "r", "rejected_by": "pong"})
    assert r == tern.Reject("Ping", "r", "pong")
    assert payload_of(r) == {"message_type": "Ping", "reason": "r", "rejected_by": "pong"}


def test_register_message_with_explicit_name_and_reregistration():
    @tern.register_message(name="RenamedThing")
    @dataclass
    class Thing:
        v: int

    assert tern.registered("RenamedThing") is Thing
    assert tern.message_type_name(Thing(1)) == "RenamedThing"

    class Sub(Thing):  # a subclass does not inherit the wire name
        pass

    assert tern.message_type_name(Sub(1)) == "Sub"


def test_handler_names():
    assert handler_names("Ping") == ("on_ping", "on_Ping")
    assert handler_names("PriceUpdate") == ("on_priceupdate", "on_PriceUpdate", "on_price_update")
    assert handler_names("Start") == ("on_start", "on_Start")


def test_encode_has_exactly_the_five_keys_in_the_python_peer_order():
    data = wire.encode("ping", "tcp://localhost:5002", "pong", "Ping", {"count": 1})
    assert data == (b'{"sender_actor": "ping", "sender_endpoint": "tcp://localhost:5002", '
                    b'"receiver": "pong", "message_type": "Ping", "message": {"count": 1}}')
    assert list(json.loads(data)) == list(wire.ENVELOPE_KEYS)


def test_encode_refuses_nan_and_unserialisable_values():
    with pytest.raises(ValueError):
        wire.encode(None, None, "x", "Quote", {"bid": float("nan")})
    with pytest.raises(TypeError):
        wire.encode(None, None, "x", "Thing", {"v": object()})


def test_decode_accepts_both_peers_observed_envelopes():
    cpp = (b'{"message":{"count":1},"message_type":"Ping","receiver":"pong",'
           b'"sender_actor":"ping","sender_endpoint":"tcp://localhost:5002"}')
    py = (b'{"sender_actor": "ping", "sender_endpoint": "tcp://localhost:5002", '
          b'"receiver": "pong", "message_type": "Ping", "message": {"count": 1}}')
    for frame in (cpp, py):
        env = wire.decode_frame(frame)
        assert (env.sender_actor, env.sender_endpoint, env.receiver, env.message_type,
                env.message) == ("ping", "tcp://localhost:5002", "pong", "Ping", {"count": 1})
        assert env.replyable
    reject = (b'{"message":{"message_type":"Bogus","reason":"Unknown message type: Bogus",'
              b'"rejected_by":"pong"},"message_type":"Reject","receiver":"ping",'
              b'"sender_actor":null,"sender_endpoint":null}')
    env = wire.decode_frame(reject)
    assert not env.replyable and env.message_type == "Reject"


GOOD = {"sender_actor": "a", "sender_endpoint": "tcp://localhost:1", "receiver": "r",
        "message_type": "Ping", "message": {"count": 1}}


def _with(**changes):
    d = dict(GOOD)
    for k, v in changes.items():
        if v is KeyError:
            del d[k]
        else:
            d[k] = v
    return json.dumps(d).encode()


@pytest.mark.parametrize("frame,cause,reason", [
    (b"", "empty", "Empty frame"),
    (b"\xff\xfe{}", "invalid_utf8", "Frame is not valid UTF-8"),
    (b"{not json", "bad_json", None),
    (b'{"a": NaN}', "bad_envelope", "Missing envelope key 'receiver'"),
    (b'{"a": nan}', "bad_json", None),
    (b"[" * 100000, "bad_json", None),
    (b"[1, 2]", "not_object", "Envelope must be a JSON object"),
    (b'"str"', "not_object", "Envelope must be a JSON object"),
    (_with(receiver=KeyError), "bad_envelope", "Missing envelope key 'receiver'"),
    (_with(message=KeyError), "bad_envelope", "Missing envelope key 'message'"),
    (_with(message=[1]), "bad_envelope", "Envelope key 'message' must be an object"),
    (_with(receiver=3), "bad_envelope", "Envelope key 'receiver' must be a string"),
    (_with(message_type=None), "bad_envelope", "Envelope key 'message_type' must be a string"),
    (_with(sender_actor=1), "bad_envelope",
     "Envelope key 'sender_actor' must be a string or null"),
    (_with(sender_endpoint={}), "bad_envelope",
     "Envelope key 'sender_endpoint' must be a string or null"),
])
def test_decode_frame_rejects_bad_frames_with_a_cause(frame, cause, reason):
    with pytest.raises(wire.FrameError) as e:
        wire.decode_frame(frame)
    assert e.value.cause == cause
    if reason is not None:
        assert e.value.reason == reason


def test_frame_error_salvages_sender_for_a_reject():
    with pytest.raises(wire.FrameError) as e:
        wire.decode_frame(_with(receiver=KeyError))
    err = e.value
    assert err.replyable and err.sender_actor == "a" and err.message_type == "Ping"
    assert err.receiver == ""


def test_missing_sender_keys_read_as_null_and_unknown_keys_are_counted():
    env = wire.decode_frame(_with(sender_actor=KeyError, sender_endpoint=KeyError, x=1, y=[]))
    assert env.sender_actor is None and env.sender_endpoint is None and not env.replyable
    assert env.ignored == 2


def test_salvage_finds_the_sender_of_malformed_json_by_byte_scan():
    with pytest.raises(wire.FrameError) as e:
        wire.decode_frame(b'{"sender_actor":"a","sender_endpoint":"tcp://h:1","receiver":"r",'
                          b'"message_type":"T","message":{"x":[1 2]}}')
    assert e.value.cause == "bad_json" and e.value.replyable
    assert (e.value.sender_actor, e.value.receiver, e.value.message_type) == ("a", "r", "T")
    # escaped values and nested keys are not taken; an unterminated string ends the scan
    assert wire.salvage(b'{"sender_actor":"a\\"b","x":{"receiver":"r"}}') == {}
    assert wire.salvage(b'{"sender_actor":"a","receiver":"r') == {"sender_actor": "a"}
    assert wire.salvage(b'[{"sender_actor":"a"}]') == {}


def test_connect_address_rewrites_bind_hosts():
    assert tern.connect_address("tcp://*:5001") == "tcp://localhost:5001"
    assert tern.connect_address("tcp://0.0.0.0:5001") == "tcp://localhost:5001"
    assert tern.connect_address("tcp://10.1.2.3:5001") == "tcp://10.1.2.3:5001"
    assert tern.connect_address("ipc:///tmp/x") == "ipc:///tmp/x"
