#include <doctest/doctest.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>

#include <tern/wire.hpp>

using namespace tern;

namespace {

struct Ints {
  static constexpr MessageId message_id = 9001;
  std::int8_t i8 = 0;
  std::int16_t i16 = 0;
  std::int32_t i32 = 0;
  std::int64_t i64 = 0;
  std::uint8_t u8 = 0;
  std::uint16_t u16 = 0;
  std::uint32_t u32 = 0;
  std::uint64_t u64 = 0;
  TERN_WIRE(Ints, i8, i16, i32, i64, u8, u16, u32, u64)
};

enum class Side : std::int8_t { buy = 1, sell = -1 };

struct Reals {
  static constexpr MessageId message_id = 9002;
  float f32 = 0;
  double f64 = 0;
  bool flag = false;
  Side side = Side::buy;
  char sym[8] = {};
  std::array<double, 3> px{};
  std::int32_t lots[2] = {};
  TERN_WIRE(Reals, f32, f64, flag, side, sym, px, lots)
};

struct Text {
  static constexpr MessageId message_id = 9003;
  std::string s;
  std::uint32_t n = 0;
  TERN_WIRE(Text, s, n)
};

struct Heartbeat {
  static constexpr MessageId message_id = 9004;
  TERN_WIRE(Heartbeat)
};

struct QuoteMsg {  // C++ name differs from the wire name
  static constexpr MessageId message_id = 9005;
  double bid = 0;
  TERN_WIRE_AS("Quote", QuoteMsg, bid)
};

struct Manual {  // the constexpr member list, without the macro
  static constexpr MessageId message_id = 9006;
  std::int64_t a = 0;
  std::string b;
  static constexpr std::string_view wire_name = "Manual";
  static constexpr auto wire_fields() noexcept {
    return std::make_tuple(wire::field<&Manual::a>("alpha"), wire::field<&Manual::b>("beta"));
  }
};

struct SameName {
  static constexpr MessageId message_id = 9100;
  int x = 0;
  TERN_WIRE_AS("Ints", SameName, x)
};
struct SameId {
  static constexpr MessageId message_id = 9001;
  int x = 0;
  TERN_WIRE(SameId, x)
};

struct Unregistered {
  static constexpr MessageId message_id = 9200;
  int x = 0;
  TERN_WIRE(Unregistered, x)
};

wire::Registry make_registry() {
  wire::Registry r;
  r.add<Ints>().add<Reals>().add<Text>().add<Heartbeat>().add<QuoteMsg>().add<Manual>();
  return r;
}

template <class T>
std::string reason_of(const wire::Registry& r, std::string_view json) {
  T out{};
  const wire::DecodeStatus st = r.decode(json, out);
  return st.ok ? std::string("<ok>") : st.reason;
}

constexpr const char* kIntsOk =
    R"({"i8":1,"i16":2,"i32":3,"i64":4,"u8":5,"u16":6,"u32":7,"u64":8})";

}  // namespace

TEST_CASE("integers of every width round-trip at their extremes") {
  const wire::Registry r = make_registry();
  Ints lo{INT8_MIN, INT16_MIN, INT32_MIN, INT64_MIN, 0, 0, 0, 0};
  Ints hi{INT8_MAX, INT16_MAX, INT32_MAX, INT64_MAX, UINT8_MAX, UINT16_MAX, UINT32_MAX, UINT64_MAX};
  CHECK(r.encode(lo) ==
        R"({"i8":-128,"i16":-32768,"i32":-2147483648,"i64":-9223372036854775808,)"
        R"("u8":0,"u16":0,"u32":0,"u64":0})");
  CHECK(r.encode(hi) ==
        R"({"i8":127,"i16":32767,"i32":2147483647,"i64":9223372036854775807,)"
        R"("u8":255,"u16":65535,"u32":4294967295,"u64":18446744073709551615})");
  for (const Ints& m : {lo, hi}) {
    Ints back{};
    REQUIRE(r.decode(r.encode(m), back));
    CHECK(back.i8 == m.i8);
    CHECK(back.i16 == m.i16);
    CHECK(back.i32 == m.i32);
    CHECK(back.i64 == m.i64);
    CHECK(back.u8 == m.u8);
    CHECK(back.u16 == m.u16);
    CHECK(back.u32 == m.u32);
    CHECK(back.u64 == m.u64);
  }
}

