"""Tests for scripts/cpu-isolation against the fixture trees in tests/fixtures/cpu/.

Run: /usr/bin/python3 -m pytest tests/scripts -q
apply/restore only ever touch copies of the fixtures under tmp_path; against the real machine
only `check` runs (it reads).
"""

import json
import os
import re
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "scripts", "cpu-isolation")
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "cpu")
TIMEOUT = 60
STATUSES = {"OK", "WARN", "FAIL"}


def roots(base):
    return ["--sysfs", os.path.join(base, "sys"), "--procfs", os.path.join(base, "proc")]


def run(*args):
    return subprocess.run([SCRIPT, *args], capture_output=True, text=True, timeout=TIMEOUT,
                          stdin=subprocess.DEVNULL)


def check_json(base, *extra):
    r = run("check", "--json", *roots(base), *extra)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    return json.loads(r.stdout)


def items_by_name(report):
    return {i["name"]: i for i in report["items"]}


def fixture(name):
    return os.path.join(FIXTURES, name)


def copy_fixture(name, tmp_path):
    dst = tmp_path / name
    shutil.copytree(fixture(name), dst, symlinks=True)
    return str(dst)


def snapshot(base):
    """Every regular file under base -> its bytes."""
    out = {}
    for dirpath, _, files in os.walk(base):
        for f in files:
            p = os.path.join(dirpath, f)
            if os.path.isfile(p) and not os.path.islink(p):
                with open(p, "rb") as fh:
                    out[os.path.relpath(p, base)] = fh.read()
    return out


def thp_mode(data):
    text = data.decode()
    m = re.search(r"\[(\w+)\]", text)
    return m.group(1) if m else text.strip()


THP = os.path.join("sys", "kernel", "mm", "transparent_hugepage", "enabled")


def assert_same_values(before, after):
    """Byte-equal, except THP which the kernel shows as 'always [madvise] never'."""
    assert before.keys() == after.keys()
    for k in before:
        if k == THP:
            assert thp_mode(before[k]) == thp_mode(after[k])
        else:
            assert before[k] == after[k], k


def read(base, rel):
    with open(os.path.join(base, rel)) as f:
        return f.read().strip()


# --- check on each fixture ------------------------------------------------------------------


def test_well_isolated_machine_is_all_ok():
    rep = check_json(fixture("isolated"))
    bad = [i for i in rep["items"] if i["status"] != "OK"]
    assert bad == []
    assert rep["isolated"] == [1, 3]
    assert rep["cpus"] == 4
    assert rep["target"] == [1, 3] and rep["target_source"] == "kernel"
    assert rep["summary"] == {"ok": len(rep["items"]), "warn": 0, "fail": 0}
    names = set(items_by_name(rep))
    for n in ("cmdline isolcpus", "cmdline nohz_full", "cmdline rcu_nocbs", "cmdline irqaffinity",
              "isolated set", "nohz_full set", "SMT siblings", "IRQ affinity", "cpufreq governor",
              "cpufreq boost", "idle states", "transparent huge pages", "RT throttling", "swap",
              "NUMA node", "tasks on isolated cores"):
        assert n in names


def test_well_isolated_text_report_exits_zero():
    r = run("check", *roots(fixture("isolated")))
    assert r.returncode == 0
    assert re.search(r"^OK\s+isolated set\s+cpu 1,3 isolated", r.stdout, re.M)
    assert "summary: 17 OK, 0 WARN, 0 FAIL" in r.stdout
    assert "fix:" not in r.stdout


def test_per_cpu_kernel_threads_are_not_reported():
    it = items_by_name(check_json(fixture("isolated")))["tasks on isolated cores"]
    assert it["status"] == "OK"
    for name in ("ksoftirqd", "migration", "kworker"):
        assert name not in it["detail"]


