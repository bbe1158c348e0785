// The bad input catalogue (docs/bad-input.md), one test case per entry, each over a real
// ZeroMQ socket: the frame's documented outcome (a Reject with the exact reason, or a counted
// drop when no sender is known), then a valid Ping answered right after it.
#include <doctest/doctest.h>

#include <zmq.h>

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <tern/gateway.hpp>
#include <tern/manager.hpp>

#include "test_util.hpp"

using namespace tern;
using tern::test::wait_until;

namespace {

struct Ping {
  static constexpr MessageId message_id = 600;
  std::int64_t count = 0;
  TERN_WIRE(Ping, count)
};
struct Pong {
  static constexpr MessageId message_id = 601;
  std::int64_t count = 0;
  TERN_WIRE(Pong, count)
};
struct Level {
  static constexpr MessageId message_id = 602;
  std::uint8_t level = 0;
  TERN_WIRE(Level, level)
};
struct Quote {
  static constexpr MessageId message_id = 603;
  char symbol[8] = {};
  double px[2] = {};
  std::int32_t qty = 0;
  TERN_WIRE(Quote, symbol, px, qty)
};
struct Text {
  static constexpr MessageId message_id = 604;
  std::string s;
  TERN_WIRE(Text, s)
};

constexpr std::size_t kLimit = 1024;  // max_frame_bytes: not the default, to show it is honoured

class PongActor : public Actor {
 public:
  PongActor() {
    handle<&PongActor::on_ping>();
    handle<&PongActor::on_level>();
    handle<&PongActor::on_quote>();
    handle<&PongActor::on_text>();
  }
  std::atomic<int> pings{0}, levels{0}, quotes{0}, texts{0};
  std::string last_text;  // read after `texts` changed

