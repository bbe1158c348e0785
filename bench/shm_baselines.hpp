// The two-process harness of bench/shm_pingpong: a child process that cannot outlive the
// benchmark (PR_SET_PDEATHSIG, a deadline, SIGKILL and waitpid), a control block both
// processes share, shared-mapping files that are always unlinked (also on error and on
// SIGINT/SIGTERM), and futex calls on a word in a shared mapping. A mode that measures two
// processes (the baselines here, and the tern rows) is built from these pieces.
#pragma once
#include <fcntl.h>
#include <linux/futex.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <list>
#include <new>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "bench_util.hpp"

namespace shmb {

constexpr std::size_t kCacheLine = 64;

// Cross-process atomics must be lock-free (a lock-based atomic's lock is not in the mapping).
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);
static_assert(std::atomic<std::uint32_t>::is_always_lock_free);

/// One mode's run failed (set-up error, child error, timeout): the mode is reported as failed
/// with this text, and the other modes still run.
struct Failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

inline std::string errno_text(int e) { return std::strerror(e); }

// ---- what the benchmark made, undone also from a signal handler ------------------------------
// Fixed tables of plain values (no allocation, no locks), so that the SIGINT/SIGTERM handler
// may read them. Only the parent's main thread writes them.
namespace cleanup {
constexpr int kSlots = 16;
inline char g_paths[kSlots][256];
inline volatile sig_atomic_t g_path_used[kSlots];
inline volatile pid_t g_pids[kSlots];
inline volatile sig_atomic_t g_pid_sig[kSlots];  ///< what a signal sends it (RouDi: SIGTERM)
inline volatile sig_atomic_t g_in_child = 0;

/// Remembers `path` for unlinking on a signal; returns its slot (or -1 if the table is full,
/// then only the owner's destructor unlinks it).
inline int add_path(const std::string& path) {
  if (path.size() >= sizeof g_paths[0]) return -1;
  for (int i = 0; i < kSlots; ++i)
    if (!g_path_used[i]) {
      std::memcpy(g_paths[i], path.c_str(), path.size() + 1);
      g_path_used[i] = 1;
      return i;
    }
  return -1;
}
inline void drop_path(int slot) {
  if (slot >= 0) g_path_used[slot] = 0;
}
inline int add_pid(pid_t pid, int sig = SIGKILL) {
  for (int i = 0; i < kSlots; ++i)
    if (g_pids[i] == 0) {
      g_pid_sig[i] = sig;
      g_pids[i] = pid;
      return i;
    }
  return -1;
}
inline void drop_pid(int slot) {
  if (slot >= 0) g_pids[slot] = 0;
}

/// SIGINT/SIGTERM/SIGHUP in the parent: kill the children (SIGKILL; RouDi SIGTERM, so that it
/// removes its own files), unlink the files, then die of the
/// same signal. Async-signal-safe calls only.
inline void on_signal(int sig) {
  if (!g_in_child) {
    for (int i = 0; i < kSlots; ++i)
      if (g_pids[i] > 0) kill(g_pids[i], g_pid_sig[i]);
    for (int i = 0; i < kSlots; ++i)
      if (g_path_used[i]) unlink(g_paths[i]);
    for (int i = 0; i < kSlots; ++i)  // directories last, once the files in them are gone
      if (g_path_used[i]) rmdir(g_paths[i]);
  }
  signal(sig, SIG_DFL);
  raise(sig);
}
inline void install() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  for (int s : {SIGINT, SIGTERM, SIGHUP}) sigaction(s, &sa, nullptr);
}
}  // namespace cleanup

/// A path the benchmark created (a shared-mapping file, an ipc socket): unlinked by unlink(),
/// by the destructor, or by the signal handler, whichever comes first.
class TempPath {
 public:
  TempPath() = default;
  explicit TempPath(std::string path) : path_(std::move(path)), slot_(cleanup::add_path(path_)) {}
  TempPath(const TempPath&) = delete;
  TempPath& operator=(const TempPath&) = delete;
  ~TempPath() { unlink(); }
  const std::string& path() const { return path_; }
  /// Removes the file now (a missing file is fine: ZeroMQ removes its ipc socket itself).
  void unlink() {
    if (path_.empty()) return;
    (void)::unlink(path_.c_str());
    cleanup::drop_path(slot_);
    slot_ = -1;
    path_.clear();
  }