def test_not_isolated_machine_fails_with_the_fix():
    rep = check_json(fixture("not_isolated"), "--cpus", "1")
    it = items_by_name(rep)
    assert rep["target"] == [1] and rep["target_source"] == "--cpus"
    assert rep["cpus"] == 3  # cpu 3 is offline
    assert it["cmdline isolcpus"]["status"] == "FAIL"
    assert "isolcpus=managed_irq,domain,1" in it["cmdline isolcpus"]["fix"]
    assert it["cmdline nohz_full"]["status"] == "FAIL"
    assert "nohz_full=1" in it["cmdline nohz_full"]["fix"]
    assert it["cmdline rcu_nocbs"]["status"] == "FAIL"
    assert "rcu_nocbs=1" in it["cmdline rcu_nocbs"]["fix"]
    assert it["cmdline irqaffinity"]["status"] == "WARN"
    assert "irqaffinity=0,2" in it["cmdline irqaffinity"]["fix"]
    assert it["isolated set"]["status"] == "FAIL"
    assert it["nohz_full set"]["status"] == "FAIL"
    irq = it["IRQ affinity"]
    assert irq["status"] == "FAIL"
    assert "24 (eth0-rx-0)" in irq["detail"] and "25 (eth0-tx-0)" in irq["detail"]
    assert "apply --cpus 1" in irq["fix"] and "IRQBALANCE_BANNED_CPULIST=1" in irq["fix"]
    assert it["IRQ default affinity"]["status"] == "WARN"
    assert it["transparent huge pages"]["status"] == "WARN"
    assert "transparent_hugepage=madvise" in it["transparent huge pages"]["fix"]
    assert it["RT throttling"]["status"] == "WARN"
    assert "sched_rt_runtime_us=-1" in it["RT throttling"]["fix"]
    assert it["swap"]["status"] == "WARN" and "/dev/sda2" in it["swap"]["detail"]
    assert "swapoff" in it["swap"]["fix"]
    for name in ("cpufreq governor", "cpufreq boost"):
        assert it[name]["status"] == "WARN"
        assert "not visible (virtual machine?)" in it[name]["detail"]
    tasks = it["tasks on isolated cores"]
    assert tasks["status"] == "WARN"
    assert "pid 977 (postgres)" in tasks["detail"]
    assert "ksoftirqd" not in tasks["detail"]
    assert "taskset -apc 0,2 977" in tasks["fix"]
    # cpu 3 is the sibling of 1 but offline: no SMT complaint.
    assert it["SMT siblings"]["status"] == "OK"


def test_not_isolated_text_report_puts_each_fix_under_its_item():
    r = run("check", "--cpus", "1", *roots(fixture("not_isolated")))
    assert r.returncode == 0
    lines = r.stdout.splitlines()
    fails = [i for i, line in enumerate(lines) if line.startswith("FAIL")]
    assert len(fails) == 6
    for i in fails:
        assert lines[i + 1].lstrip().startswith("fix: ")
    assert "summary: 2 OK, 9 WARN, 6 FAIL" in r.stdout


def test_without_cpus_and_no_isolation_a_candidate_set_is_checked():
    rep = check_json(fixture("not_isolated"))
    assert rep["isolated"] == []
    assert rep["target_source"] == "candidate"
    assert rep["target"] == [1]  # cpu 0's core (0,2) stays for housekeeping; 3 is offline
    assert items_by_name(rep)["isolated set"]["status"] == "FAIL"


def test_half_configured_machine_gives_the_right_mix():
    rep = check_json(fixture("half"))
    it = items_by_name(rep)
    expected = {
        "cmdline isolcpus": "WARN",       # no managed_irq flag
        "cmdline nohz_full": "OK",
        "cmdline rcu_nocbs": "WARN",      # implied by nohz_full, not explicit
        "cmdline irqaffinity": "WARN",
        "isolated set": "OK",
        "nohz_full set": "WARN",          # malformed file
        "SMT siblings": "WARN",           # sibling 3 not isolated
        "IRQ affinity": "FAIL",           # irq 24 on 0-3
        "IRQ default affinity": "WARN",
        "cpufreq governor": "WARN",       # powersave
        "cpufreq boost": "WARN",          # turbo on
        "idle states": "WARN",            # not visible
        "transparent huge pages": "OK",
        "RT throttling": "OK",
        "swap": "OK",
        "NUMA node": "OK",
        "tasks on isolated cores": "WARN",
    }
    assert {k: v["status"] for k, v in it.items()} == expected
    assert "managed_irq" in it["cmdline isolcpus"]["detail"]
    assert "'1-x'" in it["nohz_full set"]["detail"]
    assert "cpu 3 is an SMT sibling of cpu 1" in it["SMT siblings"]["detail"]
    assert "--cpus 1,3" in it["SMT siblings"]["fix"]
    assert "24 (eth0-rx-0) -> 0-3" in it["IRQ affinity"]["detail"]
    assert "irq/26/smp_affinity_list: 'garbage'" in it["IRQ affinity"]["detail"]
    assert "cpu 1: powersave" in it["cpufreq governor"]["detail"]
    assert "no_turbo" in it["cpufreq boost"]["fix"]
    tasks = it["tasks on isolated cores"]["detail"]
    assert "pid 400 (trader) thread 401 (md-feed) on cpu 1" in tasks
    assert "300/task/300/stat" in tasks  # the truncated stat is reported, not fatal
    assert rep["summary"] == {"ok": 6, "warn": 10, "fail": 1}


