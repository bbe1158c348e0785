#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <tern/manager.hpp>

#include "test_util.hpp"

using namespace tern;
using tern::test::wait_until;

namespace {
struct Ping {
  static constexpr MessageId message_id = 100;
  int count = 0;
};
struct Pong {
  static constexpr MessageId message_id = 101;
  int count = 0;
};
struct Other {
  static constexpr MessageId message_id = 4242;
};
struct PingClash {  // same id as Ping
  static constexpr MessageId message_id = 100;
};
struct Seq {
  static constexpr MessageId message_id = 200;
  std::uint32_t producer = 0;
  std::uint64_t n = 0;
};

class Echo : public Actor {
 public:
  Echo() {
    handle<&Echo::on_ping>();
    handle<&Echo::on_other>();
  }
  void on_ping(const Ping& m) {
    ++pings;
    (void)reply(Pong{m.count + 1});
  }
  void on_other(const Other&) { ++others; }
  void on_unhandled(const MessageInfo& info, const void*) override { last_unhandled = info.name; }
  int pings = 0, others = 0;
  std::string last_unhandled;
};

class Clash : public Actor {
 public:
  Clash() {
    handle<&Clash::a>();
    handle<&Clash::b>();
  }
  void a(const Ping&) {}
  void b(const PingClash&) {}
};
}  // namespace

TEST_CASE("handlers dispatch by message id and unknown types reach the fallback") {
  Echo e;
  FastReply r = e.self().fast_send(Ping{41});
  CHECK(r.status() == FastStatus::ok);
  REQUIRE(r.get<Pong>() != nullptr);
  CHECK(r.get<Pong>()->count == 42);
  CHECK(r.get<Ping>() == nullptr);
  CHECK(e.pings == 1);

  FastReply r2 = e.self().fast_send(Other{});
  CHECK(r2.status() == FastStatus::no_reply);
  CHECK(e.others == 1);

  FastReply r3 = e.self().fast_send(Seq{});
  CHECK(r3.status() == FastStatus::no_reply);
  CHECK(e.last_unhandled.find("Seq") != std::string::npos);
  CHECK(e.stats().unhandled == 1);
  CHECK(e.stats().handled == 3);
}

TEST_CASE("two handlers for one message id is an error naming both types") {
  std::string what;
  try {
    Clash c;
  } catch (const std::logic_error& e) {
    what = e.what();
  }
  CHECK(what.find("Ping") != std::string::npos);
  CHECK(what.find("PingClash") != std::string::npos);
  CHECK(what.find("100") != std::string::npos);
}

namespace {
template <MessageId Id>
struct M {
  static constexpr MessageId message_id = Id;
};
class Many : public Actor {
 public:
  Many() {
    handle<&Many::f<1>>();
    handle<&Many::f<2>>();
    handle<&Many::f<3>>();
    handle<&Many::f<1000>>();
    handle<&Many::f<65536>>();
    handle<&Many::f<0x12345678>>();
    handle<&Many::f<0x22345678>>();
    handle<&Many::f<17>>();
  }
  template <MessageId Id>
  void f(const M<Id>&) {
    last = Id;
  }
  MessageId last = 0;
};
}  // namespace

TEST_CASE("dispatch finds every handler among ids that collide in their low bits") {
  Many m;
  auto check = [&](auto msg) {
    (void)m.self().fast_send(msg);
    CHECK(m.last == decltype(msg)::message_id);
  };
  check(M<1>{});
  check(M<2>{});
  check(M<3>{});
  check(M<1000>{});
  check(M<65536>{});
  check(M<0x12345678>{});
  check(M<0x22345678>{});
  check(M<17>{});
  m.last = 0;
  (void)m.self().fast_send(M<4>{});
  CHECK(m.last == 0);
  CHECK(m.stats().unhandled == 1);
}

