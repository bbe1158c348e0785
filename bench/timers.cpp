// Timer lateness: (time the handler sees the Timeout) - (due time), for one-shot and periodic
// timers, for a busy-poll and a parked (futex) actor. Baseline in the same run: a bare thread
// sleeping with clock_nanosleep(TIMER_ABSTIME) to the same due times (timer slack 1 ns), i.e.
// what the kernel alone delivers on this machine.
#include <sys/prctl.h>
#include <time.h>

#include <atomic>
#include <cstdio>
#include <string>
#include <thread>

#include <tern/manager.hpp>

#include "bench_util.hpp"

using namespace tern;

static const char* kUsage =
    "usage: timers [--interval-us N] [--count N] [--cpu C] [--json FILE]\n"
    "  Lateness of tern timers (one-shot chained, periodic; busy-poll and parked actors)\n"
    "  beside a bare clock_nanosleep loop in the same run.\n";

namespace {
class Ticker : public Actor {
 public:
  Ticker(bool periodic, std::uint64_t interval_us, std::uint64_t count, Histogram& late,
         Histogram& service)
      : periodic_(periodic), interval_(interval_us), count_(count), late_(late), service_(service) {
    handle<&Ticker::on_start>();
    handle<&Ticker::on_timeout>();
  }
  void on_start(const Start&) {
    id_ = periodic_ ? start_timer(interval_, interval_) : start_timer(interval_);
  }
  void on_timeout(const Timeout& t) {
    const std::uint64_t now = bench::now_ns();
    late_.record(now > t.due_ns ? now - t.due_ns : 0);
    service_.record(t.fired_ns > t.due_ns ? t.fired_ns - t.due_ns : 0);
    if (++n_ == count_) {
      if (periodic_) (void)cancel_timer(id_);
      terminate();
    } else if (!periodic_) {
      id_ = start_timer(interval_);
    }
  }

 private:
  bool periodic_;
  std::uint64_t interval_, count_, n_ = 0, id_ = 0;
  Histogram& late_;
  Histogram& service_;
};

void run_tern(bool periodic, Wake wake, std::uint64_t interval, std::uint64_t count, int cpu,
              Histogram& late, Histogram& service) {
  Manager mgr;
  ThreadConfig tc;
  tc.wake = wake;
  if (cpu >= 0) tc.cpus = {cpu};
  mgr.emplace<Ticker>("ticker", tc, {}, periodic, interval, count, late, service);
  mgr.init();
  mgr.run();
  mgr.end();
}

Histogram run_bare(std::uint64_t interval_us, std::uint64_t count, int cpu) {
  Histogram h;
  std::thread t([&] {
    bench::pin(cpu);
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
    std::uint64_t due = bench::now_ns();
    for (std::uint64_t i = 0; i < count; ++i) {
      due += interval_us * 1000;
      timespec ts{static_cast<time_t>(due / 1'000'000'000), static_cast<long>(due % 1'000'000'000)};
      while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) != 0) {
      }
      const std::uint64_t now = bench::now_ns();
      h.record(now > due ? now - due : 0);
    }
  });
  t.join();
  return h;
}
}  // namespace

int main(int argc, char** argv) {
  bench::Args args(argc, argv, {{"interval-us", "500"}, {"count", "2000"}, {"cpu", "1"}, {"json", ""}},
                   kUsage);
  const std::uint64_t interval = args.u64("interval-us"), count = args.u64("count");
  if (interval == 0 || count == 0) bench::Args::fail("--interval-us and --count must be >= 1", kUsage);
  const int cpu = static_cast<int>(args.u64("cpu"));
  std::printf("timers: interval=%llu us count=%llu cpu=%d\n", (unsigned long long)interval,
              (unsigned long long)count, cpu);
  std::vector<bench::Row> rows;
  std::string json = "{\"interval_us\": " + std::to_string(interval) + ", \"count\": " +
                     std::to_string(count);
  rows.push_back({"bare clock_nanosleep (baseline)", run_bare(interval, count, cpu)});
  json += ", " + bench::json_fields("baseline_", rows.back().h);
  for (bool periodic : {false, true}) {
    for (Wake w : {Wake::spin, Wake::futex}) {
      Histogram late, service;
      run_tern(periodic, w, interval, count, cpu, late, service);
      const std::string label = std::string(periodic ? "periodic" : "one-shot") + ", " +
                                (w == Wake::spin ? "busy-poll" : "parked") + " actor";
      rows.push_back({label, late});
      std::string key = std::string(periodic ? "periodic_" : "oneshot_") +
                        (w == Wake::spin ? "spin_" : "futex_");
      json += ", " + bench::json_fields(key, late);
      json += ", " + bench::json_fields(key + "service_", service);
    }
  }
  bench::print_table("lateness: handler time - due time", rows);
  bench::write_file(args.str("json"), json + "}\n");
  return 0;
}
