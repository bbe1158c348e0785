// The seed article's ping-pong: PingActor starts the exchange, PongActor echoes each Ping
// with a Pong, and after 10 round trips Ping asks the Manager to stop.
#include <cstdio>

#include <tern/tern.hpp>

struct Ping {
  static constexpr tern::MessageId message_id = 100;
  int count = 0;
};
struct Pong {
  static constexpr tern::MessageId message_id = 101;
  int count = 0;
};

class PongActor : public tern::Actor {
 public:
  PongActor() { handle<&PongActor::on_ping>(); }
  void on_ping(const Ping& m) {
    std::printf("Received ping %d\n", m.count);
    reply(Pong{m.count});
  }
};

class PingActor : public tern::Actor {
 public:
  explicit PingActor(tern::ActorRef pong) : pong_(pong) {
    handle<&PingActor::on_start>();
    handle<&PingActor::on_pong>();
  }
  void on_start(const tern::Start&) { (void)pong_.send(Ping{1}); }
  void on_pong(const Pong& m) {
    std::printf("Received pong %d\n", m.count);
    if (m.count < 10)
      (void)pong_.send(Ping{m.count + 1});
    else
      terminate();
  }

 private:
  tern::ActorRef pong_;
};

int main() {
  tern::Manager mgr;
  tern::ActorRef pong = mgr.emplace<PongActor>("pong", {}, {});
  mgr.emplace<PingActor>("ping", {}, {}, pong);
  mgr.init();  // starts the threads, delivers Start
  mgr.run();   // until terminate() or Ctrl-C
  mgr.end();   // drains, delivers Shutdown, joins
  return 0;
}
