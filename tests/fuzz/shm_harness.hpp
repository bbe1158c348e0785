// The shared-memory reader's fuzz harness, shared by the libFuzzer target (fuzz_shm.cpp) and
// the regression test (tests/shm_fuzz_test.cpp), so a saved crash input replays exactly.
// The threat it stands for (issue 11, "Faults"): a local process that may write a segment
// writes anything into it, at any time; the reader must fail that connection, never crash,
// read or write outside the segment, or loop for ever.
//
// Every input is run two ways:
//
// (a) run_segment: the input is a whole segment file of exactly its length (the buffer is
//     allocated to that length, so ASan reports any byte read past it). validate() decides;
//     when it accepts, the walk a peer and the owner make follows: every export's name and
//     type table (as ShmNode's attach reads them), every slot's peer name and both of its
//     rings drained as Runtime::shm_drain does (RingReader::front, check_record, the payload
//     read, pop, release per batch). Checked: every record and payload lies inside its own
//     ring, and a drain ends within one lap (a ring nobody writes holds at most bytes/16
//     records).
//
// (b) run_ring: the input is one ring and a concurrent scribbler:
//       byte  0       ring size: 64 << (b % 8) bytes (64 .. 8192; the reader is generic)
//       bytes 1..16   the RingCtl's tail and head (little-endian u64)
//       byte  17      n_types = b % 9; bytes 18..25 the types' sizes (b * 8 bytes each)
//       byte  26      records per batch (1 + b % 64) between release() calls
//       then          the ring's bytes (zero-filled when the input is shorter)
//       then          scribbles, 8 bytes each (at most 64): u16 step, u16 byte offset
//                     (& ~3, in the ring), u32 value: written just before the reader's
//                     front() call number `step`, as another process might at any time.
//     The array is allocated exactly (ASan sees any access outside it). Checked: a record
//     front() returns is aligned, 16 .. bytes/2 long and inside the array; its payload too;
//     the reader consumes at most one record per non-zero word it was shown (bytes/16 plus
//     one per scribble: pop() and release() zero what they pass); pending_bytes() stays
//     within the ring.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <string>
#include <vector>

#include <tern/detail/shm_layout.hpp>

namespace tern::fuzz::shm {

using namespace tern::detail;
using namespace tern::detail::shm;

/// A buffer of exactly `n` bytes, 64-byte aligned (the segment's structs are alignas(64)).
class Exact {
 public:
  explicit Exact(std::size_t n)
      : n_(n), p_(static_cast<unsigned char*>(::operator new(n ? n : 1, std::align_val_t{64}))) {}
  ~Exact() { ::operator delete(p_, std::align_val_t{64}); }
  Exact(const Exact&) = delete;
  Exact& operator=(const Exact&) = delete;
  unsigned char* data() const noexcept { return p_; }
  std::size_t size() const noexcept { return n_; }

