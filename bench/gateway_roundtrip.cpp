// C++ <-> C++ round trip over TCP loopback through two gateways, beside a bare libzmq
// PUSH/PULL ping-pong in the same run (same frame bytes, same two-context layout). Rounds
// alternate bare / gateway so both see the same machine noise; the figures pool all rounds.
//
//   gateway_roundtrip [--n 20000] [--warmup 2000] [--rounds 3] [--wake futex|spin|yield]
//                     [--spin 0] [--queued] [--curve] [--json FILE]
//
// --curve: each round also runs both again with CURVE (GatewayConfig::curve, keys written to a
// temporary directory; the bare pair with the same libzmq CURVE options and no ZAP handler).
#include <stdlib.h>
#include <zmq.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>

#include <tern/gateway.hpp>
#include <tern/histogram.hpp>
#include <tern/manager.hpp>

#include "bench_util.hpp"
#include "gateway_roundtrip.hpp"

namespace {

using gwrt::Go;
using gwrt::Ping;
using gwrt::Pinger;
using gwrt::Pong;
using gwrt::Ponger;
using gwrt::Result;

const char* kUsage =
    "usage: gateway_roundtrip [--n N] [--warmup N] [--rounds R] [--wake futex|spin|yield]\n"
    "                         [--spin TURNS] [--queued] [--curve] [--json FILE]\n"
    "  --spin: the gateways' idle turns before they park in poll (GatewayConfig::spin_turns)\n"
    "  Round trips Ping -> Pong through two gateways on tcp loopback, beside a bare libzmq\n"
    "  PUSH/PULL ping-pong of the same frame bytes; prints p50/p90/p99/max and round trips/s.\n"
    "  --curve: also both with CURVE authentication and encryption, in the same rounds.\n";

/// CURVE keys for one round: two pairs, in memory (bare) and in files (gateways).
struct CurveKeys {
  std::string dir;  ///< empty: CURVE off
  tern::CurveKeyPair a, b;
};

std::string last_endpoint(void* sock) {
  char buf[256];
  std::size_t len = sizeof buf;
  zmq_getsockopt(sock, ZMQ_LAST_ENDPOINT, buf, &len);
  return std::string(buf, len - 1);
}

// ---- baseline: bare libzmq ------------------------------------------------------------------

/// A CURVE server with `mine` (peer null), or a client of the server key `*peer`.
void curve_opts(void* s, const tern::CurveKeyPair& mine, const std::string* peer) {
  const int one = 1;
  if (!peer) zmq_setsockopt(s, ZMQ_CURVE_SERVER, &one, sizeof one);
  if (peer) zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, peer->c_str(), 40);
  zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, mine.public_key.c_str(), 40);
  zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, mine.secret_key.c_str(), 40);
}

void bare_round(std::uint64_t warmup, std::uint64_t n, const std::string& frame,
                const CurveKeys& keys, Result& out) {
  void* ctx_a = zmq_ctx_new();
  void* ctx_b = zmq_ctx_new();
  void* pull_a = zmq_socket(ctx_a, ZMQ_PULL);
  void* pull_b = zmq_socket(ctx_b, ZMQ_PULL);
  void* push_a = zmq_socket(ctx_a, ZMQ_PUSH);
  void* push_b = zmq_socket(ctx_b, ZMQ_PUSH);
  if (!keys.dir.empty()) {
    curve_opts(pull_a, keys.a, nullptr);
    curve_opts(pull_b, keys.b, nullptr);
    curve_opts(push_a, keys.a, &keys.b.public_key);
    curve_opts(push_b, keys.b, &keys.a.public_key);
  }
  zmq_bind(pull_a, "tcp://127.0.0.1:*");
  zmq_bind(pull_b, "tcp://127.0.0.1:*");
  zmq_connect(push_a, last_endpoint(pull_b).c_str());
  zmq_connect(push_b, last_endpoint(pull_a).c_str());
  const std::uint64_t total = warmup + n;
  std::thread pong([&] {
    zmq_msg_t m;
    zmq_msg_init(&m);
    for (std::uint64_t i = 0; i < total; ++i) {
      zmq_msg_recv(&m, pull_b, 0);
      zmq_send(push_b, zmq_msg_data(&m), zmq_msg_size(&m), 0);
    }
    zmq_msg_close(&m);
  });
  zmq_msg_t m;
  zmq_msg_init(&m);
  std::uint64_t start = 0;
  for (std::uint64_t i = 0; i < total; ++i) {
    const std::uint64_t t0 = bench::now_ns();
    if (i == warmup) start = t0;
    zmq_send(push_a, frame.data(), frame.size(), 0);
    zmq_msg_recv(&m, pull_a, 0);
    if (i >= warmup) out.h.record(bench::now_ns() - t0);
  }
  out.seconds += static_cast<double>(bench::now_ns() - start) / 1e9;
  out.n += n;
  zmq_msg_close(&m);
  pong.join();
  const int linger = 0;
  for (void* s : {pull_a, pull_b, push_a, push_b}) {
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    zmq_close(s);
  }
  zmq_ctx_term(ctx_a);
  zmq_ctx_term(ctx_b);
}

