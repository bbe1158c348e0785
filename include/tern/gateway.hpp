// Gateway: the actor that connects this process to others over the JSON-over-ZeroMQ wire
// protocol (docs/gateway.md). It binds one PULL endpoint, keeps one PUSH socket per peer
// endpoint, and turns remote actors into ordinary ActorRefs:
//
//   tern::wire::Registry reg;
//   reg.add<Ping>().add<Pong>();
//   auto gw = std::make_unique<tern::Gateway>(reg, tern::GatewayConfig{.bind = "tcp://127.0.0.1:5002"});
//   tern::ActorRef pong = gw->remote("pong", "tcp://localhost:5001");
//   mgr.manage("gateway", std::move(gw));   // a thread of its own, like any actor
//   ...  pong.send(Ping{1});                 // from any actor; replies come back as Pong
//
// Inbound frames go to the local actor named by `receiver` (expose(), else Manager::find);
// its sender() is a remote ref, so reply() travels back through the gateway carrying our
// actor name and endpoint. Every bad frame is counted by cause and, when the sender is
// known, answered with a Reject. ZeroMQ sockets are used only on the gateway's own thread.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <tern/actor.hpp>
#include <tern/actor_ref.hpp>
#include <tern/curve.hpp>
#include <tern/wire.hpp>

