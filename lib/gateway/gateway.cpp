// The gateway actor: ZeroMQ transport (one PULL, one PUSH per peer), the remote-actor
// table, inbound delivery with Rejects, outbound encoding, and its own thread loop that
// waits on the socket and the mailbox's eventfd together.
#include <tern/gateway.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <deque>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <unordered_map>
#include <vector>

#include <tern/manager.hpp>

#include "codec.hpp"
#include "runtime.hpp"
#include "security.hpp"

namespace tern {

using detail::Runtime;

std::string_view to_string(GatewayDrop d) noexcept {
  switch (d) {
    case GatewayDrop::empty: return "empty";
    case GatewayDrop::too_large: return "too_large";
    case GatewayDrop::multipart: return "multipart";
    case GatewayDrop::invalid_utf8: return "invalid_utf8";
    case GatewayDrop::bad_json: return "bad_json";
    case GatewayDrop::too_deep: return "too_deep";
    case GatewayDrop::not_object: return "not_object";
    case GatewayDrop::bad_envelope: return "bad_envelope";
    case GatewayDrop::unknown_actor: return "unknown_actor";
    case GatewayDrop::unknown_type: return "unknown_type";
    case GatewayDrop::bad_payload: return "bad_payload";
    case GatewayDrop::actor_stopped: return "actor_stopped";
    case GatewayDrop::unregistered_type: return "unregistered_type";
    case GatewayDrop::encode_failed: return "encode_failed";
    case GatewayDrop::bad_endpoint: return "bad_endpoint";
    case GatewayDrop::peer_backlog_full: return "peer_backlog_full";
    case GatewayDrop::send_failed: return "send_failed";
    case GatewayDrop::name_too_long: return "name_too_long";
    case GatewayDrop::endpoint_refused: return "endpoint_refused";
    case GatewayDrop::stale_ref: return "stale_ref";
    case GatewayDrop::count_: break;
  }
  return "?";
}

std::uint64_t GatewayStats::dropped_total() const noexcept {
  std::uint64_t n = 0;
  for (std::uint64_t d : dropped) n += d;
  return n;
}

namespace {

struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept {
    return std::hash<std::string_view>{}(s);
  }
};
template <class V>
using StringMap = std::unordered_map<std::string, V, StringHash, std::equal_to<>>;

/// The address to connect to: a bind host (`*`, 0.0.0.0, [::]) becomes localhost.
std::string connect_address(std::string_view endpoint) {
  for (std::string_view wild : {"tcp://*:", "tcp://0.0.0.0:", "tcp://[::]:"}) {
    if (endpoint.substr(0, wild.size()) == wild)
      return "tcp://localhost:" + std::string(endpoint.substr(wild.size()));
  }
  return std::string(endpoint);
}

/// Single-writer counter (the gateway thread), read by anyone.
inline void bump(std::atomic<std::uint64_t>& c, std::uint64_t n = 1) noexcept {
  c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

std::string zmq_error(const char* what, std::string_view value) {
  return std::string("tern: gateway: ") + what + " '" + std::string(value) +
         "': " + zmq_strerror(zmq_errno());
}

/// Milliseconds of a coarse monotonic clock (vDSO: no syscall; a few ms of resolution).
std::uint64_t coarse_now_ms() noexcept {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000u +
         static_cast<std::uint64_t>(ts.tv_nsec) / 1'000'000u;
}

char lower(char c) noexcept { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

/// `*` matches any run of characters (none included); everything else matches itself.
bool glob_match(std::string_view pat, std::string_view text, bool nocase) noexcept {
  std::size_t p = 0, t = 0, star = std::string_view::npos, mark = 0;
  while (t < text.size()) {
    if (p < pat.size() && pat[p] == '*') {
      star = p++;
      mark = t;
    } else if (p < pat.size() &&
               (nocase ? lower(pat[p]) == lower(text[t]) : pat[p] == text[t])) {
      ++p;
      ++t;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      t = ++mark;
    } else {
      return false;
    }
  }
  while (p < pat.size() && pat[p] == '*') ++p;
  return p == pat.size();
}

/// An endpoint split for the allow-list: tcp://HOST:PORT or ipc://PATH.
struct SplitEndpoint {
  bool ipc = false;
  std::string_view host;  ///< tcp host (IPv6 with its brackets) or ipc path
  long port = -1;         ///< tcp port; -1 in a rule: any
};

bool host_char(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         c == '.' || c == '-' || c == '_';
}

/// Splits a connect endpoint; false when it is not a plain tcp://HOST:PORT (no source
/// address, a host of letters, digits, '.', '-', '_' or a bracketed IPv6 address, a
/// numeric port 1..65535) or a non-empty ipc:// path.
bool split_endpoint(std::string_view e, SplitEndpoint& out) noexcept {
  if (e.substr(0, 6) == "ipc://") {
    out.ipc = true;
    out.host = e.substr(6);
    return !out.host.empty() && out.host.find('\0') == std::string_view::npos;
  }
  if (e.substr(0, 6) != "tcp://") return false;
  const std::string_view rest = e.substr(6);
  const std::size_t colon = rest.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == rest.size()) return false;
  out.ipc = false;
  out.host = rest.substr(0, colon);
  if (out.host.front() == '[') {
    if (out.host.back() != ']' || out.host.size() < 3) return false;
    for (char c : out.host.substr(1, out.host.size() - 2))
      if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') ||
            c == ':' || c == '.'))
        return false;
  } else {
    for (char c : out.host)
      if (!host_char(c)) return false;
  }
  long port = 0;
  for (char c : rest.substr(colon + 1)) {
    if (c < '0' || c > '9' || port > 65535) return false;
    port = port * 10 + (c - '0');
  }
  if (port < 1 || port > 65535) return false;
  out.port = port;
  return true;
}

struct EndpointRule {
  bool ipc = false;
  std::string host;  ///< glob (tcp host, or ipc path)
  long port = -1;    ///< -1: any
};

EndpointRule parse_rule(const std::string& pattern) {
  EndpointRule r;
  const auto bad = [&](const char* why) {
    return std::invalid_argument("tern: gateway: allowed_endpoints pattern '" + pattern +
                                 "': " + why);
  };
  std::string_view p(pattern);
  if (p.substr(0, 6) == "ipc://") {
    r.ipc = true;
    r.host = std::string(p.substr(6));
    if (r.host.empty()) throw bad("an ipc:// pattern needs a path (or '*')");
    return r;
  }
  if (p.substr(0, 6) != "tcp://")
    throw bad("must start with tcp:// or ipc://");
  p.remove_prefix(6);
  // a port is what follows the last ':' outside brackets
  const std::size_t close = p.rfind(']');
  const std::size_t colon = p.rfind(':');
  if (colon != std::string_view::npos && (close == std::string_view::npos || colon > close)) {
    const std::string_view port = p.substr(colon + 1);
    p = p.substr(0, colon);
    if (port != "*") {
      long v = 0;
      for (char c : port) {
        if (c < '0' || c > '9' || v > 65535) throw bad("the port must be a number or '*'");
        v = v * 10 + (c - '0');
      }
      if (port.empty() || v < 1 || v > 65535) throw bad("the port must be 1..65535 or '*'");
      r.port = v;
    }
  }
  if (p.empty()) throw bad("a tcp:// pattern needs a host (or '*')");
  r.host = std::string(p);
  return r;
}

/// Intrusive least-recently-used list over indices 1..n (0 is the sentinel).
class LruList {
 public:
  void init(std::uint32_t n) {
    prev_.assign(n + 1, kOut);
    next_.assign(n + 1, kOut);
    prev_[0] = next_[0] = 0;
  }
  bool contains(std::uint32_t i) const noexcept { return prev_[i] != kOut; }
  void push_front(std::uint32_t i) noexcept {
    next_[i] = next_[0];
    prev_[i] = 0;
    prev_[next_[0]] = i;
    next_[0] = i;
  }
  void remove(std::uint32_t i) noexcept {
    if (!contains(i)) return;
    next_[prev_[i]] = next_[i];
    prev_[next_[i]] = prev_[i];
    prev_[i] = next_[i] = kOut;
  }
  void touch(std::uint32_t i) noexcept {
    if (next_[0] == i) return;  // already the most recent
    remove(i);
    push_front(i);
  }
  /// The least recently used index, 0 when empty.
  std::uint32_t back() const noexcept { return prev_[0]; }

