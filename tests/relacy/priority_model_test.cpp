// Relacy: the priority lane and its hint (include/tern/mailbox.hpp).
//
// The consumer looks at the priority lane only while the hint is up; producers publish,
// then raise it; the consumer takes it down when it finds the lane empty, then looks once
// more. Checked: a priority message is never left unseen, whether the consumer spins
// (Wake::spin: an unseen message makes it spin for ever, which Relacy reports as a
// LIVELOCK) or parks (Wake::futex: it would sleep for ever, a DEADLOCK); each lane stays
// FIFO per producer; nothing is lost or delivered twice; no payload race.
#include "harness.hpp"
#include "mailbox_model.hpp"

using namespace tern_model;

namespace {

constexpr int kBatch = 2;

template <class M>
void send(M& mb, int msg, bool priority) {
  while (mb.push(record_word(1), [&](Record& s, std::uint64_t) { s.payload($) = msg; }, priority) == PushStatus::full)
    rl::yield(1, $);
}

// Producer 0 sends two priority messages (the timer thread, say), producer 1 two normal
// ones. Notify::none with a spinning consumer, Notify::futex with a parking one.
template <Notify How>
struct PriorityHint : rl::test_suite<PriorityHint<How>, 3> {
  Mailbox<2, 2> mb;
  Received<2> rx;
  void before() { mb.configure(MailboxKind::mpsc, How); }
  void thread(unsigned index) {
    if (index < 2) {
      for (int i = 0; i < 2; ++i) send(mb, message(static_cast<int>(index), i), index == 0);
    } else {
      while (rx.total < 4) {
        if (drain(mb, rx, kBatch) != 0) continue;
        if (How == Notify::futex)
          mb.park([] { return false; });
        else
          rl::yield(1, $);  // Wake::spin: cpu_relax()
      }
    }
  }
  void after() { RL_ASSERT(rx.total == 4); }
};

// Only priority messages, two producers, a spinning consumer: the hint's clear-and-look-
// again against producers' publish-then-raise, with nothing in the normal lane to hide a
// mistake.
//
// This model found a bug (fixed in include/tern/mailbox.hpp; docs/concurrency.md, "Priority
// hint"): two ways a priority message was stranded with the hint down for a spinning or
// yielding consumer:
//   1. plain interleaving: the consumer finds the lane empty, two messages are published
//      and raised, the consumer clears the hint, its second look returns the first of
//      them; the next front() saw the hint down and never looked at the second;
//   2. C++ memory model: the hint was raised with plain release stores, so the consumer's
//      clearing exchange synchronised only with the last raise.
// The fix: producers raise with an RMW (exchange(1, release)), and priority_front raises
// the hint again (fetch_or(1, relaxed)) when its second look finds a message. Seeded bug
// NO_REHINT removes the second part and must fail (LIVELOCK).
template <rl::test_result_e Expected>
struct PriorityOnly : rl::test_suite<PriorityOnly<Expected>, 3, Expected> {
  Mailbox<2, 2> mb;
  Received<2> rx;
  void before() { mb.configure(MailboxKind::mpsc, Notify::none); }
  void thread(unsigned index) {
    if (index < 2) {
      for (int i = 0; i < 2; ++i) send(mb, message(static_cast<int>(index), i), true);
    } else {
      while (rx.total < 4)
        if (drain(mb, rx, kBatch) == 0) rl::yield(1, $);
    }
  }
  void after() { RL_ASSERT(rx.total == 4); }
};

}  // namespace

int main() {
  bool ok = true;
  ok = ok && check<PriorityOnly<rl::test_result_success>>(
      "priority: spinning consumer, two priority producers", {rl::sched_random, scaled(200000)});
  ok = ok && check<PriorityHint<Notify::none>>("priority: spinning consumer, both lanes",
                                          {rl::sched_random, scaled(200000)});
  ok = ok && check<PriorityHint<Notify::futex>>("priority: parking consumer, both lanes",
                                           {rl::sched_random, scaled(200000)});
  std::printf("%s\n", ok ? "all priority models passed" : "a priority model FAILED");
  return ok ? 0 : 1;
}
