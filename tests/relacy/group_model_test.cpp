// Relacy: Group scheduling (lib/group.cpp) end to end: one producer sends to two actors of
// a group with two workers while Group::stop runs.
//
//   - every accepted message is handled before stop() lets the workers go, each actor's
//     messages in order, no payload race (turns of one actor on different workers are
//     ordered by its exclusion lock and the run queue);
//   - an actor is never in the run queue twice (so the queue cannot overflow);
//   - no idle worker sleeps through a push (a missed push leaves stop() waiting on a
//     non-empty mailbox for ever: Relacy reports a LIVELOCK; a worker never woken at the
//     end, a DEADLOCK).
#include "group_model.hpp"

using namespace tern_model;

namespace {

struct GroupStop : rl::test_suite<GroupStop, 4> {
  Group<2, 8> g;  // 2 actors, run queue round_capacity(2 * 2 + 2)
  ThreadCtx ctx[2];
  int accepted[2] = {};
  void before() { g.init(); }
  void thread(unsigned index) {
    if (index == 0) {  // producer: two messages to each actor, alternating
      for (int i = 0; i < 4; ++i) {
        Actor& a = g.actors_[i % 2];
        PushStatus st;
        while ((st = a.mb.push(record_word(1), [&](Record& s, std::uint64_t) { s.payload($) = message(0, i / 2); }, false)) ==
               PushStatus::full)
          rl::yield(1, $);
        if (st == PushStatus::ok) ++accepted[i % 2];
      }
    } else if (index == 1) {
      g.stop();
    } else {
      g.worker(&ctx[index - 2]);
    }
  }
  void after() {
    for (int k = 0; k < 2; ++k) RL_ASSERT(g.actors_[k].rx.total == accepted[k]);
  }
};

}  // namespace

int main() {
  bool ok = true;
  ok = ok && check<GroupStop>("group: two workers, two actors, stop while sending",
                              {rl::sched_random, scaled(100000)});
  std::printf("%s\n", ok ? "all group models passed" : "a group model FAILED");
  return ok ? 0 : 1;
}
