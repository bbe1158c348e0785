"""A PEP 517 build backend for the tern package, in the tree and with no dependency.

Why not setuptools: pip builds in an isolated environment and would download the backend
named in `requires`; with `requires = []` and this backend on `backend-path`, `pip install
./python` needs nothing from the network. It builds a pure-Python wheel of the `tern`
package (and an sdist); metadata comes from pyproject.toml's [project] table.
"""
import base64
import hashlib
import io
import os
import pathlib
import tarfile
import tomllib
import zipfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = "tern"
TAG = "py3-none-any"


def _project():
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]


def _dist_name(p):
    return f"{p['name'].replace('-', '_')}-{p['version']}"


def _metadata(p):
    lines = ["Metadata-Version: 2.1", f"Name: {p['name']}", f"Version: {p['version']}"]
    if "description" in p:
        lines.append(f"Summary: {p['description']}")
    if "requires-python" in p:
        lines.append(f"Requires-Python: {p['requires-python']}")
    lic = p.get("license", {})
    if isinstance(lic, dict) and "text" in lic:
        lines.append(f"License: {lic['text']}")
    lines += [f"Classifier: {c}" for c in p.get("classifiers", [])]
    lines += [f"Requires-Dist: {d}" for d in p.get("dependencies", [])]
    readme = p.get("readme")
    body = ""
    if readme:
        lines.append("Description-Content-Type: text/markdown")
        body = (ROOT / readme).read_text(encoding="utf-8")
    return "\n".join(lines) + "\n\n" + body


def _wheel_file():
    return f"Wheel-Version: 1.0\nGenerator: tern_build\nRoot-Is-Purelib: true\nTag: {TAG}\n"


def _sources():
    """(archive name, path) of every module of the package, sorted."""
    out = []
    for path in sorted((ROOT / PACKAGE).rglob("*.py")):
        if "__pycache__" not in path.parts:
            out.append((path.relative_to(ROOT).as_posix(), path))
    if not out:
        raise RuntimeError(f"tern_build: no modules under {ROOT / PACKAGE}")
    return out


def _record_line(name, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def _write_wheel(wheel_directory, files):
    """files: [(archive name, bytes)]; adds the dist-info and RECORD; returns the wheel name."""
    p = _project()
    dist = _dist_name(p)
    info = f"{dist}.dist-info"
    files = list(files) + [(f"{info}/METADATA", _metadata(p).encode()),
                           (f"{info}/WHEEL", _wheel_file().encode())]
    record = [_record_line(n, d) for n, d in files] + [f"{info}/RECORD,,"]
    files.append((f"{info}/RECORD", ("\n".join(record) + "\n").encode()))
    name = f"{dist}-{TAG}.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w", zipfile.ZIP_DEFLATED) as z:
        for n, d in files:
            zi = zipfile.ZipInfo(n, date_time=(2020, 1, 1, 0, 0, 0))
            zi.external_attr = 0o644 << 16
            z.writestr(zi, d, zipfile.ZIP_DEFLATED)
    return name


# ---- PEP 517 ------------------------------------------------------------------------------
def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def get_requires_for_build_editable(config_settings=None):
    return []


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    p = _project()
    info = pathlib.Path(metadata_directory) / f"{_dist_name(p)}.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(_metadata(p), encoding="utf-8")
    (info / "WHEEL").write_text(_wheel_file(), encoding="utf-8")
    return info.name


prepare_metadata_for_build_editable = prepare_metadata_for_build_wheel


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    return _write_wheel(wheel_directory, [(n, p.read_bytes()) for n, p in _sources()])


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    """PEP 660: a .pth file that puts this source tree on sys.path."""
    return _write_wheel(wheel_directory, [(f"__editable__.{PACKAGE}.pth",
                                           (str(ROOT) + "\n").encode())])


def build_sdist(sdist_directory, config_settings=None):
    p = _project()
    base = _dist_name(p)
    name = f"{base}.tar.gz"
    members = [("pyproject.toml", ROOT / "pyproject.toml"), ("README.md", ROOT / "README.md"),
               ("_build_backend/tern_build.py", pathlib.Path(__file__))] + _sources()
    with tarfile.open(os.path.join(sdist_directory, name), "w:gz") as tar:
        for arc, path in members:
            data = path.read_bytes()
            ti = tarfile.TarInfo(f"{base}/{arc}")
            ti.size = len(data)
            ti.mode = 0o644
            ti.mtime = 1577836800
            tar.addfile(ti, io.BytesIO(data))
        pkg_info = _metadata(p).encode()
        ti = tarfile.TarInfo(f"{base}/PKG-INFO")
        ti.size = len(pkg_info)
        ti.mode = 0o644
        ti.mtime = 1577836800
        tar.addfile(ti, io.BytesIO(pkg_info))
    return name