 private:
  void on_ping(const Ping& p) {
    pings.fetch_add(1);
    (void)reply(Pong{p.count});
  }
  void on_level(const Level&) { levels.fetch_add(1); }
  void on_quote(const Quote&) { quotes.fetch_add(1); }
  void on_text(const Text& t) {
    last_text = t.s;
    texts.fetch_add(1);
  }
};

/// A gateway with a "pong" actor, and a bare ZeroMQ peer ("tester") talking to it.
class Fixture {
 public:
  Fixture() {
    wire::Registry reg;
    reg.add<Ping>().add<Pong>().add<Level>().add<Quote>().add<Text>();
    GatewayConfig cfg;
    cfg.bind = "tcp://127.0.0.1:*";
    cfg.linger_ms = 100;
    cfg.max_frame_bytes = kLimit;
    cfg.socket_max_frame_bytes = 1u << 20;  // frames far over kLimit still reach the gateway
    auto g = std::make_unique<Gateway>(reg, std::move(cfg));
    gw = g.get();
    mgr_.manage("gw", std::move(g));
    pong_ref = mgr_.manage("pong", std::make_unique<PongActor>());
    pong = static_cast<PongActor*>(pong_ref.actor());
    mgr_.init();

    ctx_ = zmq_ctx_new();
    pull_ = zmq_socket(ctx_, ZMQ_PULL);
    const int linger = 0, timeout = 10000;
    zmq_setsockopt(pull_, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(pull_, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    REQUIRE(zmq_bind(pull_, "tcp://127.0.0.1:*") == 0);
    char buf[256];
    std::size_t len = sizeof buf;
    zmq_getsockopt(pull_, ZMQ_LAST_ENDPOINT, buf, &len);
    endpoint.assign(buf, len - 1);
    push_ = zmq_socket(ctx_, ZMQ_PUSH);
    zmq_setsockopt(push_, ZMQ_LINGER, &linger, sizeof linger);
    REQUIRE(zmq_connect(push_, std::string(gw->endpoint()).c_str()) == 0);
  }
  ~Fixture() {
    mgr_.end();
    zmq_close(push_);
    zmq_close(pull_);
    zmq_ctx_term(ctx_);
  }

  /// An envelope from "tester" at our PULL endpoint, in the Python peer's key order.
  std::string env(std::string_view receiver, std::string_view type,
                  std::string_view payload) const {
    return R"({"sender_actor":"tester","sender_endpoint":")" + endpoint + R"(","receiver":")" +
           std::string(receiver) + R"(","message_type":")" + std::string(type) +
           R"(","message":)" + std::string(payload) + "}";
  }
  /// The same from nobody: both sender keys null.
  static std::string anon(std::string_view receiver, std::string_view type,
                          std::string_view payload) {
    return R"({"sender_actor":null,"sender_endpoint":null,"receiver":")" + std::string(receiver) +
           R"(","message_type":")" + std::string(type) + R"(","message":)" +
           std::string(payload) + "}";
  }
  /// The start of an envelope from "tester", for hand-made key sets.
  std::string head() const {
    return R"({"sender_actor":"tester","sender_endpoint":")" + endpoint + R"(",)";
  }
  /// The Reject the gateway sends "tester".
  static std::string reject(std::string_view type, std::string_view reason,
                            std::string_view by = "pong") {
    return R"({"sender_actor":null,"sender_endpoint":null,"receiver":"tester","message_type":"Reject","message":{"message_type":")" +
           std::string(type) + R"(","reason":")" + std::string(reason) + R"(","rejected_by":")" +
           std::string(by) + R"("}})";
  }

  /// Sends `parts` (one ZeroMQ message; more than one part makes it multipart), then a valid
  /// Ping. Checks: `cause` counted once, the Reject `want_reject` (or none) comes back, then
  /// the Pong. Frames from one PUSH socket arrive in order and the gateway answers in order,
  /// so "the Pong comes first" proves no Reject was sent.
  void expect(const std::vector<std::string>& parts, std::optional<GatewayDrop> cause,
              std::optional<std::string> want_reject) {
    CAPTURE(parts[0].substr(0, 160));
    const GatewayStats before = gw->stats();
    for (std::size_t i = 0; i < parts.size(); ++i) {
      const int flags = i + 1 < parts.size() ? ZMQ_SNDMORE : 0;
      REQUIRE(zmq_send(push_, parts[i].data(), parts[i].size(), flags) ==
              static_cast<int>(parts[i].size()));
    }
    const std::int64_t n = ++pings_sent_;
    const std::string ping = env("pong", "Ping", R"({"count":)" + std::to_string(n) + "}");
    REQUIRE(zmq_send(push_, ping.data(), ping.size(), 0) == static_cast<int>(ping.size()));
    if (want_reject) CHECK(recv().value_or("<timeout>") == *want_reject);
    CHECK(recv().value_or("<timeout>") == pong_json(n));
    CHECK(wait_until([&] { return gw->stats().messages_in >= before.messages_in + 1; }));
    const GatewayStats after = gw->stats();
    if (cause) {
      CAPTURE(to_string(*cause));
      CHECK(after.drops(*cause) == before.drops(*cause) + 1);
      CHECK(after.dropped_total() == before.dropped_total() + 1);
      CHECK(after.messages_in == before.messages_in + 1);  // only the Ping
    } else {
      CHECK(after.dropped_total() == before.dropped_total());
    }
    CHECK(after.rejects_sent == before.rejects_sent + (want_reject ? 1 : 0));
  }
  void expect(const std::string& frame, std::optional<GatewayDrop> cause,
              std::optional<std::string> want_reject) {
    expect(std::vector<std::string>{frame}, cause, std::move(want_reject));
  }

  Gateway* gw = nullptr;
  ActorRef pong_ref;
  PongActor* pong = nullptr;
  std::string endpoint;

 private:
  std::optional<std::string> recv() const {
    zmq_msg_t m;
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, pull_, 0) < 0) {
      zmq_msg_close(&m);
      return std::nullopt;
    }
    std::string s(static_cast<const char*>(zmq_msg_data(&m)), zmq_msg_size(&m));
    zmq_msg_close(&m);
    return s;
  }
  std::string pong_json(std::int64_t n) const {
    return R"({"sender_actor":"pong","sender_endpoint":")" + std::string(gw->endpoint()) +
           R"(","receiver":"tester","message_type":"Pong","message":{"count":)" +
           std::to_string(n) + "}}";
  }

  Manager mgr_;
  void* ctx_ = nullptr;
  void* pull_ = nullptr;
  void* push_ = nullptr;
  std::int64_t pings_sent_ = 0;
};

