// The gateway fuzz harness, shared by the libFuzzer target (fuzz_gateway.cpp) and the
// regression test (tests/fuzz_regression_test.cpp), so a saved crash input replays exactly.
//
// One Gateway whose Manager is never started: each input goes through
// Gateway::process_frame on the calling thread, then the receiving actor's handlers and the
// gateway's outbound turn run on the same thread (the private Runtime::drain), so one input
// is one deterministic step. Everything the gateway sends to the harness lands on a PULL
// socket (the "sink") and is checked. Checked per input:
//   - every frame is accounted for exactly once (delivered, or dropped with one cause);
//   - every delivered message reaches its handler;
//   - a decoded message encodes again and decodes back to the same value;
//   - every frame the gateway sends is a well-formed envelope (a Reject: exactly its three
//     string fields, from a null sender);
//   - with strict_json (on by default; TERN_FUZZ_STRICT_JSON=0 turns it off): every frame
//     delivered is valid JSON (plus the bare NaN / Infinity / -Infinity tokens the gateway
//     tolerates, docs/gateway.md).
// check_serving() additionally sends a valid Ping and waits for the Pong.
//
// Endpoints: the literal text "ipc://@SINK" in an input is replaced by the sink's endpoint
// (an abstract-namespace ipc socket unique to this process), so seed files can ask for
// replies and Rejects. The gateway may still be told to connect anywhere else; scripts/fuzz
// runs the fuzzer in a network namespace of its own, where such connections go nowhere.
#pragma once
#include <unistd.h>
#include <zmq.h>

#include <array>
#include <cctype>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

#include <simdjson.h>

#include <tern/gateway.hpp>
#include <tern/manager.hpp>

#include "runtime.hpp"  // lib/: drains the actors on the harness thread

namespace tern::fuzz {

// ---- the registered types: every field kind the wire supports ---------------------------

enum class Side : std::uint8_t { buy = 1, sell = 2 };

struct Ping {
  static constexpr MessageId message_id = 900;
  std::int64_t count = 0;
  TERN_WIRE(Ping, count)
};
struct Pong {
  static constexpr MessageId message_id = 901;
  std::int64_t count = 0;
  TERN_WIRE(Pong, count)
};
struct Level {
  static constexpr MessageId message_id = 902;
  std::uint8_t level = 0;
  TERN_WIRE(Level, level)
  bool operator==(const Level&) const = default;
};
struct Ints {
  static constexpr MessageId message_id = 903;
  bool b = false;
  std::int8_t i8 = 0;
  std::int16_t i16 = 0;
  std::int32_t i32 = 0;
  std::int64_t i64 = 0;
  std::uint8_t u8 = 0;
  std::uint16_t u16 = 0;
  std::uint32_t u32 = 0;
  std::uint64_t u64 = 0;
  Side side = Side::buy;
  TERN_WIRE(Ints, b, i8, i16, i32, i64, u8, u16, u32, u64, side)
  bool operator==(const Ints&) const = default;
};
struct Mixed {
  static constexpr MessageId message_id = 904;
  float f32 = 0;
  double f64 = 0;
  std::string s;
  char c[4] = {};
  std::array<float, 3> af{};
  std::int16_t ai[2] = {};
  TERN_WIRE(Mixed, f32, f64, s, c, af, ai)
  bool operator==(const Mixed& o) const {
    return f32 == o.f32 && f64 == o.f64 && s == o.s && std::memcmp(c, o.c, sizeof c) == 0 &&
           af == o.af && ai[0] == o.ai[0] && ai[1] == o.ai[1];
  }
};
struct Quote {
  static constexpr MessageId message_id = 905;
  char symbol[16] = {};
  double bid = 0, ask = 0;
  std::int64_t seq = 0;
  TERN_WIRE(Quote, symbol, bid, ask, seq)
  bool operator==(const Quote& o) const {
    return std::memcmp(symbol, o.symbol, sizeof symbol) == 0 && bid == o.bid && ask == o.ask &&
           seq == o.seq;
  }
};
struct Empty {
  static constexpr MessageId message_id = 906;
  TERN_WIRE(Empty)
  bool operator==(const Empty&) const = default;
};
struct Trade {  // a wire name that is not the C++ name
  static constexpr MessageId message_id = 907;
  std::uint64_t qty = 0;
  double px = 0;
  TERN_WIRE_AS("trade.v2", Trade, qty, px)
  bool operator==(const Trade&) const = default;
};

inline wire::Registry registry() {
  wire::Registry r;
  r.add<Ping>().add<Pong>().add<Level>().add<Ints>().add<Mixed>().add<Quote>().add<Empty>().add<Trade>();
  return r;
}

/// The gateway's limits under fuzzing: small, so the fuzzer reaches every limit quickly and
/// memory stays bounded however many endpoints the inputs name.
inline GatewayConfig config(const std::string& bind) {
  GatewayConfig c;
  c.bind = bind;
  // only the sink: an input naming any other endpoint is refused, never connected to
  c.allowed_endpoints = {"ipc://@tern-fuzz-sink-*"};
  c.max_frame_bytes = 4096;
  c.max_depth = 16;
  c.max_remotes = 64;
  c.max_peers = 8;
  c.max_backlog = 32;
  // why this high: the harness never runs the gateway's thread loop, which is what sends a
  // peer's backlog once ZeroMQ takes frames again; the sink must never need one (a burst of
  // Rejects while ZeroMQ's I/O thread is descheduled would strand the sink's frames).
  c.send_hwm = 4096;
  c.linger_ms = 0;
  return c;
}

// ---- the receiving actor ---------------------------------------------------------------

/// Answers Ping with Pong, echoes every other registered type back to its sender after
/// checking it survives an encode/decode round trip, and counts Rejects.
class Target : public Actor {
 public:
  explicit Target(const wire::Registry& reg) : reg_(reg) {
    handle<&Target::on_ping>();
    handle<&Target::on_pong>();
    handle<&Target::echo<Level>>();
    handle<&Target::echo<Ints>>();
    handle<&Target::echo<Mixed>>();
    handle<&Target::echo<Quote>>();
    handle<&Target::echo<Empty>>();
    handle<&Target::echo<Trade>>();
    handle<&Target::on_reject>();
  }
  std::string error;  ///< the first broken invariant, empty while all is well
  std::uint64_t rejects = 0;

