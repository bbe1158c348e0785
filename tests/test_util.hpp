// Helpers shared by the threaded tests: every wait is bounded.
#pragma once
#include <chrono>
#include <thread>

namespace tern::test {

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
