// The shared-memory reader against hostile segment contents (issue 11, "Faults"): a local
// process that may write a segment writes anything into it, at any time.
#include <doctest/doctest.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <vector>

#include <tern/detail/shm_layout.hpp>

namespace sh = tern::detail::shm;

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
