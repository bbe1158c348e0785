// CPU topology as sysfs reports it, and an allocator that hands out isolated cores.
// Private to lib/: the isolated-core launcher uses it; nothing here is on the hot path.
#pragma once

#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tern::detail {

/// Parses the kernel's CPU list format ("0-3,5,7-8"; "" and "(null)" are empty; surrounding
/// whitespace and a trailing newline are ignored). Returns sorted CPUs without duplicates.
/// Throws std::invalid_argument naming the bad text. Any thread; allocates; no syscall.
[[nodiscard]] std::vector<int> parse_cpu_list(std::string_view text);

/// Formats CPUs the way the kernel does: {0,1,2,3,5} -> "0-3,5"; {} -> "". Input need not be
/// sorted. Any thread; allocates; no syscall.
[[nodiscard]] std::string format_cpu_list(const std::vector<int>& cpus);

/// What /sys/devices/system/cpu says about this machine. Every list holds online CPUs only,
/// sorted.
struct CpuTopology {
    std::vector<int> online;     ///< from cpu/online (or the cpuN directories if unreadable)
    std::vector<int> isolated;   ///< from cpu/isolated (isolcpus=)
    std::vector<int> nohz_full;  ///< from cpu/nohz_full; empty when the kernel lacks it
    /// cpu -> its online SMT siblings, itself included (cpuN/topology/thread_siblings_list).
    std::map<int, std::vector<int>> siblings;
    /// Files that were missing or malformed, each naming the file and its content. Reading
    /// never throws for those: the affected list is left empty (siblings: just the cpu).
    std::vector<std::string> problems;

    /// Reads the tree under sysfs_root (a test fixture or "/sys"). Set-up thread; allocates;
    /// reads files. Throws only std::bad_alloc.
    [[nodiscard]] static CpuTopology read(const std::string& sysfs_root = "/sys");
};

/// Hands each caller its own isolated core: never the same core twice, and never an SMT
/// sibling of a core already handed out unless the caller allows it. Any thread (a mutex
/// guards the state); allocates only in the constructor; no syscall.
class IsolatedCoreAllocator {
public:
    explicit IsolatedCoreAllocator(CpuTopology topology);

    /// Takes the lowest free isolated core. Without allow_smt_sibling a core whose sibling is
    /// taken is skipped; with it, a core with all siblings free is still preferred. Returns
    /// nullopt when none is left.
    [[nodiscard]] std::optional<int> take(bool allow_smt_sibling = false);

    /// Gives back a core from take(). Throws std::invalid_argument naming the cpu when it was
    /// not taken.
    void release(int cpu);

private:
    [[nodiscard]] bool sibling_taken(int cpu) const;

    CpuTopology topology_;
    std::vector<char> taken_;  // indexed by cpu; sized once so take/release never allocate
    std::mutex mutex_;
};

}  // namespace tern::detail
