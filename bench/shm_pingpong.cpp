// tern's shared-memory transport (issue 11) beside its cross-process baselines, all in one run
// on the same two CPUs: each cross-process measurement forks a child pinned to one CPU while the
// parent is pinned to the other, and times round trips (after a warm-up) or a one-way stream.
//   tern           a 16-byte round trip between two actors in two processes through
//                  tern/shm.hpp (ShmNode, export_actor, remote, reply()), Wake::spin
//   tern-futex     the same with Wake::futex on both sides (parks every hop, as futex-floor)
//   tern-stream    16- and 256-byte streams from one process to an actor in the other, send()
//   tern-gateway   bench/gateway_roundtrip's round trip through two tern gateways (JSON over
//                  tcp://127.0.0.1), one in each process (only when the gateway is built)
//   floor          two processes bounce a sequence number over two 64-byte lines of a shared
//                  mapping (a file in --shm-dir, MAP_SHARED), busy-polling: the spin floor
//   futex-floor    the same, but the waiter parks on a futex word in the shared mapping
//                  (shared, not FUTEX_PRIVATE): sleeping flag + FUTEX_WAKE
//   inproc         tern's in-process round trip of a 16-byte message between two actors with
//                  Wake::spin, one thread each on the same two CPUs (as bench/pingpong)
//   inproc-stream  tern's in-process stream of 16- and 256-byte messages, actor to actor
//   floor-stream   a bare two-process SPSC ring of 16- and 256-byte messages in a shared mapping
//   zmq-ipc        libzmq PAIR round trip of 16 bytes over ipc://, and PUSH/PULL streams of
//   zmq-tcp        16 and 256 bytes; the same over tcp://127.0.0.1
//   iceoryx        Eclipse iceoryx pub/sub round trip of 16 bytes (bench/shm_iceoryx.cpp; only
//                  when the iceoryx_baseline feature found it)
// Each mode runs --rounds times, the modes taking turns; the report is each key's median round.
#include <zmq.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <tern/manager.hpp>
#include <tern/shm.hpp>

#include "bench_util.hpp"
#ifdef TERN_GATEWAY_ROW
#include <tern/gateway.hpp>

#include "gateway_roundtrip.hpp"
#endif
#include "shm_baselines.hpp"
#include "tern_pingpong.hpp"

using namespace tern;
using shmb::Failure;

#ifdef TERN_GATEWAY_ROW
constexpr bool kGateway = true;
#else
constexpr bool kGateway = false;
#endif

#ifdef TERN_ICEORYX_BASELINE
namespace shmb {
RoundOut run_iceoryx(const Ctx& c);  // bench/shm_iceoryx.cpp
}
constexpr bool kIceoryx = true;
#else
constexpr bool kIceoryx = false;
#endif

static const char* kUsage =
    "usage: shm_pingpong [--only MODE[,MODE]] [--iterations N] [--warmup N] [--rounds R]\n"
    "                    [--zmq-iterations N] [--messages M] [--ring-bytes B] [--futex-spin N]\n"
    "                    [--cpus A,B] [--timeout S] [--shm-dir DIR] [--ipc-dir DIR] [--json]\n"
    "  tern's shared-memory transport beside its cross-process baselines, in one run on CPUs A\n"
    "  and B (parent on A, a forked child on B; not pinned when fewer than 2 CPUs are online).\n"
    "  Modes (default: all): tern tern-futex tern-stream tern-gateway (when the gateway is\n"
    "  built) floor futex-floor inproc inproc-stream floor-stream zmq-ipc zmq-tcp and iceoryx\n"
    "  (when built with the iceoryx_baseline feature; it starts and stops RouDi)\n"
    "  --iterations N  round trips measured per round (default 100000), after --warmup N more\n"
    "                  (default iterations/10); zmq modes: --zmq-iterations (default\n"
    "                  min(iterations, 10000)) and a tenth of that as warm-up\n"
    "  --rounds R      every mode runs R times, in turn (default 3); each key reports the\n"
    "                  median round (latency: the round with the median p50, its p99 and\n"
    "                  p99.9 from that same round; throughput: the median msgs/s)\n"
    "  --messages M    messages per stream, per size (default 1000000)\n"
    "  --ring-bytes B  the stream rings' size in bytes, a power of two >= 4096 (default 131072,\n"
    "                  a default tern mailbox ring's bytes)\n"
    "  --futex-spin N  futex-floor: polls before parking (default 0: park on every hop)\n"
    "  --timeout S     seconds one two-process run may take before its child is killed and\n"
    "                  the mode reported failed (default 60)\n"
    "  --shm-dir DIR   where the shared-mapping files are made (default /dev/shm)\n"
    "  --ipc-dir DIR   where zmq-ipc's socket files and iceoryx's RouDi config are made\n"
    "                  (default /tmp)\n"
    "  --json          print one JSON object (all keys) instead of the table\n"
    "  --json-file F   also write that JSON object to file F (scripts/bench: table and JSON)\n"
    "  --inject hang|crash  test hook: every child hangs, or exits with status 3\n"
    "  Exit status: 0, or 1 when a mode failed (the others still run), 2 on a usage error.\n";

