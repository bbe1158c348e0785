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

/// A mailbox record: a 16-byte header, an optional 16-byte extension (remote target, send
/// time), then the message constructed in place, rounded up to 16 bytes
/// (docs/concurrency.md, "Records"). A message of up to 16 bytes takes 32 bytes of ring.
inline constexpr std::size_t kRecordUnit = 16;
inline constexpr std::size_t kRecordHeaderBytes = 16;
/// Hard limit on a message type's size, checked at compile time (each mailbox has its own,
/// smaller, MailboxConfig::max_message_bytes, checked at set-up and on send).
inline constexpr std::size_t kMaxMessageBytes = std::size_t{1} << 20;
/// Largest reply a fast_send caller can receive (FastReply holds it in place).
inline constexpr std::size_t kFastReplyBytes = 80;
/// Strictest alignment a message may ask for.
inline constexpr std::size_t kMaxMessageAlign = 16;

struct Tuning {
  /// Default wake strategy (meson option default_wake).
  static constexpr Wake default_wake = TERN_DEFAULT_WAKE;
  /// Default normal-lane capacity in messages (meson option mailbox_capacity).
  static constexpr std::uint32_t default_capacity = TERN_DEFAULT_MAILBOX_CAPACITY;
  /// Capacity of the high-priority lane, in small (<= 16-byte) messages.
  static constexpr std::uint32_t priority_capacity = 256;
  /// Default MailboxConfig::max_message_bytes: the largest message a mailbox accepts.
  static constexpr std::uint32_t default_max_message_bytes = 4096;
  /// Default MailboxConfig::inline_bytes: larger messages go to the mailbox's pool.
  static constexpr std::uint32_t default_inline_bytes = 256;
  /// Default MailboxConfig::pool_blocks: blocks per pool size class.
  static constexpr std::uint32_t default_pool_blocks = 16;
  /// Process-wide bounds of the type and actor index tables (records carry indices, not
  /// pointers). Registering more aborts at set-up with a message.
  static constexpr std::uint32_t max_message_types = 16384;
  static constexpr std::uint32_t max_actors = 65536;
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
