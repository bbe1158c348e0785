#include <doctest/doctest.h>

#include <zmq.h>

#include <atomic>
#include <chrono>
#include <cstring>
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
  static constexpr MessageId message_id = 500;
  std::int64_t count = 0;
  TERN_WIRE(Ping, count)
};
struct Pong {
  static constexpr MessageId message_id = 501;
  std::int64_t count = 0;
  TERN_WIRE(Pong, count)
};
struct Level {
  static constexpr MessageId message_id = 502;
  std::uint8_t level = 0;
  TERN_WIRE(Level, level)
};
struct Seq {
  static constexpr MessageId message_id = 503;
  std::uint64_t n = 0;
  char tag[8] = {};
  double px = 0;
  std::string note;
  TERN_WIRE(Seq, n, tag, px, note)
};
struct Bogus {  // registered on one side only
  static constexpr MessageId message_id = 504;
  std::int32_t x = 0;
  TERN_WIRE(Bogus, x)
};
struct Go {  // local only: start sending
  static constexpr MessageId message_id = 505;
};

wire::Registry base_registry() {
  wire::Registry r;
  r.add<Ping>().add<Pong>().add<Level>().add<Seq>();
  return r;
}

class PongActor : public Actor {
 public:
  PongActor() {
    handle<&PongActor::on_start>();
    handle<&PongActor::on_ping>();
    handle<&PongActor::on_level>();
  }
  void on_start(const Start&) { own_thread = std::this_thread::get_id(); }
  void on_ping(const Ping& p) {
    ping_thread.store(std::this_thread::get_id());
    pings.fetch_add(1);
    (void)reply(Pong{p.count});
  }
  std::atomic<std::thread::id> own_thread, ping_thread;
  void on_level(const Level& l) { last_level.store(l.level); }
  std::atomic<int> pings{0};
  std::atomic<int> last_level{-1};
};

/// A bare ZeroMQ peer: PUSH to the gateway, PULL for what comes back.
struct RawPeer {
  explicit RawPeer(std::string_view target) {
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
    REQUIRE(zmq_connect(push, std::string(target).c_str()) == 0);
  }
  ~RawPeer() {
    zmq_close(push);
    zmq_close(pull);
    zmq_ctx_term(ctx);
  }
  void send(std::string_view frame, int flags = 0) const {
    REQUIRE(zmq_send(push, frame.data(), frame.size(), flags) == static_cast<int>(frame.size()));
  }
  std::optional<std::string> recv() const {
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
  /// An envelope in the Python peer's key order, from "tester" at our PULL endpoint.
  std::string envelope(std::string_view receiver, std::string_view type,
                       std::string_view payload) const {
    return R"({"sender_actor":"tester","sender_endpoint":")" + endpoint +
           R"(","receiver":")" + std::string(receiver) + R"(","message_type":")" +
           std::string(type) + R"(","message":)" + std::string(payload) + "}";
  }

  void* ctx = nullptr;
  void* pull = nullptr;
  void* push = nullptr;
  std::string endpoint;
};

/// One process: a Manager with a gateway and a pong actor.
struct Node {
  explicit Node(wire::Registry reg = base_registry(), GatewayConfig cfg = test_config()) {
    auto g = std::make_unique<Gateway>(reg, std::move(cfg));
    gw = g.get();
    mgr.manage("gw", std::move(g));
    pong_ref = mgr.manage("pong", std::make_unique<PongActor>());
    pong = static_cast<PongActor*>(pong_ref.actor());
  }
  static GatewayConfig test_config() {
    GatewayConfig c;
    c.bind = "tcp://127.0.0.1:*";
    c.linger_ms = 100;
    return c;
  }
  void start() { mgr.init(); }
  ~Node() { mgr.end(); }

  Manager mgr;
  Gateway* gw = nullptr;
  ActorRef pong_ref;
  PongActor* pong = nullptr;
};

std::string reject_json(std::string_view to, std::string_view type, std::string_view reason,
                        std::string_view rejected_by) {
  return R"({"sender_actor":null,"sender_endpoint":null,"receiver":")" + std::string(to) +
         R"(","message_type":"Reject","message":{"message_type":")" + std::string(type) +
         R"(","reason":")" + std::string(reason) + R"(","rejected_by":")" +
         std::string(rejected_by) + R"("}})";
}

