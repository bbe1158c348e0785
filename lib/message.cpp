// The process-wide table of message types: one type per message id. Filled at start-up by
// every type the program sends (detail::message_noted_v), and at set-up by Actor::handle and
// wire::Registry::add. A clash (two types, one id) is reported by name: thrown at set-up,
// printed and remembered when found during static initialisation.
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <tern/message.hpp>

namespace tern {
namespace {

struct TypeTable {
  std::mutex mu;
  std::unordered_map<MessageId, const MessageInfo*> by_id;
  std::vector<std::pair<const MessageInfo*, const MessageInfo*>> clashes;  ///< (first, other)
};

// why a function-local static: static initialisers of any library or translation unit may
// call in, in any order; this is constructed on first use.
TypeTable& table() {
  static TypeTable t;
  return t;
}

std::string clash_text(const MessageInfo& first, const MessageInfo& other) {
  return "tern: message id " + std::to_string(first.id) + " is used by two types, " +
         std::string(first.name) + " and " + std::string(other.name) +
         ": give each message type its own message_id (a type's identity is its MessageInfo; "
         "the runtime never dispatches one as the other)";
}

/// Caller holds the lock. The other type already using info.id, or nullptr.
const MessageInfo* clash_for(TypeTable& t, const MessageInfo& info) {
  const auto it = t.by_id.find(info.id);
  if (it == t.by_id.end()) {
    t.by_id.emplace(info.id, &info);
    return nullptr;
  }
  if (!same_type(*it->second, info)) return it->second;
  for (const auto& [first, other] : t.clashes)  // this type's id was already found clashing
    if (first->id == info.id) return same_type(*first, info) ? other : first;
  return nullptr;
}

}  // namespace

namespace detail {

std::atomic<const MessageInfo*> g_message_types[Tuning::max_message_types];

std::uint32_t register_type_index(const MessageInfo& info) noexcept {
  static std::mutex mu;  // function-local: static initialisers of any TU may call in
  static std::uint32_t count = 1;  // 0 stays empty: a zeroed record names no type
  const std::lock_guard lock(mu);
  for (std::uint32_t i = 1; i < count; ++i)
    if (g_message_types[i].load(std::memory_order_relaxed) == &info) return i;
  if (count >= Tuning::max_message_types) {
    std::fprintf(stderr, "tern: more than %u message types (Tuning::max_message_types) at %.*s\n",
                 Tuning::max_message_types, static_cast<int>(info.name.size()), info.name.data());
    std::abort();
  }
  g_message_types[count].store(&info, std::memory_order_release);
  return count++;
}

void register_message_type(const MessageInfo& info) {
  TypeTable& t = table();
  const std::lock_guard lock(t.mu);
  if (const MessageInfo* other = clash_for(t, info)) throw std::logic_error(clash_text(*other, info));
}

bool note_message_type(const MessageInfo& info) noexcept {
  try {
    TypeTable& t = table();
    const std::lock_guard lock(t.mu);
    if (const MessageInfo* other = clash_for(t, info)) {
      for (const auto& [first, second] : t.clashes)
        if ((same_type(*first, *other) && same_type(*second, info)) ||
            (same_type(*first, info) && same_type(*second, *other)))
          return false;  // already known
      t.clashes.emplace_back(other, &info);
      std::fprintf(stderr, "%s\n", clash_text(*other, info).c_str());
      return false;
    }
  } catch (...) {
    // bad_alloc during static initialisation: nothing to record it in; dispatch still
    // compares types, so nothing is confused.
  }
  return true;
}

}  // namespace detail

void check_message_ids() {
  TypeTable& t = table();
  const std::lock_guard lock(t.mu);
  if (t.clashes.empty()) return;
  std::string what = clash_text(*t.clashes.front().first, *t.clashes.front().second);
  if (t.clashes.size() > 1)
    what += " (and " + std::to_string(t.clashes.size() - 1) + " more id clash(es), printed at start-up)";
  throw std::logic_error(what);
}

const MessageInfo* find_message_type(MessageId id) noexcept {
  TypeTable& t = table();
  const std::lock_guard lock(t.mu);
  const auto it = t.by_id.find(id);
  return it == t.by_id.end() ? nullptr : it->second;
}

}  // namespace tern