 private:
  static constexpr std::uint32_t kOut = 0xFFFFFFFFu;
  std::vector<std::uint32_t> prev_, next_;
};

}  // namespace

struct Gateway::Impl {
  /// A remote actor. Immutable once published; read by any thread through remote_at().
  struct Remote {
    std::uint32_t handle = 0;  ///< what ActorRef::remote_index() holds: generation | index
    std::string name;          ///< remote actor name
    std::string endpoint;      ///< its endpoint as given (what relayed senders carry)
    std::string connect;       ///< address to connect to
    std::string server_key;    ///< CURVE: the peer's public key (Z85); empty when off
  };
  struct Peer {
    void* sock = nullptr;  ///< nullptr: the slot is free
    std::string addr;
    std::uint32_t gen = 0;  ///< bumped each time the slot is freed: remote_peer entries check it
    std::uint64_t last_used_ms = 0;
    std::uint64_t last_progress_ms = 0;  ///< held frames last moved (or started waiting)
    std::deque<gw::Buffer> backlog;      ///< frames waiting for the high-water mark to drain
    std::size_t backlog_bytes = 0;
    std::string server_key;  ///< CURVE: the public key the peer must prove (empty when off)
  };

  /// peer_by_addr's key: the address, with CURVE also the server key (one socket per pair).
  static std::string peer_key(std::string_view addr, std::string_view server_key) {
    std::string k(addr);
    if (!server_key.empty()) k.append(1, '\0').append(server_key);
    return k;
  }

  /// What one held frame costs beyond its bytes (its buffer's header and heap block, its
  /// deque slot), counted against max_backlog_bytes.
  static constexpr std::size_t kFrameOverhead = 64;

  Impl(Gateway& g, const wire::Registry& r, GatewayConfig c)
      : self(g),
        reg(r),
        cfg(std::move(c)),
        curve(cfg.curve),
        decoder(cfg.max_frame_bytes, cfg.max_depth, cfg.max_name_bytes, cfg.max_endpoint_bytes),
        // new[] of unsigned char is aligned to __STDCPP_DEFAULT_NEW_ALIGNMENT__ (16 on
        // x86-64 and AArch64), which is kMaxMessageAlign
        staging_mem(new unsigned char[std::max<std::size_t>(reg.max_message_bytes(), kRecordUnit)]),
        staging(staging_mem.get()) {
    static_assert(__STDCPP_DEFAULT_NEW_ALIGNMENT__ >= kMaxMessageAlign);
  }

  Gateway& self;
  wire::Registry reg;
  GatewayConfig cfg;
  gw::CurveSecurity curve;  ///< keys, allow-list, ZAP thread (GatewayConfig::curve)
  std::string_view frame_key;  ///< CURVE: the User-Id (client key) of the frame being handled
  std::vector<EndpointRule> rules;
  std::string rules_text;  ///< the patterns, for error messages
  void* ctx = nullptr;
  void* pull = nullptr;
  int pull_fd = -1;           ///< ZMQ_FD of `pull`: readable when the socket has news
  bool pull_drained = false;  ///< the last receive() ended on EAGAIN (pull_fd is armed)
  void* monitor = nullptr;  ///< PAIR reading the PULL socket's monitor events (max_connections)
  std::thread monitor_thread;  ///< owns `monitor` while it runs
  std::atomic<bool> monitor_stop{false};
  int wake_fd = -1;
  std::string bound;            ///< what ZeroMQ reports as bound
  std::string advertised;       ///< our sender_endpoint
  std::string advertised_json;  ///< the same, quoted
  /// tcp: the bound port, to recognise our accepted sockets (set after the monitor starts)
  std::atomic<long> bound_port{-1};
  std::int64_t connections_open = 0;  ///< the monitor thread's

  // ---- remote actors ------------------------------------------------------------------
  // Handles: index | generation << index_bits. Indices 1..max_remotes are made by remote()
  // (generation 0, kept for good); max_remotes+1..2*max_remotes are learnt from inbound
  // senders (generation >= 1, least recently used one reused for a new sender).
  std::uint32_t index_bits = 0, index_mask = 0, max_gen = 0;
  std::unique_ptr<std::atomic<Remote*>[]> remotes;  ///< [1, 2 * max_remotes]
  std::mutex remotes_mu;                            ///< remote()'s table
  std::vector<std::unique_ptr<Remote>> made;        ///< remote()'s entries (under the lock)
  StringMap<std::uint32_t> remote_index;  ///< name '\0' connect -> handle (under the lock)
  std::atomic<std::uint64_t> remote_count{0};
  // learnt entries: the gateway thread only
  std::vector<std::unique_ptr<Remote>> learnt;  ///< by index - max_remotes - 1
  std::vector<std::uint32_t> learnt_gen;        ///< next generation of each learnt slot
  std::vector<std::uint32_t> learnt_free;       ///< free learnt indices
  std::uint32_t learnt_next = 0;                ///< learnt slots never used yet start here
  LruList remote_lru;
  /// Forgotten entries stay allocated for max_remotes more evictions: a name() view another
  /// thread took just before stays readable meanwhile.
  std::deque<std::unique_ptr<Remote>> retired;

  // ---- the gateway thread's own state -------------------------------------------------
  StringMap<std::uint32_t> sender_cache;  ///< raw "actor\0endpoint" -> handle (live ones)
  StringMap<ActorRef> exposed;            ///< set-up only, then read-only
  StringMap<ActorRef> receivers;          ///< resolved receiver names (hits only)
  // one-entry caches in front of the maps: traffic mostly repeats its sender and receiver
  std::string last_receiver_name, last_sender_actor, last_sender_endpoint, last_sender_key;
  ActorRef last_receiver;
  std::uint32_t last_sender = 0;
  std::vector<std::uint64_t> remote_peer;  ///< remote index -> peer | peer gen << 32 (0: none)
  std::vector<Peer> peers;                 ///< [1, max_peers]
  std::vector<std::uint32_t> free_peers;
  LruList peer_lru;
  StringMap<std::uint32_t> peer_by_addr;  ///< open peers only
  std::vector<std::uint32_t> backlogged;  ///< peers with a non-empty backlog
  std::vector<zmq_pollitem_t> poll_items;
  std::uint32_t open_peers = 0;
  std::size_t backlog_total_bytes = 0;
  std::uint64_t now_ms = 0;  ///< the coarse clock, read once per turn
  gw::FrameDecoder decoder;
  gw::Buffer out;  ///< the outbound frame being written
  gw::Buffer key;  ///< scratch for map keys
  // The decoded message is built here, then relocated into a mailbox record: as large as
  // the largest registered wire type, allocated at set-up.
  std::unique_ptr<unsigned char[]> staging_mem;
  unsigned char* staging = nullptr;
  bool stash = false;  ///< staging holds a message a full mailbox refused: retry it
  ActorRef stash_to, stash_from;
  const MessageInfo* stash_info = nullptr;
  bool sockets_closed = false;

  // ---- counters: written by the gateway thread, read by anyone ------------------------
  std::atomic<std::uint64_t> frames_in{0}, messages_in{0}, messages_out{0}, rejects_sent{0},
      rejects_received{0}, inbound_waits{0}, senders_untracked{0}, senders_refused{0},
      remotes_evicted{0}, peers_open{0}, peers_evicted{0}, peers_idle_closed{0},
      backlog_frames{0}, backlog_bytes{0}, connections{0}, connections_refused{0},
      keys_ignored{0};
  std::array<std::atomic<std::uint64_t>, kGatewayDropCauses> drops{};

  void drop(GatewayDrop d, std::uint64_t n = 1) noexcept {
    bump(drops[static_cast<std::size_t>(d)], n);
  }

