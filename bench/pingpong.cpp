// Closed-loop round trip: two actors on two pinned threads bounce one message. In the same
// run and on the same CPUs it measures the bare floor the framework cannot beat:
//   spin  -> two threads bouncing one cache line (busy-poll)
//   futex -> two threads doing std::atomic wait/notify ping-pong
//   yield -> two threads bouncing one cache line with sched_yield() while waiting
// and prints both distributions and the p50 ratio. Then, also in the same run, labelled
// baselines of ordinary queues carrying the same ball:
//   moodycamel ReaderWriterQueue (spin: busy-poll; yield: poll + sched_yield;
//                                 futex: BlockingReaderWriterQueue, spin then semaphore)
//   bare futex syscalls (futex only: FUTEX_WAIT/FUTEX_WAKE, no user-space spinning)
//   std::mutex + std::condition_variable + std::deque (futex only: the classic blocking
//   mailbox; it parks, so it is compared with the strategy that parks)
// --group runs both tern actors in one tern::Group (--workers, default 2) instead of a thread
// each; --split-groups puts each actor in a Group of its own (1 worker, pinned), so every
// message crosses cores through the group scheduler.
#include <atomic>
#include <cstdio>
#include <string>
#include <thread>

#include <readerwriterqueue/readerwriterqueue.h>

#include <tern/group.hpp>
#include <tern/manager.hpp>

#include "bench_util.hpp"
#include "tern_pingpong.hpp"

using namespace tern;

static const char* kUsage =
    "usage: pingpong [--wake spin|futex|yield] [--iterations N] [--warmup N] [--cpus A,B]\n"
    "                [--spin N] [--yields N] [--mailbox spsc|mpsc] [--json FILE] [--hgrm PREFIX]\n"
    "                [--baselines all|floor] [--group] [--workers N] [--split-groups]\n"
    "                [--rounds N] [--size 8|16|2048] [--inline N]\n"
    "  Round trip of one message between two actors on CPUs A and B, beside the bare floor\n"
    "  measured the same way in the same run. --spin: futex mode's empty polls before parking\n"
    "  (default 0: park on every hop; 'default': ThreadConfig's spin_limit, the library's\n"
    "  own spin-then-park policy).\n"
    "  --baselines all (default) adds a ReaderWriterQueue row polled like --wake, in spin and\n"
    "  yield mode a bare two-rings row (one ring of 128-byte cells per direction), and in futex\n"
    "  mode bare futex syscall and mutex+condvar queue rows. --hgrm PREFIX writes\n"
    "  PREFIX<row>.hgrm (microseconds) for each row (rows: tern floor two_rings rwq futex_raw\n"
    "  mutex_condvar). --group: both actors in one tern::Group of --workers workers (default\n"
    "  2, on CPUs A and B; 1 worker: on CPU B) with mpsc mailboxes (either worker may send).\n"
    "  --split-groups: each actor in its own 1-worker Group, on CPU A and CPU B.\n"
    "  --rounds N: run every row N times (iterations / N each), in turn, and merge.\n"
    "  --size N: the tern ball's size in bytes (default 8, a timestamp; 2048 is pooled with\n"
    "  the default MailboxConfig); the floor and baseline rows keep their own.\n"
    "  --inline N: the tern mailboxes' inline_bytes (default 256; --size 2048 --inline 4096\n"
    "  constructs the ball in the ring instead of a pool block).\n";

