// The launcher: applies a ThreadConfig to the calling thread and verifies it took effect.
// The one place that touches affinity, scheduling policy, memory locking and isolated cores.
#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <alloca.h>

#include <cerrno>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <string>

#include <tern/thread_config.hpp>

#include "cpu_topology.hpp"

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

void prefault_stack(std::uint32_t kb) {
  // why volatile: the compiler must not drop writes to a buffer nobody reads.
  volatile unsigned char* p = static_cast<unsigned char*>(alloca(std::size_t{kb} * 1024));
  for (std::size_t i = 0; i < std::size_t{kb} * 1024; i += 4096) p[i] = 0;
}

}  // namespace

std::vector<int> parse_cpu_list(const std::string& text) { return detail::parse_cpu_list(text); }

namespace {
struct Isolation {
  std::mutex mu;
  std::string root;
  std::unique_ptr<detail::IsolatedCoreAllocator> alloc;
  detail::CpuTopology topo;
  bool warned = false;
};
Isolation& isolation() {
  static Isolation iso;
  return iso;
}
}  // namespace

void set_sysfs_root(std::string root) {
  Isolation& iso = isolation();
  std::lock_guard lk(iso.mu);
  iso.root = std::move(root);
  iso.alloc.reset();
  iso.warned = false;
}

void release_isolated_core(int cpu) {
  Isolation& iso = isolation();
  std::lock_guard lk(iso.mu);
  if (iso.alloc) iso.alloc->release(cpu);
}

/// An isolated core for `who`, or -1 with a warning (once per process) naming what is missing.
static int take_isolated_core(bool allow_smt, const std::string& who, const std::vector<int>& fallback) {
  Isolation& iso = isolation();
  std::lock_guard lk(iso.mu);
  if (!iso.alloc) {
    if (iso.root.empty()) {
      const char* env = std::getenv("TERN_SYSFS_ROOT");
      iso.root = env && *env ? env : "/sys";
    }
    iso.topo = detail::CpuTopology::read(iso.root);
    iso.alloc = std::make_unique<detail::IsolatedCoreAllocator>(iso.topo);
  }
  if (auto cpu = iso.alloc->take(allow_smt)) return *cpu;
  if (!iso.warned) {
    iso.warned = true;
    std::string why = iso.topo.isolated.empty()
                          ? "the kernel isolates no CPUs (" + iso.root +
                                "/devices/system/cpu/isolated is empty): add isolcpus=, nohz_full= "
                                "and rcu_nocbs= to the kernel command line (scripts/cpu-isolation "
                                "check shows the exact line)"
                          : "every isolated CPU (" + detail::format_cpu_list(iso.topo.isolated) +
                                ") is taken" + (allow_smt ? "" : " or an SMT sibling of a taken one");
    std::fprintf(stderr, "tern: warning: no isolated core for %s: %s; using %s\n", who.c_str(),
                 why.c_str(),
                 fallback.empty() ? "any CPU" : ("CPUs " + detail::format_cpu_list(fallback)).c_str());
  }
  return -1;
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

  const char* mlock_env = std::getenv("TERN_MLOCK");
  if (cfg.lock_memory || (mlock_env && std::string(mlock_env) == "1")) {
    static std::once_flag once;
    static int mlock_errno = 0;
    std::call_once(once, [] {
      if (mlockall(MCL_CURRENT | MCL_FUTURE) != 0) mlock_errno = errno;
    });
    if (mlock_errno)
      problem(std::string("mlockall refused: ") + std::strerror(mlock_errno) +
              " (raise RLIMIT_MEMLOCK: ulimit -l unlimited, or run with CAP_IPC_LOCK)");
  }

  std::vector<int> cpus = cfg.cpus;
  if (cfg.isolated) {
    rep.isolated_cpu = take_isolated_core(cfg.allow_smt_sibling, who, cfg.cpus);
    if (rep.isolated_cpu >= 0) cpus = {rep.isolated_cpu};
  }
  if (!cpus.empty()) {
    const long ncpu = sysconf(_SC_NPROCESSORS_CONF);
    cpu_set_t set;
    CPU_ZERO(&set);
    bool bad = false;
    for (int c : cpus) {
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
        problem("affinity to CPUs " + detail::format_cpu_list(cpus) + " refused: " + std::strerror(rc));
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
    if (!cpus.empty()) {
      std::vector<int> want = cpus;
      std::sort(want.begin(), want.end());
      want.erase(std::unique(want.begin(), want.end()), want.end());
      if (want != rep.cpus)
        problem("affinity reads back as CPUs " + detail::format_cpu_list(rep.cpus) + ", asked " +
                detail::format_cpu_list(want));
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
