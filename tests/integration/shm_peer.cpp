// shm_peer: one side of the shared-memory integration tests (tests/integration/test_shm.py):
// a process with a tern::ShmNode, in one of four roles.
//
//   shm_peer sink NAME [--count N]             exports actor "sink"; checks every Tick
//   shm_peer source NAME PEER [--count N] [--rate R]
//                                              sends Ticks to shm://PEER/sink (N: 0 = until
//                                              SIGTERM; R msgs/s: 0 = as fast as it can)
//   shm_peer echo NAME                         exports actor "echo": checks each Tick and
//                                              answers it with reply() (the same Tick)
//   shm_peer client NAME PEER --count N [--window W]
//                                              exports actor "client"; sends N Ticks to
//                                              shm://PEER/echo, at most W unanswered, and
//                                              checks the answers
//   common: --dir D (segments; default /dev/shm) --wake futex|spin|yield (default futex)
//           --slots N --ring BYTES --monitor-us N (ShmConfig) --stats-ms N (0: final line
//           only) --connect-ms N (remote()'s wait) --timeout S (count-bounded roles)
//
// Every Tick carries the sending process's stream id (pid << 32 | random), a sequence number
// and a checksum of its payload: a receiver counts, per stream, gaps, duplicates and torn
// messages. Built twice: shm_peer_v2 (-DTERN_SHM_PEER_V2) has a Tick with the same id and
// name and another layout, so a connect between the two is refused by the fingerprint check.
//
// Output (stdout, one line each, flushed; stderr has errors):
//   ROLE: segment path=P slots=S ring=R slots_off=O slot_bytes=B peer_node_off=O data_off=O
//         slot_data=B                                 (exporting roles, once, when ready)
//   ROLE: connected peer=PEER                         (sending roles, once)
//   ROLE: stream id=ID pid=PID first_seq=S            (receiving roles, a new stream)
//   ROLE: result seq=S result=R count=N               (sending roles: a send returned R, not
//                                                      ok, after the last one that did not;
//                                                      R=ok when sends work again)
//   ROLE: stats k=v ...  every --stats-ms, and "ROLE: done k=v ..." at exit, with
//     t_ms got streams first_seq last_seq gaps dups torn reply_failed       (received)
//     sent seq ok_after_fail closed full other                              (sent)
//     connections peers_lost failed undelivered links_up links_lost mismatch reclaimed (node)
// Exit status: 0 done (or stopped by SIGTERM/SIGINT); 1 set-up or connect error (the
// message names it); 2 bad arguments; 3 --timeout before the count was reached.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstddef>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include <tern/detail/shm_layout.hpp>
#include <tern/shm.hpp>
#include <tern/tern.hpp>

namespace {

using Clock = std::chrono::steady_clock;

struct Tick {
  static constexpr tern::MessageId message_id = 9200;
  std::uint64_t stream = 0;
  std::uint64_t seq = 0;
  std::uint64_t payload[5] = {};
#ifdef TERN_SHM_PEER_V2
  std::uint64_t venue = 0;  // the other build's Tick: one field more (72 bytes, not 64)
#endif
  std::uint64_t check = 0;
};

std::uint64_t mix(std::uint64_t x) {  // splitmix64's finaliser
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}
std::uint64_t checksum(const Tick& t) {
  std::uint64_t h = mix(t.stream ^ mix(t.seq));
  for (const std::uint64_t p : t.payload) h = mix(h ^ p);
  return h;
}
Tick make_tick(std::uint64_t stream, std::uint64_t seq) {
  Tick t;
  t.stream = stream;
  t.seq = seq;
  for (std::uint64_t i = 0; i < 5; ++i) t.payload[i] = mix(stream + seq * 5 + i);
  t.check = checksum(t);
  return t;
}

volatile sig_atomic_t g_stop = 0;
extern "C" void on_signal(int) { g_stop = 1; }

std::uint64_t ms_since(Clock::time_point t0) {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count());
}

