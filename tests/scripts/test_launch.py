"""Tests for scripts/launch: pinning, policy, exit status, warnings and usage errors.

Run: /usr/bin/python3 -m pytest tests/scripts -q
Every launched program is a short shell command; nothing on the machine is changed.
"""

import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LAUNCH = os.path.join(ROOT, "scripts", "launch")
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "cpu")
TIMEOUT = 30


def sysfs(name):
    return os.path.join(FIXTURES, name, "sys")


def launch(*args, env=None):
    return subprocess.run([LAUNCH, *args], capture_output=True, text=True, timeout=TIMEOUT,
                          stdin=subprocess.DEVNULL, env=env)


def allowed(cpu):
    return cpu in os.sched_getaffinity(0)


needs_cpu1 = pytest.mark.skipif(not allowed(1), reason="needs cpu 1")


def status_field(text, field):
    m = re.search(rf"^{field}:\s*(\S+)", text, re.M)
    return m.group(1) if m else None


@needs_cpu1
def test_program_runs_pinned_to_the_given_core():
    r = launch("--sysfs", sysfs("isolated"), "--cpus", "1", "--", "cat", "/proc/self/status")
    assert r.returncode == 0, r.stderr
    assert status_field(r.stdout, "Cpus_allowed_list") == "1"
    assert "not isolated" not in r.stderr  # cpu 1 is isolated in that fixture


def test_taskset_sees_the_pinning():
    r = launch("--cpus", "0", "--", "sh", "-c", "taskset -cp $$")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().endswith("current affinity list: 0")


@pytest.mark.parametrize("cmd, code", [(["true"], 0), (["false"], 1),
                                       (["sh", "-c", "exit 7"], 7),
                                       (["sh", "-c", "kill -TERM $$"], 128 + 15)])
def test_exit_status_is_the_programs(cmd, code):
    r = launch("--sysfs", sysfs("isolated"), "--cpus", "0", "--", *cmd)
    got = r.returncode if r.returncode >= 0 else 128 - r.returncode
    assert got == code


def test_arguments_reach_the_program_untouched():
    r = launch("--cpus", "0", "--", "sh", "-c", 'printf "%s|" "$@"', "sh", "-n", "--fifo", "a b")
    assert r.returncode == 0
    assert r.stdout == "-n|--fifo|a b|"


def test_program_without_double_dash_is_accepted():
    r = launch("--cpus", "0", "true")
    assert r.returncode == 0


@needs_cpu1
def test_warns_naming_the_fix_when_the_core_is_not_isolated():
    r = launch("--sysfs", sysfs("not_isolated"), "--cpus", "1", "--", "true")
    assert r.returncode == 0
    assert ("cpu 1 is not isolated: add isolcpus=1 nohz_full=1 rcu_nocbs=1 to the kernel "
            "command line, or run scripts/cpu-isolation apply --cpus 1") in r.stderr


def test_warns_on_this_machine_when_its_cores_are_not_isolated():
    with open("/sys/devices/system/cpu/isolated") as f:
        if f.read().strip():
            pytest.skip("this machine isolates cores")
    r = launch("--cpus", "0", "--", "true")
    assert r.returncode == 0
    assert "cpu 0 is not isolated" in r.stderr


@needs_cpu1
def test_no_warning_on_an_isolated_core():
    r = launch("--sysfs", sysfs("isolated"), "--cpus", "1", "--", "true")
    assert r.returncode == 0 and r.stderr == ""


def _policy_or_skip(flag, prio, name):
    r = launch("--cpus", "0", flag, str(prio), "--", "sh", "-c", "chrt -p $$")
    if r.returncode != 0 and "not permitted" in r.stderr:
        pytest.skip("no permission for real-time policies here")
    assert r.returncode == 0, r.stderr
    assert f"current scheduling policy: {name}" in r.stdout
    assert f"current scheduling priority: {prio}" in r.stdout


def test_fifo_policy_and_priority():
    _policy_or_skip("--fifo", 10, "SCHED_FIFO")


def test_rr_policy_and_priority():
    _policy_or_skip("--rr", 3, "SCHED_RR")


def test_mlock_exports_tern_mlock_and_warns_for_other_programs():
    r = launch("--cpus", "0", "--mlock", "--", "sh", "-c", 'echo "$TERN_MLOCK"; ulimit -l')
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split()
    assert lines[0] == "1"
    assert lines[1] == "unlimited" or "cannot raise the locked-memory limit" in r.stderr
    assert "does not look like a tern program" in r.stderr


@pytest.mark.parametrize("args, needle", [
    (["--cpus", "9"], "cpu 9"),
    (["--cpus", "1-x"], "1-x"),
    (["--cpus", "0", "--fifo", "0"], "0"),
    (["--cpus", "0", "--fifo", "100"], "100"),
    (["--cpus", "0", "--rr", "high"], "high"),
    (["--cpus", "0", "--fifo", "5", "--rr", "5"], "--rr"),
    (["--cpus", "0", "--bogus"], "--bogus"),
    (["--fifo", "5"], "--cpus"),
])
def test_usage_errors_exit_2_naming_the_value(args, needle):
    r = launch("--sysfs", sysfs("isolated"), *args, "--", "true")
    assert r.returncode == 2
    assert needle in r.stderr.splitlines()[0]


def test_missing_program_is_named():
    r = launch("--cpus", "0", "--", "no-such-program-xyz")
    assert r.returncode == 2 and "no-such-program-xyz" in r.stderr
    r = launch("--cpus", "0", "--")
    assert r.returncode == 2 and "PROGRAM" in r.stderr


def test_help_documents_mlock():
    r = launch("--help")
    assert r.returncode == 0
    for word in ("--cpus", "--fifo", "--rr", "--mlock", "--sysfs", "TERN_MLOCK", "ulimit -l",
                 "taskset", "chrt"):
        assert word in r.stdout


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
