"""build/bench/shm_pingpong: the cross-process baselines of the shared-memory transport.

Tiny counts, no timing assertions: every key is present and positive, the files it makes are
gone afterwards, and a child that hangs or dies is killed and reported, never left running.
"""
import json
import os
import pathlib
import signal
import subprocess
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BUILD = pathlib.Path(os.environ.get("TERN_BUILD", ROOT / "build"))
SHM_PINGPONG = BUILD / "bench" / "shm_pingpong"

pytestmark = pytest.mark.skipif(not SHM_PINGPONG.exists(), reason="benchmarks not built")

SMALL = ["--iterations", "2000", "--rounds", "1", "--messages", "20000"]
# Every mode but iceoryx (optional, tested on its own below).
BASE_MODES = ("tern,tern-futex,tern-stream,floor,futex-floor,inproc,inproc-stream,floor-stream,"
              "zmq-ipc,zmq-tcp")
# "" is tern's own round trip (p50_ns ...), "futex_" tern-futex's.
LAT_PREFIXES = ["", "futex_", "floor_", "futex_floor_", "inproc_", "zmq_ipc_", "zmq_tcp_"]
RATE_KEYS = [f"{k}_{size}_msgs_per_s" for k in
             ["stream", "floor_stream", "inproc_stream", "zmq_ipc_push", "zmq_tcp_push"]
             for size in (16, 256)]
RATIO_KEYS = ["p50_over_inproc_p50", "p50_over_floor_p50", "p999_over_floor_p999",
              "futex_p50_over_futex_floor_p50", "stream_16_over_inproc_stream_16",
              "stream_256_over_inproc_stream_256"]


def gateway_built():
    if not SHM_PINGPONG.exists():
        return False
    out = subprocess.run([str(SHM_PINGPONG), "--only", "tern-gateway", "--iterations", "0"],
                         capture_output=True, text=True, timeout=30)
    return "is not built" not in out.stderr


# tern-gateway: only when the gateway (libzmq, simdjson) is built
if gateway_built():
    BASE_MODES += ",tern-gateway"
    LAT_PREFIXES.append("gateway_")
    RATIO_KEYS.append("gateway_p50_over_p50")


