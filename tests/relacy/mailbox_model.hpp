// Relacy model of tern::detail::Mailbox (include/tern/mailbox.hpp): the two lanes, the
// priority hint, park/notify on the futex word, and the Group's "scheduled" flag.
// Transcribed like ring_model.hpp: real member names, and every `// =` line is a line of
// the real file (checked by tests/scripts/test_relacy_mirror.py).
//
// The futex is Relacy's model of FUTEX_WAIT/FUTEX_WAKE: a wait returns at once when the
// word no longer holds the expected value (compare and sleep are one step), it does not
// wake spuriously here (see futex_wait), and a thread left waiting is a deadlock (or,
// when another thread spins waiting for it, a livelock). Relacy's
// futex word is an atomic<int>; the real one is a std::atomic<std::uint32_t>.
//
// Seeded bugs:
//   TERN_RL_BUG_NO_RECHECK         begin_park parks without re-checking the lanes
//   TERN_RL_BUG_RELEASE_PUBLISH    (ring_model.hpp) a producer publishes with release even
//                                  though the consumer may park: the Dekker pair with the
//                                  sleep flag loses its seq_cst
//   TERN_RL_BUG_NO_TURN_RECHECK    finish_turn clears "scheduled" without looking for work
//                                  that arrived during the turn
//   TERN_RL_BUG_NO_SECOND_LOOK     priority_front takes the hint down without looking at
//                                  the lane again
#pragma once
#include "ring_model.hpp"

namespace tern_model {

enum class Notify { none, futex, group };
enum class MailboxKind { mpsc, spsc };

/// FUTEX_WAIT as Relacy's rl_futex models it (a full fence, then compare and sleep as one
/// step), except that it never wakes spuriously: the real one may (EINTR) and every caller
/// re-checks, but liveness must not depend on it, and a model whose sleepers may wake at
/// any time hides every lost wake-up.
inline void futex_wait(rl::atomic<int>& word, int expected) {
  rl::context& c = rl::ctx();
  c.sched();
  c.atomic_thread_fence_seq_cst();
  int v;
  {
    rl::preemption_disabler pd(c);
    v = word.load(rl::mo_acquire, $);
  }
  if (v != expected) return;
  word.wait(c, false, false, $);
}
inline void futex_wake_one(rl::atomic<int>& word) {
  rl::rl_futex(&word, rl::RL_FUTEX_WAKE, 1, nullptr, nullptr, 0, $);
}

/// N: normal-lane capacity; P: priority-lane capacity. `ready` stands for Group::ready.
template <unsigned N, unsigned P>
class Mailbox {
 public:
  using ReadyFn = void (*)(void* group, void* actor);

  void configure(MailboxKind kind, Notify notify, ReadyFn ready = nullptr, void* group = nullptr,
                 void* owner = nullptr) {
    normal_.init(kind == MailboxKind::spsc);  // runtime-api 002e4c5
    priority_.init();
    ro_.kind = kind;
    ro_.notify = notify;
    ro_.ready = ready;
    ro_.group = group;
    ro_.owner = owner;
    sleep_.word.store(0, memory_order_relaxed);
    sleep_.scheduled.store(false, memory_order_relaxed);
    sleep_.priority_hint.store(0, memory_order_relaxed);
  }

  // mirrors include/tern/mailbox.hpp
  /// The pool path (messages above the inline limit) is not modelled: `word` is the
  /// record's size, `put` fills it (the real put also constructs the payload).
  template <class Fill>
  PushStatus push(std::uint32_t word, Fill&& put, bool high_priority) {
    const bool sc = ro_.notify != Notify::none;  // =
    const PushStatus st =  // =
        high_priority ? priority_.push_mpsc(word, put, sc) : push_normal(word, put, sc);  // =
    if (high_priority && st == PushStatus::ok) [[unlikely]]  // =
      (void)sleep_.priority_hint.exchange(1, memory_order_release);  // =
    if (st == PushStatus::ok && sc) notify();  // =
    return st;  // =
  }

  // mirrors include/tern/mailbox.hpp (check_single_producer is not modelled)
  template <class Put>
  PushStatus push_normal(std::uint32_t word, Put& put, bool sc) {
    if (ro_.kind == MailboxKind::spsc) {  // =
      return normal_.push_spsc(word, put, sc);  // =
    }
    return normal_.push_mpsc(word, put, sc);  // =
  }