def test_json_schema():
    for name in ("isolated", "not_isolated", "half"):
        rep = check_json(fixture(name))
        assert set(rep) >= {"items", "summary", "isolated", "cpus"}
        assert isinstance(rep["cpus"], int)
        assert all(isinstance(c, int) for c in rep["isolated"])
        assert set(rep["summary"]) == {"ok", "warn", "fail"}
        counts = {"ok": 0, "warn": 0, "fail": 0}
        for item in rep["items"]:
            assert set(item) == {"name", "status", "detail", "fix"}
            assert all(isinstance(item[k], str) for k in item)
            assert item["status"] in STATUSES
            assert item["detail"]
            if item["status"] != "OK":
                assert item["fix"], item
            counts[item["status"].lower()] += 1
        assert counts == rep["summary"]
        assert len({i["name"] for i in rep["items"]}) == len(rep["items"])


def test_malformed_files_everywhere_never_crash(tmp_path):
    base = copy_fixture("half", tmp_path)
    garbage = {
        "proc/cmdline": "isolcpus=managed_irq,domain,1-x nohz_full=,, irqaffinity=z\n",
        "sys/devices/system/cpu/online": "zero\n",
        "sys/devices/system/cpu/isolated": "\x00\x01\n",
        "sys/devices/system/cpu/cpu1/topology/thread_siblings_list": "1,?\n",
        "sys/devices/system/cpu/intel_pstate/no_turbo": "maybe\n",
        "sys/kernel/mm/transparent_hugepage/enabled": "sometimes\n",
        "proc/sys/kernel/sched_rt_runtime_us": "lots\n",
        "proc/swaps": "",
        "proc/irq/default_smp_affinity": "xyz\n",
        "proc/irq/24/smp_affinity_list": "",
        "proc/400/task/401/stat": "401 (md-feed\n",
        "proc/interrupts": "nonsense\n",
    }
    for rel, text in garbage.items():
        with open(os.path.join(base, rel), "w") as f:
            f.write(text)
    os.unlink(os.path.join(base, "sys/devices/system/cpu/cpu1/cpufreq/scaling_governor"))
    os.mkdir(os.path.join(base, "sys/devices/system/cpu/cpu1/cpufreq/scaling_governor"))
    for args in ([], ["--cpus", "1"]):
        rep = check_json(base, *args)
        assert not [i for i in rep["items"] if i["detail"].startswith("check failed")]
        text = json.dumps(rep)
        for needle in ("'zero'" if not args else "cmdline", "'sometimes'", "'lots'", "'xyz'",
                       "md-feed"):
            assert needle in text, needle
    r = run("check", *roots(base))
    assert r.returncode == 0 and "Traceback" not in r.stderr


def test_empty_trees_report_what_could_not_be_read(tmp_path):
    (tmp_path / "sys").mkdir()
    (tmp_path / "proc").mkdir()
    rep = check_json(str(tmp_path))
    assert rep["cpus"] == 0
    text = json.dumps(rep)
    assert "does not exist" in text
    assert not [i for i in rep["items"] if i["detail"].startswith("check failed")]


# --- usage errors ---------------------------------------------------------------------------


