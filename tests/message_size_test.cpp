// Messages of every size (issue 10): 1 byte to 64 KB through every mailbox kind and lane,
// Groups and fast_send; the pool (exhaustion is `full`); per-mailbox size limits;
// non-trivial messages destroyed exactly once, inline and pooled, also at teardown.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <thread>

#include <tern/group.hpp>
#include <tern/manager.hpp>

#include "test_util.hpp"

using namespace tern;
using tern::test::wait_until;

namespace {

/// N bytes; byte i is (seed + 7 i) mod 256, seed = data[0].
template <std::size_t N, MessageId Id>
struct Blob {
  static constexpr MessageId message_id = Id;
  unsigned char data[N];
  explicit Blob(unsigned seed = 0) noexcept {
    for (std::size_t i = 0; i < N; ++i) data[i] = static_cast<unsigned char>(seed + 7 * i);
  }
  bool intact() const noexcept {
    for (std::size_t i = 1; i < N; ++i)
      if (data[i] != static_cast<unsigned char>(data[0] + 7 * i)) return false;
    return true;
  }
};
using B1 = Blob<1, 7001>;
using B15 = Blob<15, 7002>;
using B16 = Blob<16, 7003>;
using B17 = Blob<17, 7004>;
using B80 = Blob<80, 7005>;
using B255 = Blob<255, 7006>;
using B257 = Blob<257, 7007>;
using B2K = Blob<2048, 7008>;
using B4K1 = Blob<4097, 7009>;
using B64K = Blob<65536, 7010>;

constexpr std::uint32_t kMax = 65536;

MailboxConfig big_config(MailboxKind kind, std::uint32_t capacity = 256) {
  MailboxConfig c;
  c.capacity = capacity;
  c.kind = kind;
  c.max_message_bytes = kMax;
  c.pool_blocks = 4;
  return c;
}

/// Checks each message and sends it back to its sender (a round trip through two
/// mailboxes). Under fast_send, replies only what a FastReply holds (<= 80 bytes).
class Echo : public Actor {
 public:
  Echo() {
    handle<&Echo::on<B1>>();
    handle<&Echo::on<B15>>();
    handle<&Echo::on<B16>>();
    handle<&Echo::on<B17>>();
    handle<&Echo::on<B80>>();
    handle<&Echo::on<B255>>();
    handle<&Echo::on<B257>>();
    handle<&Echo::on<B2K>>();
    handle<&Echo::on<B4K1>>();
    handle<&Echo::on<B64K>>();
  }
  template <class M>
  void on(const M& m) {
    if (!m.intact()) bad.fetch_add(1);
    seen.fetch_add(1);
    const SendResult r = reply(m);
    if (r != SendResult::ok) {
      if (r == SendResult::too_large && sizeof(M) > kFastReplyBytes) too_large_replies.fetch_add(1);
      else bad.fetch_add(1);
    }
  }
  std::atomic<int> seen{0}, bad{0}, too_large_replies{0};
};

/// Receives the echoes: checks content and sequence (seed) per type.
class Collector : public Actor {
 public:
  Collector() {
    handle<&Collector::on<B1>>();
    handle<&Collector::on<B15>>();
    handle<&Collector::on<B16>>();
    handle<&Collector::on<B17>>();
    handle<&Collector::on<B80>>();
    handle<&Collector::on<B255>>();
    handle<&Collector::on<B257>>();
    handle<&Collector::on<B2K>>();
    handle<&Collector::on<B4K1>>();
    handle<&Collector::on<B64K>>();
  }
  template <class M>
  void on(const M& m) {
    if (!m.intact()) bad.fetch_add(1);
    got.fetch_add(1);
  }
  std::atomic<int> got{0}, bad{0};
};

template <class M>
int send_some(ActorRef to, ActorRef from, bool priority, int n) {
  int ok = 0;
  for (int i = 0; i < n; ++i) {
    const SendResult r = priority ? to.send_priority(M(static_cast<unsigned>(i)), from)
                                  : to.send(M(static_cast<unsigned>(i)), from);
    ok += r == SendResult::ok;
  }
  return ok;
}

/// Sends `n` of every size; returns how many were accepted.
int send_all_sizes(ActorRef to, ActorRef from, bool priority, int n) {
  return send_some<B1>(to, from, priority, n) + send_some<B15>(to, from, priority, n) +
         send_some<B16>(to, from, priority, n) + send_some<B17>(to, from, priority, n) +
         send_some<B80>(to, from, priority, n) + send_some<B255>(to, from, priority, n) +
         send_some<B257>(to, from, priority, n) + send_some<B2K>(to, from, priority, n) +
         send_some<B4K1>(to, from, priority, n) + send_some<B64K>(to, from, priority, n);
}

}  // namespace

