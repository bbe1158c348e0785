// Closed-loop round trip: two actors on two pinned threads bounce one message. In the same
// run and on the same CPUs it measures the bare floor the framework cannot beat:
//   spin  -> two threads bouncing one cache line (busy-poll)
//   futex -> two threads doing std::atomic wait/notify ping-pong
//   yield -> two threads bouncing one cache line with sched_yield() while waiting
// and prints both distributions and the p50 ratio.
#include <atomic>
#include <cstdio>
#include <string>
#include <thread>

#include <tern/manager.hpp>

#include "bench_util.hpp"

using namespace tern;

static const char* kUsage =
    "usage: pingpong [--wake spin|futex|yield] [--iterations N] [--warmup N] [--cpus A,B]\n"
    "                [--spin N] [--mailbox spsc|mpsc] [--json FILE]\n"
    "  Round trip of one message between two actors on CPUs A and B, beside the bare floor\n"
    "  measured the same way in the same run. --spin: futex mode's empty polls before parking\n"
    "  (default 0: park at once, like the bare wait/notify floor).\n";

namespace {
struct Ball {
  static constexpr MessageId message_id = 1;
  std::uint64_t t0 = 0;
};

class Ponger : public Actor {
 public:
  Ponger() { handle<&Ponger::on_ball>(); }
  void on_ball(const Ball& b) { (void)reply(Ball{b.t0}); }
};

class Pinger : public Actor {
 public:
  Pinger(ActorRef peer, std::uint64_t warmup, std::uint64_t iterations, Histogram& h)
      : peer_(peer), warmup_(warmup), total_(warmup + iterations), h_(h) {
    handle<&Pinger::on_start>();
    handle<&Pinger::on_ball>();
  }
  void on_start(const Start&) { (void)peer_.send(Ball{bench::now_ns()}); }
  void on_ball(const Ball& b) {
    const std::uint64_t t1 = bench::now_ns();
    if (n_++ >= warmup_) h_.record(t1 - b.t0);
    if (n_ < total_)
      (void)peer_.send(Ball{bench::now_ns()});
    else
      terminate();
  }

 private:
  ActorRef peer_;
  std::uint64_t warmup_, total_, n_ = 0;
  Histogram& h_;
};

Histogram run_tern(Wake wake, std::uint32_t spin, MailboxKind kind, int cpu_a, int cpu_b,
                   std::uint64_t warmup, std::uint64_t iterations) {
  Histogram h;
  Manager mgr;
  ThreadConfig ta, tb;
  ta.wake = tb.wake = wake;
  ta.spin_limit = tb.spin_limit = spin;
  if (cpu_a >= 0) ta.cpus = {cpu_a};
  if (cpu_b >= 0) tb.cpus = {cpu_b};
  ActorRef pong = mgr.emplace<Ponger>("ponger", tb, MailboxConfig{1024, kind});
  mgr.emplace<Pinger>("pinger", ta, MailboxConfig{1024, kind}, pong, warmup, iterations, h);
  mgr.init();
  mgr.run();
  mgr.end();
  return h;
}

Histogram run_floor(Wake wake, int cpu_a, int cpu_b, std::uint64_t warmup,
                    std::uint64_t iterations) {
  Histogram h;
  const std::uint64_t total = warmup + iterations;
  if (wake == Wake::futex) {
    // why two words: each side sleeps on its own, like two mailboxes.
    alignas(64) std::atomic<std::uint32_t> to_b{0};
    alignas(64) std::atomic<std::uint32_t> to_a{0};
    std::thread b([&] {
      bench::pin(cpu_b);
      for (std::uint64_t i = 0; i < total; ++i) {
        to_b.wait(0, std::memory_order_acquire);
        to_b.store(0, std::memory_order_relaxed);
        to_a.store(1, std::memory_order_release);
        to_a.notify_one();
      }
    });
    bench::pin(cpu_a);
    for (std::uint64_t i = 0; i < total; ++i) {
      const std::uint64_t t0 = bench::now_ns();
      to_b.store(1, std::memory_order_release);
      to_b.notify_one();
      to_a.wait(0, std::memory_order_acquire);
      to_a.store(0, std::memory_order_relaxed);
      const std::uint64_t t1 = bench::now_ns();
      if (i >= warmup) h.record(t1 - t0);
    }
    b.join();
  } else {
    alignas(64) std::atomic<std::uint64_t> line{0};
    const bool yield = wake == Wake::yield;
    std::thread b([&] {
      bench::pin(cpu_b);
      for (std::uint64_t i = 0; i < total; ++i) {
        while (line.load(std::memory_order_acquire) != 2 * i + 1)
          yield ? (void)sched_yield() : bench::relax();
        line.store(2 * i + 2, std::memory_order_release);
      }
    });
    bench::pin(cpu_a);
    for (std::uint64_t i = 0; i < total; ++i) {
      const std::uint64_t t0 = bench::now_ns();
      line.store(2 * i + 1, std::memory_order_release);
      while (line.load(std::memory_order_acquire) != 2 * i + 2)
        yield ? (void)sched_yield() : bench::relax();
      const std::uint64_t t1 = bench::now_ns();
      if (i >= warmup) h.record(t1 - t0);
    }
    b.join();
  }
  bench::pin(-1);
  return h;
}
}  // namespace

