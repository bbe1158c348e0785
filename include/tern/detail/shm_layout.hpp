// The shared-memory segment of a tern node (tern/shm.hpp): its layout, the checks a process
// runs before it trusts a segment another process wrote, and the record ring that lives in it.
// docs/shared-memory.md draws the layout and states the fault model.
//
// A segment is one file (/dev/shm/tern.NAME by default), written by its owner (the node that
// exports actors) and by connected peers (each in the slots it holds). Nothing in it is a
// pointer: every place is an offset computed from the header's sizes by layout(), which both
// sides run on values they checked. Neither side trusts what the other writes: the consumer
// keeps its read position to itself and checks every commit word before it follows it; the
// producer keeps its ring mask to itself, so a scribbled head or tail can make a send report
// `full` or write garbage into the ring, never write outside it.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include <tern/config.hpp>
#include <tern/detail/ring.hpp>

namespace tern::detail::shm {

inline constexpr std::uint64_t kMagic = 0x314d48534e524554ull;  ///< "TERNSHM1", little-endian
inline constexpr std::uint32_t kVersion = 1;
inline constexpr std::uint32_t kNameBytes = 64;       ///< node and actor names, NUL included
inline constexpr std::uint32_t kTypeNameBytes = 88;   ///< a type's C++ name (longer: cut)
inline constexpr std::uint32_t kMaxExports = 64;
inline constexpr std::uint32_t kMaxSlots = 64;
inline constexpr std::uint32_t kMaxTypes = 64;        ///< message types one exported actor takes
inline constexpr std::uint32_t kMinRingBytes = 4096;
inline constexpr std::uint32_t kMaxRingBytes = 1u << 28;
inline constexpr std::uint32_t kPrioRingBytes = 16384;  ///< the priority lane of every slot

/// Slot states (Slot::state). Transitions: free -> active (a peer, holding the slot's lock),
/// active/failed/closed -> dead (the owner's monitor: the peer's lock is gone),
/// active -> failed (the owner's consumer found a record it cannot trust),
/// active -> closed (the owner's actor stopped), dead -> free (the owner's consumer, after
/// it drained what the dead peer committed and zeroed the rings).
enum SlotState : std::uint32_t { kFree = 0, kActive = 1, kDead = 2, kFailed = 3, kClosed = 4 };

/// At offset 0. Written once by the owner before `state` becomes 1.
struct alignas(kCacheLine) Header {
  std::uint64_t magic;
  std::uint32_t version;
  std::uint32_t header_bytes;  ///< sizeof(Header): a writer with another struct layout is refused
  std::uint64_t total_bytes;   ///< the file's size
  std::uint64_t nonce;         ///< random at creation: a restarted owner writes another
  std::uint32_t n_exports;
  std::uint32_t slots;            ///< connections per exported actor
  std::uint32_t ring_bytes;       ///< normal lane of one slot (power of two)
  std::uint32_t prio_ring_bytes;  ///< priority lane of one slot (power of two)
  std::uint32_t owner_pid;        ///< informative (liveness is the owner lock, byte 0)
  std::atomic<std::uint32_t> state;  ///< 0 being built, 1 open, 2 closed by its owner
  char node[kNameBytes];
};

/// A message type an exported actor takes: its fingerprint. The index in Export::types is
/// the type code records carry in this segment.
struct TypeEntry {
  std::uint32_t id;
  std::uint32_t size;
  std::uint32_t align;
  std::uint32_t flags;        ///< bit 0: the name was cut to kTypeNameBytes - 1
  std::uint64_t layout;       ///< MessageInfo::layout_hash (0: no TERN_WIRE)
  std::uint64_t name_hash;    ///< fnv1a of the whole name
  char name[kTypeNameBytes];
};
static_assert(sizeof(TypeEntry) == 120);

/// One exported actor.
struct alignas(kCacheLine) Export {
  char name[kNameBytes];
  std::uint32_t n_types;
  std::uint32_t futex;              ///< 1: the consumer may park (producers check `sleeping`)
  std::uint32_t max_message_bytes;  ///< largest message the normal lane takes
  std::uint32_t reserved;
  /// Bumped by whoever changes a slot's state: the consumer rescans its slots.
  alignas(kCacheLine) std::atomic<std::uint32_t> conn_gen;
  std::atomic<std::uint32_t> closed;  ///< 1: the actor stopped; no new connections
  /// The consumer parks on `doorbell` (shared futex) after raising `sleeping`; a producer
  /// that sees `sleeping` bumps `doorbell` and wakes it (docs/shared-memory.md, "Wake").
  alignas(kCacheLine) std::atomic<std::uint32_t> doorbell;
  std::atomic<std::uint32_t> sleeping;
  alignas(kCacheLine) TypeEntry types[kMaxTypes];
};

/// The shared part of one ring: what producers and the consumer publish to each other.
struct alignas(kCacheLine) RingCtl {
  std::atomic<std::uint64_t> tail;        ///< producers: next byte position to claim
  std::atomic<std::uint64_t> head_cache;  ///< producers' copy of head
  alignas(kCacheLine) std::atomic<std::uint64_t> head;  ///< consumer: space before it is free
};

/// One connection into one exported actor: a peer process's two lanes.
struct alignas(kCacheLine) Slot {
  std::atomic<std::uint32_t> state;  ///< SlotState
  std::uint32_t peer_pid;            ///< informative
  std::uint64_t peer_nonce;          ///< the peer node's segment nonce (0: it has none)
  char peer_node[kNameBytes];        ///< the peer node's name: replies go to its segment
  RingCtl normal;
  RingCtl prio;
};

/// Where everything is, from the header's sizes. Both sides compute it; offsets only.
struct Layout {
  std::uint64_t exports = 0;  ///< offset of Export[n_exports]
  std::uint64_t slots = 0;    ///< offset of Slot[n_exports * slots]
  std::uint64_t data = 0;     ///< offset of the ring arrays, per slot: normal then priority
  std::uint64_t slot_data = 0;  ///< bytes of ring arrays per slot
  std::uint64_t total = 0;
};

inline bool power_of_two(std::uint64_t v) { return v && !(v & (v - 1)); }

/// false when a size is out of bounds (the caller names which).
inline bool compute_layout(std::uint32_t n_exports, std::uint32_t slots, std::uint32_t ring,
                           std::uint32_t prio, Layout& out) {
  if (n_exports > kMaxExports || slots == 0 || slots > kMaxSlots) return false;
  if (!power_of_two(ring) || ring < kMinRingBytes || ring > kMaxRingBytes) return false;
  if (!power_of_two(prio) || prio < kMinRingBytes || prio > kMaxRingBytes) return false;
  Layout l;
  l.exports = 4096;  // the header has its page
  l.slots = l.exports + std::uint64_t{n_exports} * sizeof(Export);
  l.slots = (l.slots + 4095) & ~std::uint64_t{4095};
  l.data = l.slots + std::uint64_t{n_exports} * slots * sizeof(Slot);
  l.data = (l.data + 4095) & ~std::uint64_t{4095};
  l.slot_data = std::uint64_t{ring} + prio;
  l.total = l.data + std::uint64_t{n_exports} * slots * l.slot_data;
  out = l;
  return true;
}

inline Header* header(unsigned char* base) { return reinterpret_cast<Header*>(base); }
inline Export* export_at(unsigned char* base, const Layout& l, std::uint32_t e) {
  return reinterpret_cast<Export*>(base + l.exports) + e;
}
inline Slot* slot_at(unsigned char* base, const Layout& l, std::uint32_t slots, std::uint32_t e,
                     std::uint32_t s) {
  return reinterpret_cast<Slot*>(base + l.slots) + (std::uint64_t{e} * slots + s);
}
inline std::uint64_t slot_offset(const Layout& l, std::uint32_t slots, std::uint32_t e,
                                 std::uint32_t s) {
  return l.slots + (std::uint64_t{e} * slots + s) * sizeof(Slot);
}
inline unsigned char* ring_data(unsigned char* base, const Layout& l, std::uint32_t slots,
                                std::uint32_t ring, std::uint32_t e, std::uint32_t s, bool prio) {
  return base + l.data + (std::uint64_t{e} * slots + s) * l.slot_data + (prio ? ring : 0);
}

/// Is `s` (a fixed-size char array from the segment) a NUL-terminated, non-empty name?
inline bool valid_name(const char* s, std::size_t cap) {
  const void* nul = std::memchr(s, 0, cap);
  return nul && nul != s;
}

/// Checks a segment another process wrote, before anything in it is followed: magic,
/// version, struct sizes, bounds, the file size, names, type tables. false with `why`
/// naming the first bad value. Reads `len` bytes at most.
/// `hdr` gets the header as checked: use its fields afterwards, never the segment's (another
/// process may change those after the check).
inline bool validate(const unsigned char* base, std::uint64_t len, Layout& out, Header& hdr,
                     std::string& why) {
  auto bad = [&](std::string w) {
    why = std::move(w);
    return false;
  };
  if (len < sizeof(Header)) return bad("file of " + std::to_string(len) + " bytes is shorter than a header");
  Header& h = hdr;
  std::memcpy(static_cast<void*>(&h), base, sizeof h);  // one copy: fields cannot change under us
  if (h.magic != kMagic) return bad("not a tern segment (magic)");
  if (h.version != kVersion)
    return bad("segment version " + std::to_string(h.version) + ", this build reads " +
               std::to_string(kVersion));
  if (h.header_bytes != sizeof(Header)) return bad("header of " + std::to_string(h.header_bytes) + " bytes");
  if (!valid_name(h.node, kNameBytes)) return bad("node name not terminated");
  Layout l;
  if (!compute_layout(h.n_exports, h.slots, h.ring_bytes, h.prio_ring_bytes, l))
    return bad("sizes out of bounds (exports " + std::to_string(h.n_exports) + ", slots " +
               std::to_string(h.slots) + ", ring " + std::to_string(h.ring_bytes) + ", priority ring " +
               std::to_string(h.prio_ring_bytes) + ")");
  if (h.total_bytes != l.total || len < l.total)
    return bad("segment of " + std::to_string(len) + " bytes, header says " +
               std::to_string(h.total_bytes) + ", layout needs " + std::to_string(l.total));
  for (std::uint32_t e = 0; e < h.n_exports; ++e) {
    const Export* x = reinterpret_cast<const Export*>(base + l.exports) + e;
    if (!valid_name(x->name, kNameBytes)) return bad("export " + std::to_string(e) + ": name not terminated");
    const std::uint32_t nt = x->n_types;
    if (nt > kMaxTypes) return bad("export " + std::to_string(e) + ": " + std::to_string(nt) + " types");
    if (x->max_message_bytes > h.ring_bytes / 2)
      return bad("export " + std::to_string(e) + ": max_message_bytes " + std::to_string(x->max_message_bytes));
    for (std::uint32_t t = 0; t < nt; ++t)
      if (!valid_name(x->types[t].name, kTypeNameBytes))
        return bad("export " + std::to_string(e) + ": type " + std::to_string(t) + ": name not terminated");
  }
  out = l;
  return true;
}

inline bool validate(const unsigned char* base, std::uint64_t len, Layout& out, std::string& why) {
  Header h;
  return validate(base, len, out, h, why);
}

/// The consumer's check of a record front() returned, before its payload is touched: its
/// type code names one of the export's `n_types` types and the record holds that type
/// (`sizes[code]` bytes). nullptr when it may be dispatched, else why not.
inline const char* check_record(std::uint32_t w, std::uint32_t code, std::uint32_t n_types,
                                const std::uint32_t* sizes) noexcept {
  if (code >= n_types) return "a type code outside the exported types";
  if ((w & ~std::uint32_t{kRecordUnit - 1}) < record_bytes(sizes[code], false))
    return "a record shorter than its type";
  return nullptr;
}

/// The producer side of a ring in a segment: any number of threads of one process (claims
/// are a CAS on the shared tail, as Ring::push_mpsc). Positions are plain byte counts.
class RingWriter {
 public:
  RingWriter() = default;
  RingWriter(RingCtl* ctl, unsigned char* data, std::uint32_t bytes)
      : ctl_(ctl), data_(data), mask_(bytes - 1) {}