std::string pong_json(const Node& n, std::int64_t count) {
  return R"({"sender_actor":"pong","sender_endpoint":")" + std::string(n.gw->endpoint()) +
         R"(","receiver":"tester","message_type":"Pong","message":{"count":)" +
         std::to_string(count) + "}}";
}

}  // namespace

TEST_CASE("a reply to a remote sender carries our actor name and our endpoint") {
  GatewayConfig cfg = Node::test_config();
  cfg.bind = "tcp://*:*";  // a bind address: advertised as localhost
  Node node(base_registry(), cfg);
  node.start();
  const std::string_view ep = node.gw->endpoint();
  CHECK(ep.substr(0, 16) == "tcp://localhost:");
  CHECK(node.gw->bound_endpoint().substr(0, 14) == "tcp://0.0.0.0:");
  RawPeer raw(ep);
  raw.send(raw.envelope("pong", "Ping", R"({"count":41})"));
  const auto reply = raw.recv();
  REQUIRE(reply);
  CHECK(*reply == pong_json(node, 41));
  // the C++ peer's sorted key order (payload first) is decoded too
  raw.send(R"({"message":{"count":42},"message_type":"Ping","receiver":"pong","sender_actor":"tester","sender_endpoint":")" +
           raw.endpoint + R"("})");
  CHECK(raw.recv().value_or("") == pong_json(node, 42));
  // counters are bumped right after the send: the reply can overtake them
  CHECK(wait_until([&] { return node.gw->stats().messages_out == 2; }));
  const GatewayStats s = node.gw->stats();
  CHECK(s.frames_in == 2);
  CHECK(s.messages_in == 2);
  CHECK(s.remotes == 1);  // both pings came from the same remote sender
  CHECK(s.dropped_total() == 0);
}

