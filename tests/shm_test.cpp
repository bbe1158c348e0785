// tern/shm.hpp: two nodes in one process, each with its own segment, talking through them
// exactly as two processes do (tests/integration/test_shm.py runs real processes, kills
// them and restarts them).
#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include <tern/detail/shm_layout.hpp>
#include <tern/manager.hpp>
#include <tern/shm.hpp>
#include <tern/wire.hpp>

#include "test_util.hpp"

namespace {

using namespace std::chrono_literals;
using tern::test::scaled;
using tern::test::wait_until;

struct Ping {
  static constexpr tern::MessageId message_id = 9100;
  std::uint64_t seq = 0;
  std::uint64_t check = 0;  // ~seq: a torn record would not match
};
struct Pong {
  static constexpr tern::MessageId message_id = 9101;
  std::uint64_t seq = 0;
};
struct Big {
  static constexpr tern::MessageId message_id = 9102;
  std::uint64_t seq = 0;
  unsigned char bytes[2040] = {};
};
struct Wired {
  static constexpr tern::MessageId message_id = 9103;
  std::int32_t a = 0;
  double b = 0;
  TERN_WIRE(Wired, a, b)
};
struct NotShared {  // not trivially copyable: never crosses
  static constexpr tern::MessageId message_id = 9104;
  std::string text;
};
struct Unexported {
  static constexpr tern::MessageId message_id = 9105;
  int x = 0;
};

/// A fresh directory for one test's segments (tests of several builds run at once).
struct ShmDir {
  std::string path;
  ShmDir() {
    static std::atomic<int> n{0};
    path = "/dev/shm/tern-test-" + std::to_string(getpid()) + "-" + std::to_string(n++);
    std::filesystem::create_directories(path);
  }
  ~ShmDir() { std::filesystem::remove_all(path); }
  tern::ShmConfig cfg(const std::string& name, std::uint32_t ring = 1u << 16) const {
    tern::ShmConfig c;
    c.name = name;
    c.dir = path;
    c.ring_bytes = ring;
    c.slots = 4;
    c.monitor_interval_us = 500;
    return c;
  }
};

/// Answers every Ping with a Pong; checks order and integrity per sender.
class Echo : public tern::Actor {
 public:
  Echo() {
    handle<&Echo::on_ping>();
    handle<&Echo::on_big>();
    handle<&Echo::on_wired>();
    handle<&Echo::on_not_shared>();
  }
  void on_ping(const Ping& p) {
    if (p.check != ~p.seq || p.seq != next.load(std::memory_order_relaxed)) bad.fetch_add(1);
    next.store(p.seq + 1, std::memory_order_relaxed);
    got.fetch_add(1, std::memory_order_release);
    if (reply(Pong{p.seq}) != tern::SendResult::ok) reply_failed.fetch_add(1);
  }
  void on_big(const Big& b) {
    bool ok = true;
    for (unsigned char c : b.bytes) ok &= c == static_cast<unsigned char>(b.seq);
    if (!ok) bad.fetch_add(1);
    bigs.fetch_add(1);
  }
  void on_wired(const Wired& w) { wired.store(w.a); }
  void on_not_shared(const NotShared&) {}
  // atomic: the test thread resets it between senders, and the message that follows reaches
  // the actor through a ring the test wrote via another mapping of the segment, where TSan
  // sees no release/acquire pair (the address differs), so a plain field reads as a race
  std::atomic<std::uint64_t> next{0};
  std::atomic<std::uint64_t> got{0}, bad{0}, bigs{0}, reply_failed{0};
  std::atomic<int> wired{0};
};

class Client : public tern::Actor {
 public:
  Client() { handle<&Client::on_pong>(); }
  void on_pong(const Pong& p) {
    if (p.seq != next) bad.fetch_add(1);
    next = p.seq + 1;
    got.fetch_add(1, std::memory_order_release);
  }
  std::uint64_t next = 0;
  std::atomic<std::uint64_t> got{0}, bad{0};
};

/// An Echo actor exported by a started node `name`, its Manager running (ended first).
struct EchoNode {
  tern::Manager m;
  Echo* echo = new Echo;
  tern::ShmNode node;
  EchoNode(const ShmDir& dir, const std::string& name, tern::Wake wake = tern::Wake::spin)
      : node(dir.cfg(name)) {
    m.manage("echo", std::unique_ptr<tern::Actor>(echo), tern::ThreadConfig{.wake = wake});
    node.export_actor(m.find("echo"));
    node.start();
    m.init();
  }
  ~EchoNode() { m.end(); }
};

}  // namespace

