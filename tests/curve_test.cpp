// tern/curve.hpp and GatewayConfig::curve: key files, the allow-list (ZAP), what is counted.
#include <doctest/doctest.h>

#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>

#include <tern/curve.hpp>
#include <tern/gateway.hpp>
#include <tern/manager.hpp>

#include "test_util.hpp"

using namespace tern;
using tern::test::scaled;
using tern::test::wait_until;
namespace fs = std::filesystem;

namespace {

struct Ping {
  static constexpr MessageId message_id = 700;
  std::int64_t count = 0;
  TERN_WIRE(Ping, count)
};
struct Pong {
  static constexpr MessageId message_id = 701;
  std::int64_t count = 0;
  TERN_WIRE(Pong, count)
};
struct Go {
  static constexpr MessageId message_id = 702;
};

wire::Registry registry() {
  wire::Registry r;
  r.add<Ping>().add<Pong>();
  return r;
}

/// A fresh directory under TMPDIR, removed with everything in it.
struct TempDir {
  TempDir() {
    std::string t = (fs::temp_directory_path() / "tern-curve-XXXXXX").string();
    REQUIRE(::mkdtemp(t.data()) != nullptr);
    path = t;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string operator/(const std::string& f) const { return path + "/" + f; }
  void write(const std::string& f, const std::string& text, mode_t mode = 0600) const {
    std::ofstream(path + "/" + f) << text;
    REQUIRE(::chmod((path + "/" + f).c_str(), mode) == 0);
  }
  std::string path;
};

/// The text pyzmq's zmq.auth.create_certificates writes (metadata values unquoted).
std::string pyzmq_cert(const std::string& pub, const std::string& sec = {}) {
  std::string s =
      "#   ****  Generated on 2026-12-03 07:00:00 by pyzmq  ****\n"
      "#   ZeroMQ CURVE **Secret** Certificate\n\n"
      "metadata\n    endpoint = tcp://127.0.0.1:5001\ncurve\n    public-key = \"" + pub + "\"\n";
  if (!sec.empty()) s += "    secret-key = \"" + sec + "\"\n";
  return s;
}

class PongActor : public Actor {
 public:
  PongActor() { handle<&PongActor::on_ping>(); }
  void on_ping(const Ping& p) {
    pings.fetch_add(1);
    (void)reply(Pong{p.count});
  }
  std::atomic<int> pings{0};
};

class PingActor : public Actor {
 public:
  explicit PingActor(std::int64_t n) : n_(n) {
    handle<&PingActor::on_go>();
    handle<&PingActor::on_pong>();
  }
  ActorRef peer;
  std::atomic<std::int64_t> pongs{0};
  std::atomic<int> bad{0};