 private:
  void on_ping(const Ping& p) { (void)reply(Pong{p.count}); }
  void on_pong(const Pong&) {}
  void on_reject(const Reject& r) {
    ++rejects;
    (void)r.reason();
  }
  template <class T>
  void echo(const T& m) {
    std::string json, why;
    const wire::WireType* t = reg_.find(T::message_id);
    if (!reg_.encode_payload(*t, &m, json, &why)) {
      // NaN / Infinity are tolerated on the way in but never written (encode_failed).
      if (why.find("is not a finite number") == std::string::npos)
        note(std::string("a decoded ") + std::string(T::wire_name) + " does not encode: " + why);
    } else {
      T back;
      const wire::DecodeStatus st = reg_.decode(json, back);
      if (!st)
        note(std::string("our own encoding of ") + std::string(T::wire_name) +
             " does not decode: " + st.reason + " in " + json);
      else if (!(back == m))
        note(std::string(T::wire_name) + " changed in an encode/decode round trip: " + json);
    }
    (void)reply(T(m));
  }
  void note(std::string e) {
    if (error.empty()) error = std::move(e);
  }
  const wire::Registry& reg_;
};

// ---- an independent JSON check -----------------------------------------------------------

/// True when `text` is one JSON value per RFC 8259 plus bare NaN / Infinity / -Infinity
/// (grammar only: numbers of any size, any \u escape) in UTF-8. Written here, not taken from
/// simdjson, so it can judge the gateway's use of simdjson. Recursive: callers bound the nesting first (the gateway's max_depth).
class JsonGrammar {
 public:
  static bool valid(std::string_view text) {
    if (!simdjson::validate_utf8(text.data(), text.size())) return false;
    JsonGrammar g(text);
    g.ws();
    if (!g.value(0)) return false;
    g.ws();
    return g.p_ == g.end_;
  }