def run(tmp_path, *args, timeout=120):
    d = tmp_path / "made"
    d.mkdir(exist_ok=True)
    out = subprocess.run([str(SHM_PINGPONG), "--shm-dir", str(d), "--ipc-dir", str(d), *args],
                         capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    return out, d


def gone(pid, within=5.0):
    """True once `pid` no longer exists (or is a zombie nobody reaped yet), within `within` s."""
    end = time.monotonic() + within
    while time.monotonic() < end:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


def test_every_baseline_key_is_present_and_positive(tmp_path):
    out, made = run(tmp_path, *SMALL, "--only", BASE_MODES, "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    for p in LAT_PREFIXES:
        for q in ("p50", "p99", "p999"):
            assert doc[f"{p}{q}_ns"] > 0, (p, q)
        assert doc[f"{p}p50_ns"] <= doc[f"{p}p99_ns"] <= doc[f"{p}p999_ns"], p
    for p in ["", "futex_", "floor_", "futex_floor_", "inproc_"]:
        assert doc[f"{p}count"] == 2000, p
    for p in ["zmq_ipc_", "zmq_tcp_"] + (["gateway_"] if "gateway_" in LAT_PREFIXES else []):
        assert doc[f"{p}count"] == 2000, p  # --zmq-iterations: min(iterations, 10000)
    for k in RATE_KEYS:
        assert doc[k] > 0, k
    for k in RATIO_KEYS:
        assert doc[k] > 0, k
    # the same figures as lists with their table labels (what scripts/bench prints)
    rows = {r["key"]: r for r in doc["rows"]}
    assert rows["tern"]["p50_ns"] == doc["p50_ns"] and rows["tern"]["mode"] == "tern"
    assert rows["futex"]["mode"] == "tern-futex" and "parks every hop" in rows["futex"]["label"]
    assert {r["key"] for r in doc["rates"]} == set(RATE_KEYS)
    ratios = {r["key"]: r for r in doc["ratios"]}
    assert set(ratios) == set(RATIO_KEYS)
    assert ratios["p50_over_inproc_p50"]["value"] == pytest.approx(
        doc["p50_ns"] / doc["inproc_p50_ns"], rel=1e-2)
    assert ratios["p50_over_inproc_p50"]["target"] == "<= 1.3"
    assert doc["errors"] == {}
    assert doc["report"] == "median round" and doc["rounds"] == 1
    assert list(made.iterdir()) == [], "shared-memory files or ipc sockets left behind"


def test_the_table_names_every_row_and_only_runs_what_was_asked(tmp_path):
    out, _ = run(tmp_path, *SMALL, "--only", "floor,floor-stream")
    assert out.returncode == 0, out.stderr
    assert "floor: bare cache lines, 2 processes, spin" in out.stdout
    assert "floor stream: bare SPSC ring, 2 processes, 256 B" in out.stdout
    assert "modes=floor,floor-stream " in out.stdout
    assert "libzmq" not in out.stdout and "futex floor" not in out.stdout


def test_the_tern_rows_and_ratios_are_in_the_table_and_the_json_file(tmp_path):
    jf = tmp_path / "out.json"
    out, made = run(tmp_path, *SMALL, "--only", "tern,tern-stream,inproc,inproc-stream",
                    "--json-file", str(jf))
    assert out.returncode == 0, out.stderr
    assert "tern shm: 2 processes, Wake::spin, 16 B" in out.stdout
    assert "tern shm stream: 2 processes, Wake::spin, 256 B" in out.stdout
    assert "tern spin p50 / tern in-process p50" in out.stdout
    assert "tern stream 16 B / in-process stream 16 B" in out.stdout
    assert "floor p50" not in out.stdout  # no floor run: no ratio over it
    doc = json.loads(jf.read_text())
    assert doc["p50_ns"] > 0 and doc["stream_16_msgs_per_s"] > 0
    assert doc["p50_over_inproc_p50"] > 0 and "p50_over_floor_p50" not in doc
    assert list(made.iterdir()) == [], "a tern segment or its directory was left behind"


def test_a_futex_spin_makes_tern_futex_spin_first_too(tmp_path):
    out, _ = run(tmp_path, "--iterations", "500", "--rounds", "1", "--only", "tern-futex",
                 "--futex-spin", "1000", "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["futex_count"] == 500 and doc["futex_spin"] == 1000
    assert "spin then park" in doc["rows"][0]["label"]


def test_each_round_is_reported_and_the_median_one_is_chosen(tmp_path):
    out, _ = run(tmp_path, "--iterations", "500", "--rounds", "3", "--only", "floor", "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    rounds = doc["floor_rounds_p50_ns"]
    assert len(rounds) == 3
    assert doc["floor_p50_ns"] == sorted(rounds)[1]


def test_an_unknown_mode_is_a_usage_error_naming_it(tmp_path):
    out, _ = run(tmp_path, "--only", "floor,nosuch")
    assert out.returncode == 2
    assert "unknown mode 'nosuch'" in out.stderr and "futex-floor" in out.stderr


@pytest.mark.parametrize("only", ["tern", "tern-stream", "floor", "futex-floor", "floor-stream",
                                  "zmq-ipc"])
def test_a_hanging_child_is_killed_at_the_timeout_and_reported(tmp_path, only):
    out, made = run(tmp_path, "--only", only, "--inject", "hang", "--timeout", "1", "--json",
                    timeout=60)
    assert out.returncode == 1, out.stderr
    err = json.loads(out.stdout)["errors"][only]
    assert "did not finish within 1 s" in err and "killed" in err, err
    pid = int(err.split("child ")[1].split()[0])
    assert gone(pid), f"child {pid} still running"
    assert list(made.iterdir()) == []


def test_a_child_that_dies_fails_its_mode_and_the_others_still_run(tmp_path):
    out, made = run(tmp_path, *SMALL, "--only", "zmq-tcp,inproc", "--inject", "crash", "--json")
    assert out.returncode == 1
    doc = json.loads(out.stdout)
    assert "exited with status 3" in doc["errors"]["zmq-tcp"]
    assert "zmq_tcp_p50_ns" not in doc
    assert doc["inproc_p50_ns"] > 0  # in-process: no child to inject into
    assert list(made.iterdir()) == []


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
@pytest.mark.parametrize("only", ["floor", "tern"])
def test_no_child_outlives_the_benchmark(tmp_path, sig, only):
    made = tmp_path / "made"
    made.mkdir()
    p = subprocess.Popen([str(SHM_PINGPONG), "--only", only, "--inject", "hang", "--timeout",
                          "60", "--shm-dir", str(made), "--json"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        children = []
        end = time.monotonic() + 20
        while not children and time.monotonic() < end:
            time.sleep(0.05)
            with open(f"/proc/{p.pid}/task/{p.pid}/children") as f:
                children = [int(x) for x in f.read().split()]
        assert children, "no child was forked"
        assert list(made.iterdir()), "the shared-memory file should exist while the child runs"
        p.send_signal(sig)
        p.wait(timeout=20)
        for c in children:
            assert gone(c), f"child {c} outlived the benchmark"
        if sig == signal.SIGTERM:  # SIGKILL cannot be caught: the file stays (documented)
            assert list(made.iterdir()) == []
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(timeout=20)


def iceoryx_built():
    out = subprocess.run([str(SHM_PINGPONG), "--only", "iceoryx", "--iterations", "0"],
                         capture_output=True, text=True, timeout=30)
    return "is not built" not in out.stderr


ROUDI_FILES = ["/tmp/roudi", "/tmp/roudi.lock", "/tmp/iox-unique-roudi.lock",
               "/dev/shm/iceoryx_mgmt"]

needs_iceoryx = pytest.mark.skipif(
    not SHM_PINGPONG.exists() or not iceoryx_built() or os.path.exists("/tmp/roudi"),
    reason="iceoryx mode not built (iceoryx_baseline), or a RouDi is already running")


def iceoryx_leftovers(pid):
    own = [f"/tmp/tern-shmbench-{pid}-{r}{s}" for r in ("echo", "ping") for s in ("", ".lock")]
    return [f for f in ROUDI_FILES + own if os.path.exists(f)]


@needs_iceoryx
def test_iceoryx_round_trip_starts_and_stops_its_roudi(tmp_path):
    d = tmp_path / "made"
    d.mkdir()
    p = subprocess.Popen([str(SHM_PINGPONG), "--only", "iceoryx", *SMALL, "--ipc-dir", str(d),
                          "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    doc = json.loads(out)
    for q in ("p50", "p99", "p999"):
        assert doc[f"iceoryx_{q}_ns"] > 0, q
    assert doc["iceoryx_count"] == 2000
    assert iceoryx_leftovers(p.pid) == [] and list(d.iterdir()) == []


@needs_iceoryx
def test_iceoryx_hanging_child_is_killed_and_roudi_stopped(tmp_path):
    d = tmp_path / "made"
    d.mkdir()
    p = subprocess.Popen([str(SHM_PINGPONG), "--only", "iceoryx", "--inject", "hang", "--timeout",
                          "2", "--ipc-dir", str(d), "--json"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 1
    assert "did not finish within 2 s" in json.loads(out)["errors"]["iceoryx"]
    assert iceoryx_leftovers(p.pid) == [] and list(d.iterdir()) == []


@pytest.mark.parametrize("only", ["tern", "tern-futex", "tern-stream", "floor", "futex-floor",
                                  "floor-stream", "zmq-ipc"]
                         + (["tern-gateway"] if gateway_built() else []))
def test_a_child_killed_mid_run_fails_its_mode_at_once(tmp_path, only):
    made = tmp_path / "made"
    made.mkdir()
    p = subprocess.Popen([str(SHM_PINGPONG), "--only", only, "--iterations", "100000000",
                          "--zmq-iterations", "100000000", "--messages", "10000000000",
                          "--rounds", "1", "--timeout", "600", "--shm-dir", str(made),
                          "--ipc-dir", str(made), "--json"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        children = []
        end = time.monotonic() + 20
        while not children and time.monotonic() < end:
            time.sleep(0.05)
            with open(f"/proc/{p.pid}/task/{p.pid}/children") as f:
                children = [int(x) for x in f.read().split()]
        assert children, "no child was forked"
        time.sleep(0.5)  # into the measured loop
        os.kill(children[0], signal.SIGKILL)
        out, err = p.communicate(timeout=20)  # far below --timeout: the death is noticed
        assert p.returncode == 1, err
        assert "killed by signal 9" in json.loads(out)["errors"][only]
        assert list(made.iterdir()) == []
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(timeout=20)
