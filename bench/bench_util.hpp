// Shared by the latency harnesses: option parsing, pinning, clocks, the percentile table and
// the JSON report. Every harness runs its baseline in the same process on the same CPUs.
#pragma once
#include <pthread.h>
#include <sched.h>
#include <time.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
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

inline void relax() noexcept { __builtin_ia32_pause(); }

/// --key value / --flag options with defaults; unknown options are an error naming them.
class Args {
 public:
  Args(int argc, char** argv, std::map<std::string, std::string> defaults, const char* usage)
      : v_(std::move(defaults)) {
    for (int i = 1; i < argc; ++i) {
      std::string a = argv[i];
      if (a == "--help" || a == "-h") {
        std::printf("%s", usage);
        std::exit(0);
      }
      if (a.rfind("--", 0) != 0 || !v_.count(a.substr(2))) fail("unknown option '" + a + "'", usage);
      if (i + 1 >= argc) fail("option '" + a + "' needs a value", usage);
      v_[a.substr(2)] = argv[++i];
    }
  }
  const std::string& str(const std::string& k) const { return v_.at(k); }
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
};

struct Row {
  std::string label;
  tern::Histogram h;
};

inline void print_table(const char* what, const std::vector<Row>& rows) {
  std::printf("%-28s %9s %9s %9s %9s %9s %10s   (%s, ns)\n", "", "p50", "p90", "p99", "p99.9",
              "max", "count", what);
  for (const Row& r : rows)
    std::printf("%-28s %9llu %9llu %9llu %9llu %9llu %10llu\n", r.label.c_str(),
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

}  // namespace bench
