// Private: the loops that drain mailboxes. Dedicated actor threads (Manager) and Group
// workers both call into here, so "how a message is handled" lives in one place.
#pragma once
#include <cstdint>

#include <tern/actor.hpp>
#include <tern/thread_config.hpp>

namespace tern::detail {

struct Runtime {
  /// Handles up to `limit` messages; the caller holds `a`'s lock. Returns how many.
  static std::uint32_t drain_locked(Actor& a, std::uint32_t limit) noexcept;
  /// Takes the lock (waiting out a fast_send), drains up to `limit`, releases.
  static std::uint32_t drain(Actor& a, std::uint32_t limit, ThreadCtx* me) noexcept;
  /// Delivers a built-in message (Start/Shutdown) under the lock.
  static void deliver(Actor& a, const MessageInfo& info, const void* msg, ThreadCtx* me) noexcept;
  /// Delivers Start, then marks the actor started (from then on another thread may run its
  /// handlers inline: try_run_inline).
  static void deliver_start(Actor& a, ThreadCtx* me) noexcept;
  /// The body of a dedicated actor thread after its ThreadConfig was applied: Start, the
  /// receive loop with the configured wake strategy, the stop protocol, Shutdown.
  /// `started` (optional) becomes 1, with a futex wake, once Start was handled.
  static void run_loop(Actor& a, Wake wake, std::uint32_t spin_limit,
                       std::atomic<std::uint32_t>* started) noexcept;
  static void count_refused(Actor& a, PushStatus st) noexcept;
  /// True the first time a too_large send to `a` is seen (it is then logged once).
  static bool first_too_large(Actor& a) noexcept {
    return a.refused_too_large_.load(std::memory_order_relaxed) == 1;
  }
  /// Inside a catch block: logs which handler threw what, and counts it.
  static void note_handler_exception(Actor& a, const MessageInfo& info) noexcept;
  /// Stop protocol, phase 1 seen? Acknowledge it (once).
  static void ack_phase(Actor& a) noexcept;
  /// Runs `msg`'s handler right here when `a` is idle (lock free, mailbox empty, not
  /// stopping), as if it had been queued and handled at once; false (nothing done) otherwise.
  /// The gateway's inline dispatch. The caller keeps ownership of `msg`.
  static bool try_run_inline(Actor& a, const MessageInfo& info, const void* msg, ActorRef from,
                             ThreadCtx* me) noexcept;

  // Shared memory (lib/shm.cpp): an exported actor's connections from other processes,
  // polled by its thread beside its mailbox.
  /// Handles up to `limit` messages from the connections (takes the lock when any waits).
  static std::uint32_t shm_drain(Actor& a, ShmInbox& in, std::uint32_t limit, ThreadCtx* me) noexcept;
  /// Stop protocol phase 1: connections refuse new messages (peers' sends return closed).
  static void shm_close(ShmInbox& in) noexcept;
  /// Phase 2: everything committed handled (bounded: 100 ms after shm_close)?
  static bool shm_drained(ShmInbox& in) noexcept;
  /// Futex wake: parks on the export's doorbell, covering the mailbox too.
  static void shm_park(Actor& a, ShmInbox& in, std::atomic<std::uint32_t>& phase,
                       std::uint32_t ph) noexcept;
  static bool shm_begin_park(ShmInbox& in) noexcept;

  static std::atomic<std::uint32_t>& phase(Actor& a) noexcept { return a.phase_; }
  static std::atomic<std::uint32_t>& ack(Actor& a) noexcept { return a.ack_; }
  static void set_owner(Actor& a, std::string name, Manager* m, Group* g) {
    a.name_ = std::move(name);
    a.manager_ = m;
    a.group_ = g;
  }
  static void set_idle_yields(Actor& a, std::uint32_t n) noexcept { a.idle_yields_ = n; }
  static void set_histograms(Actor& a, Histogram* queue, Histogram* handler) noexcept {
    a.queue_hist_ = queue;
    a.handler_hist_ = handler;
    a.mailbox_.set_stamp(queue != nullptr);
  }
};

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

}  // namespace tern::detail
