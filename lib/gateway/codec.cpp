// The gateway's JSON codec: payload fields by their descriptors, the envelope, and the
// best-effort salvage of a dropped frame's sender.
#include "codec.hpp"

#include <cfloat>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#include <algorithm>
#include <cstring>
#include <limits>
#include <utility>

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

/// A bare `NaN`, `Infinity` or `-Infinity` token (Python's json.dumps writes them; they are
/// not JSON, and simdjson refuses them): true and its value in `d`. Only asked on the slow
/// path, after a typed read failed.
bool nonfinite_token(od::value& v, double& d) {
  std::string_view t = v.raw_json_token();
  while (!t.empty() && (t.back() == ' ' || t.back() == '\n' || t.back() == '\r' || t.back() == '\t'))
    t.remove_suffix(1);
  if (t == "NaN") {
    d = std::numeric_limits<double>::quiet_NaN();
  } else if (t == "Infinity") {
    d = std::numeric_limits<double>::infinity();
  } else if (t == "-Infinity") {
    d = -std::numeric_limits<double>::infinity();
  } else {
    return false;
  }
  return true;
}

/// The JSON type of `v` on a slow path (a typed read failed): simdjson types a value by its
/// first byte, so a literal is read whole first (`nul` or `nan` is malformed JSON, not a
/// null; `tru` not a bool).
simdjson::error_code value_type(od::value& v, od::json_type& jt) {
  if (auto e = v.type().get(jt)) return e;
  if (jt == od::json_type::null) {
    bool null = false;
    if (auto e = v.is_null().get(null)) return e;
    if (!null) return simdjson::N_ATOM_ERROR;
  } else if (jt == od::json_type::boolean) {
    bool b;
    if (auto e = v.get_bool().get(b)) return e;
  }
  return simdjson::SUCCESS;
}

/// One decode step: ok, refused, or malformed JSON. The reason text goes to t_reason, so
/// the success path carries no string.
struct Status {
  bool ok = true;
  bool malformed = false;
};
thread_local std::string t_reason;  // why: written only on failure, read by the same call

Status bad(std::string reason) {
  t_reason = std::move(reason);
  return Status{false, false};
}
Status malformed(simdjson::error_code e) {
  t_reason = std::string("Malformed JSON: ") + simdjson::error_message(e);
  return Status{false, true};
}
PayloadStatus to_payload(Status st) {
  PayloadStatus p{st.ok, st.malformed, {}};
  if (!st.ok) p.reason.swap(t_reason);
  return p;
}

// ---- numbers ---------------------------------------------------------------------------------

bool is_float(Kind k) { return k == Kind::f32 || k == Kind::f64; }

/// FLT_MAX + half its ULP: a double at or beyond it rounds to infinity as a float.
constexpr double kFloatRoundsToInf = 0x1.ffffffp127;
static_assert(kFloatRoundsToInf > FLT_MAX);

template <class T>
void store(unsigned char* at, T v) {
  std::memcpy(at, &v, sizeof v);
}

/// Names the field (and element) in a reason. Built only when a reason is needed.
struct Where {
  const Field& f;
  const WireType& t;
  int element = -1;
  std::string text() const {
    std::string s = field_ref(f, t);
    if (element >= 0) s += " element " + std::to_string(element);
    return s;
  }
};

/// Stores `x` (already known to be an integer) as kind `k`, or refuses it as out of range.
Status store_integer(std::int64_t x, Kind k, unsigned char* at, const Where& w) {
  switch (k) {
    case Kind::i8:
      if (x >= INT8_MIN && x <= INT8_MAX) return store(at, static_cast<std::int8_t>(x)), Status{};
      break;
    case Kind::i16:
      if (x >= INT16_MIN && x <= INT16_MAX) return store(at, static_cast<std::int16_t>(x)), Status{};
      break;
    case Kind::i32:
      if (x >= INT32_MIN && x <= INT32_MAX) return store(at, static_cast<std::int32_t>(x)), Status{};
      break;
    case Kind::i64: return store(at, x), Status{};
    case Kind::u8:
      if (x >= 0 && x <= UINT8_MAX) return store(at, static_cast<std::uint8_t>(x)), Status{};
      break;
    case Kind::u16:
      if (x >= 0 && x <= UINT16_MAX) return store(at, static_cast<std::uint16_t>(x)), Status{};
      break;
    case Kind::u32:
      if (x >= 0 && x <= UINT32_MAX) return store(at, static_cast<std::uint32_t>(x)), Status{};
      break;
    default:
      if (x >= 0) return store(at, static_cast<std::uint64_t>(x)), Status{};
      break;
  }
  return bad(w.text() + " is out of range for " + std::string(wire::to_string(k)) + ": " +
             std::to_string(x));
}

