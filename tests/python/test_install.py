"""`pip install ./python` works offline (setuptools only, no download) into a virtual env.

Debian's own /usr/bin/python3 refuses pip installs (PEP 668, externally managed), so the
supported way is a venv that still sees Debian's python3-zmq (--system-site-packages)."""
import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_pip_installs_the_package_offline_into_a_venv(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)],
                   check=True, timeout=120, capture_output=True)
    py = venv / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # not the source tree
    out = subprocess.run([str(py), "-m", "pip", "install", "--no-build-isolation", "--no-index",
                          str(ROOT / "python")], env=env, timeout=300, capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    # imported from the venv, not from the source tree
    got = subprocess.run([str(py), "-c", "import tern, zmq; print(tern.__file__); "
                          "print(tern.Actor, tern.Manager, tern.register_message)"],
                         cwd=tmp_path, env=env, check=True, timeout=60, capture_output=True,
                         text=True)
    assert str(venv) in got.stdout.splitlines()[0]
