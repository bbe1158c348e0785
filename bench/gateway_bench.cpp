// Google Benchmark: the gateway's per-message costs, each beside an in-run baseline.
//   BM_DecodeDispatch        a ~150-byte Order frame: checks, simdjson On-Demand decode,
//                            receiver/type/sender lookups, push into a local actor's mailbox
//   BM_DecodeDispatch_Sorted the same frame in the C++ peer's sorted key order (payload first,
//                            so the payload is parsed in a second pass)
//   BM_Baseline_ParseOnly    simdjson On-Demand walking the same frame, reading every value
//   BM_Baseline_LocalSend    try_send of an already-built Order into the same mailbox
//   BM_EncodePayload         the Order's fields written as JSON
//   BM_Baseline_Snprintf     the same JSON written with one snprintf
#include <benchmark/benchmark.h>
#include <simdjson.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <string>

#include <tern/gateway.hpp>
#include <tern/manager.hpp>

namespace {

struct Order {
  static constexpr tern::MessageId message_id = 2001;
  char sym[8] = {};
  std::int8_t side = 0;
  std::int64_t qty = 0;
  double px = 0;
  TERN_WIRE(Order, sym, side, qty, px)
};

class Sink : public tern::Actor {
 public:
  Sink() { handle<&Sink::on_order>(); }
  void on_order(const Order&) {}
};

// 150 bytes each.
const std::string kFrame =
    R"({"sender_actor":"algo","sender_endpoint":"tcp://localhost:5002","receiver":"oms",)"
    R"("message_type":"Order","message":{"sym":"AAPL","side":1,"qty":100,"px":187.25}})";
const std::string kSorted =
    R"({"message":{"px":187.25,"qty":100,"side":1,"sym":"AAPL"},"message_type":"Order",)"
    R"("receiver":"oms","sender_actor":"algo","sender_endpoint":"tcp://localhost:5002"})";

/// A gateway and a sink actor, managed but not started: frames are handled on the
/// benchmark thread, and the benchmark empties the sink's mailbox itself.
struct Setup {
  Setup() {
    reg.add<Order>();
    tern::GatewayConfig cfg;
    cfg.bind = "tcp://127.0.0.1:*";
    auto g = std::make_unique<tern::Gateway>(reg, cfg);
    gw = g.get();
    mgr.manage("gw", std::move(g));
    sink = mgr.manage("oms", std::make_unique<Sink>(), {}, tern::MailboxConfig{256});
  }
  void drain() {
    tern::detail::Mailbox& mb = sink.actor()->mailbox();
    std::uint32_t w = 0;
    while (tern::detail::Record* s = mb.front(w)) {
      tern::destroy_message(tern::detail::message_type_at(s->type), mb.payload(*s, w));
      mb.pop(*s, w);
    }
    mb.release();
  }
  tern::wire::Registry reg;
  tern::Manager mgr;
  tern::Gateway* gw = nullptr;
  tern::ActorRef sink;
};

void run_decode(benchmark::State& state, const std::string& frame) {
  Setup s;
  std::uint32_t k = 0;
  for (auto _ : state) {
    s.gw->process_frame(frame.data(), frame.size());
    if (++k == 128) {  // empty the mailbox now and then (its cost is in the figure)
      k = 0;
      s.drain();
    }
  }
  s.drain();
  const tern::GatewayStats st = s.gw->stats();
  if (st.dropped_total() != 0 || st.messages_in != static_cast<std::uint64_t>(state.iterations()))
    state.SkipWithError("frames were dropped");
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * frame.size()));
  state.counters["frame_bytes"] = static_cast<double>(frame.size());
}

void BM_DecodeDispatch(benchmark::State& state) { run_decode(state, kFrame); }
void BM_DecodeDispatch_Sorted(benchmark::State& state) { run_decode(state, kSorted); }

void BM_Baseline_ParseOnly(benchmark::State& state) {
  simdjson::ondemand::parser parser;
  if (parser.allocate(64 * 1024)) state.SkipWithError("allocate");
  std::string buf(kFrame.size() + simdjson::SIMDJSON_PADDING, '\0');
  double sink = 0;
  for (auto _ : state) {
    std::memcpy(buf.data(), kFrame.data(), kFrame.size());
    simdjson::ondemand::document doc;
    if (parser.iterate(buf.data(), kFrame.size(), buf.size()).get(doc)) state.SkipWithError("parse");
    simdjson::ondemand::object obj;
    if (doc.get_object().get(obj)) state.SkipWithError("parse");
    for (auto f : obj) {
      std::string_view key;
      if (f.unescaped_key().get(key)) break;
      if (key == "message") {
        simdjson::ondemand::object m;
        if (f.value().get_object().get(m)) break;
        for (auto g : m) {
          std::string_view k2;
          if (g.unescaped_key().get(k2)) break;
          simdjson::ondemand::value v = g.value();
          if (k2 == "sym") {
            std::string_view sv;
            if (!v.get_string().get(sv)) sink += static_cast<double>(sv.size());
          } else {
            double d;
            if (!v.get_double().get(d)) sink += d;
          }
        }
      } else {
        std::string_view sv;
        if (!f.value().get_string().get(sv)) sink += static_cast<double>(sv.size());
      }
    }
    benchmark::DoNotOptimize(sink);
  }
}

Order sample_order() {
  Order o;
  std::memcpy(o.sym, "AAPL", 4);
  o.side = 1;
  o.qty = 100;
  o.px = 187.25;
  return o;
}

void BM_Baseline_LocalSend(benchmark::State& state) {
  Setup s;
  const Order o = sample_order();
  std::uint32_t k = 0;
  for (auto _ : state) {
    Order copy = o;
    if (s.sink.try_send(std::move(copy)) != tern::SendResult::ok) state.SkipWithError("full");
    if (++k == 128) {
      k = 0;
      s.drain();
    }
  }
  s.drain();
}


void BM_EncodePayload(benchmark::State& state) {
  tern::wire::Registry reg;
  reg.add<Order>();
  const tern::wire::WireType& t = *reg.find(Order::message_id);
  const Order o = sample_order();
  std::string out;
  out.reserve(256);
  for (auto _ : state) {
    out.clear();
    if (!reg.encode_payload(t, &o, out)) state.SkipWithError("encode");
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["json_bytes"] = static_cast<double>(out.size());
}

void BM_Baseline_Snprintf(benchmark::State& state) {
  const Order o = sample_order();
  char buf[256];
  for (auto _ : state) {
    const int n = std::snprintf(
        buf, sizeof buf,
        "{\"sym\":\"%.8s\",\"side\":%d,\"qty\":%lld,\"px\":%.17g}", o.sym, o.side,
        static_cast<long long>(o.qty), o.px);
    benchmark::DoNotOptimize(n);
    benchmark::DoNotOptimize(buf);
  }
}

}  // namespace

BENCHMARK(BM_DecodeDispatch);
BENCHMARK(BM_DecodeDispatch_Sorted);
BENCHMARK(BM_Baseline_ParseOnly);
BENCHMARK(BM_Baseline_LocalSend);
BENCHMARK(BM_EncodePayload);
BENCHMARK(BM_Baseline_Snprintf);
BENCHMARK_MAIN();