 private:
  explicit JsonGrammar(std::string_view t) : p_(t.data()), end_(t.data() + t.size()) {}
  bool at(char c) const { return p_ < end_ && *p_ == c; }
  bool eat(char c) {
    if (!at(c)) return false;
    ++p_;
    return true;
  }
  void ws() {
    while (p_ < end_ && (*p_ == ' ' || *p_ == '\t' || *p_ == '\n' || *p_ == '\r')) ++p_;
  }
  bool digits() {
    const char* s = p_;
    while (p_ < end_ && *p_ >= '0' && *p_ <= '9') ++p_;
    return p_ > s;
  }
  bool literal(std::string_view w) {
    if (static_cast<std::size_t>(end_ - p_) < w.size() || std::string_view(p_, w.size()) != w)
      return false;
    p_ += w.size();
    return true;
  }
  bool number() {
    eat('-');
    if (eat('0')) {
      if (at('0') || (p_ < end_ && *p_ >= '1' && *p_ <= '9')) return false;
    } else if (!digits()) {
      return false;
    }
    if (eat('.') && !digits()) return false;
    if (at('e') || at('E')) {
      ++p_;
      if (!eat('+')) eat('-');
      if (!digits()) return false;
    }
    return true;
  }
  bool string() {
    if (!eat('"')) return false;
    while (p_ < end_) {
      const auto c = static_cast<unsigned char>(*p_++);
      if (c == '"') return true;
      if (c < 0x20) return false;
      if (c != '\\') continue;
      if (p_ >= end_) return false;
      const char e = *p_++;
      if (e == 'u') {
        for (int i = 0; i < 4; ++i, ++p_)
          if (p_ >= end_ || !std::isxdigit(static_cast<unsigned char>(*p_))) return false;
      } else if (!std::strchr("\"\\/bfnrt", e) || e == '\0') {
        return false;
      }
    }
    return false;
  }
  bool value(int depth) {
    if (depth > 256) return false;
    if (at('{')) {
      ++p_;
      ws();
      if (eat('}')) return true;
      do {
        ws();
        if (!string()) return false;
        ws();
        if (!eat(':')) return false;
        ws();
        if (!value(depth + 1)) return false;
        ws();
      } while (eat(','));
      return eat('}');
    }
    if (at('[')) {
      ++p_;
      ws();
      if (eat(']')) return true;
      do {
        ws();
        if (!value(depth + 1)) return false;
        ws();
      } while (eat(','));
      return eat(']');
    }
    if (at('"')) return string();
    if (at('t')) return literal("true");
    if (at('f')) return literal("false");
    if (at('n')) return literal("null");
    // Tolerated by the gateway (docs/gateway.md): Python's bare NaN / Infinity / -Infinity.
    if (at('N')) return literal("NaN");
    if (at('I')) return literal("Infinity");
    if (literal("-Infinity")) return true;
    return number();
  }
  const char* p_;
  const char* end_;
};

// ---- the harness ------------------------------------------------------------------------

class Harness {
 public:
  static constexpr std::string_view kSinkToken = "ipc://@SINK";

  Harness() : reg_(registry()) {
    // On by default since the codec validates skipped values; TERN_FUZZ_STRICT_JSON=0 turns
    // it off.
    const char* strict = std::getenv("TERN_FUZZ_STRICT_JSON");
    strict_json = !(strict && std::strcmp(strict, "0") == 0);
    static std::atomic<int> instance{0};
    const std::string tag = std::to_string(::getpid()) + "-" + std::to_string(instance++);
    sink_endpoint_ = "ipc://@tern-fuzz-sink-" + tag;
    auto g = std::make_unique<Gateway>(reg_, config("ipc://@tern-fuzz-gw-" + tag));
    gw_ = g.get();
    mgr_.manage("gw", std::move(g));
    const ActorRef t = mgr_.manage("pong", std::make_unique<Target>(gw_->registry()));
    target_ = static_cast<Target*>(t.actor());
    gw_->expose("exposed", t);  // the other way to find a receiver
    // why now: the remote table is small (config()); check_serving's sender keeps a slot.
    (void)gw_->remote("tester", sink_endpoint_);
    ctx_ = zmq_ctx_new();
    sink_ = zmq_socket(ctx_, ZMQ_PULL);
    const int linger = 0;
    zmq_setsockopt(sink_, ZMQ_LINGER, &linger, sizeof linger);
    if (zmq_bind(sink_, sink_endpoint_.c_str()) != 0) {
      std::fprintf(stderr, "fuzz harness: cannot bind %s: %s\n", sink_endpoint_.c_str(),
                   zmq_strerror(zmq_errno()));
      std::abort();
    }
  }
  ~Harness() {
    zmq_close(sink_);
    zmq_ctx_term(ctx_);
  }
  Harness(const Harness&) = delete;
  Harness& operator=(const Harness&) = delete;