// ---- through two gateways -------------------------------------------------------------------

void gateway_round(std::uint64_t warmup, std::uint64_t n, tern::Wake wake, bool inline_dispatch,
                   std::uint32_t spin_turns, const CurveKeys& keys, Result& out) {
  tern::wire::Registry reg;
  reg.add<Ping>().add<Pong>();
  tern::GatewayConfig cfg;
  cfg.bind = "tcp://127.0.0.1:*";
  cfg.inline_dispatch = inline_dispatch;
  cfg.spin_turns = spin_turns;
  tern::GatewayConfig cfg_b = cfg;
  if (!keys.dir.empty()) {  // a lets b in and b lets a in
    cfg.curve.key_file = keys.dir + "/a.key_secret";
    cfg.curve.allow_keys = {keys.b.public_key};
    cfg_b.curve.key_file = keys.dir + "/b.key_secret";
    cfg_b.curve.allow_keys = {keys.a.public_key};
  }
  tern::ThreadConfig tc;
  tc.wake = wake;
  tern::Manager ma, mb;
  auto ga = std::make_unique<tern::Gateway>(reg, cfg);
  auto gb = std::make_unique<tern::Gateway>(reg, cfg_b);
  tern::Gateway& gw_a = *ga;
  tern::Gateway& gw_b = *gb;
  ma.manage("gw", std::move(ga), tc);
  mb.manage("gw", std::move(gb), tc);
  auto pinger = std::make_unique<Pinger>(warmup, n, out);
  Pinger& p = *pinger;
  p.pong = keys.dir.empty() ? gw_a.remote("pong", gw_b.endpoint())
                            : gw_a.remote("pong", gw_b.endpoint(), gw_b.public_key());
  const tern::ActorRef ping_ref = ma.manage("ping", std::move(pinger), tc);
  mb.manage("pong", std::make_unique<Ponger>(), tc);
  ma.init();
  mb.init();
  (void)ping_ref.send(Go{});
  p.done.wait(0, std::memory_order_acquire);
  ma.end();
  mb.end();
}

void print_row(const char* label, const Result& r) {
  std::printf("%-24s %9.1f %9.1f %9.1f %9.1f %10.0f\n", label,
              static_cast<double>(r.h.value_at_percentile(50)) / 1e3,
              static_cast<double>(r.h.value_at_percentile(90)) / 1e3,
              static_cast<double>(r.h.value_at_percentile(99)) / 1e3,
              static_cast<double>(r.h.max()) / 1e3, static_cast<double>(r.n) / r.seconds);
}

}  // namespace