@pytest.mark.parametrize("args, needle", [
    (["check", "--cpus", "1-x"], "1-x"),
    (["check", "--cpus", "7"], "cpu 7"),
    (["check", "--cpus", "3-1"], "3-1"),
    (["check", "--cpus", ""], "empty"),
    (["apply", "--cpus", "1,x", "--dry-run"], "1,x"),
    (["apply", "--cpus", "3", "--dry-run"], "cpu 3"),         # offline in not_isolated
    (["apply", "--cpus", "0-2", "--dry-run"], "0-2"),         # every online CPU
    (["apply", "--dry-run"], "--cpus"),
    (["frobnicate"], "frobnicate"),
])
def test_usage_errors_exit_2_naming_the_value(args, needle):
    r = run(*args, *roots(fixture("not_isolated")))
    assert r.returncode == 2, r.stdout
    assert needle in r.stderr
    assert "Traceback" not in r.stderr


def test_apply_refuses_to_isolate_every_cpu():
    r = run("apply", "--cpus", "0-3", *roots(fixture("isolated")))
    assert r.returncode == 2
    assert "housekeeping" in r.stderr and "0-3" in r.stderr


def test_missing_root_is_a_usage_error(tmp_path):
    r = run("check", "--sysfs", str(tmp_path / "nope"))
    assert r.returncode == 2 and "nope" in r.stderr


def test_restore_without_state_is_a_usage_error(tmp_path):
    state = tmp_path / "none.json"
    r = run("restore", "--state", str(state))
    assert r.returncode == 2 and str(state) in r.stderr


def test_help_documents_every_subcommand_and_option():
    r = run("--help")
    assert r.returncode == 0
    for word in ("check", "apply", "restore", "--cpus", "--json", "--dry-run", "--state",
                 "--sysfs", "--procfs", "isolcpus=managed_irq,domain,LIST", "irqaffinity"):
        assert word in r.stdout, word
    for sub in ("check", "apply", "restore"):
        assert run(sub, "--help").returncode == 0


# --- apply / restore on copies --------------------------------------------------------------


def test_apply_dry_run_lists_writes_and_writes_nothing(tmp_path):
    base = copy_fixture("not_isolated", tmp_path)
    before = snapshot(str(tmp_path))
    r = run("apply", "--cpus", "1", "--dry-run", *roots(base))
    assert r.returncode == 0, r.stderr
    assert snapshot(str(tmp_path)) == before  # no state file either
    out = r.stdout
    for rel, old, new in (("proc/irq/24/smp_affinity_list", "0-2", "0,2"),
                          ("proc/irq/25/smp_affinity_list", "1", "0,2"),
                          ("proc/irq/default_smp_affinity", "f", "5"),
                          ("proc/sys/kernel/sched_rt_runtime_us", "950000", "-1"),
                          (THP, "always", "madvise")):
        assert f"would write {os.path.join(base, rel)}: {old!r} -> {new!r}" in out
    assert "irq/0/" not in out  # already off cpu 1
    assert "isolcpus=managed_irq,domain,1 nohz_full=1 rcu_nocbs=1 irqaffinity=0,2" in out


@pytest.mark.parametrize("name, cpus, changed", [
    ("not_isolated", "1", {"proc/irq/24/smp_affinity_list": "0,2",
                           "proc/irq/25/smp_affinity_list": "0,2",
                           "proc/irq/default_smp_affinity": "5",
                           "proc/sys/kernel/sched_rt_runtime_us": "-1"}),
    ("half", "1,3", {"proc/irq/24/smp_affinity_list": "0,2",
                     "proc/irq/default_smp_affinity": "5",
                     "sys/devices/system/cpu/cpu1/cpufreq/scaling_governor": "performance",
                     "sys/devices/system/cpu/cpu3/cpufreq/scaling_governor": "performance"}),
])
def test_apply_then_restore_round_trips_exactly(tmp_path, name, cpus, changed):
    base = copy_fixture(name, tmp_path)
    before = snapshot(base)
    state = os.path.join(base, "cpu-isolation.state.json")  # default: beside the roots
    r = run("apply", "--cpus", cpus, *roots(base))
    assert r.returncode == 0, r.stdout + r.stderr
    for rel, value in changed.items():
        assert read(base, rel) == value, rel
    assert "isolcpus=managed_irq,domain," + cpus in r.stdout
    with open(state) as f:
        saved = json.load(f)
    for w in saved["writes"]:
        rel = os.path.relpath(w["path"], base)
        old = before[rel].decode()
        assert (thp_mode(before[rel]) if rel == THP else old.strip()) == w["old"]
    # The apply's effect shows up in check.
    it = items_by_name(check_json(base, "--cpus", cpus))
    assert it["IRQ affinity"]["status"] in ("OK", "WARN")  # WARN: half's unreadable irq 26
    assert it["RT throttling"]["status"] == "OK"
    assert it["transparent huge pages"]["status"] == "OK"

    r = run("restore", *roots(base))
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("restored ") == len(saved["writes"])
    assert not os.path.exists(state)
    assert_same_values(before, snapshot(base))