namespace {
template <std::size_t N>
using BallN = bench::BallN<N>;
using Ball = BallN<8>;
using bench::Pinger;
using bench::Ponger;

// futex mode: sched_yield polls after the spin, before parking (--yields).
std::uint32_t g_yields = 0;
std::uint32_t g_inline = Tuning::default_inline_bytes;  ///< --inline: the mailboxes' inline_bytes
/// The tern rows' mailbox: capacity 1024, `kind`, inline limit --inline.
MailboxConfig mailbox_config(MailboxKind kind) {
  MailboxConfig c{1024, kind};
  c.inline_bytes = g_inline;
  return c;
}

template <class B>
Histogram run_tern(Wake wake, std::uint32_t spin, MailboxKind kind, int cpu_a, int cpu_b,
                   std::uint64_t warmup, std::uint64_t iterations) {
  Histogram h;
  Manager mgr;
  ThreadConfig ta, tb;
  ta.wake = tb.wake = wake;
  ta.spin_limit = tb.spin_limit = spin;
  ta.yield_limit = tb.yield_limit = g_yields;
  if (cpu_a >= 0) ta.cpus = {cpu_a};
  if (cpu_b >= 0) tb.cpus = {cpu_b};
  ActorRef pong = mgr.emplace<Ponger<B>>("ponger", tb, mailbox_config(kind));
  mgr.emplace<Pinger<B>>("pinger", ta, mailbox_config(kind), pong, warmup, iterations, h);
  mgr.init();
  mgr.run();
  mgr.end();
  return h;
}

template <class B>
Histogram run_tern_group(Wake wake, std::uint32_t spin, std::uint32_t workers, int cpu_a,
                         int cpu_b, std::uint64_t warmup, std::uint64_t iterations) {
  Histogram h;
  Manager mgr;
  GroupConfig gc;
  gc.workers = workers;
  gc.wake = wake;
  gc.spin_limit = spin;
  gc.yield_limit = g_yields;
  // One worker: it runs on CPU B (and the round trip never leaves it). Two or more: they
  // share CPUs A and B.
  if (workers == 1)
    gc.thread.cpus = {cpu_b};
  else
    gc.thread.cpus = {cpu_a, cpu_b};
  Group g("pingpong", gc);
  const MailboxConfig mb = mailbox_config(MailboxKind::mpsc);
  ActorRef pong = g.emplace<Ponger<B>>("ponger", mb);
  g.emplace<Pinger<B>>("pinger", mb, pong, warmup, iterations, h);
  mgr.attach(g);
  mgr.init();
  mgr.run();
  mgr.end();
  return h;
}

template <class B>
Histogram run_tern_split(Wake wake, std::uint32_t spin, MailboxKind kind, int cpu_a, int cpu_b,
                         std::uint64_t warmup, std::uint64_t iterations) {
  Histogram h;
  Manager mgr;
  GroupConfig ga, gb;
  ga.workers = gb.workers = 1;
  ga.wake = gb.wake = wake;
  ga.spin_limit = gb.spin_limit = spin;
  ga.yield_limit = gb.yield_limit = g_yields;
  ga.thread.cpus = {cpu_a};
  gb.thread.cpus = {cpu_b};
  Group pinger("pinger", ga), ponger("ponger", gb);
  const MailboxConfig mb = mailbox_config(kind);
  ActorRef pong = ponger.emplace<Ponger<B>>("ponger", mb);
  pinger.emplace<Pinger<B>>("pinger", mb, pong, warmup, iterations, h);
  // Ponger's group first: Manager starts groups in attach order, and the pinger's Start
  // handler sends to the ponger (a send into a group that has not started crashes today).
  mgr.attach(ponger);
  mgr.attach(pinger);
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
  bench::unpin();
  return h;
}

// Two rings, one per direction, of 128-byte slots like a tern mailbox's, with nothing else:
// each side publishes into the other's ring and polls its own. A message in each direction
// is then a different cache line, where the one-line floor reuses a single line both ways.
Histogram run_two_rings(Wake wake, int cpu_a, int cpu_b, std::uint64_t warmup,
                        std::uint64_t iterations) {
  struct alignas(128) Cell {
    std::atomic<std::uint64_t> seq{0};
  };
  constexpr std::uint64_t kSlots = 1024;  // the pingpong mailboxes' capacity
  std::vector<Cell> to_b(kSlots), to_a(kSlots);
  const bool yield = wake == Wake::yield;
  const std::uint64_t total = warmup + iterations;
  Histogram h;
  std::thread b([&] {
    bench::pin(cpu_b);
    for (std::uint64_t i = 0; i < total; ++i) {
      while (to_b[i % kSlots].seq.load(std::memory_order_acquire) != i + 1)
        yield ? (void)sched_yield() : bench::relax();
      to_a[i % kSlots].seq.store(i + 1, std::memory_order_release);
    }
  });
  bench::pin(cpu_a);
  for (std::uint64_t i = 0; i < total; ++i) {
    const std::uint64_t t0 = bench::now_ns();
    to_b[i % kSlots].seq.store(i + 1, std::memory_order_release);
    while (to_a[i % kSlots].seq.load(std::memory_order_acquire) != i + 1)
      yield ? (void)sched_yield() : bench::relax();
    const std::uint64_t t1 = bench::now_ns();
    if (i >= warmup) h.record(t1 - t0);
  }
  b.join();
  bench::unpin();
  return h;
}

// Bare futex: FUTEX_WAIT / FUTEX_WAKE syscalls on two words, every wake a syscall, no
// spinning; what a parking consumer costs without anything else.
Histogram run_futex_raw(int cpu_a, int cpu_b, std::uint64_t warmup, std::uint64_t iterations) {
  Histogram h;
  const std::uint64_t total = warmup + iterations;
  alignas(64) std::atomic<std::uint32_t> to_b{0};
  alignas(64) std::atomic<std::uint32_t> to_a{0};
  std::thread b([&] {
    bench::pin(cpu_b);
    for (std::uint64_t i = 0; i < total; ++i) {
      while (to_b.load(std::memory_order_acquire) == 0) bench::futex_wait(to_b, 0);
      to_b.store(0, std::memory_order_relaxed);
      to_a.store(1, std::memory_order_release);
      bench::futex_wake(to_a);
    }
  });
  bench::pin(cpu_a);
  for (std::uint64_t i = 0; i < total; ++i) {
    const std::uint64_t t0 = bench::now_ns();
    to_b.store(1, std::memory_order_release);
    bench::futex_wake(to_b);
    while (to_a.load(std::memory_order_acquire) == 0) bench::futex_wait(to_a, 0);
    to_a.store(0, std::memory_order_relaxed);
    const std::uint64_t t1 = bench::now_ns();
    if (i >= warmup) h.record(t1 - t0);
  }
  b.join();
  bench::unpin();
  return h;
}

// Two queues, one each way, a thread each end. `Q` provides push(v) and pop() -> v (blocking
// or polling as the adapter decides).
template <class Q>
Histogram run_queue_pair(int cpu_a, int cpu_b, std::uint64_t warmup, std::uint64_t iterations) {
  Histogram h;
  const std::uint64_t total = warmup + iterations;
  Q to_b, to_a;
  std::thread b([&] {
    bench::pin(cpu_b);
    for (std::uint64_t i = 0; i < total; ++i) to_a.push(to_b.pop());
  });
  bench::pin(cpu_a);
  for (std::uint64_t i = 0; i < total; ++i) {
    const std::uint64_t t0 = bench::now_ns();
    to_b.push(t0);
    const std::uint64_t back = to_a.pop();
    const std::uint64_t t1 = bench::now_ns();
    if (i >= warmup) h.record(t1 - back);
  }
  b.join();
  bench::unpin();
  return h;
}

/// ReaderWriterQueue polled: busy (pause) or with sched_yield between polls.
template <bool Yield>
struct RwqPoll {
  moodycamel::ReaderWriterQueue<std::uint64_t> q{1024};
  void push(std::uint64_t v) {
    while (!q.try_enqueue(v)) bench::relax();
  }
  std::uint64_t pop() {
    std::uint64_t v = 0;
    while (!q.try_dequeue(v)) Yield ? (void)sched_yield() : bench::relax();
    return v;
  }
};
/// BlockingReaderWriterQueue: spins (about 10000 tries) then sleeps on a semaphore.
struct RwqBlocking {
  moodycamel::BlockingReaderWriterQueue<std::uint64_t> q{1024};
  void push(std::uint64_t v) {
    while (!q.try_enqueue(v)) bench::relax();
  }
  std::uint64_t pop() {
    std::uint64_t v = 0;
    q.wait_dequeue(v);
    return v;
  }
};
using MutexCondvar = bench::MutexQueue<std::uint64_t>;

struct Labelled {
  std::string key;  // file/JSON name
  std::string label;
  Histogram h;
};
}  // namespace

