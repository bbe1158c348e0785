// The gateway against a hostile peer, over real loopback sockets: bounded tables, bounded
// memory, no connection to endpoints the config does not allow, no self-deadlock
// (docs/gateway.md, "Limits and worst-case memory"). Every wait is bounded.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <zmq.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <tern/gateway.hpp>
#include <tern/manager.hpp>

#include "test_util.hpp"

using namespace tern;
using tern::test::wait_until;

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
struct Hold {  // the handler blocks until released
  static constexpr MessageId message_id = 702;
  std::int64_t n = 0;
  TERN_WIRE(Hold, n)
};
struct Fan {  // the handler sends `n` replies and `n` messages to a remote actor
  static constexpr MessageId message_id = 703;
  std::int64_t n = 0;
  TERN_WIRE(Fan, n)
};
struct Poke {  // the handler sends to the remote ref it saved
  static constexpr MessageId message_id = 704;
  std::int64_t n = 0;
  TERN_WIRE(Poke, n)
};

wire::Registry registry() {
  wire::Registry r;
  r.add<Ping>().add<Pong>().add<Hold>().add<Fan>().add<Poke>();
  return r;
}

std::atomic<bool> g_release{false};

class Target : public Actor {
 public:
  Target() {
    handle<&Target::on_ping>();
    handle<&Target::on_hold>();
    handle<&Target::on_fan>();
    handle<&Target::on_poke>();
  }
  void on_ping(const Ping& p) {
    if (!saved) saved = sender();
    (void)reply(Pong{p.count});
  }
  void on_hold(const Hold&) {
    holding.store(true);
    // bounded: a test that forgets to release still ends
    wait_until([] { return g_release.load(); }, std::chrono::seconds(30));
  }
  void on_fan(const Fan& f) {
    for (std::int64_t i = 0; i < f.n; ++i) {
      if (reply(Pong{i}) != SendResult::ok) fan_failures.fetch_add(1);
      if (fan_to.send(Pong{1000 + i}) != SendResult::ok) fan_failures.fetch_add(1);
    }
    fan_done.fetch_add(1);
  }
  void on_poke(const Poke&) { poke_result.store(static_cast<int>(saved.send(Pong{99}))); }

  ActorRef saved, fan_to;
  std::atomic<bool> holding{false};
  std::atomic<int> fan_failures{0}, fan_done{0};
  std::atomic<int> poke_result{-1};
};

// Sanitizers keep freed memory in quarantine and add shadow memory: resident-memory bounds
// are checked in the release build only (the traffic and every other check still run).
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kCheckRss = false;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
constexpr bool kCheckRss = false;
#else
constexpr bool kCheckRss = true;
#endif
#else
constexpr bool kCheckRss = true;
#endif

std::size_t rss_bytes() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6)) * 1024;
  return 0;
}

/// A ZeroMQ peer: PUSH to the gateway, PULL (on 127.0.0.1) for what comes back.
struct Client {
  explicit Client(std::string_view target, int sndhwm = 1000) {
    ctx = zmq_ctx_new();
    pull = zmq_socket(ctx, ZMQ_PULL);
    const int linger = 0, timeout = 10000;
    zmq_setsockopt(pull, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(pull, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    REQUIRE(zmq_bind(pull, "tcp://127.0.0.1:*") == 0);
    char buf[256];
    std::size_t len = sizeof buf;
    zmq_getsockopt(pull, ZMQ_LAST_ENDPOINT, buf, &len);
    endpoint.assign(buf, len - 1);
    push = zmq_socket(ctx, ZMQ_PUSH);
    zmq_setsockopt(push, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(push, ZMQ_SNDHWM, &sndhwm, sizeof sndhwm);
    zmq_setsockopt(push, ZMQ_SNDTIMEO, &timeout, sizeof timeout);
    REQUIRE(zmq_connect(push, std::string(target).c_str()) == 0);
  }
  ~Client() {
    zmq_close(push);
    zmq_close(pull);
    zmq_ctx_term(ctx);
  }
  bool send(std::string_view frame) const {
    return zmq_send(push, frame.data(), frame.size(), 0) == static_cast<int>(frame.size());
  }
  std::optional<std::string> recv(int timeout_ms = 10000) const {
    zmq_setsockopt(pull, ZMQ_RCVTIMEO, &timeout_ms, sizeof timeout_ms);
    zmq_msg_t m;
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, pull, 0) < 0) {
      zmq_msg_close(&m);
      return std::nullopt;
    }
    std::string s(static_cast<const char*>(zmq_msg_data(&m)), zmq_msg_size(&m));
    zmq_msg_close(&m);
    return s;
  }
  static std::string frame(std::string_view actor, std::string_view endpoint,
                           std::string_view receiver, std::string_view type,
                           std::string_view payload) {
    std::string f = R"({"sender_actor":")";
    f.append(actor).append(R"(","sender_endpoint":")").append(endpoint);
    f.append(R"(","receiver":")").append(receiver).append(R"(","message_type":")");
    f.append(type).append(R"(","message":)").append(payload).append("}");
    return f;
  }
  std::string ping(std::string_view receiver, std::int64_t n, std::string_view as = "tester") const {
    return frame(as, endpoint, receiver, "Ping", R"({"count":)" + std::to_string(n) + "}");
  }

  void* ctx = nullptr;
  void* pull = nullptr;
  void* push = nullptr;
  std::string endpoint;
};

