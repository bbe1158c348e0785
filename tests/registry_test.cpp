// RegistryClient (tern/registry.hpp) against a small in-test registry on loopback. The real
// server (scripts/registry) and the cross-language checks are in
// tests/integration/test_registry_processes.py.
#include <doctest/doctest.h>

#include <zmq.h>

#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <tern/curve.hpp>
#include <tern/gateway.hpp>
#include <tern/manager.hpp>
#include <tern/registry.hpp>
#include <tern/shm.hpp>

#include "test_util.hpp"

using namespace tern;
using namespace std::chrono_literals;

namespace {

/// The value of `"key":"..."` in a compact request (the client writes no spaces), or "".
std::string field(const std::string& req, const std::string& key) {
  const std::string k = "\"" + key + "\":\"";
  const auto p = req.find(k);
  if (p == std::string::npos) return {};
  const auto e = req.find('"', p + k.size());
  return req.substr(p + k.size(), e - p - k.size());
}

/// A registry speaking the protocol with a map; `override_reply` may answer instead, and
/// `silent` makes it swallow requests (the client must time out and recover).
class FakeRegistry {
 public:
  /// `curve_secret`: serve as a CURVE server with this secret key (no ZAP handler: any
  /// client key is let in; the allow-list is the real server's job, tested with it).
  explicit FakeRegistry(std::string curve_secret = {}) : curve_secret_(std::move(curve_secret)) {
    ctx_ = zmq_ctx_new();
    sock_ = zmq_socket(ctx_, ZMQ_REP);
    const int zero = 0;
    zmq_setsockopt(sock_, ZMQ_LINGER, &zero, sizeof zero);
    make_curve_server();
    REQUIRE(zmq_bind(sock_, "tcp://127.0.0.1:*") == 0);
    char buf[128];
    std::size_t n = sizeof buf;
    zmq_getsockopt(sock_, ZMQ_LAST_ENDPOINT, buf, &n);
    endpoint = buf;
    thread_ = std::thread([this] { run(); });
  }
  ~FakeRegistry() {
    stop_ = true;
    thread_.join();
    zmq_close(sock_);
    zmq_ctx_term(ctx_);
  }

  std::vector<std::string> requests() {
    std::lock_guard lk(mu);
    return seen;
  }
  int count(const std::string& type) {
    std::lock_guard lk(mu);
    int n = 0;
    for (const auto& r : seen) n += field(r, "message_type") == type;
    return n;
  }

  std::string endpoint;
  std::mutex mu;
  std::vector<std::string> seen;
  std::map<std::string, std::pair<std::string, std::string>> names;  // name -> (endpoint, manager)
  std::map<std::string, std::string> keys;                           // name -> actor_server_key
  std::function<std::string(const std::string&)> override_reply;     // "" = not overridden
  void set_override(std::function<std::string(const std::string&)> f) {
    std::lock_guard lk(mu);
    override_reply = std::move(f);
  }
  std::atomic<bool> silent{false};
  bool online = true;

