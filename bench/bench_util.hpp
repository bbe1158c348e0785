// Shared by the latency harnesses: option parsing, pinning, clocks, the percentile table and
// the JSON report. Every harness runs its baseline in the same process on the same CPUs.
#pragma once
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <tern/histogram.hpp>
#include <tern/thread_config.hpp>

namespace bench {

inline std::uint64_t now_ns() noexcept {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

inline void pin(int cpu) {
  if (cpu < 0) return;
  cpu_set_t s;
  CPU_ZERO(&s);
  CPU_SET(cpu, &s);
  if (int rc = pthread_setaffinity_np(pthread_self(), sizeof s, &s); rc != 0)
    std::fprintf(stderr, "warning: cannot pin to CPU %d (error %d)\n", cpu, rc);
}

/// Undoes pin(): the calling thread may run on every online CPU again.
inline void unpin() {
  cpu_set_t s;
  CPU_ZERO(&s);
  const long n = sysconf(_SC_NPROCESSORS_ONLN);
  for (long c = 0; c < n && c < CPU_SETSIZE; ++c) CPU_SET(static_cast<int>(c), &s);
  (void)pthread_setaffinity_np(pthread_self(), sizeof s, &s);
}

inline void relax() noexcept { __builtin_ia32_pause(); }

/// --key value options with defaults, and --flag options (named in `flags`, no value);
/// unknown options are an error naming them.
class Args {
 public:
  Args(int argc, char** argv, std::map<std::string, std::string> defaults, const char* usage,
       std::set<std::string> flags = {})
      : v_(std::move(defaults)), flags_(std::move(flags)) {
    for (int i = 1; i < argc; ++i) {
      std::string a = argv[i];
      if (a == "--help" || a == "-h") {
        std::printf("%s", usage);
        std::exit(0);
      }
      const std::string k = a.rfind("--", 0) == 0 ? a.substr(2) : std::string();
      if (flags_.count(k)) {
        set_.insert(k);
        continue;
      }
      if (k.empty() || !v_.count(k)) fail("unknown option '" + a + "'", usage);
      if (i + 1 >= argc) fail("option '" + a + "' needs a value", usage);
      v_[k] = argv[++i];
    }
  }
  const std::string& str(const std::string& k) const { return v_.at(k); }
  /// Was --k given? (k must be one of the flags)
  bool flag(const std::string& k) const {
    if (!flags_.count(k)) throw std::logic_error("bench::Args: '" + k + "' is not a flag");
    return set_.count(k) != 0;
  }
  std::uint64_t u64(const std::string& k) const {
    const std::string& s = v_.at(k);
    char* end = nullptr;
    const unsigned long long x = std::strtoull(s.c_str(), &end, 10);
    if (s.empty() || *end) fail("--" + k + " wants a whole number, got '" + s + "'", nullptr);
    return x;
  }
  std::vector<int> cpus(const std::string& k) const {
    try {
      return tern::parse_cpu_list(v_.at(k));
    } catch (const std::exception& e) {
      fail("--" + k + ": " + e.what(), nullptr);
    }
    return {};
  }
  [[noreturn]] static void fail(const std::string& msg, const char* usage) {
    std::fprintf(stderr, "error: %s\n%s", msg.c_str(), usage ? usage : "");
    std::exit(2);
  }

 private:
  std::map<std::string, std::string> v_;
  std::set<std::string> flags_, set_;
};

struct Row {
  std::string label;
  tern::Histogram h;
};

inline void print_table(const char* what, const std::vector<Row>& rows) {
  int w = 28;  // widened for long labels so the columns stay aligned
  for (const Row& r : rows) w = std::max(w, static_cast<int>(r.label.size()));
  std::printf("%-*s %9s %9s %9s %9s %9s %10s   (%s, ns)\n", w, "", "p50", "p90", "p99", "p99.9",
              "max", "count", what);
  for (const Row& r : rows)
    std::printf("%-*s %9llu %9llu %9llu %9llu %9llu %10llu\n", w, r.label.c_str(),
                (unsigned long long)r.h.value_at_percentile(50),
                (unsigned long long)r.h.value_at_percentile(90),
                (unsigned long long)r.h.value_at_percentile(99),
                (unsigned long long)r.h.value_at_percentile(99.9),
                (unsigned long long)r.h.max(), (unsigned long long)r.h.count());
}

/// {"p50_ns":..,"p90_ns":..,...} fields for one histogram, keys prefixed with `prefix`.
inline std::string json_fields(const std::string& prefix, const tern::Histogram& h) {
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "\"%sp50_ns\": %llu, \"%sp90_ns\": %llu, \"%sp99_ns\": %llu, "
                "\"%sp999_ns\": %llu, \"%smax_ns\": %llu, \"%scount\": %llu",
                prefix.c_str(), (unsigned long long)h.value_at_percentile(50), prefix.c_str(),
                (unsigned long long)h.value_at_percentile(90), prefix.c_str(),
                (unsigned long long)h.value_at_percentile(99), prefix.c_str(),
                (unsigned long long)h.value_at_percentile(99.9), prefix.c_str(),
                (unsigned long long)h.max(), prefix.c_str(), (unsigned long long)h.count());
  return buf;
}

inline void write_file(const std::string& path, const std::string& text) {
  if (path.empty()) return;
  std::ofstream f(path);
  if (!f) Args::fail("cannot write '" + path + "'", nullptr);
  f << text;
}


/// Writes `h` as PREFIX + name + ".hgrm", values in microseconds (HdrHistogram's plotters and
/// scripts/bench expect that unit). No-op when prefix is empty.
inline void write_hgrm(const std::string& prefix, const std::string& name, const tern::Histogram& h) {
  if (prefix.empty()) return;
  std::ostringstream os;
  h.write_hgrm(os, 1000.0);
  write_file(prefix + name + ".hgrm", os.str());
}

/// Parses --wake.
inline bool parse_wake(const std::string& s, tern::Wake& w) {
  if (s == "spin") w = tern::Wake::spin;
  else if (s == "futex") w = tern::Wake::futex;
  else if (s == "yield") w = tern::Wake::yield;
  else return false;
  return true;
}

/// JSON string literal (labels only: no control characters expected).
inline std::string jstr(const std::string& s) {
  std::string o = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') o.push_back('\\');
    o.push_back(c);
  }
  return o + "\"";
}

