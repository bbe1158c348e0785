"""scripts/demo's futex runs: the default spin-then-park policy against std::atomic wait/notify,
and parking on every hop as a labelled extra (build/bench/pingpong --spin default | 0)."""
import os
import pathlib
import re
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BUILD = pathlib.Path(os.environ.get("TERN_BUILD", ROOT / "build"))
PINGPONG = BUILD / "bench" / "pingpong"

pytestmark = pytest.mark.skipif(not PINGPONG.exists(), reason="benchmarks not built")


def run(*args):
    out = subprocess.run([str(PINGPONG), "--wake", "futex", "--iterations", "300", "--warmup", "30",
                          *args], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_spin_default_uses_the_librarys_spin_before_parking():
    out = run("--spin", "default", "--baselines", "floor")
    spin = int(re.search(r"spin=(\d+)", out).group(1))
    assert spin > 0, out
    assert "parks on every hop" not in out


def test_parking_every_hop_is_labelled_as_such():
    out = run("--spin", "0")
    assert "spin=0" in out
    assert "parks on every hop" in out and "ratio p50 tern/bare futex syscalls" in out


def test_demo_runs_the_default_policy_first_and_parking_as_an_extra():
    demo = (ROOT / "scripts" / "demo").read_text()
    default_at = demo.index("--spin default")
    assert default_at < demo.index("--spin 0")
