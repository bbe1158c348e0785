#include <doctest/doctest.h>

#include <atomic>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include <tern/mailbox.hpp>

#include "test_util.hpp"

using tern::detail::PushStatus;
using tern::detail::Ring;
using tern::detail::Record;

namespace {
struct Item {
  static constexpr tern::MessageId message_id = 1;
  std::uint32_t producer;
  std::uint64_t seq;
};

constexpr std::uint32_t kItemWord = tern::detail::record_bytes(sizeof(Item), false);
constexpr std::uint32_t kItemBytes = kItemWord;  // 32: a 16-byte header + 16 bytes

auto fill(std::uint32_t producer, std::uint64_t seq) {
  return [=](Record& r) noexcept {
    new (r.body()) Item{producer, seq};
    r.type = tern::detail::type_index_of(tern::message_info_v<Item>);
  };
}
const Item& item(Record* r) { return *reinterpret_cast<const Item*>(r->body()); }
PushStatus push(Ring& r, bool spsc, std::uint32_t producer, std::uint64_t seq) {
  return spsc ? r.push_spsc(kItemWord, fill(producer, seq), false)
              : r.push_mpsc(kItemWord, fill(producer, seq), false);
}
}  // namespace

TEST_CASE("a ring holds capacity messages in FIFO order and then reports full") {
  for (bool spsc : {true, false}) {
    Ring r;
    r.init(5 * kItemBytes, spsc ? tern::MailboxKind::spsc : tern::MailboxKind::mpsc);  // 256
    CHECK(r.bytes() == 8 * kItemBytes);
    for (std::uint64_t i = 0; i < 8; ++i) CHECK(push(r, spsc, 0, i) == PushStatus::ok);
    CHECK(push(r, spsc, 0, 99) == PushStatus::full);
    CHECK(r.depth() == 8);
    for (std::uint64_t i = 0; i < 8; ++i) {
      Record* s = r.front();
      REQUIRE(s != nullptr);
      CHECK(item(s).seq == i);
      r.pop();
      r.release();
    }
    CHECK(r.front() == nullptr);
    CHECK(r.empty_sc());
    // wraps around: a second lap works
    CHECK(push(r, spsc, 0, 8) == PushStatus::ok);
    REQUIRE(r.front() != nullptr);
    CHECK(item(r.front()).seq == 8);
  }
}

TEST_CASE("popped slots go back to producers only at release(), once per batch") {
  Ring r;
  r.init(2 * kItemBytes);  // the smallest ring: 64 bytes
  CHECK(push(r, false, 0, 0) == PushStatus::ok);
  CHECK(push(r, false, 0, 1) == PushStatus::ok);
  REQUIRE(r.front() != nullptr);
  r.pop();
  CHECK(push(r, false, 0, 2) == PushStatus::full);
  r.release();
  CHECK(push(r, false, 0, 2) == PushStatus::ok);
  REQUIRE(r.front() != nullptr);
  CHECK(item(r.front()).seq == 1);
}

TEST_CASE("a closed ring refuses new messages but keeps the accepted ones") {
  for (bool spsc : {true, false}) {
    Ring r;
    r.init(4 * kItemBytes, spsc ? tern::MailboxKind::spsc : tern::MailboxKind::mpsc);
    CHECK(push(r, spsc, 0, 1) == PushStatus::ok);
    r.close();
    CHECK(r.closed());
    CHECK(push(r, spsc, 0, 2) == PushStatus::closed);
    CHECK_FALSE(r.drained());
    REQUIRE(r.front() != nullptr);
    CHECK(item(r.front()).seq == 1);
    r.pop();
    r.release();
    CHECK(r.drained());
    CHECK(r.depth() == 0);
  }
}

