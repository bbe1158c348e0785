// The shared table of wire frames (tests/fixtures/wire_frames.json) against the C++ gateway,
// over real ZeroMQ sockets. tests/python/test_wire_frames.py runs the same table against the
// Python transport: one tolerant decoding rule for both sides (docs/gateway.md).
#include <doctest/doctest.h>

#include <simdjson.h>
#include <zmq.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include <tern/gateway.hpp>
#include <tern/manager.hpp>

#include "test_util.hpp"

using namespace tern;
using tern::test::wait_until;

namespace {

struct Fill {
  static constexpr MessageId message_id = 700;
  std::int32_t qty = 0;
  double px = 0;
  float size = 0;
  std::uint64_t id = 0;
  std::string note;
  TERN_WIRE(Fill, qty, px, size, id, note)
};

class Sink : public Actor {
 public:
  Sink() {
    handle<&Sink::on_fill>();
    handle<&Sink::on_reject>();
  }
  std::mutex mu;
  int count = 0;  // under mu, as the fields below
  std::optional<Fill> fill;
  std::optional<Reject> reject;
  ActorRef from;

 private:
  void on_fill(const Fill& f) {
    std::lock_guard lock(mu);
    fill = f;
    from = sender();
    ++count;
  }
  void on_reject(const Reject& r) {
    std::lock_guard lock(mu);
    reject = r;
    from = sender();
    ++count;
  }
};

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::string from_hex(std::string_view h) {
  std::string out;
  for (std::size_t i = 0; i + 1 < h.size(); i += 2)
    out.push_back(static_cast<char>(std::stoi(std::string(h.substr(i, 2)), nullptr, 16)));
  return out;
}

void replace_all(std::string& s, std::string_view what, std::string_view with) {
  for (std::size_t at = 0; (at = s.find(what, at)) != std::string::npos; at += with.size())
    s.replace(at, what.size(), with);
}

GatewayDrop cause_named(std::string_view name) {
  for (std::size_t i = 0; i < kGatewayDropCauses; ++i)
    if (to_string(static_cast<GatewayDrop>(i)) == name) return static_cast<GatewayDrop>(i);
  FAIL("unknown drop cause in the table: " << name);
  return GatewayDrop::count_;
}

/// A float field's expected value: a number, or "NaN" / "Infinity" / "-Infinity".
bool same_float(double got, simdjson::dom::element want) {
  std::string_view s;
  if (!want.get_string().get(s)) {
    if (s == "NaN") return std::isnan(got);
    return got == (s == "Infinity" ? INFINITY : -INFINITY);
  }
  double d = 0;
  REQUIRE(!want.get_double().get(d));
  return got == d;
}

bool same_field(const Fill& f, std::string_view name, simdjson::dom::element want) {
  std::int64_t i;
  std::uint64_t u;
  std::string_view s;
  if (name == "qty") return !want.get_int64().get(i) && f.qty == i;
  if (name == "id") return !want.get_uint64().get(u) && f.id == u;
  if (name == "note") return !want.get_string().get(s) && f.note == s;
  if (name == "px") return same_float(f.px, want);
  if (name == "size") return same_float(f.size, want);
  FAIL("unknown Fill field in the table: " << name);
  return false;
}

/// A gateway with a "sink" actor, and a bare ZeroMQ peer ("tester") talking to it.
class Fixture {
 public:
  Fixture() {
    wire::Registry reg;
    reg.add<Fill>();
    GatewayConfig cfg;
    cfg.bind = "tcp://127.0.0.1:*";
    cfg.linger_ms = 100;
    auto g = std::make_unique<Gateway>(reg, std::move(cfg));
    gw = g.get();
    mgr_.manage("gw", std::move(g));
    sink = static_cast<Sink*>(mgr_.manage("sink", std::make_unique<Sink>()).actor());
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
  void send(const std::string& frame) {
    REQUIRE(zmq_send(push_, frame.data(), frame.size(), 0) == static_cast<int>(frame.size()));
  }
  /// The next frame back, parsed (REQUIRE: within 10 s).
  simdjson::dom::element recv() {
    zmq_msg_t m;
    zmq_msg_init(&m);
    const int n = zmq_msg_recv(&m, pull_, 0);
    last_.assign(n > 0 ? static_cast<const char*>(zmq_msg_data(&m)) : "", n > 0 ? n : 0);
    zmq_msg_close(&m);
    REQUIRE_MESSAGE(n >= 0, "nothing came back within 10 s");
    simdjson::dom::element e;
    REQUIRE(!parser_.parse(last_).get(e));
    return e;
  }

  Gateway* gw = nullptr;
  Sink* sink = nullptr;
  std::string endpoint;

 private:
  Manager mgr_;
  void* ctx_ = nullptr;
  void* pull_ = nullptr;
  void* push_ = nullptr;
  simdjson::dom::parser parser_;
  std::string last_;
};

template <class Json>  // dom::element or dom::object
std::string_view str(Json e, const char* key) {
  std::string_view s;
  if (e[key].get_string().get(s)) return "<not a string>";
  return s;
}

}  // namespace

TEST_CASE("the shared table of wire frames: each frame's outcome in the C++ gateway") {
  const char* root = std::getenv("TERN_SOURCE_ROOT");
  const std::string text =
      slurp(std::string(root ? root : ".") + "/tests/fixtures/wire_frames.json");
  simdjson::dom::parser table_parser;
  simdjson::dom::element table;
  REQUIRE(!table_parser.parse(text).get(table));

  // The table's type is the one registered here, field by field.
  Fixture f;
  const wire::WireType* t = f.gw->registry().find("Fill");
  REQUIRE(t);
  simdjson::dom::object kinds;
  REQUIRE(!table["types"]["Fill"].get_object().get(kinds));
  CHECK(kinds.size() == t->fields.size());
  for (const wire::Field& fl : t->fields) {
    std::string_view k;
    REQUIRE(!kinds[fl.name].get_string().get(k));
    CHECK(k == wire::to_string(fl.kind));
  }

  simdjson::dom::array rows;
  REQUIRE(!table["frames"].get_array().get(rows));
  int checked = 0, probes = 0;
  for (simdjson::dom::element row : rows) {
    std::string_view only;
    if (!row["only"].get_string().get(only) && only != "cpp") continue;
    CAPTURE(str(row, "name"));
    std::string frame;
    std::string_view s;
    if (!row["frame"].get_string().get(s))
      frame.assign(s);
    else
      frame = from_hex(str(row, "frame_hex"));
    replace_all(frame, "@SENDER", f.endpoint);
    simdjson::dom::object expect;
    REQUIRE(!row["expect"].get_object().get(expect));

    const GatewayStats before = f.gw->stats();
    int sink_before;
    {
      std::lock_guard lock(f.sink->mu);
      sink_before = f.sink->count;
      f.sink->fill.reset();
      f.sink->reject.reset();
    }
    f.send(frame);
    // A probe after it: its Reject (unknown actor) comes back after anything the frame caused.
    const std::string probe_name = "probe-" + std::to_string(++probes);
    f.send(R"({"sender_actor":"tester","sender_endpoint":")" + f.endpoint + R"(","receiver":")" +
           probe_name + R"(","message_type":"Fill","message":{}})");
    simdjson::dom::element back = f.recv();
    std::string_view reason;
    if (!expect["rejected"].get_string().get(reason)) {
      CHECK(str(back, "message_type") == "Reject");
      CHECK(str(back, "receiver") == "tester");
      CHECK(str(back["message"], "reason").find(reason) != std::string_view::npos);
      back = f.recv();
    }
    CHECK_MESSAGE(str(back["message"], "rejected_by") == probe_name, "a Reject nobody expected");
    const GatewayStats after = f.gw->stats();
    const auto probe = GatewayDrop::unknown_actor;

