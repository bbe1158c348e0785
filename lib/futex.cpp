// Raw futex wait/wake on a 32-bit atomic: private futexes (this process only), and shared
// ones for a word in memory mapped by several processes (tern/shm.hpp).
#include <linux/futex.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>

#include <tern/mailbox.hpp>

namespace tern::detail {

static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t));

void futex_wait(std::atomic<std::uint32_t>& word, std::uint32_t expected) noexcept {
  // Returns on wake, on EAGAIN (value already changed) and on EINTR: callers re-check.
  syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAIT_PRIVATE, expected,
          nullptr, nullptr, 0);
}

void futex_wake_one(std::atomic<std::uint32_t>& word) noexcept {
  syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAKE_PRIVATE, 1, nullptr,
          nullptr, 0);
}

void futex_wake_all(std::atomic<std::uint32_t>& word) noexcept {
  syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAKE_PRIVATE, 0x7fffffff,
          nullptr, nullptr, 0);
}

void futex_wait_shared(std::atomic<std::uint32_t>& word, std::uint32_t expected,
                       std::uint32_t timeout_us) noexcept {
  timespec ts{static_cast<time_t>(timeout_us / 1000000), static_cast<long>(timeout_us % 1000000) * 1000};
  syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAIT, expected,
          timeout_us ? &ts : nullptr, nullptr, 0);
}

void futex_wake_shared(std::atomic<std::uint32_t>& word) noexcept {
  syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAKE, 0x7fffffff, nullptr,
          nullptr, 0);
}

void fd_wake(int fd) noexcept {
  // EAGAIN (counter saturated) still leaves the fd readable, which is all a wake needs.
  (void)eventfd_write(fd, 1);
}

}  // namespace tern::detail
