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


CONSUMER = ROOT / "tests" / "integration" / "consumer"


def _install(tmp_path):
    dest = tmp_path / "dest"
    subprocess.run(["meson", "install", "-C", str(BUILD), "--destdir", str(dest), "--quiet"],
                   check=True, timeout=300, capture_output=True)
    configs = list(dest.rglob("ternConfig.cmake"))
    assert configs, "ternConfig.cmake was not installed"
    pcs = {p.name: p for p in dest.rglob("*.pc")}
    assert "tern.pc" in pcs and "tern-gateway.pc" in pcs, sorted(pcs)
    libdir = next(dest.rglob("libtern.so")).parent
    return dest, configs[0], pcs["tern.pc"].parent, libdir


def _run_consumer(exe, libdir):
    env = dict(os.environ, LD_LIBRARY_PATH=str(libdir))
    out = subprocess.run([str(exe)], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "pong 3", out.stdout + out.stderr


def _prefix_of(config):
    # <prefix>/<libdir>/cmake/tern/ternConfig.cmake: the prefix is the folder holding `include`.
    p = config.parent
    while not (p / "include" / "tern").is_dir():
        assert p != p.parent, "no include/tern above " + str(config)
        p = p.parent
    return p


def test_pkg_config_modules_name_what_each_library_needs(tmp_path):
    dest, _, pcdir, _ = _install(tmp_path)
    env = dict(os.environ, PKG_CONFIG_PATH=str(pcdir), PKG_CONFIG_SYSROOT_DIR=str(dest))
    def flags(*mods):
        return subprocess.run(["pkg-config", "--cflags", "--libs", *mods], env=env, check=True,
                              capture_output=True, text=True, timeout=30).stdout.split()
    core = flags("tern")
    assert "-ltern" in core and "-std=c++20" in core
    assert not any("mimalloc" in f or "zmq" in f for f in core), core
    gw = flags("tern-gateway")
    assert "-ltern_gateway" in gw and "-ltern" in gw, gw


def test_cmake_consumer_finds_tern_and_gateway_targets_and_runs(tmp_path):
    dest, config, _, libdir = _install(tmp_path)
    bdir = tmp_path / "cmake-build"
    cfg = subprocess.run(["cmake", "-S", str(CONSUMER), "-B", str(bdir),
                          f"-DCMAKE_PREFIX_PATH={_prefix_of(config)}", "-DCMAKE_BUILD_TYPE=Release"],
                         capture_output=True, text=True, timeout=300)
    assert cfg.returncode == 0, cfg.stdout + cfg.stderr
    b = subprocess.run(["cmake", "--build", str(bdir)], capture_output=True, text=True, timeout=300)
    assert b.returncode == 0, b.stdout + b.stderr
    _run_consumer(bdir / "consumer", libdir)


def test_cmake_consumer_asking_for_an_unknown_component_fails_naming_it(tmp_path):
    _, config, _, _ = _install(tmp_path)
    cfg = subprocess.run(["cmake", "-S", str(CONSUMER), "-B", str(tmp_path / "b"),
                          f"-DCMAKE_PREFIX_PATH={_prefix_of(config)}", "-DTERN_COMPONENTS=bogus"],
                         capture_output=True, text=True, timeout=300)
    assert cfg.returncode != 0
    assert "tern has no component 'bogus'" in cfg.stdout + cfg.stderr


def test_meson_consumer_builds_against_pkg_config_and_runs(tmp_path):
    dest, _, pcdir, libdir = _install(tmp_path)
    env = dict(os.environ, PKG_CONFIG_PATH=str(pcdir), PKG_CONFIG_SYSROOT_DIR=str(dest))
    bdir = tmp_path / "meson-build"
    s = subprocess.run(["meson", "setup", str(bdir), str(CONSUMER)], env=env,
                       capture_output=True, text=True, timeout=300)
    assert s.returncode == 0, s.stdout + s.stderr
    b = subprocess.run(["ninja", "-C", str(bdir)], env=env, capture_output=True, text=True,
                       timeout=300)
    assert b.returncode == 0, b.stdout + b.stderr
    _run_consumer(bdir / "consumer", libdir)