// ---- bare futex (the syscall itself, no user-space spinning) ---------------------------------

inline void futex_wait(std::atomic<std::uint32_t>& w, std::uint32_t expected) noexcept {
  syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&w), FUTEX_WAIT_PRIVATE, expected, nullptr,
          nullptr, 0);
}
inline void futex_wake(std::atomic<std::uint32_t>& w) noexcept {
  syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&w), FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr,
          0);
}

// ---- the classic mailbox: std::deque + std::mutex + std::condition_variable ---------------

template <class T>
class MutexQueue {
 public:
  void push(const T& v) {
    {
      std::lock_guard<std::mutex> lk(mu_);
      q_.push_back(v);
    }
    cv_.notify_one();
  }
  T pop() {
    std::unique_lock<std::mutex> lk(mu_);
    cv_.wait(lk, [&] { return !q_.empty(); });
    T v = q_.front();
    q_.pop_front();
    return v;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<T> q_;
};

/// Open-loop pacing: message i is due at start + i * interval; the sender busy-waits until then
/// (no sleep: a sleep's wake-up jitter would become the sender's, not the system's, latency).
class Pacer {
 public:
  Pacer(std::uint64_t start_ns, std::uint64_t interval_ns) : start_(start_ns), interval_(interval_ns) {}
  /// Waits for message i's send time and returns it (the intended time). If already late,
  /// returns at once: the lateness stays in the sample (that is the open-loop point).
  std::uint64_t wait(std::uint64_t i) const noexcept {
    const std::uint64_t due = start_ + i * interval_;
    while (now_ns() < due) relax();
    return due;
  }

 private:
  std::uint64_t start_, interval_;
};

}  // namespace bench
