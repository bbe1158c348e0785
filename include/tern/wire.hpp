// Wire types: how a message travels as JSON between processes (docs/gateway.md). A message
// type declares its wire name and fields once; a Registry encodes and decodes it.
//
//   struct Quote {
//     static constexpr tern::MessageId message_id = 10;
//     char symbol[16] = {};          // fixed text: a JSON string of at most 16 bytes
//     double bid = 0, ask = 0;
//     std::int64_t seq = 0;
//     TERN_WIRE(Quote, symbol, bid, ask, seq)   // wire name "Quote", four fields
//   };
//
//   tern::wire::Registry reg;
//   reg.add<Quote>().add<Signal>();
//
// Field types: bool, signed and unsigned integers of 8..64 bits, enums (as their underlying
// integer), float, double, std::string, char[N] / std::array<char, N> (text of at most N
// bytes), and T[N] / std::array<T, N> of numbers (a JSON array of exactly N numbers).
// Decoding ignores extra fields and rejects a missing, mistyped or out-of-range field with
// a reason naming it. This header does not include ZeroMQ or simdjson.
#pragma once
#include <array>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <new>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include <tern/config.hpp>
#include <tern/message.hpp>

namespace tern {

/// Built-in message (wire type "Reject"): a peer could not deliver one of our messages.
/// Delivered to the actor that sent it when the peer knew who that was.
class Reject {
 public:
  static constexpr MessageId message_id = kFirstReservedId + 0x10;

  Reject() noexcept = default;
  /// Allocates when the three texts together exceed the small-string buffer.
  Reject(std::string_view message_type, std::string_view reason, std::string_view rejected_by);

  /// Type name of the rejected message.
  std::string_view message_type() const noexcept { return text().substr(0, type_len_); }
  /// Why it was rejected, e.g. "Actor 'pong' not found".
  std::string_view reason() const noexcept { return text().substr(type_len_, reason_len_); }
  /// The receiver name the rejected message was addressed to.
  std::string_view rejected_by() const noexcept { return text().substr(type_len_ + reason_len_); }

