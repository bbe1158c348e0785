// The bounded ring behind a mailbox lane: variable-length records, contiguous in one byte
// array (docs/concurrency.md, "Records"). A message is constructed in its record, so a send
// is one record write plus one commit store: no allocation, no lock, no syscall.
//
// Record: a 16-byte header (commit word, type index, sender actor index, sender's remote
// peer), an optional 16-byte extension (remote target, send time), then the payload,
// rounded up to 16 bytes. No pointers: the same bytes could live in memory shared between
// processes. The commit word (bytes | flags) is written last; 0 means "not published".
// The consumer zeroes the space it consumed before it hands it back (the header word at
// pop(), the rest in one memset per batch at release()), so free space is all zero and the word where the next record will start
// reads 0 until that record is committed: stale payload of an older lap is never mistaken
// for a header.
// A record that does not fit before the end of the array is preceded by a padding record
// up to the end, claimed with it in one step; it then starts at offset 0.
//
// Publication is per record: the consumer polls only the commit word of the record it will
// read next, so a small message moves one cache line producer -> consumer, as in a bare
// cache-line ping-pong. The consumer frees space by publishing `head` on its own line,
// once per batch; producers read it only when their cached copy says the ring is full.
//
// Positions (tail, head, next) are packed words: byte position (bits 0-39), record count
// (bits 40-62, for depth()), and on an mpsc tail bit 63 = closed. A record advances a
// position by one add (bytes + one count): a byte position that passes 2^40 carries into
// the count, the same carry at the same record in tail, head and next, so byte distances
// (mod 2^40) and equality stay exact and depth() is off by one at most for a moment. A
// count carry into bit 63 is masked off on an mpsc tail (it would read as closed) and
// ignored elsewhere (every reader masks bit 63).
//
// Cache lines (each alignas(kCacheLine) block starts its own line):
//   [producers: tail, head_cache]  written per send
//   [consumer:  head (published per batch), next (private)]
//   [read-mostly: mask, data, closed, kind]
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
#include <cstring>
#include <memory>
#include <new>

#include <tern/config.hpp>
#include <tern/message.hpp>

namespace tern {
class Actor;
}

namespace tern::detail {

/// Record flags, in the low 4 bits of the commit word (record sizes are multiples of 16).
inline constexpr std::uint32_t kRecordExt = 1;      ///< a RecordExt follows the header
inline constexpr std::uint32_t kRecordPooled = 2;   ///< the payload is a pool handle (uint32)
inline constexpr std::uint32_t kRecordPadding = 4;  ///< skip to the end of the array

/// A record's header. The payload follows (after a RecordExt when kRecordExt is set).
struct Record {
  std::atomic<std::uint32_t> word;  ///< bytes | flags once published; 0 = not yet
  std::uint32_t type;               ///< index in the type table (detail::message_type_at)
  std::uint32_t sender;             ///< sender's actor index (0: not an actor)
  std::uint32_t sender_remote;      ///< nonzero: sender is remote peer N behind `sender`

  unsigned char* body() noexcept { return reinterpret_cast<unsigned char*>(this) + kRecordHeaderBytes; }
};
/// Optional: present when the target is remote (gateway outbound) or send times are stamped.
struct RecordExt {
  std::uint32_t target_remote;  ///< nonzero: deliver to remote peer N (gateway outbound)
  std::uint32_t reserved;
  std::uint64_t enqueue_ns;     ///< send time when instrumentation is on, else 0
};
static_assert(sizeof(Record) == kRecordHeaderBytes);
static_assert(sizeof(RecordExt) == kRecordUnit);
static_assert(offsetof(Record, word) == 0);

/// Bytes a record takes for a payload of `payload` bytes (header, extension, rounding).
constexpr std::uint32_t record_bytes(std::uint32_t payload, bool ext) noexcept {
  return static_cast<std::uint32_t>(kRecordHeaderBytes + (ext ? kRecordUnit : 0) +
                                    ((payload + kRecordUnit - 1) & ~(kRecordUnit - 1)));
}

/// too_large: above the mailbox's max_message_bytes (Mailbox::push; a ring never says it).
enum class PushStatus : std::uint8_t { ok, full, closed, too_large };

inline std::uint32_t round_capacity(std::uint32_t n) {
  std::uint32_t c = 2;
  while (c < n) c <<= 1;
  return c;
}

class Ring {
 public:
  static constexpr std::uint64_t kClosed = 1ull << 63;
  static constexpr std::uint64_t kPosMask = (1ull << 40) - 1;
  static constexpr std::uint64_t kCountOne = 1ull << 40;
  static constexpr std::uint64_t kCountMask = ((1ull << 23) - 1) << 40;
  /// why 256: a stream's writes run ahead of the consumer's line; asking for a line a few
  /// records ahead takes the ownership transfer off a stream's critical path.
  static constexpr std::uint64_t kPrefetchAhead = 256;
  /// Largest ring: sizes and offsets fit the 32-bit commit word.
  static constexpr std::uint32_t kMaxBytes = 1u << 30;

