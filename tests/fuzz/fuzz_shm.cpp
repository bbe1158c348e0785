// libFuzzer target: one input is a shared-memory segment and, read another way, one ring
// with a scribbling writer (shm_harness.hpp says how both are read and what is checked).
// A broken invariant aborts, which libFuzzer reports as a crash and saves the input; ASan
// reports any byte read or written outside the segment or the ring.
//
//   scripts/fuzz --target shm [--seconds N]      build (clang, -Dfuzzing=true) and run on the corpus
//   build-fuzz/tests/fuzz/fuzz_shm CRASH_FILE     replay one input
#include <cstdio>
#include <cstdlib>

#include "shm_harness.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (std::string e = tern::fuzz::shm::run(data, size); !e.empty()) {
    std::fprintf(stderr, "fuzz_shm: %s\n", e.c_str());
    std::abort();
  }
  return 0;
}
