// Tests for lib/cpu_topology: CPU list parsing, reading the fixture sysfs trees under
// tests/fixtures/cpu/, and the isolated-core allocator.
#include "cpu_topology.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>

#include <unistd.h>

using tern::detail::CpuTopology;
using tern::detail::format_cpu_list;
using tern::detail::IsolatedCoreAllocator;
using tern::detail::parse_cpu_list;
using V = std::vector<int>;

namespace {

// The source tree: $TERN_SOURCE_ROOT (set by meson test), else the directory above this file
// (__FILE__ may be relative to the compiler's working directory), else the first ancestor of
// the working directory that holds tests/fixtures/cpu.
std::filesystem::path source_root() {
    namespace fs = std::filesystem;
    if (const char* env = std::getenv("TERN_SOURCE_ROOT"); env && *env) return env;
    const fs::path here = fs::path(__FILE__).parent_path().parent_path();
    if (fs::exists(here / "tests" / "fixtures" / "cpu")) return here;
    for (fs::path dir = fs::current_path(); !dir.empty(); dir = dir.parent_path()) {
        if (fs::exists(dir / "tests" / "fixtures" / "cpu")) return dir;
        if (dir == dir.parent_path()) break;
    }
    return here;
}

std::filesystem::path fixture(const std::string& name) {
    const auto path = source_root() / "tests" / "fixtures" / "cpu" / name / "sys";
    if (!std::filesystem::exists(path))
        FAIL("fixture ", path.string(), " not found: set TERN_SOURCE_ROOT to the source tree");
    return path;
}

bool mentions(const std::vector<std::string>& problems, const std::string& a,
              const std::string& b) {
    return std::any_of(problems.begin(), problems.end(), [&](const std::string& p) {
        return p.find(a) != std::string::npos && p.find(b) != std::string::npos;
    });
}

// A scratch copy of a fixture tree, removed at scope exit.
struct TempTree {
    std::filesystem::path path;
    explicit TempTree(const std::string& name) {
        path = std::filesystem::temp_directory_path() /
               ("tern_cpu_topology_" + name + "_" + std::to_string(::getpid()));
        std::filesystem::remove_all(path);
        std::filesystem::copy(fixture(name), path,
                              std::filesystem::copy_options::recursive |
                                  std::filesystem::copy_options::copy_symlinks);
    }
    ~TempTree() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    void write(const std::string& rel, const std::string& text) const {
        std::ofstream(path / rel) << text;
    }
};

}  // namespace

TEST_CASE("parse_cpu_list reads ranges, singles, empty text and a trailing newline") {
    CHECK(parse_cpu_list("0-3,5,7-8") == V{0, 1, 2, 3, 5, 7, 8});
    CHECK(parse_cpu_list("1,3\n") == V{1, 3});
    CHECK(parse_cpu_list("") == V{});
    CHECK(parse_cpu_list("\n") == V{});
    CHECK(parse_cpu_list("(null)\n") == V{});
    CHECK(parse_cpu_list("3,1,1-2") == V{1, 2, 3});
    CHECK(parse_cpu_list(" 4 ") == V{4});
}

TEST_CASE("parse_cpu_list rejects bad text and names it") {
    for (const char* bad : {"1-x", "a", "1,", ",1", "3-1", "1-2-3", "-1", "1 2", "99999999"}) {
        CAPTURE(bad);
        try {
            (void)parse_cpu_list(bad);
            FAIL("no exception for ", bad);
        } catch (const std::invalid_argument& e) {
            CHECK(std::string(e.what()).find(bad) != std::string::npos);
        }
    }
}

TEST_CASE("format_cpu_list folds runs and round-trips with parse_cpu_list") {
    CHECK(format_cpu_list({}) == "");
    CHECK(format_cpu_list({0, 1, 2, 3, 5}) == "0-3,5");
    CHECK(format_cpu_list({5, 3, 1, 2}) == "1-3,5");
    CHECK(format_cpu_list({7}) == "7");
    CHECK(format_cpu_list({0, 2}) == "0,2");
    for (const char* text : {"0-3,5,7-8", "1", "0,2,4-6"}) CHECK(format_cpu_list(parse_cpu_list(text)) == text);
}

TEST_CASE("a well isolated machine reports its isolated set, nohz_full set and SMT pairs") {
    const auto t = CpuTopology::read(fixture("isolated").string());
    CHECK(t.problems.empty());
    CHECK(t.online == V{0, 1, 2, 3});
    CHECK(t.isolated == V{1, 3});
    CHECK(t.nohz_full == V{1, 3});
    REQUIRE(t.siblings.size() == 4);
    CHECK(t.siblings.at(0) == V{0, 2});
    CHECK(t.siblings.at(1) == V{1, 3});
    CHECK(t.siblings.at(3) == V{1, 3});
}

TEST_CASE("offline CPUs are left out of every list") {
    const auto t = CpuTopology::read(fixture("not_isolated").string());
    CHECK(t.online == V{0, 1, 2});
    CHECK(t.isolated.empty());
    CHECK(t.nohz_full.empty());  // "(null)" is how the kernel says none
    CHECK(t.siblings.count(3) == 0);
    CHECK(t.siblings.at(1) == V{1});  // its sibling 3 is offline
    CHECK(t.problems.empty());
}