namespace {
// A -> fast_send B -> (inside B's handler) fast_send A: a cycle in one thread.
struct Go {
  static constexpr MessageId message_id = 300;
};
struct Back {
  static constexpr MessageId message_id = 301;
};
class Cyclic : public Actor {
 public:
  Cyclic() {
    handle<&Cyclic::on_go>();
    handle<&Cyclic::on_back>();
  }
  void on_go(const Go&) {
    FastReply r = peer.fast_send(Back{});
    inner = r.status();
  }
  void on_back(const Back&) {
    FastReply r = peer.fast_send(Go{});
    inner = r.status();
  }
  ActorRef peer;
  FastStatus inner = FastStatus::ok;
};
}  // namespace

TEST_CASE("a fast_send cycle within one thread is reported as deadlock, not hung") {
  Cyclic a, b;
  a.peer = b.self();
  b.peer = a.self();
  FastReply r = a.self().fast_send(Go{});
  CHECK(r.status() == FastStatus::no_reply);
  CHECK(b.inner == FastStatus::deadlock);  // B tried to re-enter A
}

namespace {
// Two actors on their own threads fast_send each other at the same time.
struct Kick {
  static constexpr MessageId message_id = 310;
};
struct Call {
  static constexpr MessageId message_id = 311;
};
class Crosser : public Actor {
 public:
  Crosser() {
    handle<&Crosser::on_kick>();
    handle<&Crosser::on_call>();
  }
  void on_kick(const Kick&) {
    arrived->fetch_add(1);
    // wait until both handlers are running, so each holds its own lock
    while (arrived->load() < 2) std::this_thread::yield();
    result.store(static_cast<int>(peer.fast_send(Call{}).status()));
  }
  void on_call(const Call&) { (void)reply(Pong{1}); }
  ActorRef peer;
  std::atomic<int>* arrived = nullptr;
  std::atomic<int> result{-1};
};
}  // namespace

TEST_CASE("two actors that fast_send each other concurrently get deadlock, not a hang") {
  Manager mgr;
  std::atomic<int> arrived{0};
  auto* a = new Crosser;
  auto* b = new Crosser;
  a->arrived = b->arrived = &arrived;
  ActorRef ra = mgr.manage("a", std::unique_ptr<Actor>(a));
  ActorRef rb = mgr.manage("b", std::unique_ptr<Actor>(b));
  a->peer = rb;
  b->peer = ra;
  mgr.init();
  (void)ra.send(Kick{});
  (void)rb.send(Kick{});
  REQUIRE(wait_until([&] { return a->result.load() >= 0 && b->result.load() >= 0; }));
  // At least one side must see the cycle; a side that did not then got its reply.
  const auto ra_st = static_cast<FastStatus>(a->result.load());
  const auto rb_st = static_cast<FastStatus>(b->result.load());
  CHECK((ra_st == FastStatus::deadlock || rb_st == FastStatus::deadlock));
  CHECK((ra_st == FastStatus::deadlock || ra_st == FastStatus::ok));
  CHECK((rb_st == FastStatus::deadlock || rb_st == FastStatus::ok));
  mgr.end();
}

namespace {
class Counter : public Actor {
 public:
  Counter() { handle<&Counter::on_seq>(); }
  void on_seq(const Seq& s) {
    if (inside.exchange(true)) ++overlap;  // two threads in one actor at once?
    if (s.producer < next.size()) {
      if (s.n != next[s.producer]) ++out_of_order;
      next[s.producer] = s.n + 1;
    }
    ++total;
    inside.store(false);
  }
  std::vector<std::uint64_t> next = std::vector<std::uint64_t>(8, 0);
  std::uint64_t out_of_order = 0, overlap = 0;
  std::atomic<std::uint64_t> total{0};
  std::atomic<bool> inside{false};
};
}  // namespace