TEST_CASE("floats, bool, enum, char arrays and number arrays round-trip") {
  const wire::Registry r = make_registry();
  Reals m;
  m.f32 = 1.5f;
  m.f64 = 0.1;
  m.flag = true;
  m.side = Side::sell;
  std::memcpy(m.sym, "AAPL", 4);
  m.px = {2.0, -2.5, 3e300};
  m.lots[0] = 7;
  m.lots[1] = -8;
  const std::string json = r.encode(m);
  CHECK(json == R"({"f32":1.5,"f64":0.1,"flag":true,"side":-1,"sym":"AAPL",)"
                R"("px":[2.0,-2.5,3e+300],"lots":[7,-8]})");
  Reals back{};
  REQUIRE(r.decode(json, back));
  CHECK(back.f32 == 1.5f);
  CHECK(back.f64 == 0.1);
  CHECK(back.flag);
  CHECK(back.side == Side::sell);
  CHECK(std::string(back.sym) == "AAPL");
  CHECK(back.px == m.px);
  CHECK(back.lots[0] == 7);
  CHECK(back.lots[1] == -8);

  // a char array may be filled completely (no terminator on the C++ side)
  std::memcpy(m.sym, "ABCDEFGH", 8);
  REQUIRE(r.decode(r.encode(m), back));
  CHECK(std::string_view(back.sym, 8) == "ABCDEFGH");
  // integers are accepted for floating-point fields (JSON does not tell 1 from 1.0)
  REQUIRE(r.decode(R"({"f32":1,"f64":-3,"flag":false,"side":1,"sym":"","px":[1,2,3],"lots":[0,0]})",
                   back));
  CHECK(back.f64 == -3.0);
  CHECK(back.px[2] == 3.0);

  // the float extremes survive our own encoding (FLT_MAX prints as 3.4028235e+38, above it)
  for (const float f : {std::numeric_limits<float>::max(), -std::numeric_limits<float>::max(),
                        std::numeric_limits<float>::denorm_min(), std::numeric_limits<float>::min()}) {
    CAPTURE(f);
    m.f32 = f;
    REQUIRE(r.decode(r.encode(m), back));
    CHECK(back.f32 == f);
  }
}

TEST_CASE("strings are escaped on the way out and unescaped on the way in") {
  const wire::Registry r = make_registry();
  Text t{std::string("q\" b\\ n\n t\t c\x01 e\xc3\xa9 euro\xe2\x82\xac"), 3};
  const std::string json = r.encode(t);
  CHECK(json == "{\"s\":\"q\\\" b\\\\ n\\n t\\t c\\u0001 e\xc3\xa9 euro\xe2\x82\xac\",\"n\":3}");
  Text back;
  REQUIRE(r.decode(json, back));
  CHECK(back.s == t.s);
  CHECK(back.n == 3);
  REQUIRE(r.decode(R"({"s":"\u00e9\ud83d\ude00\/","n":0})", back));
  CHECK(back.s == "\xc3\xa9\xf0\x9f\x98\x80/");
}

TEST_CASE("extra fields are ignored and field order does not matter") {
  const wire::Registry r = make_registry();
  Text back;
  REQUIRE(r.decode(R"({"extra":{"deep":[1,2,{"x":null}]},"n":9,"other":"x","s":"hi"})", back));
  CHECK(back.s == "hi");
  CHECK(back.n == 9);
}

TEST_CASE("messages without fields, renamed types and hand-written field lists") {
  const wire::Registry r = make_registry();
  CHECK(r.encode(Heartbeat{}) == "{}");
  Heartbeat h;
  CHECK(r.decode(R"({"ignored":1})", h));
  REQUIRE(r.find("Quote") != nullptr);
  CHECK(r.find("Quote")->info->id == QuoteMsg::message_id);
  CHECK(r.find("QuoteMsg") == nullptr);
  CHECK(r.find(QuoteMsg::message_id)->name == "Quote");
  Manual m{-5, "x"};
  CHECK(r.encode(m) == R"({"alpha":-5,"beta":"x"})");
  Manual back;
  REQUIRE(r.decode(R"({"beta":"y","alpha":6})", back));
  CHECK(back.a == 6);
  CHECK(back.b == "y");
}