/// A Manager with a gateway and the target actor "pong".
struct Node {
  explicit Node(GatewayConfig cfg = config(), MailboxConfig gw_mailbox = {}) {
    auto g = std::make_unique<Gateway>(registry(), std::move(cfg));
    gw = g.get();
    mgr.manage("gw", std::move(g), {}, gw_mailbox);
    ref = mgr.manage("pong", std::make_unique<Target>());
    target = static_cast<Target*>(ref.actor());
    g_release.store(false);
  }
  static GatewayConfig config() {
    GatewayConfig c;
    c.bind = "tcp://127.0.0.1:*";
    c.linger_ms = 0;
    return c;
  }
  ~Node() {
    g_release.store(true);
    mgr.end();
  }
  /// A fresh client's Ping comes back as its Pong.
  bool legit_round_trip(std::int64_t n, int timeout_ms = 10000) const {
    Client c(gw->endpoint());
    if (!c.send(c.ping("pong", n))) return false;
    const auto r = c.recv(timeout_ms);
    return r && r->find(R"("message_type":"Pong","message":{"count":)" + std::to_string(n) + "}") !=
                    std::string::npos;
  }

  Manager mgr;
  Gateway* gw = nullptr;
  ActorRef ref;
  Target* target = nullptr;
};

/// A TCP listener of our own on `ip`, port chosen by the kernel; accept() never blocks.
struct RawListener {
  explicit RawListener(const char* ip) {
    fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = 0;
    REQUIRE(inet_pton(AF_INET, ip, &a.sin_addr) == 1);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(::listen(fd, 64) == 0);
    socklen_t len = sizeof a;
    REQUIRE(getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0);
    port = ntohs(a.sin_port);
  }
  /// An abstract-namespace unix socket (what ZeroMQ's "ipc://@NAME" names).
  explicit RawListener(std::string_view abstract_name, bool) {
    fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    a.sun_path[0] = '\0';
    std::memcpy(a.sun_path + 1, abstract_name.data(), abstract_name.size());
    const auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + abstract_name.size());
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), len) == 0);
    REQUIRE(::listen(fd, 64) == 0);
  }
  ~RawListener() { ::close(fd); }
  /// Connections accepted so far (each closed at once).
  int accepted() {
    int n = 0;
    for (int c; (c = ::accept(fd, nullptr, nullptr)) >= 0; ++n) ::close(c);
    return n;
  }
  int fd = -1;
  int port = 0;
};

/// A raw ZMTP 3.0 PUSH peer (NULL mechanism) over one TCP connection: what a hostile peer
/// can write without libzmq's help, holding nothing in this process.
struct RawZmtp {
  explicit RawZmtp(int port) {
    fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(port));
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    unsigned char greeting[64] = {0xFF, 0, 0, 0, 0, 0, 0, 0, 1, 0x7F, 3, 0};
    std::memcpy(greeting + 12, "NULL", 4);
    ok = write_all(greeting, sizeof greeting);
    static constexpr char kReady[] = "\x05READY\x0bSocket-Type\x00\x00\x00\x04PUSH";
    const unsigned char cmd[2] = {0x04, sizeof kReady - 1};
    ok = ok && write_all(cmd, 2) && write_all(kReady, sizeof kReady - 1);
  }
  ~RawZmtp() { ::close(fd); }
  bool write_all(const void* p, std::size_t n) {
    const auto* c = static_cast<const char*>(p);
    while (n) {
      const ssize_t w = ::send(fd, c, n, MSG_NOSIGNAL);
      if (w <= 0) return false;
      c += w;
      n -= static_cast<std::size_t>(w);
    }
    return true;
  }
  /// One frame of `size` bytes of 'x' (written in pieces): false once the gateway's side
  /// has dropped the connection.
  bool send_frame(std::uint64_t size) {
    unsigned char hdr[9] = {0x02};
    for (int i = 0; i < 8; ++i) hdr[1 + i] = static_cast<unsigned char>(size >> (56 - 8 * i));
    if (!write_all(hdr, sizeof hdr)) return false;
    static const std::string chunk(64 * 1024, 'x');
    for (std::uint64_t left = size; left;) {
      const std::size_t n = left < chunk.size() ? static_cast<std::size_t>(left) : chunk.size();
      if (!write_all(chunk.data(), n)) return false;
      left -= n;
    }
    return true;
  }
  int fd = -1;
  bool ok = false;
};

