#include "cpu_topology.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace tern::detail {
namespace {

// Beyond any kernel's NR_CPUS; stops "0-999999999" from allocating gigabytes.
constexpr int kMaxCpu = 65535;

std::string_view trim(std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
    return s;
}

[[noreturn]] void bad_list(std::string_view text, std::string_view part, const char* why) {
    throw std::invalid_argument("invalid CPU list '" + std::string(text) + "': '" +
                                std::string(part) + "' " + why);
}

int parse_cpu(std::string_view text, std::string_view part, std::string_view num) {
    int value = -1;
    const auto* end = num.data() + num.size();
    auto [ptr, ec] = std::from_chars(num.data(), end, value);
    if (num.empty() || ec != std::errc() || ptr != end || value < 0)
        bad_list(text, part, "is not a CPU number or range");
    if (value > kMaxCpu) bad_list(text, part, "is beyond any CPU number");
    return value;
}

// Returns the file's content, or nullopt when it cannot be opened.
std::optional<std::string> slurp(const std::filesystem::path& path) {
    std::ifstream in(path);
    if (!in) return std::nullopt;
    std::ostringstream out;
    out << in.rdbuf();
    return out.str();
}

// Reads a CPU list file. Missing: nullopt, noted when `required`. Malformed: nullopt, noted.
std::optional<std::vector<int>> read_list(const std::filesystem::path& path, bool required,
                                          std::vector<std::string>& problems) {
    auto text = slurp(path);
    if (!text) {
        if (required) problems.push_back("cannot read " + path.string());
        return std::nullopt;
    }
    try {
        return parse_cpu_list(*text);
    } catch (const std::invalid_argument&) {
        problems.push_back("malformed " + path.string() + ": '" + std::string(trim(*text)) + "'");
        return std::nullopt;
    }
}

std::vector<int> only_online(const std::vector<int>& cpus, const std::vector<int>& online) {
    std::vector<int> out;
    for (int c : cpus)
        if (std::binary_search(online.begin(), online.end(), c)) out.push_back(c);
    return out;
}

}  // namespace

std::vector<int> parse_cpu_list(std::string_view text) {
    const std::string_view s = trim(text);
    std::vector<int> cpus;
    if (s.empty() || s == "(null)") return cpus;
    std::size_t pos = 0;
    while (pos <= s.size()) {
        const std::size_t comma = std::min(s.find(',', pos), s.size());
        const std::string_view part = trim(s.substr(pos, comma - pos));
        const std::size_t dash = part.find('-');
        const int lo = parse_cpu(s, part, part.substr(0, dash));
        const int hi = dash == std::string_view::npos ? lo : parse_cpu(s, part, part.substr(dash + 1));
        if (hi < lo) bad_list(s, part, "runs backwards");
        for (int c = lo; c <= hi; ++c) cpus.push_back(c);
        pos = comma + 1;
    }
    std::sort(cpus.begin(), cpus.end());
    cpus.erase(std::unique(cpus.begin(), cpus.end()), cpus.end());
    return cpus;
}

std::string format_cpu_list(const std::vector<int>& cpus_in) {
    std::vector<int> cpus = cpus_in;
    std::sort(cpus.begin(), cpus.end());
    cpus.erase(std::unique(cpus.begin(), cpus.end()), cpus.end());
    std::string out;
    for (std::size_t i = 0; i < cpus.size();) {
        std::size_t j = i;
        while (j + 1 < cpus.size() && cpus[j + 1] == cpus[j] + 1) ++j;
        if (!out.empty()) out += ',';
        out += std::to_string(cpus[i]);
        if (j > i) out += '-' + std::to_string(cpus[j]);
        i = j + 1;
    }
    return out;
}