TEST_CASE("messages of 1 byte to 64 KB round trip intact through spsc and mpsc mailboxes, both lanes") {
  for (MailboxKind kind : {MailboxKind::spsc, MailboxKind::mpsc}) {
    for (bool priority : {false, true}) {
      CAPTURE(static_cast<int>(kind));
      CAPTURE(priority);
      Manager mgr;
      auto* echo = new Echo;
      auto* col = new Collector;
      ActorRef e = mgr.manage("echo", std::unique_ptr<Actor>(echo), {}, big_config(kind, 64));
      ActorRef c = mgr.manage("collector", std::unique_ptr<Actor>(col), {}, big_config(kind, 64));
      mgr.init();
      // this thread is echo's one producer; echo is collector's one producer
      const int n = static_cast<int>(tern::test::scaled(50));
      const int sent = send_all_sizes(e, c, priority, n);
      CHECK(sent == 10 * n);
      CHECK(wait_until([&] { return col->got.load() == sent; }));
      mgr.end();
      CHECK(echo->seen.load() == sent);
      CHECK(echo->bad.load() == 0);
      CHECK(col->bad.load() == 0);
      CHECK(col->got.load() == sent);
    }
  }
}

TEST_CASE("messages of 1 byte to 64 KB round trip intact between actors of a Group") {
  Manager mgr;
  Group g("g", GroupConfig{.workers = 2});
  auto* echo = new Echo;
  auto* col = new Collector;
  ActorRef e = g.add("echo", std::unique_ptr<Actor>(echo), big_config(MailboxKind::mpsc, 64));
  ActorRef c = g.add("collector", std::unique_ptr<Actor>(col), big_config(MailboxKind::mpsc, 64));
  mgr.attach(g);
  mgr.init();
  const int n = static_cast<int>(tern::test::scaled(20));
  const int sent = send_all_sizes(e, c, false, n) + send_all_sizes(e, c, true, n);
  CHECK(sent == 20 * n);
  CHECK(wait_until([&] { return col->got.load() == sent; }));
  mgr.end();
  CHECK(echo->bad.load() == 0);
  CHECK(col->bad.load() == 0);
}

TEST_CASE("fast_send carries messages of every size; replies above 80 bytes are too_large") {
  Manager mgr;
  auto* echo = new Echo;
  ActorRef e = mgr.manage("echo", std::unique_ptr<Actor>(echo), {}, big_config(MailboxKind::mpsc));
  mgr.init();
  {
    FastReply r = e.fast_send(B80(3));
    REQUIRE(r.get<B80>() != nullptr);
    CHECK(r.get<B80>()->intact());
    CHECK(r.get<B80>()->data[0] == 3);
  }
  {
    FastReply r = e.fast_send(B1(9));
    REQUIRE(r.get<B1>() != nullptr);
    CHECK(r.get<B1>()->data[0] == 9);
  }
  for (int i = 0; i < 3; ++i) {
    CHECK(e.fast_send(B2K(static_cast<unsigned>(i))).status() == FastStatus::no_reply);
    CHECK(e.fast_send(B64K(static_cast<unsigned>(i))).status() == FastStatus::no_reply);
  }
  mgr.end();
  CHECK(echo->seen.load() == 8);
  CHECK(echo->bad.load() == 0);
  CHECK(echo->too_large_replies.load() == 6);
}

namespace {
struct Big {
  static constexpr MessageId message_id = 7100;
  unsigned char pad[1000] = {};
};
class Blocker : public Actor {
 public:
  Blocker() { handle<&Blocker::on>(); }
  void on(const Big&) {
    entered = true;
    while (!release.load()) std::this_thread::yield();
    handled.fetch_add(1);
  }
  std::atomic<bool> entered{false}, release{false};
  std::atomic<int> handled{0};
};
}  // namespace