 private:
  void on_go(const Go&) { (void)peer.send(Ping{1}); }
  void on_pong(const Pong& p) {
    const std::int64_t got = pongs.load() + 1;
    if (p.count != got) bad.fetch_add(1);
    pongs.store(got);
    if (got < n_) (void)peer.send(Ping{got + 1});
  }
  std::int64_t n_;
};

GatewayConfig curve_config(const TempDir& d, const std::string& me, const std::string& allow_dir) {
  GatewayConfig c;
  c.bind = "tcp://127.0.0.1:*";
  c.linger_ms = 100;
  c.curve.key_file = d / (me + ".key_secret");
  c.curve.allow_dir = allow_dir;
  return c;
}

/// One process with a CURVE gateway and a pong actor.
struct Server {
  explicit Server(GatewayConfig cfg) {
    auto g = std::make_unique<Gateway>(registry(), std::move(cfg));
    gw = g.get();
    mgr.manage("gw", std::move(g));
    pong = static_cast<PongActor*>(mgr.manage("pong", std::make_unique<PongActor>()).actor());
    mgr.init();
  }
  ~Server() { mgr.end(); }
  Manager mgr;
  Gateway* gw = nullptr;
  PongActor* pong = nullptr;
};

/// A bare libzmq PUSH client, optionally CURVE with the given keys.
struct RawClient {
  RawClient(const std::string& endpoint, const CurveKeyPair* mine, const std::string& server_key) {
    ctx = zmq_ctx_new();
    push = zmq_socket(ctx, ZMQ_PUSH);
    const int linger = 0;
    zmq_setsockopt(push, ZMQ_LINGER, &linger, sizeof linger);
    if (mine) {
      REQUIRE(zmq_setsockopt(push, ZMQ_CURVE_SERVERKEY, server_key.c_str(), 40) == 0);
      REQUIRE(zmq_setsockopt(push, ZMQ_CURVE_PUBLICKEY, mine->public_key.c_str(), 40) == 0);
      REQUIRE(zmq_setsockopt(push, ZMQ_CURVE_SECRETKEY, mine->secret_key.c_str(), 40) == 0);
    }
    REQUIRE(zmq_connect(push, endpoint.c_str()) == 0);
  }
  ~RawClient() {
    zmq_close(push);
    zmq_ctx_term(ctx);
  }
  /// Queues a Ping without blocking (the frame waits in libzmq until a handshake succeeds).
  void ping() {
    const std::string f =
        R"({"sender_actor":null,"sender_endpoint":null,"receiver":"pong","message_type":"Ping","message":{"count":1}})";
    (void)zmq_send(push, f.data(), f.size(), ZMQ_DONTWAIT);
  }
  void* ctx = nullptr;
  void* push = nullptr;
};

}  // namespace

TEST_CASE("libzmq here supports CURVE") { CHECK(curve_available()); }

TEST_CASE("key pairs round-trip through certificate files; pyzmq's format reads too") {
  TempDir d;
  const CurveKeyPair kp = create_curve_key_pair(d.path, "alice");
  CHECK(valid_curve_key(kp.public_key));
  CHECK(valid_curve_key(kp.secret_key));
  struct stat st {};
  REQUIRE(::stat((d / "alice.key_secret").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  REQUIRE(::stat((d / "alice.key").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0644);
  const CurveKeyPair back = load_curve_key_pair(d / "alice.key_secret");
  CHECK(back.public_key == kp.public_key);
  CHECK(back.secret_key == kp.secret_key);
  CHECK(load_curve_public_key(d / "alice.key") == kp.public_key);
  CHECK(load_curve_public_key(d / "alice.key_secret") == kp.public_key);

  char pub[41], sec[41];
  REQUIRE(zmq_curve_keypair(pub, sec) == 0);
  d.write("py.key_secret", pyzmq_cert(pub, sec));
  CHECK(load_curve_key_pair(d / "py.key_secret").secret_key == sec);
  d.write("py.key", pyzmq_cert(pub), 0644);
  const std::vector<std::string> allowed = load_curve_allow_dir(d.path);  // alice.key, py.key
  REQUIRE(allowed.size() == 2);
  CHECK(allowed[0] == kp.public_key);
  CHECK(allowed[1] == pub);
}

TEST_CASE("every key-file loading error names the file and what is wrong") {
  TempDir d;
  char pub[41], sec[41], pub2[41], sec2[41];
  REQUIRE(zmq_curve_keypair(pub, sec) == 0);
  REQUIRE(zmq_curve_keypair(pub2, sec2) == 0);
  const auto err = [](auto&& f) -> std::string {
    try {
      f();
    } catch (const std::runtime_error& e) {
      return e.what();
    }
    return "(no error)";
  };
  const std::string missing = d / "nope.key_secret";
  CHECK(err([&] { load_curve_key_pair(missing); }) ==
        "tern: curve: key file '" + missing + "': cannot open: No such file or directory");
  CHECK(err([&] { load_curve_public_key(missing); }) ==
        "tern: curve: key file '" + missing + "': cannot open: No such file or directory");

  d.write("open.key_secret", pyzmq_cert(pub, sec), 0644);
  CHECK(err([&] { load_curve_key_pair(d / "open.key_secret"); }) ==
        "tern: curve: key file '" + (d / "open.key_secret") +
            "': holds a secret key but its mode is 0644 (group or others may read it); chmod 600 it");

  d.write("public.key", pyzmq_cert(pub));
  CHECK(err([&] { load_curve_key_pair(d / "public.key"); }) ==
        "tern: curve: key file '" + (d / "public.key") +
            "': no secret-key in its curve section (a public certificate? the pair is in "
            "NAME.key_secret)");

  d.write("short.key", "curve\n    public-key = \"abc\"\n");
  CHECK(err([&] { load_curve_public_key(d / "short.key"); }) ==
        "tern: curve: key file '" + (d / "short.key") +
            "': line 2: public-key is not a CURVE key: 40 characters of Z85 expected, got 3 "
            "characters");

  std::string bad_char = pub;
  bad_char[5] = '~';
  d.write("char.key", "curve\n    public-key = \"" + bad_char + "\"\n");
  CHECK(err([&] { load_curve_public_key(d / "char.key"); }) ==
        "tern: curve: key file '" + (d / "char.key") +
            "': line 2: public-key is not a CURVE key: character '~' is not in the Z85 alphabet");

  d.write("nokey.key", "metadata\n    public-key = \"" + std::string(pub) + "\"\ncurve\n");
  CHECK(err([&] { load_curve_public_key(d / "nokey.key"); }) ==
        "tern: curve: key file '" + (d / "nokey.key") + "': no public-key in its curve section");

  d.write("twice.key", pyzmq_cert(pub) + "    public-key = \"" + pub2 + "\"\n");
  CHECK(err([&] { load_curve_public_key(d / "twice.key"); }) ==
        "tern: curve: key file '" + (d / "twice.key") +
            "': line 8: public-key given twice (also line 7)");

  d.write("mixed.key_secret", pyzmq_cert(pub, sec2));
  CHECK(err([&] { load_curve_key_pair(d / "mixed.key_secret"); }) ==
        "tern: curve: key file '" + (d / "mixed.key_secret") +
            "': line 7: public-key does not belong to the secret-key");

  d.write("big.key", std::string(70 * 1024, '#'));
  CHECK(err([&] { load_curve_public_key(d / "big.key"); }) ==
        "tern: curve: key file '" + (d / "big.key") + "': larger than 64 KiB: not a certificate");

  const std::string no_dir = d / "no-such-dir";
  CHECK(err([&] { load_curve_allow_dir(no_dir); }) ==
        "tern: curve: allow directory '" + no_dir + "': cannot open: No such file or directory");
  // a bad file in the allow directory is named (big.key comes first in name order)
  CHECK(err([&] { load_curve_allow_dir(d.path); }) ==
        "tern: curve: key file '" + (d / "big.key") + "': larger than 64 KiB: not a certificate");

  (void)create_curve_key_pair(d.path, "x");
  CHECK(err([&] { create_curve_key_pair(d.path, "x"); }) ==
        "tern: curve: key file '" + (d / "x.key") + "': cannot create: File exists");
}

TEST_CASE("gateway set-up: CURVE needs a key pair and a non-empty allow-list; plain is the default") {
  CHECK_FALSE(GatewayConfig{}.curve.enabled());
  TempDir d, allow, empty;
  (void)create_curve_key_pair(d.path, "server");
  (void)create_curve_key_pair(allow.path, "client");
  GatewayConfig c = curve_config(d, "server", allow.path);
  {
    Gateway g(registry(), c);
    CHECK(g.public_key() == load_curve_public_key(d / "server.key"));
  }
  GatewayConfig no_allow = curve_config(d, "server", empty.path);
  CHECK_THROWS_WITH_AS(Gateway(registry(), no_allow), doctest::Contains("the allow-list is empty"),
                       std::runtime_error);
  GatewayConfig missing = curve_config(d, "nobody", allow.path);
  CHECK_THROWS_WITH_AS(Gateway(registry(), missing),
                       doctest::Contains((d / "nobody.key_secret").c_str()), std::runtime_error);
  GatewayConfig bad_key = curve_config(d, "server", "");
  bad_key.curve.allow_keys = {"not-a-key"};
  CHECK_THROWS_WITH_AS(Gateway(registry(), bad_key),
                       doctest::Contains("allow_keys entry 'not-a-key' is not a CURVE key"),
                       std::runtime_error);
  GatewayConfig off;
  off.bind = "tcp://127.0.0.1:*";
  off.curve.allow_dir = allow.path;  // an allow-list without a key pair: a mistake
  CHECK_THROWS_WITH_AS(Gateway(registry(), off), doctest::Contains("key_file is empty"),
                       std::runtime_error);
  off.curve.allow_dir.clear();
  Gateway plain(registry(), off);
  CHECK(plain.public_key().empty());
}

TEST_CASE("remote() wants the peer's public key exactly when CURVE is on") {
  TempDir d;
  const CurveKeyPair kp = create_curve_key_pair(d.path, "server");
  GatewayConfig c = curve_config(d, "server", "");
  c.curve.allow_keys = {kp.public_key};
  Gateway secure(registry(), c);
  CHECK_THROWS_WITH_AS(secure.remote("pong", "tcp://127.0.0.1:1"),
                       doctest::Contains("needs the peer's public key"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(secure.remote("pong", "tcp://127.0.0.1:1", "short"),
                       doctest::Contains("server key 'short'"), std::invalid_argument);
  const ActorRef a = secure.remote("pong", "tcp://127.0.0.1:1", kp.public_key);
  CHECK(a == secure.remote("pong", "tcp://127.0.0.1:1", kp.public_key));
  char other[41], sec[41];
  REQUIRE(zmq_curve_keypair(other, sec) == 0);
  CHECK(a != secure.remote("pong", "tcp://127.0.0.1:1", other));  // another key: another peer
  GatewayConfig off;
  off.bind = "tcp://127.0.0.1:*";
  Gateway plain(registry(), off);
  CHECK_THROWS_WITH_AS(plain.remote("pong", "tcp://127.0.0.1:1", kp.public_key),
                       doctest::Contains("CURVE is off"), std::invalid_argument);
}

TEST_CASE("two CURVE gateways ping-pong; replies go back to the key the sender proved") {
  TempDir keys, allow_a, allow_b;
  (void)create_curve_key_pair(keys.path, "a");
  (void)create_curve_key_pair(keys.path, "b");
  fs::copy_file(keys / "b.key", allow_a / "b.key");  // a lets b in, b lets a in
  fs::copy_file(keys / "a.key", allow_b / "a.key");
  Server b(curve_config(keys, "b", allow_b.path));
  const std::int64_t n = static_cast<std::int64_t>(scaled(2000));
  Manager mgr;
  auto g = std::make_unique<Gateway>(registry(), curve_config(keys, "a", allow_a.path));
  Gateway* a = g.get();
  mgr.manage("gw", std::move(g));
  auto* ping = static_cast<PingActor*>(mgr.manage("ping", std::make_unique<PingActor>(n)).actor());
  ping->peer = a->remote("pong", b.gw->endpoint(), b.gw->public_key());
  mgr.init();
  REQUIRE(mgr.find("ping").send(Go{}) == SendResult::ok);
  CHECK(wait_until([&] { return ping->pongs.load() == n; }, std::chrono::seconds(60)));
  CHECK(ping->bad.load() == 0);
  CHECK(b.pong->pings.load() == n);
  for (Gateway* gw : {a, b.gw}) {
    const GatewayStats s = gw->stats();
    CHECK(s.auth_denied == 0);
    CHECK(s.handshakes_failed == 0);
    CHECK(s.dropped_total() == 0);
  }
  mgr.end();
}

TEST_CASE("a client with an unknown key gets nothing through, and each refusal is counted") {
  TempDir keys, allow;
  (void)create_curve_key_pair(keys.path, "server");
  const CurveKeyPair known = create_curve_key_pair(allow.path, "known");
  const CurveKeyPair stranger = create_curve_key_pair(keys.path, "stranger");
  Server s(curve_config(keys, "server", allow.path));
  const std::string server_key(s.gw->public_key());
  const std::string ep(s.gw->endpoint());
  {
    RawClient c(ep, &stranger, server_key);
    for (int i = 0; i < 10; ++i) c.ping();
    REQUIRE(wait_until([&] { return s.gw->stats().auth_denied >= 1; }));
    std::this_thread::sleep_for(std::chrono::milliseconds(300));  // a reconnect or two
  }
  CHECK(s.pong->pings.load() == 0);
  CHECK(s.gw->stats().frames_in == 0);
  CHECK(s.gw->stats().handshakes_failed == 0);
  // the same frames from a known key go through (the test can fail)
  RawClient ok(ep, &known, server_key);
  ok.ping();
  CHECK(wait_until([&] { return s.pong->pings.load() == 1; }));
}

TEST_CASE("a client without CURVE, or with a wrong server key, gets nothing through, counted") {
  TempDir keys, allow;
  (void)create_curve_key_pair(keys.path, "server");
  const CurveKeyPair known = create_curve_key_pair(allow.path, "known");
  Server s(curve_config(keys, "server", allow.path));
  const std::string ep(s.gw->endpoint());
  SUBCASE("plain client") {
    RawClient c(ep, nullptr, "");
    for (int i = 0; i < 10; ++i) c.ping();
    CHECK(wait_until([&] { return s.gw->stats().handshakes_failed >= 1; }));
  }
  SUBCASE("wrong server key") {
    RawClient c(ep, &known, known.public_key);  // our own key is not the server's
    for (int i = 0; i < 10; ++i) c.ping();
    CHECK(wait_until([&] { return s.gw->stats().handshakes_failed >= 1; }));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  CHECK(s.pong->pings.load() == 0);
  CHECK(s.gw->stats().frames_in == 0);
  CHECK(s.gw->stats().auth_denied == 0);
}
