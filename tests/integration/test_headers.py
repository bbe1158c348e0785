"""Every public header compiles on its own, and no third-party transport/JSON header leaks in."""
import os
import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BUILD = pathlib.Path(os.environ.get("TERN_BUILD", ROOT / "build"))
HEADERS = sorted(p.relative_to(ROOT / "include") for p in (ROOT / "include" / "tern").rglob("*.hpp"))


@pytest.mark.parametrize("header", HEADERS, ids=str)
def test_public_header_compiles_alone(header, tmp_path):
    src = tmp_path / "one.cpp"
    src.write_text(f"#include <{header}>\n")
    out = subprocess.run(["g++", "-std=c++20", "-fsyntax-only", "-Wall", "-Wextra", "-Werror",
                          "-I", str(ROOT / "include"), "-I", str(BUILD / "include"), str(src)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr


def test_zmq_and_simdjson_stay_out_of_the_public_headers():
    for h in (ROOT / "include").rglob("*.hpp"):
        text = h.read_text()
        assert "zmq.h" not in text and "simdjson.h" not in text, h