/// The slow path: why `v` is not a number of kind `k`.
Status diagnose_number(od::value& v, Kind k, unsigned char* at, const Where& w) {
  double nf;
  if (nonfinite_token(v, nf)) {  // tolerated: NaN / Infinity / -Infinity fill a float
    if (k == Kind::f64) return store(at, nf), Status{};
    if (k == Kind::f32) return store(at, static_cast<float>(nf)), Status{};
    return bad(w.text() + " must be " + std::string(wire::to_string(k)) + ", got float");
  }
  od::json_type jt;
  if (auto e = value_type(v, jt)) return malformed(e);
  if (jt != od::json_type::number)
    return bad(w.text() + " must be " + std::string(wire::to_string(k)) + ", got " +
               json_type_text(jt, v));
  if (is_float(k)) {
    double d;
    if (v.get_double().get(d) || !std::isfinite(d))
      return bad(w.text() + " is out of range for " + std::string(wire::to_string(k)));
    std::string text;
    json::append_float(text, d);
    return bad(w.text() + " is out of range for float: " + text);
  }
  od::number_type nt;
  if (auto e = v.get_number_type().get(nt)) return malformed(e);
  if (nt == od::number_type::floating_point_number) {
    // Tolerated: an integral float (1.0, -3.0, 1e3: Python float arithmetic writes them)
    // fills an integer field within its range; a fractional one is refused.
    double d;
    if (v.get_double().get(d))  // beyond double's range (1e400)
      return bad(w.text() + " is out of range for " + std::string(wire::to_string(k)));
    if (std::trunc(d) != d)
      return bad(w.text() + " must be " + std::string(wire::to_string(k)) + ", got float");
    if (k == Kind::u64) {
      if (d >= 0 && d < 0x1p64) return store(at, static_cast<std::uint64_t>(d)), Status{};
    } else if (d >= -0x1p63 && d < 0x1p63) {
      return store_integer(static_cast<std::int64_t>(d), k, at, w);
    }
    return bad(w.text() + " is out of range for " + std::string(wire::to_string(k)));
  }
  if (nt == od::number_type::unsigned_integer) {  // >= 2^63
    std::uint64_t u;
    const std::string text = v.get_uint64().get(u) ? std::string("too large") : std::to_string(u);
    return bad(w.text() + " is out of range for " + std::string(wire::to_string(k)) + ": " + text);
  }
  std::int64_t x;
  if (auto e = v.get_int64().get(x)) return malformed(e);
  return store_integer(x, k, at, w);
}

/// Reads a JSON number into the slot at `at` as kind `k`: one typed read on the fast path.
Status decode_number(od::value& v, Kind k, unsigned char* at, const Where& w) {
  if (is_float(k)) {
    double d;
    if (!v.get_double().get(d) && std::isfinite(d)) [[likely]] {
      if (k == Kind::f64) return store(at, d), Status{};
      // Not FLT_MAX: the shortest text of FLT_MAX (3.4028235e38, our own encoding) is above
      // it and rounds back to it. Refused only what would round to infinity: from the
      // midpoint between FLT_MAX and 2^128 up.
      if (d < kFloatRoundsToInf && d > -kFloatRoundsToInf)
        return store(at, static_cast<float>(d)), Status{};
    }
  } else if (k == Kind::u64) {
    std::uint64_t u;
    if (!v.get_uint64().get(u)) [[likely]]
      return store(at, u), Status{};
  } else {
    std::int64_t x;
    if (!v.get_int64().get(x)) [[likely]]
      return store_integer(x, k, at, w);
  }
  return diagnose_number(v, k, at, w);
}

