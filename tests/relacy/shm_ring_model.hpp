// Relacy model of the shared-memory record ring: tern::detail::shm::RingWriter and
// RingReader (include/tern/detail/shm_layout.hpp).
//
// A transcription, not an include (the real header is built on std::atomic, which Relacy
// cannot instrument), kept honest as ring_model.hpp is: every line marked `// =` is, once
// `std::` is dropped and spaces are squeezed, a line of the real file named in the nearest
// `// mirrors FILE` comment above it (tests/scripts/test_relacy_mirror.py checks that).
// To let the real lines stand as they are, the model's `data_` is a cell array whose
// `data_ + byte_offset` is the Record cell at that offset, `memset` over it zeroes cells
// (a relaxed store of each cell's word and a plain write of its payload var, as the real
// memset does to those bytes).
//
// The byte array is 16-byte cells, each a commit word (rl::atomic: any cell may start a
// record in some lap) and an rl::var standing for the cell's other bytes (header fields and
// payload): Relacy reports any access to those that the protocol does not order. Records of
// 32 and 48 bytes in a 128-byte ring make padding records and the wrap part of the runs.
//
// What is left out: the doorbell / sleeping Dekker (the park protocol; relacy_park models it
// for the mailbox ring), the slot states and the monitor; a dead producer is a thread that
// claims space and stops before its commit (DeadProducer in the test).
//
// Seeded bugs (each makes the model fail; tests/relacy/meson.build builds them as
// should_fail tests):
//   TERN_RL_BUG_COMMIT_BEFORE_FILL   the record's word is committed before the fill
//   TERN_RL_BUG_HEAD_BEFORE_ZERO     release() publishes head before zeroing what it hands back
//   TERN_RL_BUG_RELAXED_HEAD         the producer loads the consumer's head relaxed
//   TERN_RL_BUG_NO_PADDING_COMMIT    the padding record at the wrap is never committed
#pragma once
#include <relacy/relacy.hpp>

#include <cstdint>

namespace tern_model::shm {

using namespace rl;  // memory_order_x is a Relacy macro: `mo_x, $`

constexpr std::uint64_t kRecordUnit = 16;
constexpr std::uint64_t kRecordHeaderBytes = 16;
constexpr std::uint32_t kRecordPadding = 4;

/// One 16-byte cell of the array; a record's header is the cell it starts at.
struct Record {
  rl::atomic<std::uint32_t> word;
  rl::var<int> payload;  ///< the header fields and payload bytes of this cell
};

/// Bytes of a record whose payload is `units` cells (a header cell first).
constexpr std::uint32_t record_word(unsigned units) { return static_cast<std::uint32_t>((1 + units) * kRecordUnit); }

enum class PushStatus { ok, full };

/// The model's ring array: `data_ + off` is the cell at byte offset `off`.
template <unsigned N>
struct Cells {
  Record cell[N / kRecordUnit];
};
template <unsigned N>
Record* operator+(Cells<N>& c, std::uint64_t off) {
  RL_ASSERT(off % kRecordUnit == 0 && off < N);
  return &c.cell[off / kRecordUnit];
}
/// memset(data_ + off, 0, n): zeroes the cells it covers (the caller keeps it in the array).
inline void memset(Record* r, int v, std::uint64_t n) {
  RL_ASSERT(v == 0 && n % kRecordUnit == 0);
  for (std::uint64_t u = 0; u < n / kRecordUnit; ++u) {
    r[u].word.store(0, memory_order_relaxed);
    r[u].payload($) = 0;
  }
}
template <unsigned N>
void memset(Cells<N>& c, int v, std::uint64_t n) {
  RL_ASSERT(n <= N);
  memset(c + 0, v, n);
}

/// The shared part of one ring (RingCtl).
struct RingCtl {
  rl::atomic<std::uint64_t> tail;
  rl::atomic<std::uint64_t> head_cache;
  rl::atomic<std::uint64_t> head;
};

/// N: capacity in bytes (a power of two, a multiple of 16). The array and the RingCtl as
/// a segment holds them; writers and the reader are views on them, as in the real code.
template <unsigned N>
struct Segment {
  RingCtl ctl;
  Cells<N> data;
  void init() {
    for (Record& r : data.cell) {
      r.word.store(0, memory_order_relaxed);
      r.payload($) = 0;
    }
    ctl.tail.store(0, memory_order_relaxed);
    ctl.head_cache.store(0, memory_order_relaxed);
    ctl.head.store(0, memory_order_relaxed);
  }
  /// For a model's fill: the cell `u` units after the record at `pos`.
  Record& cell(std::uint64_t pos, unsigned u) { return *(data + ((pos + u * kRecordUnit) & (N - 1))); }
};

template <unsigned N>
class RingWriter {
 public:
  explicit RingWriter(Segment<N>& s) : ctl_(&s.ctl), data_(s.data), mask_(N - 1) {}

  // mirrors include/tern/detail/shm_layout.hpp
  /// fill(Record&, pos): writes the record's cells.
  template <class Fill>
  PushStatus push(std::uint32_t word, Fill&& fill, bool sc) {
    std::uint64_t pos, pad;
    if (!claim(word, pos, pad)) return PushStatus::full;
    // mirrors include/tern/detail/ring.hpp
    // (Ring::publish, which RingWriter calls with its data_ and mask_)
    auto& data = data_;
    const std::uint64_t mask = mask_;
#ifdef TERN_RL_BUG_NO_PADDING_COMMIT
    if (pad) {  // seeded bug: the padding's word is never written
      pos += pad;
    }
#else
    if (pad) [[unlikely]] {  // =
      commit(*reinterpret_cast<Record*>(data + (pos & mask)),  // =
             static_cast<std::uint32_t>(pad) | kRecordPadding, sc);  // =
      pos += pad;  // =
    }
#endif
    Record& r = *reinterpret_cast<Record*>(data + (pos & mask));  // =
#ifdef TERN_RL_BUG_COMMIT_BEFORE_FILL
    commit(r, word, sc);  // seeded bug
    fill(r, pos);
#else
    fill(r, pos);  // the real fill(r): the model's also writes the record's further cells
    commit(r, word, sc);  // =
#endif
    return PushStatus::ok;
  }