CpuTopology CpuTopology::read(const std::string& sysfs_root) {
    namespace fs = std::filesystem;
    CpuTopology t;
    const fs::path cpu_dir = fs::path(sysfs_root) / "devices" / "system" / "cpu";

    if (auto online = read_list(cpu_dir / "online", true, t.problems)) {
        t.online = std::move(*online);
    } else {
        // Fall back to the cpuN directories, minus those whose cpuN/online says 0.
        std::error_code ec;
        for (const auto& entry : fs::directory_iterator(cpu_dir, ec)) {
            const std::string name = entry.path().filename().string();
            if (name.size() < 4 || name.compare(0, 3, "cpu") != 0 ||
                !std::all_of(name.begin() + 3, name.end(),
                             [](unsigned char ch) { return std::isdigit(ch) != 0; }))
                continue;
            const auto flag = slurp(entry.path() / "online");
            if (flag && trim(*flag) == "0") continue;
            try {
                t.online.push_back(parse_cpu(name, name, std::string_view(name).substr(3)));
            } catch (const std::invalid_argument&) {
            }
        }
        std::sort(t.online.begin(), t.online.end());
    }

    if (auto isolated = read_list(cpu_dir / "isolated", true, t.problems))
        t.isolated = only_online(*isolated, t.online);
    // nohz_full only exists on CONFIG_NO_HZ_FULL kernels: its absence is not a problem.
    if (auto nohz = read_list(cpu_dir / "nohz_full", false, t.problems))
        t.nohz_full = only_online(*nohz, t.online);

    for (int c : t.online) {
        const fs::path path =
            cpu_dir / ("cpu" + std::to_string(c)) / "topology" / "thread_siblings_list";
        std::vector<int> sib;
        if (auto list = read_list(path, true, t.problems)) sib = only_online(*list, t.online);
        if (!std::binary_search(sib.begin(), sib.end(), c)) {
            sib.push_back(c);
            std::sort(sib.begin(), sib.end());
        }
        t.siblings.emplace(c, std::move(sib));
    }
    return t;
}

IsolatedCoreAllocator::IsolatedCoreAllocator(CpuTopology topology)
    : topology_(std::move(topology)) {
    int max_cpu = -1;
    for (int c : topology_.online) max_cpu = std::max(max_cpu, c);
    for (int c : topology_.isolated) {
        if (c < 0 || c > kMaxCpu)
            throw std::invalid_argument("IsolatedCoreAllocator: isolated cpu " +
                                        std::to_string(c) + " is not a CPU number");
        max_cpu = std::max(max_cpu, c);
    }
    for (const auto& [cpu, sib] : topology_.siblings)
        for (int s : sib) {
            if (s < 0 || s > kMaxCpu || cpu < 0 || cpu > kMaxCpu)
                throw std::invalid_argument("IsolatedCoreAllocator: sibling entry " +
                                            std::to_string(cpu) + ":" + std::to_string(s) +
                                            " is not a CPU number");
            max_cpu = std::max({max_cpu, cpu, s});
        }
    taken_.assign(static_cast<std::size_t>(max_cpu + 1), 0);
}

bool IsolatedCoreAllocator::sibling_taken(int cpu) const {
    const auto it = topology_.siblings.find(cpu);
    if (it == topology_.siblings.end()) return false;
    for (int s : it->second)
        if (s != cpu && taken_[static_cast<std::size_t>(s)]) return true;
    return false;
}

std::optional<int> IsolatedCoreAllocator::take(bool allow_smt_sibling) {
    std::lock_guard lock(mutex_);
    // First pass: a core whose siblings are all free. Second (if allowed): any free core.
    for (int pass = 0; pass < (allow_smt_sibling ? 2 : 1); ++pass) {
        for (int c : topology_.isolated) {
            if (taken_[static_cast<std::size_t>(c)]) continue;
            if (pass == 0 && sibling_taken(c)) continue;
            taken_[static_cast<std::size_t>(c)] = 1;
            return c;
        }
    }
    return std::nullopt;
}

void IsolatedCoreAllocator::release(int cpu) {
    std::lock_guard lock(mutex_);
    if (cpu < 0 || static_cast<std::size_t>(cpu) >= taken_.size() ||
        !taken_[static_cast<std::size_t>(cpu)])
        throw std::invalid_argument("IsolatedCoreAllocator::release: cpu " + std::to_string(cpu) +
                                    " was not taken");
    taken_[static_cast<std::size_t>(cpu)] = 0;
}

}  // namespace tern::detail