  /// Also check that every delivered frame is valid JSON (JsonGrammar).
  bool strict_json = false;

  Gateway& gateway() noexcept { return *gw_; }
  std::string_view sink_endpoint() const noexcept { return sink_endpoint_; }
  std::uint64_t sink_frames() const noexcept { return sink_frames_; }

  /// Feeds one input through the gateway; returns the first broken invariant, or "".
  std::string run(const std::uint8_t* data, std::size_t size) {
    frame_.assign(reinterpret_cast<const char*>(data), size);
    for (std::size_t at = 0; (at = frame_.find(kSinkToken, at)) != std::string::npos;) {
      frame_.replace(at, kSinkToken.size(), sink_endpoint_);
      at += sink_endpoint_.size();
    }
    const GatewayStats before = gw_->stats();
    const std::uint64_t handled_before = target_->stats().handled;
    gw_->process_frame(frame_.data(), frame_.size());
    const GatewayStats after = gw_->stats();
    if (inbound(after) != inbound(before) + 1)
      return "a frame was accounted for " + std::to_string(inbound(after) - inbound(before)) +
             " times (delivered or dropped), not once";
    turn();
    const std::uint64_t delivered = after.messages_in - before.messages_in;
    if (strict_json && delivered && !JsonGrammar::valid(frame_))
      return "a frame that is not valid JSON was delivered";
    if (target_->stats().handled != handled_before + delivered)
      return "a delivered message did not reach its handler";
    if (!target_->error.empty()) return target_->error;
    return drain_sink(std::chrono::milliseconds(0), -1);
  }
  std::string run(std::string_view s) {
    return run(reinterpret_cast<const std::uint8_t*>(s.data()), s.size());
  }

  /// Sends a valid Ping from "tester" at the sink and waits (up to `timeout`) for its Pong:
  /// the gateway still serves. Returns what went wrong, or "".
  std::string check_serving(std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    const std::int64_t n = kServingBase + ++serving_count_;
    const std::string ping = R"({"sender_actor":"tester","sender_endpoint":")" + sink_endpoint_ +
                             R"(","receiver":"pong","message_type":"Ping","message":{"count":)" +
                             std::to_string(n) + "}}";
    if (std::string e = run(ping); !e.empty()) return e;
    return drain_sink(timeout, n);
  }

 private:
  // why a base: Pongs the inputs themselves ask for (to the sink) are told apart.
  static constexpr std::int64_t kServingBase = std::int64_t{1} << 52;

  static std::string describe(const GatewayStats& s) {
    std::string d = "in " + std::to_string(s.messages_in) + ", out " +
                    std::to_string(s.messages_out) + ", remotes " + std::to_string(s.remotes) +
                    ", peers open " + std::to_string(s.peers_open) + ", evicted " +
                    std::to_string(s.peers_evicted) + ", backlog " + std::to_string(s.backlog);
    for (std::size_t i = 0; i < kGatewayDropCauses; ++i)
      if (s.dropped[i])
        d += ", " + std::string(to_string(static_cast<GatewayDrop>(i))) + " " +
             std::to_string(s.dropped[i]);
    return d;
  }

  static std::uint64_t inbound(const GatewayStats& s) {
    std::uint64_t n = s.messages_in;
    for (std::size_t d = 0; d <= static_cast<std::size_t>(GatewayDrop::actor_stopped); ++d)
      n += s.dropped[d];
    return n + s.drops(GatewayDrop::name_too_long);  // inbound, listed after the outbound causes
  }

  /// The receiver's handlers, then the gateway's outbound turn (replies and echoes leave).
  void turn() {
    detail::ThreadCtx* me = &detail::tl_ctx;
    Actor* saved = me->current;
    me->current = target_;
    while (detail::Runtime::drain(*target_, 64, me)) {
    }
    me->current = gw_;
    while (detail::Runtime::drain(*gw_, 64, me)) {
    }
    me->current = saved;
  }

