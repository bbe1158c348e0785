// Shared pieces of the Relacy models: the consumer's batch drain (lib/runtime.cpp
// Runtime::drain_locked), message bookkeeping (FIFO per producer, no loss, no duplicate),
// and the runner that gives each model a bounded, deterministic search.
#pragma once
#include <relacy/relacy.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace tern_model {

/// A message names its producer and its number from that producer: p * 100 + i.
inline int message(int producer, int i) { return producer * 100 + i; }
/// What destroy_message leaves in a slot (written by the consumer after handling).
inline constexpr int kDestroyed = -1;

/// Consumer-side bookkeeping (one thread at a time): FIFO per producer and no duplicate,
/// checked on every message; no loss is checked by the test's after().
template <int Producers>
struct Received {
  int next[Producers] = {};
  int total = 0;
  void take(int msg) {
    RL_ASSERT(msg >= 0);  // a destroyed or never-written slot
    const int p = msg / 100, i = msg % 100;
    RL_ASSERT(p >= 0 && p < Producers);
    RL_ASSERT(i == next[p]);  // FIFO per producer, nothing skipped, nothing twice
    next[p] = i + 1;
    ++total;
  }
};

/// Runtime::drain_locked for a model ring or mailbox: up to `limit` messages (read the
/// payload, destroy it, pop), then one release() for the batch. Returns how many.
template <class Queue, class Rx>
int drain(Queue& q, Rx& rx, int limit) {
  int n = 0;
  while (n < limit) {
    std::uint32_t w = 0;
    auto* s = q.front(w);
    if (!s) break;
    rx.take(s->payload($));
    s->payload($) = kDestroyed;  // destroy_message
    q.pop(w);
    ++n;
  }
  q.release();
  return n;
}

/// How a model is searched. Random: `iterations` seeded schedules (deterministic: Relacy
/// seeds schedule i with i). Bound: every schedule with at most `bound` preemptions.
struct Search {
  rl::scheduler_type_e type = rl::sched_random;
  rl::iteration_t iterations = 100000;
  unsigned bound = 2;
};

/// Runs one model; prints Relacy's verdict (and the failing history). true: passed.
template <class Test>
bool check(const char* name, Search s) {
  rl::test_params p;
  p.search_type = s.type;
  p.iteration_count = s.iterations;
  p.context_bound = s.bound;
  p.execution_depth_limit = 5000;
  std::printf("== %s (%s, %s %llu)\n", name, rl::format(s.type),
              s.type == rl::sched_bound ? "bound" : "iterations",
              static_cast<unsigned long long>(s.type == rl::sched_bound ? s.bound : s.iterations));
  std::fflush(stdout);
  const bool ok = rl::simulate<Test>(p);
  std::printf("%s: %s\n", name, ok ? "ok" : "FAILED");
  std::fflush(stdout);
  return ok;
}

/// TERN_RL_SCALE (environment) divides random iteration counts, for a quick look.
inline rl::iteration_t scaled(rl::iteration_t n) {
  if (const char* s = std::getenv("TERN_RL_SCALE")) {
    const long k = std::strtol(s, nullptr, 10);
    if (k > 1) n = n / static_cast<rl::iteration_t>(k) + 1;
  }
  return n;
}

}  // namespace tern_model
