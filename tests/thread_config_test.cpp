#include <doctest/doctest.h>

#include <sched.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <thread>

#include <tern/thread_config.hpp>

using namespace tern;

TEST_CASE("parse_cpu_list reads ranges and lists, and names bad text") {
  CHECK(parse_cpu_list("0-3,5") == std::vector<int>{0, 1, 2, 3, 5});
  CHECK(parse_cpu_list("7\n") == std::vector<int>{7});
  CHECK(parse_cpu_list("").empty());
  CHECK(parse_cpu_list("3,1,1") == std::vector<int>{1, 3});
  CHECK_THROWS_WITH_AS(parse_cpu_list("1-x"), doctest::Contains("'1-x'"), std::invalid_argument);
  CHECK_THROWS_AS(parse_cpu_list("3-1"), std::invalid_argument);
  CHECK_THROWS_AS(parse_cpu_list("1,,2"), std::invalid_argument);
}

TEST_CASE("apply_thread_config pins the thread and names it, verified by reading back") {
  ThreadReport rep;
  std::thread t([&] {
    ThreadConfig c;
    c.cpus = {0};
    c.name = "tern-test-pin";
    rep = apply_thread_config(c, "pin");
    char name[16] = {};
    pthread_getname_np(pthread_self(), name, sizeof name);
    CHECK(std::string(name) == "tern-test-pin");
    CHECK(sched_getcpu() == 0);
  });
  t.join();
  CHECK(rep.ok);
  CHECK(rep.cpus == std::vector<int>{0});
}

TEST_CASE("apply_thread_config names a CPU that does not exist and an out-of-range priority") {
  ThreadReport rep;
  std::thread t([&] {
    ThreadConfig c;
    c.cpus = {1, 9999};
    c.policy = SchedPolicy::fifo;
    c.priority = 120;
    rep = apply_thread_config(c, "bad");
  });
  t.join();
  CHECK_FALSE(rep.ok);
  REQUIRE(rep.problems.size() == 2);
  CHECK(rep.problems[0].find("CPU 9999 does not exist") != std::string::npos);
  CHECK(rep.problems[1].find("SCHED_FIFO priority 120 is out of range 1..99") != std::string::npos);
}

TEST_CASE("SCHED_FIFO is applied when permitted, or refused with the reason") {
  ThreadReport rep;
  std::thread t([&] {
    ThreadConfig c;
    c.policy = SchedPolicy::fifo;
    c.priority = 10;
    rep = apply_thread_config(c, "rt");
  });
  t.join();
  if (rep.ok) {
    CHECK(rep.policy == SCHED_FIFO);
    CHECK(rep.priority == 10);
  } else {
    REQUIRE(rep.problems.size() == 1);
    CHECK(rep.problems[0].find("SCHED_FIFO priority 10 refused") != std::string::npos);
  }
}

namespace {
std::string fixture(const char* name) {
  const char* root = std::getenv("TERN_SOURCE_ROOT");
  return std::string(root ? root : ".") + "/tests/fixtures/cpu/" + name + "/sys";
}
ThreadReport run_isolated(bool allow_smt, std::vector<int> fallback = {}) {
  ThreadReport rep;
  std::thread t([&] {
    ThreadConfig c;
    c.isolated = true;
    c.allow_smt_sibling = allow_smt;
    c.cpus = fallback;
    rep = apply_thread_config(c, "iso");
  });
  t.join();
  return rep;
}
}  // namespace

TEST_CASE("isolated threads get their own isolated core, never an SMT sibling unless asked") {
  set_sysfs_root(fixture("isolated"));  // isolated CPUs 1 and 3, SMT siblings of each other
  const ThreadReport first = run_isolated(false);
  CHECK(first.isolated_cpu == 1);
  CHECK(first.ok);
  CHECK(first.cpus == std::vector<int>{1});
  // 3 is 1's sibling: refused without allow_smt_sibling -> falls back to the configured CPUs
  const ThreadReport second = run_isolated(false, {0});
  CHECK(second.isolated_cpu == -1);
  CHECK(second.cpus == std::vector<int>{0});
  // with allow_smt_sibling it gets CPU 3 (which this 2-CPU machine lacks: named as such)
  const ThreadReport third = run_isolated(true);
  CHECK(third.isolated_cpu == 3);
  if (sysconf(_SC_NPROCESSORS_CONF) <= 3) {
    REQUIRE_FALSE(third.problems.empty());
    CHECK(third.problems[0].find("CPU 3 does not exist") != std::string::npos);
  }
  release_isolated_core(1);
  release_isolated_core(3);
  CHECK(run_isolated(false).isolated_cpu == 1);
  set_sysfs_root("/sys");
}

TEST_CASE("with no isolated CPUs an isolated request falls back to the configured CPUs") {
  set_sysfs_root(fixture("not_isolated"));
  const ThreadReport rep = run_isolated(false, {0});
  CHECK(rep.isolated_cpu == -1);
  CHECK(rep.ok);
  CHECK(rep.cpus == std::vector<int>{0});
  set_sysfs_root("/sys");
}
