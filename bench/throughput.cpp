// One producer actor streams N messages of --size bytes (16, 256 or 2048) to one consumer
// actor (busy-poll, pinned); msgs/s beside a raw moodycamel ReaderWriterQueue carrying the
// same message between two threads on the same CPUs, in the same process (the target's
// baseline), and, to show where the gap comes from, the same queue carrying what an actor
// message needs (type, sender, payload) with the consumer calling a handler through a
// table, as tern does. With --mailbox mpsc, also moodycamel ConcurrentQueue (an MPMC queue)
// carrying the same message.
#include <atomic>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>

#include <concurrentqueue/concurrentqueue.h>
#include <readerwriterqueue/readerwriterqueue.h>

#include <tern/manager.hpp>

#include "bench_util.hpp"

using namespace tern;

static const char* kUsage =
    "usage: throughput [--messages N] [--cpus A,B] [--capacity N] [--mailbox spsc|mpsc]\n"
    "                  [--size 16|256|2048] [--inline N] [--repeat N] [--json FILE]\n"
    "  msgs/s of one producer actor streaming messages of --size bytes to one consumer actor,\n"
    "  beside a raw moodycamel ReaderWriterQueue of the same message, and the same queue\n"
    "  carrying type + sender + message with table dispatch (mpsc: also moodycamel\n"
    "  ConcurrentQueue), run in the same process on the same CPUs (best of --repeat runs each).\n"
    "  --inline: the consumer mailbox's inline_bytes (larger messages are pooled; default 256).\n";