int port_of(std::string_view endpoint) {
  return std::stoi(std::string(endpoint.substr(endpoint.rfind(':') + 1)));
}

}  // namespace

TEST_CASE("after 2,000 frames with distinct sender endpoints a new client's Ping gets its Pong") {
  // Distinct endpoints nobody listens on: 127.0.x.y at the port of a listener of ours on
  // 127.0.0.1 (so no other program's port), refused at once by the kernel.
  RawListener ours("127.0.0.1");
  Node node;  // defaults: max_peers 64, max_remotes 4096
  node.mgr.init();
  {
    Client attacker(node.gw->endpoint());
    for (int i = 0; i < 2000; ++i) {
      const std::string ep = "tcp://127.0." + std::to_string(1 + i / 250) + "." +
                             std::to_string(2 + i % 250) + ":" + std::to_string(ours.port);
      // half to an unknown receiver (a Reject to each endpoint), half to a real one (a Pong)
      std::string actor = "a";  // (not "a" + ...: GCC 12 warns -Wrestrict on that)
      actor += std::to_string(i);
      REQUIRE(attacker.send(Client::frame(actor, ep, i % 2 ? "nobody" : "pong", "Ping",
                                          R"({"count":1})")));
    }
    REQUIRE(wait_until([&] { return node.gw->stats().frames_in >= 2000; }));
  }
  // bounded, and generous: on a loaded machine the 2,000 connects and closes take a while
  CHECK(node.legit_round_trip(7, 60000));
  // every distinct endpoint opened a peer: beyond max_peers each one closed another, by LRU
  // eviction or (on a machine slow enough that a peer idled out meanwhile) peer_idle_ms.
  // The legit client's frame can overtake the attacker's last ones: wait for them too.
  CHECK(wait_until([&] {
    const GatewayStats t = node.gw->stats();
    return t.peers_evicted + t.peers_idle_closed >= 2000 - 64;
  }, std::chrono::seconds(60)));
  const GatewayStats s = node.gw->stats();
  MESSAGE("peers_open " << s.peers_open << ", evicted " << s.peers_evicted << ", send_failed "
                        << s.drops(GatewayDrop::send_failed) << ", bad_endpoint "
                        << s.drops(GatewayDrop::bad_endpoint) << ", messages_out " << s.messages_out
                        << ", idle_closed " << s.peers_idle_closed);
  CHECK(s.peers_open <= 64);
  CHECK(s.peers_evicted + s.peers_idle_closed >= 2000 - 64);
  CHECK(s.drops(GatewayDrop::unknown_actor) == 1000);
  CHECK(s.messages_in >= 1001);
  CHECK(ours.accepted() == 0);
}