std::size_t kind_size(Kind k) {
  switch (k) {
    case Kind::i8: case Kind::u8: case Kind::boolean: return 1;
    case Kind::i16: case Kind::u16: return 2;
    case Kind::i32: case Kind::u32: case Kind::f32: return 4;
    default: return 8;
  }
}

/// Why `v` is not of the JSON type `want` ("string", "bool", ...).
Status wrong_type(od::value& v, const Where& w, const std::string& want) {
  double nf;
  if (nonfinite_token(v, nf)) return bad(w.text() + " must be " + want + ", got float");
  od::json_type jt;
  if (auto e = value_type(v, jt)) return malformed(e);
  return bad(w.text() + " must be " + want + ", got " + json_type_text(jt, v));
}

Status get_text(od::value& v, std::string_view& s, const Where& w) {
  const auto e = v.get_string().get(s);
  if (!e) [[likely]]
    return {};
  if (e == simdjson::INCORRECT_TYPE) return wrong_type(v, w, "string");
  return malformed(e);
}

Status decode_field(const Field& f, const WireType& t, od::value& v, unsigned char* base) {
  unsigned char* at = base + f.offset;
  const Where w{f, t};
  switch (f.kind) {
    case Kind::boolean: {
      bool b;
      const auto e = v.get_bool().get(b);
      if (e == simdjson::INCORRECT_TYPE) return wrong_type(v, w, "bool");
      if (e) return malformed(e);
      store(at, b);
      return {};
    }
    case Kind::string: {
      std::string_view s;
      if (Status st = get_text(v, s, w); !st.ok) return st;
      reinterpret_cast<std::string*>(at)->assign(s.data(), s.size());
      return {};
    }
    case Kind::chars: {
      std::string_view s;
      if (Status st = get_text(v, s, w); !st.ok) return st;
      if (s.size() > f.extent)
        return bad(w.text() + " is longer than " + std::to_string(f.extent) + " bytes");
      if (std::memchr(s.data(), '\0', s.size())) return bad(w.text() + " must not contain NUL");
      std::memcpy(at, s.data(), s.size());
      std::memset(at + s.size(), 0, f.extent - s.size());
      return {};
    }
    case Kind::array: {
      od::array arr;
      const auto e = v.get_array().get(arr);
      if (e == simdjson::INCORRECT_TYPE) return wrong_type(v, w, kind_text(f));
      if (e) return malformed(e);
      std::uint32_t i = 0;
      const std::size_t esz = kind_size(f.elem);
      for (auto er : arr) {
        od::value ev;
        if (auto e2 = std::move(er).get(ev)) return malformed(e2);
        if (i < f.extent) {
          const Where we{f, t, static_cast<int>(i)};
          if (Status st = decode_number(ev, f.elem, at + i * esz, we); !st.ok) return st;
        }
        ++i;  // past the extent: only counted, for the reason
      }
      if (i != f.extent)
        return bad(w.text() + " must be " + kind_text(f) + ", got " + std::to_string(i) +
                   (i == 1 ? " element" : " elements"));
      return {};
    }
    default:
      return decode_number(v, f.kind, at, w);
  }
}

/// Is the raw (quote-terminated) JSON string `raw` exactly `t`? `t` holds no quote or
/// backslash, so an escaped string never compares equal. The string's bytes and the padding
/// after the buffer make reading t.size() + 1 bytes safe.
inline bool raw_equals(const char* raw, std::string_view t) noexcept {
  for (std::size_t i = 0; i < t.size(); ++i)
    if (raw[i] != t[i]) return false;
  return raw[t.size()] == '"';
}

/// Is the raw key this field's name? One 8-byte compare for names up to 7 bytes (the
/// padded buffer makes the 8-byte read safe).
inline bool raw_equals(const char* raw, const Field& f) noexcept {
  if (f.mask8) {
    std::uint64_t w;
    std::memcpy(&w, raw, 8);
    return (w & f.mask8) == f.key8;
  }
  return raw_equals(raw, f.name);
}

/// True when a raw JSON key has escapes (then it must be unescaped before comparing).
bool raw_key_has_escape(od::raw_json_string raw) {
  for (const char* p = raw.raw(); *p != '"'; ++p)
    if (*p == '\\') return true;
  return false;
}

