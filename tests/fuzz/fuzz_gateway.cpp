// libFuzzer target: one input is one inbound frame, handled by Gateway::process_frame
// exactly as if it had arrived on the PULL socket (decode, dispatch into a local actor,
// Reject). The harness (gateway_harness.hpp) checks the invariants after each input; a
// broken one aborts, which libFuzzer reports as a crash and saves the input.
//
//   scripts/fuzz [--seconds N]          build (clang, -Dfuzzing=true) and run on the corpus
//   build-fuzz/tests/fuzz/fuzz_gateway CRASH_FILE     replay one input
#include <cstdio>
#include <cstdlib>

#include "gateway_harness.hpp"

namespace {
tern::fuzz::Harness* harness = nullptr;

void fail(const std::string& what) {
  std::fprintf(stderr, "fuzz_gateway: %s\n", what.c_str());
  std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  harness = new tern::fuzz::Harness();  // why never deleted: libFuzzer exits from anywhere
  if (std::string e = harness->check_serving(); !e.empty()) fail("set-up: " + e);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static std::uint64_t inputs = 0;
  if (std::string e = harness->run(data, size); !e.empty()) fail(e);
  // why not every input: a round trip through the sink costs more than a decode.
  if (++inputs % 512 == 0) {
    if (std::string e = harness->check_serving(); !e.empty()) fail("after this input: " + e);
  }
  return 0;
}