  // ---- set-up -----------------------------------------------------------------------------
  void validate() {
    const auto bad = [](const std::string& what) {
      return std::invalid_argument("tern: gateway: " + what);
    };
    if (cfg.max_frame_bytes == 0) throw bad("max_frame_bytes is 0");
    if (cfg.max_remotes == 0 || cfg.max_remotes > (1u << 19))
      throw bad("max_remotes " + std::to_string(cfg.max_remotes) + " is outside 1..2^19");
    if (cfg.max_peers == 0) throw bad("max_peers is 0");
    if (cfg.max_peers > (1u << 20))
      throw bad("max_peers " + std::to_string(cfg.max_peers) + " is over 2^20");
    if (cfg.batch == 0) throw bad("batch is 0");
    if (cfg.max_name_bytes == 0) throw bad("max_name_bytes is 0");
    if (cfg.max_endpoint_bytes < 8)
      throw bad("max_endpoint_bytes " + std::to_string(cfg.max_endpoint_bytes) +
                " is below 8 (no endpoint fits)");
    if (cfg.max_backlog == 0) throw bad("max_backlog is 0");
    if (cfg.send_hwm < 0 || cfg.recv_hwm < 0)
      throw bad("send_hwm " + std::to_string(cfg.send_hwm) + " / recv_hwm " +
                std::to_string(cfg.recv_hwm) + " must not be negative");
    for (const std::string& p : cfg.allowed_endpoints) {
      rules.push_back(parse_rule(p));
      if (!rules_text.empty()) rules_text += ", ";
      rules_text += p;
    }
    if (rules_text.empty()) rules_text = "(none)";
  }

  /// libzmq's per-context socket limit must leave room for every peer, the PULL socket, the
  /// monitor pair, and peers closed but not yet reaped by libzmq's reaper thread.
  void size_context() {
    const std::uint64_t need = 2ull * cfg.max_peers + 16;
    const int have = zmq_ctx_get(ctx, ZMQ_MAX_SOCKETS);
    if (have >= 0 && need <= static_cast<std::uint64_t>(have)) return;
    const int limit = zmq_ctx_get(ctx, ZMQ_SOCKET_LIMIT);
    if (limit >= 0 && need > static_cast<std::uint64_t>(limit))
      throw std::invalid_argument("tern: gateway: max_peers " + std::to_string(cfg.max_peers) +
                                  " needs " + std::to_string(need) +
                                  " ZeroMQ sockets (2 * max_peers + 16), over libzmq's limit of " +
                                  std::to_string(limit));
    if (zmq_ctx_set(ctx, ZMQ_MAX_SOCKETS, static_cast<int>(need)) != 0)
      throw std::runtime_error(zmq_error("cannot raise ZMQ_MAX_SOCKETS to", std::to_string(need)));
  }

