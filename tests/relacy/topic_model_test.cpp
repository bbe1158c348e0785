// Relacy: publish/subscribe (include/tern/topic.hpp), one publisher and two subscribers on
// a ring of 2 cells, so every run wraps and (for drop_oldest and conflate) overruns.
//
// Every subscriber is an actor whose thread parks on its mailbox's futex and is woken by
// the topic's coalesced TopicWake (topic_model.hpp), so every scenario also checks the wake
// protocol: a subscriber that parks while a value is waiting and no wake is coming would
// sleep for ever (Relacy reports a DEADLOCK; a backpressure publisher waiting on it, a
// LIVELOCK). Properties, over every explored interleaving and memory-model outcome:
//   Backpressure  both subscribers get every value, in order, none torn or stale; nothing
//                 counted dropped; the publisher never overwrites a cell still being read.
//   DropOldest    in order, none torn or stale; every value skipped is counted (what the
//                 handler saw missing == dropped; received + dropped == published); the
//                 last value always arrives.
//   Conflate      per key, only newer values (never a torn value, never a stale one after
//                 a newer one, never one twice), and the latest value of every key arrives.
//   Rewake        drain_batch 1: a drain that leaves values behind wakes itself again
//                 (rewake) while the publisher's wakes keep coming; nothing is missed.
//                 With 2-slot mailboxes a wake is at times refused as full (a stale view
//                 of the mailbox head) and must go to the priority lane: this scenario
//                 found that gap (NO_PRIORITY_WAKE).
//   StopUnblocks  a backpressure subscriber stops (its mailbox closes: the publisher's next
//                 wake is refused as closed) while the publisher is a lap ahead: the
//                 publisher finishes, the other subscriber (drop_oldest) gets the last value;
//                 the stopped one saw no gap before its close, and what its last drains
//                 skipped after it is counted as dropped.
#include "topic_model.hpp"

#include "harness.hpp"

using namespace tern_model;

