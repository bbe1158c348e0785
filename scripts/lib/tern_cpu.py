"""CPU list parsing and sysfs/procfs reading shared by scripts/cpu-isolation and scripts/launch.

Python 3 standard library only. Every reader returns a value plus a problem string instead of
raising, so a malformed or missing kernel file turns into a line in a report, never a traceback.
"""

import os
import re

DEFAULT_SYSFS = "/sys"
DEFAULT_PROCFS = "/proc"


class CpuListError(ValueError):
    """A CPU list such as "0-3,5" that does not parse; the message names the bad text."""


def parse_cpu_list(text):
    """Parses the kernel's CPU list format ("0-3,5,7-8", "", "(null)", trailing newline).

    Returns a sorted list without duplicates. Raises CpuListError naming the bad text.
    """
    s = text.strip()
    if s in ("", "(null)"):
        return []
    cpus = set()
    for part in s.split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not m:
            raise CpuListError(f"invalid CPU list {s!r}: {part!r} is not a CPU number or range")
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) is not None else lo
        if hi < lo:
            raise CpuListError(f"invalid CPU list {s!r}: range {part!r} runs backwards")
        if hi > 65535:
            raise CpuListError(f"invalid CPU list {s!r}: {hi} is beyond any CPU number")
        cpus.update(range(lo, hi + 1))
    return sorted(cpus)


def format_cpu_list(cpus):
    """Formats CPUs as the kernel does: [0,1,2,3,5] -> "0-3,5"; [] -> ""."""
    out = []
    cpus = sorted(set(cpus))
    i = 0
    while i < len(cpus):
        j = i
        while j + 1 < len(cpus) and cpus[j + 1] == cpus[j] + 1:
            j += 1
        out.append(str(cpus[i]) if i == j else f"{cpus[i]}-{cpus[j]}")
        i = j + 1
    return ",".join(out)


def parse_cpu_mask(text):
    """Parses a hex CPU mask as in /proc/irq/default_smp_affinity ("ff", "00000000,0000000f")."""
    s = text.strip().replace(",", "")
    if not re.fullmatch(r"[0-9a-fA-F]+", s):
        raise CpuListError(f"invalid CPU mask {text.strip()!r}")
    value = int(s, 16)
    return [i for i in range(value.bit_length()) if value >> i & 1]


def format_cpu_mask(cpus):
    """Formats CPUs as a hex mask the kernel accepts: [0, 2] -> "5"."""
    value = 0
    for c in cpus:
        value |= 1 << c
    return format(value, "x")


def read_text(path):
    """Returns (text, None) or (None, "why it could not be read")."""
    try:
        with open(path, "r", encoding="utf-8", errors="replace") as f:
            return f.read(), None
    except FileNotFoundError:
        return None, f"{path} does not exist"
    except OSError as e:
        return None, f"cannot read {path}: {e.strerror or e}"


def read_cpu_list(path):
    """Returns (cpus or None, problem or None). Missing file -> (None, problem)."""
    text, err = read_text(path)
    if text is None:
        return None, err
    try:
        return parse_cpu_list(text), None
    except CpuListError:
        return None, f"could not parse {path}: {text.strip()!r}"


def write_text(path, value):
    """Writes value plus a newline in one write(2), the way sysfs and procfs want it.

    Never creates a file (O_CREAT is not passed): a path that does not exist is an error.
    O_TRUNC keeps regular fixture files exact; sysfs and procfs ignore it.
    """
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    try:
        os.write(fd, (value + "\n").encode())
    finally:
        os.close(fd)


class Machine:
    """Paths into one sysfs and one procfs tree (the real ones or a test fixture)."""

    def __init__(self, sysfs=DEFAULT_SYSFS, procfs=DEFAULT_PROCFS):
        self.sysfs = sysfs
        self.procfs = procfs

    def sys(self, *parts):
        return os.path.join(self.sysfs, *parts)

    def proc(self, *parts):
        return os.path.join(self.procfs, *parts)

    def cpu(self, *parts):
        return self.sys("devices", "system", "cpu", *parts)

    def online(self):
        """Returns (online CPUs, problem or None); falls back to the cpuN directories."""
        cpus, err = read_cpu_list(self.cpu("online"))
        if cpus is not None:
            return cpus, None
        found = []
        try:
            for name in os.listdir(self.cpu()):
                m = re.fullmatch(r"cpu(\d+)", name)
                if m:
                    found.append(int(m.group(1)))
        except OSError:
            pass
        return sorted(found), err

    def present(self):
        cpus, _ = read_cpu_list(self.cpu("present"))
        if cpus is None:
            cpus, _ = self.online()
        return cpus

    def isolated(self):
        return read_cpu_list(self.cpu("isolated"))

    def nohz_full(self):
        return read_cpu_list(self.cpu("nohz_full"))

    def siblings(self, cpu):
        """Returns (SMT siblings including cpu, problem or None)."""
        path = self.cpu(f"cpu{cpu}", "topology", "thread_siblings_list")
        sib, err = read_cpu_list(path)
        if sib is None:
            return [cpu], err
        return sorted(set(sib) | {cpu}), None

    def cmdline(self):
        """Returns (dict of parameter -> value (None for bare flags), raw text or None, problem)."""
        text, err = read_text(self.proc("cmdline"))
        if text is None:
            return {}, None, err
        params = {}
        # Arguments after a bare "--" go to init, not the kernel.
        for tok in text.replace("\0", " ").split():
            if tok == "--":
                break
            key, eq, val = tok.partition("=")
            params[key] = val if eq else None
        return params, text.strip(), None


def parse_isolcpus(value):
    """Splits isolcpus=[flag,...,]LIST into (flags, cpus). Raises CpuListError."""
    parts = value.split(",")
    flags = []
    while parts and re.fullmatch(r"[a-z_]+", parts[0]):
        flags.append(parts.pop(0))
    return flags, parse_cpu_list(",".join(parts))


def validate_cpus(text, online, what="--cpus"):
    """Parses a user CPU list and checks every CPU is online. Returns (cpus, error or None)."""
    try:
        cpus = parse_cpu_list(text)
    except CpuListError as e:
        return None, f"{what}: {e}"
    if not cpus:
        return None, f"{what}: empty CPU list {text!r}"
    missing = [c for c in cpus if c not in online]
    if missing:
        return None, (f"{what}: cpu {format_cpu_list(missing)} does not exist or is offline "
                      f"(online: {format_cpu_list(online) or 'none'})")
    return cpus, None