  /// Creates and configures the PULL socket (not yet bound).
  void* make_pull_socket() {
    void* s = zmq_socket(ctx, ZMQ_PULL);
    if (!s) throw std::runtime_error(zmq_error("cannot create the PULL socket for", cfg.bind));
    const int linger = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(s, ZMQ_RCVHWM, &cfg.recv_hwm, sizeof cfg.recv_hwm);
    const auto cap = static_cast<std::int64_t>(
        cfg.socket_max_frame_bytes ? std::max(cfg.socket_max_frame_bytes, cfg.max_frame_bytes)
                                   : cfg.max_frame_bytes + 4096);
    zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &cap, sizeof cap);
    return s;
  }

  /// Creates and configures a PUSH socket for a peer (not yet connected); nullptr when
  /// libzmq refuses (out of sockets or descriptors).
  void* make_push_socket() noexcept {
    void* s = zmq_socket(ctx, ZMQ_PUSH);
    if (!s) return nullptr;
    zmq_setsockopt(s, ZMQ_SNDHWM, &cfg.send_hwm, sizeof cfg.send_hwm);
    zmq_setsockopt(s, ZMQ_LINGER, &cfg.linger_ms, sizeof cfg.linger_ms);
    return s;
  }

  void open() {
    validate();
    ctx = zmq_ctx_new();
    if (!ctx) throw std::runtime_error(zmq_error("cannot create a ZeroMQ context for", cfg.bind));
    size_context();
    const std::uint32_t slots = 2 * cfg.max_remotes;
    index_bits = static_cast<std::uint32_t>(std::bit_width(slots));
    index_mask = (1u << index_bits) - 1;
    max_gen = (1u << (32 - index_bits)) - 1;
    remotes = std::make_unique<std::atomic<Remote*>[]>(slots + 1);
    learnt.resize(cfg.max_remotes);
    learnt_gen.assign(cfg.max_remotes, 1);
    remote_lru.init(slots);
    remote_peer.assign(slots + 1, 0);
    peers.resize(cfg.max_peers + 1);
    for (std::uint32_t i = cfg.max_peers; i >= 1; --i) free_peers.push_back(i);
    peer_lru.init(cfg.max_peers);

    pull = make_pull_socket();
    // CURVE before bind: the first client already needs it. libzmq allows one monitor per
    // socket: with max_connections ours watches for CURVE's failed handshakes too.
    curve.start_server(ctx, pull, /*watch=*/cfg.max_connections == 0);
    if (cfg.max_connections) open_monitor();
    if (zmq_bind(pull, cfg.bind.c_str()) != 0)
      throw std::runtime_error(zmq_error("cannot bind", cfg.bind));
    char buf[512];
    std::size_t len = sizeof buf;
    if (zmq_getsockopt(pull, ZMQ_LAST_ENDPOINT, buf, &len) == 0 && len > 1)
      bound.assign(buf, len - 1);
    else
      bound = cfg.bind;
    if (SplitEndpoint e; split_endpoint(connect_address(bound), e) && !e.ipc)
      bound_port.store(e.port, std::memory_order_relaxed);
    advertised = cfg.advertise.empty() ? connect_address(bound) : cfg.advertise;
    gw::json::append_string(advertised_json, advertised);
    wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake_fd < 0) throw std::runtime_error("tern: gateway: eventfd failed");
    std::size_t fd_len = sizeof pull_fd;
    if (zmq_getsockopt(pull, ZMQ_FD, &pull_fd, &fd_len) != 0)
      throw std::runtime_error(zmq_error("cannot read ZMQ_FD of", cfg.bind));
    out.reserve(4096);
    key.reserve(256);
    now_ms = coarse_now_ms();
  }

  void open_monitor() {
    char addr[64];
    std::snprintf(addr, sizeof addr, "inproc://tern-gateway-monitor-%p", static_cast<void*>(this));
    const int events = ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED |
                       (curve.enabled() ? gw::CurveSecurity::kFailedEvents : 0);
    if (zmq_socket_monitor(pull, addr, events) != 0)
      throw std::runtime_error(zmq_error("cannot monitor the PULL socket for", cfg.bind));
    monitor = zmq_socket(ctx, ZMQ_PAIR);
    if (!monitor) throw std::runtime_error(zmq_error("cannot create a monitor socket for", cfg.bind));
    const int linger = 0;
    zmq_setsockopt(monitor, ZMQ_LINGER, &linger, sizeof linger);
    // why a timeout: the thread also checks monitor_stop, should the stop event be lost
    const int timeout = 1000;
    zmq_setsockopt(monitor, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    if (zmq_connect(monitor, addr) != 0)
      throw std::runtime_error(zmq_error("cannot connect the monitor of", cfg.bind));
    monitor_thread = std::thread([this] { watch_connections(); });
  }

  /// The monitor thread: blocks on the PULL socket's monitor and enforces max_connections,
  /// whatever the gateway thread is doing (a busy inline handler must not lift the bound).
  void watch_connections() noexcept {
    while (!monitor_stop.load(std::memory_order_acquire)) read_monitor();
  }

  /// Is `fd` a connection accepted on our bound endpoint? (The monitor reports descriptors
  /// asynchronously: by now this one may have been closed and its number reused.)
  bool is_our_connection(int fd) const noexcept {
    sockaddr_storage a{};
    socklen_t len = sizeof a;
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) return false;
    const long port = bound_port.load(std::memory_order_relaxed);
    if (a.ss_family == AF_UNIX) return cfg.bind.substr(0, 6) == "ipc://";
    if (a.ss_family == AF_INET)
      return ntohs(reinterpret_cast<const sockaddr_in&>(a).sin_port) == port;
    if (a.ss_family == AF_INET6)
      return ntohs(reinterpret_cast<const sockaddr_in6&>(a).sin6_port) == port;
    return false;
  }

  /// Reads what the PULL socket's monitor reports (waiting up to its timeout): counts
  /// connections and shuts down the ones over max_connections. The monitor thread only.
  void read_monitor() noexcept {
    zmq_msg_t ev, where;
    for (int flags = 0;; flags = ZMQ_DONTWAIT) {
      zmq_msg_init(&ev);
      if (zmq_msg_recv(&ev, monitor, flags) < 0) {
        zmq_msg_close(&ev);
        return;
      }
      std::uint16_t event = 0;
      std::uint32_t value = 0;
      if (zmq_msg_size(&ev) >= 6) {
        std::memcpy(&event, zmq_msg_data(&ev), 2);
        std::memcpy(&value, static_cast<const char*>(zmq_msg_data(&ev)) + 2, 4);
      }
      const bool more = zmq_msg_more(&ev);
      zmq_msg_close(&ev);
      if (more) {  // the endpoint part
        zmq_msg_init(&where);
        (void)zmq_msg_recv(&where, monitor, ZMQ_DONTWAIT);
        zmq_msg_close(&where);
      }
      if (event == ZMQ_EVENT_ACCEPTED) {
        ++connections_open;
        if (connections_open > static_cast<std::int64_t>(cfg.max_connections)) {
          // libzmq has no call to refuse one connection: shut its socket down; libzmq sees
          // the end of stream, drops the connection and reports it disconnected.
          const int fd = static_cast<int>(value);
          if (is_our_connection(fd)) ::shutdown(fd, SHUT_RDWR);
          bump(connections_refused);
        }
      } else if (event == ZMQ_EVENT_DISCONNECTED) {
        if (connections_open > 0) --connections_open;
      } else if (event & gw::CurveSecurity::kFailedEvents) {
        curve.count_handshake_failed();
      } else if (event == ZMQ_EVENT_MONITOR_STOPPED) {
        monitor_stop.store(true, std::memory_order_release);
      }
      connections.store(static_cast<std::uint64_t>(connections_open), std::memory_order_relaxed);
    }
  }

  void close_sockets() noexcept {
    if (sockets_closed) return;
    sockets_closed = true;
    for (std::uint32_t i = 1; i < peers.size(); ++i) {
      Peer& p = peers[i];
      if (!p.sock) continue;
      // Last chance for held frames: hand them to ZeroMQ (its linger flushes them).
      while (!p.backlog.empty()) {
        const gw::Buffer& f = p.backlog.front();
        if (zmq_send(p.sock, f.data(), f.size(), ZMQ_DONTWAIT) < 0) break;
        bump(messages_out);
        p.backlog.pop_front();
      }
      if (!p.backlog.empty()) drop(GatewayDrop::peer_backlog_full, p.backlog.size());
      p.backlog.clear();
      zmq_close(p.sock);
      p.sock = nullptr;
    }
    backlogged.clear();
    backlog_frames.store(0, std::memory_order_relaxed);
    backlog_bytes.store(0, std::memory_order_relaxed);
    if (monitor) {
      zmq_socket_monitor(pull, nullptr, 0);  // sends MONITOR_STOPPED: the thread returns
      monitor_stop.store(true, std::memory_order_release);
      if (monitor_thread.joinable()) monitor_thread.join();
      zmq_close(monitor);
      monitor = nullptr;
    }
    curve.stop_monitor(pull);
    if (pull) zmq_close(pull);
    pull = nullptr;
  }

  ~Impl() {
    close_sockets();
    curve.stop();  // its sockets live in ctx
    if (ctx) zmq_ctx_term(ctx);
    if (wake_fd >= 0) ::close(wake_fd);
  }

  // ---- endpoints --------------------------------------------------------------------------
  enum class EndpointCheck { ok, malformed, refused };
  /// Checks a connect address against allowed_endpoints.
  EndpointCheck check_endpoint(std::string_view addr) const noexcept {
    SplitEndpoint e;
    if (addr.size() > cfg.max_endpoint_bytes + 16 || !split_endpoint(addr, e))
      return EndpointCheck::malformed;
    for (const EndpointRule& r : rules) {
      if (r.ipc != e.ipc) continue;
      if (!e.ipc && r.port != -1 && r.port != e.port) continue;
      if (glob_match(r.host, e.host, !e.ipc)) return EndpointCheck::ok;
    }
    return EndpointCheck::refused;
  }

  // ---- remotes ----------------------------------------------------------------------------
  std::uint32_t index_of(std::uint32_t handle) const noexcept { return handle & index_mask; }
  bool is_learnt(std::uint32_t idx) const noexcept { return idx > cfg.max_remotes; }

  /// remote(): the handle of (name, endpoint), adding it; 0 when max_remotes are made.
  std::uint32_t make_remote(std::string_view name, std::string_view endpoint,
                            std::string_view server_key) {
    std::string connect = connect_address(endpoint);
    std::string k;
    k.reserve(name.size() + 2 + connect.size() + server_key.size());
    k.append(name).push_back('\0');
    k.append(connect);
    if (!server_key.empty()) k.append(1, '\0').append(server_key);
    std::lock_guard lock(remotes_mu);
    if (auto it = remote_index.find(k); it != remote_index.end()) return it->second;
    if (made.size() >= cfg.max_remotes) return 0;
    auto r = std::make_unique<Remote>();
    const auto idx = static_cast<std::uint32_t>(made.size() + 1);
    r->handle = idx;
    r->name.assign(name);
    r->endpoint.assign(endpoint);
    r->connect = std::move(connect);
    r->server_key.assign(server_key);
    remotes[idx].store(r.get(), std::memory_order_release);
    made.push_back(std::move(r));
    remote_index.emplace(std::move(k), idx);
    remote_count.fetch_add(1, std::memory_order_relaxed);
    return idx;
  }

  /// The remote behind `handle`, or nullptr (never was, or forgotten since: stale). Any thread.
  const Remote* remote_at(std::uint32_t handle) const noexcept {
    const std::uint32_t idx = handle & index_mask;
    if (idx == 0 || idx > 2 * cfg.max_remotes) return nullptr;
    const Remote* r = remotes[idx].load(std::memory_order_acquire);
    return r && r->handle == handle ? r : nullptr;
  }

  /// Gateway thread: the handle of an inbound sender (0: not remembered).
  /// `server_key`: with CURVE, the key the sender authenticated with (part of its identity:
  /// replies must go to that key).
  std::uint32_t sender_index(std::string_view actor, std::string_view endpoint,
                             std::string_view server_key) {
    // Most frames come from the sender of the one before: check that first.
    if (last_sender && gw::same(actor, last_sender_actor) &&
        gw::same(endpoint, last_sender_endpoint) && gw::same(server_key, last_sender_key))
        [[likely]]
      return last_sender;
    const std::uint32_t h = sender_index_slow(actor, endpoint, server_key);
    if (h) {
      last_sender = h;
      last_sender_actor.assign(actor);
      last_sender_endpoint.assign(endpoint);
      last_sender_key.assign(server_key);
    }
    return h;
  }
  std::uint32_t sender_index_slow(std::string_view actor, std::string_view endpoint,
                                  std::string_view server_key) {
    key.clear();
    key.append(actor).push_back('\0');
    key.append(endpoint);
    if (!server_key.empty()) key.append(1, '\0').append(server_key);
    if (auto it = sender_cache.find(std::string_view(key.data(), key.size()));
        it != sender_cache.end()) [[likely]] {
      const std::uint32_t idx = index_of(it->second);
      if (is_learnt(idx)) remote_lru.touch(idx);
      return it->second;
    }
    std::string connect = connect_address(endpoint);
    if (check_endpoint(connect) != EndpointCheck::ok) {
      bump(senders_refused);  // never remembered, never connected to
      return 0;
    }
    std::uint32_t h = 0;
    {
      std::string k;
      k.reserve(actor.size() + 2 + connect.size() + server_key.size());
      k.append(actor).push_back('\0');
      k.append(connect);
      if (!server_key.empty()) k.append(1, '\0').append(server_key);
      std::lock_guard lock(remotes_mu);
      if (auto it = remote_index.find(k); it != remote_index.end()) h = it->second;
    }
    if (!h) h = learn(actor, endpoint, std::move(connect), server_key);
    if (!h) {
      bump(senders_untracked);
      return 0;
    }
    sender_cache.emplace(std::string(key.data(), key.size()), h);
    return h;
  }

  /// A learnt slot for a new inbound sender: a free one, else the least recently used one
  /// (forgotten). 0 only when every slot has used up its generations.
  std::uint32_t learn(std::string_view actor, std::string_view endpoint, std::string connect,
                      std::string_view server_key) {
    std::uint32_t idx = 0;
    if (learnt_free.empty() && learnt_next < cfg.max_remotes) {
      idx = cfg.max_remotes + 1 + learnt_next++;
    } else {
      // forgetting a slot at its last generation retires it: forget until one is free
      while (learnt_free.empty() && remote_lru.back()) forget(remote_lru.back());
      if (learnt_free.empty()) return 0;
      idx = learnt_free.back();
      learnt_free.pop_back();
    }
    const std::uint32_t slot = idx - cfg.max_remotes - 1;
    auto r = std::make_unique<Remote>();
    r->handle = idx | (learnt_gen[slot] << index_bits);
    r->name.assign(actor);
    r->endpoint.assign(endpoint);
    r->connect = std::move(connect);
    r->server_key.assign(server_key);
    remotes[idx].store(r.get(), std::memory_order_release);
    learnt[slot] = std::move(r);
    remote_lru.push_front(idx);
    remote_count.fetch_add(1, std::memory_order_relaxed);
    return learnt[slot]->handle;
  }

  /// Forgets learnt entry `idx`: its refs become stale (remote_at() no longer finds them).
  void forget(std::uint32_t idx) {
    const std::uint32_t slot = idx - cfg.max_remotes - 1;
    std::unique_ptr<Remote>& r = learnt[slot];
    remote_lru.remove(idx);
    // not `key`: the caller (sender_index_slow) still holds the newcomer's key there
    std::string k;
    k.reserve(r->name.size() + 2 + r->endpoint.size() + r->server_key.size());
    k.append(r->name).push_back('\0');
    k.append(r->endpoint);
    if (!r->server_key.empty()) k.append(1, '\0').append(r->server_key);
    if (auto it = sender_cache.find(k); it != sender_cache.end()) sender_cache.erase(it);
    if (last_sender == r->handle) last_sender = 0;
    remotes[idx].store(nullptr, std::memory_order_release);
    remote_peer[idx] = 0;
    retired.push_back(std::move(r));
    if (retired.size() > cfg.max_remotes) retired.pop_front();
    // why retire at the last generation: a wrapped generation would let a stale ref reach
    // whoever holds the slot next.
    if (++learnt_gen[slot] <= max_gen) learnt_free.push_back(idx);
    remote_count.fetch_sub(1, std::memory_order_relaxed);
    bump(remotes_evicted);
  }

  // ---- receivers --------------------------------------------------------------------------
  ActorRef find_receiver(std::string_view name) {
    if (last_receiver && gw::same(name, last_receiver_name)) [[likely]]
      return last_receiver;
    ActorRef r = find_receiver_slow(name);
    if (r) {
      last_receiver = r;
      last_receiver_name.assign(name);
    }
    return r;
  }
  ActorRef find_receiver_slow(std::string_view name) {
    if (auto it = receivers.find(name); it != receivers.end()) return it->second;
    ActorRef r;
    if (auto it = exposed.find(name); it != exposed.end()) {
      r = it->second;
    } else if (Manager* m = self.manager()) {
      r = m->find(name);
      if (r.actor() == &self) r = ActorRef();  // the gateway itself is not a receiver
    }
    // why only hits are cached: names come from the network; misses would grow the map.
    if (r) receivers.emplace(std::string(name), r);
    return r;
  }

  // ---- peers ------------------------------------------------------------------------------
  /// The open peer for `addr`, opening it (and closing the least recently used one when
  /// max_peers are open). 0, counted, when the address is refused or cannot be opened.
  /// With CURVE, `server_key` is the key the peer must prove: one socket per (address, key).
  std::uint32_t peer_for_address(std::string_view addr, std::string_view server_key) {
    std::string pk = peer_key(addr, server_key);
    if (auto it = peer_by_addr.find(pk); it != peer_by_addr.end()) return it->second;
    if (const EndpointCheck c = check_endpoint(addr); c != EndpointCheck::ok) {
      drop(c == EndpointCheck::refused ? GatewayDrop::endpoint_refused : GatewayDrop::bad_endpoint);
      return 0;
    }
    if (free_peers.empty()) close_peer(peer_lru.back(), peers_evicted);
    if (free_peers.empty()) {  // cannot happen: max_peers >= 1
      drop(GatewayDrop::bad_endpoint);
      return 0;
    }
    void* s = make_push_socket();
    if (!s) {
      drop(GatewayDrop::send_failed);
      return 0;
    }
    if (!curve.configure_client(s, server_key) || zmq_connect(s, std::string(addr).c_str()) != 0) {
      zmq_close(s);
      drop(GatewayDrop::bad_endpoint);
      return 0;
    }
    const std::uint32_t idx = free_peers.back();
    free_peers.pop_back();
    Peer& p = peers[idx];
    p.sock = s;
    p.addr.assign(addr);
    p.server_key.assign(server_key);
    p.last_used_ms = p.last_progress_ms = now_ms;
    peer_by_addr.emplace(std::move(pk), idx);
    peer_lru.push_front(idx);
    ++open_peers;
    peers_open.store(open_peers, std::memory_order_relaxed);
    return idx;
  }

  /// Closes peer `idx` at once (no linger: a closed socket must not hold a libzmq socket
  /// slot), dropping what it held; counts it in `why`.
  void close_peer(std::uint32_t idx, std::atomic<std::uint64_t>& why) {
    if (idx == 0) return;
    Peer& p = peers[idx];
    if (!p.sock) return;
    if (!p.backlog.empty()) {
      drop(GatewayDrop::peer_backlog_full, p.backlog.size());
      backlog_frames.fetch_sub(p.backlog.size(), std::memory_order_relaxed);
      backlog_total_bytes -= p.backlog_bytes;
      backlog_bytes.store(backlog_total_bytes, std::memory_order_relaxed);
      std::deque<gw::Buffer>().swap(p.backlog);  // give the memory back
      p.backlog_bytes = 0;
      std::erase(backlogged, idx);
    }
    const int linger = 0;
    zmq_setsockopt(p.sock, ZMQ_LINGER, &linger, sizeof linger);
    zmq_close(p.sock);
    p.sock = nullptr;
    if (auto it = peer_by_addr.find(peer_key(p.addr, p.server_key)); it != peer_by_addr.end())
      peer_by_addr.erase(it);
    std::string().swap(p.addr);
    std::string().swap(p.server_key);
    ++p.gen;
    peer_lru.remove(idx);
    free_peers.push_back(idx);
    --open_peers;
    bump(why);
    peers_open.store(open_peers, std::memory_order_relaxed);
  }

  /// Closes peers unused for peer_idle_ms. Called once per turn.
  void close_idle_peers() {
    if (!cfg.peer_idle_ms) return;
    while (const std::uint32_t tail = peer_lru.back()) {
      if (now_ms - peers[tail].last_used_ms < cfg.peer_idle_ms) break;
      close_peer(tail, peers_idle_closed);
    }
  }

  /// The peer index remote `handle` sends through, opening one if needed (0: none).
  std::uint32_t peer_of(std::uint32_t handle, const Remote& r) {
    const std::uint32_t idx = index_of(handle);
    const std::uint64_t cached = remote_peer[idx];
    if (cached) [[likely]] {
      const auto p = static_cast<std::uint32_t>(cached);
      if (peers[p].sock && peers[p].gen == static_cast<std::uint32_t>(cached >> 32)) return p;
    }
    const std::uint32_t p = peer_for_address(r.connect, r.server_key);
    remote_peer[idx] = p ? (static_cast<std::uint64_t>(peers[p].gen) << 32) | p : 0;
    return p;
  }

  /// Hands one frame to peer `idx` (or its backlog). Counts what it cannot send; true when
  /// the frame was sent or queued.
  bool send_frame(std::uint32_t idx, const char* data, std::size_t size) {
    if (idx == 0) return false;  // counted by peer_for_address
    Peer& p = peers[idx];
    p.last_used_ms = now_ms;
    peer_lru.touch(idx);
    if (p.backlog.empty()) [[likely]] {
      if (zmq_send(p.sock, data, size, ZMQ_DONTWAIT) >= 0) [[likely]] {
        bump(messages_out);
        return true;
      }
      if (zmq_errno() != EAGAIN) {
        drop(GatewayDrop::send_failed);
        return false;
      }
    }
    if (p.backlog.size() >= cfg.max_backlog ||
        backlog_total_bytes + size + kFrameOverhead > cfg.max_backlog_bytes) {
      drop(GatewayDrop::peer_backlog_full);
      return false;
    }
    if (p.backlog.empty()) {
      backlogged.push_back(idx);
      p.last_progress_ms = now_ms;  // the stall clock starts
    }
    p.backlog.emplace_back(data, size);
    p.backlog_bytes += size + kFrameOverhead;
    backlog_total_bytes += size + kFrameOverhead;
    bump(backlog_frames);
    backlog_bytes.store(backlog_total_bytes, std::memory_order_relaxed);
    return true;
  }

  /// Sends what the backlogs hold, in order, until ZeroMQ says "full" again. A peer whose
  /// frames did not move for peer_idle_ms is closed (they are dropped).
  void flush_backlogs() {
    for (std::size_t i = 0; i < backlogged.size();) {
      const std::uint32_t idx = backlogged[i];
      Peer& p = peers[idx];
      std::size_t sent = 0, bytes = 0;
      while (!p.backlog.empty()) {
        const gw::Buffer& f = p.backlog.front();
        if (zmq_send(p.sock, f.data(), f.size(), ZMQ_DONTWAIT) < 0) {
          if (zmq_errno() != EAGAIN) {
            drop(GatewayDrop::send_failed);
          } else {
            break;
          }
        } else {
          bump(messages_out);
        }
        bytes += f.size() + kFrameOverhead;
        p.backlog.pop_front();
        ++sent;
      }
      if (sent) {
        p.last_progress_ms = now_ms;
        p.backlog_bytes -= bytes;
        backlog_total_bytes -= bytes;
        backlog_frames.fetch_sub(sent, std::memory_order_relaxed);
        backlog_bytes.store(backlog_total_bytes, std::memory_order_relaxed);
      }
      if (p.backlog.empty()) {
        std::deque<gw::Buffer>().swap(p.backlog);
        backlogged[i] = backlogged.back();
        backlogged.pop_back();
      } else if (cfg.peer_idle_ms && now_ms - p.last_progress_ms >= cfg.peer_idle_ms) {
        close_peer(idx, peers_idle_closed);  // removes it from backlogged
      } else {
        ++i;
      }
    }
  }

  // ---- outbound ---------------------------------------------------------------------------
  SendResult forward(const MessageInfo& info, const void* msg, std::uint32_t target, ActorRef from) {
    const Remote* r = remote_at(target);
    if (!r) [[unlikely]] {
      drop(GatewayDrop::stale_ref);
      return SendResult::no_target;
    }
    const wire::WireType* t = reg.find(info.id);
    if (!t || !same_type(*t->info, info)) [[unlikely]] {  // by type, not id alone
      drop(GatewayDrop::unregistered_type);
      return SendResult::closed;
    }
    // Keys in the Python peer's order, payload last: a receiver learns the type before the
    // payload and can decode it in the same pass.
    out.clear();
    out.append("{\"sender_actor\":", 16);
    if (from.actor() && !from.is_remote()) {
      gw::json::append_string(out, from.actor()->name());
      out.append(",\"sender_endpoint\":", 19);
      out.append(advertised_json);
    } else if (const Remote* via = from.actor() == &self ? remote_at(from.remote_index()) : nullptr) {
      // relayed for a remote actor: replies go straight to it
      gw::json::append_string(out, via->name);
      out.append(",\"sender_endpoint\":", 19);
      gw::json::append_string(out, via->endpoint);
    } else {
      out.append("null,\"sender_endpoint\":null", 27);
    }
    out.append(",\"receiver\":", 12);
    gw::json::append_string(out, r->name);
    out.append(",\"message_type\":", 16);
    out.append(t->name_json);
    out.append(",\"message\":", 11);
    if (!gw::encode_payload(*t, msg, out, nullptr)) {
      drop(GatewayDrop::encode_failed);
      return SendResult::closed;
    }
    out.push_back('}');
    return send_frame(peer_of(target, *r), out.data(), out.size()) ? SendResult::ok
                                                                   : SendResult::closed;
  }

  void send_reject(const gw::Envelope& env, std::string_view reason) {
    // Only to a known sender, and never a Reject for a Reject (two peers could bounce
    // them forever).
    if (!env.replyable() || env.message_type == "Reject") return;
    // A sender over the limits gets nothing (it is not remembered or connected to either);
    // other strings over the limit are not echoed back.
    if (env.sender_actor.size() > cfg.max_name_bytes ||
        env.sender_endpoint.size() > cfg.max_endpoint_bytes)
      return;
    const auto capped = [&](std::string_view s) {
      return s.size() > cfg.max_name_bytes ? std::string_view() : s;
    };
    // A reason can quote the frame (an unexpected key): cut it, on a UTF-8 boundary.
    if (const std::size_t cap = 2 * cfg.max_name_bytes + 128; reason.size() > cap) {
      std::size_t n = cap;
      while (n && (static_cast<unsigned char>(reason[n]) & 0xC0) == 0x80) --n;
      reason = reason.substr(0, n);
    }
    const std::uint32_t peer = peer_for_address(connect_address(env.sender_endpoint), frame_key);
    if (!peer) return;  // refused or malformed: counted, never connected to
    out.clear();
    out.append("{\"sender_actor\":null,\"sender_endpoint\":null,\"receiver\":", 55);
    gw::json::append_string(out, env.sender_actor);
    out.append(",\"message_type\":\"Reject\",\"message\":{\"message_type\":", 51);
    gw::json::append_string(out, capped(env.message_type));
    out.append(",\"reason\":", 10);
    gw::json::append_string(out, reason);
    out.append(",\"rejected_by\":", 15);
    gw::json::append_string(out, capped(env.receiver));
    out.append("}}", 2);
    if (send_frame(peer, out.data(), out.size())) bump(rejects_sent);
  }

  // ---- inbound ----------------------------------------------------------------------------
  void handle_frame(const char* data, std::size_t size) {
    ActorRef target;
    const gw::FrameResult& r = decoder.decode(data, size, reg, staging, [&](std::string_view name) {
      target = find_receiver(name);
      return static_cast<bool>(target);
    });
    if (!r.ok()) [[unlikely]] {
      drop(r.cause);
      send_reject(r.env, r.reason);
      return;
    }
    if (r.ignored) [[unlikely]]
      bump(keys_ignored, r.ignored);
    ActorRef from;
    if (r.env.replyable()) {
      if (const std::uint32_t h =
              sender_index(r.env.sender_actor, r.env.sender_endpoint, frame_key))
        from = ActorRef(&self, h);
    }
    if (r.type->is_reject) bump(rejects_received);
    deliver(target, *r.type->info, from);
  }

  /// Moves the message in `staging` into `to`'s mailbox, or keeps it there for a retry
  /// (stash) when the mailbox is full: reading the socket pauses, so ZeroMQ's high-water
  /// mark pushes back on the sender instead of us dropping.
  void deliver(ActorRef to, const MessageInfo& info, ActorRef from) {
    // Inline dispatch (on by default): run an idle receiver's handler on this thread. Its
    // sends to remote refs behind us go straight out (forward_direct), never into our own
    // mailbox, whose only consumer is this thread.
    if (cfg.inline_dispatch && !to.is_remote() && to.actor() != &self) {
      detail::ThreadCtx& me = detail::tl_ctx;
      // counted first: the handler's replies leave before it returns, and a peer that got
      // one must find this message counted (taken back below if the actor was busy)
      const std::uint64_t n = messages_in.load(std::memory_order_relaxed);
      messages_in.store(n + 1, std::memory_order_relaxed);
      me.direct_gateway = &self;
      const bool ran = Runtime::try_run_inline(*to.actor(), info, staging, from, &me);
      me.direct_gateway = nullptr;
      if (ran) {
        destroy_message(info, staging);
        return;
      }
      messages_in.store(n, std::memory_order_relaxed);
    }
    const SendResult r = to.try_send_erased(info, staging, from);
    if (r == SendResult::ok) [[likely]] {
      bump(messages_in);
    } else if (r == SendResult::full) {
      stash = true;
      stash_to = to;
      stash_from = from;
      stash_info = &info;
      bump(inbound_waits);
    } else {
      destroy_message(info, staging);
      drop(GatewayDrop::actor_stopped);
    }
  }

  /// Retries the stashed message; true when it is gone (delivered or dropped).
  bool retry_stash() {
    const SendResult r = stash_to.try_send_erased(*stash_info, staging, stash_from);
    if (r == SendResult::full) return false;
    if (r == SendResult::ok) {
      bump(messages_in);
    } else {
      destroy_message(*stash_info, staging);
      drop(GatewayDrop::actor_stopped);
    }
    stash = false;
    return true;
  }

  /// Reads up to `limit` frames without blocking. Returns how many.
  std::uint32_t receive(std::uint32_t limit) {
    std::uint32_t n = 0;
    zmq_msg_t msg;
    pull_drained = false;
    while (n < limit && !stash) {
      zmq_msg_init(&msg);
      if (zmq_msg_recv(&msg, pull, ZMQ_DONTWAIT) < 0) {
        pull_drained = errno == EAGAIN;  // EINTR: not known to be empty
        zmq_msg_close(&msg);
        break;  // EAGAIN (nothing waiting) or EINTR: either way, back to the loop
      }
      ++n;
      bump(frames_in);
      // CURVE: the key our ZAP handler authenticated; replies must find that key again.
      if (curve.enabled()) [[unlikely]] {
        const char* uid = zmq_msg_gets(&msg, "User-Id");
        frame_key = uid ? std::string_view(uid) : std::string_view();
      }
      if (zmq_msg_more(&msg)) [[unlikely]] {
        handle_multipart(msg);
      } else {
        handle_frame(static_cast<const char*>(zmq_msg_data(&msg)), zmq_msg_size(&msg));
      }
      frame_key = {};
      zmq_msg_close(&msg);
      // Other actors' outbound traffic waits in our mailbox: send it before reading on.
      if (self.mailbox().depth() != 0) break;
    }
    return n;
  }

  void handle_multipart(zmq_msg_t& first) {
    // The other parts are already here (ZeroMQ delivers a multipart message whole).
    zmq_msg_t part;
    bool more = true;
    while (more) {
      zmq_msg_init(&part);
      if (zmq_msg_recv(&part, pull, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&part);
        break;
      }
      more = zmq_msg_more(&part) != 0;
      zmq_msg_close(&part);
    }
    drop(GatewayDrop::multipart);
    const auto* data = static_cast<const char*>(zmq_msg_data(&first));
    send_reject(gw::salvage_envelope(data, zmq_msg_size(&first)),
                "Multipart messages are not supported");
  }

  /// poll()'s timeout: until the next peer falls idle or a stalled backlog times out.
  long poll_timeout_ms() const noexcept {
    if (!cfg.peer_idle_ms || !open_peers) return -1;
    std::uint64_t due = UINT64_MAX;
    if (const std::uint32_t tail = peer_lru.back()) due = peers[tail].last_used_ms;
    for (std::uint32_t i : backlogged) due = std::min(due, peers[i].last_progress_ms);
    if (due == UINT64_MAX) return -1;
    due += cfg.peer_idle_ms;
    // + 10: the coarse clock ticks every few ms; waking just before the deadline is wasted
    return due <= now_ms ? 0 : static_cast<long>(due - now_ms) + 10;
  }

  /// Blocks in poll() on the PULL socket (unless a full mailbox paused reading), the
  /// mailbox's eventfd, and peers waiting to drain a backlog.
  void wait() {
    const long timeout = std::min<long>(poll_timeout_ms(), INT_MAX);
    bool woken = false;
    if (backlogged.empty() && pull_drained && !stash) [[likely]] {
      // why not zmq_poll: it asks every socket for ZMQ_EVENTS before and after, and polls
      // once with no timeout first: five more system calls per wake-up, about a tenth of a
      // loopback round trip. ZMQ_FD is edge-like: it is armed once a receive has returned
      // EAGAIN (pull_drained), so plain poll() on it misses nothing.
      pollfd fds[2] = {{wake_fd, POLLIN, 0}, {pull_fd, POLLIN, 0}};
      woken = ::poll(fds, 2, static_cast<int>(timeout)) > 0 && (fds[0].revents & POLLIN);
    } else {
      woken = zmq_wait(timeout);
    }
    if (woken) {
      eventfd_t v;
      (void)eventfd_read(wake_fd, &v);  // reset; EAGAIN if another wake already read it
    }
  }

  /// wait() with zmq_poll: also peers' POLLOUT while they hold a backlog. True when the
  /// eventfd was written.
  bool zmq_wait(long timeout) {
    poll_items.clear();
    poll_items.push_back(zmq_pollitem_t{nullptr, wake_fd, ZMQ_POLLIN, 0});
    if (!stash) poll_items.push_back(zmq_pollitem_t{pull, 0, ZMQ_POLLIN, 0});
    for (std::uint32_t i : backlogged)
      poll_items.push_back(zmq_pollitem_t{peers[i].sock, 0, ZMQ_POLLOUT, 0});
    const int rc = zmq_poll(poll_items.data(), static_cast<int>(poll_items.size()), timeout);
    return rc > 0 && (poll_items[0].revents & ZMQ_POLLIN);
  }

  /// Once per turn: the clock and idle peers.
  void housekeeping() {
    now_ms = coarse_now_ms();
    if (open_peers) close_idle_peers();
  }
};