int main(int argc, char** argv) {
  bench::Args args(argc, argv,
                   {{"n", "20000"}, {"warmup", "2000"}, {"rounds", "3"}, {"wake", "futex"},
                    {"spin", "0"}, {"json", ""}},
                   kUsage, {"queued", "curve"});
  const std::uint64_t n = args.u64("n"), warmup = args.u64("warmup"), rounds = args.u64("rounds");
  tern::Wake wake;
  if (!bench::parse_wake(args.str("wake"), wake)) bench::Args::fail("bad --wake", kUsage);
  const bool inline_dispatch = !args.flag("queued");
  if (n == 0 || rounds == 0) bench::Args::fail("--n and --rounds must be > 0", kUsage);
  const bool curve = args.flag("curve");
  CurveKeys plain, secured;
  if (curve) {
    if (!tern::curve_available()) bench::Args::fail("--curve: libzmq lacks CURVE", kUsage);
    std::string d = (std::filesystem::temp_directory_path() / "tern-bench-curve-XXXXXX").string();
    if (!::mkdtemp(d.data())) bench::Args::fail("--curve: mkdtemp failed", kUsage);
    secured.dir = d;
    secured.a = tern::create_curve_key_pair(d, "a");
    secured.b = tern::create_curve_key_pair(d, "b");
  }

  // The bare baseline sends the very bytes the gateway puts on the wire for a Ping.
  const std::string frame =
      R"({"sender_actor":"ping","sender_endpoint":"tcp://127.0.0.1:40000","receiver":"pong",)"
      R"("message_type":"Ping","message":{"count":12345}})";

  Result bare, gw, bare_curve, gw_curve;
  const auto spin = static_cast<std::uint32_t>(args.u64("spin"));
  for (std::uint64_t r = 0; r < rounds; ++r) {
    bare_round(warmup, n, frame, plain, bare);
    gateway_round(warmup, n, wake, inline_dispatch, spin, plain, gw);
    if (!curve) continue;
    bare_round(warmup, n, frame, secured, bare_curve);
    gateway_round(warmup, n, wake, inline_dispatch, spin, secured, gw_curve);
  }
  if (curve) {
    std::error_code ec;
    std::filesystem::remove_all(secured.dir, ec);
  }
  std::printf("round trip over tcp loopback, %llu x %llu round trips (+%llu warm-up each), "
              "wake=%s%s, %zu-byte frame\n",
              (unsigned long long)rounds, (unsigned long long)n, (unsigned long long)warmup,
              args.str("wake").c_str(), inline_dispatch ? ", inline dispatch (default)" : ", queued (--queued)", frame.size());
  std::printf("%-24s %9s %9s %9s %9s %10s\n", "", "p50 us", "p90 us", "p99 us", "max us",
              "rt/s");
  print_row("bare libzmq PUSH/PULL", bare);
  print_row("tern gateway x2", gw);
  const double ratio = static_cast<double>(gw.h.value_at_percentile(50)) /
                       static_cast<double>(bare.h.value_at_percentile(50));
  const double rate_ratio = (static_cast<double>(bare.n) / bare.seconds) /
                            (static_cast<double>(gw.n) / gw.seconds);
  std::printf("ratio gateway/bare: p50 %.2fx, time per round trip %.2fx\n", ratio, rate_ratio);
  double curve_ratio = 0, curve_cost = 0;
  if (curve) {
    print_row("bare libzmq CURVE", bare_curve);
    print_row("tern gateway x2 CURVE", gw_curve);
    curve_ratio = static_cast<double>(gw_curve.h.value_at_percentile(50)) /
                  static_cast<double>(bare_curve.h.value_at_percentile(50));
    curve_cost = static_cast<double>(gw_curve.h.value_at_percentile(50)) /
                 static_cast<double>(gw.h.value_at_percentile(50));
    std::printf("ratio CURVE gateway/CURVE bare: p50 %.2fx; CURVE gateway/plain gateway: p50 "
                "%.2fx\n",
                curve_ratio, curve_cost);
  }

  std::string json = "{\"benchmark\": \"gateway_roundtrip\", \"n\": " + std::to_string(n) +
                     ", \"rounds\": " + std::to_string(rounds) +
                     ", \"wake\": " + bench::jstr(args.str("wake")) +
                     ", \"inline_dispatch\": " + (inline_dispatch ? "true" : "false") +
                     ", \"frame_bytes\": " + std::to_string(frame.size()) + ",\n  \"bare\": {" +
                     bench::json_fields("", bare.h) +
                     ", \"round_trips_per_s\": " + std::to_string(bare.n / bare.seconds) +
                     "},\n  \"gateway\": {" + bench::json_fields("", gw.h) +
                     ", \"round_trips_per_s\": " + std::to_string(gw.n / gw.seconds) +
                     "},\n  \"p50_ratio\": " + std::to_string(ratio) +
                     ", \"time_ratio\": " + std::to_string(rate_ratio);
  if (curve)
    json += ",\n  \"bare_curve\": {" + bench::json_fields("", bare_curve.h) +
            ", \"round_trips_per_s\": " + std::to_string(bare_curve.n / bare_curve.seconds) +
            "},\n  \"gateway_curve\": {" + bench::json_fields("", gw_curve.h) +
            ", \"round_trips_per_s\": " + std::to_string(gw_curve.n / gw_curve.seconds) +
            "},\n  \"curve_p50_ratio\": " + std::to_string(curve_ratio) +
            ", \"curve_vs_plain_p50\": " + std::to_string(curve_cost);
  json += "}\n";
  bench::write_file(args.str("json"), json);
  return 0;
}
