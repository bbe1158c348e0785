"""scripts/bench's shm step: it runs build/bench/shm_pingpong and records its table and JSON.

Tiny counts (--quick), no timing assertions: the step runs, its figures are recorded, and the
summary shows tern's rows and the ratios over their baselines.
"""
import json
import os
import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BUILD = pathlib.Path(os.environ.get("TERN_BUILD", ROOT / "build"))
SHM_PINGPONG = BUILD / "bench" / "shm_pingpong"
BENCH = ROOT / "scripts" / "bench"


def bench(*args, timeout=300):
    return subprocess.run(["/usr/bin/python3", str(BENCH), "--build-dir", str(BUILD), *args],
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                          stdin=subprocess.DEVNULL)


def test_the_shm_step_runs_shm_pingpong_with_its_defaults(tmp_path):
    out = bench("--only", "shm", "--out", str(tmp_path), "--list")
    assert out.returncode == 0, out.stderr
    line = out.stdout.strip().splitlines()
    assert len(line) == 1 and line[0].startswith("shm ")
    argv = line[0].split()[1:]
    assert argv[0] == str(SHM_PINGPONG)
    assert "--json-file" in argv and argv[argv.index("--cpus") + 1] == "0,1"
    for opt in ("--iterations", "--messages", "--rounds"):  # a full run: the harness's defaults
        assert opt not in argv, opt
    quick = bench("--only", "shm", "--out", str(tmp_path), "--list", "--quick").stdout.split()
    assert quick[quick.index("--rounds") + 1] == "1"


@pytest.mark.skipif(not SHM_PINGPONG.exists(), reason="benchmarks not built")
def test_the_shm_step_records_the_tern_rows_and_ratios(tmp_path):
    out = bench("--only", "shm", "--no-build", "--quick", "--plotter", "none", "--out", str(tmp_path))
    res = tmp_path / "latest"
    summary = json.loads((res / "summary.json").read_text())
    (step,) = summary["steps"]
    assert step["name"] == "shm"
    d = step["data"]
    assert d is not None, out.stdout + out.stderr
    # iceoryx is optional and needs a RouDi of its own: another one running fails only that mode
    assert set(d["errors"]) <= {"iceoryx"}, d["errors"]
    assert (out.returncode == 0) == (step["status"] == "ok")
    for k in ("p50_ns", "p99_ns", "p999_ns", "futex_p50_ns", "stream_16_msgs_per_s",
              "stream_256_msgs_per_s", "p50_over_inproc_p50", "p50_over_floor_p50",
              "futex_p50_over_futex_floor_p50", "stream_16_over_inproc_stream_16",
              "stream_256_over_inproc_stream_256"):
        assert d[k] > 0, k
    md = (res / "summary.md").read_text()
    assert "| tern shm: 2 processes, Wake::spin, 16 B |" in md
    assert "| tern shm stream: 2 processes, Wake::spin, 256 B |" in md
    assert "| tern futex p50 / futex floor p50 |" in md and "<= 1.3" in md
    assert md in out.stdout  # printed as well as written
    table = (res / "shm.txt").read_text()  # the harness's own table, as for every step
    assert "tern spin p50 / tern in-process p50" in table