  /// `word`: record bytes (no flags: a segment carries inline records only); `fill(Record&)`
  /// writes the header fields and payload. `sc`: commit seq_cst (the consumer may park).
  template <class Fill>
  PushStatus push(std::uint32_t word, Fill&& fill, bool sc) noexcept {
    const std::uint64_t bytes = word & ~std::uint64_t{kRecordUnit - 1};
    const std::uint64_t cap = mask_ + 1;
    std::uint64_t pos = ctl_->tail.load(std::memory_order_relaxed);
    std::uint64_t pad;
    for (;;) {
      const std::uint64_t off = pos & mask_;
      pad = off + bytes > cap ? cap - off : 0;
      // a head ahead of tail (scribbled) reads as a huge distance: full, never a write
      if (pos - ctl_->head_cache.load(std::memory_order_acquire) + pad + bytes > cap) {
        const std::uint64_t h = ctl_->head.load(std::memory_order_acquire);
        ctl_->head_cache.store(h, std::memory_order_release);
        if (pos - h + pad + bytes > cap) return PushStatus::full;
      }
      if (ctl_->tail.compare_exchange_weak(pos, pos + pad + bytes, std::memory_order_acq_rel,
                                           std::memory_order_relaxed))
        break;
    }
    Ring::publish(data_, mask_, pos, pad, word, fill, sc);
    return PushStatus::ok;
  }
  /// One producer thread (ShmConfig::kind = spsc: the sending node vouches for it): the
  /// same as push() with a plain store of the shared tail instead of a CAS.
  template <class Fill>
  PushStatus push_spsc(std::uint32_t word, Fill&& fill, bool sc) noexcept {
    const std::uint64_t bytes = word & ~std::uint64_t{kRecordUnit - 1};
    const std::uint64_t cap = mask_ + 1;
    std::uint64_t pos = ctl_->tail.load(std::memory_order_relaxed);
    const std::uint64_t off = pos & mask_;
    const std::uint64_t pad = off + bytes > cap ? cap - off : 0;
    if (pos - ctl_->head_cache.load(std::memory_order_relaxed) + pad + bytes > cap) {
      const std::uint64_t h = ctl_->head.load(std::memory_order_acquire);
      ctl_->head_cache.store(h, std::memory_order_relaxed);
      if (pos - h + pad + bytes > cap) return PushStatus::full;
    }
    ctl_->tail.store(pos + pad + bytes, std::memory_order_relaxed);  // read by pending_bytes() only
    Ring::publish(data_, mask_, pos, pad, word, fill, sc);
    return PushStatus::ok;
  }

