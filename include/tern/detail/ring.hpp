// The bounded ring behind a mailbox lane. A message is constructed in its slot, so a send is
// one slot write plus one publish: no allocation, no lock, no syscall.
//
// Publication is per slot (Vyukov): the producer writes the payload and then the slot's
// `seq`; the consumer polls only the slot it will read next. So on the critical path of a
// message one cache line moves, producer -> consumer, exactly as in a bare cache-line
// ping-pong. The consumer never writes a slot: it frees space by publishing `head` on its
// own line, which producers read only when their cached copy says the ring is full.
//
// Cache lines (each alignas(kCacheLine) block starts its own line):
//   [producers: tail (bit 63 = closed), head_cache, owner]  written per send
//   [consumer:  head (published per batch), next (private)]
//   [read-mostly: mask, slots]
//   [slots: 2 lines each, header + payload in the first line for messages <= 16 bytes]
//
// Two claim disciplines share the layout, chosen at init: push_spsc (one producer thread,
// plain store of tail) and push_mpsc (any thread, CAS on tail). "Closed" is `closed_`, and
// on an mpsc ring also bit 63 of tail, so that a claim CAS fails once the ring is closed.
// An spsc ring never carries that bit: its producer's plain tail store would overwrite a
// bit set by a concurrent close() (an RMW per send would be needed to keep it); its
// producer checks `closed_` instead.
#pragma once
#include <atomic>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <new>

#include <tern/config.hpp>
#include <tern/message.hpp>

namespace tern {
class Actor;
}

namespace tern::detail {

/// One message in a ring: header plus in-place payload.
struct alignas(kCacheLine) Slot {
  std::atomic<std::uint64_t> seq;  ///< == position + 1 once the message at `position` is published
  const MessageInfo* info;         ///< type of the payload
  Actor* sender;                   ///< who sent it (nullptr: not an actor)
  std::uint32_t sender_remote;     ///< nonzero: sender is remote peer N behind `sender` (a gateway)
  std::uint32_t target_remote;     ///< nonzero: deliver to remote peer N (gateway outbound)
  std::uint64_t enqueue_ns;        ///< send time when instrumentation is on, else 0
  std::uint64_t reserved;
  // why alignas(16): messages may hold 16-byte aligned members (long double, SSE types).
  alignas(kMaxMessageAlign) unsigned char payload[kMaxMessageBytes];
};
static_assert(sizeof(Slot) == kSlotBytes);
static_assert(offsetof(Slot, payload) == kSlotHeaderBytes);

enum class PushStatus : std::uint8_t { ok, full, closed };

inline std::uint32_t round_capacity(std::uint32_t n) {
  std::uint32_t c = 2;
  while (c < n) c <<= 1;
  return c;
}

class Ring {
 public:
  static constexpr std::uint64_t kClosed = 1ull << 63;
  static constexpr std::uint64_t kPrefetchAhead = 4;

  Ring() = default;
  Ring(const Ring&) = delete;
  Ring& operator=(const Ring&) = delete;
  /// Destroys the messages still in the ring (accepted, never consumed), then the slots.
  /// No producer or consumer may run any more.
  ~Ring() {
    destroy_pending();
    std::free(slots_);
  }

  /// Allocates the slots and fixes the claim discipline (push_spsc only on an spsc ring,
  /// push_mpsc only on an mpsc ring). Set-up only (before any producer or consumer runs).
  void init(std::uint32_t capacity, MailboxKind kind = MailboxKind::mpsc) {
    const std::uint32_t n = round_capacity(capacity);
    void* mem = std::aligned_alloc(kCacheLine, sizeof(Slot) * n);
    if (!mem) throw std::bad_alloc();
    destroy_pending();
    std::free(slots_);
    slots_ = static_cast<Slot*>(mem);
    for (std::uint32_t i = 0; i < n; ++i) {
      ::new (&slots_[i]) Slot{};
      // why: position i is published as seq == i + 1, so 0 can never look published.
      slots_[i].seq.store(0, std::memory_order_relaxed);
    }
    mask_ = n - 1;
    spsc_ = kind == MailboxKind::spsc;
    // A ring is born closed (no slots yet: a send to an actor no Manager configured returns
    // closed instead of writing through a null pointer); init() opens it.
    p_.tail.fetch_and(~kClosed, std::memory_order_relaxed);
    closed_.store(false, std::memory_order_relaxed);
  }

  /// Any number of producer threads. `fill(Slot&)` constructs the message. `sc` publishes
  /// with seq_cst, needed when the consumer may park (pairs with its seq_cst sleep flag).
  template <class Fill>
  PushStatus push_mpsc(Fill&& fill, bool sc) noexcept {
    assert(!spsc_ && "push_mpsc on a ring initialised as spsc");
    std::uint64_t pos = p_.tail.load(std::memory_order_relaxed);
    for (;;) {
      if (pos & kClosed) return PushStatus::closed;
      // head_cache is release/acquire (plain moves on x86): a value another producer copied
      // from `head` carries the consumer's release with it, so our slot write comes after
      // the consumer's last read of that slot, even when that producer then found the ring
      // full and made no CAS on tail.
      if (pos - p_.head_cache.load(std::memory_order_acquire) > mask_) {
        const std::uint64_t h = c_.head.load(std::memory_order_acquire);
        p_.head_cache.store(h, std::memory_order_release);
        if (pos - h > mask_) return PushStatus::full;
      }
      // acq_rel on success: orders producers' claims among themselves.
      if (p_.tail.compare_exchange_weak(pos, pos + 1, std::memory_order_acq_rel,
                                        std::memory_order_relaxed))
        break;
    }
    publish(pos, static_cast<Fill&&>(fill), sc);
    return PushStatus::ok;
  }