 private:
  std::string path_;
  int slot_ = -1;
};

/// A unique name in `dir` for this process: DIR/tern-shmbench-PID-N.SUFFIX.
inline std::string unique_path(const std::string& dir, const char* suffix) {
  static unsigned n = 0;
  return dir + "/tern-shmbench-" + std::to_string(getpid()) + "-" + std::to_string(n++) + suffix;
}

/// A new directory (mode 0700) for one run's tern segments, DIR/tern-shmbench-PID-N.d, and the
/// segment files expected in it: all removed by the destructor or the signal handler (a
/// child killed mid-run leaves its node's segment behind; this removes it).
class TempDir {
 public:
  TempDir(const std::string& parent, std::vector<std::string> files) {
    const std::string d = unique_path(parent, ".d");
    if (mkdir(d.c_str(), 0700) != 0) throw Failure("cannot create '" + d + "': " + errno_text(errno));
    dir_.emplace_back(d);  // registered first: the handler removes the files before it
    for (const std::string& f : files) files_.emplace_back(d + "/" + f);
    path_ = d;
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    files_.clear();  // unlinks them
    (void)rmdir(path_.c_str());
    dir_.front().unlink();  // only forgets it (unlink of a directory fails)
  }
  const std::string& path() const { return path_; }

 private:
  std::list<TempPath> dir_, files_;
  std::string path_;
};

/// A MAP_SHARED mapping of a whole file.
class Mapping {
 public:
  Mapping() = default;
  Mapping(void* p, std::size_t n) : p_(p), n_(n) {}
  Mapping(Mapping&& o) noexcept : p_(std::exchange(o.p_, nullptr)), n_(o.n_) {}
  Mapping& operator=(Mapping&& o) noexcept {
    std::swap(p_, o.p_);
    std::swap(n_, o.n_);
    return *this;
  }
  ~Mapping() {
    if (p_) munmap(p_, n_);
  }
  void* data() const { return p_; }
  std::size_t size() const { return n_; }

  /// Maps the existing file `path` (the child's own mapping of the parent's file).
  static Mapping open(const std::string& path, std::size_t bytes) {
    const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) throw Failure("cannot open '" + path + "': " + errno_text(errno));
    return map_fd(fd, path, bytes);
  }
  static Mapping map_fd(int fd, const std::string& path, std::size_t bytes) {
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    const int e = errno;
    close(fd);
    if (p == MAP_FAILED) throw Failure("cannot map '" + path + "': " + errno_text(e));
    return Mapping(p, bytes);
  }

 private:
  void* p_ = nullptr;
  std::size_t n_ = 0;
};

/// The measured shared mapping: a new file in `dir` (mode 0600, O_EXCL, zero-filled),
/// mapped MAP_SHARED by the parent; the child maps it again by name (Mapping::open). The
/// parent unlinks it as soon as the child has mapped it, and on every error path.
class ShmFile {
 public:
  ShmFile(const std::string& dir, std::size_t bytes) : file_(unique_path(dir, ".shm")) {
    const int fd = ::open(file_.path().c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) throw Failure("cannot create '" + file_.path() + "': " + errno_text(errno));
    if (ftruncate(fd, static_cast<off_t>(bytes)) != 0) {
      const int e = errno;
      close(fd);
      throw Failure("cannot size '" + file_.path() + "' to " + std::to_string(bytes) +
                    " bytes: " + errno_text(e));
    }
    map_ = Mapping::map_fd(fd, file_.path(), bytes);
    path_ = file_.path();
  }
  void* data() const { return map_.data(); }
  /// The file's name (still valid after unlink(), for messages).
  const std::string& path() const { return path_; }
  void unlink() { file_.unlink(); }

 private:
  TempPath file_;
  Mapping map_;
  std::string path_;
};

// ---- futex on a word in a shared mapping ------------------------------------------------------
// Not FUTEX_PRIVATE: the kernel keys a shared futex by the page and offset, so two processes
// mapping the same file wait and wake on the same word.