 private:
  std::size_t n_;
  unsigned char* p_;
};

/// What one drain saw.
struct DrainResult {
  std::uint64_t records = 0;
  std::uint64_t payload_sum = 0;  ///< every payload byte read (so none is optimised away)
  const char* failed = nullptr;   ///< why the connection would be failed, or nullptr
};

/// Checks one record front() returned and reads its payload as dispatch would.
/// "" or the broken invariant.
inline std::string check_front(const unsigned char* data, std::uint64_t bytes, const Record* r,
                               std::uint32_t w, const std::uint32_t* sizes, std::uint32_t n_types,
                               DrainResult& out) {
  const auto* p = reinterpret_cast<const unsigned char*>(r);
  if (p < data || p >= data + bytes) return "front() returned a record outside its ring";
  const std::uint64_t off = static_cast<std::uint64_t>(p - data);
  const std::uint64_t size = w & ~std::uint64_t{kRecordUnit - 1};
  if (off % kRecordUnit) return "front() returned a misaligned record at " + std::to_string(off);
  if ((w & (kRecordUnit - 1)) != 0) return "front() returned a record with flags " + std::to_string(w & 15);
  if (size < kRecordHeaderBytes || size > bytes / 2 || off + size > bytes)
    return "front() returned a record of " + std::to_string(size) + " bytes at " +
           std::to_string(off) + " in a ring of " + std::to_string(bytes);
  const std::uint32_t code = r->type;  // read once, as shm_drain does
  if (const char* why = check_record(w, code, n_types, sizes)) {
    out.failed = why;
    return "";
  }
  const unsigned char* body = p + kRecordHeaderBytes;
  if (off + kRecordHeaderBytes + sizes[code] > bytes)
    return "check_record passed a payload of " + std::to_string(sizes[code]) +
           " bytes running past the ring (record at " + std::to_string(off) + ")";
  for (std::uint32_t i = 0; i < sizes[code]; ++i) out.payload_sum += body[i];
  ++out.records;
  return "";
}

/// Runtime::shm_drain over one connection that nobody writes meanwhile: batches of `limit`
/// records, the priority lane first and then the normal lane (drain_ring there), release()
/// of both after each, until a batch finds both empty or one ring is bad.
inline std::string drain_conn(RingReader& prio, const unsigned char* prio_data, std::uint64_t prio_bytes,
                              RingReader& normal, const unsigned char* normal_data,
                              std::uint64_t normal_bytes, const std::uint32_t* sizes,
                              std::uint32_t n_types, std::uint32_t limit, DrainResult& out) {
  // at most one record per 16 bytes of each ring: pop() zeroes every header it passes
  const std::uint64_t bound = prio_bytes / kRecordUnit + normal_bytes / kRecordUnit;
  for (;;) {
    std::uint32_t n = 0;
    std::string err;
    auto drain_ring = [&](RingReader& ring, const unsigned char* data, std::uint64_t bytes) {
      while (n < limit && !out.failed && err.empty()) {
        bool bad = false;
        std::uint32_t w = 0;
        Record* r = ring.front(w, bad);
        if (!r) {
          if (bad) out.failed = "a commit word this format never writes";
          return;
        }
        err = check_front(data, bytes, r, w, sizes, n_types, out);
        if (!err.empty() || out.failed) return;
        ring.pop(w);
        ++n;
      }
    };
    drain_ring(prio, prio_data, prio_bytes);
    drain_ring(normal, normal_data, normal_bytes);
    if (!err.empty()) return err;
    prio.release();
    normal.release();
    if (prio.pending_bytes(static_cast<std::uint32_t>(prio_bytes)) > prio_bytes ||
        normal.pending_bytes(static_cast<std::uint32_t>(normal_bytes)) > normal_bytes)
      return "pending_bytes() beyond the ring";
    if (out.records > bound)
      return "the reader consumed " + std::to_string(out.records) + " records from rings of " +
             std::to_string(prio_bytes) + " + " + std::to_string(normal_bytes) +
             " bytes that nobody wrote meanwhile";
    if (out.failed || n < limit) return "";
  }
}

/// (a): the input as a whole segment. "" or the broken invariant. `records`: when given,
/// set to the number of records the drains dispatched (0 when validate() refused).
inline std::string run_segment(const std::uint8_t* in, std::size_t size, std::uint64_t* records = nullptr) {
  if (records) *records = 0;
  Exact seg(size);
  if (size) std::memcpy(seg.data(), in, size);
  unsigned char* base = seg.data();
  Layout l;
  Header h;  // the copy validate() checked: the walk takes sizes and counts from it, as attach does
  std::string why;
  if (!validate(base, size, l, h, why)) {
    if (why.empty()) return "validate() refused a segment without saying why";
    return "";
  }
  if (l.total > size) return "validate() accepted a segment shorter than its layout";
  std::uint64_t sum = 0;
  sum += strnlen(h.node, kNameBytes);
  for (std::uint32_t e = 0; e < h.n_exports; ++e) {
    const Export* x = export_at(base, l, e);
    if (strnlen(x->name, kNameBytes) >= kNameBytes) return "validate() passed an unterminated export name";
    // the peer's attach: the type table, each entry copied once
    const std::uint32_t nt = std::min<std::uint32_t>(x->n_types, kMaxTypes);
    std::uint32_t sizes[kMaxTypes] = {};
    for (std::uint32_t t = 0; t < nt; ++t) {
      const TypeEntry te = x->types[t];
      if (strnlen(te.name, kTypeNameBytes) >= kTypeNameBytes)
        return "validate() passed an unterminated type name (export " + std::to_string(e) + ")";
      sum += te.id + te.align + te.layout + te.name_hash + std::string(te.name).size();
      // the owner's own table: every type it exports fits its max_message_bytes
      sizes[t] = std::min(te.size, x->max_message_bytes);
    }
    for (std::uint32_t s = 0; s < h.slots; ++s) {
      Slot* slot = slot_at(base, l, h.slots, e, s);
      char peer[kNameBytes];
      std::memcpy(peer, slot->peer_node, kNameBytes);  // rescan(): copied, then terminated
      peer[kNameBytes - 1] = 0;
      sum += std::string(peer).size() + slot->state.load(std::memory_order_acquire) + slot->peer_pid;
      unsigned char* nd = ring_data(base, l, h.slots, h.ring_bytes, e, s, false);
      unsigned char* pd = ring_data(base, l, h.slots, h.ring_bytes, e, s, true);
      if (nd < base + l.data || pd + h.prio_ring_bytes > base + l.total)
        return "a ring of export " + std::to_string(e) + " slot " + std::to_string(s) +
               " lies outside the segment's data";
      RingReader normal(&slot->normal, nd, h.ring_bytes);
      RingReader prio(&slot->prio, pd, h.prio_ring_bytes);
      DrainResult r;
      if (std::string err = drain_conn(prio, pd, h.prio_ring_bytes, normal, nd, h.ring_bytes, sizes,
                                       nt, Tuning::batch, r);
          !err.empty())
        return "export " + std::to_string(e) + " slot " + std::to_string(s) + ": " + err;
      sum += r.payload_sum;
      if (records) *records += r.records;
    }
  }
  volatile std::uint64_t sink = sum;  // why: keep the reads of the walk
  (void)sink;
  return "";
}

namespace detail_ring {
inline std::uint64_t le64(const std::uint8_t* p) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}
inline std::uint32_t le(const std::uint8_t* p, int n) {
  std::uint32_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}
}  // namespace detail_ring

