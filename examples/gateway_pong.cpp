// C++ pong for the cross-language ping-pong: answers every Ping{count} with Pong{count}, to
// C++ (gateway_ping) or Python (python/examples/ping.py) peers alike.
//
//   gateway_pong [--endpoint tcp://127.0.0.1:5001] [--name pong] [--max N] [--queued]
//                [--curve-key pong.key_secret --curve-allow DIR]
//
// Prints "pong: listening on ENDPOINT as 'NAME'"; exits 0 on SIGTERM/SIGINT or after --max
// pings, printing "pong: answered N pings; rejects_sent=R dropped=D" and the gateway's
// counters (with CURVE also "auth_denied=A handshakes_failed=H").
#include <atomic>
#include <cstdio>
#include <memory>
#include <stdexcept>

#include <tern/gateway.hpp>
#include <tern/manager.hpp>

#include "gateway_messages.hpp"

namespace {

const char* kUsage =
    "usage: gateway_pong [--endpoint tcp://127.0.0.1:5001] [--name pong] [--max N] [--queued]\n"
    "                    [--curve-key FILE --curve-allow DIR]\n"
    "  Answers Ping{count} with Pong{count}. Exits on SIGTERM/SIGINT, or after --max pings.\n"
    "  --queued: hand Pings to the pong actor's own thread instead of running its handler on\n"
    "            the gateway thread (GatewayConfig::inline_dispatch = false)\n"
    "  --curve-key: our key pair (NAME.key_secret): CURVE on (docs/gateway.md, Security)\n"
    "  --curve-allow: directory of the *.key public certificates of the clients we let in\n";

class PongActor : public tern::Actor {
 public:
  explicit PongActor(std::uint64_t max) : max_(max) { handle<&PongActor::on_ping>(); }
  std::atomic<std::uint64_t> answered{0};

 private:
  void on_ping(const example::Ping& p) {
    // reply() goes back through the gateway, with our name and endpoint as the sender;
    // a Ping without a sender makes it fail (counted in Actor::stats().reply_failures).
    (void)reply(example::Pong{p.count});
    const std::uint64_t n = answered.load(std::memory_order_relaxed) + 1;
    answered.store(n, std::memory_order_relaxed);
    if (max_ && n == max_) terminate();
  }
  std::uint64_t max_;
};

}  // namespace

int main(int argc, char** argv) {
  example::Args args(argc, argv, kUsage);
  tern::GatewayConfig cfg;
  cfg.bind = args.str("--endpoint", "tcp://127.0.0.1:5001");
  const std::string name = args.str("--name", "pong");
  const std::uint64_t max = args.num("--max", 0);
  cfg.inline_dispatch = !args.flag("--queued");
  cfg.curve.key_file = args.str("--curve-key", "");
  cfg.curve.allow_dir = args.str("--curve-allow", "");
  args.done();

  tern::wire::Registry reg;
  reg.add<example::Ping>().add<example::Pong>();
  tern::Manager mgr;
  tern::Gateway* gw = nullptr;
  PongActor* pong = nullptr;
  try {
    auto g = std::make_unique<tern::Gateway>(reg, cfg);
    gw = g.get();
    mgr.manage("gateway", std::move(g));
    auto p = std::make_unique<PongActor>(max);
    pong = p.get();
    mgr.manage(name, std::move(p));
    mgr.init();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pong: %s\n", e.what());
    return 1;
  }
  std::printf("pong: listening on %s as '%s'%s\n", cfg.bind.c_str(), name.c_str(),
              cfg.curve.enabled() ? " (CURVE)" : "");
  std::fflush(stdout);
  mgr.run();  // until SIGTERM/SIGINT, or terminate() after --max
  mgr.end();

  const tern::GatewayStats s = gw->stats();
  std::printf("pong: answered %llu pings; rejects_sent=%llu dropped=%llu\n",
              static_cast<unsigned long long>(pong->answered.load()),
              static_cast<unsigned long long>(s.rejects_sent),
              static_cast<unsigned long long>(s.dropped_total()));
  std::printf("pong: gateway frames_in=%llu messages_in=%llu messages_out=%llu",
              static_cast<unsigned long long>(s.frames_in),
              static_cast<unsigned long long>(s.messages_in),
              static_cast<unsigned long long>(s.messages_out));
  for (std::size_t i = 0; i < tern::kGatewayDropCauses; ++i)
    if (s.dropped[i])
      std::printf(" %s=%llu", std::string(tern::to_string(static_cast<tern::GatewayDrop>(i))).c_str(),
                  static_cast<unsigned long long>(s.dropped[i]));
  if (cfg.curve.enabled())
    std::printf(" auth_denied=%llu handshakes_failed=%llu",
                static_cast<unsigned long long>(s.auth_denied),
                static_cast<unsigned long long>(s.handshakes_failed));
  std::printf("\n");
  return 0;
}
