// Relacy: park/notify (include/tern/mailbox.hpp) and the Group's scheduled flag.
//
//   - No lost wake-up: a consumer that announces sleep, re-checks and parks is always woken
//     by a producer that publishes and then finds the flag up. A lost wake-up leaves the
//     consumer in FUTEX_WAIT with every producer finished: Relacy reports a DEADLOCK.
//   - A stop request (phase store, then wake()) reaches a parked consumer (same check).
//   - Group: the idle -> ready edge schedules the actor exactly once (never twice in the
//     run queue), and work that arrives while a turn ends is never stranded (an actor with
//     messages and no turn coming makes the worker spin: Relacy reports a LIVELOCK).
// Plus everything the ring model checks (FIFO per producer, no loss, no payload race).
#include "harness.hpp"
#include "mailbox_model.hpp"

using namespace tern_model;

namespace {

constexpr int kBatch = 2;

template <class M>
PushStatus send(M& mb, int msg, bool priority = false) {
  PushStatus st;
  while ((st = mb.push(record_word(1), [&](Record& s, std::uint64_t) { s.payload($) = msg; }, priority)) == PushStatus::full)
    rl::yield(1, $);  // send(): back off while full
  return st;
}

// Two producers, one futex-mode consumer (Runtime::run_loop with Wake::futex, spin_limit 0:
// it parks as soon as a batch finds nothing).
template <MailboxKind Kind, int Producers>
struct ParkNotify : rl::test_suite<ParkNotify<Kind, Producers>, Producers + 1> {
  Mailbox<2, 2> mb;
  Received<Producers> rx;
  static constexpr int kEach = 2;
  void before() { mb.configure(Kind, Notify::futex); }
  void thread(unsigned index) {
    if (index < static_cast<unsigned>(Producers)) {
      for (int i = 0; i < kEach; ++i) send(mb, message(static_cast<int>(index), i));
    } else {
      while (rx.total < Producers * kEach)
        if (drain(mb, rx, kBatch) == 0) mb.park([] { return false; });
    }
  }
  void after() { RL_ASSERT(rx.total == Producers * kEach); }
};

// A producer and a stop request (Manager::end: phase store, then wake()) against a consumer
// that parks with the phase as its cancel condition.
struct StopWake : rl::test_suite<StopWake, 3> {
  Mailbox<2, 2> mb;
  Received<1> rx;
  rl::atomic<unsigned> phase;
  void before() {
    mb.configure(MailboxKind::mpsc, Notify::futex);
    phase.store(0, memory_order_relaxed);
  }
  void thread(unsigned index) {
    if (index == 0) {
      send(mb, message(0, 0));
    } else if (index == 1) {
      phase.store(1, memory_order_seq_cst);
      mb.wake();
    } else {
      for (;;) {
        const int n = drain(mb, rx, kBatch);
        const unsigned ph = phase.load(memory_order_acquire);
        if (ph != 0 && n == 0 && rx.total == 1) break;  // stop seen and the message handled
        if (n) continue;
        mb.park([&] { return phase.load(memory_order_seq_cst) != ph; });
      }
    }
  }
};

// Group scheduling of one actor: producers notify through try_mark_scheduled -> ready();
// a worker runs turns (Group::worker: lock, drain_locked(batch), finish_turn, unlock,
// requeue when asked). The run queue is a counter here (its own protocol is Vyukov's
// bounded queue, see docs/concurrency.md).
struct GroupTurns : rl::test_suite<GroupTurns, 3> {
  Mailbox<2, 2> mb;
  Received<2> rx;
  rl::atomic<int> queued;  // entries of this actor in the run queue
  static void ready(void* self, void*) {
    auto* t = static_cast<GroupTurns*>(self);
    const int before = t->queued.fetch_add(1, memory_order_acq_rel);
    RL_ASSERT(before == 0);  // an actor is in the run queue at most once
  }
  void before() {
    mb.configure(MailboxKind::mpsc, Notify::group, &GroupTurns::ready, this);
    queued.store(0, memory_order_relaxed);
  }
  void thread(unsigned index) {
    if (index < 2) {
      for (int i = 0; i < 2; ++i) send(mb, message(static_cast<int>(index), i));
    } else {
      while (rx.total < 4) {
        if (queued.load(memory_order_acquire) == 0) {
          rl::yield(1, $);  // idle worker (parking on the group's epoch is not modelled)
          continue;
        }
        queued.fetch_sub(1, memory_order_acq_rel);  // pop
        drain(mb, rx, 1);                            // one message per turn: batch = 1
        if (mb.finish_turn()) ready(this, nullptr);           // push_ready(a)
      }
    }
  }
  void after() { RL_ASSERT(rx.total == 4); }
};

}  // namespace

int main() {
  bool ok = true;
  ok = ok && check<ParkNotify<MailboxKind::mpsc, 2>>("park: mpsc, two producers, no lost wake-up",
                                                {rl::sched_random, scaled(200000)});
  ok = ok && check<ParkNotify<MailboxKind::spsc, 1>>("park: spsc, no lost wake-up",
                                                {rl::sched_random, scaled(200000)});
  ok = ok && check<ParkNotify<MailboxKind::spsc, 1>>("park: spsc, no lost wake-up",
                                                {rl::sched_bound, 0, 3});
  ok = ok && check<StopWake>("park: a stop request wakes a parked consumer",
                        {rl::sched_random, scaled(200000)});
  ok = ok && check<GroupTurns>("group: scheduled flag, one entry, no stranded work",
                          {rl::sched_random, scaled(200000)});
  std::printf("%s\n", ok ? "all park models passed" : "a park model FAILED");
  return ok ? 0 : 1;
}