def test_apply_twice_keeps_the_first_saved_values(tmp_path):
    base = copy_fixture("not_isolated", tmp_path)
    before = snapshot(base)
    state = str(tmp_path / "my.json")
    assert run("apply", "--cpus", "1", "--state", state, *roots(base)).returncode == 0
    r = run("apply", "--cpus", "2", "--state", state, *roots(base))
    assert r.returncode == 0 and "keeping its saved values" in r.stdout
    assert read(base, "proc/irq/24/smp_affinity_list") == "0"
    r = run("restore", "--state", state, *roots(base))
    assert r.returncode == 0
    assert_same_values(before, snapshot(base))
    assert not os.path.exists(state)


def test_apply_reports_an_irq_that_refuses_and_carries_on(tmp_path):
    # A read-only sysfs attribute reads like a CPU list and refuses writes (EACCES at open):
    # a stand-in for an IRQ the kernel will not move. Nothing on the machine can change.
    possible = "/sys/devices/system/cpu/possible"
    sys.path.insert(0, os.path.join(ROOT, "scripts", "lib"))
    from tern_cpu import read_cpu_list
    cpus, _ = read_cpu_list(possible)
    if not cpus or 1 not in cpus:
        pytest.skip(f"{possible} missing or without cpu 1")
    base = copy_fixture("not_isolated", tmp_path)
    irq = os.path.join(base, "proc/irq/25/smp_affinity_list")
    os.unlink(irq)
    os.symlink(possible, irq)
    r = run("apply", "--cpus", "1", *roots(base))
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"refused .*irq/25/smp_affinity_list", r.stdout)
    assert read(base, "proc/irq/24/smp_affinity_list") == "0,2"
    with open(os.path.join(base, "cpu-isolation.state.json")) as f:
        paths = [w["path"] for w in json.load(f)["writes"]]
    assert irq not in paths and os.path.join(base, "proc/irq/24/smp_affinity_list") in paths
    assert run("restore", *roots(base)).returncode == 0


def test_restore_keeps_the_state_when_a_value_cannot_be_written(tmp_path):
    target = tmp_path / "value"
    target.write_text("new\n")
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"version": 1, "writes": [
        {"path": str(target), "old": "old", "new": "new"},
        {"path": str(tmp_path / "gone" / "value"), "old": "x", "new": "y"}]}))
    r = run("restore", "--state", str(state))
    assert r.returncode == 1
    assert "FAILED" in r.stdout and "gone" in r.stdout
    assert target.read_text() == "old\n"
    assert state.exists()
    assert [w["old"] for w in json.loads(state.read_text())["writes"]] == ["x"]
    assert not (tmp_path / "gone").exists()  # never creates files


def test_restore_rejects_a_corrupt_state_file(tmp_path):
    state = tmp_path / "state.json"
    state.write_text("{not json")
    r = run("restore", "--state", str(state))
    assert r.returncode == 1 and str(state) in r.stderr and "Traceback" not in r.stderr


# --- the real machine (read only) -----------------------------------------------------------


def test_check_on_this_machine_emits_valid_json():
    r = run("check", "--json")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["cpus"] >= 1
    assert set(rep["summary"]) == {"ok", "warn", "fail"}
    assert all(i["status"] in STATUSES for i in rep["items"])
    assert not [i for i in rep["items"] if i["detail"].startswith("check failed")]


def test_check_on_this_machine_text_report():
    r = run("check")
    assert r.returncode == 0, r.stderr
    assert "summary:" in r.stdout and "Traceback" not in r.stderr


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