  Ring() = default;
  Ring(const Ring&) = delete;
  Ring& operator=(const Ring&) = delete;
  /// Frees the array. The owner destroys pending messages first (destroy_pending).
  ~Ring() { std::free(data_); }

  /// Allocates `bytes` (rounded up to a power of two, zeroed) and fixes the claim
  /// discipline (push_spsc only on an spsc ring, push_mpsc only on an mpsc ring). Set-up
  /// only (before any producer or consumer runs; nothing pending).
  void init(std::uint32_t bytes, MailboxKind kind = MailboxKind::mpsc) {
    const std::uint32_t n = round_capacity(bytes < 64 ? 64 : bytes);
    void* mem = std::aligned_alloc(kCacheLine, n);
    if (!mem) throw std::bad_alloc();
    std::memset(mem, 0, n);  // free space is all zero (see the top of this file)
    std::free(data_);
    data_ = static_cast<unsigned char*>(mem);
    mask_ = n - 1;
    spsc_ = kind == MailboxKind::spsc;
    // A ring is born closed (no array yet: a send to an actor no Manager configured returns
    // closed instead of writing through a null pointer); init() opens it.
    p_.tail.store(0, std::memory_order_relaxed);
    p_.head_cache.store(0, std::memory_order_relaxed);
    c_.head.store(0, std::memory_order_relaxed);
    c_.next = 0;
    closed_.store(false, std::memory_order_relaxed);
  }

  /// Any number of producer threads. `word`: record bytes | flags. `fill(Record&)` writes
  /// the header fields and payload. `sc` commits with seq_cst, needed when the consumer
  /// may park (pairs with its seq_cst sleep flag).
  template <class Fill>
  PushStatus push_mpsc(std::uint32_t word, Fill&& fill, bool sc) noexcept {
    assert(!spsc_ && "push_mpsc on a ring initialised as spsc");
    const std::uint64_t bytes = word & ~std::uint64_t{kRecordUnit - 1};
    unsigned char* const data = data_;
    const std::uint64_t mask = mask_;
    std::uint64_t pos = p_.tail.load(std::memory_order_relaxed);
    std::uint64_t pad;
    for (;;) {
      if (pos & kClosed) return PushStatus::closed;
      pad = padding(pos, bytes);  // why not the local mask: padding() reads mask_ itself
      // head_cache is release/acquire (plain moves on x86): a value another producer copied
      // from `head` carries the consumer's release with it, so our record write comes after
      // the consumer's last read (and zeroing) of that space, even when that producer then
      // found the ring full and made no CAS on tail.
      if (used(pos, p_.head_cache.load(std::memory_order_acquire)) + pad + bytes > mask + 1) {
        const std::uint64_t h = c_.head.load(std::memory_order_acquire);
        p_.head_cache.store(h, std::memory_order_release);
        if (used(pos, h) + pad + bytes > mask + 1) return PushStatus::full;
      }
      // acq_rel on success: orders producers' claims among themselves.
      if (p_.tail.compare_exchange_weak(pos, advance(pos, pad + bytes, 1) & ~kClosed,
                                        std::memory_order_acq_rel,
                                        std::memory_order_relaxed))
        break;
    }
    publish(data, mask, pos, pad, word, static_cast<Fill&&>(fill), sc);
    return PushStatus::ok;
  }