/// Sleeps while `w` holds `expected`, at most `timeout_ns` (0: no limit). Returns at once if it
/// does not; may return spuriously. True when it returned because the time ran out.
inline bool futex_wait_shared(std::atomic<std::uint32_t>& w, std::uint32_t expected,
                              std::uint64_t timeout_ns) noexcept {
  timespec ts{static_cast<time_t>(timeout_ns / 1'000'000'000u),
              static_cast<long>(timeout_ns % 1'000'000'000u)};
  return syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&w), FUTEX_WAIT, expected,
                 timeout_ns ? &ts : nullptr, nullptr, 0) != 0 &&
         errno == ETIMEDOUT;
}
inline void futex_wake_shared(std::atomic<std::uint32_t>& w) noexcept {
  syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&w), FUTEX_WAKE, 1, nullptr, nullptr, 0);
}

// ---- the control block and the child ---------------------------------------------------------

/// Shared by parent and child (an anonymous MAP_SHARED mapping made before fork()): how far
/// the child got, its results and its error. Control only; never on a measured path.
struct Ctl {
  alignas(kCacheLine) std::atomic<std::uint32_t> stage{0};  ///< the child's progress (mode's own steps)
  alignas(kCacheLine) std::atomic<std::uint32_t> done{0};   ///< the child has finished its work
  std::uint64_t end_ns = 0;   ///< the child's clock when done (CLOCK_MONOTONIC is system-wide)
  /// The parent's word to a child that serves until told (the tern round trips): finish.
  alignas(kCacheLine) std::atomic<std::uint32_t> release{0};
  char endpoint[256] = {};    ///< an address the child bound (ZeroMQ tcp port)
  char error[512] = {};       ///< the child's error text, when it exits with status 1
};

/// Test hook (--inject): every child hangs, or exits with status 3, right after the fork.
enum class Inject { none, hang, crash };

/// Where and how long a two-process run may take.
struct ProcOptions {
  std::string name;          ///< the mode, for messages
  int cpu_parent = -1;       ///< -1: not pinned
  int cpu_child = -1;
  double timeout_s = 60;     ///< from fork() to the child's exit
  Inject inject = Inject::none;
};

