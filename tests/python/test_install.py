"""`pip install ./python` works offline with no flags: the build backend lives in the tree
(python/_build_backend) and requires nothing, so pip's isolated build downloads nothing.

Debian's own /usr/bin/python3 refuses pip installs (PEP 668, externally managed), so the
tests install into a venv that still sees Debian's python3-zmq (--system-site-packages)."""
import os
import pathlib
import subprocess
import sys
import tarfile
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
# not the source tree on the path; no pip self-check (it would try the network)
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {
    "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


@pytest.fixture
def venv(tmp_path):
    path = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(path)],
                   check=True, timeout=120, capture_output=True)
    return path / "bin" / "python"


def run(args, cwd, timeout=300):
    out = subprocess.run(args, cwd=cwd, env=ENV, timeout=timeout, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def imported_from(py, cwd):
    return run([str(py), "-c", "import tern, zmq; print(tern.__file__); "
                "print(tern.Actor, tern.Manager, tern.register_message)"], cwd).splitlines()[0]


def test_pip_install_dot_python_with_no_flags(venv, tmp_path):
    # exactly the README's command, from the repository root
    run([str(venv), "-m", "pip", "install", "./python"], ROOT)
    where = imported_from(venv, tmp_path)
    assert where.startswith(str(venv.parents[1])), where  # the venv's copy, not the tree's
    run([str(venv), "-m", "pip", "uninstall", "-y", "tern"], tmp_path)
    out = subprocess.run([str(venv), "-c", "import tern"], cwd=tmp_path, env=ENV,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "No module named 'tern'" in out.stderr


def test_editable_install_uses_the_source_tree(venv, tmp_path):
    run([str(venv), "-m", "pip", "install", "-e", "./python"], ROOT)
    assert imported_from(venv, tmp_path) == str(ROOT / "python" / "tern" / "__init__.py")


def test_wheel_and_sdist_hold_every_module_and_the_metadata(tmp_path):
    sys.path.insert(0, str(ROOT / "python" / "_build_backend"))
    try:
        import tern_build
    finally:
        sys.path.pop(0)
    assert tern_build.get_requires_for_build_wheel() == []
    modules = sorted(p.name for p in (ROOT / "python" / "tern").glob("*.py"))
    wheel = tmp_path / tern_build.build_wheel(str(tmp_path))
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        meta = z.read("tern-0.1.0.dist-info/METADATA").decode()
        record = z.read("tern-0.1.0.dist-info/RECORD").decode()
    assert sorted(n.split("/")[1] for n in names if n.startswith("tern/")) == modules
    assert "Name: tern" in meta and "Requires-Dist: pyzmq>=22" in meta
    assert all(n in record for n in names)
    sdist = tmp_path / tern_build.build_sdist(str(tmp_path))
    with tarfile.open(sdist) as t:
        members = t.getnames()
    assert "tern-0.1.0/pyproject.toml" in members
    assert "tern-0.1.0/_build_backend/tern_build.py" in members
    assert {f"tern-0.1.0/tern/{m}" for m in modules} <= set(members)
