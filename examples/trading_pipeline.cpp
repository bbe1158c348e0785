// A small trading pipeline, the shape tern is built for:
//   market data (dedicated thread, isolated core if the kernel has one)
//     -> one book actor per instrument (a Group of 2 workers)
//          -> pricer (fast_send: the fair value comes back synchronously)
//          -> order gateway (orders when the quote crosses fair value)
//   a periodic timer on the market-data actor publishes stats; it runs for --seconds.
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <tern/tern.hpp>

struct Quote {  // market data -> book
  static constexpr tern::MessageId message_id = 1;
  std::uint32_t instrument = 0;
  double bid = 0, ask = 0;
  std::uint64_t seq = 0;
};
struct PriceRequest {  // book -> pricer (fast_send)
  static constexpr tern::MessageId message_id = 2;
  std::uint32_t instrument = 0;
  double mid = 0;
};
struct Price {  // pricer -> book (the fast_send reply)
  static constexpr tern::MessageId message_id = 3;
  double fair = 0;
};
struct Order {  // book -> order gateway
  static constexpr tern::MessageId message_id = 4;
  std::uint32_t instrument = 0;
  int side = 0;  // +1 buy, -1 sell
  double px = 0;
};

class Pricer : public tern::Actor {
 public:
  explicit Pricer(std::size_t n) : ema_(n, 0.0) { handle<&Pricer::on_request>(); }
  void on_request(const PriceRequest& r) {
    double& e = ema_[r.instrument];
    e = e == 0 ? r.mid : 0.9 * e + 0.1 * r.mid;  // a toy fair value: EMA of mids
    reply(Price{e});
  }

 private:
  std::vector<double> ema_;
};

class OrderGateway : public tern::Actor {
 public:
  OrderGateway() { handle<&OrderGateway::on_order>(); }
  void on_order(const Order& o) { (o.side > 0 ? buys : sells)++; }
  std::uint64_t buys = 0, sells = 0;
};

class Book : public tern::Actor {
 public:
  Book(std::uint32_t id, tern::ActorRef pricer, tern::ActorRef orders)
      : id_(id), pricer_(pricer), orders_(orders) {
    handle<&Book::on_quote>();
  }
  void on_quote(const Quote& q) {
    tern::FastReply r = pricer_.fast_send(PriceRequest{id_, 0.5 * (q.bid + q.ask)});
    const Price* p = r.get<Price>();
    if (!p) return;
    if (q.ask < p->fair - 0.02) (void)orders_.try_send(Order{id_, +1, q.ask});
    else if (q.bid > p->fair + 0.02) (void)orders_.try_send(Order{id_, -1, q.bid});
  }

 private:
  std::uint32_t id_;
  tern::ActorRef pricer_, orders_;
};

class MarketData : public tern::Actor {
 public:
  MarketData(std::vector<tern::ActorRef> books, std::uint64_t seconds)
      : books_(std::move(books)), seconds_(seconds) {
    handle<&MarketData::on_start>();
    handle<&MarketData::on_timeout>();
  }
  void on_start(const tern::Start&) {
    stats_timer_ = start_timer(250'000, 250'000);  // stats every 250 ms
    stop_timer_ = start_timer(seconds_ * 1'000'000);
    tick_timer_ = start_timer(100, 100);  // a burst of quotes every 100 us
  }
  void on_timeout(const tern::Timeout& t) {
    if (t.id == tick_timer_) {
      for (int k = 0; k < 8; ++k) publish();
    } else if (t.id == stats_timer_) {
      std::printf("  t=%5.2fs quotes=%" PRIu64 " refused=%" PRIu64 "\n", ++reports_ * 0.25, seq_, refused_);
    } else if (t.id == stop_timer_) {
      (void)cancel_timer(tick_timer_);
      (void)cancel_timer(stats_timer_);
      terminate();
    }
  }
  std::uint64_t seq_ = 0, refused_ = 0;

 private:
  void publish() {
    const std::uint32_t i = static_cast<std::uint32_t>(rng_() % books_.size());
    const double mid = 100.0 + static_cast<double>(rng_() % 1000) / 100.0;
    if (books_[i].try_send(Quote{i, mid - 0.01, mid + 0.01, ++seq_}) != tern::SendResult::ok)
      ++refused_;  // a slow book never stalls the feed: the quote is counted and dropped
  }
  std::uint64_t rng_() { return state_ = state_ * 6364136223846793005ull + 1442695040888963407ull, state_ >> 33; }
  std::vector<tern::ActorRef> books_;
  std::uint64_t seconds_, state_ = 42, reports_ = 0;
  std::uint64_t stats_timer_ = 0, stop_timer_ = 0, tick_timer_ = 0;
};

int main(int argc, char** argv) {
  std::uint64_t seconds = 2;
  std::uint32_t instruments = 200;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--seconds")) seconds = std::strtoull(argv[i + 1], nullptr, 10);
    else if (!std::strcmp(argv[i], "--instruments")) instruments = static_cast<std::uint32_t>(std::strtoul(argv[i + 1], nullptr, 10));
    else { std::fprintf(stderr, "usage: trading_pipeline [--seconds N] [--instruments N]\n"); return 2; }
  }
  if (seconds < 1 || seconds > 3600 || instruments < 1 || instruments > 100000) {
    std::fprintf(stderr, "error: --seconds must be 1..3600 and --instruments 1..100000\n");
    return 2;
  }

  tern::Manager mgr;
  tern::ThreadConfig md;
  md.isolated = true;  // its own isolated core if the kernel has one; else a warning, then anywhere
  md.wake = tern::Wake::futex;
  tern::ActorRef pricer = mgr.emplace<Pricer>("pricer", {}, {}, instruments);
  auto* og = new OrderGateway;
  tern::ActorRef orders = mgr.manage("orders", std::unique_ptr<tern::Actor>(og));
  tern::Group books("books", {.workers = 2});
  std::vector<tern::ActorRef> refs;
  for (std::uint32_t i = 0; i < instruments; ++i)
    refs.push_back(books.emplace<Book>("book." + std::to_string(i), {}, i, pricer, orders));
  auto* feed = new MarketData(refs, seconds);
  mgr.manage("market_data", std::unique_ptr<tern::Actor>(feed), md);
  mgr.attach(books);
  mgr.instrument();

  std::printf("trading_pipeline: %u instruments, %llu s\n", instruments, (unsigned long long)seconds);
  mgr.init();
  mgr.run();
  mgr.end();

  std::uint64_t book_msgs = 0;
  for (const tern::ActorStats& s : books.stats()) book_msgs += s.handled;
  const tern::ActorStats ps = pricer.actor()->stats();
  std::printf("quotes published %" PRIu64 ", refused %" PRIu64 ", handled by books %" PRIu64 "\n",
              feed->seq_, feed->refused_, book_msgs);
  std::printf("pricer fast_sends %" PRIu64 ", orders buy %" PRIu64 " sell %" PRIu64 "\n",
              ps.fast_sends, og->buys, og->sells);
  if (const tern::Histogram* h = orders.actor()->queue_wait_histogram())
    std::printf("order queue wait p50 %" PRIu64 " ns, p99 %" PRIu64 " ns\n",
                h->value_at_percentile(50), h->value_at_percentile(99));
  return book_msgs + feed->refused_ == feed->seq_ ? 0 : 1;
}
