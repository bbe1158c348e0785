// The timer service: a heap of deadlines on one thread (not a thread per timer). Firing
// sends Timeout{id, due_ns, fired_ns} to the owner; a periodic timer is re-armed in place
// (due += period, no allocation). A full mailbox delays the Timeout by 50 us and retries:
// a tick is late rather than lost. A closed mailbox ends the timer.
#include "timer.hpp"

#include <sys/prctl.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <stdexcept>

#include <tern/manager.hpp>

namespace tern::detail {

TimerService::TimerService() {
  slots_.reserve(64);
  heap_.reserve(64);
  thread_ = std::thread([this] { run(); });
}

TimerService::~TimerService() { stop(); }

void TimerService::stop() {
  {
    std::lock_guard lk(mu_);
    if (stop_) return;
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::uint64_t TimerService::start(Actor* owner, std::uint64_t after_us, std::uint64_t period_us) {
  if (after_us > 86'400'000'000ull || period_us > 86'400'000'000ull)
    throw std::invalid_argument("tern: timer of " + std::to_string(std::max(after_us, period_us)) +
                                " us is longer than a day");
  const std::uint64_t due = now_ns() + after_us * 1000;
  std::uint64_t id;
  bool earliest;
  {
    std::lock_guard lk(mu_);
    std::uint32_t s;
    if (!free_.empty()) {
      s = free_.back();
      free_.pop_back();
    } else {
      s = static_cast<std::uint32_t>(slots_.size());
      slots_.emplace_back();
    }
    Slot& sl = slots_[s];
    sl.owner = owner;
    sl.period_ns = period_us * 1000;
    sl.live = true;
    heap_.push_back(HeapEntry{due, s, sl.generation});
    std::push_heap(heap_.begin(), heap_.end(), std::greater<>{});
    earliest = heap_.front().slot == s && heap_.front().generation == sl.generation;
    id = make_id(s, sl.generation);
  }
  if (earliest) cv_.notify_one();
  return id;
}

bool TimerService::cancel(std::uint64_t id) noexcept {
  const auto s = static_cast<std::uint32_t>((id & 0xFFFFFFFFu) - 1);
  const auto gen = static_cast<std::uint32_t>(id >> 32);
  std::lock_guard lk(mu_);
  if (s >= slots_.size() || !slots_[s].live || slots_[s].generation != gen) return false;
  Slot& sl = slots_[s];
  sl.live = false;
  ++sl.generation;  // the heap entry goes stale and is skipped when it surfaces
  free_.push_back(s);
  return true;
}

void TimerService::run() {
  prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);  // why: default 50 us slack would make every tick late
  pthread_setname_np(pthread_self(), "tern-timers");
  std::unique_lock lk(mu_);
  while (!stop_) {
    if (heap_.empty()) {
      cv_.wait(lk);
      continue;
    }
    const HeapEntry top = heap_.front();
    const std::uint64_t now = now_ns();
    if (top.due_ns > now) {
      cv_.wait_for(lk, std::chrono::nanoseconds(top.due_ns - now));
      continue;
    }
    std::pop_heap(heap_.begin(), heap_.end(), std::greater<>{});
    heap_.pop_back();
    Slot& sl = slots_[top.slot];
    if (!sl.live || sl.generation != top.generation) continue;  // cancelled
    const Timeout msg{make_id(top.slot, top.generation), top.due_ns, now};
    // The priority lane: it takes any producer whatever the normal lane's kind (an spsc
    // mailbox's one producer is its sender actor, not this thread), and a due timer is
    // handled before normal messages already waiting.
    const SendResult r = ActorRef(sl.owner).try_send_priority(msg, ActorRef());
    std::uint64_t next_due = 0;
    if (r == SendResult::ok) {
      ++fired_;
      if (sl.period_ns) next_due = top.due_ns + sl.period_ns;
    } else if (r == SendResult::full) {
      next_due = now + 50'000;  // late, not lost
    }
    if (next_due) {
      heap_.push_back(HeapEntry{next_due, top.slot, top.generation});
      std::push_heap(heap_.begin(), heap_.end(), std::greater<>{});
    } else {
      sl.live = false;
      ++sl.generation;
      free_.push_back(top.slot);
    }
  }
}

}  // namespace tern::detail
