// Tuning knobs in one place (moodycamel's traits idea). Values that the build chooses come
// from meson_options.txt through tern/build_config.hpp.
#pragma once
#include <cstddef>
#include <cstdint>

#include <tern/build_config.hpp>

namespace tern {

/// Wake strategy of a consumer whose mailbox is empty.
/// spin: busy-poll (lowest latency, burns a core); futex: spin a bounded while, then park on a
/// futex (producers make a syscall only when it is parked); yield: sched_yield() between polls.
enum class Wake : std::uint8_t { spin, futex, yield };

/// Which ring backs an actor's normal lane. mpsc accepts any number of producer threads;
/// spsc is faster but accepts exactly one producer thread (a second one aborts with a message).
enum class MailboxKind : std::uint8_t { mpsc, spsc };

/// Fixed cache-line size (house style: not hardware_destructive_interference_size).
inline constexpr std::size_t kCacheLine = 64;

/// One mailbox slot: a 48-byte header plus the message constructed in place. Two cache lines.
inline constexpr std::size_t kSlotBytes = 128;
inline constexpr std::size_t kSlotHeaderBytes = 48;
/// Largest message that fits in a slot (and in a FastReply). Larger types fail to compile.
inline constexpr std::size_t kMaxMessageBytes = kSlotBytes - kSlotHeaderBytes;
/// Strictest alignment a message may ask for.
inline constexpr std::size_t kMaxMessageAlign = 16;

struct Tuning {
  /// Default wake strategy (meson option default_wake).
  static constexpr Wake default_wake = TERN_DEFAULT_WAKE;
  /// Default normal-lane capacity in messages (meson option mailbox_capacity).
  static constexpr std::uint32_t default_capacity = TERN_DEFAULT_MAILBOX_CAPACITY;
  /// Capacity of the high-priority lane.
  static constexpr std::uint32_t priority_capacity = 256;
  /// Messages an actor handles per batch before it looks at its stop flag again (and, in a
  /// Group, before it yields the worker to the next ready actor).
  static constexpr std::uint32_t batch = 64;
  /// Polls of an empty mailbox before a futex-mode consumer parks. About 20 us here: long
  /// enough to catch a reply in a request/response pair, short enough not to hog a shared core.
  static constexpr std::uint32_t futex_spin = 2000;
  /// Pause-loop rounds a blocking send spins on a full mailbox before it starts to yield.
  static constexpr std::uint32_t send_spin = 256;
  /// Longest sleep between retries of a blocking send on a full mailbox (microseconds).
  static constexpr std::uint32_t send_max_sleep_us = 100;
};

}  // namespace tern