TEST_CASE("a missing, mistyped or out-of-range field is refused with a reason naming it") {
  const wire::Registry r = make_registry();
  CHECK(reason_of<Ints>(r, kIntsOk) == "<ok>");
  CHECK(reason_of<Ints>(r, R"({"i8":1})") == "Missing field 'i16' for Ints");
  CHECK(reason_of<Ints>(r, R"({"i8":1,"i16":2,"i32":"3","i64":4,"u8":5,"u16":6,"u32":7,"u64":8})") ==
        "Field 'i32' for Ints must be int32, got string");
  CHECK(reason_of<Ints>(r, R"({"i8":1,"i16":2,"i32":1.5,"i64":4,"u8":5,"u16":6,"u32":7,"u64":8})") ==
        "Field 'i32' for Ints must be int32, got float");
  CHECK(reason_of<Ints>(r, R"({"i8":1,"i16":2,"i32":3,"i64":4,"u8":300,"u16":6,"u32":7,"u64":8})") ==
        "Field 'u8' for Ints is out of range for uint8: 300");
  CHECK(reason_of<Ints>(r, R"({"i8":-129,"i16":2,"i32":3,"i64":4,"u8":5,"u16":6,"u32":7,"u64":8})") ==
        "Field 'i8' for Ints is out of range for int8: -129");
  CHECK(reason_of<Ints>(r, R"({"i8":1,"i16":2,"i32":3,"i64":4,"u8":5,"u16":6,"u32":-1,"u64":8})") ==
        "Field 'u32' for Ints is out of range for uint32: -1");
  CHECK(reason_of<Ints>(r, R"({"i8":1,"i16":2,"i32":3,"i64":9223372036854775808,"u8":5,"u16":6,"u32":7,"u64":8})") ==
        "Field 'i64' for Ints is out of range for int64: 9223372036854775808");
  CHECK(reason_of<Ints>(r, R"({"i8":1,"i16":2,"i32":3,"i64":4,"u8":5,"u16":6,"u32":7,"u64":null})") ==
        "Field 'u64' for Ints must be uint64, got null");
  CHECK(reason_of<Ints>(r, R"({"i8":1,"i16":2,"i32":3,"i64":4,"u8":5,"u16":6,"u32":7,"u64":true})") ==
        "Field 'u64' for Ints must be uint64, got bool");
  CHECK(reason_of<Ints>(r, R"({"i8":1,"i8":1,"i16":2,"i32":3,"i64":4,"u8":5,"u16":6,"u32":7,"u64":8})") ==
        "Duplicate field 'i8' for Ints");

  const char* base = R"({"f32":1,"f64":2,"flag":true,"side":1,"sym":"A","px":[1,2,3],"lots":[1,2]})";
  CHECK(reason_of<Reals>(r, base) == "<ok>");
  const auto with = [&](std::string_view key, std::string_view value) {
    std::string s = base, pattern = "\"";
    pattern.append(key).append("\":");
    const std::size_t k = s.find(pattern) + pattern.size();
    std::size_t end = k;
    int depth = 0;
    while (depth > 0 || (s[end] != ',' && s[end] != '}')) {
      if (s[end] == '[') ++depth;
      if (s[end] == ']') --depth;
      ++end;
    }
    return s.replace(k, end - k, value);
  };
  CHECK(reason_of<Reals>(r, with("f32", "1e39")) ==
        "Field 'f32' for Reals is out of range for float: 1e+39");
  // the float limits: what rounds to FLT_MAX is taken (our own text for it, 3.4028235e+38, is
  // above FLT_MAX), from the midpoint to 2^128 up is refused (found by the fuzzer)
  CHECK(reason_of<Reals>(r, with("f32", "3.4028235e+38")) == "<ok>");
  CHECK(reason_of<Reals>(r, with("f32", "-3.4028235e+38")) == "<ok>");
  CHECK(reason_of<Reals>(r, with("f32", "3.4028235677973366e38")) ==
        "Field 'f32' for Reals is out of range for float: 3.4028235677973366e+38");
  CHECK(reason_of<Reals>(r, with("f32", "3.40282357e38")) ==
        "Field 'f32' for Reals is out of range for float: 3.40282357e+38");
  CHECK(reason_of<Reals>(r, with("f64", "\"x\"")) == "Field 'f64' for Reals must be double, got string");
  CHECK(reason_of<Reals>(r, with("flag", "1")) == "Field 'flag' for Reals must be bool, got integer");
  CHECK(reason_of<Reals>(r, with("side", "2.5")) == "Field 'side' for Reals must be int8, got float");
  CHECK(reason_of<Reals>(r, with("side", "200")) == "Field 'side' for Reals is out of range for int8: 200");
  CHECK(reason_of<Reals>(r, with("sym", "\"ABCDEFGHI\"")) == "Field 'sym' for Reals is longer than 8 bytes");
  CHECK(reason_of<Reals>(r, with("sym", R"("A\u0000B")")) == "Field 'sym' for Reals must not contain NUL");
  CHECK(reason_of<Reals>(r, with("sym", "7")) == "Field 'sym' for Reals must be string, got integer");
  CHECK(reason_of<Reals>(r, with("px", "[1,2]")) ==
        "Field 'px' for Reals must be an array of 3 double, got 2 elements");
  CHECK(reason_of<Reals>(r, with("px", "[1,2,3,4]")) ==
        "Field 'px' for Reals must be an array of 3 double, got 4 elements");
  CHECK(reason_of<Reals>(r, with("px", "\"1,2,3\"")) ==
        "Field 'px' for Reals must be an array of 3 double, got string");
  CHECK(reason_of<Reals>(r, with("lots", "[1,\"2\"]")) ==
        "Field 'lots' for Reals element 1 must be int32, got string");
  CHECK(reason_of<Reals>(r, with("lots", "[1,3000000000]")) ==
        "Field 'lots' for Reals element 1 is out of range for int32: 3000000000");

  CHECK(reason_of<Text>(r, R"({"s":null,"n":1})") == "Field 's' for Text must be string, got null");
  CHECK(reason_of<Text>(r, R"({"s":"x","n":{}})") == "Field 'n' for Text must be uint32, got object");
  CHECK(reason_of<Text>(r, R"({"s":"x","n":[]})") == "Field 'n' for Text must be uint32, got array");
  CHECK(reason_of<Text>(r, R"({"s":"x","n":1,)").rfind("Malformed JSON: ", 0) == 0);
  CHECK(reason_of<Text>(r, R"([1,2])").rfind("Malformed JSON: ", 0) == 0);
  CHECK(reason_of<Text>(r, R"({"s":"x","n":1} trailing)").rfind("Malformed JSON: ", 0) == 0);
}