  /// Checks every frame waiting at the sink. With `want_pong` >= 0, waits up to `timeout`
  /// for a Pong with that count.
  std::string drain_sink(std::chrono::milliseconds timeout, std::int64_t want_pong) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      if (want_pong >= 0 && pong_seen_ == want_pong) return "";
      zmq_msg_t m;
      zmq_msg_init(&m);
      int flags = ZMQ_DONTWAIT;
      if (want_pong >= 0) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
          zmq_msg_close(&m);
          return "no Pong " + std::to_string(want_pong) + " within " +
                 std::to_string(timeout.count()) + " ms: the gateway stopped serving (" +
                 describe(gw_->stats()) + ")";
        }
        zmq_pollitem_t item{sink_, 0, ZMQ_POLLIN, 0};
        zmq_poll(&item, 1, static_cast<long>(left.count()));
      }
      if (zmq_msg_recv(&m, sink_, flags) < 0) {
        zmq_msg_close(&m);
        if (want_pong < 0) return "";
        continue;
      }
      ++sink_frames_;
      const std::string_view f(static_cast<const char*>(zmq_msg_data(&m)), zmq_msg_size(&m));
      std::int64_t pong = -1;
      std::string e = check_envelope(f, pong);
      const bool more = zmq_msg_more(&m);
      zmq_msg_close(&m);
      if (!e.empty()) return e + ": " + std::string(f.substr(0, 400));
      if (more) return "the gateway sent a multipart message";
      if (pong >= kServingBase) pong_seen_ = pong;  // may arrive during run() already
    }
  }

  /// A frame the gateway sent must be one well-formed envelope.
  std::string check_envelope(std::string_view f, std::int64_t& pong) {
    namespace dom = simdjson::dom;
    dom::element doc;
    if (auto e = dom_.parse(f.data(), f.size()).get(doc))
      return std::string("the gateway sent malformed JSON (") + simdjson::error_message(e) + ")";
    dom::object env;
    if (doc.get_object().get(env)) return "the gateway sent a non-object";
    if (env.size() != 5) return "the gateway sent an envelope without exactly five keys";
    std::string_view type, receiver;
    if (env["message_type"].get_string().get(type)) return "message_type is not a string";
    if (env["receiver"].get_string().get(receiver) || receiver.empty())
      return "receiver is not a non-empty string";
    dom::object msg;
    if (env["message"].get_object().get(msg)) return "message is not an object";
    const auto sender_ok = [&](const char* key) {
      dom::element v;
      return !env[key].get(v) && (v.is_null() || v.is_string());
    };
    if (!sender_ok("sender_actor") || !sender_ok("sender_endpoint"))
      return "a sender key is missing or neither string nor null";
    if (type == "Reject") {
      if (!env["sender_actor"].is_null() || !env["sender_endpoint"].is_null())
        return "a Reject with a sender";
      if (msg.size() != 3) return "a Reject payload without exactly three fields";
      std::string_view reason, rejected_type, by;
      if (msg["reason"].get_string().get(reason) || reason.empty())
        return "a Reject without a reason";
      if (msg["message_type"].get_string().get(rejected_type) ||
          msg["rejected_by"].get_string().get(by))
        return "a Reject field is not a string";
      if (rejected_type == "Reject") return "a Reject answered a Reject";
      return "";
    }
    std::string_view from;
    if (env["sender_actor"].get_string().get(from) || from != "pong")
      return "a reply not from the receiving actor";
    std::string_view endpoint;
    if (env["sender_endpoint"].get_string().get(endpoint) || endpoint != gw_->endpoint())
      return "a reply without our endpoint";
    if (type == "Pong") {
      std::int64_t count;
      if (msg.size() != 1 || msg["count"].get_int64().get(count)) return "a malformed Pong";
      pong = count;
      return "";
    }
    if (!reg_.find(type)) return "a reply of an unregistered type";
    return "";
  }

  wire::Registry reg_;
  Manager mgr_;  // never started: the harness thread plays every actor's thread
  Gateway* gw_ = nullptr;
  Target* target_ = nullptr;
  void* ctx_ = nullptr;
  void* sink_ = nullptr;
  std::string sink_endpoint_;
  std::string frame_;
  simdjson::dom::parser dom_;
  std::int64_t serving_count_ = 0;
  std::int64_t pong_seen_ = -1;  ///< the last check_serving Pong that reached the sink
  std::uint64_t sink_frames_ = 0;
};

}  // namespace tern::fuzz