 private:
  std::string_view text() const noexcept { return text_; }
  // why one string: three std::string would be 96 bytes, over the 80-byte slot limit.
  std::string text_;
  std::uint32_t type_len_ = 0;
  std::uint32_t reason_len_ = 0;
};

namespace wire {

/// How a field is represented (C++ type -> JSON).
enum class Kind : std::uint8_t {
  i8, i16, i32, i64,  ///< signed integers: JSON integer in range
  u8, u16, u32, u64,  ///< unsigned integers: JSON integer in range
  f32, f64,           ///< JSON number (integers accepted); NaN and infinity do not encode
  boolean,            ///< JSON true / false
  string,             ///< std::string: any JSON string
  chars,              ///< char[N]: JSON string of at most N bytes without NUL
  array,              ///< T[N] of numbers: JSON array of exactly N numbers
};

/// Readable name of a kind ("int32", "double", "string", ...), used in reject reasons.
std::string_view to_string(Kind k) noexcept;

/// One field as the codec sees it. Built by Registry::add from the type's declaration.
struct Field {
  std::string_view name;     ///< JSON key
  Kind kind = Kind::i32;
  Kind elem = Kind::i32;     ///< array: the element kind
  std::uint32_t offset = 0;  ///< byte offset of the member in the message
  std::uint32_t extent = 0;  ///< chars: capacity in bytes; array: element count
  /// Codec use (set by Registry::add): the name and its closing quote as one 8-byte word,
  /// and the mask of its bytes, for names up to 7 bytes (mask 0: longer name).
  std::uint64_t key8 = 0, mask8 = 0;
};

/// A field declaration: `field<&Quote::bid>("bid")`. TERN_WIRE writes these for you.
template <auto Member>
struct FieldDecl {
  std::string_view name;
};

namespace detail {

template <class M>
struct MemberOf;
template <class C, class T>
struct MemberOf<T C::*> {
  using Class = C;
  using Type = T;
};

template <class T>
inline constexpr bool kIsNumber =
    (std::is_arithmetic_v<T> && !std::is_same_v<T, bool> && !std::is_same_v<T, char> &&
     !std::is_same_v<T, wchar_t> && !std::is_same_v<T, char8_t> &&
     !std::is_same_v<T, char16_t> && !std::is_same_v<T, char32_t> &&
     !std::is_same_v<T, long double>) ||
    std::is_enum_v<T>;

template <class T>
constexpr Kind number_kind() {
  if constexpr (std::is_enum_v<T>) {
    return number_kind<std::underlying_type_t<T>>();
  } else if constexpr (std::is_floating_point_v<T>) {
    return sizeof(T) == 4 ? Kind::f32 : Kind::f64;
  } else if constexpr (std::is_signed_v<T>) {
    return sizeof(T) == 1 ? Kind::i8 : sizeof(T) == 2 ? Kind::i16 : sizeof(T) == 4 ? Kind::i32 : Kind::i64;
  } else {
    return sizeof(T) == 1 ? Kind::u8 : sizeof(T) == 2 ? Kind::u16 : sizeof(T) == 4 ? Kind::u32 : Kind::u64;
  }
}

template <class T>
struct FieldShape {
  static constexpr bool supported = kIsNumber<T>;
  static constexpr Kind kind = supported ? number_kind<T>() : Kind::i32;
  static constexpr Kind elem = kind;
  static constexpr std::uint32_t extent = 0;
};
template <>
struct FieldShape<bool> {
  static constexpr bool supported = true;
  static constexpr Kind kind = Kind::boolean, elem = Kind::boolean;
  static constexpr std::uint32_t extent = 0;
};
template <>
struct FieldShape<std::string> {
  static constexpr bool supported = true;
  static constexpr Kind kind = Kind::string, elem = Kind::string;
  static constexpr std::uint32_t extent = 0;
};
template <std::size_t N>
struct FieldShape<char[N]> {
  static constexpr bool supported = N > 0;
  static constexpr Kind kind = Kind::chars, elem = Kind::chars;
  static constexpr std::uint32_t extent = N;
};
template <std::size_t N>
struct FieldShape<std::array<char, N>> : FieldShape<char[N]> {};
template <class E, std::size_t N>
struct FieldShape<E[N]> {
  static constexpr bool supported = kIsNumber<E> && N > 0;
  static constexpr Kind kind = Kind::array;
  static constexpr Kind elem = supported ? number_kind<E>() : Kind::i32;
  static constexpr std::uint32_t extent = N;
};
template <class E, std::size_t N>
struct FieldShape<std::array<E, N>> : FieldShape<E[N]> {
  // why: the codec writes elements at offset + i * sizeof(E), as in a C array.
  static_assert(sizeof(std::array<E, N>) == sizeof(E[N]));
};

}  // namespace detail

/// Declares one wire field of a message type. Field types: see the top of this header.
template <auto Member>
constexpr FieldDecl<Member> field(std::string_view name) noexcept {
  using T = typename detail::MemberOf<decltype(Member)>::Type;
  static_assert(detail::FieldShape<T>::supported,
                "tern wire field type not supported: use bool, an integer, an enum, float, "
                "double, std::string, char[N], or an array T[N] / std::array<T, N> of numbers "
                "(a single char is ambiguous: use char[N] for text or std::int8_t for a number)");
  return FieldDecl<Member>{name};
}

/// Everything the codec knows about one registered type.
struct WireType {
  std::string_view name;                    ///< wire type name, e.g. "Quote"
  const MessageInfo* info = nullptr;        ///< the C++ type's facts (id, size, ...)
  void (*construct)(void* at) = nullptr;    ///< default-constructs the message at `at`
  std::vector<Field> fields;                ///< in declaration order
  std::string name_json;                    ///< `name` as an escaped JSON string, quoted
  bool is_reject = false;                   ///< the built-in Reject (hand-written codec)
};

/// Outcome of decoding a payload: ok, or the reason naming the field (the Reject reason).
struct DecodeStatus {
  bool ok = true;
  std::string reason;
  explicit operator bool() const noexcept { return ok; }
};

/// Wire names <-> message types. Fill it at set-up (add<T>() throws on conflicts); after
/// that it is immutable and may be read from any thread. Copyable (a Gateway keeps a copy).
class Registry {
 public:
  /// An empty registry, except for the built-in Reject.
  Registry();

