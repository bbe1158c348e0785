// Private: a small JSON writer that appends to a string-like buffer (no DOM). Strings are
// escaped per RFC 8259; numbers use std::to_chars (shortest round-trip form for floats).
#pragma once
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include <mimalloc.h>

namespace tern::gw {

/// The gateway's heap buffers: mimalloc-backed, grown once, reused for every frame.
using Buffer = std::basic_string<char, std::char_traits<char>, mi_stl_allocator<char>>;

namespace json {

/// True for bytes that cannot appear raw inside a JSON string.
inline bool needs_escape(unsigned char c) noexcept { return c < 0x20 || c == '"' || c == '\\'; }

/// Appends `s` as a quoted, escaped JSON string. `s` must be UTF-8 (callers check).
template <class Buf>
void append_string(Buf& out, std::string_view s) {
  out.push_back('"');
  std::size_t start = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (!needs_escape(c)) [[likely]]
      continue;
    out.append(s.data() + start, i - start);
    start = i + 1;
    switch (c) {
      case '"': out.append("\\\"", 2); break;
      case '\\': out.append("\\\\", 2); break;
      case '\n': out.append("\\n", 2); break;
      case '\r': out.append("\\r", 2); break;
      case '\t': out.append("\\t", 2); break;
      case '\b': out.append("\\b", 2); break;
      case '\f': out.append("\\f", 2); break;
      default: {
        static constexpr char kHex[] = "0123456789abcdef";
        const char esc[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 15]};
        out.append(esc, 6);
      }
    }
  }
  out.append(s.data() + start, s.size() - start);
  out.push_back('"');
}

/// Appends `key` as `"key":` (keys are escaped too: names come from users).
template <class Buf>
void append_key(Buf& out, std::string_view key) {
  append_string(out, key);
  out.push_back(':');
}

template <class Buf, class Int>
void append_int(Buf& out, Int v) {
  char tmp[24];
  const auto r = std::to_chars(tmp, tmp + sizeof tmp, v);
  out.append(tmp, static_cast<std::size_t>(r.ptr - tmp));
}

/// Appends a finite float or double in its shortest round-trip form, with ".0" added to
/// integral values so dynamically typed peers keep it a float. False (nothing written) for
/// NaN and infinity, which JSON cannot carry.
template <class Buf, class Float>
bool append_float(Buf& out, Float v) {
  if (!std::isfinite(v)) return false;
  char tmp[40];
  const auto r = std::to_chars(tmp, tmp + sizeof tmp, v);
  const std::size_t n = static_cast<std::size_t>(r.ptr - tmp);
  out.append(tmp, n);
  if (std::memchr(tmp, '.', n) == nullptr && std::memchr(tmp, 'e', n) == nullptr)
    out.append(".0", 2);
  return true;
}

template <class Buf>
void append_bool(Buf& out, bool v) {
  if (v)
    out.append("true", 4);
  else
    out.append("false", 5);
}

}  // namespace json
}  // namespace tern::gw