inline constexpr std::size_t kRingInputHeader = 27;
inline constexpr std::size_t kMaxScribbles = 64;

/// (b): the input as one ring plus a scribbler (format at the top of this file). `records`:
/// when given, set to the number of records that passed check_record; `failed`: whether the
/// reader stopped at a record it cannot trust (the connection would be failed).
inline std::string run_ring(const std::uint8_t* in, std::size_t size, std::uint64_t* records = nullptr,
                            bool* failed = nullptr) {
  using detail_ring::le;
  using detail_ring::le64;
  std::uint8_t hdr[kRingInputHeader] = {};
  std::memcpy(hdr, in, std::min(size, kRingInputHeader));
  const std::uint32_t bytes = 64u << (hdr[0] % 8);
  RingCtl ctl;
  ctl.tail.store(le64(hdr + 1), std::memory_order_relaxed);
  ctl.head.store(le64(hdr + 9), std::memory_order_relaxed);
  ctl.head_cache.store(le64(hdr + 9), std::memory_order_relaxed);
  const std::uint32_t n_types = hdr[17] % 9;
  std::uint32_t sizes[8];
  for (int i = 0; i < 8; ++i) sizes[i] = std::uint32_t{hdr[18 + i]} * 8;
  const std::uint32_t limit = 1 + hdr[26] % 64;

  Exact ring(bytes);
  std::memset(ring.data(), 0, bytes);
  std::size_t at = std::min(size, kRingInputHeader);
  const std::size_t content = std::min<std::size_t>(size - at, bytes);
  if (content) std::memcpy(ring.data(), in + at, content);
  at += content;
  struct Scribble {
    std::uint32_t step, off, value;
  };
  std::vector<Scribble> scribbles;
  for (; size - at >= 8 && scribbles.size() < kMaxScribbles; at += 8)
    scribbles.push_back({le(in + at, 2), le(in + at + 2, 2) & (bytes - 1) & ~3u, le(in + at + 4, 4)});
  std::stable_sort(scribbles.begin(), scribbles.end(),
                   [](const Scribble& a, const Scribble& b) { return a.step < b.step; });

  RingReader reader(&ctl, ring.data(), bytes);
  DrainResult out;
  std::size_t next_scribble = 0;
  std::uint64_t applied = 0;
  std::uint32_t in_batch = 0;
  // the bound on records (see the top); the loop's own bound (front() calls) is far above it
  const auto record_bound = [&] { return bytes / kRecordUnit + applied; };
  const std::uint64_t max_calls = 4 * (bytes / kRecordUnit + kMaxScribbles) + 16;
  std::uint64_t step = 0;
  for (std::uint64_t calls = 0;; ++calls, ++step) {
    if (calls > max_calls)
      return "the reader did not come to an end in " + std::to_string(max_calls) + " front() calls";
    for (; next_scribble < scribbles.size() && scribbles[next_scribble].step <= step; ++next_scribble) {
      const Scribble& s = scribbles[next_scribble];
      reinterpret_cast<std::atomic<std::uint32_t>*>(ring.data() + s.off)->store(s.value, std::memory_order_relaxed);
      ++applied;
    }
    bool bad = false;
    std::uint32_t w = 0;
    Record* r = reader.front(w, bad);
    if (bad) {
      out.failed = "a commit word this format never writes";
      break;
    }
    if (!r) {
      reader.release();
      in_batch = 0;
      if (next_scribble == scribbles.size()) break;
      // idle until the scribbler's next write (the front() calls meanwhile find the same)
      step = std::max<std::uint64_t>(step, scribbles[next_scribble].step) - 1;
      continue;
    }
    if (std::string e = check_front(ring.data(), bytes, r, w, sizes, n_types, out); !e.empty()) return e;
    if (out.failed) break;
    reader.pop(w);
    if (out.records > record_bound())
      return "the reader consumed " + std::to_string(out.records) + " records from a ring of " +
             std::to_string(bytes) + " bytes shown " + std::to_string(applied) + " scribbled words";
    if (++in_batch == limit) {
      reader.release();
      in_batch = 0;
    }
  }
  reader.release();
  if (reader.pending_bytes(bytes) > bytes) return "pending_bytes() beyond the ring";
  if (records) *records = out.records;
  if (failed) *failed = out.failed != nullptr;
  volatile std::uint64_t sink = out.payload_sum;
  (void)sink;
  return "";
}

/// Both ways; the first broken invariant, or "".
inline std::string run(const std::uint8_t* in, std::size_t size) {
  if (std::string e = run_segment(in, size); !e.empty()) return "segment: " + e;
  if (std::string e = run_ring(in, size); !e.empty()) return "ring: " + e;
  return "";
}

}  // namespace tern::fuzz::shm