TEST_CASE("learnt remotes are forgotten least recently used first, and a stale ref sends nowhere") {
  GatewayConfig cfg = Node::config();
  cfg.max_remotes = 4;
  Node node(cfg);
  node.mgr.init();
  Client c(node.gw->endpoint());
  // t0 is saved by the target (its first sender), then t1..t9 push it out of the table
  for (int i = 0; i < 10; ++i) {
    REQUIRE(c.send(c.ping("pong", i, "t" + std::to_string(i))));
    const auto r = c.recv();
    REQUIRE(r);
    CHECK(r->find(R"("receiver":"t)" + std::to_string(i) + "\"") != std::string::npos);
  }
  GatewayStats s = node.gw->stats();
  CHECK(s.remotes == 4);
  CHECK(s.remotes_evicted == 6);
  // the saved t0 ref is stale: inline (on the gateway thread) the send says no_target...
  REQUIRE(c.send(Client::frame("t9", c.endpoint, "pong", "Poke", R"({"n":1})")));
  REQUIRE(wait_until([&] { return node.target->poke_result.load() != -1; }));
  CHECK(node.target->poke_result.load() == static_cast<int>(SendResult::no_target));
  // ...queued (the target's own thread) it is accepted, then dropped by the gateway
  node.target->poke_result.store(-1);
  REQUIRE(node.ref.send(Poke{2}) == SendResult::ok);
  REQUIRE(wait_until([&] { return node.target->poke_result.load() != -1; }));
  CHECK(wait_until([&] { return node.gw->stats().drops(GatewayDrop::stale_ref) == 2; }));
  CHECK(node.target->saved.name().empty());
  // and nothing reached the peers that took t0's slot
  CHECK_FALSE(c.recv(300));
  // forgotten senders come back as new entries, each answered as itself
  for (int round = 0; round < 2; ++round) {
    for (int i = 0; i < 10; ++i) {
      CAPTURE(round);
      CAPTURE(i);
      REQUIRE(c.send(c.ping("pong", 100 + i, "t" + std::to_string(i))));
      const auto r = c.recv();
      REQUIRE(r);
      CHECK(r->find(R"("receiver":"t)" + std::to_string(i) + R"(","message_type":"Pong","message":{"count":)" +
                    std::to_string(100 + i) + "}") != std::string::npos);
    }
  }
  CHECK(node.gw->stats().drops(GatewayDrop::stale_ref) == 2);
  CHECK(node.gw->stats().remotes == 4);
}

TEST_CASE("after 4,000 frames carrying 60 KB names or endpoints resident memory grew < 64 MB") {
  Node node;
  node.mgr.init();
  Client c(node.gw->endpoint(), 8);  // a short send queue: this process holds few frames
  REQUIRE(node.legit_round_trip(1));
  const std::size_t before = rss_bytes();
  // 60 KB names in the release build; 2 KB under sanitizers (still over the 256-byte limit),
  // where TSan's checks of libzmq's (uninstrumented) buffers make large frames crawl
  std::string big(kCheckRss ? 60 * 1000 : 2000, 'n');
  // 4,000 in the release build (sanitizer builds divide it by TERN_TEST_SCALE)
  const int frames = static_cast<int>(tern::test::scaled(4000));
  for (int i = 0; i < frames; ++i) {
    CAPTURE(i);
    const std::string n = std::to_string(1'000'000 + i);  // every one distinct
    big.replace(0, n.size(), n);
    switch (i % 4) {
      case 0: REQUIRE(c.send(Client::frame(big, c.endpoint, "pong", "Ping", R"({"count":1})"))); break;
      case 1: {
        std::string ep = "tcp://";
        ep += big;
        ep += ":1";
        REQUIRE(c.send(Client::frame("t", ep, "pong", "Ping", R"({"count":1})")));
        break;
      }
      case 2: REQUIRE(c.send(Client::frame("t", c.endpoint, big, "Ping", R"({"count":1})"))); break;
      default: REQUIRE(c.send(Client::frame("t", c.endpoint, "pong", big, R"({"count":1})"))); break;
    }
  }
  // frames_in moves before a frame is decoded: wait for the last one's drop too
  REQUIRE(wait_until([&] {
    const GatewayStats st = node.gw->stats();
    return st.frames_in >= static_cast<std::uint64_t>(frames) + 1 &&
           st.drops(GatewayDrop::name_too_long) >= static_cast<std::uint64_t>(frames);
  }));
  const std::size_t after = rss_bytes();
  MESSAGE("VmRSS before " << before / 1024 << " KiB, after " << after / 1024 << " KiB");
  if (kCheckRss) CHECK(after < before + (64u << 20));
  const GatewayStats s = node.gw->stats();
  CHECK(s.drops(GatewayDrop::name_too_long) == static_cast<std::uint64_t>(frames));
  CHECK(s.remotes <= 1);
  // a sender within the limits is told which limit, and the long name is not echoed back
  const auto reject = c.recv();
  REQUIRE(reject);
  CHECK(reject->find(R"("reason":"Envelope key 'receiver' is longer than the limit of 256 bytes","rejected_by":""})") !=
        std::string::npos);
  CHECK(node.legit_round_trip(2));
}

