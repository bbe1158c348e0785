"""Issue 9, finding 12: numpy values serialize, and declared C++ field limits are checked
at send (and on receipt) with an error naming the type, the field, the value and the
limit. numpy is optional: its tests skip when it is not installed."""

import json

import pytest

import tern
from conftest import Collector, wait_until
from tern import wire


@tern.register_message(fields={
    "i8": "int8", "i32": "int32", "u8": "uint8", "u64": "uint64", "f": "float32",
    "d": "double", "flag": "bool", "sym": "char[16]", "text": "string", "px": "double[3]",
    "lots": "int32[2]"})
class Limited:
    def __init__(self, i8=0, i32=0, u8=0, u64=0, f=0.0, d=0.0, flag=False, sym="",
                 text="", px=(0.0, 0.0, 0.0), lots=(0, 0)):
        self.i8, self.i32, self.u8, self.u64 = i8, i32, u8, u64
        self.f, self.d, self.flag, self.sym, self.text = f, d, flag, sym, text
        self.px, self.lots = px, lots


@tern.register_message
class Free:
    def __init__(self, a=None, b=None, c=None, d=None, e=None):
        self.a, self.b, self.c, self.d, self.e = a, b, c, d, e


def sent(raw_peer, start_manager, msg):
    """Send ``msg`` from a Manager to the raw peer; the payload that arrived."""
    mgr = start_manager(remote=False)
    assert mgr.remote("raw", raw_peer.endpoint).send(msg)
    return raw_peer.recv()["message"]


def check(**fields):
    """The FieldLimitError a remote send of Limited(**fields) raises, or None."""
    try:
        tern.messages.encode_message(None, None, "x", Limited(**fields))
    except tern.FieldLimitError as exc:
        return exc
    return None


# ---- numpy ------------------------------------------------------------------------------

def test_numpy_scalars_and_arrays_serialize(start_manager, raw_peer):
    np = pytest.importorskip("numpy")
    msg = Free(a=np.int64(-5), b=np.float32(0.5), c=np.bool_(True),
               d=np.arange(3, dtype=np.uint8), e=[np.float64(1.25), np.int32(7)])
    assert sent(raw_peer, start_manager, msg) == {"a": -5, "b": 0.5, "c": True,
                                                 "d": [0, 1, 2], "e": [1.25, 7]}


def test_numpy_2d_arrays_and_all_scalar_kinds_encode_as_plain_json():
    np = pytest.importorskip("numpy")
    payload = {"m": np.array([[1.5, 2.0], [3.0, 4.0]], dtype=np.float32)}
    for t in (np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32,
              np.uint64, np.float16, np.float32, np.float64):
        payload[t.__name__] = t(3)
    out = json.loads(wire.encode(None, None, "r", "T", payload))["message"]
    assert out["m"] == [[1.5, 2.0], [3.0, 4.0]]
    assert all(out[t] == 3 for t in payload if t != "m")


def test_numpy_values_json_cannot_carry_are_refused_naming_the_field():
    np = pytest.importorskip("numpy")
    with pytest.raises(ValueError, match=r"cannot send Free: field 'b' = .*nan"):
        tern.messages.encode_message(None, None, "x", Free(b=np.float32("nan")))
    with pytest.raises(TypeError, match=r"cannot send Free: field 'a' = .*complex"):
        tern.messages.encode_message(None, None, "x", Free(a=np.complex64(1)))


def test_numpy_values_pass_field_limits(start_manager, raw_peer):
    np = pytest.importorskip("numpy")
    msg = Limited(i8=np.int8(-128), i32=np.int64(2**31 - 1), u8=np.uint8(255),
                  u64=np.uint64(2**64 - 1), f=np.float32(1.5), d=np.float64(2.5),
                  flag=np.bool_(False), sym=np.str_("AAPL"), px=np.array([1.0, 2.0, 3.0]),
                  lots=np.array([1, 2], dtype=np.int32))
    got = sent(raw_peer, start_manager, msg)
    assert got["u64"] == 2**64 - 1 and got["px"] == [1.0, 2.0, 3.0] and got["lots"] == [1, 2]
    assert check(i32=np.int64(2**31)).value == 2**31
    assert "int32" in str(check(lots=np.array([1, 2**40])))


# ---- field limits -----------------------------------------------------------------------