 private:
  void run() {
    bool owe_reply = false;  // a REP socket must answer before it can receive again
    while (!stop_) {
      zmq_pollitem_t it{sock_, 0, ZMQ_POLLIN, 0};
      if (zmq_poll(&it, 1, 20) <= 0) continue;
      char buf[4096];
      const int n = zmq_recv(sock_, buf, sizeof buf, 0);
      if (n < 0) continue;
      const std::string req(buf, static_cast<std::size_t>(std::min(n, 4096)));
      std::string rep;
      {
        std::lock_guard lk(mu);
        seen.push_back(req);
        if (silent) {
          // A REP socket cannot skip a reply: rebind a fresh one so the next client gets
          // through, the silenced request never answered.
          owe_reply = true;
        } else {
          if (override_reply) rep = override_reply(req);
          if (rep.empty()) rep = answer(req);
        }
      }
      if (owe_reply) {
        reopen();
        owe_reply = false;
        continue;
      }
      zmq_send(sock_, rep.data(), rep.size(), 0);
    }
  }
  void reopen() {
    zmq_close(sock_);
    sock_ = zmq_socket(ctx_, ZMQ_REP);
    const int zero = 0;
    zmq_setsockopt(sock_, ZMQ_LINGER, &zero, sizeof zero);
    make_curve_server();
    for (int i = 0; i < 200 && zmq_bind(sock_, endpoint.c_str()) != 0; ++i) std::this_thread::sleep_for(5ms);
  }
  void make_curve_server() {
    if (curve_secret_.empty()) return;
    const int one = 1;
    REQUIRE(zmq_setsockopt(sock_, ZMQ_CURVE_SERVER, &one, sizeof one) == 0);
    REQUIRE(zmq_setsockopt(sock_, ZMQ_CURVE_SECRETKEY, curve_secret_.c_str(), 40) == 0);
  }
  std::string answer(const std::string& req) {
    const std::string type = field(req, "message_type");
    const std::string name = field(req, "actor_name");
    if (type == "RegisterActor") {
      auto it = names.find(name);
      if (it != names.end() && it->second.second != field(req, "manager_id"))
        return R"({"message_type": "RegistrationFailed", "actor_name": ")" + name +
               R"(", "reason": "Name already registered", "owner": ")" + it->second.second + "\"}";
      names[name] = {field(req, "actor_endpoint"), field(req, "manager_id")};
      if (const std::string k = field(req, "actor_server_key"); !k.empty()) keys[name] = k;
      return R"({"message_type": "RegistrationOk", "actor_name": ")" + name + "\"}";
    }
    if (type == "UnregisterActor") {
      names.erase(name);
      return R"({"message_type": "RegistrationOk", "actor_name": ")" + name + "\"}";
    }
    if (type == "LookupActor") {
      auto it = names.find(name);
      if (it == names.end())
        return R"({"message_type": "LookupResult", "actor_name": ")" + name +
               R"(", "endpoint": null, "online": false})";
      const auto k = keys.find(name);
      return R"({"message_type": "LookupResult", "actor_name": ")" + name + R"(", "endpoint": ")" +
             it->second.first + R"(", "online": )" + (online ? "true" : "false") +
             (k == keys.end() ? std::string() : R"(, "server_key": ")" + k->second + "\"") + "}";
    }
    if (type == "Heartbeat") return R"({"message_type": "HeartbeatAck"})";
    if (type == "ListActors") {
      std::string out = R"({"message_type": "ActorList", "actors": [)";
      bool first = true;
      for (const auto& [n, v] : names) {
        if (!first) out += ", ";
        first = false;
        out += R"({"actor_name": ")" + n + R"(", "endpoint": ")" + v.first + R"(", "online": true, "manager_id": ")" +
               v.second + "\"}";
      }
      return out + "]}";
    }
    return R"({"error": "Unknown message type: )" + type + "\"}";
  }

  std::string curve_secret_;
  void* ctx_;
  void* sock_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

struct GatewayUnderTest {
  wire::Registry reg;
  Gateway gw{reg, GatewayConfig{.bind = "tcp://127.0.0.1:*"}};
};

/// A fresh directory under TMPDIR, removed with everything in it.
struct TempDir {
  TempDir() {
    std::string t = (std::filesystem::temp_directory_path() / "tern-registry-XXXXXX").string();
    REQUIRE(::mkdtemp(t.data()) != nullptr);
    path = t;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string path;
};

/// A gateway running CURVE with key pair "gw" (allow-list: key pair "peer").
struct CurveGateway {
  TempDir d;
  CurveKeyPair me = create_curve_key_pair(d.path, "gw");
  CurveKeyPair peer = create_curve_key_pair(d.path, "peer");
  CurveKeyPair registry = create_curve_key_pair(d.path, "registry");
  wire::Registry reg;
  std::unique_ptr<Gateway> gw = make();
  std::unique_ptr<Gateway> make() {
    GatewayConfig c{.bind = "tcp://127.0.0.1:*"};
    c.curve.key_file = d.path + "/gw.key_secret";
    c.curve.allow_keys = {peer.public_key};
    return std::make_unique<Gateway>(reg, c);
  }
};

RegistryConfig config(const FakeRegistry& fake) {
  RegistryConfig c;
  c.endpoint = fake.endpoint;
  c.timeout_ms = 2000;
  c.heartbeat_ms = 50;
  return c;
}

}  // namespace

TEST_CASE("registers its actors at the gateway's endpoint, heartbeats, and unregisters at close") {
  FakeRegistry fake;
  GatewayUnderTest g;
  RegistryConfig c = config(fake);
  c.manager_id = "cpp-1";
  c.actors = {"pong", "quotes"};
  {
    RegistryClient client(g.gw, c);
    CHECK(client.manager_id() == "cpp-1");
    CHECK(client.actor_endpoint() == g.gw.endpoint());
    {
      std::lock_guard lk(fake.mu);
      REQUIRE(fake.names.count("pong") == 1);
      CHECK(fake.names["pong"].first == std::string(g.gw.endpoint()));
      CHECK(fake.names["quotes"].second == "cpp-1");
    }
    CHECK(test::wait_until([&] { return client.stats().heartbeats >= 3; }, 10s));
    CHECK(fake.count("Heartbeat") >= 3);
    for (const auto& r : fake.requests())
      if (field(r, "message_type") == "Heartbeat") CHECK(r.find("\"timestamp_ms\":") != std::string::npos);
  }
  std::lock_guard lk(fake.mu);
  CHECK(fake.names.empty());
  bool saw = false;
  for (const auto& r : fake.seen)
    if (field(r, "message_type") == "UnregisterActor") {
      saw = true;
      CHECK(field(r, "manager_id") == "cpp-1");
    }
  CHECK(saw);
}