namespace {

using shmb::Ctx;
using shmb::RoundOut;

// ---- floor and futex-floor: two lines of a shared mapping --------------------------------------

/// One direction: the sender's sequence number and the receiver's "sleeping" futex word.
/// why one line each: a direction's traffic touches only its own line.
struct alignas(shmb::kCacheLine) SeqLine {
  std::atomic<std::uint64_t> seq{0};
  std::atomic<std::uint32_t> sleeping{0};
};
struct PingPongShm {
  SeqLine to_child;
  SeqLine to_parent;
};
static_assert(sizeof(SeqLine) == 64 && offsetof(PingPongShm, to_parent) == 64);

/// Returns once `l.seq == v`. After `spin` polls the waiter announces itself (sleeping = 1),
/// re-checks and parks on the word. The announce/re-check and post_seq's store/look are all
/// seq_cst: either the waiter sees the new seq or the poster sees the flag (Dekker), so no
/// wake is lost. `idle(timed_out)` runs after each park (the parent's deadline check: a full
/// check only when the park timed out, so a measured hop pays no extra syscall).
template <class Idle>
void wait_seq(SeqLine& l, std::uint64_t v, std::uint32_t spin, std::uint64_t park_ns, Idle&& idle) {
  for (std::uint32_t k = 0; k < spin; ++k) {
    if (l.seq.load(std::memory_order_acquire) == v) return;
    bench::relax();
  }
  for (;;) {
    if (l.seq.load(std::memory_order_acquire) == v) return;
    l.sleeping.store(1, std::memory_order_seq_cst);
    if (l.seq.load(std::memory_order_seq_cst) == v) {
      l.sleeping.store(0, std::memory_order_relaxed);
      return;
    }
    idle(shmb::futex_wait_shared(l.sleeping, 1, park_ns));
  }
}
/// Publishes `v`; one FUTEX_WAKE only when the peer said it sleeps (the peer clears nothing
/// after a wake: the poster does, so the next post pays no syscall).
void post_seq(SeqLine& l, std::uint64_t v) {
  l.seq.store(v, std::memory_order_seq_cst);
  if (l.sleeping.load(std::memory_order_seq_cst) != 0) {
    l.sleeping.store(0, std::memory_order_relaxed);
    shmb::futex_wake_shared(l.sleeping);
  }
}

RoundOut run_floor_any(const Ctx& c, bool futex) {
  const std::string name = futex ? "futex-floor" : "floor";
  shmb::ShmFile seg(c.shm_dir, sizeof(PingPongShm));
  auto* ps = new (seg.data()) PingPongShm;
  const std::uint64_t total = c.warmup + c.iterations;
  const std::uint32_t spin = c.futex_spin;
  shmb::TwoProcs p(c.procs(name), [&](shmb::Ctl& ctl) {
    shmb::Mapping m = shmb::Mapping::open(seg.path(), sizeof(PingPongShm));
    auto* s = static_cast<PingPongShm*>(m.data());
    ctl.stage.store(1, std::memory_order_release);
    for (std::uint64_t i = 1; i <= total; ++i) {
      if (futex) {
        wait_seq(s->to_child, i, spin, 0, [](bool) {});
        post_seq(s->to_parent, i);
      } else {
        while (s->to_child.seq.load(std::memory_order_acquire) != i) bench::relax();
        s->to_parent.seq.store(i, std::memory_order_release);
      }
    }
  });
  p.wait_stage(1);
  seg.unlink();  // both have it mapped: nothing is left behind, whatever happens next
  Histogram h;
  for (std::uint64_t i = 1; i <= total; ++i) {
    const std::uint64_t t0 = bench::now_ns();
    if (futex) {
      post_seq(ps->to_child, i);
      wait_seq(ps->to_parent, i, spin, 100'000'000, [&](bool timed_out) {
        if (timed_out)
          p.check();
        else
          p.poll();
      });
    } else {
      ps->to_child.seq.store(i, std::memory_order_release);
      while (ps->to_parent.seq.load(std::memory_order_acquire) != i) p.poll();
    }
    const std::uint64_t t1 = bench::now_ns();
    if (i > c.warmup) h.record(t1 - t0);
  }
  p.join();
  RoundOut o;
  if (futex)
    o.lat.push_back({"futex_floor_", "futex floor: shared futex word, 2 processes" +
                                         std::string(spin ? "" : ", parks every hop"), h});
  else
    o.lat.push_back({"floor_", "floor: bare cache lines, 2 processes, spin", h});
  return o;
}
RoundOut run_floor(const Ctx& c) { return run_floor_any(c, false); }
RoundOut run_futex_floor(const Ctx& c) { return run_floor_any(c, true); }

// ---- floor-stream: the simplest correct SPSC ring in a shared mapping --------------------------

/// The streamed message: a sequence number and a price, padded to N bytes.
template <std::size_t N>
struct StreamMsg {
  std::uint64_t seq = 0;
  double px = 0;
  unsigned char pad[N - 16] = {};
};
template <>
struct StreamMsg<16> {
  std::uint64_t seq = 0;
  double px = 0;
};

/// A slot: the producer's commit word (the message's sequence number + 1 once it is written),
/// then the message. A 16-byte message takes 32 bytes, as a tern record does.
template <std::size_t N>
struct alignas(16) Slot {
  std::atomic<std::uint64_t> commit{0};
  std::uint64_t reserved = 0;
  StreamMsg<N> msg;
};
static_assert(sizeof(Slot<16>) == 32 && sizeof(Slot<256>) == 272);

/// The consumer-owned index on a line of its own; the slots follow.
struct RingHeader {
  alignas(shmb::kCacheLine) std::atomic<std::uint64_t> tail{0};  ///< slots below it are free
};
static_assert(sizeof(RingHeader) == 64);

/// The simplest correct single-producer ring of fixed-size slots, with no shared head index:
/// the consumer polls the next slot's commit word (release/acquire with the producer's
/// store), so a message moves its own lines only; the producer reads the consumer's tail
/// only when its cached copy says the ring is full.
template <std::size_t N>
double run_ring_stream(const Ctx& c) {
  using S = Slot<N>;
  const std::uint64_t slots = std::bit_floor(c.ring_bytes / sizeof(S)), mask = slots - 1;
  const std::uint64_t release_mask = slots / 8 - 1;  // --ring-bytes >= 4096: at least 8 slots
  const std::uint64_t n = c.messages;
  const std::size_t bytes = sizeof(RingHeader) + slots * sizeof(S);
  shmb::ShmFile seg(c.shm_dir, bytes);
  auto* hdr = new (seg.data()) RingHeader;
  auto* ring = reinterpret_cast<S*>(static_cast<char*>(seg.data()) + sizeof(RingHeader));
  for (std::uint64_t k = 0; k < slots; ++k) new (&ring[k]) S;
  shmb::TwoProcs p(c.procs("floor-stream"), [&](shmb::Ctl& ctl) {
    shmb::Mapping m = shmb::Mapping::open(seg.path(), bytes);
    auto* h = static_cast<RingHeader*>(m.data());
    auto* r = reinterpret_cast<S*>(static_cast<char*>(m.data()) + sizeof(RingHeader));
    ctl.stage.store(1, std::memory_order_release);
    std::uint64_t released = 0;
    for (std::uint64_t i = 0; i < n; ++i) {
      S& s = r[i & mask];
      if (s.commit.load(std::memory_order_acquire) != i + 1) {
        if (released != i) {  // hand back all read so far before waiting
          h->tail.store(i, std::memory_order_release);
          released = i;
        }
        while (s.commit.load(std::memory_order_acquire) != i + 1) bench::relax();
      }
      // Read in place, as a tern handler reads its `const T&`: the sequence number only.
      const std::uint64_t seq = s.msg.seq;
      if (seq != i)
        throw Failure("floor-stream: message " + std::to_string(i) + " carried sequence number " +
                      std::to_string(seq));
      // Slots go back in batches of an eighth of the ring: a producer waiting on a full ring
      // then gets many at once instead of taking the tail's line away after every message
      // (one slot at a time, the two sides fall into lock-step).
      if (((i + 1) & release_mask) == 0) {
        h->tail.store(i + 1, std::memory_order_release);
        released = i + 1;
      }
    }
    ctl.end_ns = bench::now_ns();
    ctl.done.store(1, std::memory_order_release);
  });
  p.wait_stage(1);
  seg.unlink();
  const std::uint64_t start = bench::now_ns();
  std::uint64_t tail = 0;
  for (std::uint64_t i = 0; i < n; ++i) {
    while (i - tail == slots) {  // the producer's cached copy of tail: reload only when full
      tail = hdr->tail.load(std::memory_order_acquire);
      if (i - tail == slots) p.poll();
    }
    S& s = ring[i & mask];
    StreamMsg<N> msg;
    msg.seq = i;
    msg.px = 1.0;
    std::memcpy(&s.msg, &msg, sizeof msg);
    s.commit.store(i + 1, std::memory_order_release);
  }
  p.wait_done();
  const std::uint64_t end = p.ctl().end_ns;
  p.join();
  return static_cast<double>(n) * 1e9 / static_cast<double>(std::max<std::uint64_t>(1, end - start));
}

RoundOut run_floor_stream(const Ctx& c) {
  RoundOut o;
  o.rate.push_back({"floor_stream_16_msgs_per_s", "floor stream: bare SPSC ring, 2 processes, 16 B",
                    run_ring_stream<16>(c)});
  o.rate.push_back({"floor_stream_256_msgs_per_s", "floor stream: bare SPSC ring, 2 processes, 256 B",
                    run_ring_stream<256>(c)});
  return o;
}

// ---- inproc and inproc-stream: tern between two actors in this process ---------------------------

RoundOut run_inproc(const Ctx& c) {
  using Ball = bench::BallN<16>;
  Histogram h;
  Manager mgr;
  ThreadConfig ta, tb;
  ta.wake = tb.wake = Wake::spin;
  if (c.cpu_a >= 0) ta.cpus = {c.cpu_a};
  if (c.cpu_b >= 0) tb.cpus = {c.cpu_b};
  const MailboxConfig mb{1024, MailboxKind::spsc};  // as bench/pingpong's tern row
  ActorRef pong = mgr.emplace<bench::Ponger<Ball>>("ponger", tb, mb);
  mgr.emplace<bench::Pinger<Ball>>("pinger", ta, mb, pong, c.warmup, c.iterations, h);
  mgr.init();
  mgr.run();
  mgr.end();
  RoundOut o;
  o.lat.push_back({"inproc_", "tern in-process, 2 actors, Wake::spin, 16 B", h});
  return o;
}

template <std::size_t N>
struct TernMsg : StreamMsg<N> {
  static constexpr MessageId message_id = 2000 + N;
};

template <std::size_t N>
class StreamConsumer : public Actor {
 public:
  explicit StreamConsumer(std::uint64_t n) : n_(n) { handle<&StreamConsumer::on_msg>(); }
  void on_msg(const TernMsg<N>& m) {
    if (m.seq != got_ && bad_seq == ~0ull) bad_seq = got_;
    if (++got_ == n_) {
      end_ns = bench::now_ns();
      terminate();
    }
  }
  std::uint64_t end_ns = 0, bad_seq = ~0ull;