  /// Registers T under T::wire_name with the fields T::wire_fields() lists (TERN_WIRE
  /// writes both). Set-up only; allocates. Throws std::invalid_argument naming both types
  /// when the wire name or the message id is taken (in this registry, or by another type
  /// anywhere in the process), or a field name repeats.
  template <class T>
  Registry& add();

  /// The type registered under `wire_name`, or nullptr. Any thread; no allocation.
  const WireType* find(std::string_view wire_name) const noexcept;
  /// The type registered for message id `id`, or nullptr. Any thread; no allocation.
  const WireType* find(MessageId id) const noexcept;
  /// Number of registered types (Reject included).
  std::size_t size() const noexcept { return types_.size(); }
  /// The largest registered type's size in bytes (what a decoder's storage must hold).
  std::size_t max_message_bytes() const noexcept {
    std::size_t m = 0;
    for (const WireType& t : types_)
      if (t.info->size > m) m = t.info->size;
    return m;
  }

  /// Appends the message at `msg` (of type `t`) to `out` as a flat JSON object. Returns
  /// false, with `error` naming the field, for what JSON cannot carry (NaN, infinity,
  /// text that is not UTF-8). Any thread; allocates only when `out` grows.
  bool encode_payload(const WireType& t, const void* msg, std::string& out,
                      std::string* error = nullptr) const;
  /// Decodes the JSON object `json` as type `t` into `out` (storage of t.info->size bytes,
  /// aligned to kMaxMessageAlign). On success a message was constructed there: destroy it
  /// with destroy_message(*t.info, out). Any thread; allocates a parser per call (tests and
  /// tools; the gateway keeps its own).
  DecodeStatus decode_payload(const WireType& t, std::string_view json, void* out) const;

  /// Typed conveniences over the two calls above (allocate; throw std::invalid_argument
  /// when T is not registered, and encode also when the message does not encode).
  template <class T>
  std::string encode(const T& msg) const;
  template <class T>
  DecodeStatus decode(std::string_view json, T& out) const;

 private:
  void add_type(WireType t);
  const WireType& require(MessageId id, std::string_view cpp_name) const;
  std::vector<WireType> types_;
  std::unordered_map<std::string_view, std::uint32_t> by_name_;
  std::unordered_map<MessageId, std::uint32_t> by_id_;
};

// ---- templates --------------------------------------------------------------------------

namespace detail {
template <auto Member, class C>
Field describe(FieldDecl<Member> d, const C& obj) {
  using T = typename MemberOf<decltype(Member)>::Type;
  using Shape = FieldShape<T>;
  Field f;
  f.name = d.name;
  f.kind = Shape::kind;
  f.elem = Shape::elem;
  f.extent = Shape::extent;
  f.offset = static_cast<std::uint32_t>(reinterpret_cast<const unsigned char*>(&(obj.*Member)) -
                                        reinterpret_cast<const unsigned char*>(&obj));
  return f;
}
}  // namespace detail

template <class T>
Registry& Registry::add() {
  static_assert(check_message_layout<T>());  // registered below, at set-up (throws on a clash)
  static_assert(requires {
    { T::wire_name } -> std::convertible_to<std::string_view>;
    T::wire_fields();
  }, "declare the wire form inside the message: TERN_WIRE(Type, field1, field2, ...)");
  static_assert(std::is_default_constructible_v<T>,
                "a wire message needs a default constructor (decoding fills in the fields)");
  WireType w;
  w.name = T::wire_name;
  w.info = &message_info_v<T>;
  w.construct = [](void* at) { ::new (at) T(); };
  const T probe{};
  std::apply([&](auto... decl) { (w.fields.push_back(detail::describe(decl, probe)), ...); },
             T::wire_fields());
  add_type(std::move(w));
  return *this;
}

template <class T>
std::string Registry::encode(const T& msg) const {
  const WireType& t = require(T::message_id, type_name<T>());
  std::string out, error;
  if (!encode_payload(t, &msg, out, &error)) throw std::invalid_argument(error);
  return out;
}

template <class T>
DecodeStatus Registry::decode(std::string_view json, T& out) const {
  const WireType& t = require(T::message_id, type_name<T>());
  alignas(kMaxMessageAlign) unsigned char buf[sizeof(T)];
  DecodeStatus st = decode_payload(t, json, buf);
  if (st) {
    T* tmp = std::launder(reinterpret_cast<T*>(buf));
    out = std::move(*tmp);
    tmp->~T();
  }
  return st;
}

}  // namespace wire
}  // namespace tern