template <class B>
Histogram run_tern_any(bool split, bool group, Wake wake, std::uint32_t spin, MailboxKind kind,
                       std::uint32_t workers, const std::vector<int>& cpus, std::uint64_t wu,
                       std::uint64_t it) {
  return split   ? run_tern_split<B>(wake, spin, kind, cpus[0], cpus[1], wu, it)
         : group ? run_tern_group<B>(wake, spin, workers, cpus[0], cpus[1], wu, it)
                 : run_tern<B>(wake, spin, kind, cpus[0], cpus[1], wu, it);
}

int main(int argc, char** argv) {
  bench::Args args(argc, argv,
                   {{"wake", "spin"},
                    {"iterations", "200000"},
                    {"warmup", "20000"},
                    {"cpus", "0,1"},
                    {"spin", "0"},
                    {"yields", "0"},
                    {"mailbox", "spsc"},
                    {"json", ""},
                    {"hgrm", ""},
                    {"baselines", "all"},
                    {"rounds", "1"},
                    {"workers", "2"},
                    {"size", "8"},
                    {"inline", std::to_string(Tuning::default_inline_bytes)}},
                   kUsage, {"group", "split-groups"});
  const std::string wname = args.str("wake");
  Wake wake{};
  if (!bench::parse_wake(wname, wake))
    bench::Args::fail("--wake must be spin, futex or yield, got '" + wname + "'", kUsage);
  const std::string mname = args.str("mailbox");
  if (mname != "spsc" && mname != "mpsc")
    bench::Args::fail("--mailbox must be spsc or mpsc, got '" + mname + "'", kUsage);
  const bool split = args.flag("split-groups");
  const bool group = args.flag("group") || split;
  const auto workers = static_cast<std::uint32_t>(args.u64("workers"));
  if (workers == 0 || workers > 256) bench::Args::fail("--workers must be in 1..256", kUsage);
  // A group actor may run on either worker, so its peer sees two producer threads: mpsc.
  // (Split groups have one worker each, so one producer thread per mailbox: spsc is fine.)
  const MailboxKind kind =
      mname == "spsc" && (!group || split) ? MailboxKind::spsc : MailboxKind::mpsc;
  if (split && workers != 2)
    bench::Args::fail("--split-groups uses one worker per group; drop --workers", kUsage);
  const std::string bname = args.str("baselines");
  if (bname != "all" && bname != "floor")
    bench::Args::fail("--baselines must be all or floor, got '" + bname + "'", kUsage);
  const std::vector<int> cpus = args.cpus("cpus");
  if (cpus.size() != 2) bench::Args::fail("--cpus wants two CPUs, e.g. 0,1", kUsage);
  const std::uint64_t iters = args.u64("iterations"), warm = args.u64("warmup");
  if (iters == 0) bench::Args::fail("--iterations must be at least 1", kUsage);
  const std::uint32_t spin = args.str("spin") == "default"
                                 ? ThreadConfig{}.spin_limit
                                 : static_cast<std::uint32_t>(args.u64("spin"));
  const std::uint64_t rounds = args.u64("rounds");
  if (rounds == 0 || rounds > iters)
    bench::Args::fail("--rounds must be in 1..iterations", kUsage);
  g_yields = static_cast<std::uint32_t>(args.u64("yields"));
  g_inline = static_cast<std::uint32_t>(args.u64("inline"));

  std::printf("pingpong: wake=%s mailbox=%s iterations=%llu warmup=%llu cpus=%d,%d%s%s\n",
              wname.c_str(), kind == MailboxKind::spsc ? "spsc" : "mpsc", (unsigned long long)iters,
              (unsigned long long)warm, cpus[0], cpus[1],
              wake == Wake::futex ? (" spin=" + std::to_string(spin) + " yields=" + std::to_string(g_yields)).c_str() : "",
              split   ? " split-groups (1 worker each)"
              : group ? (" group workers=" + std::to_string(workers)).c_str()
                      : "");
  std::fflush(stdout);
  // Floor first, then tern, then the floor again: the better floor is the baseline, so a
  // noisy neighbour during one floor run cannot flatter the ratio.
  // With --rounds R each row runs R times for iterations / R round trips, in turn, and the
  // rounds are merged: a noisy stretch of the run then hits every row alike.
  const std::uint64_t it = iters / rounds, wu = warm / rounds;
  const std::uint64_t size = args.u64("size");
  if (size != 8 && size != 16 && size != 2048)
    bench::Args::fail("--size must be 8, 16 or 2048, got " + std::to_string(size), kUsage);
  Histogram f1, t, f2;
  std::vector<Labelled> extra_rows;
  if (bname == "all") {
    if (wake != Wake::futex)
      extra_rows.push_back({"two_rings", "bare two rings of 128-byte slots", Histogram()});
    extra_rows.push_back({"rwq", wake == Wake::spin    ? "moodycamel RWQ busy-poll"
                                 : wake == Wake::yield ? "moodycamel RWQ poll+yield"
                                                       : "moodycamel BlockingRWQ", Histogram()});
    if (wake == Wake::futex) {
      extra_rows.push_back({"futex_raw", "bare futex syscalls", Histogram()});
      extra_rows.push_back({"mutex_condvar", "mutex+condvar queue", Histogram()});
    }
  }
  for (std::uint64_t round = 0; round < rounds; ++round) {
    f1.merge(run_floor(wake, cpus[0], cpus[1], wu, it));
    t.merge(size == 2048 ? run_tern_any<BallN<2048>>(split, group, wake, spin, kind, workers, cpus, wu, it)
            : size == 16 ? run_tern_any<BallN<16>>(split, group, wake, spin, kind, workers, cpus, wu, it)
                         : run_tern_any<Ball>(split, group, wake, spin, kind, workers, cpus, wu, it));
    f2.merge(run_floor(wake, cpus[0], cpus[1], wu, it));
    for (Labelled& r : extra_rows) {
      if (r.key == "two_rings")
        r.h.merge(run_two_rings(wake, cpus[0], cpus[1], wu, it));
      else if (r.key == "rwq")
        r.h.merge(wake == Wake::spin    ? run_queue_pair<RwqPoll<false>>(cpus[0], cpus[1], wu, it)
                  : wake == Wake::yield ? run_queue_pair<RwqPoll<true>>(cpus[0], cpus[1], wu, it)
                                        : run_queue_pair<RwqBlocking>(cpus[0], cpus[1], wu, it));
      else if (r.key == "futex_raw")
        r.h.merge(run_futex_raw(cpus[0], cpus[1], wu, it));
      else
        r.h.merge(run_queue_pair<MutexCondvar>(cpus[0], cpus[1], wu, it));
    }
  }
  Histogram& floor = f1.value_at_percentile(50) <= f2.value_at_percentile(50) ? f1 : f2;
  const char* floor_name = wake == Wake::futex ? "bare atomic wait/notify"
                           : wake == Wake::yield ? "bare cache line + yield"
                                                 : "bare cache line";
  const std::string tern_label =
      split   ? "tern " + wname + " (2 groups of 1 worker)"
      : group ? "tern " + wname + " (group of " + std::to_string(workers) + ")"
              : "tern " + wname + " (" + mname + ")";
  const std::string tern_row = size == 8 ? tern_label : tern_label + ", " + std::to_string(size) + " B";
  std::vector<bench::Row> rows;
  rows.push_back({tern_row, t});
  rows.push_back({std::string(floor_name) + " (floor)", floor});
  for (const Labelled& r : extra_rows) rows.push_back({r.label + " (baseline)", r.h});
  bench::print_table("round trip", rows);
  auto p50_ratio = [&](const Histogram& h) {
    return static_cast<double>(t.value_at_percentile(50)) /
           static_cast<double>(std::max<std::uint64_t>(1, h.value_at_percentile(50)));
  };
  const double ratio = p50_ratio(floor);
  std::printf("ratio p50 tern/floor: %.2fx\n", ratio);
  if (wake == Wake::futex && spin == 0)
    std::printf("note: tern parks on every hop here (--spin 0) while std::atomic wait spins\n"
                "      first: read this run against the bare futex syscalls row (--spin default\n"
                "      shows the library's own spin-then-park policy against the floor)\n");
  for (const Labelled& r : extra_rows)
    std::printf("ratio p50 tern/%s: %.2fx\n", r.label.c_str(), p50_ratio(r.h));

  const std::string prefix = args.str("hgrm");
  bench::write_hgrm(prefix, "tern", t);
  bench::write_hgrm(prefix, "floor", floor);
  for (const Labelled& r : extra_rows) bench::write_hgrm(prefix, r.key, r.h);
  std::string rows_json = "\"rows\": [{\"key\": \"tern\", \"label\": " + bench::jstr(tern_row) +
                          ", " + bench::json_fields("", t) + "}, {\"key\": \"floor\", \"label\": " +
                          bench::jstr(std::string(floor_name) + " (floor)") + ", " +
                          bench::json_fields("", floor) + "}";
  for (const Labelled& r : extra_rows)
    rows_json += ", {\"key\": " + bench::jstr(r.key) + ", \"label\": " + bench::jstr(r.label) +
                 ", " + bench::json_fields("", r.h) + "}";
  rows_json += "]";

  char extra[400];
  std::snprintf(extra, sizeof extra,
                "\"wake\": \"%s\", \"mailbox\": \"%s\", \"iterations\": %llu, \"cpus\": [%d, %d], "
                "\"floor\": \"%s\", \"ratio_p50\": %.4f, \"group\": %s, \"workers\": %u, \"spin\": %u, "
                "\"yields\": %u, \"rounds\": %llu, \"msg_bytes\": %llu",
                wname.c_str(), kind == MailboxKind::spsc ? "spsc" : "mpsc",
                (unsigned long long)iters, cpus[0], cpus[1], floor_name, ratio,
                split ? "\"split\"" : group ? "true" : "false", split ? 1 : group ? workers : 0,
                spin, g_yields, (unsigned long long)rounds, (unsigned long long)size);
  bench::write_file(args.str("json"), "{" + std::string(extra) + ", " +
                                          bench::json_fields("", t) + ", " +
                                          bench::json_fields("floor_", floor) + ", " +
                                          rows_json + "}\n");
  return 0;
}
