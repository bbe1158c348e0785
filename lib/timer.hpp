// Private: the timer service. One thread per Manager keeps a min-heap of deadlines and sends
// Timeout messages through the owners' mailboxes, so handlers stay single-threaded.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#include <tern/actor.hpp>

namespace tern::detail {

class TimerService {
 public:
  TimerService();
  ~TimerService();
  /// Any thread. Returns the timer id (never 0). Allocates only when more timers are live at
  /// once than ever before (slots and heap keep their capacity).
  std::uint64_t start(Actor* owner, std::uint64_t after_us, std::uint64_t period_us);
  /// Any thread. False if the id is not live (fired one-shot, cancelled, or unknown).
  bool cancel(std::uint64_t id) noexcept;
  /// Stops the thread; pending timers are dropped. Idempotent.
  void stop();
  std::uint64_t fired() const noexcept { return fired_; }

 private:
  struct Slot {
    Actor* owner = nullptr;
    std::uint64_t period_ns = 0;
    std::uint32_t generation = 1;
    bool live = false;
  };
  struct HeapEntry {
    std::uint64_t due_ns;
    std::uint32_t slot;
    std::uint32_t generation;
    bool operator>(const HeapEntry& o) const noexcept { return due_ns > o.due_ns; }
  };
  void run();
  std::uint64_t make_id(std::uint32_t slot, std::uint32_t gen) const noexcept {
    return (std::uint64_t{gen} << 32) | (slot + 1);
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Slot> slots_;
  std::vector<std::uint32_t> free_;
  std::vector<HeapEntry> heap_;  // std::push_heap/pop_heap with greater<>: earliest on top
  bool stop_ = false;
  std::uint64_t fired_ = 0;
  std::thread thread_;
};

}  // namespace tern::detail