 private:
  std::uint64_t n_, got_ = 0;
};

template <std::size_t N>
class StreamProducer : public Actor {
 public:
  StreamProducer(ActorRef to, std::uint64_t n) : to_(to), n_(n) {
    handle<&StreamProducer::on_start>();
  }
  void on_start(const Start&) {
    start_ns = bench::now_ns();
    for (std::uint64_t i = 0; i < n_; ++i) {
      TernMsg<N> m;
      m.seq = i;
      m.px = 1.0;
      (void)to_.send(m);
    }
  }
  std::uint64_t start_ns = 0;

 private:
  ActorRef to_;
  std::uint64_t n_;
};

template <std::size_t N>
double run_tern_stream(const Ctx& c) {
  Manager mgr;
  ThreadConfig ta, tb;
  ta.wake = tb.wake = Wake::spin;
  if (c.cpu_a >= 0) ta.cpus = {c.cpu_a};
  if (c.cpu_b >= 0) tb.cpus = {c.cpu_b};
  // The ring's bytes as floor-stream's (a 16-byte message takes a 32-byte record).
  const MailboxConfig mb{static_cast<std::uint32_t>(c.ring_bytes / 32), MailboxKind::spsc};
  auto* cons = new StreamConsumer<N>(c.messages);
  ActorRef to = mgr.manage("consumer", std::unique_ptr<Actor>(cons), tb, mb);
  auto* prod = new StreamProducer<N>(to, c.messages);
  mgr.manage("producer", std::unique_ptr<Actor>(prod), ta);
  mgr.init();
  mgr.run();
  mgr.end();
  if (cons->bad_seq != ~0ull)
    throw Failure("inproc-stream: message " + std::to_string(cons->bad_seq) +
                  " arrived out of order");
  return static_cast<double>(c.messages) * 1e9 /
         static_cast<double>(std::max<std::uint64_t>(1, cons->end_ns - prod->start_ns));
}

RoundOut run_inproc_stream(const Ctx& c) {
  RoundOut o;
  o.rate.push_back({"inproc_stream_16_msgs_per_s", "tern in-process stream, Wake::spin, 16 B",
                    run_tern_stream<16>(c)});
  o.rate.push_back({"inproc_stream_256_msgs_per_s", "tern in-process stream, Wake::spin, 256 B",
                    run_tern_stream<256>(c)});
  return o;
}

// ---- tern, tern-futex, tern-stream: tern's shared-memory transport between two processes -------
// Each run makes a directory of its own under --shm-dir for the two nodes' segments, removed
// at the end (also on error and on SIGINT/SIGTERM). The child builds its ShmNode and Manager
// after the fork (a Manager's threads would not survive one); so does the parent.

/// A node of a tern mode: the rings of --ring-bytes (as floor-stream's and inproc-stream's),
/// two connection slots per export (one peer connects), the library's default monitor.
ShmConfig node_config(const std::string& name, const std::string& dir, const Ctx& c) {
  ShmConfig sc;
  sc.name = name;
  sc.dir = dir;
  sc.ring_bytes = static_cast<std::uint32_t>(c.ring_bytes);  // ShmNode refuses above 256 MiB
  sc.slots = 2;
  return sc;
}

/// Starts `node` with the calling thread unpinned, then pins it to `cpu` again: a thread
/// inherits its creator's affinity, and the node's monitor thread (it wakes every
/// ShmConfig::monitor_interval_us) belongs to no measured CPU.
void start_unpinned(ShmNode& node, int cpu) {
  if (cpu >= 0) bench::unpin();
  node.start();
  bench::pin(cpu);
}

void nap_ms(long ms) {
  timespec ts{ms / 1000, (ms % 1000) * 1'000'000};
  nanosleep(&ts, nullptr);
}

std::chrono::milliseconds connect_wait(const Ctx& c) {
  return std::chrono::milliseconds(static_cast<std::int64_t>(c.timeout_s * 1000));
}

/// The round trip of `inproc` (bench/pingpong's actors, a 16-byte ball answered by reply()),
/// the two actors in two processes: the pinger here on CPU A, the ponger in the child on CPU
/// B, each exported by its process's node (the ponger's reply reaches the pinger through the
/// pinger's segment). futex: both park when idle, after --futex-spin polls (default 0: every
/// hop, as futex-floor) and no sched_yield.
RoundOut run_tern_rtt(const Ctx& c, Wake wake) {
  using Ball = bench::BallN<16>;
  const bool futex = wake == Wake::futex;
  const std::string name = futex ? "tern-futex" : "tern";
  shmb::TempDir dir(c.shm_dir, {"tern.ping", "tern.pong"});
  ThreadConfig ta, tb;
  ta.wake = tb.wake = wake;
  ta.spin_limit = tb.spin_limit = c.futex_spin;
  ta.yield_limit = tb.yield_limit = 0;
  if (c.cpu_a >= 0) ta.cpus = {c.cpu_a};
  if (c.cpu_b >= 0) tb.cpus = {c.cpu_b};
  // one sending actor on each side: the spsc claim, as inproc's spsc mailboxes
  auto spsc_node = [&](const std::string& n) {
    ShmConfig sc = node_config(n, dir.path(), c);
    sc.kind = MailboxKind::spsc;
    return sc;
  };
  shmb::TwoProcs p(c.procs(name), [&](shmb::Ctl& ctl) {
    ShmNode node(spsc_node("pong"));
    Manager mgr;
    const ActorRef pong = mgr.emplace<bench::Ponger<Ball>>("ponger", tb, MailboxConfig{});
    node.export_actor(pong);
    start_unpinned(node, c.cpu_b);
    mgr.init();
    ctl.stage.store(1, std::memory_order_release);
    // Serve until the parent is done (or dies: PR_SET_PDEATHSIG); a look every 100 ms at most.
    while (ctl.release.load(std::memory_order_acquire) == 0)
      (void)shmb::futex_wait_shared(ctl.release, 0, 100'000'000);
    mgr.end();
  });
  p.wait_stage(1);
  Histogram h;
  {
    ShmNode node(spsc_node("ping"));
    Manager mgr;  // after the node: destroyed (ended) first
    auto* pinger = new bench::Pinger<Ball>(ActorRef{}, c.warmup, c.iterations, h);
    const ActorRef me = mgr.manage("pinger", std::unique_ptr<Actor>(pinger), ta);
    node.export_actor(me);
    start_unpinned(node, c.cpu_a);
    pinger->set_peer(node.remote("pong", "ponger", connect_wait(c)));
    mgr.init();
    // The measuring is the pinger's; this thread only watches the child and the deadline.
    while (!mgr.terminated()) {
      p.check();
      nap_ms(5);
    }
    mgr.end();
  }
  p.ctl().release.store(1, std::memory_order_release);
  shmb::futex_wake_shared(p.ctl().release);
  p.join();
  RoundOut o;
  if (futex)
    o.lat.push_back({"futex_", "tern shm: 2 processes, Wake::futex" +
                                   std::string(c.futex_spin ? ", spin then park" : ", parks every hop") +
                                   ", 16 B",
                     h});
  else
    o.lat.push_back({"", "tern shm: 2 processes, Wake::spin, 16 B", h});
  return o;
}
RoundOut run_tern(const Ctx& c) { return run_tern_rtt(c, Wake::spin); }
RoundOut run_tern_futex(const Ctx& c) { return run_tern_rtt(c, Wake::futex); }

/// inproc-stream's consumer actor in the child (Wake::spin, CPU B, exported); the producer is
/// the parent's main thread on CPU A, send() (waits when the ring is full) through the
/// node's remote ref. Timed from the first send to the consumer's last receive.
template <std::size_t N>
double run_tern_shm_stream(const Ctx& c) {
  shmb::TempDir dir(c.shm_dir, {"tern.src", "tern.sink"});
  ThreadConfig tb;
  tb.wake = Wake::spin;
  if (c.cpu_b >= 0) tb.cpus = {c.cpu_b};
  const std::uint64_t n = c.messages;
  shmb::TwoProcs p(c.procs("tern-stream"), [&](shmb::Ctl& ctl) {
    ShmNode node(node_config("sink", dir.path(), c));
    Manager mgr;
    auto* cons = new StreamConsumer<N>(n);
    const ActorRef to = mgr.manage("consumer", std::unique_ptr<Actor>(cons), tb);
    node.export_actor(to);
    start_unpinned(node, c.cpu_b);
    mgr.init();
    ctl.stage.store(1, std::memory_order_release);
    mgr.run();  // until the consumer has counted n messages (it terminates the Manager)
    ctl.end_ns = cons->end_ns;
    const std::uint64_t bad = cons->bad_seq;
    mgr.end();
    if (bad != ~0ull)
      throw Failure("tern-stream: message " + std::to_string(bad) + " arrived out of order");
    ctl.done.store(1, std::memory_order_release);
  });
  p.wait_stage(1);
  // one sending thread: the spsc claim, as inproc-stream's spsc mailbox
  ShmConfig src = node_config("src", dir.path(), c);
  src.kind = MailboxKind::spsc;
  ShmNode node(src);
  start_unpinned(node, c.cpu_a);
  const ActorRef to = node.remote("sink", "consumer", connect_wait(c));
  const std::uint64_t start = bench::now_ns();
  for (std::uint64_t i = 0; i < n; ++i) {
    TernMsg<N> m;
    m.seq = i;
    m.px = 1.0;
    const SendResult r = to.send(m);
    if (r != SendResult::ok) {
      p.check();  // a child that died says so first (the link closes when it does)
      throw Failure("tern-stream: send of message " + std::to_string(i) + " returned " +
                    std::string(to_string(r)));
    }
  }
  p.wait_done();
  const std::uint64_t end = p.ctl().end_ns;
  p.join();
  return static_cast<double>(n) * 1e9 / static_cast<double>(std::max<std::uint64_t>(1, end - start));
}

RoundOut run_tern_stream_mode(const Ctx& c) {
  RoundOut o;
  o.rate.push_back({"stream_16_msgs_per_s", "tern shm stream: 2 processes, Wake::spin, 16 B",
                    run_tern_shm_stream<16>(c)});
  o.rate.push_back({"stream_256_msgs_per_s", "tern shm stream: 2 processes, Wake::spin, 256 B",
                    run_tern_shm_stream<256>(c)});
  return o;
}

// ---- tern-gateway: tern's gateway over TCP between two processes --------------------------------
#ifdef TERN_GATEWAY_ROW
/// bench/gateway_roundtrip's round trip (its actors, Ping -> Pong as JSON through two
/// gateways over tcp://127.0.0.1), the two sides in two processes: the pinger and its gateway
/// here on CPU A, the ponger and its gateway in the child on CPU B, both Wake::futex (the
/// gateway's usual setting, and gateway_roundtrip's default), --zmq-iterations as zmq-tcp.
RoundOut run_tern_gateway(const Ctx& c) {
  auto registry = [] {
    wire::Registry reg;
    reg.add<gwrt::Ping>().add<gwrt::Pong>();
    return reg;
  };
  ThreadConfig ta, tb;
  ta.wake = tb.wake = Wake::futex;
  if (c.cpu_a >= 0) ta.cpus = {c.cpu_a};
  if (c.cpu_b >= 0) tb.cpus = {c.cpu_b};
  GatewayConfig cfg;
  cfg.bind = "tcp://127.0.0.1:*";
  shmb::TwoProcs p(c.procs("tern-gateway"), [&](shmb::Ctl& ctl) {
    const wire::Registry reg = registry();
    Manager mgr;
    auto gw = std::make_unique<Gateway>(reg, cfg);
    const std::string ep(gw->endpoint());
    mgr.manage("gw", std::move(gw), tb);
    mgr.manage("pong", std::make_unique<gwrt::Ponger>(), tb);
    mgr.init();
    std::snprintf(ctl.endpoint, sizeof ctl.endpoint, "%s", ep.c_str());
    ctl.stage.store(1, std::memory_order_release);
    while (ctl.release.load(std::memory_order_acquire) == 0)
      (void)shmb::futex_wait_shared(ctl.release, 0, 100'000'000);
    mgr.end();
  });
  p.wait_stage(1);
  gwrt::Result r;
  {
    const wire::Registry reg = registry();
    Manager mgr;
    auto gw = std::make_unique<Gateway>(reg, cfg);
    Gateway& g = *gw;
    mgr.manage("gw", std::move(gw), ta);
    auto pinger = std::make_unique<gwrt::Pinger>(c.zmq_warmup, c.zmq_iterations, r);
    gwrt::Pinger& pi = *pinger;
    pi.pong = g.remote("pong", p.ctl().endpoint);
    const ActorRef ping = mgr.manage("ping", std::move(pinger), ta);
    mgr.init();
    (void)ping.send(gwrt::Go{});
    while (pi.done.load(std::memory_order_acquire) == 0) {
      p.check();
      nap_ms(5);
    }
    mgr.end();
  }
  p.ctl().release.store(1, std::memory_order_release);
  shmb::futex_wake_shared(p.ctl().release);
  p.join();
  RoundOut o;
  o.lat.push_back({"gateway_", "tern gateway x2, tcp://127.0.0.1 JSON, 2 processes, futex", std::move(r.h)});
  return o;
}
#endif

// ---- zmq-ipc and zmq-tcp: libzmq between two processes -------------------------------------------

std::string zerr() { return zmq_strerror(zmq_errno()); }

/// A context and one socket, closed (linger 0) and terminated on scope exit.
class ZmqSocket {
 public:
  explicit ZmqSocket(int type) : ctx_(zmq_ctx_new()) {
    if (!ctx_) throw Failure("zmq_ctx_new: " + zerr());
    s_ = zmq_socket(ctx_, type);
    if (!s_) {
      zmq_ctx_term(ctx_);
      throw Failure("zmq_socket: " + zerr());
    }
    const int zero = 0;
    zmq_setsockopt(s_, ZMQ_LINGER, &zero, sizeof zero);
  }
  ZmqSocket(const ZmqSocket&) = delete;
  ZmqSocket& operator=(const ZmqSocket&) = delete;
  ~ZmqSocket() {
    zmq_close(s_);
    zmq_ctx_term(ctx_);
  }
  void* get() const { return s_; }
  /// Binds; returns the bound address (tcp://127.0.0.1:* resolves to its port).
  std::string bind(const std::string& ep) {
    if (zmq_bind(s_, ep.c_str()) != 0) throw Failure("zmq_bind '" + ep + "': " + zerr());
    char buf[256];
    std::size_t len = sizeof buf;
    if (zmq_getsockopt(s_, ZMQ_LAST_ENDPOINT, buf, &len) != 0) return ep;
    return std::string(buf);
  }
  /// Connects; send and receive then give up every 100 ms (the caller checks its deadline).
  void connect(const std::string& ep) {
    const int ms = 100;
    zmq_setsockopt(s_, ZMQ_RCVTIMEO, &ms, sizeof ms);
    zmq_setsockopt(s_, ZMQ_SNDTIMEO, &ms, sizeof ms);
    if (zmq_connect(s_, ep.c_str()) != 0) throw Failure("zmq_connect '" + ep + "': " + zerr());
  }