  /// Exactly one producer thread (the caller enforces that), on a ring initialised spsc.
  template <class Fill>
  PushStatus push_spsc(std::uint32_t word, Fill&& fill, bool sc) noexcept {
    assert(spsc_ && "push_spsc on a ring initialised as mpsc");
    const std::uint64_t bytes = word & ~std::uint64_t{kRecordUnit - 1};
    unsigned char* const data = data_;
    const std::uint64_t mask = mask_;
    const std::uint64_t pos = p_.tail.load(std::memory_order_relaxed);
    // closed_, not a bit of tail (see the top of this file). Relaxed: a close() that
    // happened before this send is seen (coherence); one racing with it may still accept
    // this message (Manager::end orders actor producers by its stop protocol).
    if (closed_.load(std::memory_order_relaxed)) return PushStatus::closed;
    std::uint64_t pad = 0;
    // the common case in two compares: the record fits before the end of the array, and
    // in the space the cached head leaves
    if ((pos & mask) + bytes > mask + 1 ||
        used(pos, p_.head_cache.load(std::memory_order_relaxed)) + bytes > mask + 1) [[unlikely]] {
      pad = padding(pos, bytes);
      if (used(pos, p_.head_cache.load(std::memory_order_relaxed)) + pad + bytes > mask + 1) {
        const std::uint64_t h = c_.head.load(std::memory_order_acquire);
        p_.head_cache.store(h, std::memory_order_relaxed);
        if (used(pos, h) + pad + bytes > mask + 1) return PushStatus::full;
      }
    }
    // only depth()/drained() readers look at it, masking bit 63 (which a count carry may
    // set here: close() never sets it on an spsc tail, so this store cannot erase a close)
    p_.tail.store(advance(pos, pad + bytes, 1), std::memory_order_relaxed);
    publish(data, mask, pos, pad, word, static_cast<Fill&&>(fill), sc);
    return PushStatus::ok;
  }

  /// Consumer thread only: the oldest published record, or nullptr; `w` gets its commit
  /// word. Moves past padding records.
  Record* front(std::uint32_t& w) noexcept {
    for (;;) {
      Record* r = at(c_.next);
      w = r->word.load(std::memory_order_acquire);
      if (w == 0) return nullptr;
      if (!(w & kRecordPadding)) [[likely]] return r;
      r->word.store(0, std::memory_order_relaxed);  // as pop() does (see there)
      c_.next = advance(c_.next, w & ~(kRecordUnit - 1), 0);
    }
  }
  Record* front() noexcept {
    std::uint32_t w;
    return front(w);
  }
  /// Consumer thread only: done with the record front() returned (its message destroyed);
  /// `w` is its commit word. Zeroes its header word; the rest of it is zeroed, and the
  /// space handed back to producers, by the next release().
  void pop(std::uint32_t w) noexcept {
    // the header word now, the rest at release(): a batch that consumes the whole ring
    // comes back to this record and must find 0 there, not a stale record
    at(c_.next)->word.store(0, std::memory_order_relaxed);
    c_.next = advance(c_.next, w & ~(kRecordUnit - 1), 1);
  }
  void pop() noexcept { pop(at(c_.next)->word.load(std::memory_order_relaxed)); }
  /// Consumer thread only: zeroes every record popped since the last release() (one memset,
  /// two at the wrap) and hands the space back to producers. Called once per batch, so that
  /// producers polling a full ring see the consumer's line change once per batch.
  void release() noexcept {
    const std::uint64_t h = c_.head.load(std::memory_order_relaxed);  // only we write it
    const std::uint64_t n = used(c_.next, h);
    if (n == 0) return;
    const std::uint64_t off = h & mask_;
    if (n <= 128 && off + n <= mask_ + 1) [[likely]] {
      // a short batch (a latency path hands back one record at a time): a few stores
      // inline instead of a call
      unsigned char* p = data_ + off;
      if (n & 128) { std::memset(p, 0, 128); p += 128; }
      if (n & 64) { std::memset(p, 0, 64); p += 64; }
      if (n & 32) { std::memset(p, 0, 32); p += 32; }
      if (n & 16) std::memset(p, 0, 16);
    } else {
      const std::uint64_t first = off + n > mask_ + 1 ? mask_ + 1 - off : n;
      std::memset(data_ + off, 0, first);
      if (first != n) std::memset(data_, 0, n - first);
    }
    c_.head.store(c_.next, std::memory_order_release);
  }
  /// Consumer thread: is nothing published? A peek that writes nothing (front() may skip
  /// padding), for a look taken without the actor's lock.
  bool empty() const noexcept { return at(c_.next)->word.load(std::memory_order_acquire) == 0; }
  /// Consumer thread, seq_cst: is nothing published? (the re-check before parking)
  bool empty_sc() const noexcept {
    return at(c_.next)->word.load(std::memory_order_seq_cst) == 0;
  }
  /// Closes the ring to new messages. Any thread; idempotent.
  void close() noexcept {
    closed_.store(true, std::memory_order_seq_cst);
    // mpsc: claims are CASes on tail, so the bit makes every later claim fail. Not on an
    // spsc ring: its producer's plain tail store would erase it.
    if (!spsc_) p_.tail.fetch_or(kClosed, std::memory_order_seq_cst);
  }
  bool closed() const noexcept { return closed_.load(std::memory_order_acquire); }
  /// Consumer: every claimed record consumed? (MPSC claims may be in flight until then)
  bool drained() const noexcept {
    return ((p_.tail.load(std::memory_order_acquire) ^ c_.next) & ~kClosed) == 0;
  }
  /// Any thread, approximate: messages accepted and not yet consumed.
  std::uint64_t depth() const noexcept {
    const std::uint64_t t = p_.tail.load(std::memory_order_relaxed) & ~kClosed;
    const std::uint64_t h = c_.head.load(std::memory_order_relaxed) & ~kClosed;
    return ((t - h) & kCountMask) >> 40;
  }
  /// Size of the array in bytes.
  std::uint32_t bytes() const noexcept { return static_cast<std::uint32_t>(mask_ + 1); }

