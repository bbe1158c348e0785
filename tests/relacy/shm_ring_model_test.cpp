// Relacy: the shared-memory record ring (include/tern/detail/shm_layout.hpp): RingWriter::push
// from several producer threads (a CAS on the shared tail, a padding record at the wrap, the
// commit word written last) and RingReader front/pop/release on the owner's one consumer
// thread (Runtime::shm_drain: batches, then release() zeroes and publishes head).
//
// Properties, each checked over every explored interleaving and every outcome the C++
// memory model allows for the orders used:
//   - every message delivered once, in per-producer order, none lost (Received, after());
//   - never a half-written record: the consumer reads every cell of a record and each holds
//     the message (a cell written after the commit is a DATA RACE, a stale one a wrong
//     value); a producer that dies between its claim and its commit is never delivered;
//   - no overwrite of an unconsumed record: the next lap's fill of a cell happens after the
//     consumer read and zeroed it (release() then head, the producers' acquire of head or of
//     head_cache);
//   - the reader never reports a bad record in a ring only real producers write.
// A 128-byte ring with records of 32 and 48 bytes (alternating) and 3 or 4 messages per
// producer makes the space go round at least once: reuse of zeroed space, padding records
// and the wrap to offset 0 are part of every run.
#include "harness.hpp"
#include "shm_ring_model.hpp"

using namespace tern_model;
using namespace tern_model::shm;