TEST_CASE("every bad frame is counted by cause, rejected when the sender is known, and survived") {
  Node node;
  node.start();
  Gateway& gw = *node.gw;
  RawPeer raw(gw.endpoint());
  std::int64_t next = 0;
  int checked = 0;

  // Sends `frame` (or the given parts), then a valid Ping; expects the Reject (if any), then
  // the Pong: so valid traffic flows right after each bad frame.
  const auto check = [&](std::vector<std::string> parts, GatewayDrop cause,
                         std::optional<std::string> reject) {
    CAPTURE(parts[0].substr(0, 120));
    CAPTURE(to_string(cause));
    const std::uint64_t before = gw.stats().drops(cause);
    for (std::size_t i = 0; i < parts.size(); ++i)
      raw.send(parts[i], i + 1 < parts.size() ? ZMQ_SNDMORE : 0);
    const std::int64_t n = ++next;
    raw.send(raw.envelope("pong", "Ping", R"({"count":)" + std::to_string(n) + "}"));
    if (reject) CHECK(raw.recv().value_or("<timeout>") == *reject);
    CHECK(raw.recv().value_or("<timeout>") == pong_json(node, n));
    CHECK(wait_until([&] { return gw.stats().drops(cause) == before + 1; }));
    ++checked;
  };
  const auto rej = [&](std::string_view type, std::string_view reason,
                       std::string_view by = "pong") {
    return std::optional<std::string>(reject_json("tester", type, reason, by));
  };
  const std::optional<std::string> none;

  SUBCASE("frame-level failures") {
    check({""}, GatewayDrop::empty, none);

    std::string big = raw.envelope("pong", "Ping", R"({"count":1,"pad":"PAD"})");
    big.replace(big.find("PAD"), 3, std::string(64 * 1024 + 1 - (big.size() - 3), 'x'));
    REQUIRE(big.size() == 64 * 1024 + 1);
    check({big}, GatewayDrop::too_large,
          rej("Ping", "Frame of 65537 bytes exceeds the limit of 65536 bytes"));

    check({raw.envelope("pong", "Ping", R"({"count":1})"), "second part"}, GatewayDrop::multipart,
          rej("Ping", "Multipart messages are not supported"));

    check({raw.envelope("pong", "Ping", "{\"count\":1,\"s\":\"\xff\xfe\"}")},
          GatewayDrop::invalid_utf8, rej("Ping", "Frame is not valid UTF-8"));
    check({"\xc3\x28"}, GatewayDrop::invalid_utf8, none);

    std::string cut = raw.envelope("pong", "Ping", R"({"count":1})");
    cut.pop_back();  // no closing brace
    check({cut}, GatewayDrop::bad_json,
          rej("Ping", "Malformed JSON: The JSON document has an improper structure: missing or "
                      "superfluous commas, braces, missing keys, etc."));
    check({"{\"a\":1,}"}, GatewayDrop::bad_json, none);
    check({raw.envelope("pong", "Ping", R"({"count":1})") + " {}"}, GatewayDrop::bad_json,
          rej("Ping", "Malformed JSON: trailing content after the envelope"));

    check({std::string(10000, '[') + std::string(10000, ']')}, GatewayDrop::too_deep, none);
    check({raw.envelope("pong", "Ping",
                        R"({"count":1,"x":)" + std::string(100, '[') + std::string(100, ']') + "}")},
          GatewayDrop::too_deep, rej("Ping", "JSON nesting deeper than 64 levels"));

    check({"[1,2]"}, GatewayDrop::not_object, none);
    check({"42"}, GatewayDrop::not_object, none);
    check({"\"text\""}, GatewayDrop::not_object, none);
    check({"null"}, GatewayDrop::not_object, none);
  }

  SUBCASE("envelope keys missing, extra, repeated or mistyped") {
    const std::string ep = raw.endpoint;
    const std::string head = R"({"sender_actor":"tester","sender_endpoint":")" + ep + R"(",)";
    check({head + R"("message_type":"Ping","message":{"count":1}})"}, GatewayDrop::bad_envelope,
          rej("Ping", "Missing envelope key 'receiver'", ""));
    check({head + R"("receiver":"pong","message_type":"Ping"})"}, GatewayDrop::bad_envelope,
          rej("Ping", "Missing envelope key 'message'"));
    check({R"({"receiver":"pong","message_type":"Ping"})"},
          GatewayDrop::bad_envelope, none);  // no sender keys: nobody to tell
    check({head + R"("receiver":"pong","receiver":"pong","message_type":"Ping","message":{"count":1}})"},
          GatewayDrop::bad_envelope, rej("Ping", "Duplicate envelope key 'receiver'"));
    check({head + R"("receiver":5,"message_type":"Ping","message":{"count":1}})"},
          GatewayDrop::bad_envelope, rej("Ping", "Envelope key 'receiver' must be a string", ""));
    check({head + R"("receiver":"pong","message_type":["Ping"],"message":{"count":1}})"},
          GatewayDrop::bad_envelope, rej("", "Envelope key 'message_type' must be a string"));
    check({head + R"("receiver":"pong","message_type":"Ping","message":[1]})"},
          GatewayDrop::bad_envelope, rej("Ping", "Envelope key 'message' must be an object"));
    check({R"({"sender_actor":7,"sender_endpoint":")" + ep +
           R"(","receiver":"pong","message_type":"Ping","message":{"count":1}})"},
          GatewayDrop::bad_envelope, none);  // sender unknown: no Reject
  }

  SUBCASE("unknown actor or type: the protocol's exact reasons") {
    check({raw.envelope("nobody", "Ping", R"({"count":1})")}, GatewayDrop::unknown_actor,
          rej("Ping", "Actor 'nobody' not found", "nobody"));
    check({raw.envelope("gw", "Ping", R"({"count":1})")}, GatewayDrop::unknown_actor,
          rej("Ping", "Actor 'gw' not found", "gw"));
    check({raw.envelope("pong", "Bogus", R"({"x":1})")}, GatewayDrop::unknown_type,
          rej("Bogus", "Unknown message type: Bogus"));
    // the receiver is judged before the type, as the protocol page lists them
    check({raw.envelope("nobody", "Bogus", R"({"x":1})")}, GatewayDrop::unknown_actor,
          rej("Bogus", "Actor 'nobody' not found", "nobody"));
    // a Reject is never answered with a Reject
    check({raw.envelope("nobody", "Reject", R"({"message_type":"X","reason":"y","rejected_by":"z"})")},
          GatewayDrop::unknown_actor, none);
    // half a sender is no sender
    check({R"({"sender_actor":"tester","sender_endpoint":null,"receiver":"pong","message_type":"Bogus","message":{}})"},
          GatewayDrop::unknown_type, none);
  }

  SUBCASE("payload fields missing, mistyped or out of range for the C++ type") {
    check({raw.envelope("pong", "Level", R"({"level":300})")}, GatewayDrop::bad_payload,
          rej("Level", "Field 'level' for Level is out of range for uint8: 300"));
    check({raw.envelope("pong", "Level", R"({"level":-1})")}, GatewayDrop::bad_payload,
          rej("Level", "Field 'level' for Level is out of range for uint8: -1"));
    check({raw.envelope("pong", "Ping", R"({"count":1.5})")}, GatewayDrop::bad_payload,
          rej("Ping", "Field 'count' for Ping must be int64, got float"));
    check({raw.envelope("pong", "Ping", R"({"count":"1"})")}, GatewayDrop::bad_payload,
          rej("Ping", "Field 'count' for Ping must be int64, got string"));
    check({raw.envelope("pong", "Ping", R"({})")}, GatewayDrop::bad_payload,
          rej("Ping", "Missing field 'count' for Ping"));
    // the same refusal when the payload comes first (the C++ peer's sorted order)
    check({R"({"message":{"count":true},"message_type":"Ping","receiver":"pong","sender_actor":"tester","sender_endpoint":")" +
           raw.endpoint + R"("})"},
          GatewayDrop::bad_payload, rej("Ping", "Field 'count' for Ping must be int64, got bool"));
    // extra fields are ignored
    raw.send(raw.envelope("pong", "Level", R"({"level":7,"extra":[1,{"a":null}]})"));
    CHECK(wait_until([&] { return node.pong->last_level.load() == 7; }));
  }

  const GatewayStats s = gw.stats();
  CHECK(s.frames_in >= static_cast<std::uint64_t>(2 * checked));
  CHECK(s.messages_in >= static_cast<std::uint64_t>(checked));
  CHECK(node.pong->pings.load() == next);
}

