// One producer actor streams N messages to one consumer actor (busy-poll, pinned); msgs/s
// beside a raw moodycamel ReaderWriterQueue carrying the same 16-byte message between two
// threads on the same CPUs, in the same process (the target's baseline), and, to show where
// the gap comes from, the same queue carrying what an actor message needs (type, sender,
// payload: 32 bytes) with the consumer calling a handler through a table, as tern does.
#include <atomic>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>

#include <readerwriterqueue/readerwriterqueue.h>

#include <tern/manager.hpp>

#include "bench_util.hpp"

using namespace tern;

static const char* kUsage =
    "usage: throughput [--messages N] [--cpus A,B] [--capacity N] [--mailbox spsc|mpsc]\n"
    "                  [--repeat N] [--json FILE]\n"
    "  msgs/s of one producer actor streaming to one consumer actor, beside a raw moodycamel\n"
    "  ReaderWriterQueue of the 16-byte message, and the same queue carrying type + sender +\n"
    "  message (32 bytes) with table dispatch, run in the same process on the same CPUs (best\n"
    "  of --repeat runs each).\n";

namespace {
struct Tick {
  static constexpr MessageId message_id = 1;
  std::uint64_t seq = 0;
  double px = 0;
};

class Consumer : public Actor {
 public:
  explicit Consumer(std::uint64_t n) : n_(n) { handle<&Consumer::on_tick>(); }
  void on_tick(const Tick& t) {
    sum_ += t.seq;
    if (++got_ == n_) {
      end_ns = bench::now_ns();
      terminate();
    }
  }
  std::uint64_t end_ns = 0, sum_ = 0;

 private:
  std::uint64_t n_, got_ = 0;
};

class Producer : public Actor {
 public:
  Producer(ActorRef to, std::uint64_t n) : to_(to), n_(n) { handle<&Producer::on_start>(); }
  void on_start(const Start&) {
    start_ns = bench::now_ns();
    for (std::uint64_t i = 0; i < n_; ++i) (void)to_.send(Tick{i, 1.0});
  }
  std::uint64_t start_ns = 0;

 private:
  ActorRef to_;
  std::uint64_t n_;
};

double run_tern(std::uint64_t n, int ca, int cb, std::uint32_t cap, MailboxKind kind) {
  Manager mgr;
  ThreadConfig ta, tb;
  ta.wake = tb.wake = Wake::spin;
  ta.cpus = {ca};
  tb.cpus = {cb};
  auto* c = new Consumer(n);
  ActorRef cref = mgr.manage("consumer", std::unique_ptr<Actor>(c), tb, MailboxConfig{cap, kind});
  auto* p = new Producer(cref, n);
  mgr.manage("producer", std::unique_ptr<Actor>(p), ta);
  mgr.init();
  mgr.run();
  mgr.end();
  if (c->sum_ != n * (n - 1) / 2) {
    std::fprintf(stderr, "error: consumer checksum mismatch\n");
    std::exit(1);
  }
  return static_cast<double>(n) * 1e9 / static_cast<double>(c->end_ns - p->start_ns);
}

// What a queue needs to carry an actor message: its type and sender beside the payload; the
// consumer finds the handler by type and calls it through a pointer (not inlined).
struct Envelope {
  std::uint32_t id = 0;
  const void* sender = nullptr;
  Tick payload;
};
static_assert(sizeof(Envelope) == 32);
using HandlerFn = void (*)(void* self, const void* msg);
struct alignas(64) Sink {  // why aligned: on a line of its own, not the producer's stack
  std::uint64_t sum = 0;
};
__attribute__((noinline)) void on_tick_fn(void* self, const void* msg) {
  static_cast<Sink*>(self)->sum += static_cast<const Tick*>(msg)->seq;
}

// The same loop as run_rwq below (kept separate so that the baseline's code is exactly what
// it was when the target was set), carrying an Envelope and calling the handler.
double run_rwq_dispatch(std::uint64_t n, int ca, int cb, std::uint32_t cap) {
  moodycamel::ReaderWriterQueue<Envelope> q(cap);
  HandlerFn table[4] = {nullptr, &on_tick_fn, nullptr, nullptr};
  HandlerFn* volatile table_ref = table;  // why volatile: keep the call indirect, as in tern
  const auto sink_owner = std::make_unique<Sink>();
  Sink& sink = *sink_owner;
  std::uint64_t start = 0, end = 0;
  std::atomic<bool> ready{false};
  std::thread consumer([&] {
    bench::pin(cb);
    ready = true;
    Envelope e;
    HandlerFn* const t = table_ref;
    for (std::uint64_t got = 0; got < n;) {
      if (q.try_dequeue(e)) {
        t[e.id & 3](&sink, &e.payload);
        ++got;
      } else {
        bench::relax();
      }
    }
    end = bench::now_ns();
  });
  bench::pin(ca);
  while (!ready) bench::relax();
  start = bench::now_ns();
  for (std::uint64_t i = 0; i < n; ++i)
    while (!q.try_enqueue(Envelope{Tick::message_id, &sink, Tick{i, 1.0}})) bench::relax();
  consumer.join();
  bench::unpin();
  if (sink.sum != n * (n - 1) / 2) {
    std::fprintf(stderr, "error: dispatch baseline checksum mismatch\n");
    std::exit(1);
  }
  return static_cast<double>(n) * 1e9 / static_cast<double>(end - start);
}

double run_rwq(std::uint64_t n, int ca, int cb, std::uint32_t cap) {
  moodycamel::ReaderWriterQueue<Tick> q(cap);
  std::uint64_t start = 0, end = 0, sum = 0;
  std::atomic<bool> ready{false};
  std::thread consumer([&] {
    bench::pin(cb);
    ready = true;
    Tick t;
    for (std::uint64_t got = 0; got < n;) {
      if (q.try_dequeue(t)) {
        sum += t.seq;
        ++got;
      } else {
        bench::relax();
      }
    }
    end = bench::now_ns();
  });
  bench::pin(ca);
  while (!ready) bench::relax();
  start = bench::now_ns();
  for (std::uint64_t i = 0; i < n; ++i)
    while (!q.try_enqueue(Tick{i, 1.0})) bench::relax();
  consumer.join();
  bench::unpin();
  if (sum != n * (n - 1) / 2) {
    std::fprintf(stderr, "error: baseline checksum mismatch\n");
    std::exit(1);
  }
  return static_cast<double>(n) * 1e9 / static_cast<double>(end - start);
}
}  // namespace