TEST_CASE("lookup gives a remote ActorRef, or NotFound / Offline naming the actor") {
  FakeRegistry fake;
  GatewayUnderTest g;
  RegistryConfig c = config(fake);
  c.lookup_cache_ms = 0;
  RegistryClient client(g.gw, c);
  {
    std::lock_guard lk(fake.mu);
    fake.names["research"] = {"tcp://localhost:5003", "py-1"};
  }
  const ActorRef r = client.lookup("research");
  CHECK(r.is_remote());
  CHECK(r == g.gw.remote("research", "tcp://localhost:5003"));
  CHECK_THROWS_WITH_AS(client.lookup("nobody"), doctest::Contains("'nobody' is not registered"), NotFound);
  {
    std::lock_guard lk(fake.mu);
    fake.online = false;
  }
  CHECK_THROWS_WITH_AS(client.lookup("research"), doctest::Contains("at tcp://localhost:5003 is offline"),
                       Offline);
  CHECK(client.lookup("research", true) == r);
  // the peer moved: the next lookup gives the new ref
  {
    std::lock_guard lk(fake.mu);
    fake.online = true;
    fake.names["research"] = {"tcp://localhost:6003", "py-2"};
  }
  CHECK(client.lookup("research") == g.gw.remote("research", "tcp://localhost:6003"));
  const auto all = client.list();
  REQUIRE(all.size() == 1);
  CHECK(all[0].name == "research");
  CHECK(all[0].manager_id == "py-2");
}

namespace {
struct ShmEcho : Actor {
  struct Hello {
    static constexpr MessageId message_id = 9300;
    int n = 0;
  };
  ShmEcho() { handle<&ShmEcho::on_hello>(); }
  void on_hello(const Hello& h) { got.store(h.n); }
  std::atomic<int> got{0};
};
}  // namespace

TEST_CASE("an actor exported through shared memory is registered at shm://NODE/ACTOR and found by name") {
  FakeRegistry fake;
  GatewayUnderTest g;
  RegistryConfig c = config(fake);
  c.lookup_cache_ms = 0;
  RegistryClient client(g.gw, c);
  const std::string dir = "/dev/shm/tern-regtest-" + std::to_string(getpid());
  std::filesystem::create_directories(dir);
  {
    Manager m;
    auto* echo = new ShmEcho;
    m.manage("echo", std::unique_ptr<Actor>(echo));
    ShmNode a({.name = "feed", .dir = dir, .ring_bytes = 1u << 16});
    ShmNode b({.name = "strategy", .dir = dir, .ring_bytes = 1u << 16});
    a.export_actor(m.find("echo"));
    a.start();
    m.init();
    client.register_actor("quotes", "shm://feed/echo");
    {
      std::lock_guard lk(fake.mu);
      CHECK(fake.names["quotes"].first == "shm://feed/echo");
    }
    CHECK_THROWS_WITH_AS(client.lookup("quotes"), doctest::Contains("lookup(name, shm_node)"), RegistryError);
    const ActorRef ref = client.lookup("quotes", b);
    CHECK(ref.is_remote());
    CHECK(ref.try_send(ShmEcho::Hello{7}) == SendResult::ok);
    CHECK(test::wait_until([&] { return echo->got.load() == 7; }));
    // a name at a network endpoint still goes through the gateway
    {
      std::lock_guard lk(fake.mu);
      fake.names["research"] = {"tcp://localhost:5003", "py-1"};
    }
    CHECK(client.lookup("research", b) == g.gw.remote("research", "tcp://localhost:5003"));
    m.end();
  }
  std::filesystem::remove_all(dir);
}