  /// A producer killed between its claim and its commit (the test's dead process): claims
  /// `word` bytes, writes the first cell's payload, commits nothing.
  bool claim_and_die(std::uint32_t word) {
    std::uint64_t pos, pad;
    if (!claim(word, pos, pad)) return false;
    (data_ + ((pos + pad) & mask_))->payload($) = -2;
    return true;
  }

 private:
  // mirrors include/tern/detail/shm_layout.hpp
  // (the real push's claim loop, in one piece there)
  bool claim(std::uint32_t word, std::uint64_t& pos_out, std::uint64_t& pad_out) {
    const std::uint64_t bytes = word & ~std::uint64_t{kRecordUnit - 1};  // =
    const std::uint64_t cap = mask_ + 1;  // =
    std::uint64_t pos = ctl_->tail.load(memory_order_relaxed);  // =
    std::uint64_t pad;  // =
    for (;;) {
      const std::uint64_t off = pos & mask_;  // =
      pad = off + bytes > cap ? cap - off : 0;  // =
      if (pos - ctl_->head_cache.load(memory_order_acquire) + pad + bytes > cap) {  // =
#ifdef TERN_RL_BUG_RELAXED_HEAD
        const std::uint64_t h = ctl_->head.load(memory_order_relaxed);  // seeded bug
#else
        const std::uint64_t h = ctl_->head.load(memory_order_acquire);  // =
#endif
        ctl_->head_cache.store(h, memory_order_release);  // =
        if (pos - h + pad + bytes > cap) return false;  // the real one: return PushStatus::full
      }
      if (ctl_->tail.compare_exchange_weak(pos, pos + pad + bytes, memory_order_acq_rel,  // =
                                           memory_order_relaxed))  // =
        break;
    }
    pos_out = pos;
    pad_out = pad;
    return true;
  }

  // mirrors include/tern/detail/ring.hpp
  // (Ring::commit, through Ring::publish)
  static void commit(Record& r, std::uint32_t word, bool sc) {
    if (sc)  // =
      r.word.store(word, memory_order_seq_cst);  // =
    else
      r.word.store(word, memory_order_release);  // =
  }

  RingCtl* ctl_;
  Cells<N>& data_;
  std::uint64_t mask_;
};

template <unsigned N>
class RingReader {
 public:
  explicit RingReader(Segment<N>& s) : ctl_(&s.ctl), data_(s.data), mask_(N - 1) {}

  // mirrors include/tern/detail/shm_layout.hpp
  Record* front(std::uint32_t& w, bool& bad) {
    const std::uint64_t cap = mask_ + 1;  // =
    for (;;) {
      const std::uint64_t off = next_ & mask_;  // =
      Record* r = reinterpret_cast<Record*>(data_ + off);  // =
      w = r->word.load(memory_order_acquire);  // =
      if (w == 0) return nullptr;  // =
      const std::uint64_t size = w & ~std::uint64_t{kRecordUnit - 1};  // =
      const std::uint32_t flags = w & (kRecordUnit - 1);  // =
      if (flags == kRecordPadding) {  // =
        if (size != cap - off) break;  // =
        r->word.store(0, memory_order_relaxed);  // =
        next_ += size;  // =
        continue;
      }
      if (flags != 0 || size < kRecordHeaderBytes || size > cap / 2 || off + size > cap) break;  // =
      return r;
    }
    bad = true;  // =
    return nullptr;
  }
  // mirrors include/tern/detail/shm_layout.hpp
  void pop(std::uint32_t w) {
    reinterpret_cast<Record*>(data_ + (next_ & mask_))->word.store(0, memory_order_relaxed);  // =
    next_ += w & ~std::uint32_t{kRecordUnit - 1};  // =
  }
  // mirrors include/tern/detail/shm_layout.hpp
  void release() {
    const std::uint64_t n = next_ - released_;  // =
    if (n == 0) return;  // =
#ifdef TERN_RL_BUG_HEAD_BEFORE_ZERO
    ctl_->head.store(next_, memory_order_release);  // seeded bug: handed back, then zeroed
#endif
    if (n >= mask_ + 1) {  // =
      memset(data_, 0, mask_ + 1);  // =
    } else {
      const std::uint64_t off = released_ & mask_;  // =
      const std::uint64_t first = off + n > mask_ + 1 ? mask_ + 1 - off : n;  // =
      memset(data_ + off, 0, first);  // =
      if (first != n) memset(data_, 0, n - first);  // =
    }
    released_ = next_;  // =
#ifndef TERN_RL_BUG_HEAD_BEFORE_ZERO
    ctl_->head.store(next_, memory_order_release);  // =
#endif
  }
  bool empty() const {
    return reinterpret_cast<const Record*>(data_ + (next_ & mask_))  // =
               ->word.load(memory_order_acquire) == 0;  // =
  }

 private:
  RingCtl* ctl_;
  Cells<N>& data_;
  std::uint64_t mask_;
  std::uint64_t next_ = 0;      // consumer-private
  std::uint64_t released_ = 0;  // consumer-private
};

}  // namespace tern_model::shm
