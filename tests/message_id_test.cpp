// One message type per message_id in a process: clashes are found by name at set-up, and
// dispatch / FastReply::get match types, never ids alone. Its own executable: the clash
// below (Bid and Ask) is recorded at start-up and makes every Manager::init here throw.
#include <doctest/doctest.h>

#include <stdexcept>
#include <string>

#include <tern/group.hpp>
#include <tern/manager.hpp>

#include "runtime.hpp"

using namespace tern;

namespace app {
struct Order {
  static constexpr MessageId message_id = 500;
  double price = 0;
  long qty = 0;
};
struct Cancel {  // same id as Order: a mistake the runtime must catch
  static constexpr MessageId message_id = 500;
  long order_ref = 0;
};
struct Bid {
  static constexpr MessageId message_id = 600;
  int px = 0;
};
struct Ask {  // same id as Bid, and both are sent: recorded at start-up
  static constexpr MessageId message_id = 600;
  int px = 0;
};
struct Quote {
  static constexpr MessageId message_id = 700;
  long px = 0;
};
struct Query {
  static constexpr MessageId message_id = 701;
};
}  // namespace app

namespace {
class OrderBook : public Actor {
 public:
  OrderBook() { handle<&OrderBook::on_order>(); }
  void on_order(const app::Order&) {}
};
class Quoter : public Actor {
 public:
  Quoter() {
    handle<&Quoter::on_quote>();
    handle<&Quoter::on_query>();
  }
  void on_quote(const app::Quote& q) {
    ++quotes;
    last = q.px;
  }
  void on_query(const app::Query&) { (void)reply(app::Cancel{42}); }
  void on_unhandled(const MessageInfo& info, const void*) override { unhandled_name = info.name; }
  int quotes = 0;
  long last = 0;
  std::string unhandled_name;
};
void drain(Actor& a) { detail::Runtime::drain(a, 64, &detail::tl_ctx); }
}  // namespace

TEST_CASE("a handler for a type whose id another type uses throws naming both types") {
  // Cancel is sent somewhere in this program, so it is known from start-up.
  Quoter q;
  q.mailbox().configure(MailboxConfig{8}, &q, "quoter");
  (void)q.self().try_send(app::Cancel{});
  std::string what;
  try {
    OrderBook b;
  } catch (const std::logic_error& e) {
    what = e.what();
  }
  CHECK(what.find("app::Order") != std::string::npos);
  CHECK(what.find("app::Cancel") != std::string::npos);
  CHECK(what.find("500") != std::string::npos);
}

TEST_CASE("two sent types with one id make Manager::init and Group::start throw naming both") {
  Quoter q;  // both types are sent: each is noted at start-up, the second as a clash
  q.mailbox().configure(MailboxConfig{8}, &q, "quoter");
  (void)q.self().try_send(app::Bid{1});
  (void)q.self().try_send(app::Ask{2});
  CHECK_THROWS_WITH_AS(check_message_ids(), doctest::Contains("app::Bid"), std::logic_error);
  CHECK_THROWS_WITH_AS(check_message_ids(), doctest::Contains("app::Ask"), std::logic_error);
  Manager mgr;
  mgr.manage("quoter", std::make_unique<Quoter>());
  std::string what;
  try {
    mgr.init();
  } catch (const std::logic_error& e) {
    what = e.what();
  }
  CHECK(what.find("message id 600") != std::string::npos);
  CHECK(what.find("app::Bid") != std::string::npos);
  CHECK(what.find("app::Ask") != std::string::npos);
  Group g("g");
  g.emplace<Quoter>("q", MailboxConfig{});
  CHECK_THROWS_AS(g.start(), std::logic_error);
  const MessageInfo* first = find_message_type(600);
  REQUIRE(first != nullptr);
  CHECK((first->name == "app::Bid" || first->name == "app::Ask"));
  CHECK(find_message_type(700) == &message_info_v<app::Quote>);
}

TEST_CASE("dispatch matches the message type, not its id") {
  Quoter q;
  q.mailbox().configure(MailboxConfig{8}, &q, "quoter");
  // A type with Quote's id that is not Quote (as another type with a clashing id would
  // arrive if nothing had caught it): it must reach on_unhandled, never on_quote.
  constexpr MessageInfo impostor{app::Quote::message_id, sizeof(app::Quote), "app::NotAQuote",
                                 nullptr, &detail::relocate_fn<app::Quote>};
  app::Quote fake{99};
  CHECK(q.self().try_send_erased(impostor, &fake, ActorRef{}) == SendResult::ok);
  drain(q);
  CHECK(q.quotes == 0);
  CHECK(q.stats().unhandled == 1);
  CHECK(q.unhandled_name == "app::NotAQuote");
  // A second copy of Quote's own MessageInfo (what a library linked with hidden visibility
  // would hold) is the same type: same id, size and name.
  constexpr MessageInfo copy = message_info_v<app::Quote>;
  CHECK(&copy != &message_info_v<app::Quote>);
  CHECK(same_type(copy, message_info_v<app::Quote>));
  app::Quote real{7};
  CHECK(q.self().try_send_erased(copy, &real, ActorRef{}) == SendResult::ok);
  drain(q);
  CHECK(q.quotes == 1);
  CHECK(q.last == 7);
  CHECK(q.self().try_send(app::Quote{8}) == SendResult::ok);
  drain(q);
  CHECK(q.quotes == 2);
  CHECK(q.last == 8);
}

TEST_CASE("FastReply::get matches the reply's type, not its id") {
  Quoter q;
  FastReply r = q.self().fast_send(app::Query{});
  REQUIRE(r.status() == FastStatus::ok);
  REQUIRE(r.get<app::Cancel>() != nullptr);
  CHECK(r.get<app::Cancel>()->order_ref == 42);
  CHECK(r.get<app::Order>() == nullptr);  // same id 500, another type
}
