// Private: the gateway's JSON codec. Inbound frames are decoded with simdjson On-Demand (a
// reusable parser and padded buffer, no DOM); outbound JSON is written by json_writer.hpp.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include <simdjson.h>

#include <tern/gateway.hpp>
#include <tern/wire.hpp>

#include "json_writer.hpp"

namespace tern::gw {

namespace od = simdjson::ondemand;

/// String equality for the per-frame cache checks: GCC leaves string_view::compare out of
/// line there (a call and a three-way result per check); this is a length test and memcmp.
inline bool same(std::string_view a, std::string_view b) noexcept {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size()) == 0);
}

/// Writes the flat JSON object of `msg`'s fields. False, with `error` (if given) naming the
/// field, when a value cannot be carried (NaN/infinity, invalid UTF-8). Instantiated for
/// std::string and Buffer.
template <class Buf>
bool encode_payload(const wire::WireType& t, const void* msg, Buf& out, std::string* error);

/// Decodes `obj` as type `t` into `out` (a default-constructed message is built there first
/// and destroyed again on failure). Extra fields are ignored (once their values are read).
wire::DecodeStatus decode_payload(const wire::WireType& t, od::object obj, void* out);

/// A payload decode: ok, refused with a reason naming the field, or malformed JSON.
struct PayloadStatus {
  bool ok = true;
  bool malformed = false;  ///< the JSON itself is broken (not the payload's shape)
  std::string reason;
};

/// Decodes a payload held in a padded buffer: `json` must have SIMDJSON_PADDING readable
/// bytes after it (capacity counts from json.data()). Adds the keys the type does not
/// declare (ignored) to `*ignored` when given.
PayloadStatus decode_payload_text(od::parser& parser, const wire::WireType& t,
                                  std::string_view json, std::size_t capacity, void* out,
                                  std::uint32_t* ignored = nullptr);

/// The envelope's top-level string fields. Views point into the decoder's buffers and stay
/// valid until the next decode.
struct Envelope {
  std::string_view sender_actor, sender_endpoint, receiver, message_type;
  bool has_sender_actor = false, has_sender_endpoint = false;  ///< non-null strings
  bool has_receiver = false, has_message_type = false;
  /// Both sender fields are non-empty strings: a reply or Reject can be sent.
  bool replyable() const noexcept {
    return has_sender_actor && has_sender_endpoint && !sender_actor.empty() &&
           !sender_endpoint.empty();
  }
};

/// Outcome of decoding one frame.
struct FrameResult {
  GatewayDrop cause = GatewayDrop::count_;  ///< count_: decoded fine
  std::string reason;                       ///< the Reject reason when cause != count_
  Envelope env;                             ///< what could be read (also on failure)
  const wire::WireType* type = nullptr;     ///< the registered type (decoded fine)
  std::uint32_t ignored = 0;  ///< unknown envelope keys and payload fields skipped (tolerated)
  bool ok() const noexcept { return cause == GatewayDrop::count_; }
};

/// Best effort on a frame that is being dropped anyway: the top-level string values of the
/// envelope keys, found by a bounded byte scan (no parse, no allocation), each checked to be
/// UTF-8 and escape-free. Used to address a Reject.
Envelope salvage_envelope(const char* data, std::size_t size) noexcept;

/// True when the JSON text nests deeper than `max_depth` (strings are skipped properly).
bool nests_deeper_than(const char* data, std::size_t size, std::uint32_t max_depth) noexcept;

/// Where the payload stands after the envelope pass.
struct PayloadState {
  bool decoded = false;   ///< decoded in place: a message is constructed at `out`
  bool failed = false;    ///< decoded in place and refused: `reason` says why
  bool deferred = false;  ///< came before message_type: `raw` holds its JSON text
  std::string reason;
  std::string_view raw;
};

/// Decodes frames. One per gateway thread: owns the parsers and the padded buffer.
class FrameDecoder {
 public:
  /// `max_name_bytes` bounds sender_actor, receiver and message_type, `max_endpoint_bytes`
  /// sender_endpoint (name_too_long beyond, judged right after the envelope keys).
  FrameDecoder(std::size_t max_frame_bytes, std::uint32_t max_depth,
               std::size_t max_name_bytes = SIZE_MAX, std::size_t max_endpoint_bytes = SIZE_MAX);

