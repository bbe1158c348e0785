// ThreadConfig: where and how an actor's thread runs. Applied in the actor's own thread
// before it handles Start. The launcher (lib/thread_launch.cpp) is the one place that
// touches affinity, scheduling policy, memory locking and isolated cores.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <tern/config.hpp>

namespace tern {

enum class SchedPolicy : std::uint8_t { other, fifo, rr };

struct ThreadConfig {
  /// CPUs the thread may run on; empty: leave the affinity alone.
  std::vector<int> cpus;
  /// SCHED_OTHER, SCHED_FIFO or SCHED_RR; `priority` is 1..99 for fifo/rr, ignored for other.
  SchedPolicy policy = SchedPolicy::other;
  int priority = 0;
  /// Thread name (at most 15 characters are kept); empty: the actor's name.
  std::string name;
  /// How the actor waits for messages.
  Wake wake = Tuning::default_wake;
  /// futex wake: empty polls (with a pause instruction) before parking ...
  std::uint32_t spin_limit = Tuning::futex_spin;
  /// ... then this many polls with sched_yield() in between, then park.
  std::uint32_t yield_limit = 0;
  /// true: init() throws when the OS refuses any of the above; false: warn on stderr and
  /// go on with what could be applied.
  bool strict = false;

  // ---- the isolated-core launcher ----
  /// Give this thread an isolated core of its own (/sys/devices/system/cpu/isolated),
  /// never one shared with another such thread, never an SMT sibling of one unless
  /// allow_smt_sibling. With none left: warn once and fall back to `cpus`.
  bool isolated = false;
  bool allow_smt_sibling = false;
  /// mlockall(MCL_CURRENT | MCL_FUTURE) before Start (process-wide; done once). Also done
  /// for every thread when the environment has TERN_MLOCK=1 (scripts/launch --mlock).
  bool lock_memory = false;
  /// Touch this many KiB of the thread's stack before Start so it never page-faults later.
  std::uint32_t prefault_stack_kb = 0;
};

/// What applying a ThreadConfig did, verified by reading the thread's state back.
struct ThreadReport {
  bool ok = true;                     ///< everything asked for holds
  std::vector<std::string> problems;  ///< each names the value the OS refused and why
  std::vector<int> cpus;              ///< affinity read back
  int policy = 0;                     ///< SCHED_* read back
  int priority = 0;                   ///< priority read back
  int isolated_cpu = -1;              ///< the isolated core handed out, or -1
};

/// Applies `cfg` to the calling thread; `who` names it in messages. Never throws: problems
/// are returned (the caller decides by cfg.strict). Makes syscalls; set-up only.
ThreadReport apply_thread_config(const ThreadConfig& cfg, const std::string& who);

/// Parses "0-3,5" into {0,1,2,3,5}. Throws std::invalid_argument naming the bad text.
std::vector<int> parse_cpu_list(const std::string& text);

/// Where the launcher reads the CPU topology (isolated CPUs, SMT siblings): "/sys" unless
/// the environment variable TERN_SYSFS_ROOT says otherwise, or this is called (set-up only,
/// before any isolated thread starts; tests point it at fixture trees).
void set_sysfs_root(std::string root);
/// Gives back an isolated core handed out by apply_thread_config (ThreadReport::isolated_cpu).
void release_isolated_core(int cpu);

}  // namespace tern