const std::optional<std::string> kNoReject;

constexpr const char* kImproperStructure =
    "Malformed JSON: The JSON document has an improper structure: missing or superfluous "
    "commas, braces, missing keys, etc.";

}  // namespace

TEST_CASE("malformed JSON is rejected as Malformed JSON, or counted when no sender is readable") {
  Fixture f;
  std::string missing_colon = f.env("pong", "Ping", R"({"count":1})");
  missing_colon.replace(missing_colon.find(R"("receiver":)"), 11, R"("receiver")");
  // the Reject is addressed by a byte scan of the frame: here it finds no receiver
  f.expect(missing_colon, GatewayDrop::bad_json, f.reject("Ping", kImproperStructure, ""));
  f.expect(f.env("pong", "Ping", R"({"count":01})"), GatewayDrop::bad_json,
           f.reject("Ping", "Malformed JSON: Problem while parsing a number"));
  f.expect(f.env("pong", "Ping", R"({"count":1,})"), GatewayDrop::bad_json,
           f.reject("Ping", kImproperStructure));
  f.expect(f.env("pong", "Ping", R"({"count":1})") + " {}", GatewayDrop::bad_json,
           f.reject("Ping", "Malformed JSON: trailing content after the envelope"));
  f.expect(R"({"a":1,})", GatewayDrop::bad_json, kNoReject);
  f.expect(Fixture::anon("pong", "Ping", R"({"count":1})") + ",", GatewayDrop::bad_json, kNoReject);
}