/// Receives Ticks (sink, echo, client): per-stream order and integrity; echo answers each.
class Receiver : public tern::Actor {
 public:
  Receiver(const char* role, bool echo) : role_(role), echo_(echo) { handle<&Receiver::on_tick>(); }

  void on_tick(const Tick& t) {
    if (t.check != checksum(t)) {
      torn.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    auto it = last_.find(t.stream);
    if (it == last_.end()) {
      last_.emplace(t.stream, t.seq);
      streams.fetch_add(1, std::memory_order_relaxed);
      first_seq.store(t.seq, std::memory_order_relaxed);
      std::printf("%s: stream id=%" PRIu64 " pid=%" PRIu64 " first_seq=%" PRIu64 "\n", role_, t.stream,
                  t.stream >> 32, t.seq);
      std::fflush(stdout);
    } else if (t.seq == it->second + 1) {
      it->second = t.seq;
    } else if (t.seq <= it->second) {
      dups.fetch_add(1, std::memory_order_relaxed);
    } else {
      gaps.fetch_add(1, std::memory_order_relaxed);
      it->second = t.seq;
    }
    last_seq.store(t.seq, std::memory_order_relaxed);
    if (echo_ && reply(t) != tern::SendResult::ok) reply_failed.fetch_add(1, std::memory_order_relaxed);
    got.fetch_add(1, std::memory_order_release);
  }

  std::atomic<std::uint64_t> got{0}, streams{0}, first_seq{0}, last_seq{0}, gaps{0}, dups{0}, torn{0},
      reply_failed{0};

 private:
  const char* role_;
  bool echo_;
  std::unordered_map<std::uint64_t, std::uint64_t> last_;  // stream -> last seq (actor thread)
};

struct Sent {
  std::uint64_t sent = 0, seq = 0, ok_after_fail = 0, closed = 0, full = 0, other = 0;
};

struct Options {
  std::string role, name, peer, dir = "/dev/shm";
  tern::Wake wake = tern::Wake::futex;
  std::uint64_t count = 0, rate = 0, window = 2000;
  std::uint32_t slots = 4, ring = 1u << 20, monitor_us = 1000;
  std::uint64_t stats_ms = 100, connect_ms = 10000, timeout_s = 120;
};

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(stderr, "shm_peer: %s\nusage: shm_peer sink|echo NAME | source|client NAME PEER [options]"
                       " (see tests/integration/shm_peer.cpp)\n", why.c_str());
  std::exit(2);
}

std::uint64_t number(const char* opt, const char* v) {
  char* end = nullptr;
  errno = 0;
  const unsigned long long n = std::strtoull(v, &end, 10);
  if (!*v || *end || errno || v[0] == '-') usage(std::string(opt) + ": '" + v + "' is not a number");
  return n;
}