TEST_CASE("lookup answers from its cache for lookup_cache_ms, then asks again") {
  FakeRegistry fake;
  GatewayUnderTest g;
  RegistryConfig c = config(fake);
  c.lookup_cache_ms = 60'000;
  c.max_cached = 2;
  RegistryClient client(g.gw, c);
  {
    std::lock_guard lk(fake.mu);
    for (const char* n : {"a", "b", "c"}) fake.names[n] = {"tcp://localhost:1", "m"};
  }
  (void)client.lookup("a");
  (void)client.lookup("a");
  CHECK(client.stats().lookups == 1);
  CHECK(client.stats().cache_hits == 1);
  (void)client.lookup("b");
  (void)client.lookup("c");  // evicts "a", the oldest
  (void)client.lookup("a");
  CHECK(client.stats().lookups == 4);
  CHECK(client.resolve("zzz") == std::nullopt);
}

TEST_CASE("a duplicate name is refused: NameTaken names the name and the owner, nothing stays registered") {
  FakeRegistry fake;
  GatewayUnderTest g;
  {
    std::lock_guard lk(fake.mu);
    fake.names["quotes"] = {"tcp://elsewhere:1", "md-host-1"};
  }
  RegistryConfig c = config(fake);
  c.actors = {"mine", "quotes"};
  try {
    RegistryClient client(g.gw, c);
    FAIL("expected NameTaken");
  } catch (const NameTaken& e) {
    CHECK(e.name() == "quotes");
    CHECK(e.owner() == "md-host-1");
    CHECK(std::string(e.what()).find("'quotes' is already registered by manager 'md-host-1'") !=
          std::string::npos);
  }
  std::lock_guard lk(fake.mu);
  CHECK(fake.names.count("mine") == 0);  // rolled back
  CHECK(fake.names["quotes"].second == "md-host-1");
}

TEST_CASE("error replies and lost replies are RegistryErrors naming the request; the client recovers") {
  FakeRegistry fake;
  GatewayUnderTest g;
  RegistryConfig c = config(fake);
  c.timeout_ms = 200;
  c.heartbeat_ms = 60'000;
  RegistryClient client(g.gw, c);
  fake.set_override([](const std::string&) { return std::string(R"({"error": "Bad request: nope"})"); });
  CHECK_THROWS_WITH_AS(client.register_actor("x"), doctest::Contains("refused RegisterActor: Bad request: nope"),
                       RegistryError);
  fake.set_override([](const std::string&) { return std::string("not json"); });
  CHECK_THROWS_WITH_AS(client.resolve("x"), doctest::Contains("malformed reply"), RegistryError);
  fake.set_override(nullptr);
  fake.silent = true;
  const auto t0 = std::chrono::steady_clock::now();
  CHECK_THROWS_WITH_AS(client.resolve("x"), doctest::Contains("did not answer LookupActor within 200 ms"),
                       RegistryError);
  CHECK(std::chrono::steady_clock::now() - t0 < 5s);
  fake.silent = false;
  // The REQ socket that lost its reply was recreated: requests work again.
  CHECK(test::wait_until(
      [&] {
        try {
          return !client.resolve("x").has_value();
        } catch (const RegistryError&) {
          return false;
        }
      },
      10s));
  // a family registry does not know the ListActors extension
  fake.set_override([](const std::string& req) {
    return field(req, "message_type") == "ListActors" ? std::string(R"({"error": "Unknown message type: ListActors"})")
                                                      : std::string();
  });
  CHECK_THROWS_WITH_AS(client.list(), doctest::Contains("does not support ListActors (a tern extension)"),
                       RegistryError);
}

TEST_CASE("names the registry lost are registered again by the heartbeat thread") {
  FakeRegistry fake;
  GatewayUnderTest g;
  RegistryConfig c = config(fake);
  c.actors = {"svc"};
  RegistryClient client(g.gw, c);
  {
    std::lock_guard lk(fake.mu);
    fake.names.clear();  // as a restarted registry
  }
  CHECK(test::wait_until([&] { return client.stats().reregistered >= 1; }, 10s));
  std::lock_guard lk(fake.mu);
  CHECK(fake.names.count("svc") == 1);
}

TEST_CASE("set-up errors name the value") {
  GatewayUnderTest g;
  RegistryConfig c;
  c.endpoint = "localhost:5555";
  CHECK_THROWS_WITH_AS(RegistryClient(g.gw, c), doctest::Contains("'localhost:5555'"), std::invalid_argument);
  c.endpoint = "tcp://127.0.0.1:1";
  c.heartbeat_ms = 0;
  CHECK_THROWS_WITH_AS(RegistryClient(g.gw, c), doctest::Contains("heartbeat_ms must be > 0, got 0"),
                       std::invalid_argument);
  c.heartbeat_ms = 2000;
  c.endpoint = "bogus://x";
  c.actors = {"a"};
  CHECK_THROWS_AS(RegistryClient(g.gw, c), std::invalid_argument);
}