TEST_CASE("a truncated frame is malformed JSON") {
  Fixture f;
  const std::string whole = f.env("pong", "Ping", R"({"count":1})");
  f.expect(whole.substr(0, whole.size() - 1), GatewayDrop::bad_json,
           f.reject("Ping", kImproperStructure));
  // cut inside the receiver's value: the sender keys before it are still read
  f.expect(whole.substr(0, whole.find(R"("receiver":"po)") + 14), GatewayDrop::bad_json,
           f.reject("", "Malformed JSON: A string is opened, but never closed.", ""));
  f.expect(whole.substr(0, 10), GatewayDrop::bad_json, kNoReject);
}

TEST_CASE("an empty frame is counted and never answered") {
  Fixture f;
  f.expect("", GatewayDrop::empty, kNoReject);
  f.expect(std::string(), GatewayDrop::empty, kNoReject);
}

TEST_CASE("a multipart message is rejected as a whole, addressed from its first part") {
  Fixture f;
  const std::string ping = f.env("pong", "Ping", R"({"count":1})");
  f.expect({ping, "second part"}, GatewayDrop::multipart,
           f.reject("Ping", "Multipart messages are not supported"));
  f.expect({ping, ping, ping}, GatewayDrop::multipart,
           f.reject("Ping", "Multipart messages are not supported"));
  f.expect({"identity", ping}, GatewayDrop::multipart, kNoReject);  // first part names no sender
  CHECK(f.pong->pings.load() == 3);  // only the valid Pings that followed
}

TEST_CASE("a frame over the configured size limit is dropped unparsed, and rejected") {
  Fixture f;
  const auto sized = [&](std::size_t n, bool with_sender) {
    std::string fr = with_sender ? f.env("pong", "Text", R"({"s":"PAD"})")
                                 : Fixture::anon("pong", "Text", R"({"s":"PAD"})");
    fr.replace(fr.find("PAD"), 3, std::string(n - (fr.size() - 3), 'x'));
    REQUIRE(fr.size() == n);
    return fr;
  };
  f.expect(sized(kLimit, true), std::nullopt, kNoReject);  // at the limit: delivered
  CHECK(wait_until([&] { return f.pong->texts.load() == 1; }));
  f.expect(sized(kLimit + 1, true), GatewayDrop::too_large,
           f.reject("Text", "Frame of 1025 bytes exceeds the limit of 1024 bytes"));
  f.expect(sized(100'000, true), GatewayDrop::too_large,
           f.reject("Text", "Frame of 100000 bytes exceeds the limit of 1024 bytes"));
  f.expect(sized(kLimit + 1, false), GatewayDrop::too_large, kNoReject);
}

TEST_CASE("a name or endpoint over its limit is rejected naming the limit, or counted when the sender is") {
  Fixture f;  // max_name_bytes and max_endpoint_bytes: 256 (the defaults)
  const std::string r300(300, 'r'), t300(300, 'T'), t256(256, 'T');
  f.expect(f.env(r300, "Ping", R"({"count":1})"), GatewayDrop::name_too_long,
           f.reject("Ping", "Envelope key 'receiver' is longer than the limit of 256 bytes", ""));
  f.expect(f.env("pong", t300, R"({"count":1})"), GatewayDrop::name_too_long,
           f.reject("", "Envelope key 'message_type' is longer than the limit of 256 bytes"));
  // at the limit: judged as usual
  f.expect(f.env("pong", t256, R"({"count":1})"), GatewayDrop::unknown_type,
           f.reject(t256, "Unknown message type: " + t256));
  // a sender over the limit is not answered (nor remembered, nor connected to)
  f.expect(R"({"sender_actor":")" + std::string(300, 's') + R"(","sender_endpoint":")" +
               f.endpoint + R"(","receiver":"pong","message_type":"Ping","message":{"count":1}})",
           GatewayDrop::name_too_long, kNoReject);
  f.expect(R"({"sender_actor":"tester","sender_endpoint":"tcp://)" + std::string(300, 'h') +
               R"(:1","receiver":"pong","message_type":"Ping","message":{"count":1}})",
           GatewayDrop::name_too_long, kNoReject);
}

TEST_CASE("a top-level value that is not an object is counted and never answered") {
  Fixture f;
  for (const char* frame : {"[1,2]", "42", R"("text")", "null", "true", " [] "}) {
    f.expect(frame, GatewayDrop::not_object, kNoReject);
  }
  // text that is not JSON at all is judged by its first byte: not an object either
  f.expect("hello", GatewayDrop::not_object, kNoReject);
  f.expect("<xml/>", GatewayDrop::not_object, kNoReject);
  // even an array holding a whole envelope: it is not one
  f.expect("[" + f.env("pong", "Ping", R"({"count":1})") + "]", GatewayDrop::not_object,
           kNoReject);
}

TEST_CASE("a missing envelope key is rejected naming it") {
  Fixture f;
  f.expect(f.head() + R"("message_type":"Ping","message":{"count":1}})", GatewayDrop::bad_envelope,
           f.reject("Ping", "Missing envelope key 'receiver'", ""));
  f.expect(f.head() + R"("receiver":"pong","message_type":"Ping"})", GatewayDrop::bad_envelope,
           f.reject("Ping", "Missing envelope key 'message'"));
  // the sender keys alone are never missing: absent reads as null (the Java peer omits null
  // keys), so a frame without them is delivered without a sender
  f.expect(R"({"receiver":"pong","message_type":"Level","message":{"level":1}})", std::nullopt,
           kNoReject);
  f.expect(R"({"sender_endpoint":")" + f.endpoint +
               R"(","receiver":"pong","message_type":"Level","message":{"level":2}})",
           std::nullopt, kNoReject);
  CHECK(wait_until([&] { return f.pong->levels.load() == 2; }));
  // and when the frame is refused nobody can be told
  f.expect(R"({"receiver":"pong","message":{"count":1}})", GatewayDrop::bad_envelope, kNoReject);
  f.expect(f.head() + R"("receiver":"pong","message":{"count":1}})", GatewayDrop::bad_envelope,
           f.reject("", "Missing envelope key 'message_type'"));
}