TEST_CASE("a sender endpoint naming a local ipc socket or a disallowed host gets no connection") {
  RawListener other("127.0.0.2");  // a host the config does not allow
  const std::string ipc_name = "tern-hostile-" + std::to_string(::getpid());
  RawListener ipc(ipc_name, true);
  GatewayConfig cfg = Node::config();
  cfg.allowed_endpoints = {"tcp://127.0.0.1"};
  Node node(cfg);
  node.mgr.init();
  const std::string tcp_ep = "tcp://127.0.0.2:" + std::to_string(other.port);
  const std::string ipc_ep = "ipc://@" + ipc_name;
  {
    Client c(node.gw->endpoint());
    for (const std::string& ep : {tcp_ep, ipc_ep}) {
      REQUIRE(c.send(Client::frame("evil", ep, "pong", "Ping", R"({"count":1})")));    // a reply
      REQUIRE(c.send(Client::frame("evil", ep, "nobody", "Ping", R"({"count":1})")));  // a Reject
    }
    REQUIRE(wait_until([&] { return node.gw->stats().frames_in >= 4; }));
  }
  CHECK(node.legit_round_trip(3));  // 127.0.0.1 is allowed
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  CHECK(other.accepted() == 0);
  CHECK(ipc.accepted() == 0);
  const GatewayStats s = node.gw->stats();
  CHECK(s.senders_refused == 2);
  CHECK(s.drops(GatewayDrop::endpoint_refused) == 2);
  CHECK(s.peers_open == 1);
  CHECK(node.target->stats().reply_failures == 2);  // the pings: delivered without a sender
  // remote() refuses them too, naming the endpoint and the rule
  try {
    (void)node.gw->remote("x", ipc_ep);
    FAIL("remote() accepted an ipc endpoint");
  } catch (const std::invalid_argument& e) {
    CHECK(std::string(e.what()).find(ipc_ep) != std::string::npos);
    CHECK(std::string(e.what()).find("allowed_endpoints (tcp://127.0.0.1)") != std::string::npos);
  }
  CHECK_THROWS_AS(node.gw->remote("x", tcp_ep), std::invalid_argument);
  CHECK_THROWS_AS(node.gw->remote("x", "tcp://127.0.0.1:1;127.0.0.2:2"), std::invalid_argument);
  CHECK_NOTHROW(node.gw->remote("x", "tcp://127.0.0.1:5001"));
}

TEST_CASE("allowed_endpoints patterns are checked at construction, ipc only when listed") {
  GatewayConfig cfg = Node::config();
  cfg.allowed_endpoints = {"udp://*"};
  CHECK_THROWS_AS(Gateway(registry(), cfg), std::invalid_argument);
  cfg.allowed_endpoints = {"tcp://*:0"};
  CHECK_THROWS_AS(Gateway(registry(), cfg), std::invalid_argument);
  cfg.allowed_endpoints = {"tcp://*.example.com:5001", "ipc:///tmp/tern-*"};
  Gateway g(registry(), cfg);
  CHECK_NOTHROW(g.remote("a", "tcp://md.EXAMPLE.com:5001"));
  CHECK_THROWS_AS(g.remote("a", "tcp://md.example.com:5002"), std::invalid_argument);
  CHECK_THROWS_AS(g.remote("a", "tcp://example.com:5001"), std::invalid_argument);
  CHECK_NOTHROW(g.remote("a", "ipc:///tmp/tern-x"));
  CHECK_THROWS_AS(g.remote("a", "ipc:///run/x"), std::invalid_argument);
  GatewayConfig dflt = Node::config();
  Gateway d(registry(), dflt);
  CHECK_THROWS_AS(d.remote("a", "ipc:///tmp/tern-x"), std::invalid_argument);
  CHECK_NOTHROW(d.remote("a", "tcp://[::1]:5001"));
  CHECK(GatewayConfig{}.bind == "tcp://127.0.0.1:5001");
}

TEST_CASE("a config past libzmq's socket limit is refused naming the values") {
  GatewayConfig cfg = Node::config();
  cfg.max_peers = 1u << 20;
  try {
    Gateway g(registry(), cfg);
    FAIL("accepted");
  } catch (const std::invalid_argument& e) {
    CHECK(std::string(e.what()).find("max_peers 1048576") != std::string::npos);
  }
  cfg.max_peers = 2000;  // over libzmq's default 1023 sockets: the gateway raises the limit
  Gateway g(registry(), cfg);
  CHECK(g.stats().peers_open == 0);
}