namespace tern {

/// Gateway settings, fixed at construction. Every resource a peer can make the gateway hold
/// has a bound here; docs/gateway.md ("Limits and worst-case memory") gives the formula.
struct GatewayConfig {
  /// The PULL endpoint to bind. Port `*` picks a free port ("tcp://127.0.0.1:*"). Default:
  /// loopback only. Binding every interface ("tcp://*:5001", "tcp://0.0.0.0:5001") lets any
  /// host on the network send frames: do it only on a trusted network (or with CURVE).
  std::string bind = "tcp://127.0.0.1:5001";
  /// What peers reply to (our sender_endpoint). Empty: the bound endpoint with a `*`,
  /// `0.0.0.0` or `[::]` host rewritten to `localhost`.
  std::string advertise;
  /// Where the gateway may connect to (remote(), replies, Rejects): patterns
  /// "tcp://HOST[:PORT]" or "ipc://PATH", where HOST and PATH may hold `*` (any run of
  /// characters, HOST compared without case) and a missing PORT or `*` means any port. Names
  /// are matched as text, never resolved. Default: any tcp:// host and port; ipc:// only
  /// when listed. An inbound sender whose endpoint no pattern allows is not remembered (its
  /// message is delivered without a sender: senders_refused) and never connected to.
  std::vector<std::string> allowed_endpoints{"tcp://*"};
  /// Longest actor name / message type name (sender_actor, receiver, message_type) and
  /// longest sender_endpoint accepted in a frame, in bytes. Longer: counted as
  /// name_too_long, Reject naming the limit when the sender fields are within the limits.
  std::size_t max_name_bytes = 256;
  std::size_t max_endpoint_bytes = 256;
  /// Larger frames are dropped unparsed (counted as too_large; Reject when a bounded scan
  /// of the frame finds the sender).
  std::size_t max_frame_bytes = 64 * 1024;
  /// libzmq's own frame limit (ZMQ_MAXMSGSIZE): it refuses larger frames before they are
  /// buffered and drops the connection that sent one (uncounted). 0 (default): max_frame_bytes
  /// + 4096, so a frame a little over max_frame_bytes still reaches us and gets its Reject.
  std::size_t socket_max_frame_bytes = 0;
  /// Deepest JSON nesting accepted in a frame (counted as too_deep beyond).
  std::uint32_t max_depth = 64;
  /// Remote actors remembered, twice over: up to max_remotes made by remote() (kept for the
  /// gateway's life; one more throws), and up to max_remotes learnt from inbound senders
  /// (least recently used one forgotten for a new one; a ref to a forgotten one is stale:
  /// sends through it are dropped, counted as stale_ref). At most 2^19.
  std::uint32_t max_remotes = 4096;
  /// PUSH sockets open at once; a new peer closes the least recently used one (its held
  /// frames are dropped, counted as peer_backlog_full). The gateway raises libzmq's socket
  /// limit (ZMQ_MAX_SOCKETS) to 2 * max_peers + 16 when that is more than the default.
  std::uint32_t max_peers = 64;
  /// A peer unused for this long (ms) is closed; one whose held frames made no progress
  /// for this long is closed and its frames dropped (peer_backlog_full). 0: never.
  std::uint32_t peer_idle_ms = 60'000;
  /// Frames held per peer while its ZeroMQ high-water mark is reached (sent in order when
  /// it drains); beyond it, or beyond max_backlog_bytes for all peers together, they are
  /// dropped (peer_backlog_full).
  std::uint32_t max_backlog = 10'000;
  std::size_t max_backlog_bytes = 16u << 20;
  /// Inbound connections open at once on the bound endpoint, watched by a small thread of
  /// the gateway's own on a ZeroMQ socket monitor; a newer connection beyond it is shut
  /// down (connections_refused). 0: no limit and no thread.
  std::uint32_t max_connections = 32;
  /// ZeroMQ high-water marks, in frames: outbound per peer (beyond it frames wait in the
  /// gateway's backlog, bounded in bytes), and inbound per connection (each connection may
  /// hold recv_hwm frames inside libzmq while the gateway is busy).
  int send_hwm = 100;
  int recv_hwm = 32;
  /// How long closing the gateway waits to flush queued outbound frames (ms). A peer closed
  /// for max_peers or peer_idle_ms is closed at once (no linger).
  int linger_ms = 1000;
  /// Messages handled per turn from the mailbox, and frames read per turn from the socket.
  std::uint32_t batch = 64;
  /// futex wake: idle turns (each a non-blocking look at the mailbox and the socket, one
  /// syscall) before the thread parks in poll() on the socket and the mailbox's eventfd
  /// together. 0 suits shared cores; on a dedicated core raise it, or give the gateway
  /// Wake::spin.
  std::uint32_t spin_turns = 0;
  /// true (default): when the receiving actor is idle (lock free, mailbox empty, not
  /// stopping) run its handler right on the gateway thread, under the actor's exclusion
  /// lock, instead of queueing it: two thread hand-offs less per request/reply. Its sends
  /// and replies to remote actors behind this gateway are encoded and handed to ZeroMQ right
  /// there (after what the gateway's mailbox already held), never queued to the gateway's
  /// own mailbox. The handler runs outside the actor's own ThreadConfig, and a slow handler
  /// delays inbound reading. false: always queue to the actor's own thread (pinned actors
  /// that must keep their state on their own core, handlers that block).
  bool inline_dispatch = true;
  /// Authentication and encryption (tern/curve.hpp, docs/gateway.md "Security"). Default:
  /// off, plain TCP, anyone who reaches the endpoint may send: for trusted networks only.
  /// On (`curve.key_file` set): the PULL socket is a CURVE server that admits only clients
  /// whose public key is on the allow-list, and every PUSH socket is a CURVE client.
  CurveConfig curve;
};

/// Why a message or frame was dropped (GatewayStats::dropped is indexed by it).
enum class GatewayDrop : std::uint8_t {
  // inbound frames
  empty,           ///< zero-byte frame
  too_large,       ///< over max_frame_bytes
  multipart,       ///< more than one ZeroMQ frame
  invalid_utf8,    ///< not UTF-8
  bad_json,        ///< malformed JSON
  too_deep,        ///< nesting over max_depth
  not_object,      ///< top level is not a JSON object
  bad_envelope,    ///< envelope key missing, extra, repeated or mistyped
  unknown_actor,   ///< no local actor of that name
  unknown_type,    ///< message_type not registered
  bad_payload,     ///< payload field missing, mistyped or out of range
  actor_stopped,   ///< the local actor is shutting down
  // outbound messages
  unregistered_type,  ///< a local actor sent a type the registry does not know
  encode_failed,      ///< a field JSON cannot carry (NaN, infinity, invalid UTF-8)
  bad_endpoint,       ///< the peer endpoint is not tcp:// or ipc://, or connect failed
  peer_backlog_full,  ///< max_backlog frames already waiting for that peer
  send_failed,        ///< ZeroMQ refused the frame
  // added with the limits (kept after the others: counters are indexed by value)
  name_too_long,      ///< inbound: an envelope name over max_name_bytes or endpoint over max_endpoint_bytes
  endpoint_refused,   ///< outbound: a Reject or reply to an endpoint allowed_endpoints refuses
  stale_ref,          ///< outbound: a ref to a remote actor the gateway has since forgotten
  count_
};
inline constexpr std::size_t kGatewayDropCauses = static_cast<std::size_t>(GatewayDrop::count_);
/// The cause's name ("bad_payload", ...), as printed and as docs/gateway.md lists it.
std::string_view to_string(GatewayDrop d) noexcept;

/// Gateway counters: a relaxed snapshot, any thread. Each counter is bumped just after the
/// hand-off it counts, so a snapshot can trail what a receiver has already seen by the frame
/// in flight: poll for the value you expect rather than reading it once.
struct GatewayStats {
  std::uint64_t frames_in = 0;          ///< ZeroMQ messages read (a multipart one counts once)
  std::uint64_t messages_in = 0;        ///< decoded and handed to a local actor
  std::uint64_t messages_out = 0;       ///< envelopes handed to ZeroMQ (Rejects included)
  std::uint64_t rejects_sent = 0;       ///< Reject envelopes we answered with
  std::uint64_t rejects_received = 0;   ///< Rejects delivered to our actors
  std::uint64_t inbound_waits = 0;      ///< times a full local mailbox paused reading
  std::uint64_t senders_untracked = 0;  ///< inbound senders not remembered (table full of pins)
  std::uint64_t senders_refused = 0;    ///< inbound senders whose endpoint is not allowed
  std::uint64_t remotes = 0;            ///< remote actors known now (made + learnt)
  std::uint64_t remotes_evicted = 0;    ///< learnt remote actors forgotten for newer ones
  std::uint64_t peers_open = 0;         ///< PUSH sockets open
  std::uint64_t peers_evicted = 0;      ///< PUSH sockets closed to respect max_peers
  std::uint64_t peers_idle_closed = 0;  ///< PUSH sockets closed after peer_idle_ms
  std::uint64_t backlog = 0;            ///< outbound frames waiting for a peer's HWM
  /// unknown envelope keys and payload fields skipped in decoded frames (tolerated)
  std::uint64_t keys_ignored = 0;
  std::uint64_t backlog_bytes = 0;      ///< their bytes
  std::uint64_t connections = 0;        ///< inbound connections open (0 when not watched)
  std::uint64_t connections_refused = 0;  ///< inbound connections shut down (max_connections)
  std::array<std::uint64_t, kGatewayDropCauses> dropped{};  ///< by GatewayDrop
  // CURVE (GatewayConfig::curve); both stay 0 when it is off.
  std::uint64_t auth_denied = 0;        ///< handshakes refused: client key not on the allow-list
  std::uint64_t handshakes_failed = 0;  ///< handshakes failed before authentication (no CURVE,
                                        ///< a wrong server key, not ZeroMQ)