TEST_CASE("an extra envelope key is ignored (counted); a repeated one is rejected naming it") {
  Fixture f;
  const std::uint64_t ignored = f.gw->stats().keys_ignored;
  f.expect(f.head() + R"("receiver":"pong","message_type":"Level","message":{"level":1},"trace":"x"})",
           std::nullopt, kNoReject);
  f.expect(R"({"sender_actor":null,"sender_endpoint":null,"receiver":"pong","message_type":"Level","message":{"level":2},"x":{"y":[1,NaN]}})",
           std::nullopt, kNoReject);
  CHECK(wait_until([&] { return f.pong->levels.load() == 2; }));
  CHECK(f.gw->stats().keys_ignored == ignored + 2);
  // its value is still read to its end: malformed JSON there is malformed JSON
  f.expect(f.head() + R"("receiver":"pong","message_type":"Ping","message":{"count":1},"x":[1 2]})",
           GatewayDrop::bad_json, f.reject("Ping", "Malformed JSON: The JSON document has an improper structure: missing or superfluous commas, braces, missing keys, etc."));
  f.expect(f.head() + R"("receiver":"pong","message_type":"Ping","receiver":"pong","message":{"count":1}})",
           GatewayDrop::bad_envelope, f.reject("Ping", "Duplicate envelope key 'receiver'"));
}

TEST_CASE("an envelope key of the wrong type is rejected naming it and the type it must be") {
  Fixture f;
  f.expect(f.head() + R"("receiver":5,"message_type":"Ping","message":{"count":1}})",
           GatewayDrop::bad_envelope, f.reject("Ping", "Envelope key 'receiver' must be a string", ""));
  f.expect(f.head() + R"("receiver":null,"message_type":"Ping","message":{"count":1}})",
           GatewayDrop::bad_envelope, f.reject("Ping", "Envelope key 'receiver' must be a string", ""));
  f.expect(f.head() + R"("receiver":"pong","message_type":{"name":"Ping"},"message":{"count":1}})",
           GatewayDrop::bad_envelope, f.reject("", "Envelope key 'message_type' must be a string"));
  f.expect(f.head() + R"("receiver":"pong","message_type":"Ping","message":"{\"count\":1}"})",
           GatewayDrop::bad_envelope, f.reject("Ping", "Envelope key 'message' must be an object"));
  f.expect(f.head() + R"("receiver":"pong","message_type":"Ping","message":null})",
           GatewayDrop::bad_envelope, f.reject("Ping", "Envelope key 'message' must be an object"));
  // a mistyped sender key: the sender is unknown, so the drop is only counted
  f.expect(R"({"sender_actor":["tester"],"sender_endpoint":")" + f.endpoint +
               R"(","receiver":"pong","message_type":"Ping","message":{"count":1}})",
           GatewayDrop::bad_envelope, kNoReject);
  f.expect(R"({"sender_actor":"tester","sender_endpoint":42,"receiver":"pong","message_type":"Ping","message":{"count":1}})",
           GatewayDrop::bad_envelope, kNoReject);
}

TEST_CASE("a null sender on a message whose handler replies: delivered, the reply is counted as failed") {
  Fixture f;
  f.expect(Fixture::anon("pong", "Ping", R"({"count":99})"), std::nullopt, kNoReject);
  CHECK(wait_until([&] { return f.pong->pings.load() == 2; }));  // the null-sender Ping, the valid one
  CHECK(wait_until([&] { return f.pong_ref.actor()->stats().reply_failures == 1; }));
  // half a sender (one key null, or an empty string) is no sender either
  f.expect(R"({"sender_actor":"tester","sender_endpoint":null,"receiver":"pong","message_type":"Ping","message":{"count":98}})",
           std::nullopt, kNoReject);
  f.expect(R"({"sender_actor":"","sender_endpoint":")" + f.endpoint +
               R"(","receiver":"pong","message_type":"Ping","message":{"count":97}})",
           std::nullopt, kNoReject);
  CHECK(wait_until([&] { return f.pong_ref.actor()->stats().reply_failures == 3; }));
  CHECK(f.gw->stats().dropped_total() == 0);
}