@pytest.mark.parametrize("fields,reason", [
    ({"i32": 2**31}, "Field 'i32' for Limited is out of range for int32: 2147483648 "
                     "(int32 holds -2147483648..2147483647)"),
    ({"i8": -129}, "Field 'i8' for Limited is out of range for int8: -129 (int8 holds -128..127)"),
    ({"u8": 300}, "Field 'u8' for Limited is out of range for uint8: 300 (uint8 holds 0..255)"),
    ({"u64": -1}, "Field 'u64' for Limited is out of range for uint64: -1"),
    ({"i32": 1.5}, "Field 'i32' for Limited must be int32, got float 1.5"),
    ({"i32": True}, "Field 'i32' for Limited must be int32, got bool True"),
    ({"i32": "7"}, "Field 'i32' for Limited must be int32, got string '7'"),
    ({"f": 1e39}, "Field 'f' for Limited is out of range for float: 1e+39 "
                  "(float holds about +-3.4028235e38)"),
    ({"d": float("inf")}, "Field 'd' for Limited is inf: JSON cannot carry NaN or infinity"),
    ({"flag": 1}, "Field 'flag' for Limited must be bool, got integer 1"),
    ({"sym": "ABCDEFGHIJKLMNOPQ"}, "Field 'sym' for Limited is longer than 16 bytes: "
                                   "'ABCDEFGHIJKLMNOPQ' is 17 bytes in UTF-8 (limit char[16])"),
    ({"sym": "€€€€€€"}, "Field 'sym' for Limited is longer than 16 bytes: '€€€€€€' is 18 "
                        "bytes in UTF-8 (limit char[16])"),
    ({"sym": "A\0B"}, "Field 'sym' for Limited must not contain NUL"),
    ({"sym": 5}, "Field 'sym' for Limited must be string, got integer 5"),
    ({"text": None}, "Field 'text' for Limited must be string, got null None"),
    ({"px": [1.0, 2.0]}, "Field 'px' for Limited must be an array of 3 double, got 2 elements"),
    ({"lots": [1, "2"]}, "Field 'lots' for Limited element 1 must be int32, got string '2'"),
    ({"lots": 5}, "Field 'lots' for Limited must be an array of 2 int32, got integer 5"),
])
def test_field_limits_are_checked_at_send_naming_type_field_value_and_limit(
        start_manager, fields, reason):
    exc = check(**fields)
    assert exc is not None and str(exc).startswith(reason), str(exc)
    assert exc.message_type == "Limited" and exc.field == next(iter(fields))
    # and at a real send, before anything is queued
    mgr = start_manager(remote=False)
    with pytest.raises(tern.FieldLimitError):
        mgr.remote("x", "tcp://127.0.0.1:9").send(Limited(**fields))
    s = mgr.stats()
    assert s["messages_out"] == 0 and s["dropped_total"] == 0  # nothing was queued


def test_values_at_the_limits_pass():
    assert check(i8=-128, i32=-(2**31), u8=255, u64=2**64 - 1, f=3.4028235e38, d=1e308,
                 flag=True, sym="€" * 5 + "A", text="any length " * 50,
                 px=(1, 2.5, -3), lots=[2**31 - 1, -(2**31)]) is None


def test_a_bad_limit_declaration_fails_at_registration():
    with pytest.raises(ValueError, match=r"unknown field limit 'int33'"):
        tern.register_message(fields={"a": "int33"})(type("Bad1", (), {"__init__":
                                                                        lambda self, a: None}))
    with pytest.raises(ValueError, match=r"field limit for 'b', which is not a field"):
        tern.register_message(fields={"b": "int32"})(type("Bad2", (), {"__init__":
                                                                        lambda self, a: None}))
    with pytest.raises(ValueError, match=r"unknown field limit 'char'"):
        tern.register_message(fields={"a": "char"})(type("Bad3", (), {"__init__":
                                                                       lambda self, a: None}))


def test_an_inbound_payload_outside_the_limits_is_rejected_with_the_same_reason(
        start_manager, raw_peer):
    coll = Collector()
    mgr = start_manager(lambda m: m.manage("coll", coll))
    raw_peer.send_env(mgr.advertised_endpoint, "coll", "Limited", {"u8": 256})
    env = raw_peer.recv()
    assert env["message_type"] == "Reject"
    assert env["message"]["reason"].startswith(
        "Field 'u8' for Limited is out of range for uint8: 256")
    raw_peer.send_env(mgr.advertised_endpoint, "coll", "Limited", {"u8": 255, "f": 2})
    msg = coll.wait_for(1)[0][0]
    assert msg.u8 == 255 and msg.f == 2.0 and type(msg.f) is float
    wait_until(lambda: mgr.stats()["dropped"].get("bad_payload") == 1, what="bad_payload")


def test_inbound_limits_follow_the_tolerant_rule():
    # docs/python.md: an integral float fills an int field (then its range is checked), a
    # bare NaN/Infinity fills a scalar float field, as the C++ gateway reads them
    from tern.messages import PayloadError, _spec_for
    spec = _spec_for("Limited")
    msg, ignored = spec.build_counted(json.loads(
        '{"i32": 3.0, "u64": 1e3, "d": NaN, "f": -Infinity, "extra": 1}'))
    assert (msg.i32, msg.u64, ignored) == (3, 1000, 1) and type(msg.i32) is int
    assert msg.d != msg.d and msg.f == float("-inf")
    with pytest.raises(PayloadError, match="out of range for int8: 128"):
        spec.build({"i8": 128.0})
    with pytest.raises(PayloadError, match="must be int32, got float 1.5"):
        spec.build({"i32": 1.5})
