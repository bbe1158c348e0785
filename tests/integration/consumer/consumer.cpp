// A program an engine would write against an *installed* tern: built by
// tests/integration/test_install.py with CMake (find_package(tern CONFIG)) and with Meson
// (pkg-config modules tern and tern-gateway). One process, one gateway: the ping actor sends
// to a remote ref naming our own endpoint, so every Ping and Pong crosses ZeroMQ and the JSON
// codec. Prints "pong 3" after three round trips.
#include <cstdint>
#include <cstdio>
#include <memory>

#include <tern/gateway.hpp>
#include <tern/tern.hpp>

struct Ping {
  static constexpr tern::MessageId message_id = 1001;
  std::int64_t count = 0;
  TERN_WIRE(Ping, count)
};
struct Pong {
  static constexpr tern::MessageId message_id = 1002;
  std::int64_t count = 0;
  TERN_WIRE(Pong, count)
};

struct PongActor : tern::Actor {
  PongActor() { handle<&PongActor::on_ping>(); }
  void on_ping(const Ping& m) { (void)reply(Pong{m.count}); }
};

struct PingActor : tern::Actor {
  explicit PingActor(tern::ActorRef pong) : pong_(pong) {
    handle<&PingActor::on_start>();
    handle<&PingActor::on_pong>();
  }
  void on_start(const tern::Start&) { (void)pong_.send(Ping{1}); }
  void on_pong(const Pong& m) {
    if (m.count == 3) {
      std::printf("pong %lld\n", static_cast<long long>(m.count));
      terminate();
    } else {
      (void)pong_.send(Ping{m.count + 1});
    }
  }
  tern::ActorRef pong_;
};

int main() {
  tern::wire::Registry reg;
  reg.add<Ping>().add<Pong>();
  tern::Manager mgr;
  auto gw = std::make_unique<tern::Gateway>(reg, tern::GatewayConfig{.bind = "tcp://127.0.0.1:*"});
  tern::ActorRef pong = gw->remote("pong", gw->endpoint());
  mgr.manage("gateway", std::move(gw));
  mgr.emplace<PongActor>("pong", {}, {});
  mgr.emplace<PingActor>("ping", {}, {}, pong);
  mgr.init();
  mgr.run();
  mgr.end();
}
