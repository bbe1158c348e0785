// The launcher: applies a ThreadConfig to the calling thread and verifies it took effect.
// The one place that touches affinity, scheduling policy, memory locking and isolated cores.
#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <alloca.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <string>

#include <tern/thread_config.hpp>

namespace tern {

namespace {

const char* policy_name(SchedPolicy p) {
  switch (p) {
    case SchedPolicy::other: return "SCHED_OTHER";
    case SchedPolicy::fifo: return "SCHED_FIFO";
    case SchedPolicy::rr: return "SCHED_RR";
  }
  return "?";
}

int policy_value(SchedPolicy p) {
  switch (p) {
    case SchedPolicy::fifo: return SCHED_FIFO;
    case SchedPolicy::rr: return SCHED_RR;
    default: return SCHED_OTHER;
  }
}

std::string cpu_list_text(const std::vector<int>& cpus) {
  std::string s;
  for (int c : cpus) {
    if (!s.empty()) s += ',';
    s += std::to_string(c);
  }
  return s;
}

void prefault_stack(std::uint32_t kb) {
  // why volatile: the compiler must not drop writes to a buffer nobody reads.
  volatile unsigned char* p = static_cast<unsigned char*>(alloca(std::size_t{kb} * 1024));
  for (std::size_t i = 0; i < std::size_t{kb} * 1024; i += 4096) p[i] = 0;
}

}  // namespace

std::vector<int> parse_cpu_list(const std::string& text) {
  std::vector<int> out;
  std::size_t i = 0;
  auto fail = [&]() -> std::invalid_argument {
    return std::invalid_argument("bad CPU list '" + text + "': expected e.g. 0-3,5");
  };
  auto number = [&]() {
    if (i >= text.size() || !std::isdigit(static_cast<unsigned char>(text[i]))) throw fail();
    long v = 0;
    while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
      v = v * 10 + (text[i++] - '0');
      if (v > 1 << 20) throw fail();
    }
    return static_cast<int>(v);
  };
  std::string t = text;
  while (!t.empty() && (t.back() == '\n' || t.back() == ' ')) t.pop_back();
  if (t.empty()) return out;
  while (i < t.size()) {
    const int a = number();
    int b = a;
    if (i < t.size() && t[i] == '-') {
      ++i;
      b = number();
      if (b < a) throw fail();
    }
    for (int c = a; c <= b; ++c) out.push_back(c);
    if (i < t.size()) {
      if (t[i] != ',') throw fail();
      ++i;
    }
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

ThreadReport apply_thread_config(const ThreadConfig& cfg, const std::string& who) {
  ThreadReport rep;
  auto problem = [&](std::string msg) {
    rep.ok = false;
    rep.problems.push_back(who + ": " + std::move(msg));
  };

  const std::string name = (cfg.name.empty() ? who : cfg.name).substr(0, 15);
  if (int rc = pthread_setname_np(pthread_self(), name.c_str()); rc != 0)
    problem("thread name '" + name + "' refused: " + std::strerror(rc));

  if (cfg.lock_memory) {
    static std::once_flag once;
    static int mlock_errno = 0;
    std::call_once(once, [] {
      if (mlockall(MCL_CURRENT | MCL_FUTURE) != 0) mlock_errno = errno;
    });
    if (mlock_errno)
      problem(std::string("mlockall refused: ") + std::strerror(mlock_errno) +
              " (raise RLIMIT_MEMLOCK: ulimit -l unlimited, or run with CAP_IPC_LOCK)");
  }

  if (!cfg.cpus.empty()) {
    const long ncpu = sysconf(_SC_NPROCESSORS_CONF);
    cpu_set_t set;
    CPU_ZERO(&set);
    bool bad = false;
    for (int c : cfg.cpus) {
      if (c < 0 || c >= ncpu || c >= CPU_SETSIZE) {
        problem("CPU " + std::to_string(c) + " does not exist (this machine has CPUs 0-" +
                std::to_string(ncpu - 1) + ")");
        bad = true;
      } else {
        CPU_SET(c, &set);
      }
    }
    if (!bad) {
      if (int rc = pthread_setaffinity_np(pthread_self(), sizeof(set), &set); rc != 0)
        problem("affinity to CPUs " + cpu_list_text(cfg.cpus) + " refused: " + std::strerror(rc));
    }
  }

  if (cfg.policy != SchedPolicy::other || cfg.priority != 0) {
    sched_param sp{};
    sp.sched_priority = cfg.policy == SchedPolicy::other ? 0 : cfg.priority;
    const int pol = policy_value(cfg.policy);
    const int lo = sched_get_priority_min(pol), hi = sched_get_priority_max(pol);
    if (sp.sched_priority < lo || sp.sched_priority > hi) {
      problem(std::string(policy_name(cfg.policy)) + " priority " + std::to_string(cfg.priority) +
              " is out of range " + std::to_string(lo) + ".." + std::to_string(hi));
    } else if (int rc = pthread_setschedparam(pthread_self(), pol, &sp); rc != 0) {
      problem(std::string(policy_name(cfg.policy)) + " priority " + std::to_string(cfg.priority) +
              " refused: " + std::strerror(rc) +
              (rc == EPERM ? " (needs CAP_SYS_NICE or RLIMIT_RTPRIO >= the priority)" : ""));
    }
  }

  if (cfg.prefault_stack_kb) prefault_stack(cfg.prefault_stack_kb);

  // Verify: read back what the kernel actually holds.
  cpu_set_t now;
  CPU_ZERO(&now);
  if (pthread_getaffinity_np(pthread_self(), sizeof(now), &now) == 0) {
    for (int c = 0; c < CPU_SETSIZE; ++c)
      if (CPU_ISSET(c, &now)) rep.cpus.push_back(c);
  }
  sched_param sp{};
  pthread_getschedparam(pthread_self(), &rep.policy, &sp);
  rep.priority = sp.sched_priority;
  if (rep.ok) {
    if (!cfg.cpus.empty()) {
      std::vector<int> want = cfg.cpus;
      std::sort(want.begin(), want.end());
      want.erase(std::unique(want.begin(), want.end()), want.end());
      if (want != rep.cpus)
        problem("affinity reads back as CPUs " + cpu_list_text(rep.cpus) + ", asked " +
                cpu_list_text(want));
    }
    if (cfg.policy != SchedPolicy::other &&
        (rep.policy != policy_value(cfg.policy) || rep.priority != cfg.priority))
      problem(std::string("policy reads back as ") + std::to_string(rep.policy) + "/" +
              std::to_string(rep.priority) + ", asked " + policy_name(cfg.policy) + "/" +
              std::to_string(cfg.priority));
  }
  return rep;
}

}  // namespace tern
