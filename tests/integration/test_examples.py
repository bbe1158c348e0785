"""The C++ examples run to completion and print what they promise."""
import os
import pathlib
import re
import subprocess

ROOT = pathlib.Path(__file__).resolve().parents[2]
BUILD = pathlib.Path(os.environ.get("TERN_BUILD", ROOT / "build"))


def run(*args, timeout=60):
    return subprocess.run([str(BUILD / "examples" / args[0]), *args[1:]], capture_output=True,
                          text=True, timeout=timeout)


def test_ping_pong_bounces_ten_times_and_stops():
    out = run("ping_pong")
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("Received ping") == 10
    assert "Received pong 10" in out.stdout


def test_quickstart_prints_the_fast_send_reply():
    out = run("quickstart")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "7"


def test_trading_pipeline_accounts_for_every_quote():
    out = run("trading_pipeline", "--seconds", "1", "--instruments", "50", timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    m = re.search(r"quotes published (\d+), refused (\d+), handled by books (\d+)", out.stdout)
    assert m, out.stdout
    published, refused, handled = map(int, m.groups())
    assert published > 0 and handled + refused == published
    m = re.search(r"pricer fast_sends (\d+)", out.stdout)
    assert m and int(m.group(1)) == handled
    assert "t= 0.25s" in out.stdout  # the periodic stats timer fired


def test_trading_pipeline_rejects_bad_arguments_naming_them():
    out = run("trading_pipeline", "--seconds", "0")
    assert out.returncode == 2
    assert "--seconds" in out.stderr


def test_order_book_sends_books_of_20_levels_by_value():
    out = run("order_book", "--updates", "20000", timeout=120)
    assert out.returncode == 0, out.stderr
    assert "strategy: 20000 books of" in out.stdout
    assert "(feed sent 20000), 0 malformed" in out.stdout


def test_order_book_rejects_bad_arguments_naming_them():
    out = run("order_book", "--updates", "x")
    assert out.returncode == 2
    assert "'x'" in out.stderr