/// Forks a child that runs `body(Ctl&)` pinned to cpu_child and exits; the parent's thread
/// is pinned to cpu_parent until destruction. The child dies with the parent
/// (PR_SET_PDEATHSIG), and the destructor kills (SIGKILL) and reaps a child still running,
/// so no child outlives the run. Parent side: main thread only.
class TwoProcs {
 public:
  template <class Body>
  TwoProcs(const ProcOptions& o, Body&& body) : o_(o) {
    void* m = mmap(nullptr, sizeof(Ctl), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) throw Failure(o.name + ": cannot map the control block: " + errno_text(errno));
    ctl_ = new (m) Ctl;
    deadline_ = bench::now_ns() + static_cast<std::uint64_t>(o.timeout_s * 1e9);
    const pid_t parent = getpid();
    std::fflush(nullptr);  // why: the child must not flush a copy of the parent's buffers
    const pid_t pid = fork();
    if (pid < 0) {
      munmap(ctl_, sizeof(Ctl));
      throw Failure(o.name + ": fork failed: " + errno_text(errno));
    }
    if (pid == 0) run_child(parent, body);  // never returns
    pid_ = pid;
    pid_slot_ = cleanup::add_pid(pid);
    bench::pin(o.cpu_parent);
  }
  TwoProcs(const TwoProcs&) = delete;
  TwoProcs& operator=(const TwoProcs&) = delete;
  ~TwoProcs() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      int st = 0;
      while (waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
      }
    }
    cleanup::drop_pid(pid_slot_);
    if (o_.cpu_parent >= 0) bench::unpin();
    munmap(ctl_, sizeof(Ctl));
  }

  Ctl& ctl() const { return *ctl_; }
  pid_t child() const { return pid_ > 0 ? pid_ : reaped_pid_; }

  /// Throws Failure when the deadline has passed (the destructor then kills the child) or the
  /// child has exited with an error; a child that exited cleanly while the parent still
  /// waits for it fails on the next check.
  void check() {
    if (bench::now_ns() > deadline_)
      throw Failure(o_.name + ": child " + std::to_string(child()) + " did not finish within " +
                    trim(o_.timeout_s) + " s (--timeout); killed");
    if (pid_ > 0) {
      int st = 0;
      const pid_t r = waitpid(pid_, &st, WNOHANG);
      if (r == pid_) {
        reaped_pid_ = pid_;
        pid_ = -1;
        status_ = st;
        if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0)) throw Failure(child_failure());
        return;  // exited cleanly: its last writes are visible now; the caller re-checks
      }
    } else if (exited_early_++ > 0) {
      throw Failure(o_.name + ": child " + std::to_string(reaped_pid_) +
                    " exited before the run finished");
    }
  }
  /// In a spin loop: a check() every 16384 calls (a counter and a branch otherwise).
  void poll() {
    if ((++polls_ & 0x3fff) == 0) check();
  }
  /// Waits (sleeping 20 us between looks) until the child's stage reaches `s`.
  void wait_stage(std::uint32_t s) {
    while (ctl_->stage.load(std::memory_order_acquire) < s) nap();
  }
  /// Waits (sleeping 20 us between looks) until the child has set done.
  void wait_done() {
    while (ctl_->done.load(std::memory_order_acquire) == 0) nap();
  }
  /// Waits for the child to exit; throws Failure unless it exited with status 0.
  void join() {
    while (pid_ > 0) {
      check();
      if (pid_ > 0) sleep_ns(100'000);
    }
    if (!(WIFEXITED(status_) && WEXITSTATUS(status_) == 0)) throw Failure(child_failure());
  }

 private:
  template <class Body>
  [[noreturn]] void run_child(pid_t parent, Body& body) noexcept {
    cleanup::g_in_child = 1;  // the parent's files and children are not ours to clean up
    for (int s : {SIGINT, SIGTERM, SIGHUP}) signal(s, SIG_DFL);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(1);  // the parent died before prctl took effect
    if (o_.inject == Inject::hang)
      for (;;) pause();
    if (o_.inject == Inject::crash) _exit(3);
    bench::pin(o_.cpu_child);
    try {
      body(*ctl_);
    } catch (const std::exception& e) {
      std::snprintf(ctl_->error, sizeof ctl_->error, "%s", e.what());
      _exit(1);
    } catch (...) {
      std::snprintf(ctl_->error, sizeof ctl_->error, "unknown exception");
      _exit(1);
    }
    _exit(0);  // why _exit: no atexit handlers or destructors of the parent's copied state
  }
  void nap() {
    check();
    sleep_ns(20'000);
  }
  static void sleep_ns(long ns) {
    timespec ts{0, ns};
    nanosleep(&ts, nullptr);
  }
  static std::string trim(double s) {
    char b[32];
    std::snprintf(b, sizeof b, "%g", s);
    return b;
  }
  std::string child_failure() const {
    const std::string who = o_.name + ": child " + std::to_string(reaped_pid_);
    if (WIFSIGNALED(status_))
      return who + " killed by signal " + std::to_string(WTERMSIG(status_)) + " (" +
             strsignal(WTERMSIG(status_)) + ")";
    std::string e(ctl_->error, strnlen(ctl_->error, sizeof ctl_->error));
    return who + " exited with status " + std::to_string(WEXITSTATUS(status_)) +
           (e.empty() ? "" : ": " + e);
  }

  ProcOptions o_;
  Ctl* ctl_ = nullptr;
  pid_t pid_ = -1, reaped_pid_ = -1;
  int pid_slot_ = -1, status_ = 0, exited_early_ = 0;
  std::uint64_t deadline_ = 0, polls_ = 0;
};

// ---- what a mode gets and gives ----------------------------------------------------------------

/// Everything a mode needs; one per run.
struct Ctx {
  std::uint64_t iterations = 0, warmup = 0, zmq_iterations = 0, zmq_warmup = 0, messages = 0;
  std::uint64_t ring_bytes = 0;
  std::uint32_t futex_spin = 0;
  int cpu_a = -1, cpu_b = -1;  ///< -1: not pinned
  double timeout_s = 60;
  std::string shm_dir, ipc_dir;
  Inject inject = Inject::none;

  ProcOptions procs(const std::string& name) const { return {name, cpu_a, cpu_b, timeout_s, inject}; }
};

/// One round of one mode: latency histograms by key prefix ("floor_" -> floor_p50_ns ...) and
/// rates by full key ("floor_stream_16_msgs_per_s"), each with its table label.
struct RoundOut {
  struct Lat {
    std::string prefix, label;
    tern::Histogram h;
  };
  struct Rate {
    std::string key, label;
    double msgs_per_s;
  };
  std::vector<Lat> lat;
  std::vector<Rate> rate;
};

}  // namespace shmb