TEST_CASE("an unknown actor is rejected with the protocol's reason") {
  Fixture f;
  f.expect(f.env("nobody", "Ping", R"({"count":1})"), GatewayDrop::unknown_actor,
           f.reject("Ping", "Actor 'nobody' not found", "nobody"));
  f.expect(f.env("gw", "Ping", R"({"count":1})"), GatewayDrop::unknown_actor,
           f.reject("Ping", "Actor 'gw' not found", "gw"));  // the gateway is not a receiver
  f.expect(f.env("", "Ping", R"({"count":1})"), GatewayDrop::unknown_actor,
           f.reject("Ping", "Actor '' not found", ""));
  f.expect(Fixture::anon("nobody", "Ping", R"({"count":1})"), GatewayDrop::unknown_actor, kNoReject);
  // the receiver is judged before the type and the payload
  f.expect(f.env("nobody", "Bogus", R"({"count":"x"})"), GatewayDrop::unknown_actor,
           f.reject("Bogus", "Actor 'nobody' not found", "nobody"));
  // a Reject is never answered with a Reject (two peers could bounce them forever)
  f.expect(f.env("nobody", "Reject", R"({"message_type":"X","reason":"y","rejected_by":"z"})"),
           GatewayDrop::unknown_actor, kNoReject);
}

TEST_CASE("an unknown message type is rejected with the protocol's reason") {
  Fixture f;
  f.expect(f.env("pong", "Bogus", R"({"x":1})"), GatewayDrop::unknown_type,
           f.reject("Bogus", "Unknown message type: Bogus"));
  f.expect(f.env("pong", "ping", R"({"count":1})"), GatewayDrop::unknown_type,
           f.reject("ping", "Unknown message type: ping"));  // names are case-sensitive
  f.expect(f.env("pong", "tern::Ping", R"({"count":1})"), GatewayDrop::unknown_type,
           f.reject("tern::Ping", "Unknown message type: tern::Ping"));
  f.expect(Fixture::anon("pong", "Bogus", "{}"), GatewayDrop::unknown_type, kNoReject);
}

TEST_CASE("a missing payload field is rejected naming the field and the type") {
  Fixture f;
  f.expect(f.env("pong", "Ping", "{}"), GatewayDrop::bad_payload,
           f.reject("Ping", "Missing field 'count' for Ping"));
  f.expect(f.env("pong", "Quote", R"({"symbol":"EUR","px":[1,2]})"), GatewayDrop::bad_payload,
           f.reject("Quote", "Missing field 'qty' for Quote"));
  f.expect(f.env("pong", "Ping", R"({"Count":1})"), GatewayDrop::bad_payload,
           f.reject("Ping", "Missing field 'count' for Ping"));  // field names are case-sensitive
  f.expect(Fixture::anon("pong", "Ping", "{}"), GatewayDrop::bad_payload, kNoReject);
}

TEST_CASE("extra payload fields are ignored and the message is delivered") {
  Fixture f;
  f.expect(f.env("pong", "Level", R"({"level":7,"extra":[1,{"a":null}],"note":"x"})"),
           std::nullopt, kNoReject);
  CHECK(wait_until([&] { return f.pong->levels.load() == 1; }));
  // the same when the payload comes before message_type (the C++ peer's sorted order)
  f.expect(R"({"message":{"level":8,"z":0},"message_type":"Level","receiver":"pong","sender_actor":"tester","sender_endpoint":")" +
               f.endpoint + R"("})",
           std::nullopt, kNoReject);
  CHECK(wait_until([&] { return f.pong->levels.load() == 2; }));
  CHECK(f.gw->stats().keys_ignored == 3);  // extra, note, z
  // but a field given twice is refused
  f.expect(f.env("pong", "Level", R"({"level":1,"level":2})"), GatewayDrop::bad_payload,
           f.reject("Level", "Duplicate field 'level' for Level"));
}