TEST_CASE("shm: a remote actor is an ActorRef: send, reply, priority, in order and intact") {
  ShmDir dir;
  for (const tern::Wake wake : {tern::Wake::spin, tern::Wake::futex}) {
    CAPTURE(static_cast<int>(wake));
    tern::Manager ma, mb;
    auto* echo = new Echo;
    auto* client = new Client;
    ma.manage("echo", std::unique_ptr<tern::Actor>(echo), tern::ThreadConfig{.wake = wake});
    mb.manage("client", std::unique_ptr<tern::Actor>(client), tern::ThreadConfig{.wake = wake});
    tern::ShmNode a(dir.cfg("a")), b(dir.cfg("b"));
    a.export_actor(ma.find("echo"));
    b.export_actor(mb.find("client"));
    a.start();
    b.start();
    ma.init();
    mb.init();
    const tern::ActorRef echo_ref = b.remote("shm://a/echo", 2000ms);
    CHECK(echo_ref.is_remote());
    CHECK(echo_ref.name() == "echo");
    CHECK(b.connected(echo_ref));
    const std::uint64_t n = scaled(200000);
    const tern::ActorRef from = mb.find("client");
    for (std::uint64_t i = 0; i < n; ++i)
      REQUIRE(echo_ref.send(Ping{i, ~i}, from) == tern::SendResult::ok);
    REQUIRE(wait_until([&] { return client->got.load() == n; }));
    CHECK(echo->got.load() == n);
    CHECK(echo->bad.load() == 0);
    CHECK(client->bad.load() == 0);
    CHECK(echo->reply_failed.load() == 0);
    // priority lane
    CHECK(echo_ref.send_priority(Ping{n, ~n}, from) == tern::SendResult::ok);
    REQUIRE(wait_until([&] { return client->got.load() == n + 1; }));
    // a message near the normal lane's limit, intact
    for (std::uint64_t i = 0; i < 100; ++i) {
      Big big;
      big.seq = i;
      std::memset(big.bytes, static_cast<int>(i & 0xff), sizeof big.bytes);
      REQUIRE(echo_ref.send(big) == tern::SendResult::ok);
    }
    REQUIRE(wait_until([&] { return echo->bigs.load() == 100; }));
    CHECK(echo->bad.load() == 0);
    // fast_send needs a local actor
    CHECK(echo_ref.fast_send(Ping{}).status() == tern::FastStatus::remote);
    // types the remote actor does not take
    CHECK(echo_ref.try_send(NotShared{"x"}) == tern::SendResult::not_accepted);
    CHECK(echo_ref.try_send(Unexported{}) == tern::SendResult::not_accepted);
    CHECK(a.stats().connections >= 1);
    ma.end();
    // the exported actor stopped: its peers' sends report closed
    CHECK(echo_ref.try_send(Ping{}) == tern::SendResult::closed);
    mb.end();
  }
}

TEST_CASE("shm: a reply needs an exported sender; an unexported one gets no_target") {
  ShmDir dir;
  EchoNode en(dir, "a");
  [[maybe_unused]] tern::ShmNode& a = en.node;
  [[maybe_unused]] Echo* echo = en.echo;
  tern::ShmNode b(dir.cfg("b"));
  const tern::ActorRef echo_ref = b.remote("a", "echo", 2000ms);
  CHECK(echo_ref.send(Ping{0, ~0ull}) == tern::SendResult::ok);  // from a non-actor thread
  REQUIRE(wait_until([&] { return echo->got.load() == 1; }));
  CHECK(wait_until([&] { return echo->reply_failed.load() == 1; }));
}