  /// Checks and decodes `data` as an envelope and, when its type is registered in `reg`,
  /// the payload into `out` (kMaxMessageBytes, aligned). On ok a message was constructed
  /// at `out` (the caller moves it on or destroys it). `resolve_receiver` is asked
  /// whether the receiver exists before the payload is judged (the protocol's order of
  /// reasons: receiver, then type, then payload).
  template <class ReceiverKnown>
  const FrameResult& decode(const char* data, std::size_t size, const wire::Registry& reg,
                            void* out, ReceiverKnown&& receiver_known);

 private:
  /// The envelope pass. False: r_ holds the failure (nothing is constructed at `out`).
  bool decode_envelope(std::size_t size, const wire::Registry& reg, void* out);
  /// Records a frame-level failure (and the sender a byte scan can find). Returns false.
  bool fail(GatewayDrop cause, std::string reason, const char* data, std::size_t size);

  /// Names the first envelope string over its limit (r_ holds the failure). False: none.
  bool name_over_limit();

  std::size_t max_frame_;
  std::uint32_t max_depth_;
  std::size_t max_name_, max_endpoint_;
  Buffer buf_;            ///< the padded copy of the frame being decoded
  od::parser env_parser_;
  od::parser payload_parser_;  ///< a payload that came before message_type, parsed second
  const wire::WireType* last_type_ = nullptr;  ///< the last type seen: most frames repeat it
  // why members: reused frame after frame, so their strings keep their capacity.
  FrameResult r_;
  PayloadState payload_;
};

// ---- template -------------------------------------------------------------------------------

template <class ReceiverKnown>
const FrameResult& FrameDecoder::decode(const char* data, std::size_t size,
                                        const wire::Registry& reg, void* out,
                                        ReceiverKnown&& receiver_known) {
  r_.cause = GatewayDrop::count_;
  r_.reason.clear();
  r_.env = Envelope{};
  r_.type = nullptr;
  r_.ignored = 0;
  payload_.decoded = payload_.failed = payload_.deferred = false;
  if (size == 0) {
    fail(GatewayDrop::empty, "Empty frame", data, 0);
    return r_;
  }
  if (size > max_frame_) {
    fail(GatewayDrop::too_large,
         "Frame of " + std::to_string(size) + " bytes exceeds the limit of " +
             std::to_string(max_frame_) + " bytes",
         data, size);
    return r_;
  }
  // why copy: simdjson reads up to SIMDJSON_PADDING bytes past the end; ZeroMQ's buffer
  // has no such slack. The copy is the "padded buffer", sized once for max_frame_bytes.
  // Zeroed padding keeps the error reported for a truncated frame the same every time.
  std::memcpy(buf_.data(), data, size);
  std::memset(buf_.data() + size, 0, simdjson::SIMDJSON_PADDING);
  if (!decode_envelope(size, reg, out)) return r_;  // nothing is left constructed at `out`
  if (r_.env.sender_actor.size() > max_name_ || r_.env.receiver.size() > max_name_ ||
      r_.env.message_type.size() > max_name_ || r_.env.sender_endpoint.size() > max_endpoint_)
      [[unlikely]] {
    if (payload_.decoded) destroy_message(*r_.type->info, out);
    name_over_limit();
    return r_;
  }
  if (!receiver_known(r_.env.receiver)) {
    if (payload_.decoded) destroy_message(*r_.type->info, out);
    r_.cause = GatewayDrop::unknown_actor;
    r_.reason.append("Actor '").append(r_.env.receiver).append("' not found");
    return r_;
  }
  if (!r_.type) {
    r_.cause = GatewayDrop::unknown_type;
    r_.reason.append("Unknown message type: ").append(r_.env.message_type);
    return r_;
  }
  if (payload_.failed) {
    r_.cause = GatewayDrop::bad_payload;
    r_.reason.swap(payload_.reason);
  } else if (payload_.deferred) {
    const std::size_t offset = static_cast<std::size_t>(payload_.raw.data() - buf_.data());
    PayloadStatus st =
        decode_payload_text(payload_parser_, *r_.type, payload_.raw, buf_.size() - offset, out,
                            &r_.ignored);
    if (!st.ok) {
      r_.cause = st.malformed ? GatewayDrop::bad_json : GatewayDrop::bad_payload;
      r_.reason.swap(st.reason);
    }
  }
  return r_;
}

}  // namespace tern::gw