    simdjson::dom::object delivered;
    if (!expect["delivered"].get_object().get(delivered)) {
      CHECK(after.dropped_total() == before.dropped_total() + 1);
      CHECK(after.drops(probe) == before.drops(probe) + 1);
      CHECK(after.messages_in == before.messages_in + 1);
      std::int64_t ignored = -1;
      REQUIRE(!delivered["ignored"].get_int64().get(ignored));
      CHECK(after.keys_ignored == before.keys_ignored + static_cast<std::uint64_t>(ignored));
      REQUIRE(wait_until([&] {
        std::lock_guard lock(f.sink->mu);
        return f.sink->count == sink_before + 1;
      }));
      std::lock_guard lock(f.sink->mu);
      const std::string_view type = str(delivered, "type");
      simdjson::dom::object fields;
      REQUIRE(!delivered["fields"].get_object().get(fields));
      if (type == "Fill") {
        REQUIRE(f.sink->fill);
        for (auto [name, want] : fields) CHECK_MESSAGE(same_field(*f.sink->fill, name, want), name);
      } else {
        REQUIRE(type == "Reject");
        REQUIRE(f.sink->reject);
        CHECK(f.sink->reject->message_type() == str(fields, "message_type"));
        CHECK(f.sink->reject->reason() == str(fields, "reason"));
        CHECK(f.sink->reject->rejected_by() == str(fields, "rejected_by"));
      }
      std::string_view sender;
      if (delivered["sender"].get_string().get(sender)) {
        CHECK_FALSE(f.sink->from);
      } else {
        REQUIRE(f.sink->from.is_remote());
        // a learnt remote entry for the inbound sender (gw-limits: remote() makes entries of
        // its own, so the sender's ref is compared by name)
        CHECK(f.sink->from.name() == sender);
      }
    } else {
      std::string_view cause_text;
      if (expect["cause"].get_string().get(cause_text))
        REQUIRE(!expect["dropped"].get_string().get(cause_text));
      const GatewayDrop cause = cause_named(cause_text);
      CAPTURE(cause_text);
      CHECK(after.dropped_total() == before.dropped_total() + 2);
      CHECK(after.drops(cause) == before.drops(cause) + (cause == probe ? 2 : 1));
      CHECK(after.messages_in == before.messages_in);
      std::lock_guard lock(f.sink->mu);
      CHECK(f.sink->count == sink_before);
    }
    ++checked;
  }
  CHECK(checked >= 40);
}
