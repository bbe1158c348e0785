"""The shared table of wire frames (tests/fixtures/wire_frames.json) against the Python
transport, over real sockets. tests/wire_frames_test.cpp runs the same table against the C++
gateway: one tolerant decoding rule for both sides (docs/gateway.md)."""
import json
import math
import os
import threading
from dataclasses import dataclass

import pytest

import tern
from conftest import ROOT, WAIT

TABLE = json.load(open(os.path.join(ROOT, "tests", "fixtures", "wire_frames.json")))
ROWS = [r for r in TABLE["frames"] if r.get("only", "python") == "python"]
INT_KINDS = {"int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"}


@tern.register_message(name="Fill")
@dataclass
class WireFill:
    qty: int
    px: float
    size: float
    id: int
    note: str


class Sink(tern.Actor):
    def __init__(self):
        self.got = []
        self.cond = threading.Condition()

    def _keep(self, msg, sender):
        with self.cond:
            self.got.append((msg, sender))
            self.cond.notify_all()

    def on_fill(self, msg, sender):
        self._keep(msg, sender)

    def on_reject(self, msg, sender):
        self._keep(msg, sender)


def frame_bytes(row, endpoint):
    if "frame_hex" in row:
        data = bytes.fromhex(row["frame_hex"])
    else:
        data = row["frame"].encode("utf-8")
    return data.replace(b"@SENDER", endpoint.encode())


def same_value(got, want, kind):
    if isinstance(want, str) and kind in ("float", "double"):
        return (math.isnan(got) if want == "NaN" else got == float(want))
    if kind in INT_KINDS:
        return type(got) is int and got == want
    return got == want


def test_the_table_holds_frames_for_every_outcome():
    kinds = {next(iter(r["expect"])) for r in TABLE["frames"]}
    assert kinds == {"delivered", "rejected", "dropped"}
    assert TABLE["types"]["Fill"].keys() == WireFill.__dataclass_fields__.keys()


@pytest.mark.parametrize("row", ROWS, ids=[r["name"] for r in ROWS])
def test_wire_frame(start_manager, raw_peer, row):
    sinks = []

    def setup(m):
        sinks.append(Sink())
        m.manage("sink", sinks[-1])

    mgr = start_manager(setup)
    sink = sinks[-1]
    ep = mgr.advertised_endpoint
    before = mgr.stats()
    raw_peer.push(ep, frame_bytes(row, raw_peer.endpoint))
    # A probe after it: its Reject (unknown actor) comes back after anything the frame caused.
    raw_peer.send_env(ep, "probe", "Fill", {}, sender_actor="tester")
    expect = row["expect"]
    first = raw_peer.recv()
    if "rejected" in expect:
        assert first["message_type"] == "Reject" and first["receiver"] == "tester"
        assert expect["rejected"] in first["message"]["reason"]
        first = raw_peer.recv()
    assert first["message"]["rejected_by"] == "probe", f"a Reject nobody expected: {first}"
    after = mgr.stats()
    drops = {k: after["dropped"].get(k, 0) - before["dropped"].get(k, 0)
             for k in after["dropped"]}
    drops = {k: v for k, v in drops.items() if v}
    if "delivered" in expect:
        want = expect["delivered"]
        assert drops == {"unknown_actor": 1}
        assert after["messages_in"] == before["messages_in"] + 1
        assert after["keys_ignored"] == before["keys_ignored"] + want["ignored"]
        with sink.cond:
            assert sink.cond.wait_for(lambda: sink.got, WAIT)
            msg, sender = sink.got[0]
        assert type(msg).__name__ == ("WireFill" if want["type"] == "Fill" else want["type"])
        kinds = TABLE["types"].get(want["type"], {})
        for name, value in want["fields"].items():
            assert same_value(getattr(msg, name), value, kinds.get(name, "string")), name
        if want["sender"] is None:
            assert sender is None
        else:
            assert sender is not None and sender.name == want["sender"]
    else:
        cause = expect.get("cause") or expect["dropped"]
        assert drops == ({"unknown_actor": 2} if cause == "unknown_actor"
                         else {cause: 1, "unknown_actor": 1})
        assert after["messages_in"] == before["messages_in"]
        assert not sink.got
