// Relacy model of tern::detail::Ring (include/tern/detail/ring.hpp).
//
// A transcription, not an include: the real header is built on std::atomic, which Relacy
// cannot instrument. To keep the two from drifting apart, the model uses the real member
// names, and every line marked `// =` is, once `std::` is dropped and spaces are squeezed,
// a line of the real file named in the nearest `// mirrors FILE` comment above it.
// tests/scripts/test_relacy_mirror.py checks that for every marked line, so a change to an
// ordering in the real code fails CI until the model is updated (and re-checked).
//
// The byte array is modelled as 16-byte cells, each a commit word (rl::atomic, since any
// cell may start a record in some lap) and an rl::var standing for the cell's other bytes
// (header fields, payload): Relacy reports any access to those that is not ordered by the
// protocol. Records of 32 and 48 bytes in a 128-byte ring make padding records and
// wrap-around part of the runs. The consumer's zeroing (pop: a relaxed store of the header
// word; release: a memset of everything popped since the last release, before the head
// store) is modelled cell by cell: relaxed stores of the cells' words and plain writes of
// their vars.
//
// What is left out: the cache-line layout and the prefetch (no effect on ordering), the
// pool (its own Vyukov queue, include/tern/detail/pool.hpp).
//
// Seeded bugs (each makes a model fail; tests/relacy/meson.build builds them as
// should_fail tests):
//   TERN_RL_BUG_RELAXED_PUBLISH  the commit store of a record's word is relaxed
//   TERN_RL_BUG_RELAXED_RELEASE  the consumer hands slots back with a relaxed head store
//   TERN_RL_BUG_RELEASE_PUBLISH  a publish that must be seq_cst (consumer may park) is release
//   TERN_RL_BUG_NO_POP_ZERO      pop() leaves the header word to release(): a batch that
//                                consumes a whole lap reads its first record again
#pragma once
#include <relacy/relacy.hpp>

#include <cstdint>

namespace tern_model {

using namespace rl;  // memory_order_x is a Relacy macro: `mo_x, $`

constexpr std::uint64_t kRecordUnit = 16;
constexpr std::uint32_t kRecordPadding = 4;

/// One 16-byte cell of the array; a record's header is the cell it starts at.
struct Record {
  rl::atomic<std::uint32_t> word;
  rl::var<int> payload;  ///< the header fields and the first payload bytes
};

/// Bytes of a record whose payload is `units` cells (a header cell first).
constexpr std::uint32_t record_word(unsigned units) { return static_cast<std::uint32_t>((1 + units) * kRecordUnit); }

enum class PushStatus { ok, full, closed };

/// N: capacity in bytes (a power of two, a multiple of 16).
template <unsigned N>
class Ring {
 public:
  static constexpr std::uint64_t kClosed = 1ull << 63;
  static constexpr std::uint64_t kPosMask = (1ull << 40) - 1;
  static constexpr std::uint64_t kCountOne = 1ull << 40;
  static constexpr std::uint64_t kCountMask = ((1ull << 23) - 1) << 40;

  // mirrors include/tern/detail/ring.hpp
  void init(bool spsc = false) {
    spsc_ = spsc;
    for (unsigned i = 0; i < N / kRecordUnit; ++i) {
      cells_[i].word.store(0, memory_order_relaxed);
      cells_[i].payload($) = 0;
    }
    mask_ = N - 1;
    p_.tail.store(0, memory_order_relaxed);  // =
    p_.head_cache.store(0, memory_order_relaxed);  // =
    c_.head.store(0, memory_order_relaxed);  // =
    c_.next = 0;  // =
    closed_.store(false, memory_order_relaxed);
  }

  // mirrors include/tern/detail/ring.hpp
  template <class Fill>
  PushStatus push_mpsc(std::uint32_t word, Fill&& fill, bool sc) {
    RL_ASSERT(!spsc_);
    const std::uint64_t bytes = word & ~std::uint64_t{kRecordUnit - 1};  // =
    const std::uint64_t mask = mask_;  // =
    std::uint64_t pos = p_.tail.load(memory_order_relaxed);  // =
    std::uint64_t pad;  // =
    for (;;) {
      if (pos & kClosed) return PushStatus::closed;  // =
      pad = padding(pos, bytes);
      if (used(pos, p_.head_cache.load(memory_order_acquire)) + pad + bytes > mask + 1) {  // =
        const std::uint64_t h = c_.head.load(memory_order_acquire);  // =
        p_.head_cache.store(h, memory_order_release);  // =
        if (used(pos, h) + pad + bytes > mask + 1) return PushStatus::full;  // =
      }
      if (p_.tail.compare_exchange_weak(pos, advance(pos, pad + bytes, 1) & ~kClosed,  // =
                                        memory_order_acq_rel,  // =
                                        memory_order_relaxed))  // =
        break;
    }
    publish(mask, pos, pad, word, static_cast<Fill&&>(fill), sc);
    return PushStatus::ok;
  }

  // mirrors include/tern/detail/ring.hpp
  template <class Fill>
  PushStatus push_spsc(std::uint32_t word, Fill&& fill, bool sc) {
    RL_ASSERT(spsc_);
    const std::uint64_t bytes = word & ~std::uint64_t{kRecordUnit - 1};  // =
    const std::uint64_t mask = mask_;  // =
    const std::uint64_t pos = p_.tail.load(memory_order_relaxed);  // =
    if (closed_.load(memory_order_relaxed)) return PushStatus::closed;  // =
    std::uint64_t pad = 0;  // =
    if ((pos & mask) + bytes > mask + 1 ||  // =
        used(pos, p_.head_cache.load(memory_order_relaxed)) + bytes > mask + 1) [[unlikely]] {  // =
      pad = padding(pos, bytes);  // =
      if (used(pos, p_.head_cache.load(memory_order_relaxed)) + pad + bytes > mask + 1) {  // =
        const std::uint64_t h = c_.head.load(memory_order_acquire);  // =
        p_.head_cache.store(h, memory_order_relaxed);  // =
        if (used(pos, h) + pad + bytes > mask + 1) return PushStatus::full;  // =
      }
    }
    p_.tail.store(advance(pos, pad + bytes, 1), memory_order_relaxed);  // =
    publish(mask, pos, pad, word, static_cast<Fill&&>(fill), sc);
    return PushStatus::ok;
  }