// ---- Gateway --------------------------------------------------------------------------------

Gateway::Gateway(const wire::Registry& registry, GatewayConfig config)
    : impl_(std::make_unique<Impl>(*this, registry, std::move(config))) {
  impl_->open();
  mailbox().set_wake_fd(impl_->wake_fd);
}

Gateway::~Gateway() = default;

ActorRef Gateway::remote(std::string_view actor, std::string_view endpoint) {
  if (impl_->curve.enabled())
    throw std::invalid_argument("tern: gateway: CURVE is on: remote('" + std::string(actor) +
                                "', '" + std::string(endpoint) +
                                "') needs the peer's public key (the three-argument remote())");
  return remote_with_key(actor, endpoint, {});
}

ActorRef Gateway::remote(std::string_view actor, std::string_view endpoint,
                         std::string_view server_key) {
  if (!impl_->curve.enabled())
    throw std::invalid_argument("tern: gateway: remote('" + std::string(actor) +
                                "') was given a server key but CURVE is off (GatewayConfig::curve)");
  if (!valid_curve_key(std::string(server_key)))
    throw std::invalid_argument("tern: gateway: server key '" + std::string(server_key) +
                                "' for remote('" + std::string(actor) +
                                "') is not a CURVE public key (40 characters of Z85)");
  return remote_with_key(actor, endpoint, server_key);
}

