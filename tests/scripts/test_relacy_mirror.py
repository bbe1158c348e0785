"""The Relacy models (tests/relacy/*.hpp) transcribe the real lock-free code line by line.

Every model line marked `// =` must still be a line of the real file named by the nearest
`// mirrors FILE` comment above it, once both are normalised (no `std::`, no `noexcept`, no
`[[likely]]`/`[[unlikely]]`, spaces squeezed, trailing comment dropped). So changing an
operation or a memory order in the runtime fails here until the model, and with it the
model check, is updated too.
"""
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[2]
MODELS = sorted((ROOT / "tests" / "relacy").glob("*.hpp"))


def normalise(line: str) -> str:
    line = re.sub(r"//.*$", "", line)
    line = line.replace("std::", "")
    line = re.sub(r"\bnoexcept\b", "", line)
    line = re.sub(r"\[\[(un)?likely\]\]", "", line)
    return " ".join(line.split())


def marked_lines(model: pathlib.Path):
    source = None
    for n, line in enumerate(model.read_text().splitlines(), 1):
        m = re.search(r"//\s*mirrors\s+(\S+)", line)
        if m:
            source = m.group(1)
        if re.search(r"//\s*=\s*$", line):
            assert source, f"{model.name}:{n}: a `// =` line before any `// mirrors FILE`"
            yield n, source, normalise(line)


def test_models_exist_and_mark_lines():
    assert MODELS, "no Relacy models under tests/relacy"
    for model in MODELS:
        if model.name == "harness.hpp":
            continue
        assert sum(1 for _ in marked_lines(model)) >= 20, f"{model.name} marks too few lines"


def test_every_marked_line_is_in_the_real_code():
    missing = []
    cache = {}
    for model in MODELS:
        for n, source, text in marked_lines(model):
            if source not in cache:
                cache[source] = [normalise(l) for l in (ROOT / source).read_text().splitlines()]
            if not any(text in real for real in cache[source]):
                missing.append(f"{model.name}:{n}: not in {source}: {text}")
    assert not missing, "model and code differ:\n" + "\n".join(missing)


def test_normalise_keeps_memory_orders():
    # a changed order must not normalise away
    assert normalise("x.store(1, std::memory_order_release);  // why") == \
        "x.store(1, memory_order_release);"
    assert normalise("x.store(1, std::memory_order_release);") != \
        normalise("x.store(1, std::memory_order_relaxed);")