TEST_CASE("a payload field of the wrong type is rejected naming the type it must be") {
  Fixture f;
  f.expect(f.env("pong", "Ping", R"({"count":"1"})"), GatewayDrop::bad_payload,
           f.reject("Ping", "Field 'count' for Ping must be int64, got string"));
  f.expect(f.env("pong", "Ping", R"({"count":1.5})"), GatewayDrop::bad_payload,
           f.reject("Ping", "Field 'count' for Ping must be int64, got float"));
  f.expect(f.env("pong", "Ping", R"({"count":1.000001e2})"), GatewayDrop::bad_payload,
           f.reject("Ping", "Field 'count' for Ping must be int64, got float"));
  f.expect(f.env("pong", "Ping", R"({"count":NaN})"), GatewayDrop::bad_payload,
           f.reject("Ping", "Field 'count' for Ping must be int64, got float"));
  f.expect(f.env("pong", "Text", R"({"s":-Infinity})"), GatewayDrop::bad_payload,
           f.reject("Text", "Field 's' for Text must be string, got float"));
  f.expect(f.env("pong", "Ping", R"({"count":null})"), GatewayDrop::bad_payload,
           f.reject("Ping", "Field 'count' for Ping must be int64, got null"));
  f.expect(f.env("pong", "Ping", R"({"count":true})"), GatewayDrop::bad_payload,
           f.reject("Ping", "Field 'count' for Ping must be int64, got bool"));
  f.expect(f.env("pong", "Text", R"({"s":5})"), GatewayDrop::bad_payload,
           f.reject("Text", "Field 's' for Text must be string, got integer"));
  f.expect(f.env("pong", "Quote", R"({"symbol":"EUR","px":1.5,"qty":1})"), GatewayDrop::bad_payload,
           f.reject("Quote", "Field 'px' for Quote must be an array of 2 double, got float"));
  f.expect(f.env("pong", "Quote", R"({"symbol":"EUR","px":[1,"2"],"qty":1})"), GatewayDrop::bad_payload,
           f.reject("Quote", "Field 'px' for Quote element 1 must be double, got string"));
  f.expect(f.env("pong", "Quote", R"({"symbol":"EUR","px":[1,2,3],"qty":1})"), GatewayDrop::bad_payload,
           f.reject("Quote", "Field 'px' for Quote must be an array of 2 double, got 3 elements"));
  f.expect(Fixture::anon("pong", "Ping", R"({"count":"1"})"), GatewayDrop::bad_payload, kNoReject);
}

TEST_CASE("a payload value out of range for the C++ field is rejected naming the range") {
  Fixture f;
  f.expect(f.env("pong", "Level", R"({"level":256})"), GatewayDrop::bad_payload,
           f.reject("Level", "Field 'level' for Level is out of range for uint8: 256"));
  f.expect(f.env("pong", "Level", R"({"level":-1})"), GatewayDrop::bad_payload,
           f.reject("Level", "Field 'level' for Level is out of range for uint8: -1"));
  f.expect(f.env("pong", "Ping", R"({"count":9223372036854775808})"), GatewayDrop::bad_payload,
           f.reject("Ping", "Field 'count' for Ping is out of range for int64: 9223372036854775808"));
  f.expect(f.env("pong", "Quote", R"({"symbol":"EUR","px":[1,2],"qty":2147483648})"),
           GatewayDrop::bad_payload,
           f.reject("Quote", "Field 'qty' for Quote is out of range for int32: 2147483648"));
  f.expect(f.env("pong", "Quote", R"({"symbol":"EUR","px":[1e400,2],"qty":1})"),
           GatewayDrop::bad_payload,
           f.reject("Quote", "Field 'px' for Quote element 0 is out of range for double"));
  f.expect(f.env("pong", "Quote", R"({"symbol":"EURUSD.X","px":[1,2],"qty":1})"), std::nullopt,
           kNoReject);  // 8 bytes fit char[8] exactly
  f.expect(f.env("pong", "Quote", R"({"symbol":"EURUSD.XY","px":[1,2],"qty":1})"),
           GatewayDrop::bad_payload, f.reject("Quote", "Field 'symbol' for Quote is longer than 8 bytes"));
  f.expect(f.env("pong", "Quote", R"({"symbol":"EU\u0000R","px":[1,2],"qty":1})"),
           GatewayDrop::bad_payload, f.reject("Quote", "Field 'symbol' for Quote must not contain NUL"));
  CHECK(wait_until([&] { return f.pong->quotes.load() == 1; }));
}