  // mirrors include/tern/mailbox.hpp
  Record* front(std::uint32_t& w) {
    if (sleep_.priority_hint.load(memory_order_acquire)) [[unlikely]] {  // =
      if (Record* s = priority_front(w)) {  // =
        from_priority_ = true;  // until pop()
        return s;  // =
      }
    }
    return normal_.front(w);  // =
  }
  void pop(std::uint32_t w) {  // (the real one also frees the record's pool block, if any)
    if (from_priority_) [[unlikely]] {  // =
      priority_.pop(w);  // =
      priority_popped_ = true;  // =
      from_priority_ = false;  // =
    } else {  // =
      normal_.pop(w);  // =
    }
  }
  void release() {
    normal_.release();  // =
    if (priority_popped_) [[unlikely]] {  // =
      priority_.release();  // =
      priority_popped_ = false;  // =
    }
  }
  bool empty_sc() const { return normal_.empty_sc() && priority_.empty_sc(); }  // =
  bool drained() const { return normal_.drained() && priority_.drained(); }  // =
  void close() {
    normal_.close();  // =
    priority_.close();  // =
  }

  std::uint64_t depth() const { return normal_.depth() + priority_.depth(); }  // =

  // ---- parking ----
  // mirrors include/tern/mailbox.hpp
  template <class Cancel>
  void park(Cancel&& cancel) {
    if (!begin_park(static_cast<Cancel&&>(cancel))) return;  // =
    futex_wait(sleep_.word, 1);  // =
    end_park();  // =
  }
  template <class Cancel>
  bool begin_park(Cancel&& cancel) {
    sleep_.word.store(1, memory_order_seq_cst);  // =
#ifdef TERN_RL_BUG_NO_RECHECK
    if (cancel()) {  // seeded bug: the lanes are not looked at again
#else
    if (!empty_sc_hinted() || cancel()) {  // =
#endif
      sleep_.word.store(0, memory_order_relaxed);  // =
      return false;  // =
    }
    return true;  // =
  }
  void end_park() { sleep_.word.store(0, memory_order_relaxed); }  // =
  void wake() {
    if (sleep_.word.exchange(0, memory_order_seq_cst) == 1) wake_parked();  // =
  }

  // ---- group scheduling ----
  // mirrors include/tern/mailbox.hpp
  bool finish_turn() {
    sleep_.scheduled.store(false, memory_order_seq_cst);  // =
#ifdef TERN_RL_BUG_NO_TURN_RECHECK
    return false;  // seeded bug: work that arrived during the turn is not looked for
#endif
    if (empty_sc_hinted()) return false;  // =
    return !sleep_.scheduled.exchange(true, memory_order_seq_cst);  // =
  }
  bool try_mark_scheduled() {
    return !sleep_.scheduled.load(memory_order_seq_cst) &&  // =
           !sleep_.scheduled.exchange(true, memory_order_seq_cst);  // =
  }

 private:
  // mirrors include/tern/mailbox.hpp
  void notify() {
    if (ro_.notify == Notify::futex) {  // =
      if (sleep_.word.load(memory_order_seq_cst) &&  // =
          sleep_.word.exchange(0, memory_order_seq_cst) == 1)  // =
        wake_parked();  // =
    } else if (try_mark_scheduled()) {  // =
      ro_.ready(ro_.group, ro_.owner);  // =
    }
  }
  void wake_parked() { futex_wake_one(sleep_.word); }  // the eventfd path: see docs
  bool empty_sc_hinted() {
    if (!priority_.empty_sc()) {  // =
      sleep_.priority_hint.store(1, memory_order_relaxed);  // =
      return false;  // =
    }
    return normal_.empty_sc();  // =
  }
  Record* priority_front(std::uint32_t& w) {
    if (Record* s = priority_.front(w)) return s;  // =
    sleep_.priority_hint.exchange(0, memory_order_seq_cst);  // =
#ifdef TERN_RL_BUG_NO_SECOND_LOOK
    return nullptr;  // seeded bug
#else
    Record* s = priority_.front(w);  // =
#ifndef TERN_RL_BUG_NO_REHINT  // seeded bug: the hint stays down after the second look
    if (s) sleep_.priority_hint.fetch_or(1, memory_order_relaxed);  // =
#endif
    return s;  // =
#endif
  }

  struct ReadMostly {
    MailboxKind kind = MailboxKind::mpsc;
    Notify notify = Notify::none;
    void* owner = nullptr;
    ReadyFn ready = nullptr;
    void* group = nullptr;
  };
  struct Sleep {
    rl::atomic<int> word;
    rl::atomic<bool> scheduled;
    rl::atomic<std::uint32_t> priority_hint;
  };
  ReadMostly ro_;
  Ring<N * 32> normal_;  // N, P: capacity in 32-byte records (MailboxConfig::capacity)
  Ring<P * 32> priority_;
  Sleep sleep_;
  bool from_priority_ = false;
  bool priority_popped_ = false;
};

}  // namespace tern_model
