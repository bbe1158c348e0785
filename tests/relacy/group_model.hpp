// Relacy model of tern::Group's scheduler (lib/group.cpp): the bounded MPMC run queue
// (Vyukov), push_ready, the worker loop (pop, lock, drain a turn, finish_turn, unlock,
// requeue), idle workers parking on `epoch_`, and Group::stop. Plus the actor exclusion
// lock (include/tern/actor.hpp). Transcribed like ring_model.hpp (`// =` lines are checked
// against the real files by tests/scripts/test_relacy_mirror.py); Relacy's futex word is
// an atomic<int> where the real `epoch_` is a std::atomic<std::uint32_t>.
//
// Seeded bug:
//   TERN_RL_BUG_NO_RUNQ_RECHECK  an idle worker parks after announcing itself without
//                                looking at the run queue again
#pragma once
#include "harness.hpp"
#include "mailbox_model.hpp"

namespace tern_model {

inline void futex_wake_all(rl::atomic<int>& word) {
  rl::rl_futex(&word, rl::RL_FUTEX_WAKE, 1 << 30, nullptr, nullptr, 0, $);
}

struct ThreadCtx {};

/// An actor: its mailbox, its exclusion lock, and what its handler has seen.
struct Actor {
  Mailbox<2, 2> mb;
  rl::atomic<ThreadCtx*> owner_;
  rl::atomic<int> queued;  // model only: entries in the run queue (never more than one)
  Received<1> rx;  // handler state: written only under the lock
  Mailbox<2, 2>& mailbox() { return mb; }

  // mirrors include/tern/actor.hpp
  bool try_lock(ThreadCtx* me) {
    ThreadCtx* expected = nullptr;  // =
    return owner_.compare_exchange_strong(expected, me, memory_order_acquire,  // =
                                          memory_order_relaxed);  // =
  }
  void unlock() { owner_.store(nullptr, memory_order_release); }  // =
};

/// N: run-queue capacity (the real one is round_capacity(2 * actors + 2)).
template <unsigned N>
class RunQueue {
 public:
  void init() {
    for (std::size_t i = 0; i < N; ++i) {
      cells_[i].seq.store(i, memory_order_relaxed);
      cells_[i].actor($) = nullptr;
    }
    tail_.store(0, memory_order_relaxed);
    head_.store(0, memory_order_relaxed);
  }
  // mirrors lib/group.cpp
  void push(Actor* a) {
    std::size_t pos = tail_.load(memory_order_relaxed);  // =
    for (;;) {
      Cell& c = cells_[pos & mask_];  // =
      const std::size_t seq = c.seq.load(memory_order_acquire);  // =
      const auto dif = static_cast<std::intptr_t>(seq) - static_cast<std::intptr_t>(pos);  // =
      if (dif == 0) {  // =
        if (tail_.compare_exchange_weak(pos, pos + 1, memory_order_relaxed)) {  // =
          c.actor($) = a;
          c.seq.store(pos + 1, memory_order_seq_cst);  // =
          return;
        }
      } else if (dif < 0) {  // =
        rl::yield(1, $);  // sched_yield(): a popper one lap ago has not freed the cell yet
        pos = tail_.load(memory_order_relaxed);  // =
      } else {
        pos = tail_.load(memory_order_relaxed);  // =
      }
    }
  }
  Actor* pop() {
    std::size_t pos = head_.load(memory_order_relaxed);  // =
    for (;;) {
      Cell& c = cells_[pos & mask_];  // =
      const std::size_t seq = c.seq.load(memory_order_acquire);  // =
      const auto dif = static_cast<std::intptr_t>(seq) - static_cast<std::intptr_t>(pos + 1);  // =
      if (dif == 0) {  // =
        if (head_.compare_exchange_weak(pos, pos + 1, memory_order_relaxed)) {  // =
          Actor* a = c.actor($);
          c.seq.store(pos + mask_ + 1, memory_order_release);  // =
          return a;  // =
        }
      } else if (dif < 0) {  // =
        return nullptr;  // =
      } else {
        pos = head_.load(memory_order_relaxed);  // =
      }
    }
  }
  bool empty_sc() const {
    const std::size_t pos = head_.load(memory_order_seq_cst);  // =
    return cells_[pos & mask_].seq.load(memory_order_seq_cst) != pos + 1;  // =
  }

