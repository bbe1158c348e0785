// The shared-memory reader against hostile segment contents: every seed of the shm fuzz
// corpus (tests/fuzz/corpus_shm/) and every input the fuzzer found (tests/fuzz/
// regressions_shm/) through the fuzz target's own harness (tests/fuzz/shm_harness.hpp), plus
// the seeds rebuilt here from their recipes and a segment made by a real ShmNode, so every CI
// run replays them in the release, ASan and TSan builds.
//
// The seed files are written by this suite: TERN_WRITE_SHM_CORPUS=DIR build/tests/shm_fuzz_test
// writes every recipe below into DIR (copy them into tests/fuzz/corpus_shm/).
#include <doctest/doctest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

#include <tern/detail/shm_layout.hpp>
#include <tern/manager.hpp>
#include <tern/shm.hpp>

#include "fuzz/corpus.hpp"
#include "fuzz/shm_harness.hpp"

namespace fs = std::filesystem;
namespace sh = tern::detail::shm;
using Bytes = std::vector<std::uint8_t>;
using namespace std::chrono_literals;

namespace {

using tern::fuzz::files_in;
using tern::fuzz::fuzz_dir;

/// With TERN_WRITE_SHM_CORPUS set, writes a seed file there.
void keep_seed(const std::string& name, const Bytes& b) {
  const char* dir = std::getenv("TERN_WRITE_SHM_CORPUS");
  if (!dir) return;
  fs::create_directories(dir);
  std::ofstream(fs::path(dir) / name, std::ios::binary)
      .write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

// ---- ring inputs (format: tests/fuzz/shm_harness.hpp, (b)) ----------------------------------

/// A ring input: 64 << size_sel bytes, types of 8, 16 and 24 bytes, `batch` records per release.
struct RingInput {
  std::uint32_t bytes;
  Bytes head = Bytes(tern::fuzz::shm::kRingInputHeader, 0);
  Bytes ring;
  Bytes scribbles;
  RingInput(unsigned size_sel, unsigned batch) : bytes(64u << size_sel), ring(bytes, 0) {
    head[0] = static_cast<std::uint8_t>(size_sel);
    head[17] = 3;
    head[18] = 1;  // 8 bytes
    head[19] = 2;  // 16
    head[20] = 3;  // 24
    head[26] = static_cast<std::uint8_t>(batch - 1);
  }
  void tail(std::uint64_t t) { std::memcpy(head.data() + 1, &t, 8); }
  /// A record of type `code` with `payload` bytes at `off`; returns the next offset.
  std::uint32_t record(std::uint32_t off, std::uint32_t code, std::uint32_t payload, std::uint32_t flags = 0) {
    const std::uint32_t w = tern::detail::record_bytes(payload, false) | flags;
    std::memcpy(ring.data() + off, &w, 4);
    std::memcpy(ring.data() + off + 4, &code, 4);
    for (std::uint32_t i = 0; i < payload; ++i) ring[off + 16 + i] = static_cast<std::uint8_t>(i + 1);
    return off + (w & ~15u);
  }
  void padding(std::uint32_t off) {
    const std::uint32_t w = (bytes - off) | tern::detail::kRecordPadding;
    std::memcpy(ring.data() + off, &w, 4);
  }
  void scribble(std::uint16_t step, std::uint16_t off, std::uint32_t value) {
    const std::size_t at = scribbles.size();
    scribbles.resize(at + 8);
    std::memcpy(scribbles.data() + at, &step, 2);
    std::memcpy(scribbles.data() + at + 2, &off, 2);
    std::memcpy(scribbles.data() + at + 4, &value, 4);
  }
  Bytes input() const {
    Bytes b = head;
    b.insert(b.end(), ring.begin(), ring.end());
    b.insert(b.end(), scribbles.begin(), scribbles.end());
    return b;
  }
};

std::vector<std::pair<std::string, Bytes>> ring_recipes() {
  std::vector<std::pair<std::string, Bytes>> out;
  {  // valid records of every type, 256-byte ring
    RingInput r(2, 4);
    std::uint32_t off = 0;
    for (std::uint32_t i = 0; i < 6; ++i) off = r.record(off, i % 3, 8 * (i % 3 + 1));
    r.tail(off);
    out.emplace_back("ring-valid-records", r.input());
  }
  {  // records up to the end, padding at the wrap, more records from offset 0
    RingInput r(1, 2);  // 128 bytes
    r.record(0, 2, 24);    // 48 bytes at 0
    r.record(48, 1, 16);   // 32 at 48
    r.padding(80);         // 48 bytes of padding at 80
    r.scribble(3, 0, tern::detail::record_bytes(8, false));  // after the wrap: a record at 0
    out.emplace_back("ring-padding-at-wrap", r.input());
  }
  {  // a type code outside the table: the connection fails there
    RingInput r(2, 8);
    const std::uint32_t off = r.record(0, 0, 8);
    r.record(off, 7, 8);
    out.emplace_back("ring-bad-type-code", r.input());
  }
  {  // a record shorter than its type
    RingInput r(2, 8);
    r.record(0, 2, 8);  // type 2 is 24 bytes
    out.emplace_back("ring-record-shorter-than-type", r.input());
  }
  {  // flags a segment never carries (pooled, ext), a record over half the ring, padding not to the end
    for (const auto& [name, w] : std::vector<std::pair<std::string, std::uint32_t>>{
             {"ring-pooled-flag", 32u | tern::detail::kRecordPooled},
             {"ring-ext-flag", 48u | tern::detail::kRecordExt},
             {"ring-over-half", 160u},
             {"ring-unknown-flag", 32u | 8u},
             {"ring-short-padding", 16u | tern::detail::kRecordPadding}}) {
      RingInput r(2, 8);
      std::memcpy(r.ring.data(), &w, 4);
      out.emplace_back(name, r.input());
    }
  }
  {  // a record running past the end of the array: 112 + 112 bytes, then 64 bytes at 224
    RingInput r(2, 8);
    r.record(112, 0, 96);
    r.record(0, 0, 96);
    const std::uint32_t w = 64;
    std::memcpy(r.ring.data() + 224, &w, 4);
    out.emplace_back("ring-record-past-end", r.input());
  }
  {  // head and tail scribbled far apart (tail behind head, huge distance)
    RingInput r(2, 8);
    r.record(0, 0, 8);
    r.tail(0xfffffffffffffff0ull);
    std::memset(r.head.data() + 9, 0x7f, 8);
    out.emplace_back("ring-scribbled-head-tail", r.input());
  }
  // More than a lap between two release() calls: a scribbler re-arms each 128-byte record of
  // a 256-byte ring right after the reader popped it, and the batch is long. Before the fix
  // release() zeroed next - released bytes from the array's start, past its end.
  {
    RingInput r(2, 64);
    const std::uint32_t w = 128;  // type 0 (8 bytes) in a 128-byte record
    r.record(0, 0, 8);
    std::memcpy(r.ring.data(), &w, 4);
    r.record(128, 0, 8);
    std::memcpy(r.ring.data() + 128, &w, 4);
    for (std::uint16_t step = 2; step < 8; ++step) r.scribble(step, (step % 2) * 128, w);
    out.emplace_back("ring-scribbled-more-than-a-lap", r.input());
  }
  return out;
}

// ---- segment inputs (format: tern/detail/shm_layout.hpp) -----------------------------------

/// A segment with `n_exports` exports, one slot each, 4 KiB normal rings and 4 KiB priority
/// rings, built by hand (no ShmNode): each export takes one 8-byte type.
Bytes hand_segment(std::uint32_t n_exports) {
  sh::Layout l;
  REQUIRE(sh::compute_layout(n_exports, 1, 4096, 4096, l));
  Bytes b(l.total, 0);
  sh::Header h{};
  h.magic = sh::kMagic;
  h.version = sh::kVersion;
  h.header_bytes = sizeof(sh::Header);
  h.total_bytes = l.total;
  h.nonce = 1;
  h.n_exports = n_exports;
  h.slots = 1;
  h.ring_bytes = 4096;
  h.prio_ring_bytes = 4096;
  std::strcpy(h.node, "hand");
  std::memcpy(b.data(), static_cast<const void*>(&h), sizeof h);
  for (std::uint32_t e = 0; e < n_exports; ++e) {
    auto* x = reinterpret_cast<sh::Export*>(b.data() + l.exports) + e;
    std::strcpy(x->name, "actor");
    x->n_types = 1;
    x->max_message_bytes = 1024;
    x->types[0].id = 7;
    x->types[0].size = 8;
    x->types[0].align = 8;
    std::strcpy(x->types[0].name, "T");
    // one record of type 0 in the normal ring, one in the priority ring
    for (const bool prio : {false, true}) {
      unsigned char* d = b.data() + l.data + e * l.slot_data + (prio ? 4096 : 0);
      const std::uint32_t w = tern::detail::record_bytes(8, false);
      std::memcpy(d, &w, 4);
    }
  }
  return b;
}

std::vector<std::pair<std::string, Bytes>> segment_recipes() {
  std::vector<std::pair<std::string, Bytes>> out;
  out.emplace_back("segment-no-exports", hand_segment(0));
  out.emplace_back("segment-two-exports", hand_segment(2));
  Bytes bad = hand_segment(1);
  bad[8] = 2;  // version 2
  out.emplace_back("segment-foreign-version", bad);
  Bytes cut = hand_segment(1);
  cut.resize(cut.size() - 16);  // shorter than its layout
  out.emplace_back("segment-truncated", cut);
  return out;
}

// ---- a segment made by a real node -----------------------------------------------------------

struct Tick {
  static constexpr tern::MessageId message_id = 9300;
  std::uint64_t seq = 0;
};
struct Wide {
  static constexpr tern::MessageId message_id = 9301;
  std::uint64_t seq = 0;
  unsigned char pad[200] = {};
};
class Sink : public tern::Actor {
 public:
  Sink() {
    handle<&Sink::on_tick>();
    handle<&Sink::on_wide>();
  }
  void on_tick(const Tick&) { got.fetch_add(1); }
  void on_wide(const Wide&) { got.fetch_add(1); }
  std::atomic<std::uint64_t> got{0};
};

/// The segment of a node whose exported actor has not started yet, after a peer node sent
/// it `n` messages (alternately Tick and Wide; the priority lane takes every fifth).
Bytes real_segment(int n) {
  const std::string dir = "/dev/shm/tern-shmfuzz-" + std::to_string(getpid());
  fs::create_directories(dir);
  Bytes out;
  {
    tern::Manager m;
    auto* sink = new Sink;
    m.manage("sink", std::unique_ptr<tern::Actor>(sink), {});
    tern::ShmConfig ca{.name = "owner", .dir = dir, .ring_bytes = 4096, .slots = 1};
    tern::ShmConfig cb{.name = "peer", .dir = dir, .ring_bytes = 4096, .slots = 1};
    tern::ShmNode a(ca), b(cb);
    a.export_actor(m.find("sink"));
    a.start();
    const tern::ActorRef to = b.remote("shm://owner/sink", 2000ms);
    for (int i = 0; i < n; ++i) {
      const auto seq = static_cast<std::uint64_t>(i);
      const tern::SendResult r = i % 5 == 4 ? to.try_send_priority(Tick{seq})
                                 : i % 2     ? to.try_send(Wide{seq, {}})
                                             : to.try_send(Tick{seq});
      REQUIRE(r == tern::SendResult::ok);
    }
    out = tern::fuzz::slurp<Bytes>(a.path());
    m.init();  // the actor drains what was sent, then stops before its node goes
    m.end();
  }
  fs::remove_all(dir);
  return out;
}

void replay(const std::string& name, const Bytes& b) {
  CAPTURE(name);
  CHECK(tern::fuzz::shm::run(b.data(), b.size()) == "");
}

}  // namespace

TEST_CASE("shm fuzz: a segment made by a real node passes validate() and the walk finds its records") {
  const Bytes seg = real_segment(12);
  keep_seed("segment-real-node", seg);
  std::uint64_t records = 0;
  CHECK(tern::fuzz::shm::run_segment(seg.data(), seg.size(), &records) == "");
  CHECK(records == 12);
  // the same bytes one short: refused, never walked
  CHECK(tern::fuzz::shm::run_segment(seg.data(), seg.size() - 1, &records) == "");
  CHECK(records == 0);
  sh::Layout l;
  std::string why;
  CHECK_FALSE(sh::validate(seg.data(), seg.size() - 1, l, why));
  CHECK(why.find(std::to_string(seg.size() - 1)) != std::string::npos);
}

TEST_CASE("shm fuzz: the seed recipes keep the reader's invariants, bad records fail the connection") {
  for (const auto& [name, b] : segment_recipes()) {
    keep_seed(name, b);
    replay(name, b);
  }
  std::uint64_t records = 0;
  const Bytes two = hand_segment(2);
  CHECK(tern::fuzz::shm::run_segment(two.data(), two.size(), &records) == "");
  CHECK(records == 4);  // a normal and a priority record per export
  for (const auto& [name, b] : ring_recipes()) {
    keep_seed(name, b);
    replay(name, b);
    bool failed = false;
    CHECK(tern::fuzz::shm::run_ring(b.data(), b.size(), &records, &failed) == "");
    if (name == "ring-valid-records") {
      CHECK(records == 6);
      CHECK_FALSE(failed);
    }
    if (name == "ring-padding-at-wrap") {
      CHECK(records == 3);
      CHECK_FALSE(failed);
    }
    for (const char* bad : {"ring-bad-type-code", "ring-record-shorter-than-type", "ring-pooled-flag",
                            "ring-ext-flag", "ring-over-half", "ring-unknown-flag",
                            "ring-short-padding", "ring-record-past-end"})
      if (name == bad) {
        CAPTURE(name);
        CHECK(failed);
      }
  }
}

TEST_CASE("shm fuzz: release() after more than a lap between releases stays inside the ring") {
  // A scribbler re-arms records behind the reader, so one batch consumes more bytes than the
  // ring holds; release() must zero the array, not run past its end (ASan checks the array).
  std::vector<unsigned char> data(256, 0);  // exactly the ring: ASan sees a byte past it
  sh::RingCtl ctl;
  ctl.tail.store(0);
  ctl.head.store(0);
  ctl.head_cache.store(0);
  sh::RingReader reader(&ctl, data.data(), 256);
  auto arm = [&](std::uint32_t off) { reinterpret_cast<std::atomic<std::uint32_t>*>(data.data() + off)->store(128); };
  arm(0);
  std::uint64_t consumed = 0;
  for (int i = 0; i < 5; ++i) {  // 0, 128, 0, 128, 0: 640 bytes
    bool bad = false;
    std::uint32_t w = 0;
    tern::detail::Record* r = reader.front(w, bad);
    REQUIRE(r);
    REQUIRE_FALSE(bad);
    CHECK(reinterpret_cast<unsigned char*>(r) == data.data() + (consumed % 256));
    reader.pop(w);
    consumed += 128;
    arm(static_cast<std::uint32_t>(consumed % 256));
  }
  reader.release();
  CHECK(ctl.head.load() == 640);
  for (int i = 0; i < 256; ++i) CHECK(data.data()[i] == 0);  // the re-armed word too
}

TEST_CASE("shm fuzz: every seed of the shm corpus and every saved fuzz input is survived") {
  const std::vector<fs::path> seeds = files_in(fuzz_dir() / "corpus_shm");
  REQUIRE(seeds.size() >= 10);
  for (const fs::path& p : seeds) replay(p.filename().string(), tern::fuzz::slurp<Bytes>(p));
  for (const fs::path& p : files_in(fuzz_dir() / "regressions_shm")) replay(p.filename().string(), tern::fuzz::slurp<Bytes>(p));
}

TEST_CASE("shm fuzz: validate() hands back the header it checked; later scribbles do not reach the caller") {
  // ShmNode's attach and directory() take sizes and counts from this copy: a writer that
  // changes n_exports, slots or ring_bytes after validate() returned cannot send them past
  // the segment.
  Bytes seg = hand_segment(2);
  sh::Layout l;
  std::string why;
  sh::Header h;
  REQUIRE(sh::validate(seg.data(), seg.size(), l, h, why));
  sh::Header* live = sh::header(seg.data());
  live->n_exports = 64;
  live->slots = 64;
  live->ring_bytes = 1u << 28;
  CHECK(h.n_exports == 2);
  CHECK(h.slots == 1);
  CHECK(h.ring_bytes == 4096);
  CHECK(h.prio_ring_bytes == 4096);
  CHECK(h.total_bytes == l.total);
  CHECK_FALSE(sh::validate(seg.data(), seg.size(), l, why));  // and the scribbled one is refused
  CHECK(why.find("header says") != std::string::npos);
}
