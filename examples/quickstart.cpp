// The README's example, compiled so it stays true.
#include <cstdio>

#include <tern/tern.hpp>

struct Ping { static constexpr tern::MessageId message_id = 100; int count = 0; };
struct Pong { static constexpr tern::MessageId message_id = 101; int count = 0; };

struct PongActor : tern::Actor {
  PongActor() { handle<&PongActor::on_ping>(); }
  void on_ping(const Ping& m) { reply(Pong{m.count}); }
};

int main() {
  tern::Manager mgr;
  tern::ActorRef pong = mgr.emplace<PongActor>("pong", {.cpus = {1}, .wake = tern::Wake::spin}, {});
  mgr.init();                                   // threads start, each actor handles Start
  tern::FastReply r = pong.fast_send(Ping{7});  // handler runs here, reply comes back
  std::printf("%d\n", r.get<Pong>()->count);    // 7
  mgr.end();                                    // drain what was accepted, Shutdown, join
}