  /// Destroys every published message from the consumer's position on (accepted, never
  /// handled: an actor that never started, or a mailbox torn down with work left), with
  /// `destroy(Record&)`. Single-threaded (destructor, set-up).
  template <class Destroy>
  void destroy_pending(Destroy&& destroy) noexcept {
    if (!data_) return;
    for (Record* r = front(); r; r = front()) {
      destroy(*r);
      pop();
    }
    release();
  }

  /// A claimed record's write: its padding record first when `pad`, then `fill(Record&)`,
  /// then the commit word. Producers of this ring, and of a ring in shared memory
  /// (shm::RingWriter). `data`, `mask`: data_ and mask_, read by the caller into locals before
  /// its own stores (a payload or tail store could alias the members, so they would be read
  /// again).
  template <class Fill>
  static void publish(unsigned char* data, std::uint64_t mask, std::uint64_t pos, std::uint64_t pad,
                      std::uint32_t word, Fill&& fill, bool sc) noexcept {
    __builtin_prefetch(data + ((pos + kPrefetchAhead) & mask), 1, 3);
    if (pad) [[unlikely]] {
      // the same order as the record's commit: a parking consumer's seq_cst re-check may
      // look at the padding word first (P1 in docs/concurrency.md)
      commit(*reinterpret_cast<Record*>(data + (pos & mask)),
             static_cast<std::uint32_t>(pad) | kRecordPadding, sc);
      pos += pad;
    }
    Record& r = *reinterpret_cast<Record*>(data + (pos & mask));
    fill(r);
    commit(r, word, sc);
  }
  static void commit(Record& r, std::uint32_t word, bool sc) noexcept {
    if (sc)
      r.word.store(word, std::memory_order_seq_cst);
    else
      r.word.store(word, std::memory_order_release);
  }

 private:
  Record* at(std::uint64_t pos) const noexcept {
    return reinterpret_cast<Record*>(data_ + (pos & mask_));
  }
  static std::uint64_t advance(std::uint64_t w, std::uint64_t bytes, std::uint64_t count) noexcept {
    return w + bytes + count * kCountOne;  // see "Positions" at the top of this file
  }
  static std::uint64_t used(std::uint64_t tail, std::uint64_t head) noexcept {
    return (tail - head) & kPosMask;
  }
  /// Bytes of padding needed before a record of `bytes` claimed at `pos`: the rest of the
  /// array when the record would cross its end, else 0.
  std::uint64_t padding(std::uint64_t pos, std::uint64_t bytes) const noexcept {
    const std::uint64_t off = pos & mask_;
    return off + bytes > mask_ + 1 ? mask_ + 1 - off : 0;
  }

  struct alignas(kCacheLine) Producers {
    std::atomic<std::uint64_t> tail{kClosed};  ///< closed until init() (see there)
    std::atomic<std::uint64_t> head_cache{0};  ///< producers' stale view of c_.head
  };
  struct alignas(kCacheLine) Consumer {
    std::atomic<std::uint64_t> head{0};  ///< published by release(): space before it is free
    std::uint64_t next = 0;              ///< consumer-private: the next record to read
  };
  Producers p_;
  Consumer c_;
  alignas(kCacheLine) std::uint64_t mask_ = 0;
  unsigned char* data_ = nullptr;
  std::atomic<bool> closed_{true};  ///< until init()
  bool spsc_ = false;  ///< set-up: the claim discipline (read-mostly line)
};

static_assert(sizeof(Ring) == 3 * kCacheLine);

}  // namespace tern::detail