TEST_CASE("over CURVE the client uses the gateway's own key pair, registers its public key, and looks up refs with the registered key") {
  CurveGateway g;
  FakeRegistry fake(g.registry.secret_key);
  RegistryConfig c = config(fake);
  c.server_key = g.registry.public_key;
  c.actors = {"svc"};
  RegistryClient client(*g.gw, c);
  CHECK(client.secure());
  {
    std::lock_guard lk(fake.mu);
    REQUIRE(fake.names.count("svc") == 1);
    CHECK(fake.keys["svc"] == std::string(g.gw->public_key()));  // actor_server_key sent
    fake.names["peer"] = {"tcp://127.0.0.1:5999", "other"};
    fake.keys["peer"] = g.peer.public_key;
    fake.names["keyless"] = {"tcp://127.0.0.1:5998", "family"};
  }
  const auto r = client.resolve("peer");
  REQUIRE(r.has_value());
  CHECK(r->server_key == g.peer.public_key);
  const ActorRef ref = client.lookup("peer");  // the three-argument remote(), no throw
  CHECK(static_cast<bool>(ref));
  CHECK_THROWS_WITH_AS(client.lookup("keyless"), doctest::Contains("'keyless' at tcp://127.0.0.1:5998 was registered without a CURVE key"),
                       RegistryError);
  const auto rows = client.list();
  CHECK(rows.size() == 3);
  client.close();
  CHECK(fake.count("UnregisterActor") == 1);
}

TEST_CASE("a CURVE gateway with a plain registry registers its key but does not trust keys looked up there") {
  CurveGateway g;
  FakeRegistry fake;
  RegistryConfig c = config(fake);
  c.actors = {"svc"};
  RegistryClient client(*g.gw, c);
  CHECK_FALSE(client.secure());
  {
    std::lock_guard lk(fake.mu);
    CHECK(fake.keys["svc"] == std::string(g.gw->public_key()));
    fake.names["peer"] = {"tcp://127.0.0.1:5999", "other"};
    fake.keys["peer"] = g.peer.public_key;
  }
  CHECK(client.resolve("peer")->server_key.empty());
  CHECK_THROWS_WITH_AS(client.lookup("peer"), doctest::Contains("plain registry (not trusted for keys)"), RegistryError);
  // the way out: the caller's own key
  CHECK(static_cast<bool>(g.gw->remote("peer", client.resolve("peer")->endpoint, g.peer.public_key)));
}

TEST_CASE("a plain gateway sends no key and a plain client gets nothing from a CURVE registry") {
  CurveGateway keys;
  FakeRegistry fake(keys.registry.secret_key);
  GatewayUnderTest g;
  RegistryConfig c = config(fake);
  c.timeout_ms = 200;
  c.actors = {"svc"};
  CHECK_THROWS_WITH_AS(RegistryClient(g.gw, c), doctest::Contains("did not answer RegisterActor within 200 ms"),
                       RegistryError);
  CHECK(fake.count("RegisterActor") == 0);
  // with a key pair of its own (key_file) a plain gateway may use a CURVE registry
  c.server_key = keys.registry.public_key;
  c.key_file = keys.d.path + "/peer.key_secret";
  c.timeout_ms = 2000;
  RegistryClient client(g.gw, c);
  CHECK(client.secure());
  std::lock_guard lk(fake.mu);
  CHECK(fake.names.count("svc") == 1);
  CHECK(fake.keys.count("svc") == 0);
}

TEST_CASE("CURVE set-up errors name the value") {
  CurveGateway keys;
  GatewayUnderTest g;
  RegistryConfig c;
  c.endpoint = "tcp://127.0.0.1:1";
  c.server_key = "short";
  CHECK_THROWS_WITH_AS(RegistryClient(g.gw, c), doctest::Contains("server_key 'short' is not a CURVE public key"),
                       std::invalid_argument);
  c.server_key = keys.registry.public_key;
  CHECK_THROWS_WITH_AS(RegistryClient(g.gw, c), doctest::Contains("no key pair of ours"), std::invalid_argument);
  c.key_file = keys.d.path + "/missing.key_secret";
  CHECK_THROWS_WITH_AS(RegistryClient(g.gw, c), doctest::Contains("missing.key_secret"), std::runtime_error);
  c.server_key.clear();
  CHECK_THROWS_WITH_AS(RegistryClient(g.gw, c), doctest::Contains("server_key (the registry's public key) is empty"),
                       std::invalid_argument);
}
