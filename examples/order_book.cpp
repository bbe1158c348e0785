// An order book of 20 price levels a side, sent by value between actors (issue 10).
//
// A feed actor keeps a book per instrument, applies N random updates and after each one
// sends the whole book (20 bids + 20 asks, about 660 bytes) to a strategy actor, which
// checks it (sorted sides, no crossed book) and keeps the best bid/ask. The book travels
// by value: above the mailbox's inline limit (256 bytes by default) it is constructed in
// a block of the strategy mailbox's pool, and the handler reads it there as a const Book&.
// No allocation per message; a pool running dry makes send() wait, like a full mailbox.
//
//   build/examples/order_book [--updates N]
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>

#include <tern/tern.hpp>

namespace {

struct Level {
  double px = 0;
  double qty = 0;
};

struct Book {
  static constexpr tern::MessageId message_id = 300;
  static constexpr int kDepth = 20;
  std::uint32_t instrument = 0;
  std::uint64_t seq = 0;
  Level bids[kDepth];  // best (highest) first
  Level asks[kDepth];  // best (lowest) first
};
static_assert(sizeof(Book) > 256, "the point of the example: larger than the inline limit");

struct Done {
  static constexpr tern::MessageId message_id = 301;
  std::uint64_t books = 0;
};

class Strategy : public tern::Actor {
 public:
  Strategy() {
    handle<&Strategy::on_book>();
    handle<&Strategy::on_done>();
  }
  void on_book(const Book& b) {
    ++books_;
    bool ok = b.bids[0].px < b.asks[0].px;  // not crossed
    for (int i = 1; i < Book::kDepth; ++i)
      ok = ok && b.bids[i].px < b.bids[i - 1].px && b.asks[i].px > b.asks[i - 1].px;
    if (!ok) ++bad_;
    best_bid_ = b.bids[0].px;
    best_ask_ = b.asks[0].px;
  }
  void on_done(const Done& d) {
    std::printf("strategy: %llu books of %zu bytes received (feed sent %llu), %llu malformed; "
                "last best bid %.2f / ask %.2f\n",
                static_cast<unsigned long long>(books_), sizeof(Book),
                static_cast<unsigned long long>(d.books), static_cast<unsigned long long>(bad_),
                best_bid_, best_ask_);
    failed = books_ != d.books || bad_ != 0;
    terminate();
  }
  bool failed = true;

 private:
  std::uint64_t books_ = 0, bad_ = 0;
  double best_bid_ = 0, best_ask_ = 0;
};

class Feed : public tern::Actor {
 public:
  Feed(tern::ActorRef strategy, std::uint64_t updates) : strategy_(strategy), updates_(updates) {
    handle<&Feed::on_start>();
  }
  void on_start(const tern::Start&) {
    Book book;
    book.instrument = 7;
    for (int i = 0; i < Book::kDepth; ++i) {
      book.bids[i] = {100.0 - 0.01 * (i + 1), 10.0 + i};
      book.asks[i] = {100.0 + 0.01 * (i + 1), 10.0 + i};
    }
    std::mt19937_64 rng(42);
    std::uniform_int_distribution<int> level(0, Book::kDepth - 1);
    std::uniform_real_distribution<double> qty(1.0, 100.0);
    for (std::uint64_t n = 0; n < updates_; ++n) {
      Level& l = (n & 1) ? book.bids[level(rng)] : book.asks[level(rng)];
      l.qty = qty(rng);
      book.seq = n;
      (void)strategy_.send(book);  // by value: copied into the strategy's mailbox (its pool)
    }
    (void)strategy_.send(Done{updates_});
  }

 private:
  tern::ActorRef strategy_;
  std::uint64_t updates_;
};

}  // namespace

int main(int argc, char** argv) {
  std::uint64_t updates = 100000;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--updates") == 0 && i + 1 < argc) {
      char* end = nullptr;
      updates = std::strtoull(argv[++i], &end, 10);
      if (!end || *end || updates == 0) {
        std::fprintf(stderr, "order_book: --updates wants a positive number, got '%s'\n", argv[i]);
        return 2;
      }
    } else {
      std::fprintf(stderr, "usage: order_book [--updates N]\n");
      return 2;
    }
  }
  tern::Manager mgr;
  tern::MailboxConfig mc;
  mc.capacity = 1024;
  mc.pool_blocks = 64;  // books in flight at most; then the feed's send() waits
  auto* strategy = new Strategy;
  tern::ActorRef s = mgr.manage("strategy", std::unique_ptr<tern::Actor>(strategy), {}, mc);
  mgr.emplace<Feed>("feed", {}, {}, s, updates);
  mgr.init();
  mgr.run();  // until the strategy has seen Done
  mgr.end();
  return strategy->failed ? 1 : 0;
}