TEST_CASE("four producers into one MPSC ring: exact count and per-producer order") {
  constexpr std::uint32_t kProducers = 4;
  const std::uint64_t kEach = tern::test::scaled(250'000);
  Ring r;
  r.init(1024 * kItemBytes);
  std::vector<std::thread> ps;
  for (std::uint32_t p = 0; p < kProducers; ++p) {
    ps.emplace_back([&r, p, kEach] {
      for (std::uint64_t i = 0; i < kEach;) {
        if (push(r, false, p, i) == PushStatus::ok)
          ++i;
        else
          std::this_thread::yield();
      }
    });
  }
  std::vector<std::uint64_t> next(kProducers, 0);
  std::uint64_t got = 0, out_of_order = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (got < kProducers * kEach && std::chrono::steady_clock::now() < deadline) {
    Record* s = r.front();
    if (!s) continue;
    const Item& it = item(s);
    if (it.seq != next[it.producer]) ++out_of_order;
    next[it.producer] = it.seq + 1;
    r.pop();
    r.release();
    ++got;
  }
  for (auto& t : ps) t.join();
  CHECK(got == kProducers * kEach);
  CHECK(out_of_order == 0);
  CHECK(r.front() == nullptr);
  for (auto n : next) CHECK(n == kEach);
}

TEST_CASE("SPSC ring across two threads delivers every message once, in order") {
  const std::uint64_t kN = tern::test::scaled(1'000'000);
  Ring r;
  r.init(256 * kItemBytes, tern::MailboxKind::spsc);
  std::thread prod([&] {
    for (std::uint64_t i = 0; i < kN;)
      if (push(r, true, 0, i) == PushStatus::ok) ++i;
  });
  std::uint64_t expect = 0, bad = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (expect < kN && std::chrono::steady_clock::now() < deadline) {
    Record* s = r.front();
    if (!s) continue;
    if (item(s).seq != expect) ++bad;
    ++expect;
    r.pop();
    r.release();
  }
  prod.join();
  CHECK(expect == kN);
  CHECK(bad == 0);
}

namespace {
// Counts live objects: a leak shows as live > 0 (and ASan's leak check sees the buffer).
struct Counted {
  static constexpr tern::MessageId message_id = 2;
  static inline std::atomic<int> live{0};
  std::unique_ptr<int> owned;  // non-trivial: a message never destroyed leaks this
  explicit Counted(int v) : owned(std::make_unique<int>(v)) { ++live; }
  Counted(Counted&& o) noexcept : owned(std::move(o.owned)) { ++live; }
  ~Counted() { --live; }
};
}  // namespace

TEST_CASE("a mailbox destroys the messages it still holds when it is destroyed") {
  for (bool spsc : {true, false}) {
    Counted::live = 0;
    {
      tern::detail::Mailbox mb;
      tern::MailboxConfig cfg;
      cfg.capacity = 8;
      cfg.kind = spsc ? tern::MailboxKind::spsc : tern::MailboxKind::mpsc;
      mb.configure(cfg, nullptr, "m");
      const std::uint32_t type = tern::detail::type_index_of(tern::message_info_v<Counted>);
      auto send = [&](int v) {
        return mb.push(sizeof(Counted), false,
                       [&](Record& r, void* p) noexcept {
                         new (p) Counted{v};
                         r.type = type;
                       },
                       false);
      };
      // two laps' worth of positions, so the leftovers sit across the wrap point
      for (int lap = 0; lap < 2; ++lap) {
        for (int i = 0; i < 6; ++i) CHECK(send(i) == PushStatus::ok);
        for (int i = 0; i < (lap == 0 ? 6 : 2); ++i) {  // consume all of lap 0, 2 of lap 1
          std::uint32_t w = 0;
          Record* s = mb.front(w);
          REQUIRE(s != nullptr);
          tern::destroy_message(tern::detail::message_type_at(s->type), mb.payload(*s, w));
          mb.pop(*s, w);
        }
        mb.release();
      }
      CHECK(Counted::live == 4);
    }
    CHECK(Counted::live == 0);
  }
}

TEST_CASE("close() racing with an spsc producer: every send after the close is refused, none lost") {
  // One producer sends as fast as it can; the closer closes at a random moment, then tells
  // the producer. Every send the producer starts after hearing it must say closed; every
  // send that said ok is consumed, exactly once; the ring's own count agrees. Rounds bound it.
  const int kRounds = static_cast<int>(tern::test::scaled(200));
  for (int round = 0; round < kRounds; ++round) {
    Ring r;
    r.init(64 * kItemBytes, tern::MailboxKind::spsc);
    std::atomic<bool> told{false}, stop{false};
    std::atomic<std::uint64_t> ok{0}, late_ok{0}, late_tries{0};
    std::thread prod([&] {
      std::uint64_t n = 0;
      bool after = false;
      while (!stop.load(std::memory_order_relaxed)) {
        if (!after && told.load(std::memory_order_acquire)) after = true;
        const PushStatus st = push(r, true, 0, n);
        if (st == PushStatus::ok) {
          ++n;
          ok.store(n, std::memory_order_release);
          if (after) late_ok.fetch_add(1);
        }
        if (after && late_tries.fetch_add(1) > 1000) break;
      }
    });
    // consume while it runs, close after a few hundred messages (at a varying point)
    std::uint64_t got = 0, bad = 0;
    const std::uint64_t close_at = 100 + static_cast<std::uint64_t>(round * 37 % 400);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    bool closed = false;
    while (std::chrono::steady_clock::now() < deadline) {
      if (!closed && got >= close_at) {
        r.close();
        told.store(true, std::memory_order_release);
        closed = true;
      }
      if (Record* s = r.front()) {
        if (item(s).seq != got) ++bad;
        ++got;
        r.pop();
        r.release();
      } else if (closed && late_tries.load() > 1000) {
        break;
      }
    }
    stop = true;
    prod.join();
    while (Record* s = r.front()) {  // what was accepted before the close landed
      if (item(s).seq != got) ++bad;
      ++got;
      r.pop();
      r.release();
    }
    REQUIRE(closed);
    CHECK(late_ok.load() == 0);
    CHECK(bad == 0);
    CHECK(got == ok.load());
    CHECK(r.depth() == 0);
    CHECK(r.drained());
    CHECK(push(r, true, 0, 0) == PushStatus::closed);
  }
}

TEST_CASE("records of mixed sizes wrap with padding records and arrive intact, in order") {
  // Payloads of 8..248 bytes through a 1 KiB ring (records of 32..256 bytes), so records
  // often do not fit before the end and a padding record precedes them. Two threads.
  for (bool spsc : {true, false}) {
    const std::uint64_t kN = tern::test::scaled(200'000);
    Ring r;
    r.init(1024, spsc ? tern::MailboxKind::spsc : tern::MailboxKind::mpsc);
    auto size_of = [](std::uint64_t i) { return static_cast<std::uint32_t>(8 + (i * 40) % 241); };
    std::thread prod([&] {
      for (std::uint64_t i = 0; i < kN;) {
        const std::uint32_t n = size_of(i);
        auto put = [&](Record& rec) noexcept {
          unsigned char* p = rec.body();
          std::memcpy(p, &i, 8);
          for (std::uint32_t k = 8; k < n; ++k) p[k] = static_cast<unsigned char>(i + k);
        };
        const std::uint32_t word = tern::detail::record_bytes(n, false);
        if ((spsc ? r.push_spsc(word, put, false) : r.push_mpsc(word, put, false)) == PushStatus::ok)
          ++i;
      }
    });
    std::uint64_t expect = 0, bad = 0;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (expect < kN && std::chrono::steady_clock::now() < deadline) {
      Record* s = r.front();
      if (!s) {
        r.release();  // the batch ends when the ring looks empty, as in the drain loop
        continue;
      }
      const unsigned char* p = s->body();
      std::uint64_t i;
      std::memcpy(&i, p, 8);
      const std::uint32_t n = size_of(expect);
      if (i != expect || (s->word.load() & ~15u) != tern::detail::record_bytes(n, false)) ++bad;
      for (std::uint32_t k = 8; k < n; ++k)
        if (p[k] != static_cast<unsigned char>(expect + k)) ++bad;
      ++expect;
      r.pop();
      if (expect % 4 == 0) r.release();  // batches, as the drain loop does
    }
    r.release();
    prod.join();
    CHECK(expect == kN);
    CHECK(bad == 0);
    CHECK(r.front() == nullptr);
    CHECK(r.depth() == 0);
  }
}