ActorRef Gateway::remote_with_key(std::string_view actor, std::string_view endpoint,
                                  std::string_view server_key) {
  Impl& m = *impl_;
  if (actor.empty()) throw std::invalid_argument("tern: gateway: empty remote actor name");
  if (actor.size() > m.cfg.max_name_bytes)
    throw std::invalid_argument("tern: gateway: remote actor name of " +
                                std::to_string(actor.size()) + " bytes is over max_name_bytes (" +
                                std::to_string(m.cfg.max_name_bytes) + ")");
  if (endpoint.size() > m.cfg.max_endpoint_bytes)
    throw std::invalid_argument("tern: gateway: endpoint of " + std::to_string(endpoint.size()) +
                                " bytes is over max_endpoint_bytes (" +
                                std::to_string(m.cfg.max_endpoint_bytes) + ")");
  switch (m.check_endpoint(connect_address(endpoint))) {
    case Impl::EndpointCheck::ok: break;
    case Impl::EndpointCheck::malformed:
      throw std::invalid_argument("tern: gateway: endpoint '" + std::string(endpoint) +
                                  "' is not tcp://HOST:PORT or ipc://PATH");
    case Impl::EndpointCheck::refused:
      throw std::invalid_argument("tern: gateway: endpoint '" + std::string(endpoint) +
                                  "' is not allowed by allowed_endpoints (" + m.rules_text + ")");
  }
  const std::uint32_t h = m.make_remote(actor, endpoint, server_key);
  if (!h)
    throw std::length_error("tern: gateway: more than max_remotes (" +
                            std::to_string(m.cfg.max_remotes) + ") remote actors");
  return ActorRef(this, h);
}