 private:
  struct Cell {
    rl::atomic<std::size_t> seq;
    rl::var<Actor*> actor;  // plain in the real code: published by seq
  };
  rl::atomic<std::size_t> tail_;
  rl::atomic<std::size_t> head_;
  const std::size_t mask_ = N - 1;
  Cell cells_[N];
};

/// The Group: run queue, idle-worker parking, stop. A actors, batch messages per turn.
template <unsigned A, unsigned Q>
struct Group {
  Actor actors_[A];
  RunQueue<Q> rq;
  RunQueue<Q>* runq_ = &rq;
  rl::atomic<int> epoch_;
  rl::atomic<std::uint32_t> sleepers_;
  rl::atomic<std::uint32_t> phase_;
  std::uint32_t batch = 1;

  void init() {
    rq.init();
    epoch_.store(0, memory_order_relaxed);
    sleepers_.store(0, memory_order_relaxed);
    phase_.store(0, memory_order_relaxed);
    for (Actor& a : actors_) {
      a.owner_.store(nullptr, memory_order_relaxed);
      a.queued.store(0, memory_order_relaxed);
      a.mb.configure(MailboxKind::mpsc, Notify::group, &Group::ready, this, &a);
    }
  }
  static void ready(void* group, void* actor) {
    static_cast<Group*>(group)->push_ready(static_cast<Actor*>(actor));
  }

  // mirrors lib/group.cpp
  void push_ready(Actor* a) {
    RL_ASSERT(a->queued.fetch_add(1, memory_order_relaxed) == 0);  // model only
    runq_->push(a);  // =
    if (sleepers_.load(memory_order_seq_cst) != 0) {  // =
      epoch_.fetch_add(1, memory_order_seq_cst);  // =
      futex_wake_one(epoch_);
    }
  }

  /// Group::worker's loop, Wake::futex with spin_limit 0 (parks as soon as it is idle).
  // mirrors lib/group.cpp
  void worker(ThreadCtx* me) {
    for (;;) {
      if (Actor* a = runq_->pop()) {  // =
        a->queued.fetch_sub(1, memory_order_relaxed);  // model only
        while (!a->try_lock(me)) rl::yield(1, $);  // cpu_relax(): a fast_send holds it
        drain(a->mb, a->rx, static_cast<int>(batch));  // Runtime::drain_locked(*a, cfg_.batch)
        const bool again = a->mailbox().finish_turn();  // =
        a->unlock();  // =
        if (again) push_ready(a);  // =
        continue;  // =
      }
      if (phase_.load(memory_order_acquire) != 0) break;  // =
      const int e = epoch_.load(memory_order_seq_cst);
      sleepers_.fetch_add(1, memory_order_seq_cst);  // =
#ifdef TERN_RL_BUG_NO_RUNQ_RECHECK
      if (phase_.load(memory_order_seq_cst) == 0)  // seeded bug
#else
      if (runq_->empty_sc() && phase_.load(memory_order_seq_cst) == 0)  // =
#endif
        futex_wait(epoch_, e);
      sleepers_.fetch_sub(1, memory_order_seq_cst);  // =
    }
  }

  /// Group::stop, after close_mailboxes(): wait for every mailbox to be empty, then stop
  /// the workers (their join is the end of the test).
  // mirrors lib/group.cpp
  void stop() {
    for (Actor& a : actors_) a.mailbox().close();
    for (Actor& a : actors_)
      while (a.mailbox().depth() != 0) rl::yield(1, $);  // sleep_for(50 us)
    phase_.store(1, memory_order_seq_cst);  // =
    epoch_.fetch_add(1, memory_order_seq_cst);  // =
    futex_wake_all(epoch_);
  }
};

}  // namespace tern_model