/// Index of the field whose name is this object key, or npos. Compares the raw key bytes
/// (no copy); a key with escapes is unescaped first.
std::size_t find_field(const WireType& t, od::field& fl, std::size_t hint, Status& st) {
  const od::raw_json_string raw = fl.key();
  const std::size_t n = t.fields.size();
  // Fields usually come in declaration order: try the one after the last match first.
  if (hint < n && raw_equals(raw.raw(), t.fields[hint])) [[likely]]
    return hint;
  for (std::size_t i = 0; i < n; ++i)
    if (raw_equals(raw.raw(), t.fields[i])) return i;
  if (!raw_key_has_escape(raw)) [[likely]]
    return std::string_view::npos;
  std::string_view key;
  if (auto e = fl.unescaped_key().get(key)) {
    st = malformed(e);
    return std::string_view::npos;
  }
  for (std::size_t i = 0; i < n; ++i)
    if (t.fields[i].name == key) return i;
  return std::string_view::npos;
}

/// Reads a value the type does not declare to its end, so malformed JSON inside it is
/// refused like anywhere else (On-Demand checks only what it reads; skipping counts
/// brackets). Nesting is bounded by max_depth, checked before parsing.
Status validate_skipped(od::value v) {
  double nf;
  if (nonfinite_token(v, nf)) return {};  // NaN / Infinity / -Infinity, as in a float field
  od::json_type jt;
  if (auto e = v.type().get(jt)) return malformed(e);
  switch (jt) {
    case od::json_type::object: {
      od::object o;
      if (auto e = v.get_object().get(o)) return malformed(e);
      for (auto fr : o) {
        od::field fl;
        if (auto e = std::move(fr).get(fl)) return malformed(e);
        if (Status st = validate_skipped(fl.value()); !st.ok) return st;
      }
      return {};
    }
    case od::json_type::array: {
      od::array a;
      if (auto e = v.get_array().get(a)) return malformed(e);
      for (auto er : a) {
        od::value ev;
        if (auto e = std::move(er).get(ev)) return malformed(e);
        if (Status st = validate_skipped(ev); !st.ok) return st;
      }
      return {};
    }
    case od::json_type::string: {
      std::string_view s;
      if (auto e = v.get_string().get(s)) return malformed(e);
      return {};
    }
    case od::json_type::boolean: {
      bool b;
      if (auto e = v.get_bool().get(b)) return malformed(e);
      return {};
    }
    case od::json_type::null: {
      bool null = false;
      if (auto e = v.is_null().get(null)) return malformed(e);
      return null ? Status{} : malformed(simdjson::N_ATOM_ERROR);
    }
    case od::json_type::number: {
      // why the grammar and not get_double(): a number of any size is valid JSON (1e400,
      // 2^70), and simdjson refuses those.
      std::string_view t = v.raw_json_token();
      while (!t.empty() && (t.back() == ' ' || t.back() == '\n' || t.back() == '\r' || t.back() == '\t')) t.remove_suffix(1);
      std::size_t i = 0;
      const auto digits = [&] {
        const std::size_t from = i;
        while (i < t.size() && t[i] >= '0' && t[i] <= '9') ++i;
        return i > from;
      };
      if (i < t.size() && t[i] == '-') ++i;
      if (i < t.size() && t[i] == '0') {
        ++i;
      } else if (!digits()) {
        return malformed(simdjson::NUMBER_ERROR);
      }
      if (i < t.size() && t[i] == '.' && (++i, !digits())) return malformed(simdjson::NUMBER_ERROR);
      if (i < t.size() && (t[i] == 'e' || t[i] == 'E')) {
        ++i;
        if (i < t.size() && (t[i] == '+' || t[i] == '-')) ++i;
        if (!digits()) return malformed(simdjson::NUMBER_ERROR);
      }
      return i == t.size() ? Status{} : malformed(simdjson::NUMBER_ERROR);
    }
  }
  return {};
}