Options parse(int argc, char** argv) {
  Options o;
  int i = 1;
  std::vector<std::string> pos;
  for (; i < argc; ++i) {
    const std::string a = argv[i];
    if (a.rfind("--", 0) != 0) {
      pos.push_back(a);
      continue;
    }
    if (i + 1 >= argc) usage(a + " needs a value");
    const char* v = argv[++i];
    if (a == "--dir") o.dir = v;
    else if (a == "--wake") {
      const std::string w = v;
      if (w == "futex") o.wake = tern::Wake::futex;
      else if (w == "spin") o.wake = tern::Wake::spin;
      else if (w == "yield") o.wake = tern::Wake::yield;
      else usage("--wake: '" + w + "' is not futex, spin or yield");
    } else if (a == "--count") o.count = number("--count", v);
    else if (a == "--rate") o.rate = number("--rate", v);
    else if (a == "--window") o.window = number("--window", v);
    else if (a == "--slots") o.slots = static_cast<std::uint32_t>(number("--slots", v));
    else if (a == "--ring") o.ring = static_cast<std::uint32_t>(number("--ring", v));
    else if (a == "--monitor-us") o.monitor_us = static_cast<std::uint32_t>(number("--monitor-us", v));
    else if (a == "--stats-ms") o.stats_ms = number("--stats-ms", v);
    else if (a == "--connect-ms") o.connect_ms = number("--connect-ms", v);
    else if (a == "--timeout") o.timeout_s = number("--timeout", v);
    else usage("unknown option '" + a + "'");
  }
  if (pos.empty()) usage("no role");
  o.role = pos[0];
  const bool sends = o.role == "source" || o.role == "client";
  if (!sends && o.role != "sink" && o.role != "echo") usage("unknown role '" + o.role + "'");
  if (pos.size() != (sends ? 3u : 2u)) usage("role '" + o.role + "' takes " + (sends ? "NAME PEER" : "NAME"));
  o.name = pos[1];
  if (sends) o.peer = pos[2];
  if (o.role == "client" && o.count == 0) usage("client needs --count N");
  if (o.window == 0) usage("--window: 0");
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  const char* role = o.role.c_str();
  const bool sends = o.role == "source" || o.role == "client";
  const bool receives = o.role != "source";

  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);

  const Clock::time_point t0 = Clock::now();
  tern::Manager m;
  Receiver* rx = nullptr;
  const std::string actor = o.role == "sink" ? "sink" : o.role == "echo" ? "echo" : "client";
  if (receives) {
    rx = new Receiver(role, o.role == "echo");
    m.manage(actor, std::unique_ptr<tern::Actor>(rx), tern::ThreadConfig{.wake = o.wake});
  }
  std::unique_ptr<tern::ShmNode> node;
  tern::ActorRef peer;
  Sent s;
  int rc = 0;
  auto stats_line = [&](const char* what) {
    const tern::ShmStats n = node ? node->stats() : tern::ShmStats{};
    std::printf("%s: %s t_ms=%" PRIu64, role, what, ms_since(t0));
    if (rx)
      std::printf(" got=%" PRIu64 " streams=%" PRIu64 " first_seq=%" PRIu64 " last_seq=%" PRIu64
                  " gaps=%" PRIu64 " dups=%" PRIu64 " torn=%" PRIu64 " reply_failed=%" PRIu64,
                  rx->got.load(std::memory_order_acquire), rx->streams.load(), rx->first_seq.load(),
                  rx->last_seq.load(), rx->gaps.load(), rx->dups.load(), rx->torn.load(),
                  rx->reply_failed.load());
    if (sends)
      std::printf(" sent=%" PRIu64 " seq=%" PRIu64 " ok_after_fail=%" PRIu64 " closed=%" PRIu64
                  " full=%" PRIu64 " other=%" PRIu64,
                  s.sent, s.seq, s.ok_after_fail, s.closed, s.full, s.other);
    std::printf(" connections=%" PRIu64 " peers_lost=%" PRIu64 " failed=%" PRIu64 " undelivered=%" PRIu64
                " links_up=%" PRIu64 " links_lost=%" PRIu64 " mismatch=%" PRIu64 " reclaimed=%" PRIu64 "\n",
                n.connections, n.peers_lost, n.failed, n.undelivered_bytes, n.links_up, n.links_lost,
                n.refused_mismatch, n.reclaimed);
    std::fflush(stdout);
  };

  try {
    tern::ShmConfig cfg;
    cfg.name = o.name;
    cfg.dir = o.dir;
    cfg.slots = o.slots;
    cfg.ring_bytes = o.ring;
    cfg.monitor_interval_us = o.monitor_us;
    node = std::make_unique<tern::ShmNode>(cfg);
    if (receives) node->export_actor(m.find(actor));
    node->start();
    m.init();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: set-up failed: %s\n", role, e.what());
    return 1;
  }
  if (receives) {
    namespace sh = tern::detail::shm;
    sh::Layout l;
    sh::compute_layout(1, o.slots, o.ring, sh::kPrioRingBytes, l);
    std::printf("%s: segment path=%s slots=%u ring=%u slots_off=%" PRIu64 " slot_bytes=%zu peer_node_off=%zu"
                " data_off=%" PRIu64 " slot_data=%" PRIu64 "\n",
                role, node->path().c_str(), o.slots, o.ring, l.slots, sizeof(sh::Slot),
                offsetof(sh::Slot, peer_node), l.data, l.slot_data);
    std::fflush(stdout);
  }

  // why pid in the high half: the test tells a restarted sender's stream from the old one
  std::random_device rd;
  const std::uint64_t stream = (static_cast<std::uint64_t>(getpid()) << 32) | (rd() & 0xffffffffu);
  if (sends) {
    try {
      peer = node->remote(o.peer, o.role == "client" ? "echo" : "sink",
                          std::chrono::milliseconds(o.connect_ms));
    } catch (const std::exception& e) {
      std::fprintf(stderr, "%s: connect failed: %s\n", role, e.what());
      std::fflush(stderr);
      m.end();
      return 1;
    }
    std::printf("%s: connected peer=%s\n", role, o.peer.c_str());
    std::fflush(stdout);
  }

  const tern::ActorRef from = receives ? m.find(actor) : tern::ActorRef{};
  const Clock::time_point deadline = t0 + std::chrono::seconds(o.timeout_s);
  Clock::time_point next_stats = Clock::now() + std::chrono::milliseconds(o.stats_ms);
  tern::SendResult last = tern::SendResult::ok;
  for (;;) {
    if (g_stop) break;
    const Clock::time_point now = Clock::now();
    if (o.stats_ms && now >= next_stats) {
      stats_line("stats");
      next_stats = now + std::chrono::milliseconds(o.stats_ms);
    }
    const bool sent_all = !sends || (o.count && s.seq >= o.count);
    const bool got_all = o.count && rx && rx->got.load(std::memory_order_acquire) >= o.count;
    if (o.count && sent_all && (o.role == "source" || got_all)) break;
    if (o.count && now >= deadline) {
      std::fprintf(stderr, "%s: --timeout %" PRIu64 " s before %" PRIu64 " messages\n", role, o.timeout_s,
                   o.count);
      rc = 3;
      break;
    }
    if (sent_all) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      continue;
    }
    // how many may go now: all (rate 0) or what the rate allows since t0; the client also
    // keeps at most --window unanswered
    std::uint64_t allowed = o.count ? o.count : ~0ull;
    if (o.rate) {
      const auto us = std::chrono::duration_cast<std::chrono::microseconds>(now - t0).count();
      allowed = std::min<std::uint64_t>(allowed, static_cast<std::uint64_t>(us) * o.rate / 1'000'000 + 1);
    }
    if (o.role == "client") allowed = std::min(allowed, rx->got.load(std::memory_order_acquire) + o.window);
    std::uint64_t batch = 0;
    while (s.seq < allowed && batch < 4096 && !g_stop) {
      const tern::SendResult r = peer.send(make_tick(stream, s.seq), from);
      ++s.sent;
      if (r == tern::SendResult::ok) {
        if (last != tern::SendResult::ok) {
          ++s.ok_after_fail;
          std::printf("%s: result seq=%" PRIu64 " result=ok count=%" PRIu64 "\n", role, s.seq, s.ok_after_fail);
          std::fflush(stdout);
        }
        last = r;
        ++s.seq;
        ++batch;
        continue;
      }
      std::uint64_t& c = r == tern::SendResult::closed ? s.closed
                         : r == tern::SendResult::full ? s.full
                                                       : s.other;
      ++c;
      if (r != last) {
        const std::string_view what = tern::to_string(r);
        std::printf("%s: result seq=%" PRIu64 " result=%.*s count=%" PRIu64 "\n", role, s.seq,
                    static_cast<int>(what.size()), what.data(), c);
        std::fflush(stdout);
      }
      last = r;
      break;  // the same seq again after a pause: the link may come back
    }
    if (last != tern::SendResult::ok || s.seq >= allowed) std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  m.end();
  stats_line("done");
  return rc;
}
