// The gateway's JSON codec: payload fields by their descriptors, the envelope, and the
// best-effort salvage of a dropped frame's sender.
#include "codec.hpp"

#include <cfloat>
#include <cstring>
#include <limits>

namespace tern::gw {

using wire::DecodeStatus;
using wire::Field;
using wire::Kind;
using wire::WireType;

namespace {

// ---- reasons --------------------------------------------------------------------------------

std::string field_ref(const Field& f, const WireType& t) {
  std::string s = "Field '";
  s.append(f.name);
  s.append("' for ");
  s.append(t.name);
  return s;
}

std::string kind_text(const Field& f) {
  if (f.kind == Kind::chars) return "string";
  if (f.kind == Kind::array)
    return "an array of " + std::to_string(f.extent) + " " + std::string(wire::to_string(f.elem));
  return std::string(wire::to_string(f.kind));
}

const char* json_type_text(od::json_type jt, od::value& v) {
  switch (jt) {
    case od::json_type::array: return "array";
    case od::json_type::object: return "object";
    case od::json_type::string: return "string";
    case od::json_type::boolean: return "bool";
    case od::json_type::null: return "null";
    case od::json_type::number: {
      od::number_type nt;
      if (v.get_number_type().get(nt)) return "number";
      return nt == od::number_type::floating_point_number ? "float" : "integer";
    }
  }
  return "value";
}

using Status = PayloadStatus;

Status bad(std::string reason) { return Status{false, false, std::move(reason)}; }
Status malformed(simdjson::error_code e) {
  return Status{false, true, std::string("Malformed JSON: ") + simdjson::error_message(e)};
}

// ---- numbers ---------------------------------------------------------------------------------

bool is_signed(Kind k) { return k == Kind::i8 || k == Kind::i16 || k == Kind::i32 || k == Kind::i64; }
bool is_float(Kind k) { return k == Kind::f32 || k == Kind::f64; }

template <class T>
void store(unsigned char* at, T v) {
  std::memcpy(at, &v, sizeof v);
}

/// Reads a JSON number into the slot at `at` as kind `k`. `what` names the field (and
/// element) for the reason.
Status decode_number(od::value& v, Kind k, unsigned char* at, const std::string& what) {
  od::json_type jt;
  if (auto e = v.type().get(jt)) return malformed(e);
  if (jt != od::json_type::number)
    return bad(what + " must be " + std::string(wire::to_string(k)) + ", got " +
               json_type_text(jt, v));
  if (is_float(k)) {
    double d;
    if (v.get_double().get(d) || !std::isfinite(d))
      return bad(what + " is out of range for " + std::string(wire::to_string(k)));
    if (k == Kind::f32) {
      if (d > FLT_MAX || d < -FLT_MAX) {
        std::string text;
        json::append_float(text, d);
        return bad(what + " is out of range for float: " + text);
      }
      store(at, static_cast<float>(d));
    } else {
      store(at, d);
    }
    return {};
  }
  od::number_type nt;
  if (auto e = v.get_number_type().get(nt)) return malformed(e);
  if (nt == od::number_type::floating_point_number)
    return bad(what + " must be " + std::string(wire::to_string(k)) + ", got float");
  const auto out_of_range = [&](const std::string& text) {
    return bad(what + " is out of range for " + std::string(wire::to_string(k)) + ": " + text);
  };
  if (nt == od::number_type::unsigned_integer) {  // >= 2^63
    std::uint64_t u;
    if (v.get_uint64().get(u)) return out_of_range("too large");
    if (k != Kind::u64) return out_of_range(std::to_string(u));
    store(at, u);
    return {};
  }
  std::int64_t x;
  if (auto e = v.get_int64().get(x)) return malformed(e);
  std::int64_t lo = 0, hi = 0;
  std::uint64_t uhi = 0;
  switch (k) {
    case Kind::i8: lo = INT8_MIN; hi = INT8_MAX; break;
    case Kind::i16: lo = INT16_MIN; hi = INT16_MAX; break;
    case Kind::i32: lo = INT32_MIN; hi = INT32_MAX; break;
    case Kind::i64: lo = INT64_MIN; hi = INT64_MAX; break;
    case Kind::u8: uhi = UINT8_MAX; break;
    case Kind::u16: uhi = UINT16_MAX; break;
    case Kind::u32: uhi = UINT32_MAX; break;
    default: uhi = UINT64_MAX; break;
  }
  if (is_signed(k)) {
    if (x < lo || x > hi) return out_of_range(std::to_string(x));
  } else if (x < 0 || static_cast<std::uint64_t>(x) > uhi) {
    return out_of_range(std::to_string(x));
  }
  switch (k) {
    case Kind::i8: store(at, static_cast<std::int8_t>(x)); break;
    case Kind::i16: store(at, static_cast<std::int16_t>(x)); break;
    case Kind::i32: store(at, static_cast<std::int32_t>(x)); break;
    case Kind::i64: store(at, x); break;
    case Kind::u8: store(at, static_cast<std::uint8_t>(x)); break;
    case Kind::u16: store(at, static_cast<std::uint16_t>(x)); break;
    case Kind::u32: store(at, static_cast<std::uint32_t>(x)); break;
    default: store(at, static_cast<std::uint64_t>(x)); break;
  }
  return {};
}

std::size_t kind_size(Kind k) {
  switch (k) {
    case Kind::i8: case Kind::u8: case Kind::boolean: return 1;
    case Kind::i16: case Kind::u16: return 2;
    case Kind::i32: case Kind::u32: case Kind::f32: return 4;
    default: return 8;
  }
}

Status get_text(od::value& v, std::string_view& s, const Field& f, const WireType& t) {
  od::json_type jt;
  if (auto e = v.type().get(jt)) return malformed(e);
  if (jt != od::json_type::string)
    return bad(field_ref(f, t) + " must be string, got " + json_type_text(jt, v));
  if (auto e = v.get_string().get(s)) return malformed(e);
  return {};
}

Status decode_field(const Field& f, const WireType& t, od::value& v, unsigned char* base) {
  unsigned char* at = base + f.offset;
  switch (f.kind) {
    case Kind::boolean: {
      od::json_type jt;
      if (auto e = v.type().get(jt)) return malformed(e);
      if (jt != od::json_type::boolean)
        return bad(field_ref(f, t) + " must be bool, got " + json_type_text(jt, v));
      bool b;
      if (auto e = v.get_bool().get(b)) return malformed(e);
      store(at, b);
      return {};
    }
    case Kind::string: {
      std::string_view s;
      if (Status st = get_text(v, s, f, t); !st.ok) return st;
      reinterpret_cast<std::string*>(at)->assign(s.data(), s.size());
      return {};
    }
    case Kind::chars: {
      std::string_view s;
      if (Status st = get_text(v, s, f, t); !st.ok) return st;
      if (s.size() > f.extent)
        return bad(field_ref(f, t) + " is longer than " + std::to_string(f.extent) + " bytes");
      if (std::memchr(s.data(), '\0', s.size()))
        return bad(field_ref(f, t) + " must not contain NUL");
      std::memcpy(at, s.data(), s.size());
      std::memset(at + s.size(), 0, f.extent - s.size());
      return {};
    }
    case Kind::array: {
      od::json_type jt;
      if (auto e = v.type().get(jt)) return malformed(e);
      if (jt != od::json_type::array)
        return bad(field_ref(f, t) + " must be " + kind_text(f) + ", got " + json_type_text(jt, v));
      od::array arr;
      if (auto e = v.get_array().get(arr)) return malformed(e);
      std::uint32_t i = 0;
      const std::size_t esz = kind_size(f.elem);
      for (auto er : arr) {
        od::value ev;
        if (auto e = std::move(er).get(ev)) return malformed(e);
        if (i >= f.extent) {
          ++i;
          continue;  // count the rest for the reason
        }
        const std::string what = field_ref(f, t) + " element " + std::to_string(i);
        if (Status st = decode_number(ev, f.elem, at + i * esz, what); !st.ok) return st;
        ++i;
      }
      if (i != f.extent)
        return bad(field_ref(f, t) + " must be " + kind_text(f) + ", got " + std::to_string(i) +
                   (i == 1 ? " element" : " elements"));
      return {};
    }
    default:
      return decode_number(v, f.kind, at, field_ref(f, t));
  }
}

Status decode_reject(od::object& obj, void* out) {
  std::string_view vals[3];
  bool seen[3] = {false, false, false};
  static constexpr std::string_view kKeys[3] = {"message_type", "reason", "rejected_by"};
  std::string parts[3];
  for (auto fr : obj) {
    od::field fl;
    if (auto e = std::move(fr).get(fl)) return malformed(e);
    std::string_view key;
    if (auto e = fl.unescaped_key().get(key)) return malformed(e);
    for (int i = 0; i < 3; ++i) {
      if (key != kKeys[i]) continue;
      if (seen[i]) return bad("Duplicate field '" + std::string(key) + "' for Reject");
      seen[i] = true;
      od::value v = fl.value();
      od::json_type jt;
      if (auto e = v.type().get(jt)) return malformed(e);
      if (jt != od::json_type::string)
        return bad("Field '" + std::string(key) + "' for Reject must be string, got " +
                   json_type_text(jt, v));
      if (auto e = v.get_string().get(vals[i])) return malformed(e);
      parts[i].assign(vals[i]);  // the parser's string buffer is reused by the next field
    }
  }
  for (int i = 0; i < 3; ++i)
    if (!seen[i]) return bad("Missing field '" + std::string(kKeys[i]) + "' for Reject");
  ::new (out) Reject(parts[0], parts[1], parts[2]);
  return {};
}

Status decode_object(const WireType& t, od::object& obj, void* out) {
  if (t.is_reject) return decode_reject(obj, out);
  t.construct(out);
  auto* base = static_cast<unsigned char*>(out);
  std::uint64_t seen = 0;
  Status st;
  for (auto fr : obj) {
    od::field fl;
    if (auto e = std::move(fr).get(fl)) {
      st = malformed(e);
      break;
    }
    std::string_view key;
    if (auto e = fl.unescaped_key().get(key)) {
      st = malformed(e);
      break;
    }
    std::size_t i = 0;
    while (i < t.fields.size() && t.fields[i].name != key) ++i;
    if (i == t.fields.size()) continue;  // extra fields are ignored
    const std::uint64_t bit = std::uint64_t{1} << i;
    if (seen & bit) {
      st = bad("Duplicate field '" + std::string(key) + "' for " + std::string(t.name));
      break;
    }
    seen |= bit;
    od::value v = fl.value();
    st = decode_field(t.fields[i], t, v, base);
    if (!st.ok) break;
  }
  if (st.ok) {
    for (std::size_t i = 0; i < t.fields.size(); ++i) {
      if (!(seen & (std::uint64_t{1} << i))) {
        st = bad("Missing field '" + std::string(t.fields[i].name) + "' for " +
                 std::string(t.name));
        break;
      }
    }
  }
  if (!st.ok) destroy_message(*t.info, out);
  return st;
}

DecodeStatus to_public(Status st) { return DecodeStatus{st.ok, std::move(st.reason)}; }

bool is_ws(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

}  // namespace

// ---- encode ---------------------------------------------------------------------------------

namespace {
template <class Buf>
bool encode_text(Buf& out, std::string_view s, const Field& f, const WireType& t,
                 std::string* error) {
  if (!simdjson::validate_utf8(s.data(), s.size())) {
    if (error) *error = field_ref(f, t) + " is not valid UTF-8";
    return false;
  }
  json::append_string(out, s);
  return true;
}

template <class Buf>
bool encode_number(Buf& out, Kind k, const unsigned char* at, const Field& f, const WireType& t,
                   std::string* error) {
  const auto load = [at](auto v) {
    std::memcpy(&v, at, sizeof v);
    return v;
  };
  switch (k) {
    case Kind::i8: json::append_int(out, load(std::int8_t{})); return true;
    case Kind::i16: json::append_int(out, load(std::int16_t{})); return true;
    case Kind::i32: json::append_int(out, load(std::int32_t{})); return true;
    case Kind::i64: json::append_int(out, load(std::int64_t{})); return true;
    case Kind::u8: json::append_int(out, load(std::uint8_t{})); return true;
    case Kind::u16: json::append_int(out, load(std::uint16_t{})); return true;
    case Kind::u32: json::append_int(out, load(std::uint32_t{})); return true;
    case Kind::u64: json::append_int(out, load(std::uint64_t{})); return true;
    case Kind::f32:
      if (json::append_float(out, load(float{}))) return true;
      break;
    case Kind::f64:
      if (json::append_float(out, load(double{}))) return true;
      break;
    default: break;
  }
  if (error) *error = field_ref(f, t) + " is not a finite number";
  return false;
}
}  // namespace

template <class Buf>
bool encode_payload(const WireType& t, const void* msg, Buf& out, std::string* error) {
  if (t.is_reject) {
    const auto& r = *static_cast<const Reject*>(msg);
    const std::string_view vals[3] = {r.message_type(), r.reason(), r.rejected_by()};
    static constexpr std::string_view kKeys[3] = {"message_type", "reason", "rejected_by"};
    out.push_back('{');
    for (int i = 0; i < 3; ++i) {
      if (i) out.push_back(',');
      json::append_key(out, kKeys[i]);
      if (!encode_text(out, vals[i], t.fields[static_cast<std::size_t>(i)], t, error))
        return false;
    }
    out.push_back('}');
    return true;
  }
  const auto* base = static_cast<const unsigned char*>(msg);
  out.push_back('{');
  bool first = true;
  for (const Field& f : t.fields) {
    if (!first) out.push_back(',');
    first = false;
    json::append_key(out, f.name);
    const unsigned char* at = base + f.offset;
    switch (f.kind) {
      case Kind::boolean: {
        bool b;
        std::memcpy(&b, at, 1);
        json::append_bool(out, b);
        break;
      }
      case Kind::string:
        if (!encode_text(out, *reinterpret_cast<const std::string*>(at), f, t, error))
          return false;
        break;
      case Kind::chars: {
        const char* p = reinterpret_cast<const char*>(at);
        if (!encode_text(out, std::string_view(p, strnlen(p, f.extent)), f, t, error))
          return false;
        break;
      }
      case Kind::array: {
        const std::size_t esz = kind_size(f.elem);
        out.push_back('[');
        for (std::uint32_t i = 0; i < f.extent; ++i) {
          if (i) out.push_back(',');
          if (!encode_number(out, f.elem, at + i * esz, f, t, error)) return false;
        }
        out.push_back(']');
        break;
      }
      default:
        if (!encode_number(out, f.kind, at, f, t, error)) return false;
    }
  }
  out.push_back('}');
  return true;
}

template bool encode_payload<std::string>(const WireType&, const void*, std::string&,
                                          std::string*);
template bool encode_payload<Buffer>(const WireType&, const void*, Buffer&, std::string*);

// ---- decode ---------------------------------------------------------------------------------

DecodeStatus decode_payload(const WireType& t, od::object obj, void* out) {
  return to_public(decode_object(t, obj, out));
}

PayloadStatus decode_payload_text(od::parser& parser, const WireType& t, std::string_view json,
                                  std::size_t capacity, void* out) {
  od::document doc;
  if (auto e = parser.iterate(json.data(), json.size(), capacity).get(doc)) return malformed(e);
  od::object obj;
  if (auto e = doc.get_object().get(obj)) return malformed(e);
  Status st = decode_object(t, obj, out);
  if (st.ok && doc.current_location().error() != simdjson::OUT_OF_BOUNDS) {
    destroy_message(*t.info, out);
    st = Status{false, true, "Malformed JSON: trailing content"};
  }
  return st;
}

// ---- salvage and depth ----------------------------------------------------------------------

Envelope salvage_envelope(const char* p, std::size_t n) noexcept {
  // why a cap: the scan is O(n) on the gateway thread; a frame too large to parse must not
  // stall it for long. 1 MiB is about a millisecond.
  static constexpr std::size_t kScanLimit = 1u << 20;
  Envelope env;
  const std::size_t lim = n < kScanLimit ? n : kScanLimit;
  std::size_t i = 0;
  while (i < lim && is_ws(p[i])) ++i;
  if (i >= lim || p[i] != '{') return env;
  ++i;
  int depth = 1;
  bool expect_key = true;
  std::string_view key;
  bool key_escaped = false;
  while (i < lim) {
    const char c = p[i];
    if (c == '"') {
      std::size_t j = i + 1;
      bool escaped = false;
      while (j < lim && p[j] != '"') {
        if (p[j] == '\\') {
          escaped = true;
          j += 2;
        } else {
          ++j;
        }
      }
      if (j >= lim) break;
      const std::string_view s(p + i + 1, j - i - 1);
      if (depth == 1) {
        if (expect_key) {
          key = s;
          key_escaped = escaped;
        } else if (!escaped && !key_escaped && simdjson::validate_utf8(s.data(), s.size())) {
          if (key == "sender_actor") {
            env.sender_actor = s;
            env.has_sender_actor = true;
          } else if (key == "sender_endpoint") {
            env.sender_endpoint = s;
            env.has_sender_endpoint = true;
          } else if (key == "receiver") {
            env.receiver = s;
            env.has_receiver = true;
          } else if (key == "message_type") {
            env.message_type = s;
            env.has_message_type = true;
          }
        }
      }
      i = j + 1;
      continue;
    }
    if (c == '{' || c == '[') {
      ++depth;
    } else if (c == '}' || c == ']') {
      if (--depth == 0) break;
    } else if (depth == 1 && c == ':') {
      expect_key = false;
    } else if (depth == 1 && c == ',') {
      expect_key = true;
    }
    ++i;
  }
  return env;
}

bool nests_deeper_than(const char* p, std::size_t n, std::uint32_t max_depth) noexcept {
  // Cheap pre-check (vectorises): fewer opening brackets than the limit cannot nest deeper.
  std::size_t opens = 0;
  for (std::size_t i = 0; i < n; ++i) opens += (p[i] == '{') | (p[i] == '[');
  if (opens <= max_depth) return false;
  std::uint32_t depth = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const char c = p[i];
    if (c == '"') {
      for (++i; i < n && p[i] != '"'; ++i)
        if (p[i] == '\\') ++i;
    } else if (c == '{' || c == '[') {
      if (++depth > max_depth) return true;
    } else if ((c == '}' || c == ']') && depth > 0) {
      --depth;
    }
  }
  return false;
}

// ---- frames ---------------------------------------------------------------------------------

FrameDecoder::FrameDecoder(std::size_t max_frame_bytes, std::uint32_t max_depth)
    : max_frame_(max_frame_bytes), max_depth_(max_depth) {
  buf_.resize(max_frame_bytes + simdjson::SIMDJSON_PADDING);
  if (env_parser_.allocate(max_frame_bytes) || payload_parser_.allocate(max_frame_bytes))
    throw std::bad_alloc();
}

FrameResult FrameDecoder::fail(GatewayDrop cause, std::string reason, const char* data,
                               std::size_t size) {
  FrameResult r;
  r.cause = cause;
  r.reason = std::move(reason);
  if (size) r.env = salvage_envelope(data, size);
  return r;
}

namespace {
enum Key : int { kSenderActor, kSenderEndpoint, kReceiver, kMessageType, kMessage, kKeys };
constexpr std::string_view kKeyNames[kKeys] = {"sender_actor", "sender_endpoint", "receiver",
                                               "message_type", "message"};
int key_index(std::string_view k) {
  for (int i = 0; i < kKeys; ++i)
    if (k == kKeyNames[i]) return i;
  return -1;
}
}  // namespace

FrameResult FrameDecoder::decode_envelope(std::size_t size, const wire::Registry& reg, void* out,
                                          PayloadState& payload) {
  const char* data = buf_.data();
  if (nests_deeper_than(data, size, max_depth_))
    return fail(GatewayDrop::too_deep,
                "JSON nesting deeper than " + std::to_string(max_depth_) + " levels", data, size);
  FrameResult r;
  const auto cleanup = [&] {
    if (payload.decoded) destroy_message(*r.type->info, out);
    payload = PayloadState{};
  };
  const auto json_error = [&](simdjson::error_code e) {
    cleanup();
    if (e == simdjson::UTF8_ERROR)
      return fail(GatewayDrop::invalid_utf8, "Frame is not valid UTF-8", data, size);
    if (e == simdjson::DEPTH_ERROR)
      return fail(GatewayDrop::too_deep, "JSON nesting too deep", data, size);
    return fail(GatewayDrop::bad_json, std::string("Malformed JSON: ") + simdjson::error_message(e),
                data, size);
  };
  od::document doc;
  if (auto e = env_parser_.iterate(data, size, buf_.size()).get(doc)) return json_error(e);
  od::object obj;
  if (auto e = doc.get_object().get(obj)) {
    if (e == simdjson::INCORRECT_TYPE)
      return fail(GatewayDrop::not_object, "Envelope must be a JSON object", nullptr, 0);
    return json_error(e);
  }

  Envelope& env = r.env;
  unsigned seen = 0;
  std::string_view unexpected, duplicate;
  int type_error = -1;  // first envelope key with a wrong type
  for (auto fr : obj) {
    od::field fl;
    if (auto e = std::move(fr).get(fl)) return json_error(e);
    std::string_view key;
    if (auto e = fl.unescaped_key().get(key)) return json_error(e);
    const int k = key_index(key);
    if (k < 0) {
      if (unexpected.empty()) unexpected = key;
      continue;
    }
    if (seen & (1u << k)) {
      if (duplicate.empty()) duplicate = kKeyNames[k];
      continue;
    }
    seen |= 1u << k;
    od::value v = fl.value();
    od::json_type jt;
    if (auto e = v.type().get(jt)) return json_error(e);
    switch (k) {
      case kSenderActor:
      case kSenderEndpoint: {
        if (jt == od::json_type::null) break;
        if (jt != od::json_type::string) {
          if (type_error < 0 || k < type_error) type_error = k;
          break;
        }
        std::string_view s;
        if (auto e = v.get_string().get(s)) return json_error(e);
        (k == kSenderActor ? env.sender_actor : env.sender_endpoint) = s;
        (k == kSenderActor ? env.has_sender_actor : env.has_sender_endpoint) = true;
        break;
      }
      case kReceiver:
      case kMessageType: {
        if (jt != od::json_type::string) {
          if (type_error < 0 || k < type_error) type_error = k;
          break;
        }
        std::string_view s;
        if (auto e = v.get_string().get(s)) return json_error(e);
        (k == kReceiver ? env.receiver : env.message_type) = s;
        (k == kReceiver ? env.has_receiver : env.has_message_type) = true;
        if (k == kMessageType) r.type = reg.find(s);
        break;
      }
      case kMessage: {
        if (jt != od::json_type::object) {
          if (type_error < 0 || k < type_error) type_error = k;
          break;
        }
        od::object m;
        if (auto e = v.get_object().get(m)) return json_error(e);
        if (r.type) {
          // message_type came first (the Python peer's order, and ours): decode in place.
          Status st = decode_object(*r.type, m, out);
          if (st.malformed) return fail(GatewayDrop::bad_json, std::move(st.reason), data, size);
          payload.decoded = st.ok;
          payload.failed = !st.ok;
          payload.reason = std::move(st.reason);
        } else {
          if (auto e = m.raw_json().get(payload.raw)) return json_error(e);
          payload.deferred = true;
        }
        break;
      }
    }
  }
  if (doc.current_location().error() != simdjson::OUT_OF_BOUNDS) {
    cleanup();
    return fail(GatewayDrop::bad_json, "Malformed JSON: trailing content after the envelope",
                data, size);
  }
  const auto envelope_error = [&](std::string reason) {
    cleanup();
    r.cause = GatewayDrop::bad_envelope;
    r.reason = std::move(reason);
    r.type = nullptr;
    return std::move(r);
  };
  for (int k = 0; k < kKeys; ++k)
    if (!(seen & (1u << k)))
      return envelope_error("Missing envelope key '" + std::string(kKeyNames[k]) + "'");
  if (!unexpected.empty())
    return envelope_error("Unexpected envelope key '" + std::string(unexpected) + "'");
  if (!duplicate.empty())
    return envelope_error("Duplicate envelope key '" + std::string(duplicate) + "'");
  if (type_error >= 0) {
    static constexpr const char* kWant[kKeys] = {"a string or null", "a string or null",
                                                 "a string", "a string", "an object"};
    return envelope_error("Envelope key '" + std::string(kKeyNames[type_error]) + "' must be " +
                          kWant[type_error]);
  }
  return r;
}

}  // namespace tern::gw