  std::uint64_t drops(GatewayDrop d) const noexcept { return dropped[static_cast<std::size_t>(d)]; }
  std::uint64_t dropped_total() const noexcept;
};

/// The gateway actor. Manage it on a thread of its own (Manager::manage); it overrides the
/// thread's loop to wait on its socket and its mailbox at once.
class Gateway final : public Actor {
 public:
  /// Binds the PULL socket. Set-up; throws std::runtime_error naming the endpoint when the
  /// bind fails and std::invalid_argument for a bad config value. Keeps a copy of `registry`.
  Gateway(const wire::Registry& registry, GatewayConfig config);
  ~Gateway() override;

  /// A ref to actor `actor` in the process bound at `endpoint` ("tcp://host:5001"; a `*`
  /// or 0.0.0.0 host is rewritten to localhost). The same pair gives the same ref, valid
  /// for the gateway's life. Any thread; takes a lock and allocates the first time. Throws
  /// std::invalid_argument naming the endpoint for one that allowed_endpoints refuses (or a
  /// name or endpoint over its max_*_bytes), std::length_error past max_remotes.
  ActorRef remote(std::string_view actor, std::string_view endpoint);
  /// The same with CURVE on: `server_key` is the peer's public key (Z85, 40 characters; e.g.
  /// load_curve_public_key("pong.key")), which its PULL socket must prove. Throws
  /// std::invalid_argument for a bad key or when CURVE is off (and the two-argument form
  /// throws when CURVE is on). Replies to inbound senders need no call: they go to the key
  /// that sender authenticated with.
  ActorRef remote(std::string_view actor, std::string_view endpoint, std::string_view server_key);
  /// Makes `target` reachable from other processes as `name` (it shadows an actor of that
  /// name in the Manager). Without expose(), inbound messages go to Manager::find(receiver).
  /// Set-up only (before Manager::init()).
  void expose(std::string_view name, ActorRef target);

  /// Our endpoint as peers see it (sender_endpoint), e.g. "tcp://localhost:5002".
  std::string_view endpoint() const noexcept;
  /// Our CURVE public key (Z85), what peers pass to remote(); empty when CURVE is off.
  std::string_view public_key() const noexcept;
  /// The CURVE settings in use (GatewayConfig::curve: file names, no key). Any thread.
  const CurveConfig& curve_config() const noexcept;
  /// The endpoint actually bound, port resolved, e.g. "tcp://0.0.0.0:5002".
  std::string_view bound_endpoint() const noexcept;
  /// The registry copy in use.
  const wire::Registry& registry() const noexcept;

  /// Counters. Any thread. (Actor::stats() still gives this actor's mailbox counters.)
  GatewayStats stats() const noexcept;

  /// Handles one inbound frame exactly as if it had arrived on the PULL socket (decode,
  /// deliver or count and Reject). The gateway's own thread only, or before Manager::init()
  /// (tests and benchmarks). No allocation in the steady state.
  void process_frame(const void* data, std::size_t size) noexcept;

  struct Impl;  // lib/gateway/gateway.cpp

 private:
  void forward_remote(const MessageInfo& info, const void* msg, std::uint32_t peer,
                      ActorRef from) override;
  SendResult forward_direct(const MessageInfo& info, const void* msg, std::uint32_t peer,
                            ActorRef from) noexcept override;
  std::string_view remote_name(std::uint32_t peer) const noexcept override;
  ActorRef remote_with_key(std::string_view actor, std::string_view endpoint,
                           std::string_view server_key);
  void run_thread(Wake wake, std::uint32_t spin_limit,
                  std::atomic<std::uint32_t>* started) noexcept override;

  std::unique_ptr<Impl> impl_;
};

}  // namespace tern