  // mirrors include/tern/detail/ring.hpp
  Record* front(std::uint32_t& w) {
    for (;;) {
      Record* r = at(c_.next);  // =
      w = r->word.load(memory_order_acquire);  // =
      if (w == 0) return nullptr;  // =
      if (!(w & kRecordPadding)) [[likely]] return r;  // =
      r->word.store(0, memory_order_relaxed);  // as pop() does (see there)
      c_.next = advance(c_.next, w & ~(kRecordUnit - 1), 0);  // =
    }
  }
  // mirrors include/tern/detail/ring.hpp
  void pop(std::uint32_t w) {
#ifndef TERN_RL_BUG_NO_POP_ZERO  // seeded bug: only release() zeroes
    at(c_.next)->word.store(0, memory_order_relaxed);  // =
#endif
    c_.next = advance(c_.next, w & ~(kRecordUnit - 1), 1);  // =
  }
  // mirrors include/tern/detail/ring.hpp
  void release() {
    const std::uint64_t h = c_.head.load(memory_order_relaxed);  // only we write it
    const std::uint64_t n = used(c_.next, h);  // =
    if (n == 0) return;  // =
    // the memset(s) of everything popped since the last release, cell by cell
    for (std::uint64_t u = 0; u < n; u += kRecordUnit) {
      at(h + u)->word.store(0, memory_order_relaxed);
      at(h + u)->payload($) = 0;
    }
#ifdef TERN_RL_BUG_RELAXED_RELEASE
    c_.head.store(c_.next, memory_order_relaxed);  // seeded bug
#else
    c_.head.store(c_.next, memory_order_release);  // =
#endif
  }
  bool empty_sc() const {
    return at(c_.next)->word.load(memory_order_seq_cst) == 0;  // =
  }
  void close() {
    closed_.store(true, memory_order_seq_cst);  // =
    if (!spsc_) p_.tail.fetch_or(kClosed, memory_order_seq_cst);  // =
  }
  bool closed() const { return closed_.load(memory_order_acquire); }  // =
  bool drained() const {
    return ((p_.tail.load(memory_order_acquire) ^ c_.next) & ~kClosed) == 0;  // =
  }
  std::uint64_t depth() const {
    const std::uint64_t t = p_.tail.load(memory_order_relaxed) & ~kClosed;  // =
    const std::uint64_t h = c_.head.load(memory_order_relaxed) & ~kClosed;  // =
    return ((t - h) & kCountMask) >> 40;  // =
  }
  /// The tail word as a whole (tests look at the closed bit).
  std::uint64_t tail_word() const { return p_.tail.load(memory_order_seq_cst); }
  /// For tests that do not need the commit word.
  Record* front() {
    std::uint32_t w;
    return front(w);
  }
  void pop() { pop(at(c_.next)->word.load(memory_order_relaxed)); }

 private:
  Record* at(std::uint64_t pos) const { return const_cast<Record*>(&cells_[(pos & mask_) / kRecordUnit]); }
  // mirrors include/tern/detail/ring.hpp
  static std::uint64_t advance(std::uint64_t w, std::uint64_t bytes, std::uint64_t count) {
    return w + bytes + count * kCountOne;  // see "Positions" at the top of this file
  }
  static std::uint64_t used(std::uint64_t tail, std::uint64_t head) {
    return (tail - head) & kPosMask;  // =
  }
  std::uint64_t padding(std::uint64_t pos, std::uint64_t bytes) const {
    const std::uint64_t off = pos & mask_;  // =
    return off + bytes > mask_ + 1 ? mask_ + 1 - off : 0;  // =
  }

  // mirrors include/tern/detail/ring.hpp
  // (the real one takes data_ too, and finds records at data + (pos & mask))
  template <class Fill>
  void publish(std::uint64_t mask, std::uint64_t pos, std::uint64_t pad, std::uint32_t word,
               Fill&& fill, bool sc) {
    RL_ASSERT(mask == mask_);
    if (pad) [[unlikely]] {  // =
      commit(*at(pos), static_cast<std::uint32_t>(pad) | kRecordPadding, sc);
      pos += pad;  // =
    }
    Record& r = *at(pos);
    fill(r, pos);  // the model's fill also writes the record's further cells
    commit(r, word, sc);  // =
  }
  static void commit(Record& r, std::uint32_t word, bool sc) {
#ifdef TERN_RL_BUG_RELEASE_PUBLISH
    if ((void)sc, false)  // seeded bug: release even when the consumer may park
#else
    if (sc)  // =
#endif
      r.word.store(word, memory_order_seq_cst);  // =
    else
#ifdef TERN_RL_BUG_RELAXED_PUBLISH
      r.word.store(word, memory_order_relaxed);  // seeded bug
#else
      r.word.store(word, memory_order_release);  // =
#endif
  }

 public:
  /// For a model's fill: the cell `u` units after the record at `pos`.
  Record& cell(std::uint64_t pos, unsigned u) { return *at(pos + u * kRecordUnit); }

 private:
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
  Record cells_[N / kRecordUnit];
  rl::atomic<bool> closed_;
  bool spsc_ = false;
};

}  // namespace tern_model