Status decode_reject(od::object& obj, void* out, std::uint32_t& ignored) {
  static constexpr std::string_view kKeys[3] = {"message_type", "reason", "rejected_by"};
  // Tolerated: the Java peer writes the Reject's keys in camelCase.
  static constexpr std::string_view kCamel[3] = {"messageType", "reason", "rejectedBy"};
  bool seen[3] = {false, false, false};
  std::string parts[3];
  for (auto fr : obj) {
    od::field fl;
    if (auto e = std::move(fr).get(fl)) return malformed(e);
    std::string_view key;
    if (auto e = fl.unescaped_key().get(key)) return malformed(e);
    int i = 0;
    while (i < 3 && key != kKeys[i] && key != kCamel[i]) ++i;
    if (i == 3) {
      if (Status st = validate_skipped(fl.value()); !st.ok) return st;
      ++ignored;
      continue;
    }
    if (seen[i]) return bad("Duplicate field '" + std::string(kKeys[i]) + "' for Reject");
    seen[i] = true;
    od::value v = fl.value();
    std::string_view s;
    const auto e = v.get_string().get(s);
    if (e == simdjson::INCORRECT_TYPE) {
      double nf;
      if (nonfinite_token(v, nf))
        return bad("Field '" + std::string(kKeys[i]) + "' for Reject must be string, got float");
      od::json_type jt;
      if (auto e2 = value_type(v, jt)) return malformed(e2);
      return bad("Field '" + std::string(kKeys[i]) + "' for Reject must be string, got " +
                 json_type_text(jt, v));
    }
    if (e) return malformed(e);
    parts[i].assign(s);  // the parser's string buffer is reused by the next field
  }
  for (int i = 0; i < 3; ++i)
    if (!seen[i]) return bad("Missing field '" + std::string(kKeys[i]) + "' for Reject");
  ::new (out) Reject(parts[0], parts[1], parts[2]);
  return {};
}

/// Decodes a payload object; `ignored` counts the keys the type does not declare.
Status decode_object(const WireType& t, od::object& obj, void* out, std::uint32_t& ignored) {
  if (t.is_reject) return decode_reject(obj, out, ignored);
  t.construct(out);
  auto* base = static_cast<unsigned char*>(out);
  std::uint64_t seen = 0;
  std::size_t hint = 0;
  Status st;
  for (auto fr : obj) {
    od::field fl;
    if (auto e = std::move(fr).get(fl)) {
      st = malformed(e);
      break;
    }
    const std::size_t i = find_field(t, fl, hint, st);
    if (!st.ok) break;
    if (i == std::string_view::npos) {  // extra fields are ignored, once they are read
      st = validate_skipped(fl.value());
      if (!st.ok) break;
      ++ignored;
      continue;
    }
    hint = i + 1;
    const std::uint64_t bit = std::uint64_t{1} << i;
    if (seen & bit) {
      st = bad("Duplicate field '" + std::string(t.fields[i].name) + "' for " +
               std::string(t.name));
      break;
    }
    seen |= bit;
    od::value v = fl.value();
    st = decode_field(t.fields[i], t, v, base);
    if (!st.ok) break;
  }
  const std::uint64_t all = t.fields.size() == 64 ? ~std::uint64_t{0}
                                                   : (std::uint64_t{1} << t.fields.size()) - 1;
  if (st.ok && seen != all) {
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

DecodeStatus to_public(Status st) {
  DecodeStatus d{st.ok, {}};
  if (!st.ok) d.reason.swap(t_reason);
  return d;
}

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
  std::uint32_t ignored = 0;
  return to_public(decode_object(t, obj, out, ignored));
}

PayloadStatus decode_payload_text(od::parser& parser, const WireType& t, std::string_view json,
                                  std::size_t capacity, void* out, std::uint32_t* ignored) {
  std::uint32_t none = 0;
  od::document doc;
  if (auto e = parser.iterate(json.data(), json.size(), capacity).get(doc))
    return to_payload(malformed(e));
  od::object obj;
  if (auto e = doc.get_object().get(obj)) return to_payload(malformed(e));
  const Status st = decode_object(t, obj, out, ignored ? *ignored : none);
  if (st.ok && doc.current_location().error() != simdjson::OUT_OF_BOUNDS) {
    destroy_message(*t.info, out);
    return PayloadStatus{false, true, "Malformed JSON: trailing content"};
  }
  return to_payload(st);
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

namespace {
/// Bytes that are '{' or '[' (0x7B, 0x5B: the same but for bit 0x20).
std::size_t count_opening(const char* p, std::size_t n) noexcept {
  std::size_t count = 0, i = 0;
#if defined(__SSE2__)
  const __m128i bit = _mm_set1_epi8(0x20), open = _mm_set1_epi8(0x7B);
  while (i + 16 <= n) {
    // why blocks of 255: the per-byte counters are 8 bits wide.
    __m128i acc = _mm_setzero_si128();
    const std::size_t end = i + 16 * std::min<std::size_t>(255, (n - i) / 16);
    for (; i < end; i += 16) {
      const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i));
      acc = _mm_sub_epi8(acc, _mm_cmpeq_epi8(_mm_or_si128(v, bit), open));
    }
    const __m128i sums = _mm_sad_epu8(acc, _mm_setzero_si128());
    count += static_cast<std::size_t>(_mm_cvtsi128_si32(sums)) +
             static_cast<std::size_t>(_mm_extract_epi16(sums, 4));
  }
#endif
  for (; i < n; ++i) count += (static_cast<unsigned char>(p[i]) | 0x20) == 0x7B;
  return count;
}
}  // namespace