 private:
  void* ctx_ = nullptr;
  void* s_ = nullptr;
};

/// Sends `n` bytes; on the parent's side (`p` set) retries after each 100 ms timeout while its
/// deadline allows.
void zsend(void* s, const void* b, std::size_t n, shmb::TwoProcs* p, const char* what) {
  while (zmq_send(s, b, n, 0) < 0) {
    if (zmq_errno() != EAGAIN || !p) throw Failure(std::string(what) + ": zmq_send: " + zerr());
    p->check();
  }
}
std::size_t zrecv(void* s, void* b, std::size_t n, shmb::TwoProcs* p, const char* what) {
  for (;;) {
    const int r = zmq_recv(s, b, n, 0);
    if (r >= 0) return static_cast<std::size_t>(r);
    if (zmq_errno() != EAGAIN || !p) throw Failure(std::string(what) + ": zmq_recv: " + zerr());
    p->check();
  }
}

/// The child binds (its context made after the fork) and writes the address into the control
/// block; the parent connects. `tcp` picks a free loopback port, else an ipc socket file.
struct ZmqPlace {
  bool tcp = false;
  std::optional<shmb::TempPath> ipc;  ///< the ipc socket file (ZeroMQ removes it on close; we do otherwise)
  std::string bind_ep;
  ZmqPlace(const Ctx& c, bool is_tcp) : tcp(is_tcp) {
    if (tcp) {
      bind_ep = "tcp://127.0.0.1:*";
    } else {
      const std::string path = shmb::unique_path(c.ipc_dir, ".ipc");
      if (path.size() >= 100)  // why: sockaddr_un's sun_path holds 108 bytes
        throw Failure("--ipc-dir '" + c.ipc_dir + "' is too long for an ipc socket path (" + path + ")");
      ipc.emplace(path);
      bind_ep = "ipc://" + path;
    }
  }
};

Histogram run_zmq_rtt(const Ctx& c, bool tcp) {
  const char* what = tcp ? "zmq-tcp" : "zmq-ipc";
  ZmqPlace place(c, tcp);
  const std::uint64_t total = c.zmq_warmup + c.zmq_iterations;
  shmb::TwoProcs p(c.procs(what), [&](shmb::Ctl& ctl) {
    ZmqSocket s(ZMQ_PAIR);
    std::snprintf(ctl.endpoint, sizeof ctl.endpoint, "%s", s.bind(place.bind_ep).c_str());
    ctl.stage.store(1, std::memory_order_release);
    std::uint64_t buf[2];
    for (std::uint64_t i = 0; i < total; ++i) {
      if (zrecv(s.get(), buf, sizeof buf, nullptr, what) != sizeof buf)
        throw Failure(std::string(what) + ": echo side got a message that is not 16 bytes");
      zsend(s.get(), buf, sizeof buf, nullptr, what);
    }
  });
  p.wait_stage(1);
  Histogram h;
  {
    ZmqSocket s(ZMQ_PAIR);
    s.connect(p.ctl().endpoint);
    std::uint64_t out[2] = {0, 0}, in[2] = {0, 0};
    for (std::uint64_t i = 0; i < total; ++i) {
      out[0] = i;
      const std::uint64_t t0 = bench::now_ns();
      zsend(s.get(), out, sizeof out, &p, what);
      const std::size_t got = zrecv(s.get(), in, sizeof in, &p, what);
      const std::uint64_t t1 = bench::now_ns();
      if (got != sizeof in || in[0] != i)
        throw Failure(std::string(what) + ": round trip " + std::to_string(i) +
                      " came back wrong (" + std::to_string(got) + " bytes)");
      if (i >= c.zmq_warmup) h.record(t1 - t0);
    }
  }
  p.join();
  return h;
}

/// PUSH (parent) -> PULL (child) of `messages` messages of N bytes; msgs/s from the parent's
/// first timed send to the child's last receive, after one priming message has connected them.
template <std::size_t N>
double run_zmq_push(const Ctx& c, bool tcp) {
  const char* what = tcp ? "zmq-tcp" : "zmq-ipc";
  ZmqPlace place(c, tcp);
  const std::uint64_t n = c.messages;
  shmb::TwoProcs p(c.procs(what), [&](shmb::Ctl& ctl) {
    ZmqSocket s(ZMQ_PULL);
    std::snprintf(ctl.endpoint, sizeof ctl.endpoint, "%s", s.bind(place.bind_ep).c_str());
    ctl.stage.store(1, std::memory_order_release);
    StreamMsg<N> m;
    zrecv(s.get(), &m, sizeof m, nullptr, what);  // the priming message
    ctl.stage.store(2, std::memory_order_release);
    for (std::uint64_t i = 0; i < n; ++i) {
      const std::size_t got = zrecv(s.get(), &m, sizeof m, nullptr, what);
      if (got != N || m.seq != i)
        throw Failure(std::string(what) + ": PULL message " + std::to_string(i) + " was " +
                      std::to_string(got) + " bytes with sequence number " + std::to_string(m.seq));
    }
    ctl.end_ns = bench::now_ns();
    ctl.done.store(1, std::memory_order_release);
  });
  p.wait_stage(1);
  std::uint64_t start = 0;
  {
    ZmqSocket s(ZMQ_PUSH);
    s.connect(p.ctl().endpoint);
    StreamMsg<N> m;
    m.seq = ~0ull;
    zsend(s.get(), &m, sizeof m, &p, what);
    p.wait_stage(2);
    start = bench::now_ns();
    for (std::uint64_t i = 0; i < n; ++i) {
      m.seq = i;
      m.px = 1.0;
      zsend(s.get(), &m, sizeof m, &p, what);
    }
    p.wait_done();  // before the socket closes: linger 0 would drop what is still queued
  }
  const std::uint64_t end = p.ctl().end_ns;
  p.join();
  return static_cast<double>(n) * 1e9 / static_cast<double>(std::max<std::uint64_t>(1, end - start));
}

RoundOut run_zmq(const Ctx& c, bool tcp) {
  const std::string k = tcp ? "zmq_tcp_" : "zmq_ipc_";
  const std::string l = tcp ? "libzmq tcp://127.0.0.1" : "libzmq ipc://";
  RoundOut o;
  o.lat.push_back({k, l + " PAIR, 2 processes, 16 B", run_zmq_rtt(c, tcp)});
  o.rate.push_back({k + "push_16_msgs_per_s", l + " PUSH/PULL, 16 B", run_zmq_push<16>(c, tcp)});
  o.rate.push_back({k + "push_256_msgs_per_s", l + " PUSH/PULL, 256 B", run_zmq_push<256>(c, tcp)});
  return o;
}
RoundOut run_zmq_ipc(const Ctx& c) { return run_zmq(c, false); }
RoundOut run_zmq_tcp(const Ctx& c) { return run_zmq(c, true); }

// ---- the modes ----------------------------------------------------------------------------------

struct Mode {
  const char* name;
  RoundOut (*run)(const Ctx&);
};

// The order they run in, each round. Each forks its peer with shmb::TwoProcs (c.procs(name)
// gives the CPUs, the deadline and the test hook). tern's rows have the unprefixed keys:
//   "tern"        round trip, Wake::spin  -> lat prefix ""        (p50_ns, p99_ns, p999_ns)
//   "tern-futex"  round trip, Wake::futex -> lat prefix "futex_"  (futex_p50_ns ...)
//   "tern-stream" 16 and 256 B streams    -> rates stream_16_msgs_per_s, stream_256_msgs_per_s
const Mode kModes[] = {
    {"tern", run_tern},
    {"tern-futex", run_tern_futex},
    {"tern-stream", run_tern_stream_mode},
#ifdef TERN_GATEWAY_ROW
    {"tern-gateway", run_tern_gateway},
#endif
    {"floor", run_floor},
    {"futex-floor", run_futex_floor},
    {"inproc", run_inproc},
    {"inproc-stream", run_inproc_stream},
    {"floor-stream", run_floor_stream},
    {"zmq-ipc", run_zmq_ipc},
    {"zmq-tcp", run_zmq_tcp},
#ifdef TERN_ICEORYX_BASELINE
    {"iceoryx", shmb::run_iceoryx},
#endif
};

std::string mode_names() {
  std::string s;
  for (const Mode& m : kModes) {
    if (!s.empty()) s += ' ';
    s += m.name;
  }
  return s;
}

/// Every round of every key, in the order the keys first appeared.
struct Results {
  struct LatKey {
    std::string prefix, label, mode;
    std::vector<Histogram> rounds;
  };
  struct RateKey {
    std::string key, label, mode;
    std::vector<double> rounds;
  };
  std::vector<LatKey> lat;
  std::vector<RateKey> rate;
  std::map<std::string, std::string> errors;  // mode -> its first failure