TEST_CASE("an exhausted pool makes try_send return full and send wait, like a full ring") {
  Manager mgr;
  auto* b = new Blocker;
  MailboxConfig cfg;
  cfg.capacity = 256;  // the ring has room for far more than the pool
  cfg.pool_blocks = 2;
  ActorRef ref = mgr.manage("blocker", std::unique_ptr<Actor>(b), {}, cfg);
  mgr.init();
  CHECK(ref.try_send(Big{}) == SendResult::ok);  // handled now: holds its block until it returns
  REQUIRE(wait_until([&] { return b->entered.load(); }));
  CHECK(ref.try_send(Big{}) == SendResult::ok);    // the second block
  CHECK(ref.try_send(Big{}) == SendResult::full);  // none left
  CHECK(b->stats().refused_full == 1);
  std::atomic<bool> sent{false};
  std::thread t([&] {
    CHECK(ref.send(Big{}) == SendResult::ok);  // waits for a block
    sent = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  CHECK_FALSE(sent.load());
  b->release = true;
  t.join();
  CHECK(sent.load());
  CHECK(wait_until([&] { return b->handled.load() == 3; }));
  mgr.end();
  CHECK(b->handled.load() == 3);
}

TEST_CASE("a type above max_message_bytes: a handler is a set-up error, a send is too_large") {
  {
    Manager mgr;
    MailboxConfig cfg;
    cfg.max_message_bytes = 1024;
    CHECK_THROWS_WITH_AS(mgr.emplace<Echo>("echo", {}, cfg),
                         doctest::Contains("Blob<2048, 7008> (2048 bytes) but its MailboxConfig::max_message_bytes is 1024"),
                         std::invalid_argument);
  }
  Manager mgr;
  auto* b = new Blocker;  // handles Big (1000 bytes)
  MailboxConfig cfg;
  cfg.max_message_bytes = 1024;
  ActorRef ref = mgr.manage("blocker", std::unique_ptr<Actor>(b), {}, cfg);
  mgr.init();
  CHECK(ref.try_send(B2K(1)) == SendResult::too_large);
  CHECK(ref.send(B2K(1)) == SendResult::too_large);  // never waits for it
  CHECK(b->stats().refused_too_large == 2);
  b->release = true;
  CHECK(ref.try_send(Big{}) == SendResult::ok);
  CHECK(wait_until([&] { return b->handled.load() == 1; }));
  mgr.end();
  MailboxConfig bad;
  bad.max_message_bytes = 0;
  Manager m2;
  CHECK_THROWS_WITH_AS(m2.emplace<Collector>("c", {}, bad),
                       doctest::Contains("max_message_bytes 0"), std::invalid_argument);
}

namespace {
template <std::size_t N, MessageId Id>
struct Counted {
  static constexpr MessageId message_id = Id;
  static inline std::atomic<int> live{0};
  std::unique_ptr<int> owned;  // non-trivial: a message never destroyed leaks this (ASan)
  unsigned char pad[N] = {};
  explicit Counted(int v) : owned(std::make_unique<int>(v)) { ++live; }
  Counted(Counted&& o) noexcept : owned(std::move(o.owned)) { ++live; }
  ~Counted() { --live; }
};
using SmallC = Counted<8, 7200>;
using LargeC = Counted<3000, 7201>;
class CountSink : public Actor {
 public:
  CountSink() {
    handle<&CountSink::on_small>();
    handle<&CountSink::on_large>();
  }
  void on_small(const SmallC&) { got.fetch_add(1); }
  void on_large(const LargeC&) { got.fetch_add(1); }
  std::atomic<int> got{0};
};
}  // namespace

TEST_CASE("non-trivial messages, inline and pooled, are destroyed exactly once (handled or torn down)") {
  SmallC::live = 0;
  LargeC::live = 0;
  {
    Manager mgr;
    auto* s = new CountSink;
    ActorRef ref = mgr.manage("sink", std::unique_ptr<Actor>(s), {}, big_config(MailboxKind::mpsc));
    mgr.init();
    for (int i = 0; i < 200; ++i) {
      CHECK(ref.send(SmallC(i)) == SendResult::ok);
      CHECK(ref.send(LargeC(i)) == SendResult::ok);
    }
    CHECK(wait_until([&] { return s->got.load() == 400; }));
    mgr.end();
    CHECK(SmallC::live == 0);
    CHECK(LargeC::live == 0);
  }
  {
    // never started: the messages stay in the mailbox (and the pool) until teardown
    Manager mgr;
    MailboxConfig cfg = big_config(MailboxKind::mpsc);
    cfg.pool_blocks = 8;  // one pool for both lanes: 6 large messages wait in it
    ActorRef ref = mgr.emplace<CountSink>("idle", {}, cfg);
    for (int i = 0; i < 3; ++i) {
      CHECK(ref.try_send(SmallC(i)) == SendResult::ok);
      CHECK(ref.try_send(LargeC(i)) == SendResult::ok);
      CHECK(ref.try_send_priority(LargeC(i)) == SendResult::ok);
    }
    CHECK(SmallC::live == 3);
    CHECK(LargeC::live == 6);
  }
  CHECK(SmallC::live == 0);
  CHECK(LargeC::live == 0);
}
