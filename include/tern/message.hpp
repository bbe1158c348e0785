// Typed messages with compile-time ids. A message is any trivially-relocatable-enough struct
// with a `static constexpr tern::MessageId message_id` member:
//
//   struct Ping { static constexpr tern::MessageId message_id = 100; int count = 0; };
//
// A message is constructed in the receiver's mailbox record (or, above the mailbox's inline
// limit, in a block of its pool): any size up to the mailbox's max_message_bytes.
#pragma once
#include <concepts>
#include <atomic>
#include <cstdint>
#include <new>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>

#include <tern/config.hpp>

namespace tern {

using MessageId = std::uint32_t;

/// Ids at or above this are reserved for tern's built-in messages: +1..+3 Start, Shutdown,
/// Timeout (below), +4 TopicWake (topic.hpp), +0x10 wire::Reject (wire.hpp), +0x20..+0x22
/// TopicSubscribe, TopicCredit, TopicUnsubscribe (topic_export.hpp).
inline constexpr MessageId kFirstReservedId = 0xFFFFFF00u;

template <class T>
concept MessageType = requires {
  { T::message_id } -> std::convertible_to<MessageId>;
} && std::is_nothrow_move_constructible_v<T> && std::is_nothrow_destructible_v<T>;

namespace detail {
template <class T>
constexpr std::string_view raw_type_name() {
  return __PRETTY_FUNCTION__;
}
}  // namespace detail

/// The unqualified-as-written C++ name of T (e.g. "app::Ping"), computed at compile time.
template <class T>
constexpr std::string_view type_name() {
  constexpr std::string_view raw = detail::raw_type_name<T>();
  constexpr std::string_view key = "T = ";
  constexpr auto start = raw.find(key) + key.size();
  constexpr auto end = raw.find_first_of(";]", start);
  return raw.substr(start, end - start);
}

/// Per-type facts the runtime needs without templates: one constexpr instance per type.
struct MessageInfo {
  MessageId id;
  std::uint32_t size;
  std::string_view name;
  /// Destroys the object; nullptr for trivially destructible types (nothing to do).
  void (*destroy)(void* obj) noexcept;
  /// Move-constructs the object at `src` into raw storage `dst` and destroys `src`.
  void (*relocate)(void* dst, void* src) noexcept;
  /// The type's index in the process-wide type table: what a mailbox record carries
  /// instead of this object's address. nullptr for a MessageInfo built by hand (it gets an
  /// index at its first send, under a lock).
  const std::uint32_t* index = nullptr;
  /// alignof(T), and whether T is trivially copyable (only those cross a shared-memory
  /// link, tern/shm.hpp). 0/false for a MessageInfo built by hand.
  std::uint32_t align = 0;
  bool trivially_copyable = false;
  /// Hash of T's field layout (names, member types, offsets, sizes) when T declares its
  /// fields with TERN_WIRE, else nullptr: part of a type's shared-memory fingerprint.
  std::uint64_t (*layout_hash)() noexcept = nullptr;
};

namespace detail {
/// Set-up (static initialisation or first send): the index of `info` in the type table,
/// adding it when new. Index 0 is never used (a zeroed record names no type). Aborts
/// with a message past Tuning::max_message_types.
std::uint32_t register_type_index(const MessageInfo& info) noexcept;
/// The type table: index -> MessageInfo. Entries are written once, before any record
/// that carries the index exists (the send that carries it made or read the index).
extern std::atomic<const MessageInfo*> g_message_types[Tuning::max_message_types];
template <class T>
struct TypeIndex {
  static const std::uint32_t value;
};
/// The index a record carries for `info`. Any thread; no lock once the type is known.
inline std::uint32_t type_index_of(const MessageInfo& info) noexcept {
  const std::uint32_t i = info.index ? *info.index : 0;
  return i ? i : register_type_index(info);  // a hand-built info, or a send during static init
}
/// Consumer: the MessageInfo of a record's type index.
inline const MessageInfo& message_type_at(std::uint32_t index) noexcept {
  // acquire: pairs with the release in register_type_index (a type first indexed by a send
  // on another thread).
  return *g_message_types[index].load(std::memory_order_acquire);
}
}  // namespace detail

namespace detail {
template <class T>
void destroy_fn(void* p) noexcept {
  static_cast<T*>(p)->~T();
}
template <class T>
void relocate_fn(void* dst, void* src) noexcept {
  ::new (dst) T(std::move(*static_cast<T*>(src)));
  static_cast<T*>(src)->~T();
}
}  // namespace detail

namespace detail {
/// FNV-1a, 64 bits: fingerprints of names and layouts (not a security hash).
constexpr std::uint64_t fnv1a(std::string_view s, std::uint64_t h = 0xcbf29ce484222325ull) {
  for (const char c : s) h = (h ^ static_cast<unsigned char>(c)) * 0x100000001b3ull;
  return h;
}
template <class F>
struct FieldMember;
template <template <auto> class D, auto M>
struct FieldMember<D<M>> {
  static constexpr auto value = M;
};
template <class P>
struct MemberType;
template <class C, class V>
struct MemberType<V C::*> {
  using type = V;
};
template <class T>
concept DeclaresFields = requires { T::wire_fields(); };
/// The layout hash of a type that declares its fields (TERN_WIRE): each field's name, C++
/// type name, size and offset, in declaration order.
template <class T>
std::uint64_t layout_hash_fn() noexcept {
  std::uint64_t h = fnv1a(type_name<T>());
  std::apply(
      [&](const auto&... f) {
        auto one = [&](const auto& field) {
          using Decl = std::remove_cvref_t<decltype(field)>;
          constexpr auto mp = FieldMember<Decl>::value;
          using V = typename MemberType<std::remove_cv_t<decltype(mp)>>::type;
          alignas(T) unsigned char buf[sizeof(T)]{};
          const T* obj = reinterpret_cast<const T*>(buf);
          const auto off = static_cast<std::uint64_t>(
              reinterpret_cast<const unsigned char*>(&(obj->*mp)) - buf);
          h = fnv1a(field.name, h);
          h = fnv1a(type_name<V>(), h);
          h = (h ^ (sizeof(V) * 0x10000 + off)) * 0x100000001b3ull;
        };
        (one(f), ...);
        (void)one;  // a TERN_WIRE with no fields
      },
      T::wire_fields());
  return h;
}
template <class T>
constexpr auto layout_hash_of() noexcept {
  if constexpr (DeclaresFields<T>)
    return &layout_hash_fn<T>;
  else
    return static_cast<std::uint64_t (*)() noexcept>(nullptr);
}
}  // namespace detail

template <MessageType T>
inline constexpr MessageInfo message_info_v{
    T::message_id, static_cast<std::uint32_t>(sizeof(T)), type_name<T>(),
    std::is_trivially_destructible_v<T> ? nullptr : &detail::destroy_fn<T>,
    &detail::relocate_fn<T>, &detail::TypeIndex<T>::value,
    static_cast<std::uint32_t>(alignof(T)), std::is_trivially_copyable_v<T>,
    detail::layout_hash_of<T>()};

template <class T>
const std::uint32_t detail::TypeIndex<T>::value = detail::register_type_index(message_info_v<T>);

/// Are `a` and `b` the same message type? A type's identity is its MessageInfo: one object
/// per type (an inline variable, which the dynamic linker unifies between libtern and the
/// executable). Equal id, size and name also match, for a copy made where that unification
/// does not happen (a library linked with hidden visibility). Dispatch and FastReply::get
/// compare pointers first and call this only when they differ.
inline bool same_type(const MessageInfo& a, const MessageInfo& b) noexcept {
  return &a == &b || (a.id == b.id && a.size == b.size && a.name == b.name);
}

/// Set-up, any thread: throws std::logic_error naming both types when two different message
/// types with one message_id have been seen in this process (sent, replied, handled or
/// registered on the wire anywhere in the program). Manager::init and Group::start call it.
void check_message_ids();
/// The message type registered for `id` in this process, or nullptr. Any thread; takes a
/// lock (not for the hot path).
const MessageInfo* find_message_type(MessageId id) noexcept;

namespace detail {
/// Process-wide table id -> MessageInfo. Set-up: adds `info`; throws std::logic_error naming
/// both types when another type has, or had, that id (Actor::handle, wire Registry::add).
void register_message_type(const MessageInfo& info);
/// Static initialisation: the same, but a clash is recorded and printed (to stderr) instead
/// of thrown; check_message_ids() and register_message_type() report it later.
bool note_message_type(const MessageInfo& info) noexcept;
/// One per message type used anywhere in the program: instantiating it (check_message, which
/// every send, reply and fast_send runs at compile time) notes the type once, before main
/// or when its shared library loads. So a send costs nothing at run time for the check.
template <class T>
inline const bool message_noted_v = note_message_type(message_info_v<T>);
}  // namespace detail

/// Destroys a message of type `info` at `obj`.
inline void destroy_message(const MessageInfo& info, void* obj) noexcept {
  if (info.destroy) info.destroy(obj);
}

namespace detail {
/// Can a send of `T&&` construct the message in its slot without a copy that may throw?
/// Always for rvalues (MessageType requires a nothrow move); for an lvalue, when the copy
/// constructor is noexcept. Otherwise the send copies first, before a slot is claimed, and
/// that copy's exception reaches the caller (the send is then not noexcept).
template <class T>
inline constexpr bool nothrow_send_v =
    std::is_nothrow_constructible_v<std::remove_cvref_t<T>, T&&>;
}  // namespace detail

/// Checks a user message type against the hard limits, with readable errors. Registers
/// nothing: for set-up paths that register the type themselves (Actor::handle,
/// wire::Registry::add), which throw on an id clash.
template <class T>
constexpr bool check_message_layout() {
  static_assert(MessageType<T>,
                "a tern message needs `static constexpr tern::MessageId message_id` and a "
                "noexcept move constructor and destructor");
  static_assert(sizeof(T) <= kMaxMessageBytes,
                "message type is larger than kMaxMessageBytes (1 MiB): hold bulky data by "
                "index into shared state, or split the message");
  static_assert(alignof(T) <= kMaxMessageAlign, "message alignment above 16 is not supported");
  return true;
}

/// check_message_layout, and the type is noted in the process-wide id table at start-up
/// (every send, reply and fast_send checks its type with this).
template <class T>
constexpr bool check_message() {
  static_assert(check_message_layout<T>());
  // why: odr-uses the variable, so its initialiser (note_message_type) runs once at start-up
  // for every type that is ever sent: the id-clash check costs the send path nothing.
  static_cast<void>(&detail::message_noted_v<T>);
  return true;
}

// ---- Built-in messages -----------------------------------------------------------------

/// Delivered once, in the actor's own thread, before any other message.
struct Start {
  static constexpr MessageId message_id = kFirstReservedId + 1;
};
/// Delivered once, last, after the mailbox was closed and drained (Manager::end()).
struct Shutdown {
  static constexpr MessageId message_id = kFirstReservedId + 2;
};
/// A timer fired (see Actor::start_timer). `id` is the handle start_timer returned;
/// `due_ns` the CLOCK_MONOTONIC time it was due, `fired_ns` when the timer service sent it.
struct Timeout {
  static constexpr MessageId message_id = kFirstReservedId + 3;
  std::uint64_t id = 0;
  std::uint64_t due_ns = 0;
  std::uint64_t fired_ns = 0;
};

}  // namespace tern