  void add(const std::string& mode, RoundOut&& o) {
    for (auto& l : o.lat) {
      auto it = std::find_if(lat.begin(), lat.end(), [&](const LatKey& k) { return k.prefix == l.prefix; });
      if (it == lat.end()) it = lat.insert(lat.end(), LatKey{l.prefix, l.label, mode, {}});
      it->rounds.push_back(std::move(l.h));
    }
    for (auto& r : o.rate) {
      auto it = std::find_if(rate.begin(), rate.end(), [&](const RateKey& k) { return k.key == r.key; });
      if (it == rate.end()) it = rate.insert(rate.end(), RateKey{r.key, r.label, mode, {}});
      it->rounds.push_back(r.msgs_per_s);
    }
  }
};

/// The round whose p50 is the median (the lower middle one for an even count).
const Histogram& median_round(const std::vector<Histogram>& rounds) {
  std::vector<std::size_t> idx(rounds.size());
  for (std::size_t i = 0; i < idx.size(); ++i) idx[i] = i;
  std::sort(idx.begin(), idx.end(), [&](std::size_t a, std::size_t b) {
    return rounds[a].value_at_percentile(50) < rounds[b].value_at_percentile(50);
  });
  return rounds[idx[(idx.size() - 1) / 2]];
}
double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[(v.size() - 1) / 2];
}