TEST_CASE("40 frames of 15 MiB while a handler is busy do not raise resident memory") {
  Node node;  // socket_max_frame_bytes 0: libzmq refuses frames over 64 KiB + 4 KiB
  node.mgr.init();
  Client c(node.gw->endpoint());
  REQUIRE(node.legit_round_trip(1));
  // an inline handler that blocks: the gateway thread stops reading
  REQUIRE(c.send(Client::frame("t", c.endpoint, "pong", "Hold", R"({"n":1})")));
  REQUIRE(wait_until([&] { return node.target->holding.load(); }));
  const std::size_t before = rss_bytes();
  int refused = 0;
  for (int i = 0; i < 40; ++i) {
    RawZmtp raw(port_of(node.gw->endpoint()));
    if (!raw.ok || !raw.send_frame(15u << 20)) ++refused;
  }
  const std::size_t after = rss_bytes();
  MESSAGE("VmRSS before " << before / 1024 << " KiB, after " << after / 1024 << " KiB; "
                          << refused << " of 40 connections dropped mid-frame");
  CHECK(refused >= 1);
  // The documented bound for these frames is 0 (refused before buffering); allow noise.
  if (kCheckRss) CHECK(after < before + (16u << 20));
  g_release.store(true);
  CHECK(node.legit_round_trip(2));
  CHECK(node.gw->stats().frames_in == 3);  // the two pings and the Hold: none of the big ones
}

TEST_CASE("an inline handler that sends more than the gateway's mailbox holds completes") {
  GatewayConfig cfg = Node::config();
  Node node(cfg, MailboxConfig{8});  // the gateway's own mailbox: 8 slots
  Client sink(node.gw->endpoint());  // the remote actor the handler fans out to
  node.target->fan_to = node.gw->remote("sink", sink.endpoint);
  node.mgr.init();
  Client c(node.gw->endpoint());
  REQUIRE(c.send(Client::frame("t", c.endpoint, "pong", "Fan", R"({"n":40})")));
  // every reply, in order, and every message to the other remote actor, in order
  for (int i = 0; i < 40; ++i) {
    const auto r = c.recv();
    REQUIRE(r);
    CHECK(r->find(R"("message":{"count":)" + std::to_string(i) + "}") != std::string::npos);
  }
  for (int i = 0; i < 40; ++i) {
    const auto r = sink.recv();
    REQUIRE(r);
    CHECK(r->find(R"("message":{"count":)" + std::to_string(1000 + i) + "}") != std::string::npos);
  }
  CHECK(node.target->fan_done.load() == 1);
  CHECK(node.target->fan_failures.load() == 0);
  CHECK(node.gw->stats().dropped_total() == 0);
}

TEST_CASE("idle peers are closed after peer_idle_ms and reopened on next use") {
  GatewayConfig cfg = Node::config();
  cfg.peer_idle_ms = 100;
  Node node(cfg);
  node.mgr.init();
  Client c(node.gw->endpoint());
  REQUIRE(c.send(c.ping("pong", 1)));
  REQUIRE(c.recv());
  CHECK(wait_until([&] { return node.gw->stats().peers_idle_closed == 1; }, std::chrono::seconds(5)));
  CHECK(node.gw->stats().peers_open == 0);
  REQUIRE(c.send(c.ping("pong", 2)));
  const auto r = c.recv();
  REQUIRE(r);
  CHECK(r->find(R"("count":2)") != std::string::npos);
}

TEST_CASE("inbound connections beyond max_connections are shut down, and counted") {
  GatewayConfig cfg = Node::config();
  cfg.max_connections = 2;
  Node node(cfg);
  node.mgr.init();
  const int port = port_of(node.gw->endpoint());
  {
    std::vector<std::unique_ptr<RawZmtp>> conns;
    for (int i = 0; i < 6; ++i) conns.push_back(std::make_unique<RawZmtp>(port));
    CHECK(wait_until([&] { return node.gw->stats().connections_refused >= 4; }, std::chrono::seconds(10)));
    // the refused ones see the end of the stream
    int closed = 0;
    for (auto& c : conns) {
      char b[256];
      timeval tv{0, 200'000};
      setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      ssize_t n;
      while ((n = ::recv(c->fd, b, sizeof b, 0)) > 0) {
      }
      if (n == 0) ++closed;
    }
    CHECK(closed >= 4);
  }
  CHECK(wait_until([&] { return node.gw->stats().connections == 0; }, std::chrono::seconds(10)));
  CHECK(node.legit_round_trip(5));
}
