// Relacy model of tern::detail::Ring (include/tern/detail/ring.hpp).
//
// A transcription, not an include: the real header is built on std::atomic, which Relacy
// cannot instrument. To keep the two from drifting apart, the model uses the real member
// names, and every line marked `// =` is, once `std::` is dropped and spaces are squeezed,
// a line of the real file named in the nearest `// mirrors FILE` comment above it.
// tests/scripts/test_relacy_mirror.py checks that for every marked line, so a change to an
// ordering in the real code fails CI until the model is updated (and re-checked).
//
// What is left out: the cache-line layout and the prefetch (no effect on ordering), the
// slot header fields (info, sender, ...: plain writes inside fill(), modelled by `payload`,
// an rl::var so Relacy reports any access to it that is not ordered by the protocol).
//
// Seeded bugs (each makes a model fail; tests/relacy/meson.build builds them as
// should_fail tests):
//   TERN_RL_BUG_RELAXED_PUBLISH  the publish store of a slot's seq is relaxed
//   TERN_RL_BUG_RELAXED_RELEASE  the consumer hands slots back with a relaxed head store
//   TERN_RL_BUG_RELEASE_PUBLISH  a publish that must be seq_cst (consumer may park) is release
#pragma once
#include <relacy/relacy.hpp>

#include <cstdint>

namespace tern_model {

using namespace rl;  // memory_order_x is a Relacy macro: `mo_x, $`

/// Stands for detail::Slot: the seq word plus everything fill() writes.
struct Slot {
  rl::atomic<std::uint64_t> seq;
  rl::var<int> payload;
};

enum class PushStatus { ok, full, closed };

/// N: capacity (a power of two, as round_capacity makes it).
template <unsigned N>
class Ring {
 public:
  static constexpr std::uint64_t kClosed = 1ull << 63;

  // mirrors include/tern/detail/ring.hpp
  /// spsc: the claim discipline (runtime-api 002e4c5: Ring::init(capacity, kind)).
  void init(bool spsc = false) {
    spsc_ = spsc;
    for (unsigned i = 0; i < N; ++i) {
      slots_[i].seq.store(0, memory_order_relaxed);
      slots_[i].payload($) = 0;
    }
    mask_ = N - 1;
    p_.tail.store(0, memory_order_relaxed);
    p_.head_cache.store(0, memory_order_relaxed);
    c_.head.store(0, memory_order_relaxed);
    c_.next = 0;
    closed_.store(false, memory_order_relaxed);
  }

  // mirrors include/tern/detail/ring.hpp
  template <class Fill>
  PushStatus push_mpsc(Fill&& fill, bool sc) {
    RL_ASSERT(!spsc_);
    std::uint64_t pos = p_.tail.load(memory_order_relaxed);  // =
    for (;;) {
      if (pos & kClosed) return PushStatus::closed;  // =
      if (pos - p_.head_cache.load(memory_order_acquire) > mask_) {  // =
        const std::uint64_t h = c_.head.load(memory_order_acquire);  // =
        p_.head_cache.store(h, memory_order_release);  // =
        if (pos - h > mask_) return PushStatus::full;  // =
      }
      if (p_.tail.compare_exchange_weak(pos, pos + 1, memory_order_acq_rel,  // =
                                        memory_order_relaxed))  // =
        break;
    }
    publish(pos, static_cast<Fill&&>(fill), sc);  // =
    return PushStatus::ok;
  }

  // mirrors include/tern/detail/ring.hpp
  template <class Fill>
  PushStatus push_spsc(Fill&& fill, bool sc) {
    RL_ASSERT(spsc_);
    const std::uint64_t pos = p_.tail.load(memory_order_relaxed);  // =
    if (closed_.load(memory_order_relaxed)) return PushStatus::closed;  // =
    if (pos - p_.head_cache.load(memory_order_relaxed) > mask_) {  // =
      const std::uint64_t h = c_.head.load(memory_order_acquire);  // =
      p_.head_cache.store(h, memory_order_relaxed);  // =
      if (pos - h > mask_) return PushStatus::full;  // =
    }
    p_.tail.store(pos + 1, memory_order_relaxed);  // =
    publish(pos, static_cast<Fill&&>(fill), sc);  // =
    return PushStatus::ok;
  }

  // mirrors include/tern/detail/ring.hpp
  Slot* front() {
    const std::uint64_t next = c_.next;  // =
    Slot* s = &slots_[next & mask_];  // =
    return s->seq.load(memory_order_acquire) == next + 1 ? s : nullptr;  // =
  }
  void pop() { ++c_.next; }
  void release() {
#ifdef TERN_RL_BUG_RELAXED_RELEASE
    c_.head.store(c_.next, memory_order_relaxed);  // seeded bug
#else
    c_.head.store(c_.next, memory_order_release);  // =
#endif
  }
  bool empty_sc() const {
    return slots_[c_.next & mask_].seq.load(memory_order_seq_cst) != c_.next + 1;  // =
  }
  void close() {
    closed_.store(true, memory_order_seq_cst);  // =
    // runtime-api 002e4c5: only an mpsc ring's tail carries the closed bit (an spsc
    // producer's plain tail store would erase it). Not marked: main's ring.hpp sets the
    // bit on both kinds, harmlessly, since nothing reads it on an spsc ring.
    if (!spsc_) p_.tail.fetch_or(kClosed, memory_order_seq_cst);
  }
  bool closed() const { return closed_.load(memory_order_acquire); }  // =
  bool drained() const {
    return (p_.tail.load(memory_order_acquire) & ~kClosed) == c_.next;  // =
  }
  std::uint64_t depth() const {
    const std::uint64_t t = p_.tail.load(memory_order_relaxed) & ~kClosed;  // =
    const std::uint64_t h = c_.head.load(memory_order_relaxed);  // =
    return t > h ? t - h : 0;  // =
  }
  /// The tail word as a whole (tests look at the closed bit).
  std::uint64_t tail_word() const { return p_.tail.load(memory_order_seq_cst); }

 private:
  template <class Fill>
  void publish(std::uint64_t pos, Fill&& fill, bool sc) {
    Slot& s = slots_[pos & mask_];  // =
    fill(s);  // =
#ifdef TERN_RL_BUG_RELEASE_PUBLISH
    if ((void)sc, false)  // seeded bug: release even when the consumer may park
#else
    if (sc)  // =
#endif
      s.seq.store(pos + 1, memory_order_seq_cst);  // =
    else
#ifdef TERN_RL_BUG_RELAXED_PUBLISH
      s.seq.store(pos + 1, memory_order_relaxed);  // seeded bug
#else
      s.seq.store(pos + 1, memory_order_release);  // =
#endif
  }

  struct Producers {
    rl::atomic<std::uint64_t> tail;
    rl::atomic<std::uint64_t> head_cache;
  };
  struct Consumer {
    rl::atomic<std::uint64_t> head;
    std::uint64_t next = 0;  // consumer-private (moves between threads only under a lock)
  };
  Producers p_;
  Consumer c_;
  std::uint64_t mask_ = 0;
  Slot slots_[N];
  rl::atomic<bool> closed_;
  bool spsc_ = false;
};

}  // namespace tern_model