namespace {
/// The streamed message: 16 bytes (a Tick) or padded to N.
template <std::size_t N>
struct Msg {
  static constexpr MessageId message_id = 1000 + N;
  std::uint64_t seq = 0;
  double px = 0;
  unsigned char pad[N - 16];
};
template <>
struct Msg<16> {
  static constexpr MessageId message_id = 1;
  std::uint64_t seq = 0;
  double px = 0;
};

template <std::size_t N>
class Consumer : public Actor {
 public:
  explicit Consumer(std::uint64_t n) : n_(n) { handle<&Consumer::on_tick>(); }
  void on_tick(const Msg<N>& t) {
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

template <std::size_t N>
class Producer : public Actor {
 public:
  Producer(ActorRef to, std::uint64_t n) : to_(to), n_(n) { handle<&Producer::on_start>(); }
  void on_start(const Start&) {
    start_ns = bench::now_ns();
    for (std::uint64_t i = 0; i < n_; ++i) (void)to_.send(Msg<N>{i, 1.0});
  }
  std::uint64_t start_ns = 0;

 private:
  ActorRef to_;
  std::uint64_t n_;
};

template <std::size_t N>
double run_tern(std::uint64_t n, int ca, int cb, std::uint32_t cap, MailboxKind kind,
                std::uint32_t inline_bytes) {
  Manager mgr;
  ThreadConfig ta, tb;
  ta.wake = tb.wake = Wake::spin;
  ta.cpus = {ca};
  tb.cpus = {cb};
  auto* c = new Consumer<N>(n);
  MailboxConfig mc{cap, kind};
  mc.inline_bytes = inline_bytes;
  mc.pool_blocks = cap;  // as many in flight as the ring holds small messages
  ActorRef cref = mgr.manage("consumer", std::unique_ptr<Actor>(c), tb, mc);
  auto* p = new Producer<N>(cref, n);
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
template <std::size_t N>
struct Envelope {
  std::uint32_t id = 0;
  const void* sender = nullptr;
  Msg<N> payload;
};
static_assert(sizeof(Envelope<16>) == 32);
using HandlerFn = void (*)(void* self, const void* msg);
struct alignas(64) Sink {  // why aligned: on a line of its own, not the producer's stack
  std::uint64_t sum = 0;
};
__attribute__((noinline)) void on_tick_fn(void* self, const void* msg) {
  // seq is the first member of every Msg<N>
  static_cast<Sink*>(self)->sum += *static_cast<const std::uint64_t*>(msg);
}

// The same loop as run_rwq below (kept separate so that the baseline's code is exactly what
// it was when the target was set), carrying an Envelope and calling the handler.
template <std::size_t N>
double run_rwq_dispatch(std::uint64_t n, int ca, int cb, std::uint32_t cap) {
  moodycamel::ReaderWriterQueue<Envelope<N>> q(cap);
  HandlerFn table[4] = {nullptr, &on_tick_fn, nullptr, nullptr};
  HandlerFn* volatile table_ref = table;  // why volatile: keep the call indirect, as in tern
  const auto sink_owner = std::make_unique<Sink>();
  Sink& sink = *sink_owner;
  std::uint64_t start = 0, end = 0;
  std::atomic<bool> ready{false};
  std::thread consumer([&] {
    bench::pin(cb);
    ready = true;
    Envelope<N> e;
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
    while (!q.try_enqueue(Envelope<N>{1, &sink, Msg<N>{i, 1.0}})) bench::relax();
  consumer.join();
  bench::unpin();
  if (sink.sum != n * (n - 1) / 2) {
    std::fprintf(stderr, "error: dispatch baseline checksum mismatch\n");
    std::exit(1);
  }
  return static_cast<double>(n) * 1e9 / static_cast<double>(end - start);
}

template <std::size_t N, class Queue>
double run_queue(std::uint64_t n, int ca, int cb, std::uint32_t cap) {
  Queue q(cap);
  std::uint64_t start = 0, end = 0, sum = 0;
  std::atomic<bool> ready{false};
  std::thread consumer([&] {
    bench::pin(cb);
    ready = true;
    Msg<N> t;
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
    while (!q.try_enqueue(Msg<N>{i, 1.0})) bench::relax();
  consumer.join();
  bench::unpin();
  if (sum != n * (n - 1) / 2) {
    std::fprintf(stderr, "error: baseline checksum mismatch\n");
    std::exit(1);
  }
  return static_cast<double>(n) * 1e9 / static_cast<double>(end - start);
}
template <std::size_t N>
double run_rwq(std::uint64_t n, int ca, int cb, std::uint32_t cap) {
  return run_queue<N, moodycamel::ReaderWriterQueue<Msg<N>>>(n, ca, cb, cap);
}
template <std::size_t N>
double run_cq(std::uint64_t n, int ca, int cb, std::uint32_t cap) {
  return run_queue<N, moodycamel::ConcurrentQueue<Msg<N>>>(n, ca, cb, cap);
}

struct Best {
  double tern = 0, rwq = 0, dispatch = 0, cq = 0;
};
template <std::size_t N>
Best run_all(std::uint64_t n, const std::vector<int>& cpus, std::uint32_t cap, MailboxKind kind,
             std::uint32_t inline_bytes, std::uint64_t repeat) {
  Best b;
  for (std::uint64_t r = 0; r < repeat; ++r) {  // interleaved, so drift hits all alike
    b.rwq = std::max(b.rwq, run_rwq<N>(n, cpus[0], cpus[1], cap));
    b.tern = std::max(b.tern, run_tern<N>(n, cpus[0], cpus[1], cap, kind, inline_bytes));
    b.dispatch = std::max(b.dispatch, run_rwq_dispatch<N>(n, cpus[0], cpus[1], cap));
    if (kind == MailboxKind::mpsc) b.cq = std::max(b.cq, run_cq<N>(n, cpus[0], cpus[1], cap));
  }
  return b;
}
}  // namespace

int main(int argc, char** argv) {
  bench::Args args(argc, argv,
                   {{"messages", "10000000"},
                    {"cpus", "0,1"},
                    {"capacity", "4096"},
                    {"mailbox", "spsc"},
                    {"repeat", "3"},
                    {"size", "16"},
                    {"inline", "256"},
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

  const std::uint64_t size = args.u64("size");
  if (size != 16 && size != 256 && size != 2048)
    bench::Args::fail("--size must be 16, 256 or 2048, got " + std::to_string(size), kUsage);
  const auto inline_bytes = static_cast<std::uint32_t>(args.u64("inline"));
  if (inline_bytes < 16 || inline_bytes > 65536)
    bench::Args::fail("--inline must be in 16..65536", kUsage);

  std::printf("throughput: messages=%llu size=%llu capacity=%u mailbox=%s inline=%u cpus=%d,%d "
              "repeat=%llu\n",
              (unsigned long long)n, (unsigned long long)size, cap, mname.c_str(), inline_bytes,
              cpus[0], cpus[1], (unsigned long long)repeat);
  const Best b = size == 16    ? run_all<16>(n, cpus, cap, kind, inline_bytes, repeat)
                 : size == 256 ? run_all<256>(n, cpus, cap, kind, inline_bytes, repeat)
                               : run_all<2048>(n, cpus, cap, kind, inline_bytes, repeat);
  const double best_t = b.tern, best_b = b.rwq, best_d = b.dispatch;
  const std::string sz = std::to_string(size) + " B";
  std::printf("%-56s %14.0f msgs/s\n", ("tern actor -> actor (" + mname + "), " + sz).c_str(), best_t);
  std::printf("%-56s %14.0f msgs/s\n", ("moodycamel ReaderWriterQueue, " + sz + " (baseline)").c_str(), best_b);
  std::printf("%-56s %14.0f msgs/s\n", "  same queue, + type and sender, table dispatch", best_d);
  if (kind == MailboxKind::mpsc)
    std::printf("%-56s %14.0f msgs/s\n", ("moodycamel ConcurrentQueue, " + sz).c_str(), b.cq);
  std::printf("ratio tern/baseline: %.2fx\n", best_t / best_b);
  std::printf("ratio tern/queue with type, sender and dispatch: %.2fx\n", best_t / best_d);
  if (kind == MailboxKind::mpsc) std::printf("ratio tern/ConcurrentQueue: %.2fx\n", best_t / b.cq);
  char buf[768];
  std::snprintf(buf, sizeof buf,
                "{\"messages\": %llu, \"msg_bytes\": %llu, \"capacity\": %u, \"mailbox\": \"%s\", "
                "\"inline_bytes\": %u, \"cpus\": [%d, %d], "
                "\"msgs_per_s\": %.0f, \"baseline\": \"moodycamel::ReaderWriterQueue\", "
                "\"baseline_msgs_per_s\": %.0f, \"ratio\": %.4f, "
                "\"dispatch_baseline_msgs_per_s\": %.0f, \"dispatch_ratio\": %.4f, "
                "\"concurrentqueue_msgs_per_s\": %.0f}\n",
                (unsigned long long)n, (unsigned long long)size, cap, mname.c_str(), inline_bytes,
                cpus[0], cpus[1], best_t, best_b, best_t / best_b, best_d, best_t / best_d, b.cq);
  bench::write_file(args.str("json"), buf);
  return 0;
}
