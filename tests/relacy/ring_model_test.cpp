// Relacy: the mailbox ring (include/tern/detail/ring.hpp), spsc and mpsc.
//
// Properties, each checked over every explored interleaving and every outcome the C++
// memory model allows for the orders used:
//   - FIFO per producer, nothing lost, nothing delivered twice (Received, after());
//   - no data race on a slot's payload: the producer's fill happens-before the consumer's
//     read (publish/front), and the consumer's read and destroy happen-before the next
//     producer's fill of that slot a lap later (release/head_cache);
//   - close: with the stop protocol of lib/runtime.cpp (phase 2 is set after close()
//     returned; an spsc producer that is an actor acknowledges phase 1 first), every push
//     that returned ok is consumed before the consumer leaves, and an mpsc push after
//     close() returns `closed`.
// A 128-byte ring with records of 32 and 48 bytes (alternating) and 3 or 4 messages per
// producer makes the space go round at least once: reuse of zeroed space, padding records
// and the wrap to offset 0 are part of every run.
#include "harness.hpp"
#include "ring_model.hpp"

using namespace tern_model;

namespace {

constexpr int kBatch = 2;  // Tuning::batch, scaled down to the ring

constexpr unsigned kBytes = 128;

/// Message `msg` takes 1 or 2 payload cells (a 32- or 48-byte record), alternating.
template <class R>
PushStatus push(R& r, bool spsc, int msg) {
  const unsigned units = 1 + static_cast<unsigned>(msg + msg / 100) % 2;
  auto fill = [&](Record& rec, std::uint64_t pos) {
    rec.payload($) = msg;
    for (unsigned u = 1; u < units; ++u) r.cell(pos, u).payload($) = msg;
  };
  return spsc ? r.push_spsc(record_word(units), fill, false)
              : r.push_mpsc(record_word(units), fill, false);
}

// One producer, one consumer, spsc claim, four messages through two slots.
struct SpscFifo : rl::test_suite<SpscFifo, 2> {
  Ring<kBytes> ring;
  Received<1> rx;
  void before() { ring.init(true); }
  void thread(unsigned index) {
    if (index == 0) {
      for (int i = 0; i < 4; ++i)
        while (push(ring, true, message(0, i)) != PushStatus::ok) rl::yield(1, $);
    } else {
      while (rx.total < 4)
        if (drain(ring, rx, kBatch) == 0) rl::yield(1, $);
    }
  }
  void after() { RL_ASSERT(rx.total == 4); }
};

// A batch longer than the ring (Tuning::batch 64 against a small mailbox): the consumer can
// come round to a record it popped in this same batch, before release() zeroed it; pop()
// zeroes the header word so that it reads as "not yet published", not as the old record.
// 32-byte records only, so that a full ring of 4 is a whole lap; 6 messages.
struct SpscBatchLap : rl::test_suite<SpscBatchLap, 2> {
  Ring<kBytes> ring;
  Received<1> rx;
  void before() { ring.init(true); }
  void thread(unsigned index) {
    if (index == 0) {
      for (int i = 0; i < 6; ++i) {
        const int msg = message(0, i);
        auto fill = [&](Record& rec, std::uint64_t) { rec.payload($) = msg; };
        while (ring.push_spsc(record_word(1), fill, false) != PushStatus::ok) rl::yield(1, $);
      }
    } else {
      while (rx.total < 6)
        if (drain(ring, rx, 8) == 0) rl::yield(1, $);
    }
  }
  void after() { RL_ASSERT(rx.total == 6); }
};

// Two producers, one consumer, mpsc claim (CAS on tail), three messages each.
struct MpscFifo : rl::test_suite<MpscFifo, 3> {
  Ring<kBytes> ring;
  Received<2> rx;
  void before() { ring.init(); }
  void thread(unsigned index) {
    if (index < 2) {
      for (int i = 0; i < 3; ++i)
        while (push(ring, false, message(static_cast<int>(index), i)) != PushStatus::ok)
          rl::yield(1, $);
    } else {
      while (rx.total < 6)
        if (drain(ring, rx, kBatch) == 0) rl::yield(1, $);
    }
  }
  void after() { RL_ASSERT(rx.total == 6); }
};

// mpsc close under the stop protocol: two producers push until refused; a third thread
// closes, then sets phase 2 (Manager::end); the consumer leaves on phase 2 once a batch
// found nothing and drained() holds (Runtime::run_loop). Accepted means consumed; a push
// that starts after close() returned is refused; the closed bit stays set.
struct MpscClose : rl::test_suite<MpscClose, 4> {
  Ring<kBytes> ring;
  Received<2> rx;
  rl::atomic<unsigned> phase;
  int accepted[2] = {};
  bool after_close_refused = true;
  rl::atomic<int> closed_done;
  void before() {
    ring.init();
    phase.store(0, memory_order_relaxed);
    closed_done.store(0, memory_order_relaxed);
  }
  void thread(unsigned index) {
    if (index < 2) {
      for (int i = 0; i < 3; ++i) {
        const bool late = closed_done.load(memory_order_acquire) != 0;
        PushStatus st;
        while ((st = push(ring, false, message(static_cast<int>(index), i))) == PushStatus::full)
          rl::yield(1, $);
        if (st == PushStatus::closed) break;
        if (late) after_close_refused = false;
        ++accepted[index];
      }
    } else if (index == 2) {
      ring.close();
      closed_done.store(1, memory_order_release);
      phase.store(2, memory_order_seq_cst);
    } else {
      for (;;) {
        const int n = drain(ring, rx, kBatch);
        const unsigned ph = phase.load(memory_order_acquire);
        if (ph == 2 && n == 0 && ring.drained()) break;
        if (n == 0) rl::yield(1, $);
      }
    }
  }
  void after() {
    RL_ASSERT(rx.total == accepted[0] + accepted[1]);
    RL_ASSERT(after_close_refused);
    RL_ASSERT(ring.tail_word() & Ring<kBytes>::kClosed);
  }
};

// spsc close under the stop protocol: the producer is an actor, so it acknowledges phase 1
// between sends (Runtime::ack_phase, once round its loop); phase 2 comes only after that
// acknowledgement. Accepted means consumed; a push after the acknowledgement is refused.
struct SpscClose : rl::test_suite<SpscClose, 3> {
  Ring<kBytes> ring;
  Received<1> rx;
  rl::atomic<unsigned> phase;
  rl::atomic<unsigned> ack;
  int accepted = 0;
  bool after_ack_refused = true;
  void before() {
    ring.init(true);
    phase.store(0, memory_order_relaxed);
    ack.store(0, memory_order_relaxed);
  }
  void thread(unsigned index) {
    if (index == 0) {
      bool acked = false;
      for (int i = 0; i < 4; ++i) {
        if (!acked && phase.load(memory_order_acquire) != 0) {
          ack.store(1, memory_order_release);
          acked = true;
        }
        PushStatus st;
        while ((st = push(ring, true, message(0, i))) == PushStatus::full) rl::yield(1, $);
        if (st == PushStatus::closed) break;
        if (acked) after_ack_refused = false;
        ++accepted;
      }
      // the actor's loop comes round again: it acknowledges once it sees phase 1
      while (!acked) {
        if (phase.load(memory_order_acquire) != 0) {
          ack.store(1, memory_order_release);
          acked = true;
        } else {
          rl::yield(1, $);
        }
      }
    } else if (index == 1) {
      ring.close();
      phase.store(1, memory_order_seq_cst);
      while (ack.load(memory_order_acquire) == 0) rl::yield(1, $);
      phase.store(2, memory_order_seq_cst);
    } else {
      for (;;) {
        const int n = drain(ring, rx, kBatch);
        const unsigned ph = phase.load(memory_order_acquire);
        if (ph == 2 && n == 0 && ring.drained()) break;
        if (n == 0) rl::yield(1, $);
      }
    }
  }
  void after() {
    RL_ASSERT(rx.total == accepted);
    RL_ASSERT(after_ack_refused);
    RL_ASSERT(ring.closed());
    RL_ASSERT((ring.tail_word() & Ring<kBytes>::kClosed) == 0);  // an spsc tail never has it
  }
};

}  // namespace

int main() {
  bool ok = true;
  ok = ok && check<SpscFifo>("ring: spsc FIFO, space reuse, padding", {rl::sched_random, scaled(200000)});
  ok = ok && check<SpscFifo>("ring: spsc FIFO, space reuse, padding", {rl::sched_bound, 0, 3});
  ok = ok && check<SpscBatchLap>("ring: a batch longer than the ring", {rl::sched_random, scaled(100000)});
  ok = ok && check<MpscFifo>("ring: mpsc FIFO per producer", {rl::sched_random, scaled(200000)});
  ok = ok && check<MpscClose>("ring: mpsc close, accepted means consumed", {rl::sched_random, scaled(200000)});
  ok = ok && check<SpscClose>("ring: spsc close (actor producer), accepted means consumed", {rl::sched_random, scaled(200000)});
  std::printf("%s\n", ok ? "all ring models passed" : "a ring model FAILED");
  return ok ? 0 : 1;
}