bool nests_deeper_than(const char* p, std::size_t n, std::uint32_t max_depth) noexcept {
  // Cheap pre-check: fewer opening brackets than the limit cannot nest deeper.
  if (count_opening(p, n) <= max_depth) return false;
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

FrameDecoder::FrameDecoder(std::size_t max_frame_bytes, std::uint32_t max_depth,
                           std::size_t max_name_bytes, std::size_t max_endpoint_bytes)
    : max_frame_(max_frame_bytes),
      max_depth_(max_depth),
      max_name_(max_name_bytes),
      max_endpoint_(max_endpoint_bytes) {
  buf_.resize(max_frame_bytes + simdjson::SIMDJSON_PADDING);
  if (env_parser_.allocate(max_frame_bytes) || payload_parser_.allocate(max_frame_bytes))
    throw std::bad_alloc();
}

bool FrameDecoder::name_over_limit() {
  const std::pair<std::string_view, std::string_view> keys[] = {
      {"sender_actor", r_.env.sender_actor},
      {"sender_endpoint", r_.env.sender_endpoint},
      {"receiver", r_.env.receiver},
      {"message_type", r_.env.message_type}};
  for (const auto& [key, value] : keys) {
    const std::size_t limit = key == "sender_endpoint" ? max_endpoint_ : max_name_;
    if (value.size() <= limit) continue;
    r_.cause = GatewayDrop::name_too_long;
    r_.reason.append("Envelope key '").append(key).append("' is longer than the limit of ");
    r_.reason.append(std::to_string(limit)).append(" bytes");
    return true;
  }
  return false;
}

bool FrameDecoder::fail(GatewayDrop cause, std::string reason, const char* data,
                        std::size_t size) {
  r_.cause = cause;
  r_.reason = std::move(reason);
  r_.type = nullptr;
  r_.env = size ? salvage_envelope(data, size) : Envelope{};
  return false;
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
/// The envelope key this raw (still escaped) key is, or -1: compares bytes, no copy.
int raw_key_index(od::raw_json_string raw) {
  const char* k = raw.raw();
  // Constant-size compares of the key and its closing quote (inlined as word compares; the
  // padded buffer makes reading past a shorter key safe).
  switch (k[0]) {
    case 's':
      if (std::memcmp(k, "sender_actor\"", 13) == 0) return kSenderActor;
      if (std::memcmp(k, "sender_endpoint\"", 16) == 0) return kSenderEndpoint;
      return -1;
    case 'r': return std::memcmp(k, "receiver\"", 9) == 0 ? kReceiver : -1;
    case 'm':
      if (std::memcmp(k, "message\"", 8) == 0) return kMessage;
      if (std::memcmp(k, "message_type\"", 13) == 0) return kMessageType;
      return -1;
    default: return -1;
  }
}
}  // namespace

bool FrameDecoder::decode_envelope(std::size_t size, const wire::Registry& reg, void* out) {
  const char* data = buf_.data();
  if (nests_deeper_than(data, size, max_depth_))
    return fail(GatewayDrop::too_deep,
                "JSON nesting deeper than " + std::to_string(max_depth_) + " levels", data, size);
  FrameResult& r = r_;
  PayloadState& payload = payload_;
  const auto cleanup = [&] {
    if (payload.decoded) destroy_message(*r.type->info, out);
    payload.decoded = payload.failed = payload.deferred = false;
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
  std::string_view duplicate;
  int type_error = -1;  // first envelope key with a wrong type
  const auto mistyped = [&](int k) {
    if (type_error < 0 || k < type_error) type_error = k;
  };
  for (auto fr : obj) {
    od::field fl;
    if (auto e = std::move(fr).get(fl)) return json_error(e);
    int k = raw_key_index(fl.key());
    if (k < 0) [[unlikely]] {
      std::string_view key;  // unknown, or known but written with escapes
      if (auto e = fl.unescaped_key().get(key)) return json_error(e);
      k = key_index(key);
      if (k < 0) {
        // Tolerated: an unknown envelope key is ignored (counted), once its value is read.
        if (Status st = validate_skipped(fl.value()); !st.ok) {
          cleanup();
          return fail(GatewayDrop::bad_json, std::move(t_reason), data, size);
        }
        ++r.ignored;
        continue;
      }
    }
    if (seen & (1u << k)) {
      if (duplicate.empty()) duplicate = kKeyNames[k];
      continue;
    }
    seen |= 1u << k;
    od::value v = fl.value();
    if (k == kMessage) {
      od::object m;
      const auto e = v.get_object().get(m);
      if (e == simdjson::INCORRECT_TYPE) {
        mistyped(k);
        continue;
      }
      if (e) return json_error(e);
      if (r.type) {
        // message_type came first (the Python peer's order, and ours): decode in place.
        const Status st = decode_object(*r.type, m, out, r.ignored);
        if (st.malformed) return fail(GatewayDrop::bad_json, std::move(t_reason), data, size);
        payload.decoded = st.ok;
        payload.failed = !st.ok;
        if (!st.ok) payload.reason.swap(t_reason);
      } else {
        if (auto e2 = m.raw_json().get(payload.raw)) return json_error(e2);
        payload.deferred = true;
      }
      continue;
    }
    std::string_view str;
    const auto e = v.get_string().get(str);
    if (e == simdjson::INCORRECT_TYPE) {
      bool null = false;
      if (k == kSenderActor || k == kSenderEndpoint) {
        if (auto e2 = v.is_null().get(null)) return json_error(e2);
      }
      if (!null) mistyped(k);
      continue;
    }
    if (e) return json_error(e);
    switch (k) {
      case kSenderActor:
        env.sender_actor = str;
        env.has_sender_actor = true;
        break;
      case kSenderEndpoint:
        env.sender_endpoint = str;
        env.has_sender_endpoint = true;
        break;
      case kReceiver:
        env.receiver = str;
        env.has_receiver = true;
        break;
      default:
        env.message_type = str;
        env.has_message_type = true;
        if (last_type_ && same(last_type_->name, str)) [[likely]] {
          r.type = last_type_;
        } else {
          r.type = reg.find(str);
          if (r.type) last_type_ = r.type;
        }
        break;
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
    return false;
  };
  // Tolerated: missing sender keys read as null (the Java peer omits null keys).
  for (int k = kReceiver; k < kKeys; ++k)
    if (!(seen & (1u << k)))
      return envelope_error("Missing envelope key '" + std::string(kKeyNames[k]) + "'");
  if (!duplicate.empty())
    return envelope_error("Duplicate envelope key '" + std::string(duplicate) + "'");
  if (type_error >= 0) {
    static constexpr const char* kWant[kKeys] = {"a string or null", "a string or null",
                                                 "a string", "a string", "an object"};
    return envelope_error("Envelope key '" + std::string(kKeyNames[type_error]) + "' must be " +
                          kWant[type_error]);
  }
  return true;
}

}  // namespace tern::gw
