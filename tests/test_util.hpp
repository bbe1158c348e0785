// Helpers shared by the threaded tests: every wait is bounded.
#pragma once
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <thread>

namespace tern::test {

/// Loop counts divided by TERN_TEST_SCALE (sanitizer builds set it: they run 5-20x slower).
inline std::uint64_t scaled(std::uint64_t n) {
  const char* s = std::getenv("TERN_TEST_SCALE");
  const long k = s ? std::atol(s) : 1;
  return k > 1 ? (n / static_cast<std::uint64_t>(k) > 0 ? n / static_cast<std::uint64_t>(k) : 1) : n;
}

/// Polls `pred` until true or `timeout` passes; returns pred's last value.
template <class Pred>
bool wait_until(Pred&& pred, std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return pred();
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  return true;
}

}  // namespace tern::test