TEST_CASE("shm: set-up errors name the value") {
  ShmDir dir;
  auto bad = [&](auto mutate) {
    tern::ShmConfig c = dir.cfg("x");
    mutate(c);
    return c;
  };
  CHECK_THROWS_WITH_AS(tern::ShmNode(bad([](auto& c) { c.name = "a/b"; })),
                       doctest::Contains("a/b"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(tern::ShmNode(bad([](auto& c) { c.ring_bytes = 5000; })),
                       doctest::Contains("5000"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(tern::ShmNode(bad([](auto& c) { c.slots = 0; })),
                       doctest::Contains("slots 0"), std::invalid_argument);
  tern::ShmNode a(dir.cfg("a"));
  CHECK_THROWS_WITH_AS(a.remote("shm://nobody/echo"), doctest::Contains("nobody"), std::runtime_error);
  CHECK_THROWS_AS(a.remote("no-slash"), std::invalid_argument);
  // two live owners of one name
  tern::ShmNode a2(dir.cfg("a"));
  const std::string pid = "pid " + std::to_string(getpid());
  CHECK_THROWS_WITH_AS(a2.start(), doctest::Contains(pid.c_str()), std::runtime_error);
}

TEST_CASE("shm: the exported actor must exist on the node; a segment file has mode 0600") {
  ShmDir dir;
  EchoNode en(dir, "a");
  [[maybe_unused]] tern::ShmNode& a = en.node;
  [[maybe_unused]] Echo* echo = en.echo;
  tern::ShmNode b(dir.cfg("b"));
  struct stat st {};
  REQUIRE(stat(a.path().c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  CHECK_THROWS_WITH_AS(b.remote("a", "nope"), doctest::Contains("no actor 'nope'"), std::runtime_error);
  const auto dir_list = tern::ShmNode::directory(dir.path);
  REQUIRE(dir_list.size() == 2);  // a, and b (started by remote())
  CHECK(dir_list[0].name == "a");
  CHECK(dir_list[0].alive);
  CHECK(dir_list[0].pid == static_cast<std::uint32_t>(getpid()));
  REQUIRE(dir_list[0].actors.size() == 1);
  CHECK(dir_list[0].actors[0] == "echo");
}

namespace {
/// Maps another node's segment file to corrupt it the way a hostile local process could.
struct Scribbler {
  unsigned char* base = nullptr;
  std::size_t len = 0;
  explicit Scribbler(const std::string& path) {
    const int fd = open(path.c_str(), O_RDWR);
    REQUIRE(fd >= 0);
    struct stat st {};
    fstat(fd, &st);
    len = static_cast<std::size_t>(st.st_size);
    void* m = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    REQUIRE(m != MAP_FAILED);
    base = static_cast<unsigned char*>(m);
  }
  ~Scribbler() { munmap(base, len); }
  tern::detail::shm::Export* first_export() {
    return reinterpret_cast<tern::detail::shm::Export*>(base + 4096);
  }
};
}  // namespace

TEST_CASE("shm: an exported Wake::futex actor is marked as parking before init, so peers wake it") {
  // start() comes before the Manager's init(): the segment must already say that this
  // consumer parks, else no producer wakes it and every message waits for the 100 ms backstop.
  ShmDir dir;
  for (const tern::Wake wake : {tern::Wake::futex, tern::Wake::spin}) {
    CAPTURE(static_cast<int>(wake));
    tern::Manager ma;
    auto* echo = new Echo;
    ma.manage("echo", std::unique_ptr<tern::Actor>(echo), tern::ThreadConfig{.wake = wake});
    tern::ShmNode a(dir.cfg(wake == tern::Wake::futex ? "f" : "s"));
    a.export_actor(ma.find("echo"));
    a.start();
    {
      Scribbler s(a.path());
      CHECK(s.first_export()->futex == (wake == tern::Wake::futex ? 1u : 0u));
    }
    ma.init();
    tern::ShmNode b(dir.cfg(wake == tern::Wake::futex ? "fb" : "sb"));
    const tern::ActorRef ref = b.remote(a.name(), "echo", 2000ms);
    for (std::uint64_t i = 0; i < 20; ++i) {  // one at a time: the consumer parks between them
      REQUIRE(ref.send(Ping{i, ~i}) == tern::SendResult::ok);
      REQUIRE(wait_until([&] { return echo->got.load() == i + 1; }));
    }
    CHECK(echo->bad.load() == 0);
    ma.end();
  }
}

TEST_CASE("shm: a fingerprint mismatch is refused naming the type and the difference") {
  ShmDir dir;
  EchoNode en(dir, "a");
  [[maybe_unused]] tern::ShmNode& a = en.node;
  [[maybe_unused]] Echo* echo = en.echo;
  tern::ShmNode b(dir.cfg("b"));
  {
    Scribbler s(a.path());
    auto* x = s.first_export();
    for (std::uint32_t t = 0; t < x->n_types; ++t)
      if (x->types[t].id == Ping::message_id) x->types[t].size = 24;  // the peer's Ping grew
  }
  CHECK_THROWS_WITH_AS(b.remote("a", "echo"), doctest::Contains("Ping): size 16 here, 24 in the peer"),
                       std::runtime_error);
  CHECK(b.stats().refused_mismatch >= 1);  // the monitor's retries count too
  {
    Scribbler s(a.path());
    auto* x = s.first_export();
    // Wired first: b's monitor retries the link meanwhile and must not find it all fixed
    for (std::uint32_t t = 0; t < x->n_types; ++t)
      if (x->types[t].id == Wired::message_id) x->types[t].layout ^= 1;  // a field moved
    for (std::uint32_t t = 0; t < x->n_types; ++t)
      if (x->types[t].id == Ping::message_id) x->types[t].size = 16;
  }
  CHECK_THROWS_WITH_AS(b.remote("a", "echo"), doctest::Contains("Wired): field layout"),
                       std::runtime_error);
}

TEST_CASE("shm: a corrupted segment header is refused, never misread") {
  ShmDir dir;
  EchoNode en(dir, "a");
  [[maybe_unused]] tern::ShmNode& a = en.node;
  [[maybe_unused]] Echo* echo = en.echo;
  tern::ShmNode b(dir.cfg("b"));
  struct Case {
    std::size_t off;
    std::uint32_t value;
    const char* says;
  } cases[] = {
      {0, 0x12345678, "magic"},
      {8, 2, "version 2"},
      {offsetof(tern::detail::shm::Header, slots), 1000, "slots 1000"},
      {offsetof(tern::detail::shm::Header, ring_bytes), 1u << 20, "layout needs"},
  };
  int i = 0;
  for (const Case& c : cases) {
    CAPTURE(c.says);
    Scribbler s(a.path());
    std::uint32_t saved;
    std::memcpy(&saved, s.base + c.off, 4);
    std::memcpy(s.base + c.off, &c.value, 4);
    {
      // a node of its own per case: its monitor retries the link, and must not find the
      // segment repaired by the next case before the check
      tern::ShmNode peer(dir.cfg("p" + std::to_string(i++)));
      CHECK_THROWS_WITH_AS(peer.remote("a", "echo"), doctest::Contains(c.says), std::runtime_error);
    }
    std::memcpy(s.base + c.off, &saved, 4);
  }
  CHECK_NOTHROW(b.remote("a", "echo"));
}

TEST_CASE("shm: garbage written into a connection's ring fails that connection, not the reader") {
  ShmDir dir;
  EchoNode en(dir, "a");
  [[maybe_unused]] tern::ShmNode& a = en.node;
  [[maybe_unused]] Echo* echo = en.echo;
  tern::ShmNode b(dir.cfg("b")), c(dir.cfg("c"));
  const tern::ActorRef via_b = b.remote("a", "echo", 2000ms);
  const tern::ActorRef via_c = c.remote("a", "echo", 2000ms);
  REQUIRE(via_b.send(Ping{0, ~0ull}) == tern::SendResult::ok);
  REQUIRE(wait_until([&] { return echo->got.load() == 1; }));
  // scribble the next record position of b's slot (slot 0): an impossible commit word, then
  // a record claiming a type code outside the table
  using namespace tern::detail::shm;
  Layout l;
  REQUIRE(compute_layout(1, 4, 1u << 16, kPrioRingBytes, l));
  {
    Scribbler s(a.path());
    Slot* slot = slot_at(s.base, l, 4, 0, 0);
    REQUIRE(std::string(slot->peer_node) == "b");
    unsigned char* data = ring_data(s.base, l, 4, 1u << 16, 0, 0, false);
    const std::uint64_t pos = slot->normal.tail.load();
    auto* r = reinterpret_cast<tern::detail::Record*>(data + (pos & 0xffff));
    r->type = 60000;
    r->word.store(0x40, std::memory_order_release);  // 64 bytes, type 60000: bad code
  }
  REQUIRE(wait_until([&] { return a.stats().failed == 1; }));
  CHECK(via_b.try_send(Ping{1, ~1ull}) == tern::SendResult::closed);
  // the reader and the other connection are fine
  echo->next.store(0);
  REQUIRE(via_c.send(Ping{0, ~0ull}) == tern::SendResult::ok);
  REQUIRE(wait_until([&] { return echo->got.load() == 2; }));
  CHECK(echo->bad.load() == 0);
}

TEST_CASE("shm: a peer that goes away frees its connection; a node that comes back is reconnected") {
  ShmDir dir;
  tern::Manager ma;
  auto* echo = new Echo;
  ma.manage("echo", std::unique_ptr<tern::Actor>(echo), tern::ThreadConfig{.wake = tern::Wake::futex});
  auto a = std::make_unique<tern::ShmNode>(dir.cfg("a"));
  a->export_actor(ma.find("echo"));
  a->start();
  ma.init();
  // peers come and go: each takes a slot, and gets it back when it goes (4 slots, 10 peers)
  for (int i = 0; i < 10; ++i) {
    tern::ShmNode b(dir.cfg("b" + std::to_string(i)));
    const tern::ActorRef ref = b.remote("a", "echo", 2000ms);
    REQUIRE(ref.send(Ping{0, ~0ull}) == tern::SendResult::ok);
    REQUIRE(wait_until([&] { return echo->got.load() == static_cast<std::uint64_t>(i + 1); }));
  }
  CHECK(wait_until([&] { return a->stats().peers_lost == 10; }));
  CHECK(a->stats().connections == 10);
  ma.end();

  // the exporting node goes away: the peer's sends report closed; it comes back under the
  // same name (a new segment): the link is reconnected and sends arrive again
  tern::ShmNode b(dir.cfg("b"));
  tern::ActorRef ref;  // kept across the restart: the same (link, name)
  {
    EchoNode a2(dir, "a2");
    ref = b.remote("a2", "echo", 2000ms);
    REQUIRE(ref.send(Ping{0, ~0ull}) == tern::SendResult::ok);
    REQUIRE(wait_until([&] { return a2.echo->got.load() == 1; }));
  }
  // a2 destroyed: closed within the monitor interval
  CHECK(wait_until([&] { return !b.connected(ref); }, 2000ms));
  CHECK(ref.try_send(Ping{}) == tern::SendResult::closed);
  EchoNode a3(dir, "a2");
  REQUIRE(wait_until([&] { return b.connected(ref); }, 5000ms));
  REQUIRE(ref.send(Ping{0, ~0ull}) == tern::SendResult::ok);
  REQUIRE(wait_until([&] { return a3.echo->got.load() == 1; }));
  CHECK(b.stats().links_lost >= 1);
  CHECK(b.stats().links_up >= 2);
}

TEST_CASE("shm: with wait_for_reconnect a blocking send waits out a restart of its peer") {
  ShmDir dir;
  tern::ShmConfig cfg = dir.cfg("b");
  cfg.wait_for_reconnect = true;
  tern::ShmNode b(cfg);
  tern::ActorRef ref;
  {
    EchoNode a(dir, "a");
    ref = b.remote("a", "echo", 2000ms);
    REQUIRE(ref.send(Ping{0, ~0ull}) == tern::SendResult::ok);
    REQUIRE(wait_until([&] { return a.echo->got.load() == 1; }));
  }
  REQUIRE(wait_until([&] { return !b.connected(ref); }, 2000ms));
  CHECK(ref.try_send(Ping{}) == tern::SendResult::full);  // never blocks
  std::atomic<int> result{-1};
  std::thread sender([&] { result.store(static_cast<int>(ref.send(Ping{0, ~0ull}))); });
  std::this_thread::sleep_for(50ms);
  CHECK(result.load() == -1);  // still waiting: the node is not back
  EchoNode again(dir, "a");
  REQUIRE(wait_until([&] { return result.load() != -1; }, 5000ms));
  sender.join();
  CHECK(result.load() == static_cast<int>(tern::SendResult::ok));
  REQUIRE(wait_until([&] { return again.echo->got.load() == 1; }));
}

TEST_CASE("shm: a segment left by a dead owner is reclaimed at start") {
  ShmDir dir;
  {
    // a segment-shaped file nobody holds: what a crash leaves
    const std::string p = dir.path + "/tern.a";
    const int fd = open(p.c_str(), O_RDWR | O_CREAT, 0600);
    REQUIRE(fd >= 0);
    REQUIRE(ftruncate(fd, 1 << 20) == 0);
    close(fd);
  }
  tern::ShmNode a(dir.cfg("a"));
  CHECK_NOTHROW(a.start());
  CHECK(a.stats().reclaimed == 1);
  // a segment whose owner is gone (a node's file, its lock dropped) is removed by
  // remove_stale; a live node's is kept
  {
    tern::ShmNode gone(dir.cfg("gone"));
    gone.start();
    std::filesystem::copy_file(gone.path(), dir.path + "/tern.left");
  }
  CHECK(tern::ShmNode::directory(dir.path).size() == 2);
  CHECK(tern::ShmNode::remove_stale(dir.path) == 1);
  const auto left = tern::ShmNode::directory(dir.path);
  REQUIRE(left.size() == 1);
  CHECK(left[0].name == "a");
  CHECK(left[0].alive);
}

TEST_CASE("shm: kind spsc (one sending thread per connection) streams exact and in order") {
  ShmDir dir;
  EchoNode en(dir, "a");
  tern::ShmConfig cfg = dir.cfg("b");
  cfg.kind = tern::MailboxKind::spsc;
  tern::ShmNode b(cfg);
  const tern::ActorRef ref = b.remote("a", "echo", 2000ms);
  const std::uint64_t n = scaled(300000);
  for (std::uint64_t i = 0; i < n; ++i) REQUIRE(ref.send(Ping{i, ~i}) == tern::SendResult::ok);
  REQUIRE(wait_until([&] { return en.echo->got.load() == n; }));
  CHECK(en.echo->bad.load() == 0);
  // the priority lane still claims by CAS: any thread may use it
  std::thread other([&] { CHECK(ref.send_priority(Ping{n, ~n}) == tern::SendResult::ok); });
  other.join();
  REQUIRE(wait_until([&] { return en.echo->got.load() == n + 1; }));
  CHECK(en.echo->bad.load() == 0);
}