TEST_CASE("a malformed file is noted in problems, naming the file and its content") {
    CpuTopology t;
    CHECK_NOTHROW(t = CpuTopology::read(fixture("half").string()));
    CHECK(t.isolated == V{1});
    CHECK(t.nohz_full.empty());
    CHECK(mentions(t.problems, "nohz_full", "1-x"));
}

TEST_CASE("missing and malformed topology files do not throw") {
    TempTree tree("isolated");
    tree.write("devices/system/cpu/online", "zero-three\n");
    std::filesystem::remove(tree.path / "devices/system/cpu/isolated");
    tree.write("devices/system/cpu/cpu1/topology/thread_siblings_list", "1,?\n");
    CpuTopology t;
    CHECK_NOTHROW(t = CpuTopology::read(tree.path.string()));
    CHECK(mentions(t.problems, "online", "zero-three"));
    CHECK(mentions(t.problems, "isolated", "cannot read"));
    CHECK(mentions(t.problems, "thread_siblings_list", "1,?"));
    CHECK(t.online == V{0, 1, 2, 3});  // recovered from the cpuN directories
    CHECK(t.isolated.empty());
    CHECK(t.siblings.at(1) == V{1});
}

TEST_CASE("a sysfs root that does not exist gives problems, not an exception") {
    CpuTopology t;
    CHECK_NOTHROW(t = CpuTopology::read("/nonexistent/tern-sysfs"));
    CHECK(t.online.empty());
    CHECK_FALSE(t.problems.empty());
}

TEST_CASE("the allocator hands out whole cores, never two callers on one core or sibling") {
    // Two SMT cores, both threads isolated: {1,3} and {5,7}; plus lone core 9.
    CpuTopology t;
    t.online = {0, 1, 2, 3, 4, 5, 6, 7, 9};
    t.isolated = {1, 3, 5, 7, 9};
    t.siblings = {{1, {1, 3}}, {3, {1, 3}}, {5, {5, 7}}, {7, {5, 7}}, {9, {9}}};
    IsolatedCoreAllocator alloc(t);
    std::set<int> got;
    while (auto c = alloc.take()) CHECK(got.insert(*c).second);
    CHECK(got == std::set<int>{1, 5, 9});

    // With siblings allowed, the remaining threads come out, still one caller each.
    while (auto c = alloc.take(true)) CHECK(got.insert(*c).second);
    CHECK(got == std::set<int>{1, 3, 5, 7, 9});
    CHECK_FALSE(alloc.take(true).has_value());
}

TEST_CASE("the allocator prefers a free core over a sibling even when siblings are allowed") {
    CpuTopology t;
    t.online = {0, 1, 2, 3};
    t.isolated = {1, 2, 3};
    t.siblings = {{1, {1, 3}}, {3, {1, 3}}, {2, {2}}};
    IsolatedCoreAllocator alloc(t);
    CHECK(alloc.take(true) == 1);
    CHECK(alloc.take(true) == 2);
    CHECK(alloc.take(true) == 3);
}

TEST_CASE("a released core can be taken again and a foreign release throws naming the cpu") {
    IsolatedCoreAllocator alloc(CpuTopology::read(fixture("isolated").string()));
    const auto a = alloc.take();
    REQUIRE(a == 1);
    CHECK_FALSE(alloc.take().has_value());  // 3 is 1's sibling
    alloc.release(1);
    CHECK(alloc.take() == 1);
    CHECK_THROWS_WITH_AS(alloc.release(3), doctest::Contains("cpu 3"), std::invalid_argument);
    CHECK_THROWS_AS(alloc.release(-1), std::invalid_argument);
    CHECK_THROWS_AS(alloc.release(1000), std::invalid_argument);
}

TEST_CASE("an allocator over a machine without isolated cores hands out nothing") {
    IsolatedCoreAllocator alloc(CpuTopology::read(fixture("not_isolated").string()));
    CHECK_FALSE(alloc.take().has_value());
    CHECK_FALSE(alloc.take(true).has_value());
}

TEST_CASE("threads taking cores at once each get a different core") {
    CpuTopology t;
    for (int c = 0; c < 16; ++c) {
        t.online.push_back(c);
        if (c > 0) t.isolated.push_back(c);
        t.siblings[c] = {c};
    }
    IsolatedCoreAllocator alloc(t);
    std::vector<int> got(32, -1);
    std::vector<std::thread> threads;
    for (std::size_t i = 0; i < got.size(); ++i)
        threads.emplace_back([&, i] { got[i] = alloc.take().value_or(-1); });
    for (auto& th : threads) th.join();
    std::multiset<int> handed;
    for (int c : got)
        if (c >= 0) handed.insert(c);
    CHECK(handed.size() == 15);
    CHECK(std::set<int>(handed.begin(), handed.end()).size() == 15);
}