// ---- the declaration macro ------------------------------------------------------------------

/// Inside a message struct: its wire name (the type's own name) and wire fields (members,
/// named as in C++). `TERN_WIRE(Quote, symbol, bid, ask, seq)`. Up to 32 fields.
#define TERN_WIRE(TYPE, ...) TERN_WIRE_AS(#TYPE, TYPE __VA_OPT__(, ) __VA_ARGS__)
/// Like TERN_WIRE with another wire name: `TERN_WIRE_AS("Quote", QuoteMsg, bid, ask)`.
#define TERN_WIRE_AS(NAME, TYPE, ...)                                        \
  static constexpr ::std::string_view wire_name = NAME;                      \
  static constexpr auto wire_fields() noexcept {                             \
    return ::std::make_tuple(__VA_OPT__(TERN_WIRE_FIELDS_(TYPE, __VA_ARGS__))); \
  }

#define TERN_WIRE_FIELD_(T, m) ::tern::wire::field<&T::m>(#m)
#define TERN_WIRE_CAT_(a, b) TERN_WIRE_CAT2_(a, b)
#define TERN_WIRE_CAT2_(a, b) a##b
#define TERN_WIRE_NTH_(_1, _2, _3, _4, _5, _6, _7, _8, _9, _10, _11, _12, _13, _14, _15, _16, \
                       _17, _18, _19, _20, _21, _22, _23, _24, _25, _26, _27, _28, _29, _30,  \
                       _31, _32, N, ...)                                                     \
  N
#define TERN_WIRE_COUNT_(...)                                                                 \
  TERN_WIRE_NTH_(__VA_ARGS__, 32, 31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, \
                 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0)
#define TERN_WIRE_FIELDS_(T, ...) \
  TERN_WIRE_CAT_(TERN_WIRE_F, TERN_WIRE_COUNT_(__VA_ARGS__))(T, __VA_ARGS__)
