// CAF baseline: the same closed-loop round trip as pingpong, between two CAF 0.17 actors
// (Debian's libcaf-dev), measured the same way (the pinger stamps, the ponger echoes, the
// pinger records now - stamp). Two CAF set-ups, each a labelled row:
//   work-stealing: event-based actors on CAF's default scheduler (--threads workers, which
//                  poll aggressively, then less, then sleep);
//   detached:      each actor on its own thread, blocking on its mailbox (condition variable).
// Built only when the caf_baseline Meson feature finds libcaf; scripts/bench reports it as
// skipped otherwise.
#include <atomic>
#include <cstdio>
#include <string>

#include <caf/all.hpp>

#include "bench_util.hpp"

static const char* kUsage =
    "usage: caf_pingpong [--iterations N] [--warmup N] [--threads N] [--json FILE]\n"
    "                    [--hgrm PREFIX]\n"
    "  Round trip of one message between two CAF actors: on CAF's work-stealing scheduler\n"
    "  (--threads workers, default 2) and as two detached (thread-each) actors.\n"
    "  --hgrm PREFIX writes PREFIX<row>.hgrm in microseconds (rows: caf_stealing caf_detached).\n";

namespace {

struct Plan {
  std::uint64_t warmup, total;
  tern::Histogram* h;
  std::atomic<bool>* done;
  std::atomic<std::uint64_t>* cross;  // round trips whose two handlers ran on different CPUs
};

// The ponger echoes the stamp and the CPU it ran on (CAF 0.17 sends a (uint64_t, int) tuple
// without type registration).
caf::behavior ponger(caf::event_based_actor* self) {
  return {[=](std::uint64_t t0, int) {
    self->send(caf::actor_cast<caf::actor>(self->current_sender()), t0, sched_getcpu());
  }};
}

caf::behavior pinger(caf::event_based_actor* self, caf::actor pong, Plan p) {
  auto n = std::make_shared<std::uint64_t>(0);
  self->send(pong, bench::now_ns(), 0);
  return {[=](std::uint64_t t0, int pong_cpu) {
    const std::uint64_t t1 = bench::now_ns();
    if ((*n)++ >= p.warmup) {
      p.h->record(t1 - t0);
      if (pong_cpu != sched_getcpu()) p.cross->fetch_add(1, std::memory_order_relaxed);
    }
    if (*n < p.total) {
      self->send(pong, bench::now_ns(), 0);
    } else {
      p.done->store(true);
      self->quit();
      self->send_exit(pong, caf::exit_reason::user_shutdown);
    }
  }};
}

tern::Histogram run(bool detached, std::uint64_t threads, std::uint64_t warmup,
                    std::uint64_t iterations, double& cross_fraction) {
  tern::Histogram h;
  std::atomic<bool> done{false};
  std::atomic<std::uint64_t> cross{0};
  {
    caf::actor_system_config cfg;
    cfg.set("scheduler.max-threads", static_cast<std::size_t>(threads));
    caf::actor_system sys{cfg};
    const Plan p{warmup, warmup + iterations, &h, &done, &cross};
    if (detached) {
      auto pong = sys.spawn<caf::detached>(ponger);
      sys.spawn<caf::detached>(pinger, pong, p);
    } else {
      auto pong = sys.spawn(ponger);
      sys.spawn(pinger, pong, p);
    }
    sys.await_all_actors_done();
  }
  if (!done.load()) {
    std::fprintf(stderr, "error: CAF ping-pong stopped early\n");
    std::exit(1);
  }
  cross_fraction = static_cast<double>(cross.load()) / static_cast<double>(iterations);
  return h;
}

}  // namespace

int main(int argc, char** argv) {
  bench::Args args(argc, argv,
                   {{"iterations", "200000"},
                    {"warmup", "20000"},
                    {"threads", "2"},
                    {"json", ""},
                    {"hgrm", ""}},
                   kUsage);
  const std::uint64_t iters = args.u64("iterations"), warm = args.u64("warmup");
  if (iters == 0) bench::Args::fail("--iterations must be at least 1", kUsage);
  const std::uint64_t threads = args.u64("threads");
  if (threads == 0 || threads > 256) bench::Args::fail("--threads must be in 1..256", kUsage);
  std::printf("caf_pingpong: CAF %d.%d.%d iterations=%llu warmup=%llu threads=%llu\n",
              CAF_VERSION / 10000, CAF_VERSION / 100 % 100, CAF_VERSION % 100,
              (unsigned long long)iters, (unsigned long long)warm,
              (unsigned long long)threads);
  std::fflush(stdout);
  struct R {
    std::string key, label;
    tern::Histogram h;
    double cross = 0;
  };
  std::vector<R> rows;
  double cross = 0;
  tern::Histogram hs = run(false, threads, warm, iters, cross);
  rows.push_back({"caf_stealing", "CAF work-stealing (" + std::to_string(threads) + " threads)",
                  std::move(hs), cross});
  tern::Histogram hd = run(true, threads, warm, iters, cross);
  rows.push_back({"caf_detached", "CAF detached (thread each)", std::move(hd), cross});
  std::vector<bench::Row> table;
  for (const R& r : rows) table.push_back({r.label + " (baseline)", r.h});
  bench::print_table("round trip", table);
  // A work-stealing worker runs the actor it just sent to itself, so a round trip often
  // never leaves one core: say how often it did cross, to read the figure fairly.
  for (const R& r : rows)
    std::printf("%s: ping and pong ran on different CPUs in %.1f%% of round trips\n",
                r.key.c_str(), 100.0 * r.cross);
  for (const R& r : rows) bench::write_hgrm(args.str("hgrm"), r.key, r.h);
  std::string json = "{\"caf_version\": \"" + std::to_string(CAF_VERSION / 10000) + "." +
                     std::to_string(CAF_VERSION / 100 % 100) + "." +
                     std::to_string(CAF_VERSION % 100) + "\", \"iterations\": " +
                     std::to_string(iters) + ", \"threads\": " + std::to_string(threads) + ", " +
                     bench::json_fields("", rows[0].h) + ", \"rows\": [";
  for (std::size_t i = 0; i < rows.size(); ++i)
    json += std::string(i ? ", " : "") + "{\"key\": " + bench::jstr(rows[i].key) +
            ", \"label\": " + bench::jstr(rows[i].label) + ", \"cross_cpu_fraction\": " +
            std::to_string(rows[i].cross) + ", " + bench::json_fields("", rows[i].h) + "}";
  json += "]}\n";
  bench::write_file(args.str("json"), json);
  return 0;
}
