// A mailbox's message pool: messages above the mailbox's inline limit are constructed in a
// block of the pool and the record carries the block's handle (no pointer), the handler
// reads the message there, and the consumer returns the block after the handler.
//
// Size classes are powers of two from just above the inline limit up to the mailbox's
// max_message_bytes; each class has `blocks` blocks in one slab allocated at set-up
// (configure). A class's free blocks are indices in a bounded Vyukov MPMC queue: any
// producer takes one (a CAS), the consumer gives it back (a CAS). Nothing is allocated per
// message; an empty class makes the send report `full`, like a full ring.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include <tern/config.hpp>

namespace tern::detail {

/// Bounded MPMC queue of block indices (Vyukov). Capacity: a power of two >= the blocks.
class IndexQueue {
 public:
  void init(std::uint32_t n) {
    std::uint32_t cap = 1;
    while (cap < n) cap <<= 1;
    cells_ = std::make_unique<Cell[]>(cap);
    mask_ = cap - 1;
    for (std::uint32_t i = 0; i < cap; ++i) cells_[i].seq.store(i, std::memory_order_relaxed);
    head_.store(0, std::memory_order_relaxed);
    tail_.store(0, std::memory_order_relaxed);
    for (std::uint32_t i = 0; i < n; ++i) (void)push(i);
  }
  /// Any thread. false: full (cannot happen when only taken indices are pushed back).
  bool push(std::uint32_t v) noexcept {
    std::uint64_t pos = tail_.load(std::memory_order_relaxed);
    for (;;) {
      Cell& c = cells_[pos & mask_];
      // acquire: pairs with the popper's release of this cell a lap ago
      const std::uint64_t seq = c.seq.load(std::memory_order_acquire);
      const std::int64_t d = static_cast<std::int64_t>(seq - pos);
      if (d == 0) {
        // relaxed: uniqueness comes from the RMW; the data is published by seq below
        if (tail_.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed)) {
          c.value = v;
          c.seq.store(pos + 1, std::memory_order_release);
          return true;
        }
      } else if (d < 0) {
        return false;
      } else {
        pos = tail_.load(std::memory_order_relaxed);
      }
    }
  }
  /// Any thread. false: empty.
  bool pop(std::uint32_t& v) noexcept {
    std::uint64_t pos = head_.load(std::memory_order_relaxed);
    for (;;) {
      Cell& c = cells_[pos & mask_];
      // acquire: pairs with the pusher's release (its value)
      const std::uint64_t seq = c.seq.load(std::memory_order_acquire);
      const std::int64_t d = static_cast<std::int64_t>(seq - (pos + 1));
      if (d == 0) {
        if (head_.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed)) {
          v = c.value;
          c.seq.store(pos + mask_ + 1, std::memory_order_release);
          return true;
        }
      } else if (d < 0) {
        return false;
      } else {
        pos = head_.load(std::memory_order_relaxed);
      }
    }
  }

 private:
  struct Cell {
    std::atomic<std::uint64_t> seq{0};
    std::uint32_t value = 0;
  };
  alignas(kCacheLine) std::atomic<std::uint64_t> tail_{0};
  alignas(kCacheLine) std::atomic<std::uint64_t> head_{0};
  alignas(kCacheLine) std::unique_ptr<Cell[]> cells_;
  std::uint64_t mask_ = 0;
};

class Pool {
 public:
  /// Handle layout: size class in the top 8 bits, block index in the low 24.
  static constexpr std::uint32_t kIndexBits = 24;
  static constexpr std::uint32_t kMaxBlocks = 1u << kIndexBits;

  /// Set-up only: classes from the first power of two above `inline_bytes` (at least 64)
  /// up to `max_bytes`, `blocks` blocks each. No classes when max_bytes <= inline_bytes.
  /// Throws std::invalid_argument naming a bad value; std::bad_alloc when out of memory.
  void init(std::uint32_t inline_bytes, std::uint32_t max_bytes, std::uint32_t blocks) {
    classes_.clear();
    if (max_bytes <= inline_bytes) return;
    if (blocks == 0 || blocks >= kMaxBlocks)
      throw std::invalid_argument("tern: MailboxConfig::pool_blocks = " + std::to_string(blocks) +
                                  ": must be 1 .. " + std::to_string(kMaxBlocks - 1) +
                                  " when max_message_bytes > inline_bytes");
    std::uint32_t size = 64;
    while (size <= inline_bytes) size <<= 1;
    for (;; size <<= 1) {
      auto c = std::make_unique<Class>();
      c->block_bytes = size;
      // operator new at set-up only (mimalloc's when the program links it in as the
      // global allocator); never on the send path.
      c->slab.reset(static_cast<unsigned char*>(
          ::operator new(std::size_t{size} * blocks, std::align_val_t{kCacheLine})));
      c->free.init(blocks);
      classes_.push_back(std::move(c));
      if (size >= max_bytes) break;
    }
  }

  /// Any producer thread: a block for `bytes`, or false (class exhausted: the caller
  /// reports `full`). Never allocates.
  bool alloc(std::uint32_t bytes, std::uint32_t& handle) noexcept {
    for (std::uint32_t k = 0; k < classes_.size(); ++k) {
      Class& c = *classes_[k];
      if (c.block_bytes < bytes) continue;
      std::uint32_t i;
      if (!c.free.pop(i)) return false;
      handle = (k << kIndexBits) | i;
      return true;
    }
    return false;
  }
  void* block(std::uint32_t handle) const noexcept {
    const Class& c = *classes_[handle >> kIndexBits];
    return c.slab.get() + std::size_t{c.block_bytes} * (handle & (kMaxBlocks - 1));
  }
  /// Consumer (or a producer giving back an unused block). Never allocates.
  void free(std::uint32_t handle) noexcept {
    (void)classes_[handle >> kIndexBits]->free.push(handle & (kMaxBlocks - 1));
  }
  bool empty() const noexcept { return classes_.empty(); }

 private:
  struct SlabDelete {
    void operator()(unsigned char* p) const noexcept {
      ::operator delete(p, std::align_val_t{kCacheLine});
    }
  };
  struct Class {
    std::uint32_t block_bytes = 0;
    std::unique_ptr<unsigned char, SlabDelete> slab;
    IndexQueue free;
  };
  std::vector<std::unique_ptr<Class>> classes_;
};

}  // namespace tern::detail
