// tern/wire.hpp: the Registry's out-of-line parts and the built-in Reject.
#include <tern/wire.hpp>

#include <cstring>
#include <stdexcept>

#include "codec.hpp"

namespace tern {

Reject::Reject(std::string_view message_type, std::string_view reason,
               std::string_view rejected_by)
    : type_len_(static_cast<std::uint32_t>(message_type.size())),
      reason_len_(static_cast<std::uint32_t>(reason.size())) {
  text_.reserve(message_type.size() + reason.size() + rejected_by.size());
  text_.append(message_type).append(reason).append(rejected_by);
}

namespace wire {

std::string_view to_string(Kind k) noexcept {
  switch (k) {
    case Kind::i8: return "int8";
    case Kind::i16: return "int16";
    case Kind::i32: return "int32";
    case Kind::i64: return "int64";
    case Kind::u8: return "uint8";
    case Kind::u16: return "uint16";
    case Kind::u32: return "uint32";
    case Kind::u64: return "uint64";
    case Kind::f32: return "float";
    case Kind::f64: return "double";
    case Kind::boolean: return "bool";
    case Kind::string: return "string";
    case Kind::chars: return "string";
    case Kind::array: return "array";
  }
  return "?";
}

Registry::Registry() {
  WireType r;
  r.name = "Reject";
  r.info = &message_info_v<Reject>;
  r.construct = [](void* at) { ::new (at) Reject(); };
  for (std::string_view n : {"message_type", "reason", "rejected_by"}) {
    Field f;
    f.name = n;
    f.kind = f.elem = Kind::string;
    r.fields.push_back(f);
  }
  r.is_reject = true;
  add_type(std::move(r));
}

void Registry::add_type(WireType t) {
  const std::string cpp(t.info->name);
  if (t.name.empty()) throw std::invalid_argument("tern: " + cpp + " has an empty wire name");
  if (t.fields.size() > 64)
    throw std::invalid_argument("tern: " + cpp + " declares " + std::to_string(t.fields.size()) +
                                " wire fields; at most 64 are supported");
  if (auto it = by_name_.find(t.name); it != by_name_.end())
    throw std::invalid_argument("tern: wire name '" + std::string(t.name) +
                                "' registered twice: " + std::string(types_[it->second].info->name) +
                                " and " + cpp);
  if (auto it = by_id_.find(t.info->id); it != by_id_.end())
    throw std::invalid_argument("tern: message id " + std::to_string(t.info->id) +
                                " registered twice: " + std::string(types_[it->second].info->name) +
                                " and " + cpp);
  try {
    tern::detail::register_message_type(*t.info);  // one type per id in the whole process
  } catch (const std::logic_error& e) {
    throw std::invalid_argument(e.what());
  }
  for (std::size_t i = 0; i < t.fields.size(); ++i)
    for (std::size_t j = 0; j < i; ++j)
      if (t.fields[i].name == t.fields[j].name)
        throw std::invalid_argument("tern: " + cpp + " declares wire field '" +
                                    std::string(t.fields[i].name) + "' twice");
  for (Field& f : t.fields) {
    f.key8 = f.mask8 = 0;
    if (f.name.size() <= 7) {
      char bytes[8] = {};
      std::memcpy(bytes, f.name.data(), f.name.size());
      bytes[f.name.size()] = '"';
      std::memcpy(&f.key8, bytes, 8);
      f.mask8 = f.name.size() == 7 ? ~std::uint64_t{0}
                                   : (std::uint64_t{1} << (8 * (f.name.size() + 1))) - 1;
    }
  }
  t.name_json.clear();
  gw::json::append_string(t.name_json, t.name);
  const auto index = static_cast<std::uint32_t>(types_.size());
  by_name_.emplace(t.name, index);
  by_id_.emplace(t.info->id, index);
  types_.push_back(std::move(t));
}

const WireType* Registry::find(std::string_view wire_name) const noexcept {
  const auto it = by_name_.find(wire_name);
  return it == by_name_.end() ? nullptr : &types_[it->second];
}

const WireType* Registry::find(MessageId id) const noexcept {
  const auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &types_[it->second];
}

const WireType& Registry::require(MessageId id, std::string_view cpp_name) const {
  const WireType* t = find(id);
  if (!t || t->info->name != cpp_name)  // another type with this id is not this type
    throw std::invalid_argument("tern: " + std::string(cpp_name) +
                                " is not registered (Registry::add<T>())");
  return *t;
}

bool Registry::encode_payload(const WireType& t, const void* msg, std::string& out,
                              std::string* error) const {
  return gw::encode_payload(t, msg, out, error);
}

DecodeStatus Registry::decode_payload(const WireType& t, std::string_view json, void* out) const {
  const simdjson::padded_string padded(json);
  gw::od::parser parser;
  gw::PayloadStatus st =
      gw::decode_payload_text(parser, t, padded, padded.size() + simdjson::SIMDJSON_PADDING, out);
  return DecodeStatus{st.ok, std::move(st.reason)};
}

}  // namespace wire
}  // namespace tern