void Gateway::expose(std::string_view name, ActorRef target) {
  if (name.empty() || !target)
    throw std::invalid_argument("tern: gateway: expose needs a name and a non-empty ref");
  impl_->exposed.insert_or_assign(std::string(name), target);
}

std::string_view Gateway::endpoint() const noexcept { return impl_->advertised; }
std::string_view Gateway::public_key() const noexcept { return impl_->curve.public_key(); }
const CurveConfig& Gateway::curve_config() const noexcept { return impl_->cfg.curve; }
std::string_view Gateway::bound_endpoint() const noexcept { return impl_->bound; }
const wire::Registry& Gateway::registry() const noexcept { return impl_->reg; }

GatewayStats Gateway::stats() const noexcept {
  const Impl& m = *impl_;
  const auto rd = [](const std::atomic<std::uint64_t>& a) {
    return a.load(std::memory_order_relaxed);
  };
  GatewayStats s;
  s.frames_in = rd(m.frames_in);
  s.messages_in = rd(m.messages_in);
  s.messages_out = rd(m.messages_out);
  s.rejects_sent = rd(m.rejects_sent);
  s.rejects_received = rd(m.rejects_received);
  s.inbound_waits = rd(m.inbound_waits);
  s.senders_untracked = rd(m.senders_untracked);
  s.senders_refused = rd(m.senders_refused);
  s.remotes = rd(m.remote_count);
  s.remotes_evicted = rd(m.remotes_evicted);
  s.peers_open = rd(m.peers_open);
  s.peers_evicted = rd(m.peers_evicted);
  s.peers_idle_closed = rd(m.peers_idle_closed);
  s.backlog = rd(m.backlog_frames);
  s.backlog_bytes = rd(m.backlog_bytes);
  s.connections = rd(m.connections);
  s.connections_refused = rd(m.connections_refused);
  s.keys_ignored = rd(m.keys_ignored);
  s.auth_denied = m.curve.denied();
  s.handshakes_failed = m.curve.handshakes_failed();
  for (std::size_t i = 0; i < kGatewayDropCauses; ++i) s.dropped[i] = rd(m.drops[i]);
  return s;
}