namespace {

constexpr unsigned kCap = 2;  // the ring: 2 cells, so a third value overwrites the first

/// What a subscriber's handler saw (its actor's `log`). Plain fields: only the subscriber's
/// thread writes them, the test reads them in after().
struct Log {
  bool gapless = false;        // a backpressure subscriber: nothing may be skipped
  std::uint64_t next = 0;      // ordered policies: the position expected next
  std::uint64_t missing = 0;   // ordered policies: positions skipped over
  std::uint64_t got = 0;       // values handed
  std::uint64_t last_pos1 = 0; // the last value's pos1
  std::uint64_t latest[4] = {};  // conflate: pos1 of the last value handed, per key
};

/// Handler of backpressure / drop_oldest subscribers: intact, in order, gaps counted.
void on_ordered(Actor& a, const Tick& v) {
  Log& log = *static_cast<Log*>(a.log);
  RL_ASSERT(intact(v));               // not torn
  const std::uint64_t p = v.pos1 - 1;
  RL_ASSERT(p >= log.next);           // in order, never twice, never older
  RL_ASSERT(!log.gapless || p == log.next);  // backpressure: nothing skipped either
  log.missing += p - log.next;
  log.next = p + 1;
  log.last_pos1 = v.pos1;
  ++log.got;
}

/// Handler of conflating subscribers: intact, of its key, newer than the last of that key.
void on_conflated(Actor& a, const Tick& v) {
  Log& log = *static_cast<Log*>(a.log);
  RL_ASSERT(intact(v));
  const std::uint32_t k = tick_key(v);
  RL_ASSERT(k < 4);
  RL_ASSERT(v.pos1 > log.latest[k]);  // never a stale value after a newer one, never twice
  log.latest[k] = v.pos1;
  log.last_pos1 = v.pos1;
  ++log.got;
}

/// A subscriber thread: runs its actor until `done`.
template <class Done>
void subscriber(Actor& a, Done&& done) {
  run_subscriber(a, static_cast<Done&&>(done));
}

// Two backpressure subscribers, 4 values through 2 cells.
struct Backpressure : rl::test_suite<Backpressure, 3> {
  static constexpr int kValues = 4;
  Topic<kCap, 1, 2> topic;
  Topic<kCap, 1, 2>::Subscription sub[2];
  Actor actor[2];
  Log log[2];
  void before() {
    topic.init({.max_keys = 0, .drain_batch = 2}, nullptr);
    for (int i = 0; i < 2; ++i) {
      actor[i].init();
      actor[i].log = &log[i];
      log[i].gapless = true;
      topic.subscribe(sub[i], actor[i], SlowPolicy::backpressure, on_ordered);
    }
  }
  void thread(unsigned index) {
    if (index == 0) {
      for (int p = 0; p < kValues; ++p) topic.publish(tick(p, 0));
    } else {
      Log& l = log[index - 1];
      subscriber(actor[index - 1], [&] { return l.got == kValues; });
    }
  }
  void after() {
    for (int i = 0; i < 2; ++i) {
      RL_ASSERT(log[i].got == kValues && log[i].missing == 0);
      RL_ASSERT(sub[i].received() == kValues && sub[i].dropped() == 0);
    }
  }
};

// Two drop_oldest subscribers, 5 values through 2 cells: the publisher laps them freely.
struct DropOldest : rl::test_suite<DropOldest, 3> {
  static constexpr int kValues = 5;
  Topic<kCap, 1, 2> topic;
  Topic<kCap, 1, 2>::Subscription sub[2];
  Actor actor[2];
  Log log[2];
  void before() {
    topic.init({.max_keys = 0, .drain_batch = 2}, nullptr);
    for (int i = 0; i < 2; ++i) {
      actor[i].init();
      actor[i].log = &log[i];
      topic.subscribe(sub[i], actor[i], SlowPolicy::drop_oldest, on_ordered);
    }
  }
  void thread(unsigned index) {
    if (index == 0) {
      for (int p = 0; p < kValues; ++p) RL_ASSERT(topic.try_publish(tick(p, 0)) == SendResult::ok);
    } else {
      Log& l = log[index - 1];
      subscriber(actor[index - 1], [&] { return l.last_pos1 == kValues; });  // the last value
    }
  }
  void after() {
    for (int i = 0; i < 2; ++i) {
      RL_ASSERT(log[i].got == sub[i].received());
      RL_ASSERT(log[i].missing == sub[i].dropped());  // every skipped value counted
      RL_ASSERT(sub[i].received() + sub[i].dropped() == kValues);
    }
  }
};

// Two conflating subscribers, keys 0 1 0 0 1 0 through 2 cells (and the per-key table).
struct Conflate : rl::test_suite<Conflate, 3> {
  static constexpr int kValues = 6;
  static constexpr std::uint32_t kKeyOf[kValues] = {0, 1, 0, 0, 1, 0};
  static constexpr std::uint64_t kLast[2] = {6, 5};  // pos1 of each key's latest value
  Topic<kCap, 2, 2> topic;
  Topic<kCap, 2, 2>::Subscription sub[2];
  Actor actor[2];
  Log log[2];
  void before() {
    topic.init({.max_keys = 2, .drain_batch = 2}, tick_key);
    for (int i = 0; i < 2; ++i) {
      actor[i].init();
      actor[i].log = &log[i];
      topic.subscribe(sub[i], actor[i], SlowPolicy::conflate, on_conflated);
    }
  }
  void thread(unsigned index) {
    if (index == 0) {
      for (int p = 0; p < kValues; ++p)
        RL_ASSERT(topic.try_publish(tick(p, kKeyOf[p])) == SendResult::ok);
    } else {
      Log& l = log[index - 1];
      subscriber(actor[index - 1],
                 [&] { return l.latest[0] == kLast[0] && l.latest[1] == kLast[1]; });
    }
  }
  void after() {
    for (int i = 0; i < 2; ++i) {
      RL_ASSERT(log[i].latest[0] == kLast[0] && log[i].latest[1] == kLast[1]);
      RL_ASSERT(log[i].got == sub[i].received());
    }
  }
};

// drain_batch 1: every drain with more waiting hands itself another TopicWake (rewake),
// racing the publisher's own wakes; a backpressure and a drop_oldest subscriber.
struct Rewake : rl::test_suite<Rewake, 3> {
  static constexpr int kValues = 4;
  Topic<kCap, 1, 2> topic;
  Topic<kCap, 1, 2>::Subscription sub[2];
  Actor actor[2];
  Log log[2];
  void before() {
    topic.init({.max_keys = 0, .drain_batch = 1}, nullptr);
    actor[0].init();
    actor[0].log = &log[0];
    log[0].gapless = true;
    topic.subscribe(sub[0], actor[0], SlowPolicy::backpressure, on_ordered);
    actor[1].init();
    actor[1].log = &log[1];
    topic.subscribe(sub[1], actor[1], SlowPolicy::drop_oldest, on_ordered);
  }
  void thread(unsigned index) {
    if (index == 0) {
      for (int p = 0; p < kValues; ++p) topic.publish(tick(p, 0));
    } else {
      Log& l = log[index - 1];
      subscriber(actor[index - 1], [&] { return l.last_pos1 == kValues; });
    }
  }
  void after() {
    RL_ASSERT(log[0].got == kValues && sub[0].dropped() == 0);
    RL_ASSERT(log[1].missing == sub[1].dropped());
    RL_ASSERT(sub[1].received() + sub[1].dropped() == kValues);
  }
};

// A backpressure subscriber that stops after its first value (Manager::end for its actor:
// close the mailbox, handle what it accepted, leave) while the publisher needs it to move
// on; a drop_oldest subscriber keeps going. The publisher must finish (else LIVELOCK in
// publish()) and the running subscriber must get the last value.
struct StopUnblocks : rl::test_suite<StopUnblocks, 3> {
  static constexpr int kValues = 4;
  Topic<kCap, 1, 2> topic;
  Topic<kCap, 1, 2>::Subscription sub[2];
  Actor actor[2];
  Log log[2];
  void before() {
    topic.init({.max_keys = 0, .drain_batch = 2}, nullptr);
    actor[0].init();
    actor[0].log = &log[0];
    log[0].gapless = true;
    topic.subscribe(sub[0], actor[0], SlowPolicy::backpressure, on_ordered);
    // a publisher that found the mailbox closed overwrites cells without acquiring this
    // subscriber's cursor, so even its reads from before the close are not ordered before
    // the overwrite: harmless with the real (atomic) words, a race on the model's shadow
    sub[0].stop_shadow_check();
    actor[1].init();
    actor[1].log = &log[1];
    topic.subscribe(sub[1], actor[1], SlowPolicy::drop_oldest, on_ordered);
  }
  void thread(unsigned index) {
    if (index == 0) {
      for (int p = 0; p < kValues; ++p) topic.publish(tick(p, 0));
    } else if (index == 1) {
      Actor& a = actor[0];
      subscriber(a, [&] { return log[0].got >= 1; });
      a.mb.close();
      // from here the publisher may find the mailbox closed and stop waiting for it: what
      // its last drains hand may skip values, in order and counted as dropped
      log[0].gapless = false;
      // handle everything accepted before the close (Runtime::run_loop's last phase)
      for (;;) {
        std::uint32_t w = 0;
        Record* s = a.mb.front(w);
        if (!s) {
          if (a.mb.drained()) break;
          rl::yield(1, $);
          continue;
        }
        a.sub->drain(a);
        s->payload($) = kDestroyed;
        a.mb.pop(w);
        a.mb.release();
      }
    } else {
      subscriber(actor[1], [&] { return log[1].last_pos1 == kValues; });
    }
  }
  void after() {
    RL_ASSERT(topic.published() == kValues);
    RL_ASSERT(log[0].missing == sub[0].dropped());  // gapless until it closed, then counted
    RL_ASSERT(log[1].missing == sub[1].dropped());
  }
};

}  // namespace

int main() {
  bool ok = true;
  ok = ok && check<Backpressure>("topic: backpressure, 2 subscribers, every value in order",
                                 {rl::sched_random, scaled(100000)});
  ok = ok && check<DropOldest>("topic: drop_oldest, 2 subscribers, skips counted",
                               {rl::sched_random, scaled(100000)});
  ok = ok && check<Conflate>("topic: conflate, 2 subscribers, latest per key",
                             {rl::sched_random, scaled(100000)});
  ok = ok && check<Rewake>("topic: drain_batch 1, rewake against the publisher's wakes",
                           {rl::sched_random, scaled(100000)});
  ok = ok && check<StopUnblocks>("topic: a stopped backpressure subscriber releases the publisher",
                                 {rl::sched_random, scaled(100000)});
  std::printf("%s\n", ok ? "all topic models passed" : "a topic model FAILED");
  return ok ? 0 : 1;
}