TEST_CASE("a frame over the socket cap is cut off by libzmq and the gateway goes on") {
  GatewayConfig cfg = Node::test_config();
  cfg.socket_max_frame_bytes = 1u << 20;
  Node node(base_registry(), cfg);
  node.start();
  RawPeer raw(node.gw->endpoint());
  raw.send(raw.envelope("pong", "Ping", R"({"count":1,"pad":")" + std::string(2u << 20, 'x') + "\"}"));
  RawPeer fresh(node.gw->endpoint());
  fresh.send(fresh.envelope("pong", "Ping", R"({"count":2})"));
  const auto reply = fresh.recv();
  REQUIRE(reply);
  CHECK(reply->find(R"("message":{"count":2})") != std::string::npos);
  CHECK(node.gw->stats().frames_in == 1);  // the big one never reached the gateway
}

TEST_CASE("a null sender on a message whose handler replies: the reply is a counted failure") {
  Node node;
  node.start();
  RawPeer raw(node.gw->endpoint());
  raw.send(R"({"sender_actor":null,"sender_endpoint":null,"receiver":"pong","message_type":"Ping","message":{"count":1}})");
  CHECK(wait_until([&] { return node.pong_ref.actor()->stats().reply_failures == 1; }));
  CHECK(node.pong->pings.load() == 1);
  raw.send(raw.envelope("pong", "Ping", R"({"count":2})"));
  CHECK(raw.recv().value_or("") == pong_json(node, 2));
  CHECK(wait_until([&] { return node.gw->stats().messages_out == 1; }));
  CHECK(node.gw->stats().dropped_total() == 0);
}