void Gateway::process_frame(const void* data, std::size_t size) noexcept {
  Impl& m = *impl_;
  std::uint32_t round = 0;
  while (m.stash && !m.retry_stash()) detail::backoff(round);
  try {
    m.handle_frame(static_cast<const char*>(data), size);
  } catch (const std::exception& e) {  // std::bad_alloc while building a reason
    std::fprintf(stderr, "tern: gateway '%s': frame dropped: %s\n", std::string(name()).c_str(),
                 e.what());
    m.drop(GatewayDrop::bad_json);
    return;
  }
  round = 0;
  while (m.stash && !m.retry_stash()) detail::backoff(round);
}

void Gateway::forward_remote(const MessageInfo& info, const void* msg, std::uint32_t peer,
                             ActorRef from) {
  (void)impl_->forward(info, msg, peer, from);
}

SendResult Gateway::forward_direct(const MessageInfo& info, const void* msg, std::uint32_t peer,
                                   ActorRef from) noexcept {
  // Per-sender order: what actors queued to us before (the running actor from its own
  // thread, among others) leaves first. Bounded: at most what the mailbox holds now.
  detail::ThreadCtx& me = detail::tl_ctx;
  Actor* const gw = me.direct_gateway;
  me.direct_gateway = nullptr;  // a handler cannot run inside the drain; keep it honest
  if (!mailbox().empty_sc()) (void)Runtime::drain(*this, mailbox().capacity() + 256, &me);
  me.direct_gateway = gw;
  try {
    return impl_->forward(info, msg, peer, from);
  } catch (const std::exception& e) {  // allocation failure (backlog, peer table)
    std::fprintf(stderr, "tern: gateway '%s': %s\n", std::string(name()).c_str(), e.what());
    impl_->drop(GatewayDrop::send_failed);
    return SendResult::closed;
  }
}

std::string_view Gateway::remote_name(std::uint32_t peer) const noexcept {
  const Impl::Remote* r = impl_->remote_at(peer);
  return r ? std::string_view(r->name) : std::string_view();
}

void Gateway::run_thread(Wake wake, std::uint32_t, std::atomic<std::uint32_t>* started) noexcept {
  Impl& m = *impl_;
  detail::ThreadCtx* me = &detail::tl_ctx;
  me->current = this;
  Runtime::deliver_start(*this, me);
  if (started) {
    started->store(1, std::memory_order_release);
    detail::futex_wake_all(*started);
  }
  std::atomic<std::uint32_t>& phase = Runtime::phase(*this);
  std::uint32_t idle = 0, round = 0;
  for (;;) {
    std::uint32_t n = 0, k = 0;
    try {
      m.housekeeping();
      n = Runtime::drain(*this, m.cfg.batch, me);
      if (m.stash) m.retry_stash();
      if (!m.stash) k = m.receive(m.cfg.batch);
      if (!m.backlogged.empty()) m.flush_backlogs();
    } catch (const std::exception& e) {  // allocation failure building a reason or backlog
      std::fprintf(stderr, "tern: gateway '%s': %s\n", std::string(name()).c_str(), e.what());
    }
    const std::uint32_t ph = phase.load(std::memory_order_acquire);
    if (ph != 0) [[unlikely]] {
      Runtime::ack_phase(*this);
      if (ph == 2 && n == 0 && mailbox().drained() && !m.stash) break;
    }
    if (n || k) {
      idle = 0;
      round = 0;
      // The socket said EAGAIN and the mailbox had nothing: one more turn would only ask
      // both again (two system calls per frame). Park now, unless told to spin first.
      const bool settled = n == 0 && m.pull_drained && !m.stash && wake == Wake::futex &&
                           m.cfg.spin_turns == 0;
      if (!settled) continue;
    } else if (m.stash) {  // a local mailbox is full: keep forwarding outbound, retry with backoff
      detail::backoff(round);
      continue;
    } else if (wake == Wake::spin) {
      detail::cpu_relax();
      continue;
    } else if (wake == Wake::yield) {
      sched_yield();
      continue;
    } else if (++idle <= m.cfg.spin_turns) {
      detail::cpu_relax();
      continue;
    }
    idle = 0;
    if (!mailbox().begin_park(
            [&]() noexcept { return phase.load(std::memory_order_seq_cst) != ph; }))
      continue;
    m.wait();
    mailbox().end_park();
  }
  const Shutdown shutdown;
  Runtime::deliver(*this, message_info_v<Shutdown>, &shutdown, me);
  m.close_sockets();
  phase.store(3, std::memory_order_release);
  me->current = nullptr;
}

}  // namespace tern
