"""meson install gives a usable copy: headers, libtern, tern.pc; a tiny program builds against it."""
import os
import pathlib
import subprocess

ROOT = pathlib.Path(__file__).resolve().parents[2]
BUILD = pathlib.Path(os.environ.get("TERN_BUILD", ROOT / "build"))


def test_installed_copy_builds_and_runs_a_program(tmp_path):
    dest = tmp_path / "dest"
    subprocess.run(["meson", "install", "-C", str(BUILD), "--destdir", str(dest), "--quiet"],
                   check=True, timeout=300, capture_output=True)
    pcs = list(dest.rglob("tern.pc"))
    assert pcs, "tern.pc was not installed"
    assert list(dest.rglob("tern/actor.hpp")), "public headers were not installed"
    assert list(dest.rglob("tern/build_config.hpp")), "generated build_config.hpp was not installed"
    assert not list(dest.rglob("zmq.h")) and not list(dest.rglob("simdjson.h"))
    env = dict(os.environ, PKG_CONFIG_PATH=str(pcs[0].parent), PKG_CONFIG_SYSROOT_DIR=str(dest))
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "tern"], env=env, check=True,
                           capture_output=True, text=True, timeout=30).stdout.split()
    exe = tmp_path / "quickstart"
    subprocess.run(["g++", "-std=c++20", "-O2", str(ROOT / "examples" / "quickstart.cpp"),
                    "-o", str(exe), *flags], check=True, timeout=300, capture_output=True)
    libdir = [f[2:] for f in flags if f.startswith("-L")]
    run_env = dict(os.environ, LD_LIBRARY_PATH=":".join(libdir))
    out = subprocess.run([str(exe)], env=run_env, check=True, capture_output=True, text=True,
                         timeout=60)
    assert out.stdout.strip() == "7"