 private:
  RingCtl* ctl_ = nullptr;
  unsigned char* data_ = nullptr;
  std::uint64_t mask_ = 0;
};

/// The consumer side: the owner's thread that runs the exported actor. Its read position is
/// its own (never read back from the segment); every commit word is checked before use.
class RingReader {
 public:
  RingReader() = default;
  RingReader(RingCtl* ctl, unsigned char* data, std::uint32_t bytes)
      : ctl_(ctl), data_(data), mask_(bytes - 1) {}

  /// The oldest published record, or nullptr (`bad` set when the word at the read position
  /// is not one a producer of this format writes: the connection must be failed).
  Record* front(std::uint32_t& w, bool& bad) noexcept {
    const std::uint64_t cap = mask_ + 1;
    for (;;) {
      const std::uint64_t off = next_ & mask_;
      Record* r = reinterpret_cast<Record*>(data_ + off);
      w = r->word.load(std::memory_order_acquire);
      if (w == 0) return nullptr;
      const std::uint64_t size = w & ~std::uint64_t{kRecordUnit - 1};
      const std::uint32_t flags = w & (kRecordUnit - 1);
      if (flags == kRecordPadding) {
        if (size != cap - off) break;  // padding runs exactly to the end of the array
        r->word.store(0, std::memory_order_relaxed);
        next_ += size;
        continue;
      }
      if (flags != 0 || size < kRecordHeaderBytes || size > cap / 2 || off + size > cap) break;
      return r;
    }
    bad = true;
    return nullptr;
  }
  /// Done with the record front() returned (commit word `w`, checked there).
  void pop(std::uint32_t w) noexcept {
    reinterpret_cast<Record*>(data_ + (next_ & mask_))->word.store(0, std::memory_order_relaxed);
    next_ += w & ~std::uint32_t{kRecordUnit - 1};
  }
  /// Zeroes what was consumed since the last release and hands it back to the producers.
  void release() noexcept {
    const std::uint64_t n = next_ - released_;
    if (n == 0) return;
    if (n >= mask_ + 1) {
      // a whole lap or more: producers stop at head, so beyond a lap only a scribbler that
      // re-armed popped records gets here; zero the array once, never past its end
      std::memset(data_, 0, mask_ + 1);
    } else {
      const std::uint64_t off = released_ & mask_;
      const std::uint64_t first = off + n > mask_ + 1 ? mask_ + 1 - off : n;
      std::memset(data_ + off, 0, first);
      if (first != n) std::memset(data_, 0, n - first);
    }
    released_ = next_;
    ctl_->head.store(next_, std::memory_order_release);
  }
  /// Is nothing published at the read position? (seq_cst: the re-check before parking)
  bool empty_sc() const noexcept {
    return reinterpret_cast<const Record*>(data_ + (next_ & mask_))
               ->word.load(std::memory_order_seq_cst) == 0;
  }
  bool empty() const noexcept {
    return reinterpret_cast<const Record*>(data_ + (next_ & mask_))
               ->word.load(std::memory_order_acquire) == 0;
  }
  /// Bytes claimed by producers and not consumed (bounded by the ring: the tail is a hint).
  std::uint64_t pending_bytes(std::uint32_t bytes) const noexcept {
    const std::uint64_t d = ctl_->tail.load(std::memory_order_acquire) - next_;
    return d > bytes ? bytes : d;
  }
  /// Owner, the slot no longer in use: zero the array and the shared positions.
  void reset(std::uint32_t bytes) noexcept {
    std::memset(data_, 0, bytes);
    ctl_->tail.store(0, std::memory_order_relaxed);
    ctl_->head_cache.store(0, std::memory_order_relaxed);
    ctl_->head.store(0, std::memory_order_relaxed);
    next_ = released_ = 0;
  }

 private:
  RingCtl* ctl_ = nullptr;
  unsigned char* data_ = nullptr;
  std::uint64_t mask_ = 0;
  std::uint64_t next_ = 0;      ///< private: the next record to read
  std::uint64_t released_ = 0;  ///< private: what was last handed back
};

}  // namespace tern::detail::shm