TEST_CASE("strings with invalid UTF-8 are rejected, wherever they are in the frame") {
  Fixture f;
  f.expect(f.env("pong", "Text", "{\"s\":\"\xc3\x28\"}"), GatewayDrop::invalid_utf8,
           f.reject("Text", "Frame is not valid UTF-8"));
  f.expect(f.env("pong", "Text", "{\"s\":\"\xed\xa0\x80\"}"), GatewayDrop::invalid_utf8,
           f.reject("Text", "Frame is not valid UTF-8"));  // an encoded surrogate
  f.expect(f.env("pong", "Text", "{\"s\":\"\xc0\xaf\"}"), GatewayDrop::invalid_utf8,
           f.reject("Text", "Frame is not valid UTF-8"));  // an overlong encoding
  f.expect(f.env("pong", "Ping", "{\"count\":1,\"\xff\":2}"), GatewayDrop::invalid_utf8,
           f.reject("Ping", "Frame is not valid UTF-8"));  // in a key
  // in the receiver: a Reject cannot name it, so it goes without rejected_by
  f.expect(f.env("p\xe9ong", "Ping", R"({"count":1})"), GatewayDrop::invalid_utf8,
           f.reject("Ping", "Frame is not valid UTF-8", ""));
  f.expect(Fixture::anon("pong", "Text", "{\"s\":\"\xff\"}"), GatewayDrop::invalid_utf8, kNoReject);
  // an escaped lone surrogate is not a character either
  f.expect(f.env("pong", "Text", R"({"s":"\ud800"})"), GatewayDrop::bad_json,
           f.reject("Text", "Malformed JSON: Problem while parsing a string"));
  // valid multi-byte text, raw and escaped, is delivered as is
  f.expect(f.env("pong", "Text", "{\"s\":\"caf\xc3\xa9 \\u20ac \\ud83d\\ude00\"}"), std::nullopt,
           kNoReject);
  CHECK(wait_until([&] { return f.pong->texts.load() == 1; }));
  CHECK(f.pong->last_text == "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
}

TEST_CASE("nesting deeper than max_depth is rejected before it is parsed") {
  Fixture f;
  const auto nested = [&](int levels) {  // the envelope and the payload are 2 of them
    return f.env("pong", "Level",
                 R"({"level":1,"x":)" + std::string(static_cast<std::size_t>(levels - 2), '[') +
                     std::string(static_cast<std::size_t>(levels - 2), ']') + "}");
  };
  f.expect(nested(64), std::nullopt, kNoReject);  // at the limit: delivered
  CHECK(wait_until([&] { return f.pong->levels.load() == 1; }));
  f.expect(nested(65), GatewayDrop::too_deep, f.reject("Level", "JSON nesting deeper than 64 levels"));
  f.expect(std::string(500, '[') + std::string(500, ']'), GatewayDrop::too_deep, kNoReject);
  f.expect(std::string(1000, '{'), GatewayDrop::too_deep, kNoReject);
  // brackets inside a string are text, not nesting
  f.expect(f.env("pong", "Text", R"({"s":")" + std::string(200, '[') + R"("})"), std::nullopt,
           kNoReject);
  CHECK(wait_until([&] { return f.pong->texts.load() == 1; }));
}