namespace {
// 10,000 in the release build; sanitizer builds divide it by TERN_TEST_SCALE.
const std::uint64_t kEachWay = tern::test::scaled(10'000);

/// Sends kEachWay Seq to `peer` on Go, checks what it receives is 0, 1, 2, ... with the
/// content derived from n.
class Streamer : public Actor {
 public:
  explicit Streamer(std::string tag) : tag_(std::move(tag)) {
    handle<&Streamer::on_go>();
    handle<&Streamer::on_seq>();
    handle<&Streamer::on_reject>();
  }
  ActorRef peer;
  std::atomic<std::uint64_t> received{0}, bad{0}, rejects{0};
  std::string last_reject;  // read after `rejects` changed

  static Seq make(std::uint64_t n, std::string_view tag) {
    Seq s;
    s.n = n;
    std::memcpy(s.tag, tag.data(), std::min<std::size_t>(tag.size(), sizeof s.tag));
    s.px = static_cast<double>(n) * 0.25 - 7.5;
    s.note = "note \"" + std::to_string(n) + "\" \xc3\xa9";
    return s;
  }

 private:
  void on_go(const Go&) {
    for (std::uint64_t n = 0; n < kEachWay; ++n) (void)peer.send(make(n, tag_));
  }
  void on_seq(const Seq& s) {
    const std::uint64_t want = received.load(std::memory_order_relaxed);
    const Seq ref = make(want, sender().name() == "alice" ? "alice" : "bob");
    if (s.n != want || std::strncmp(s.tag, ref.tag, sizeof s.tag) != 0 || s.px != ref.px ||
        s.note != ref.note || !sender().is_remote())
      bad.fetch_add(1);
    received.store(want + 1);
  }
  void on_reject(const Reject& r) {
    last_reject = std::string(r.message_type()) + "|" + std::string(r.reason()) + "|" +
                  std::string(r.rejected_by());
    rejects.fetch_add(1);
  }
  std::string tag_;
};

struct Side {
  Side(std::string name, wire::Registry reg, bool inline_dispatch = true) {
    GatewayConfig cfg = Node::test_config();
    cfg.inline_dispatch = inline_dispatch;
    auto g = std::make_unique<Gateway>(reg, std::move(cfg));
    gw = g.get();
    mgr.manage("gw", std::move(g), {}, MailboxConfig{256});
    ref = mgr.manage(name, std::make_unique<Streamer>(name), {}, MailboxConfig{256});
    actor = static_cast<Streamer*>(ref.actor());
  }
  ~Side() { mgr.end(); }
  Manager mgr;
  Gateway* gw = nullptr;
  ActorRef ref;
  Streamer* actor = nullptr;
};
}  // namespace

TEST_CASE("two gateways on loopback exchange 10,000 messages each way, exactly") {
  bool inline_dispatch = true;
  SUBCASE("inline dispatch (default)") { inline_dispatch = true; }
  SUBCASE("queued to the actors' threads") { inline_dispatch = false; }
  INFO("inline_dispatch = ", inline_dispatch);
  Side a("alice", base_registry(), inline_dispatch), b("bob", base_registry(), inline_dispatch);
  a.actor->peer = a.gw->remote("bob", b.gw->endpoint());
  b.actor->peer = b.gw->remote("alice", a.gw->endpoint());
  CHECK(a.actor->peer.is_remote());
  CHECK(a.actor->peer.name() == "bob");
  a.mgr.init();
  b.mgr.init();
  const auto t0 = std::chrono::steady_clock::now();
  REQUIRE(a.ref.send(Go{}) == SendResult::ok);
  REQUIRE(b.ref.send(Go{}) == SendResult::ok);
  CHECK(wait_until([&] {
    return a.actor->received.load() == kEachWay && b.actor->received.load() == kEachWay;
  }, std::chrono::seconds(120)));
  MESSAGE("10,000 each way in "
          << std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count()
          << " ms");
  CHECK(a.actor->bad.load() == 0);
  CHECK(b.actor->bad.load() == 0);
  for (Gateway* g : {a.gw, b.gw}) {
    // Counters are bumped just after the hand-off they count: let them settle first.
    CHECK(wait_until([&] {
      const GatewayStats s = g->stats();
      return s.messages_out == kEachWay && s.messages_in == kEachWay && s.backlog == 0;
    }));
    const GatewayStats s = g->stats();
    CHECK(s.messages_out == kEachWay);
    CHECK(s.messages_in == kEachWay);
    CHECK(s.frames_in == kEachWay);
    CHECK(s.dropped_total() == 0);
    CHECK(s.rejects_sent == 0);
    CHECK(s.backlog == 0);
  }
}

TEST_CASE("a peer's Reject reaches the sending actor with the protocol's reasons") {
  wire::Registry with_bogus = base_registry();
  with_bogus.add<Bogus>();
  Side a("alice", with_bogus), b("bob", base_registry());  // bob's side does not know Bogus
  const ActorRef bob = a.gw->remote("bob", b.gw->endpoint());
  const ActorRef nobody = a.gw->remote("nobody", b.gw->endpoint());
  a.mgr.init();
  b.mgr.init();
  REQUIRE(bob.send(Bogus{1}, a.ref) == SendResult::ok);
  REQUIRE(wait_until([&] { return a.actor->rejects.load() == 1; }));
  CHECK(a.actor->last_reject == "Bogus|Unknown message type: Bogus|bob");
  REQUIRE(nobody.send(Streamer::make(0, "alice"), a.ref) == SendResult::ok);
  REQUIRE(wait_until([&] { return a.actor->rejects.load() == 2; }));
  CHECK(a.actor->last_reject == "Seq|Actor 'nobody' not found|nobody");
  CHECK(wait_until([&] { return b.gw->stats().rejects_sent == 2; }));
  CHECK(b.gw->stats().drops(GatewayDrop::unknown_type) == 1);
  CHECK(b.gw->stats().drops(GatewayDrop::unknown_actor) == 1);
  CHECK(a.gw->stats().rejects_received == 2);
  // an unregistered type on the sending side never leaves the process
  REQUIRE(b.gw->remote("alice", a.gw->endpoint()).send(Bogus{2}, b.ref) == SendResult::ok);
  CHECK(wait_until([&] { return b.gw->stats().drops(GatewayDrop::unregistered_type) == 1; }));
}

TEST_CASE("set-up errors name the value; remote refs are deduplicated") {
  Node node;
  const std::string taken(node.gw->bound_endpoint());
  GatewayConfig clash = Node::test_config();
  clash.bind = taken;
  CHECK_THROWS_WITH_AS(Gateway(base_registry(), clash), doctest::Contains(taken.c_str()),
                       std::runtime_error);
  CHECK_THROWS_AS(node.gw->remote("x", "inproc://x"), std::invalid_argument);
  CHECK_THROWS_AS(node.gw->remote("", "tcp://localhost:1"), std::invalid_argument);
  const ActorRef r1 = node.gw->remote("pong", "tcp://*:5001");
  const ActorRef r2 = node.gw->remote("pong", "tcp://localhost:5001");
  CHECK(r1 == r2);  // a bind address and its localhost form are one peer
  CHECK(r1.name() == "pong");
  CHECK(r1.actor() == node.gw);
  CHECK(node.gw->remote("ping", "tcp://localhost:5001") != r1);
  GatewayConfig tiny = Node::test_config();
  tiny.max_remotes = 1;
  Gateway g(base_registry(), tiny);
  (void)g.remote("a", "tcp://localhost:1");
  CHECK_THROWS_AS(g.remote("b", "tcp://localhost:1"), std::length_error);
}

TEST_CASE("inline dispatch (the default) runs an idle receiver's handler on the gateway thread") {
  CHECK(GatewayConfig{}.inline_dispatch);
  Node node;
  node.start();
  RawPeer raw(node.gw->endpoint());
  for (int i = 1; i <= 100; ++i) {
    raw.send(raw.envelope("pong", "Ping", R"({"count":)" + std::to_string(i) + "}"));
    REQUIRE(raw.recv().value_or("") == pong_json(node, i));
  }
  CHECK(node.pong->ping_thread.load() != node.pong->own_thread.load());  // on the gateway thread
  CHECK(node.pong->pings.load() == 100);
  CHECK(node.pong_ref.actor()->stats().handled == 100);
  CHECK(node.pong_ref.actor()->stats().reply_failures == 0);
  CHECK(wait_until([&] { return node.gw->stats().messages_out == 100; }));
  CHECK(node.gw->stats().messages_in == 100);
}

TEST_CASE("queued dispatch runs every handler on the receiver's own thread") {
  GatewayConfig cfg = Node::test_config();
  cfg.inline_dispatch = false;
  Node node(base_registry(), cfg);
  node.start();
  RawPeer raw(node.gw->endpoint());
  for (int i = 1; i <= 100; ++i) {
    raw.send(raw.envelope("pong", "Ping", R"({"count":)" + std::to_string(i) + "}"));
    REQUIRE(raw.recv().value_or("") == pong_json(node, i));
  }
  CHECK(node.pong->ping_thread.load() == node.pong->own_thread.load());
  CHECK(node.pong->pings.load() == 100);
  CHECK(wait_until([&] { return node.gw->stats().messages_out == 100; }));
  CHECK(node.gw->stats().messages_in == 100);
}

TEST_CASE("process_frame decodes and delivers without a running thread") {
  Node node;  // not started: frames are handled on this thread
  const std::string frame =
      R"({"sender_actor":null,"sender_endpoint":null,"receiver":"pong","message_type":"Level","message":{"level":9}})";
  for (int i = 0; i < 3; ++i) node.gw->process_frame(frame.data(), frame.size());
  node.gw->process_frame("", 0);
  CHECK(node.gw->stats().messages_in == 3);
  CHECK(node.gw->stats().drops(GatewayDrop::empty) == 1);
  CHECK(node.pong_ref.actor()->stats().depth == 3);
  node.start();
  CHECK(wait_until([&] { return node.pong->last_level.load() == 9; }));
}
