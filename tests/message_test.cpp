#include <doctest/doctest.h>

#include <tern/message.hpp>

namespace app {
struct Quote {
  static constexpr tern::MessageId message_id = 7;
  double bid = 0, ask = 0;
};
}  // namespace app

TEST_CASE("type_name gives the qualified C++ name at compile time") {
  static_assert(tern::type_name<app::Quote>() == "app::Quote");
  CHECK(tern::type_name<tern::Start>() == "tern::Start");
}

TEST_CASE("message_info_v carries id, size, name and working destroy/relocate") {
  constexpr const tern::MessageInfo& info = tern::message_info_v<app::Quote>;
  static_assert(info.id == 7);
  CHECK(info.size == sizeof(app::Quote));
  CHECK(info.name == "app::Quote");
  alignas(16) unsigned char a[sizeof(app::Quote)], b[sizeof(app::Quote)];
  new (a) app::Quote{1.5, 2.5};
  info.relocate(b, a);
  CHECK(reinterpret_cast<app::Quote*>(b)->ask == 2.5);
  tern::destroy_message(info, b);
}

TEST_CASE("built-in messages use reserved ids") {
  CHECK(tern::Start::message_id >= tern::kFirstReservedId);
  CHECK(tern::Shutdown::message_id >= tern::kFirstReservedId);
  CHECK(tern::Timeout::message_id >= tern::kFirstReservedId);
  CHECK(tern::Start::message_id != tern::Shutdown::message_id);
}

TEST_CASE("a message type is recognised by its message_id member") {
  static_assert(tern::MessageType<app::Quote>);
  static_assert(!tern::MessageType<int>);
  struct NoId {
    int x;
  };
  static_assert(!tern::MessageType<NoId>);
  CHECK(tern::check_message<app::Quote>());
}