TEST_CASE("values JSON cannot carry are refused at encode, naming the field") {
  const wire::Registry r = make_registry();
  std::string out, error;
  Reals m;
  m.f64 = std::numeric_limits<double>::quiet_NaN();
  CHECK_FALSE(r.encode_payload(*r.find(Reals::message_id), &m, out, &error));
  CHECK(error == "Field 'f64' for Reals is not a finite number");
  m.f64 = 0;
  m.px[1] = std::numeric_limits<double>::infinity();
  CHECK_FALSE(r.encode_payload(*r.find(Reals::message_id), &m, out, &error));
  CHECK(error == "Field 'px' for Reals is not a finite number");
  Text t{std::string("bad \xff utf8"), 1};
  CHECK_FALSE(r.encode_payload(*r.find(Text::message_id), &t, out, &error));
  CHECK(error == "Field 's' for Text is not valid UTF-8");
  CHECK_THROWS_AS(r.encode(t), std::invalid_argument);
}

TEST_CASE("the registry refuses a taken wire name or message id, naming both types") {
  wire::Registry r = make_registry();
  CHECK_THROWS_WITH_AS(r.add<SameName>(), doctest::Contains("wire name 'Ints' registered twice"),
                       std::invalid_argument);
  CHECK_THROWS_WITH(r.add<SameName>(), doctest::Contains("SameName"));
  CHECK_THROWS_WITH_AS(r.add<SameId>(), doctest::Contains("message id 9001 registered twice"),
                       std::invalid_argument);
  CHECK_THROWS_WITH(r.add<SameId>(), doctest::Contains("Ints"));
  CHECK_THROWS_WITH_AS(r.encode(Unregistered{}), doctest::Contains("Unregistered is not registered"),
                       std::invalid_argument);
  CHECK(r.size() == 7);  // six types and the built-in Reject
}

TEST_CASE("Reject is built in: three strings in one slot-sized message") {
  static_assert(sizeof(Reject) <= kMaxMessageBytes);
  const wire::Registry r;
  const wire::WireType* t = r.find("Reject");
  REQUIRE(t != nullptr);
  CHECK(r.find(Reject::message_id) == t);
  const Reject rej("Bogus", "Unknown message type: Bogus", "pong");
  CHECK(rej.message_type() == "Bogus");
  CHECK(rej.reason() == "Unknown message type: Bogus");
  CHECK(rej.rejected_by() == "pong");
  const std::string json = r.encode(rej);
  CHECK(json ==
        R"({"message_type":"Bogus","reason":"Unknown message type: Bogus","rejected_by":"pong"})");
  Reject back;
  REQUIRE(r.decode(json, back));
  CHECK(back.message_type() == "Bogus");
  CHECK(back.reason() == "Unknown message type: Bogus");
  CHECK(back.rejected_by() == "pong");
  CHECK(reason_of<Reject>(r, R"({"message_type":"X","reason":"y"})") ==
        "Missing field 'rejected_by' for Reject");
  CHECK(reason_of<Reject>(r, R"({"message_type":"X","reason":5,"rejected_by":"z"})") ==
        "Field 'reason' for Reject must be string, got integer");
}