std::string fmt_rate(double r) {
  char b[64];
  std::snprintf(b, sizeof b, "%.0f", r);
  return b;
}

/// A key's median-round value: "PREFIXp50_ns" / "PREFIXp999_ns" of a latency row, or a rate
/// key; nothing when its mode did not run or failed.
std::optional<double> key_value(const Results& res, const std::string& key) {
  for (const auto& r : res.rate)
    if (r.key == key) {
      if (res.errors.count(r.mode)) return std::nullopt;
      return median(r.rounds);
    }
  for (const auto& [suffix, pct] : {std::pair<const char*, double>{"p50_ns", 50}, {"p999_ns", 99.9}}) {
    const std::string sfx = suffix;
    if (key.size() < sfx.size() || key.compare(key.size() - sfx.size(), sfx.size(), sfx) != 0) continue;
    const std::string prefix = key.substr(0, key.size() - sfx.size());
    for (const auto& l : res.lat)
      if (l.prefix == prefix) {
        if (res.errors.count(l.mode)) return std::nullopt;
        return static_cast<double>(median_round(l.rounds).value_at_percentile(pct));
      }
  }
  return std::nullopt;
}

/// tern's rows over their baselines in the same run (median rounds); `target` is issue 11's.
struct RatioDef {
  const char* key;
  const char* label;
  const char* num;
  const char* den;
  const char* target;
};
constexpr RatioDef kRatios[] = {
    {"p50_over_inproc_p50", "tern spin p50 / tern in-process p50", "p50_ns", "inproc_p50_ns", "<= 1.3"},
    {"p50_over_floor_p50", "tern spin p50 / floor p50", "p50_ns", "floor_p50_ns", "<= 1.5"},
    {"p999_over_floor_p999", "tern spin p99.9 / floor p99.9", "p999_ns", "floor_p999_ns", ""},
    {"futex_p50_over_futex_floor_p50", "tern futex p50 / futex floor p50", "futex_p50_ns",
     "futex_floor_p50_ns", "<= 1.3"},
    {"stream_16_over_inproc_stream_16", "tern stream 16 B / in-process stream 16 B",
     "stream_16_msgs_per_s", "inproc_stream_16_msgs_per_s", ">= 0.83 (within 1.2x)"},
    {"stream_256_over_inproc_stream_256", "tern stream 256 B / in-process stream 256 B",
     "stream_256_msgs_per_s", "inproc_stream_256_msgs_per_s", ">= 0.83 (within 1.2x)"},
    {"gateway_p50_over_p50", "tern gateway p50 / tern shm spin p50", "gateway_p50_ns", "p50_ns", ""},
};