  /// Exactly one producer thread (the caller enforces that), on a ring initialised spsc.
  template <class Fill>
  PushStatus push_spsc(Fill&& fill, bool sc) noexcept {
    assert(spsc_ && "push_spsc on a ring initialised as mpsc");
    const std::uint64_t pos = p_.tail.load(std::memory_order_relaxed);
    // closed_, not a bit of tail (see the top of this file). Relaxed: a close() that
    // happened before this send is seen (coherence); one racing with it may still accept
    // this message (Manager::end orders actor producers by its stop protocol).
    if (closed_.load(std::memory_order_relaxed)) return PushStatus::closed;
    if (pos - p_.head_cache.load(std::memory_order_relaxed) > mask_) {
      const std::uint64_t h = c_.head.load(std::memory_order_acquire);
      p_.head_cache.store(h, std::memory_order_relaxed);
      if (pos - h > mask_) return PushStatus::full;
    }
    // only depth()/drained() readers look at it; never carries kClosed (close() leaves an
    // spsc tail alone), so this store cannot erase a close
    p_.tail.store(pos + 1, std::memory_order_relaxed);
    publish(pos, static_cast<Fill&&>(fill), sc);
    return PushStatus::ok;
  }

  /// Consumer thread only: the oldest published message, or nullptr.
  Slot* front() noexcept {
    const std::uint64_t next = c_.next;  // why a copy: not reloaded after the acquire load
    Slot* s = &slots_[next & mask_];
    return s->seq.load(std::memory_order_acquire) == next + 1 ? s : nullptr;
  }
  /// Consumer thread only: done with the slot front() returned (its message destroyed).
  /// The slot is handed back to producers by the next release().
  void pop() noexcept { ++c_.next; }
  /// Consumer thread only: hands every popped slot back to producers. Called once per batch
  /// so that producers polling a full ring see the consumer's line change once per batch.
  void release() noexcept { c_.head.store(c_.next, std::memory_order_release); }
  /// Consumer thread, seq_cst: is nothing published? (the re-check before parking)
  bool empty_sc() const noexcept {
    return slots_[c_.next & mask_].seq.load(std::memory_order_seq_cst) != c_.next + 1;
  }
  /// Closes the ring to new messages. Any thread; idempotent.
  void close() noexcept {
    closed_.store(true, std::memory_order_seq_cst);
    // mpsc: claims are CASes on tail, so the bit makes every later claim fail. Not on an
    // spsc ring: its producer's plain tail store would erase it.
    if (!spsc_) p_.tail.fetch_or(kClosed, std::memory_order_seq_cst);
  }
  bool closed() const noexcept { return closed_.load(std::memory_order_acquire); }
  /// Consumer: every claimed position consumed? (MPSC claims may be in flight until then)
  bool drained() const noexcept {
    return (p_.tail.load(std::memory_order_acquire) & ~kClosed) == c_.next;
  }
  /// Any thread, approximate: messages accepted and not yet consumed.
  std::uint64_t depth() const noexcept {
    const std::uint64_t t = p_.tail.load(std::memory_order_relaxed) & ~kClosed;
    const std::uint64_t h = c_.head.load(std::memory_order_relaxed);
    return t > h ? t - h : 0;
  }
  std::uint64_t accepted() const noexcept {
    return p_.tail.load(std::memory_order_relaxed) & ~kClosed;
  }
  std::uint32_t capacity() const noexcept { return static_cast<std::uint32_t>(mask_ + 1); }

 private:
  /// Destroys every published message from the consumer's position on (they were accepted
  /// and never handled: an actor that never started, or a ring torn down with work left).
  /// Published positions are exactly those whose seq is position + 1, so the walk stops at
  /// the first slot not published for this lap. Single-threaded (destructor, set-up).
  void destroy_pending() noexcept {
    if (!slots_) return;
    for (std::uint64_t pos = c_.next; pos - c_.next <= mask_; ++pos) {
      Slot& s = slots_[pos & mask_];
      if (s.seq.load(std::memory_order_acquire) != pos + 1) break;
      destroy_message(*s.info, s.payload);
    }
  }

  template <class Fill>
  void publish(std::uint64_t pos, Fill&& fill, bool sc) noexcept {
    // why: when the consumer keeps up it polls the very slot we write next, so each write
    // would wait for that line to come back; asking for a slot a few ahead early takes the
    // ownership transfer off the critical path of a stream.
    __builtin_prefetch(&slots_[(pos + kPrefetchAhead) & mask_], 1, 3);
    Slot& s = slots_[pos & mask_];
    fill(s);
    if (sc)
      s.seq.store(pos + 1, std::memory_order_seq_cst);
    else
      s.seq.store(pos + 1, std::memory_order_release);
  }

  struct alignas(kCacheLine) Producers {
    std::atomic<std::uint64_t> tail{kClosed};  ///< closed until init() (see there)
    std::atomic<std::uint64_t> head_cache{0};  ///< producers' stale view of c_.head
  };
  struct alignas(kCacheLine) Consumer {
    std::atomic<std::uint64_t> head{0};  ///< published by release(): slots before it are free
    std::uint64_t next = 0;              ///< consumer-private: the next position to read
  };
  Producers p_;
  Consumer c_;
  alignas(kCacheLine) std::uint64_t mask_ = 0;
  Slot* slots_ = nullptr;
  std::atomic<bool> closed_{true};  ///< until init()
  bool spsc_ = false;  ///< set-up: the claim discipline (read-mostly line)
};

static_assert(sizeof(Ring) == 3 * kCacheLine);

}  // namespace tern::detail