int main(int argc, char** argv) {
  bench::Args args(argc, argv,
                   {{"messages", "10000000"},
                    {"cpus", "0,1"},
                    {"capacity", "4096"},
                    {"mailbox", "spsc"},
                    {"repeat", "3"},
                    {"json", ""}},
                   kUsage);
  const std::uint64_t n = args.u64("messages");
  if (n < 2) bench::Args::fail("--messages must be at least 2", kUsage);
  const std::vector<int> cpus = args.cpus("cpus");
  if (cpus.size() != 2) bench::Args::fail("--cpus wants two CPUs, e.g. 0,1", kUsage);
  const auto cap = static_cast<std::uint32_t>(args.u64("capacity"));
  if (cap < 2 || cap > (1u << 24)) bench::Args::fail("--capacity must be in 2..16777216", kUsage);
  const std::string mname = args.str("mailbox");
  if (mname != "spsc" && mname != "mpsc")
    bench::Args::fail("--mailbox must be spsc or mpsc, got '" + mname + "'", kUsage);
  const MailboxKind kind = mname == "spsc" ? MailboxKind::spsc : MailboxKind::mpsc;
  const std::uint64_t repeat = std::max<std::uint64_t>(1, args.u64("repeat"));

  std::printf("throughput: messages=%llu capacity=%u mailbox=%s cpus=%d,%d repeat=%llu\n",
              (unsigned long long)n, cap, mname.c_str(), cpus[0], cpus[1],
              (unsigned long long)repeat);
  double best_t = 0, best_b = 0, best_d = 0;
  for (std::uint64_t r = 0; r < repeat; ++r) {  // interleaved, so drift hits all alike
    best_b = std::max(best_b, run_rwq(n, cpus[0], cpus[1], cap));
    best_t = std::max(best_t, run_tern(n, cpus[0], cpus[1], cap, kind));
    best_d = std::max(best_d, run_rwq_dispatch(n, cpus[0], cpus[1], cap));
  }
  std::printf("%-52s %14.0f msgs/s\n", ("tern actor -> actor (" + mname + ")").c_str(), best_t);
  std::printf("%-52s %14.0f msgs/s\n", "moodycamel ReaderWriterQueue, 16 B Tick (baseline)", best_b);
  std::printf("%-52s %14.0f msgs/s\n", "  same queue, 32 B type+sender+Tick, table dispatch", best_d);
  std::printf("ratio tern/baseline: %.2fx\n", best_t / best_b);
  std::printf("ratio tern/queue with type, sender and dispatch: %.2fx\n", best_t / best_d);
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "{\"messages\": %llu, \"capacity\": %u, \"mailbox\": \"%s\", \"cpus\": [%d, %d], "
                "\"msgs_per_s\": %.0f, \"baseline\": \"moodycamel::ReaderWriterQueue\", "
                "\"baseline_msgs_per_s\": %.0f, \"ratio\": %.4f, "
                "\"dispatch_baseline_msgs_per_s\": %.0f, \"dispatch_ratio\": %.4f}\n",
                (unsigned long long)n, cap, mname.c_str(), cpus[0], cpus[1], best_t, best_b,
                best_t / best_b, best_d, best_t / best_d);
  bench::write_file(args.str("json"), buf);
  return 0;
}