struct Ratio {
  const RatioDef* def;
  double value;
};
std::vector<Ratio> ratios(const Results& res) {
  std::vector<Ratio> out;
  for (const RatioDef& d : kRatios) {
    const auto num = key_value(res, d.num), den = key_value(res, d.den);
    if (num && den && *den > 0) out.push_back({&d, *num / *den});
  }
  return out;
}

std::string fmt_ratio(double r) {
  char b[64];
  std::snprintf(b, sizeof b, "%.3f", r);
  return b;
}

}  // namespace

int main(int argc, char** argv) {
  bench::Args args(argc, argv,
                   {{"only", ""},
                    {"iterations", "100000"},
                    {"warmup", "auto"},
                    {"zmq-iterations", "auto"},
                    {"rounds", "3"},
                    {"messages", "1000000"},
                    {"ring-bytes", "131072"},
                    {"futex-spin", "0"},
                    {"cpus", "0,1"},
                    {"timeout", "60"},
                    {"shm-dir", "/dev/shm"},
                    {"ipc-dir", "/tmp"},
                    {"inject", "none"},
                    {"json-file", ""}},
                   kUsage, {"json"});
  std::vector<const Mode*> modes;
  if (args.str("only").empty()) {
    for (const Mode& m : kModes) modes.push_back(&m);
  } else {
    std::stringstream ss(args.str("only"));
    for (std::string name; std::getline(ss, name, ',');) {
      const Mode* m = std::find_if(std::begin(kModes), std::end(kModes),
                                   [&](const Mode& x) { return name == x.name; });
      if (m == std::end(kModes) && name == "tern-gateway" && !kGateway)
        bench::Args::fail("--only: mode 'tern-gateway' is not built (the gateway option is disabled)",
                          kUsage);
      if (m == std::end(kModes) && name == "iceoryx" && !kIceoryx)
        bench::Args::fail("--only: mode 'iceoryx' is not built (the iceoryx_baseline feature did not "
                          "find libiceoryx-posh-dev and iox-roudi)", kUsage);
      if (m == std::end(kModes))
        bench::Args::fail("--only: unknown mode '" + name + "' (modes: " + mode_names() + ")", kUsage);
      if (std::find(modes.begin(), modes.end(), m) == modes.end()) modes.push_back(m);
    }
  }
  Ctx c;
  c.iterations = args.u64("iterations");
  if (c.iterations == 0) bench::Args::fail("--iterations must be at least 1", kUsage);
  c.warmup = args.str("warmup") == "auto" ? c.iterations / 10 : args.u64("warmup");
  c.zmq_iterations = args.str("zmq-iterations") == "auto" ? std::min<std::uint64_t>(c.iterations, 10000)
                                                          : args.u64("zmq-iterations");
  if (c.zmq_iterations == 0) bench::Args::fail("--zmq-iterations must be at least 1", kUsage);
  c.zmq_warmup = c.zmq_iterations / 10;
  const std::uint64_t rounds = args.u64("rounds");
  if (rounds == 0 || rounds > 1000) bench::Args::fail("--rounds must be in 1..1000, got " + args.str("rounds"), kUsage);
  c.messages = args.u64("messages");
  if (c.messages == 0) bench::Args::fail("--messages must be at least 1", kUsage);
  c.ring_bytes = args.u64("ring-bytes");
  if (c.ring_bytes < 4096 || c.ring_bytes > (1ull << 30) || (c.ring_bytes & (c.ring_bytes - 1)))
    bench::Args::fail("--ring-bytes must be a power of two in 4096..2^30, got " + args.str("ring-bytes"), kUsage);
  c.futex_spin = static_cast<std::uint32_t>(std::min<std::uint64_t>(args.u64("futex-spin"), 1u << 30));
  {
    const std::string& t = args.str("timeout");
    char* end = nullptr;
    c.timeout_s = std::strtod(t.c_str(), &end);
    if (t.empty() || *end || !(c.timeout_s > 0) || c.timeout_s > 86400)
      bench::Args::fail("--timeout wants seconds in (0, 86400], got '" + t + "'", kUsage);
  }
  c.shm_dir = args.str("shm-dir");
  c.ipc_dir = args.str("ipc-dir");
  const std::string inj = args.str("inject");
  if (inj == "hang") c.inject = shmb::Inject::hang;
  else if (inj == "crash") c.inject = shmb::Inject::crash;
  else if (inj != "none") bench::Args::fail("--inject must be none, hang or crash, got '" + inj + "'", kUsage);
  const std::vector<int> cpus = args.cpus("cpus");
  if (cpus.size() != 2) bench::Args::fail("--cpus wants two CPUs, e.g. 0,1", kUsage);
  const bool pinned = sysconf(_SC_NPROCESSORS_ONLN) >= 2;
  if (pinned) {
    c.cpu_a = cpus[0];
    c.cpu_b = cpus[1];
  }
  const bool json = args.flag("json");
  if (!args.str("json-file").empty()) bench::write_file(args.str("json-file"), "");  // fails now, not after the run
  shmb::cleanup::install();

  if (!json) {
    std::string names;
    for (const Mode* m : modes) names += (names.empty() ? "" : ",") + std::string(m->name);
    std::printf("shm_pingpong: modes=%s iterations=%llu warmup=%llu zmq-iterations=%llu "
                "rounds=%llu messages=%llu cpus=%s\n",
                names.c_str(),
                (unsigned long long)c.iterations, (unsigned long long)c.warmup,
                (unsigned long long)c.zmq_iterations, (unsigned long long)rounds,
                (unsigned long long)c.messages,
                pinned ? (std::to_string(c.cpu_a) + "," + std::to_string(c.cpu_b)).c_str()
                       : "not pinned (fewer than 2 CPUs online)");
    std::fflush(stdout);
  }
  // Rounds outside, modes inside: a noisy stretch of the run hits every mode alike.
  Results res;
  for (std::uint64_t r = 0; r < rounds; ++r)
    for (const Mode* m : modes) {
      if (res.errors.count(m->name)) continue;  // failed once: not again
      try {
        res.add(m->name, m->run(c));
      } catch (const std::exception& e) {
        std::string text = e.what();  // named after its mode unless it says so already
        if (text.rfind(std::string(m->name) + ":", 0) != 0) text = m->name + (": " + text);
        std::fprintf(stderr, "error: %s\n", text.c_str());
        res.errors[m->name] = text;
      }
    }

  const std::vector<Ratio> rs = ratios(res);
  std::string o = "{\"iterations\": " + std::to_string(c.iterations) +
                  ", \"warmup\": " + std::to_string(c.warmup) +
                  ", \"zmq_iterations\": " + std::to_string(c.zmq_iterations) +
                  ", \"rounds\": " + std::to_string(rounds) +
                  ", \"messages\": " + std::to_string(c.messages) +
                  ", \"ring_bytes\": " + std::to_string(c.ring_bytes) +
                  ", \"futex_spin\": " + std::to_string(c.futex_spin) +
                  ", \"cpus\": " + (pinned ? "[" + std::to_string(c.cpu_a) + ", " + std::to_string(c.cpu_b) + "]" : std::string("null")) +
                  ", \"report\": \"median round\", \"modes\": [";
  for (std::size_t i = 0; i < modes.size(); ++i) o += (i ? ", " : "") + bench::jstr(modes[i]->name);
  o += "]";
  std::string rows_json, rates_json, ratios_json;
  for (const auto& l : res.lat) {
    if (res.errors.count(l.mode)) continue;
    const Histogram& h = median_round(l.rounds);
    o += ", " + bench::json_fields(l.prefix, h);
    o += ", \"" + l.prefix + "rounds_p50_ns\": [";
    for (std::size_t i = 0; i < l.rounds.size(); ++i)
      o += (i ? ", " : "") + std::to_string(l.rounds[i].value_at_percentile(50));
    o += "]";
    const std::string key = l.prefix.empty() ? "tern" : l.prefix.substr(0, l.prefix.size() - 1);
    rows_json += std::string(rows_json.empty() ? "" : ", ") + "{\"key\": " + bench::jstr(key) +
                 ", \"mode\": " + bench::jstr(l.mode) + ", \"label\": " + bench::jstr(l.label) +
                 ", " + bench::json_fields("", h) + "}";
  }
  for (const auto& r : res.rate) {
    if (res.errors.count(r.mode)) continue;
    o += ", " + bench::jstr(r.key) + ": " + fmt_rate(median(r.rounds));
    rates_json += std::string(rates_json.empty() ? "" : ", ") + "{\"key\": " + bench::jstr(r.key) +
                  ", \"mode\": " + bench::jstr(r.mode) + ", \"label\": " + bench::jstr(r.label) +
                  ", \"msgs_per_s\": " + fmt_rate(median(r.rounds)) + "}";
  }
  for (const Ratio& r : rs) {
    o += ", " + bench::jstr(r.def->key) + ": " + fmt_ratio(r.value);
    ratios_json += std::string(ratios_json.empty() ? "" : ", ") + "{\"key\": " + bench::jstr(r.def->key) +
                   ", \"label\": " + bench::jstr(r.def->label) + ", \"value\": " + fmt_ratio(r.value) +
                   ", \"target\": " + bench::jstr(r.def->target) + "}";
  }
  o += ", \"rows\": [" + rows_json + "], \"rates\": [" + rates_json + "], \"ratios\": [" +
       ratios_json + "], \"errors\": {";
  bool first = true;
  for (const auto& [mode, text] : res.errors) {
    o += (first ? "" : ", ") + bench::jstr(mode) + ": " + bench::jstr(text);
    first = false;
  }
  o += "}}\n";
  bench::write_file(args.str("json-file"), o);
  if (json) {
    std::fputs(o.c_str(), stdout);
  } else {
    std::vector<bench::Row> rows;
    for (const auto& l : res.lat)
      if (!res.errors.count(l.mode)) rows.push_back({l.label, median_round(l.rounds)});
    if (!rows.empty()) bench::print_table("round trip, median round", rows);
    bool header = false;
    for (const auto& r : res.rate) {
      if (res.errors.count(r.mode)) continue;
      if (!header) {
        std::printf("\n%-52s %14s   (stream, msgs/s, median round)\n", "", "msgs/s");
        header = true;
      }
      std::printf("%-52s %14s\n", r.label.c_str(), fmt_rate(median(r.rounds)).c_str());
    }
    if (!rs.empty()) {
      std::printf("\n%-52s %14s   %s\n", "ratios (same run, median rounds)", "value", "issue 11 target");
      for (const Ratio& r : rs)
        std::printf("%-52s %14.2f   %s\n", r.def->label, r.value, r.def->target);
    }
    for (const auto& [mode, text] : res.errors) std::printf("FAILED %s\n", text.c_str());
  }
  return res.errors.empty() ? 0 : 1;
}
