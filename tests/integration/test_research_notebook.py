"""python/examples/research_notebook.py end to end against the C++ market-data actor
(examples/market_data_gateway --serve): find it by name in a real registry
(scripts/registry), subscribe, receive quotes, ask() for a snapshot, a pandas DataFrame, a
matplotlib PNG; and the same with --endpoint instead of a registry. Real processes on
loopback, bounded in time."""
import re

import pytest

from xlang import PY, PY_EXAMPLES, ROOT, cpp_example, procs, py_env, require  # noqa: F401

QUOTES = 2000


def check_session(nb, market, endpoint, png, mpimg):
    assert nb.wait(90) == 0, nb.output() + market.output()
    assert f"notebook: {QUOTES} quotes from 'market' at {endpoint}" in nb.stdout, nb.output()
    # ES is every 4th quote from seq 2: the last one sent is QUOTES - 2
    m = re.search(r"^notebook: snapshot ES bid=[\d.]+ ask=[\d.]+ seq=(\d+) sent=(\d+)$",
                  nb.stdout, re.M)
    assert m and (int(m.group(1)), int(m.group(2))) == (QUOTES - 2, QUOTES), nb.output()
    for sym in ("AAPL", "ES", "EURUSD", "MSFT"):
        assert re.search(rf"^{sym}\s+{QUOTES // 4}\s", nb.stdout, re.M), nb.output()
    assert png.is_file() and png.stat().st_size > 20_000, nb.output()
    img = mpimg.imread(str(png))
    assert img.shape[0] > 300 and img.shape[1] > 300
    assert img[..., :3].std() > 0.05  # lines drawn, not a blank canvas
    assert market.stop() == 0, market.output()
    assert "served 1 subscriptions and 1 snapshots; the last stream: 2000 quotes, " \
           "2000 signals back, 0 rejects" in market.stdout, market.output()


def test_research_notebook_finds_the_cpp_market_actor_by_name_in_a_registry(procs, tmp_path):
    pytest.importorskip("pandas", reason="python3-pandas is not installed")
    mpimg = pytest.importorskip("matplotlib.image", reason="python3-matplotlib missing")
    registry, port = procs.start_listener(
        "registry", lambda port: [ROOT / "scripts" / "registry", "--endpoint",
                                  f"tcp://127.0.0.1:{port}"],
        env=py_env(), ready=r"^registry: listening on ")
    reg = f"tcp://127.0.0.1:{port}"
    market = procs.start("market_data_gateway", [
        require(cpp_example("market_data_gateway")), "--serve", "--registry", reg,
        "--endpoint", "tcp://127.0.0.1:*", "--timeout", 120])
    endpoint = market.wait_line(
        rf"^market: registered 'market' at (\S+) with registry {re.escape(reg)}$").group(1)
    assert market.wait_line(r"^market: listening on (\S+) as 'market'").group(1) == endpoint
    png = tmp_path / "quotes.png"
    nb = procs.start("research_notebook.py", [
        PY, PY_EXAMPLES / "research_notebook.py", "--registry", reg, "--quotes", QUOTES,
        "--symbol", "ES", "--png", png, "--timeout", 60], env=py_env())
    # the lookup by name happened and resolved to the endpoint the C++ process bound
    nb.wait_line(rf"^notebook: found 'market' at {re.escape(endpoint)} via registry "
                 rf"{re.escape(reg)}$", timeout=60)
    check_session(nb, market, endpoint, png, mpimg)
    assert registry.stop() == 0, registry.output()
    stopped = registry.wait_line(r"^registry: stopped (.*)$").group(1)
    assert "'requests.LookupActor'" in stopped and "'names': 0" in stopped, stopped


def test_research_notebook_with_endpoint_and_no_registry(procs, tmp_path):
    pytest.importorskip("pandas", reason="python3-pandas is not installed")
    mpimg = pytest.importorskip("matplotlib.image", reason="python3-matplotlib missing")
    market = procs.start("market_data_gateway", [
        require(cpp_example("market_data_gateway")), "--serve",
        "--endpoint", "tcp://127.0.0.1:*", "--timeout", 120])
    endpoint = market.wait_line(r"^market: listening on (\S+) as 'market'").group(1)
    png = tmp_path / "quotes.png"
    nb = procs.start("research_notebook.py", [
        PY, PY_EXAMPLES / "research_notebook.py", "--endpoint", endpoint, "--quotes", QUOTES,
        "--symbol", "ES", "--png", png, "--timeout", 60], env=py_env())
    check_session(nb, market, endpoint, png, mpimg)
    assert "via registry" not in nb.stdout