#define TERN_WIRE_F1(T, a) TERN_WIRE_FIELD_(T, a)
#define TERN_WIRE_F2(T, a, ...) TERN_WIRE_FIELD_(T, a), TERN_WIRE_F1(T, __VA_ARGS__)
#define TERN_WIRE_F3(T, a, ...) TERN_WIRE_FIELD_(T, a), TERN_WIRE_F2(T, __VA_ARGS__)
#define TERN_WIRE_F4(T, a, ...) TERN_WIRE_FIELD_(T, a), TERN_WIRE_F3(T, __VA_ARGS__)
#define TERN_WIRE_F5(T, a, ...) TERN_WIRE_FIELD_(T, a), TERN_WIRE_F4(T, __VA_ARGS__)
#define TERN_WIRE_F6(T, a, ...) TERN_WIRE_FIELD_(T, a), TERN_WIRE_F5(T, __VA_ARGS__)
#define TERN_WIRE_F7(T, a, ...) TERN_WIRE_FIELD_(T, a), TERN_WIRE_F6(T, __VA_ARGS__)
#define TERN_WIRE_F8(T, a, ...) TERN_WIRE_FIELD_(T, a), TERN_WIRE_F7(T, __VA_ARGS__)
#define TERN_WIRE_F9(T, a, ...) TERN_WIRE_FIELD_(T, a), TERN_WIRE_F8(T, __VA_ARGS__)
#define TERN_WIRE_F10(T, a, ...) TERN_WIRE_FIELD_(T, a), TERN_WIRE_F9(T, __VA_ARGS__)
#define TERN_WIRE_F11(T, a, ...) TERN_WIRE_FIELD_(T, a), TERN_WIRE_F10(T, __VA_ARGS__)
#define TERN_WIRE_F12(T, a, ...) TERN_WIRE_FIELD_(T, a), TERN_WIRE_F11(T, __VA_ARGS__)
#define TERN_WIRE_F13(T, a, ...) TERN_WIRE_FIELD_(T, a), TERN_WIRE_F12(T, __VA_ARGS__)
#define TERN_WIRE_F14(T, a, ...) TERN_WIRE_FIELD_(T, a), TERN_WIRE_F13(T, __VA_ARGS__)
#define TERN_WIRE_F15(T, a, ...) TERN_WIRE_FIELD_(T, a), TERN_WIRE_F14(T, __VA_ARGS__)
#define TERN_WIRE_F16(T, a, ...) TERN_WIRE_FIELD_(T, a), TERN_WIRE_F15(T, __VA_ARGS__)
#define TERN_WIRE_F17(T, a, ...) TERN_WIRE_FIELD_(T, a), TERN_WIRE_F16(T, __VA_ARGS__)
#define TERN_WIRE_F18(T, a, ...) TERN_WIRE_FIELD_(T, a), TERN_WIRE_F17(T, __VA_ARGS__)
#define TERN_WIRE_F19(T, a, ...) TERN_WIRE_FIELD_(T, a), TERN_WIRE_F18(T, __VA_ARGS__)
#define TERN_WIRE_F20(T, a, ...) TERN_WIRE_FIELD_(T, a), TERN_WIRE_F19(T, __VA_ARGS__)
#define TERN_WIRE_F21(T, a, ...) TERN_WIRE_FIELD_(T, a), TERN_WIRE_F20(T, __VA_ARGS__)
#define TERN_WIRE_F22(T, a, ...) TERN_WIRE_FIELD_(T, a), TERN_WIRE_F21(T, __VA_ARGS__)
#define TERN_WIRE_F23(T, a, ...) TERN_WIRE_FIELD_(T, a), TERN_WIRE_F22(T, __VA_ARGS__)
#define TERN_WIRE_F24(T, a, ...) TERN_WIRE_FIELD_(T, a), TERN_WIRE_F23(T, __VA_ARGS__)
#define TERN_WIRE_F25(T, a, ...) TERN_WIRE_FIELD_(T, a), TERN_WIRE_F24(T, __VA_ARGS__)
#define TERN_WIRE_F26(T, a, ...) TERN_WIRE_FIELD_(T, a), TERN_WIRE_F25(T, __VA_ARGS__)
#define TERN_WIRE_F27(T, a, ...) TERN_WIRE_FIELD_(T, a), TERN_WIRE_F26(T, __VA_ARGS__)
#define TERN_WIRE_F28(T, a, ...) TERN_WIRE_FIELD_(T, a), TERN_WIRE_F27(T, __VA_ARGS__)
#define TERN_WIRE_F29(T, a, ...) TERN_WIRE_FIELD_(T, a), TERN_WIRE_F28(T, __VA_ARGS__)
#define TERN_WIRE_F30(T, a, ...) TERN_WIRE_FIELD_(T, a), TERN_WIRE_F29(T, __VA_ARGS__)
#define TERN_WIRE_F31(T, a, ...) TERN_WIRE_FIELD_(T, a), TERN_WIRE_F30(T, __VA_ARGS__)
#define TERN_WIRE_F32(T, a, ...) TERN_WIRE_FIELD_(T, a), TERN_WIRE_F31(T, __VA_ARGS__)