int main(int argc, char** argv) {
  bench::Args args(argc, argv,
                   {{"wake", "spin"},
                    {"iterations", "200000"},
                    {"warmup", "20000"},
                    {"cpus", "0,1"},
                    {"spin", "0"},
                    {"mailbox", "spsc"},
                    {"json", ""}},
                   kUsage);
  const std::string wname = args.str("wake");
  Wake wake;
  if (wname == "spin") wake = Wake::spin;
  else if (wname == "futex") wake = Wake::futex;
  else if (wname == "yield") wake = Wake::yield;
  else bench::Args::fail("--wake must be spin, futex or yield, got '" + wname + "'", kUsage);
  const std::string mname = args.str("mailbox");
  if (mname != "spsc" && mname != "mpsc")
    bench::Args::fail("--mailbox must be spsc or mpsc, got '" + mname + "'", kUsage);
  const MailboxKind kind = mname == "spsc" ? MailboxKind::spsc : MailboxKind::mpsc;
  const std::vector<int> cpus = args.cpus("cpus");
  if (cpus.size() != 2) bench::Args::fail("--cpus wants two CPUs, e.g. 0,1", kUsage);
  const std::uint64_t iters = args.u64("iterations"), warm = args.u64("warmup");
  if (iters == 0) bench::Args::fail("--iterations must be at least 1", kUsage);
  const auto spin = static_cast<std::uint32_t>(args.u64("spin"));

  std::printf("pingpong: wake=%s mailbox=%s iterations=%llu warmup=%llu cpus=%d,%d%s\n",
              wname.c_str(), mname.c_str(), (unsigned long long)iters,
              (unsigned long long)warm, cpus[0], cpus[1],
              wake == Wake::futex ? (" spin=" + std::to_string(spin)).c_str() : "");
  std::fflush(stdout);
  // Floor first, then tern, then the floor again: the better floor is the baseline, so a
  // noisy neighbour during one floor run cannot flatter the ratio.
  Histogram f1 = run_floor(wake, cpus[0], cpus[1], warm, iters);
  Histogram t = run_tern(wake, spin, kind, cpus[0], cpus[1], warm, iters);
  Histogram f2 = run_floor(wake, cpus[0], cpus[1], warm, iters);
  Histogram& floor = f1.value_at_percentile(50) <= f2.value_at_percentile(50) ? f1 : f2;
  const char* floor_name = wake == Wake::futex ? "bare atomic wait/notify"
                           : wake == Wake::yield ? "bare cache line + yield"
                                                 : "bare cache line";
  std::vector<bench::Row> rows;
  rows.push_back({"tern " + wname + " (" + mname + ")", t});
  rows.push_back({std::string(floor_name) + " (floor)", floor});
  bench::print_table("round trip", rows);
  const double ratio = static_cast<double>(t.value_at_percentile(50)) /
                       static_cast<double>(std::max<std::uint64_t>(1, floor.value_at_percentile(50)));
  std::printf("ratio p50 tern/floor: %.2fx\n", ratio);

  char extra[256];
  std::snprintf(extra, sizeof extra,
                "\"wake\": \"%s\", \"mailbox\": \"%s\", \"iterations\": %llu, \"cpus\": [%d, %d], "
                "\"floor\": \"%s\", \"ratio_p50\": %.4f",
                wname.c_str(), mname.c_str(), (unsigned long long)iters, cpus[0], cpus[1],
                floor_name, ratio);
  bench::write_file(args.str("json"), "{" + std::string(extra) + ", " +
                                          bench::json_fields("", t) + ", " +
                                          bench::json_fields("floor_", floor) + "}\n");
  return 0;
}