TEST_CASE("per-sender FIFO with several producer threads plus fast_send: nothing lost, nothing twice") {
  for (Wake w : {Wake::spin, Wake::futex, Wake::yield}) {
    CAPTURE(static_cast<int>(w));
    Manager mgr;
    auto* c = new Counter;
    ThreadConfig tc;
    tc.wake = w;
    ActorRef ref = mgr.manage("counter", std::unique_ptr<Actor>(c), tc, MailboxConfig{256});
    mgr.init();
    constexpr std::uint32_t kProducers = 3;
    const std::uint64_t kEach = tern::test::scaled(100'000) / 1000 * 1000;
    std::vector<std::thread> ps;
    for (std::uint32_t p = 0; p < kProducers; ++p)
      ps.emplace_back([&, p] {
        for (std::uint64_t i = 0; i < kEach; ++i) {
          if (p == 2 && i % 1000 == 0) {
            // fast_send runs the handler here, excluded with the actor's own thread
            (void)ref.fast_send(Seq{99, i});
          }
          CHECK(ref.send(Seq{p, i}) == SendResult::ok);
        }
      });
    for (auto& t : ps) t.join();
    const std::uint64_t expect = kProducers * kEach + kEach / 1000;
    REQUIRE(wait_until([&] { return c->total.load() == expect; }));
    mgr.end();
    CHECK(c->total.load() == expect);
    CHECK(c->out_of_order == 0);
    CHECK(c->overlap == 0);
    for (std::uint32_t p = 0; p < kProducers; ++p) CHECK(c->next[p] == kEach);
    CHECK(c->stats().handled == expect);
    CHECK(c->stats().fast_sends == kEach / 1000);
  }
}

namespace {
class Blocker : public Actor {
 public:
  Blocker() { handle<&Blocker::on_seq>(); }
  void on_seq(const Seq&) {
    entered = true;
    while (!release.load()) std::this_thread::yield();
    ++handled;
  }
  std::atomic<bool> entered{false};
  std::atomic<bool> release{false};
  std::atomic<int> handled{0};
};
}  // namespace

TEST_CASE("a full mailbox makes try_send return full; send waits for room") {
  Manager mgr;
  auto* b = new Blocker;
  ActorRef ref = mgr.manage("blocker", std::unique_ptr<Actor>(b), {}, MailboxConfig{4});
  mgr.init();
  CHECK(ref.try_send(Seq{}) == SendResult::ok);  // taken by the handler, which blocks
  REQUIRE(wait_until([&] { return b->entered.load(); }));
  // the message being handled still occupies its slot (it lives there): 3 more fit
  CHECK(ref.actor()->stats().depth == 1);
  int accepted = 0;
  while (ref.try_send(Seq{}) == SendResult::ok) ++accepted;
  CHECK(accepted == 3);
  CHECK(ref.try_send(Seq{}) == SendResult::full);
  CHECK(b->stats().refused_full == 2);
  std::atomic<bool> sent{false};
  std::thread t([&] {
    CHECK(ref.send(Seq{}) == SendResult::ok);  // waits for room
    sent = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  CHECK_FALSE(sent.load());
  b->release = true;
  t.join();
  CHECK(sent.load());
  REQUIRE(wait_until([&] { return b->handled.load() == 5; }));
  mgr.end();
  CHECK(b->handled.load() == 5);
}

TEST_CASE("an empty ActorRef refuses with no_target") {
  ActorRef none;
  CHECK(none.try_send(Ping{}) == SendResult::no_target);
  CHECK(none.fast_send(Ping{}).status() == FastStatus::no_target);
  CHECK(to_string(SendResult::full) == "full");
  CHECK(to_string(FastStatus::deadlock) == "deadlock");
}

namespace {
struct Poke {
  static constexpr MessageId message_id = 950;
  std::uint64_t n = 0;
};
struct Relayed {
  static constexpr MessageId message_id = 951;
  std::uint64_t n = 0;
};
class Collector : public Actor {
 public:
  Collector() { handle<&Collector::on_relayed>(); }
  void on_relayed(const Relayed& r) {
    got.push_back(r.n);
    count.fetch_add(1);
  }
  std::vector<std::uint64_t> got;
  std::atomic<std::uint64_t> count{0};
};
// Relays every Poke to an spsc mailbox, from whichever thread runs the handler.
class Relay : public Actor {
 public:
  explicit Relay(ActorRef to) : to_(to) {
    handle<&Relay::on_start>();
    handle<&Relay::on_poke>();
  }
  void on_start(const Start&) { relay(0); }
  void on_poke(const Poke& p) { relay(p.n); }
  std::vector<std::uint64_t> sent;  // in the order the handler ran

 private:
  void relay(std::uint64_t n) {
    sent.push_back(n);
    (void)to_.send(Relayed{n});
  }
  ActorRef to_;
};
}  // namespace

TEST_CASE("an spsc mailbox's one producer is an actor, wherever its handler runs") {
  const std::uint64_t each = tern::test::scaled(20'000);
  Manager mgr;
  auto* c = new Collector;
  ActorRef cref = mgr.manage("collector", std::unique_ptr<Actor>(c), {},
                             MailboxConfig{256, MailboxKind::spsc});
  auto* r = new Relay(cref);
  ActorRef rref = mgr.manage("relay", std::unique_ptr<Actor>(r));
  mgr.init();
  // The relay's handler runs on its own thread (send) and on this one (fast_send), in turns.
  std::thread other([&] {
    for (std::uint64_t i = 1; i <= each; ++i) (void)rref.send(Poke{i});
  });
  for (std::uint64_t i = each + 1; i <= 2 * each; ++i)
    CHECK(rref.fast_send(Poke{i}).status() == FastStatus::no_reply);
  other.join();
  REQUIRE(wait_until([&] { return c->count.load() == 2 * each + 1; }, std::chrono::seconds(60)));
  mgr.end();
  CHECK(c->got == r->sent);  // every relayed message once, in the order the handler ran
}

namespace {
struct Boom {
  static constexpr MessageId message_id = 960;
  bool reply_first = false;
};
class Thrower : public Actor {
 public:
  Thrower() {
    handle<&Thrower::on_boom>();
    handle<&Thrower::on_ping>();
  }
  void on_boom(const Boom& b) {
    if (b.reply_first) (void)reply(Pong{1});
    throw std::runtime_error("boom from the handler");
  }
  void on_ping(const Ping& m) { (void)reply(Pong{m.count}); }
};
}  // namespace

TEST_CASE("fast_send to a handler that throws returns handler_threw, counts it, and the actor lives") {
  Manager mgr;
  auto* t = new Thrower;
  ActorRef ref = mgr.manage("thrower", std::unique_ptr<Actor>(t));
  mgr.init();
  FastReply r = ref.fast_send(Boom{});
  CHECK(r.status() == FastStatus::handler_threw);
  CHECK_FALSE(r);
  CHECK(r.info() == nullptr);
  // a reply made before the throw is dropped: the caller sees only the failure
  FastReply r2 = ref.fast_send(Boom{true});
  CHECK(r2.status() == FastStatus::handler_threw);
  CHECK(r2.get<Pong>() == nullptr);
  CHECK(t->stats().handler_exceptions == 2);
  CHECK(t->stats().fast_sends == 2);
  // the exclusion lock was released: fast_send and the actor's own thread both still work
  FastReply r3 = ref.fast_send(Ping{5});
  REQUIRE(r3.get<Pong>() != nullptr);
  CHECK(r3.get<Pong>()->count == 5);
  CHECK(ref.try_send(Boom{}) == SendResult::ok);  // the queued path: logged and counted too
  REQUIRE(wait_until([&] { return t->stats().handler_exceptions == 3; }));
  CHECK(ref.fast_send(Ping{6}).get<Pong>()->count == 6);
  mgr.end();
  CHECK(to_string(FastStatus::handler_threw) == "handler_threw");
}

namespace {
struct Held {
  static constexpr MessageId message_id = 970;
  static inline std::atomic<int> live{0};
  std::unique_ptr<int> owned;
  Held() : owned(std::make_unique<int>(1)) { ++live; }
  Held(Held&& o) noexcept : owned(std::move(o.owned)) { ++live; }
  ~Held() { --live; }
};
// Copying may throw (on demand); moving never does.
struct Fragile {
  static constexpr MessageId message_id = 971;
  static inline bool fail = false;
  int n = 0;
  explicit Fragile(int v) : n(v) {}
  Fragile(const Fragile& o) : n(o.n) {
    if (fail) throw std::runtime_error("Fragile copy failed");
  }
  Fragile(Fragile&& o) noexcept = default;
};
class FragileSink : public Actor {
 public:
  FragileSink() {
    handle<&FragileSink::on_fragile>();
    handle<&FragileSink::on_ping>();
  }
  void on_fragile(const Fragile& f) { got.push_back(f.n); }
  void on_ping(const Ping&) {
    const Fragile f{77};
    (void)reply(f);  // an lvalue reply: copied, and the copy may throw
  }
  std::vector<int> got;
};
}  // namespace

TEST_CASE("messages still queued when an actor is destroyed are destroyed with it") {
  Held::live = 0;
  {
    Manager mgr;  // never started: nothing ever handles them
    ActorRef ref = mgr.manage("holder", std::make_unique<Echo>());
    for (int i = 0; i < 5; ++i) CHECK(ref.try_send(Held{}) == SendResult::ok);
    CHECK(ref.try_send_priority(Held{}) == SendResult::ok);
    CHECK(Held::live == 6);
  }
  CHECK(Held::live == 0);
}

TEST_CASE("an lvalue send whose copy throws reaches the caller before any slot is claimed") {
  static_assert(!noexcept(std::declval<ActorRef&>().try_send(std::declval<Fragile&>())));
  static_assert(noexcept(std::declval<ActorRef&>().try_send(std::declval<Fragile&&>())));
  static_assert(noexcept(std::declval<ActorRef&>().try_send(std::declval<Ping&>())));
  Manager mgr;
  auto* sink = new FragileSink;
  ActorRef ref = mgr.manage("fragile", std::unique_ptr<Actor>(sink), {}, MailboxConfig{4});
  const Fragile f{1};
  Fragile::fail = true;
  CHECK_THROWS_AS((void)ref.try_send(f), std::runtime_error);
  CHECK_THROWS_AS((void)ref.send(f), std::runtime_error);
  CHECK_THROWS_AS((void)ref.try_send_priority(f), std::runtime_error);
  CHECK_THROWS_AS((void)ref.send_priority(f), std::runtime_error);
  CHECK(sink->stats().depth == 0);  // nothing claimed, nothing half-sent
  CHECK(ref.try_send(Fragile{2}) == SendResult::ok);  // an rvalue is moved: never throws
  Fragile::fail = false;
  CHECK(ref.try_send(f) == SendResult::ok);
  mgr.init();
  REQUIRE(wait_until([&] { return sink->stats().handled == 2; }));
  // a handler whose lvalue reply throws: counted like any handler exception
  Fragile::fail = true;
  CHECK(ref.fast_send(Ping{}).status() == FastStatus::handler_threw);
  Fragile::fail = false;
  FastReply r = ref.fast_send(Ping{});
  REQUIRE(r.get<Fragile>() != nullptr);
  CHECK(r.get<Fragile>()->n == 77);
  mgr.end();
  CHECK(sink->got == std::vector<int>{2, 1});
  CHECK(sink->stats().handler_exceptions == 1);
}

TEST_CASE("a send to an actor no Manager has taken yet returns closed (it has no mailbox yet)") {
  Echo e;  // constructed, never managed: its rings have no slots
  CHECK(e.self().try_send(Ping{1}) == SendResult::closed);
  CHECK(e.self().send(Ping{2}) == SendResult::closed);  // send() does not wait on it either
  CHECK(e.self().try_send_priority(Ping{3}) == SendResult::closed);
  CHECK(e.stats().refused_closed == 3);
  // managed: the same actor's mailbox opens and takes messages (handled after init())
  auto owned = std::make_unique<Echo>();
  Echo& o = *owned;
  Manager mgr;
  mgr.manage("echo", std::move(owned));
  CHECK(o.self().try_send(Ping{4}) == SendResult::ok);
}