namespace {

constexpr unsigned kBytes = 128;
constexpr int kBatch = 2;  // Tuning::batch, scaled down to the ring

/// Message `msg` takes 1 or 2 payload cells (a 32- or 48-byte record), alternating.
unsigned units_of(int msg) { return 1 + static_cast<unsigned>(msg + msg / 100) % 2; }

PushStatus push(Segment<kBytes>& seg, RingWriter<kBytes>& w, int msg) {
  const unsigned units = units_of(msg);
  auto fill = [&](Record& rec, std::uint64_t pos) {
    rec.payload($) = msg;
    for (unsigned u = 1; u < units; ++u) seg.cell(pos, u).payload($) = msg;
  };
  return w.push(record_word(units), fill, false);
}

/// Runtime::shm_drain on one lane: up to `limit` records (every cell read, the record
/// checked whole), then one release(). Returns how many. `alternating`: record sizes
/// follow units_of(), else every record is 32 bytes.
template <int P>
int drain(Segment<kBytes>& seg, RingReader<kBytes>& r, Received<P>& rx, int limit, bool alternating = true) {
  int n = 0;
  while (n < limit) {
    std::uint32_t w = 0;
    bool bad = false;
    Record* rec = r.front(w, bad);
    RL_ASSERT(!bad);  // real producers never write a word the reader refuses
    if (!rec) break;
    const int msg = rec->payload($);
    const unsigned units = static_cast<unsigned>((w & ~std::uint32_t{kRecordUnit - 1}) / kRecordUnit) - 1;
    RL_ASSERT(msg >= 0);  // -2: the dead producer's half-written record
    RL_ASSERT(units == (alternating ? units_of(msg) : 1u));
    // the record's other cells: found through the cell array as the handler reads its payload
    std::uint64_t off = 0;
    for (unsigned c = 0; c < kBytes / kRecordUnit; ++c)
      if (&seg.data.cell[c] == rec) off = c * kRecordUnit;
    for (unsigned u = 1; u < units; ++u) RL_ASSERT(seg.cell(off, u).payload($) == msg);
    rx.take(msg);
    r.pop(w);
    ++n;
  }
  r.release();
  return n;
}

// Two producers, one consumer, three messages each: FIFO per producer, whole records, no
// overwrite, space reused across the wrap.
struct MpscFifo : rl::test_suite<MpscFifo, 3> {
  Segment<kBytes> seg;
  Received<2> rx;
  void before() { seg.init(); }
  void thread(unsigned index) {
    if (index < 2) {
      RingWriter<kBytes> w(seg);
      for (int i = 0; i < 3; ++i)
        while (push(seg, w, message(static_cast<int>(index), i)) != PushStatus::ok) rl::yield(1, $);
    } else {
      RingReader<kBytes> r(seg);
      while (rx.total < 6)
        if (drain(seg, r, rx, kBatch) == 0) rl::yield(1, $);
    }
  }
  void after() { RL_ASSERT(rx.total == 6); }
};

// One producer, one consumer, a batch longer than the ring: the consumer comes round to a
// record it popped in this same batch before release() zeroed the space; pop() zeroed its
// word, so it reads as "not yet published". 32-byte records only (a full ring of 4 is a whole
// lap); 6 messages.
struct BatchLap : rl::test_suite<BatchLap, 2> {
  Segment<kBytes> seg;
  Received<1> rx;
  void before() { seg.init(); }
  void thread(unsigned index) {
    if (index == 0) {
      RingWriter<kBytes> w(seg);
      for (int i = 0; i < 6; ++i) {
        const int msg = message(0, i);
        auto fill = [&](Record& rec, std::uint64_t) { rec.payload($) = msg; };
        while (w.push(record_word(1), fill, false) != PushStatus::ok) rl::yield(1, $);
      }
    } else {
      RingReader<kBytes> r(seg);
      while (rx.total < 6)
        if (drain(seg, r, rx, 8, false) == 0) rl::yield(1, $);
    }
  }
  void after() { RL_ASSERT(rx.total == 6); }
};

// A producer process killed between its claim and its commit: it claimed a record (and
// wrote part of it) but its word stays 0. The other producer pushes four messages, giving up
// on `full` after a bounded wait (its sends report closed once the monitor notices). The
// consumer must never deliver the dead one's record, nor anything out of order; what the
// live producer committed before the dead claim is delivered.
struct DeadProducer : rl::test_suite<DeadProducer, 3> {
  Segment<kBytes> seg;
  Received<1> rx;
  rl::atomic<int> done;
  int accepted = 0;
  void before() {
    seg.init();
    done.store(0, memory_order_relaxed);
  }
  void thread(unsigned index) {
    if (index == 0) {
      RingWriter<kBytes> w(seg);
      for (int i = 0; i < 4; ++i) {
        int tries = 0;
        PushStatus st;
        while ((st = push(seg, w, message(0, i))) == PushStatus::full && ++tries < 4) rl::yield(1, $);
        if (st != PushStatus::ok) break;
        ++accepted;
      }
      done.store(1, memory_order_release);
    } else if (index == 1) {
      RingWriter<kBytes> w(seg);
      (void)w.claim_and_die(record_word(1));
    } else {
      RingReader<kBytes> r(seg);
      for (;;) {
        const int n = drain(seg, r, rx, kBatch);
        if (n == 0 && done.load(memory_order_acquire)) {
          drain(seg, r, rx, kBatch);  // what was committed before `done`
          break;
        }
        if (n == 0) rl::yield(1, $);
      }
    }
  }
  void after() { RL_ASSERT(rx.total <= accepted); }
};

}  // namespace

int main() {
  bool ok = true;
  ok = ok && check<MpscFifo>("shm ring: mpsc FIFO per producer, whole records, padding, reuse",
                             {rl::sched_random, scaled(200000)});
  ok = ok && check<BatchLap>("shm ring: a batch longer than the ring", {rl::sched_random, scaled(100000)});
  ok = ok && check<BatchLap>("shm ring: a batch longer than the ring", {rl::sched_bound, 0, 2});
  ok = ok && check<DeadProducer>("shm ring: a producer dead between claim and commit",
                                 {rl::sched_random, scaled(100000)});
  std::printf("%s\n", ok ? "all shm ring models passed" : "a shm ring model FAILED");
  return ok ? 0 : 1;
}
