// The gateway actor: ZeroMQ transport (one PULL, one PUSH per peer), the remote-actor
// table, inbound delivery with Rejects, outbound encoding, and its own thread loop that
// waits on the socket and the mailbox's eventfd together.
#include <tern/gateway.hpp>

#include <sched.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <zmq.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <deque>
#include <mutex>
#include <stdexcept>
#include <unordered_map>
#include <vector>

#include <tern/manager.hpp>

#include "codec.hpp"
#include "runtime.hpp"

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

bool supported_endpoint(std::string_view e) {
  return e.substr(0, 6) == "tcp://" || e.substr(0, 6) == "ipc://";
}

/// Single-writer counter (the gateway thread), read by anyone.
inline void bump(std::atomic<std::uint64_t>& c, std::uint64_t n = 1) noexcept {
  c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

std::string zmq_error(const char* what, std::string_view value) {
  return std::string("tern: gateway: ") + what + " '" + std::string(value) +
         "': " + zmq_strerror(zmq_errno());
}

}  // namespace

struct Gateway::Impl {
  struct Remote {
    std::string name;       ///< remote actor name
    std::string connect;    ///< address to connect to
    std::string name_json;  ///< name as a quoted JSON string
    std::string endpoint_json;  ///< endpoint as a quoted JSON string (for proxied senders)
  };
  struct Peer {
    void* sock = nullptr;  ///< nullptr: closed (evicted); reopened on next use
    std::string addr;
    std::uint64_t last_used = 0;
    std::deque<gw::Buffer> backlog;  ///< frames waiting for the high-water mark to drain
  };
  static constexpr std::uint32_t kNoPeer = 0xFFFFFFFFu;

  Impl(Gateway& g, const wire::Registry& r, GatewayConfig c)
      : self(g), reg(r), cfg(std::move(c)), decoder(cfg.max_frame_bytes, cfg.max_depth) {}

  Gateway& self;
  wire::Registry reg;
  GatewayConfig cfg;
  void* ctx = nullptr;
  void* pull = nullptr;
  int wake_fd = -1;
  std::string bound;            ///< what ZeroMQ reports as bound
  std::string advertised;       ///< our sender_endpoint
  std::string advertised_json;  ///< the same, quoted

  // ---- remote actors: appended under the lock, read lock-free by index ----------------
  std::mutex remotes_mu;
  std::unique_ptr<std::atomic<Remote*>[]> remotes;  ///< [1, max_remotes]
  std::vector<std::unique_ptr<Remote>> remote_storage;
  StringMap<std::uint32_t> remote_index;  ///< name '\0' connect -> index (under the lock)
  std::atomic<std::uint32_t> remote_count{0};

  // ---- the gateway thread's own state -------------------------------------------------
  StringMap<std::uint32_t> sender_cache;  ///< raw "actor\0endpoint" -> remote index
  StringMap<ActorRef> exposed;            ///< set-up only, then read-only
  StringMap<ActorRef> receivers;          ///< resolved receiver names
  // one-entry caches in front of the maps: traffic mostly repeats its sender and receiver
  std::string last_receiver_name, last_sender_actor, last_sender_endpoint;
  ActorRef last_receiver;
  std::uint32_t last_sender = 0;
  std::vector<std::uint32_t> remote_peer; ///< remote index -> peer index
  std::vector<Peer> peers;
  StringMap<std::uint32_t> peer_by_addr;
  std::vector<std::uint32_t> backlogged;  ///< peers with a non-empty backlog
  std::vector<zmq_pollitem_t> poll_items;
  std::uint32_t open_peers = 0;
  std::uint64_t use_clock = 0;
  gw::FrameDecoder decoder;
  gw::Buffer out;  ///< the outbound frame being written
  gw::Buffer key;  ///< scratch for map keys
  // why alignas: the decoded message is built here, then relocated into a mailbox slot.
  alignas(kMaxMessageAlign) unsigned char staging[kMaxMessageBytes];
  bool stash = false;  ///< staging holds a message a full mailbox refused: retry it
  ActorRef stash_to, stash_from;
  const MessageInfo* stash_info = nullptr;
  bool sockets_closed = false;

  // ---- counters: written by the gateway thread, read by anyone ------------------------
  std::atomic<std::uint64_t> frames_in{0}, messages_in{0}, messages_out{0}, rejects_sent{0},
      rejects_received{0}, inbound_waits{0}, senders_untracked{0}, peers_open{0},
      peers_evicted{0}, backlog_frames{0};
  std::array<std::atomic<std::uint64_t>, kGatewayDropCauses> drops{};

  void drop(GatewayDrop d, std::uint64_t n = 1) noexcept {
    bump(drops[static_cast<std::size_t>(d)], n);
  }

  // ---- set-up -----------------------------------------------------------------------------
  void open() {
    if (cfg.max_frame_bytes == 0) throw std::invalid_argument("tern: gateway: max_frame_bytes is 0");
    if (cfg.max_remotes == 0 || cfg.max_remotes > (1u << 30))
      throw std::invalid_argument("tern: gateway: max_remotes " + std::to_string(cfg.max_remotes) +
                                  " is outside 1..2^30");
    if (cfg.max_peers == 0) throw std::invalid_argument("tern: gateway: max_peers is 0");
    if (cfg.batch == 0) throw std::invalid_argument("tern: gateway: batch is 0");
    remotes = std::make_unique<std::atomic<Remote*>[]>(cfg.max_remotes + 1);
    ctx = zmq_ctx_new();
    if (!ctx) throw std::runtime_error(zmq_error("cannot create a ZeroMQ context for", cfg.bind));
    pull = zmq_socket(ctx, ZMQ_PULL);
    if (!pull) throw std::runtime_error(zmq_error("cannot create the PULL socket for", cfg.bind));
    const int linger = 0;
    zmq_setsockopt(pull, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(pull, ZMQ_RCVHWM, &cfg.recv_hwm, sizeof cfg.recv_hwm);
    if (cfg.socket_max_frame_bytes) {
      const auto cap = static_cast<std::int64_t>(
          std::max(cfg.socket_max_frame_bytes, cfg.max_frame_bytes + 1));
      zmq_setsockopt(pull, ZMQ_MAXMSGSIZE, &cap, sizeof cap);
    }
    if (zmq_bind(pull, cfg.bind.c_str()) != 0)
      throw std::runtime_error(zmq_error("cannot bind", cfg.bind));
    char buf[512];
    std::size_t len = sizeof buf;
    if (zmq_getsockopt(pull, ZMQ_LAST_ENDPOINT, buf, &len) == 0 && len > 1)
      bound.assign(buf, len - 1);
    else
      bound = cfg.bind;
    advertised = cfg.advertise.empty() ? connect_address(bound) : cfg.advertise;
    gw::json::append_string(advertised_json, advertised);
    wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake_fd < 0) throw std::runtime_error("tern: gateway: eventfd failed");
    out.reserve(4096);
    key.reserve(256);
  }

  void close_sockets() noexcept {
    if (sockets_closed) return;
    sockets_closed = true;
    for (Peer& p : peers) {
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
    if (pull) zmq_close(pull);
    pull = nullptr;
  }

  ~Impl() {
    close_sockets();
    if (ctx) zmq_ctx_term(ctx);
    if (wake_fd >= 0) ::close(wake_fd);
  }

  // ---- remotes ----------------------------------------------------------------------------
  /// Index of (name, endpoint), adding it; 0 when the table is full.
  std::uint32_t intern(std::string_view name, std::string_view endpoint) {
    std::string connect = connect_address(endpoint);
    std::string k;
    k.reserve(name.size() + 1 + connect.size());
    k.append(name).push_back('\0');
    k.append(connect);
    std::lock_guard lock(remotes_mu);
    if (auto it = remote_index.find(k); it != remote_index.end()) return it->second;
    const std::uint32_t n = remote_count.load(std::memory_order_relaxed);
    if (n >= cfg.max_remotes) return 0;
    auto r = std::make_unique<Remote>();
    r->name.assign(name);
    r->connect = std::move(connect);
    gw::json::append_string(r->name_json, r->name);
    gw::json::append_string(r->endpoint_json, endpoint);
    const std::uint32_t idx = n + 1;
    remotes[idx].store(r.get(), std::memory_order_release);
    remote_storage.push_back(std::move(r));
    remote_index.emplace(std::move(k), idx);
    remote_count.store(idx, std::memory_order_release);
    return idx;
  }

  const Remote* remote_at(std::uint32_t idx) const noexcept {
    if (idx == 0 || idx > cfg.max_remotes) return nullptr;
    return remotes[idx].load(std::memory_order_acquire);
  }

  /// Gateway thread: the remote index of an inbound sender (0: table full).
  std::uint32_t sender_index(std::string_view actor, std::string_view endpoint) {
    // Most frames come from the sender of the one before: check that first.
    if (last_sender && actor == last_sender_actor && endpoint == last_sender_endpoint) [[likely]]
      return last_sender;
    const std::uint32_t idx = sender_index_slow(actor, endpoint);
    if (idx) {
      last_sender = idx;
      last_sender_actor.assign(actor);
      last_sender_endpoint.assign(endpoint);
    }
    return idx;
  }
  std::uint32_t sender_index_slow(std::string_view actor, std::string_view endpoint) {
    key.clear();
    key.append(actor).push_back('\0');
    key.append(endpoint);
    const std::string_view k(key.data(), key.size());
    if (auto it = sender_cache.find(k); it != sender_cache.end()) [[likely]]
      return it->second;
    const std::uint32_t idx = intern(actor, endpoint);
    if (idx) sender_cache.emplace(std::string(k), idx);
    return idx;
  }

  // ---- receivers --------------------------------------------------------------------------
  ActorRef find_receiver(std::string_view name) {
    if (last_receiver && name == last_receiver_name) [[likely]]
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
  std::uint32_t peer_for_address(std::string_view addr) {
    if (auto it = peer_by_addr.find(addr); it != peer_by_addr.end()) return it->second;
    if (peers.size() >= std::size_t{cfg.max_remotes} + cfg.max_peers) return kNoPeer;
    peers.emplace_back();
    peers.back().addr.assign(addr);
    const auto idx = static_cast<std::uint32_t>(peers.size() - 1);
    peer_by_addr.emplace(std::string(addr), idx);
    return idx;
  }

  void evict_one(std::uint32_t keep) {
    std::uint32_t victim = kNoPeer, busy_victim = kNoPeer;
    for (std::uint32_t i = 0; i < peers.size(); ++i) {
      const Peer& p = peers[i];
      if (!p.sock || i == keep) continue;
      std::uint32_t& slot = p.backlog.empty() ? victim : busy_victim;
      if (slot == kNoPeer || p.last_used < peers[slot].last_used) slot = i;
    }
    if (victim == kNoPeer) victim = busy_victim;
    if (victim == kNoPeer) return;
    Peer& p = peers[victim];
    if (!p.backlog.empty()) {
      drop(GatewayDrop::peer_backlog_full, p.backlog.size());
      backlog_frames.fetch_sub(p.backlog.size(), std::memory_order_relaxed);
      p.backlog.clear();
      std::erase(backlogged, victim);
    }
    zmq_close(p.sock);  // ZeroMQ still flushes what it holds, within the linger time
    p.sock = nullptr;
    --open_peers;
    bump(peers_evicted);
    peers_open.store(open_peers, std::memory_order_relaxed);
  }

  bool ensure_open(std::uint32_t idx) {
    Peer& p = peers[idx];
    if (p.sock) return true;
    if (!supported_endpoint(p.addr)) return false;
    if (open_peers >= cfg.max_peers) evict_one(idx);
    void* s = zmq_socket(ctx, ZMQ_PUSH);
    if (!s) return false;
    zmq_setsockopt(s, ZMQ_SNDHWM, &cfg.send_hwm, sizeof cfg.send_hwm);
    zmq_setsockopt(s, ZMQ_LINGER, &cfg.linger_ms, sizeof cfg.linger_ms);
    if (zmq_connect(s, p.addr.c_str()) != 0) {
      zmq_close(s);
      return false;
    }
    peers[idx].sock = s;
    ++open_peers;
    peers_open.store(open_peers, std::memory_order_relaxed);
    return true;
  }

  /// Hands one frame to peer `idx` (or its backlog). Counts what it cannot send; true when
  /// the frame was sent or queued.
  bool send_frame(std::uint32_t idx, const char* data, std::size_t size) {
    if (idx == kNoPeer || !ensure_open(idx)) {
      drop(GatewayDrop::bad_endpoint);
      return false;
    }
    Peer& p = peers[idx];
    p.last_used = ++use_clock;
    if (p.backlog.empty()) [[likely]] {
      if (zmq_send(p.sock, data, size, ZMQ_DONTWAIT) >= 0) [[likely]] {
        bump(messages_out);
        return true;
      }
      if (zmq_errno() != EAGAIN) {
        drop(GatewayDrop::send_failed);
        return false;
      }
      backlogged.push_back(idx);
    } else if (p.backlog.size() >= cfg.max_backlog) {
      drop(GatewayDrop::peer_backlog_full);
      return false;
    }
    p.backlog.emplace_back(data, size);
    bump(backlog_frames);
    return true;
  }

  /// Sends what the backlogs hold, in order, until ZeroMQ says "full" again.
  void flush_backlogs() {
    for (std::size_t i = 0; i < backlogged.size();) {
      Peer& p = peers[backlogged[i]];
      std::size_t sent = 0;
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
        p.backlog.pop_front();
        ++sent;
      }
      backlog_frames.fetch_sub(sent, std::memory_order_relaxed);
      if (p.backlog.empty()) {
        backlogged[i] = backlogged.back();
        backlogged.pop_back();
      } else {
        ++i;
      }
    }
  }

  // ---- outbound ---------------------------------------------------------------------------
  void forward(const MessageInfo& info, const void* msg, std::uint32_t target, ActorRef from) {
    const Remote* r = remote_at(target);
    const wire::WireType* t = reg.find(info.id);
    if (!r || !t || !same_type(*t->info, info)) [[unlikely]] {  // by type, not id alone
      drop(GatewayDrop::unregistered_type);
      return;
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
      out.append(via->name_json);
      out.append(",\"sender_endpoint\":", 19);
      out.append(via->endpoint_json);
    } else {
      out.append("null,\"sender_endpoint\":null", 27);
    }
    out.append(",\"receiver\":", 12);
    out.append(r->name_json);
    out.append(",\"message_type\":", 16);
    out.append(t->name_json);
    out.append(",\"message\":", 11);
    if (!gw::encode_payload(*t, msg, out, nullptr)) {
      drop(GatewayDrop::encode_failed);
      return;
    }
    out.push_back('}');
    std::uint32_t peer = target < remote_peer.size() ? remote_peer[target] : kNoPeer;
    if (peer == kNoPeer) {
      peer = peer_for_address(r->connect);
      if (remote_peer.size() <= target) remote_peer.resize(target + 1, kNoPeer);
      remote_peer[target] = peer;
    }
    send_frame(peer, out.data(), out.size());
  }

  void send_reject(const gw::Envelope& env, std::string_view reason) {
    // Only to a known sender, and never a Reject for a Reject (two peers could bounce
    // them forever).
    if (!env.replyable() || env.message_type == "Reject") return;
    out.clear();
    out.append("{\"sender_actor\":null,\"sender_endpoint\":null,\"receiver\":", 55);
    gw::json::append_string(out, env.sender_actor);
    out.append(",\"message_type\":\"Reject\",\"message\":{\"message_type\":", 51);
    gw::json::append_string(out, env.message_type);
    out.append(",\"reason\":", 10);
    gw::json::append_string(out, reason);
    out.append(",\"rejected_by\":", 15);
    gw::json::append_string(out, env.receiver);
    out.append("}}", 2);
    if (send_frame(peer_for_address(connect_address(env.sender_endpoint)), out.data(), out.size()))
      bump(rejects_sent);
  }

  // ---- inbound ----------------------------------------------------------------------------
  void handle_frame(const char* data, std::size_t size) {
    ActorRef target;
    gw::FrameResult r = decoder.decode(data, size, reg, staging, [&](std::string_view name) {
      target = find_receiver(name);
      return static_cast<bool>(target);
    });
    if (!r.ok()) [[unlikely]] {
      drop(r.cause);
      send_reject(r.env, r.reason);
      return;
    }
    ActorRef from;
    if (r.env.replyable()) {
      if (const std::uint32_t idx = sender_index(r.env.sender_actor, r.env.sender_endpoint))
        from = ActorRef(&self, idx);
      else
        bump(senders_untracked);
    }
    if (r.type->is_reject) bump(rejects_received);
    deliver(target, *r.type->info, from);
  }

  /// Moves the message in `staging` into `to`'s mailbox, or keeps it there for a retry
  /// (stash) when the mailbox is full: reading the socket pauses, so ZeroMQ's high-water
  /// mark pushes back on the sender instead of us dropping.
  void deliver(ActorRef to, const MessageInfo& info, ActorRef from) {
    // Inline dispatch (on by default): run an idle receiver's handler on this thread. Not while our
    // own mailbox is half full: the handler's sends to remote actors land there, and a
    // blocking send into it from its only consumer would never return.
    if (cfg.inline_dispatch && !to.is_remote() && to.actor() != &self &&
        self.mailbox().depth() < self.mailbox().capacity() / 2 &&
        Runtime::try_run_inline(*to.actor(), info, staging, from, &detail::tl_ctx)) {
      destroy_message(info, staging);
      bump(messages_in);
      return;
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
    while (n < limit && !stash) {
      zmq_msg_init(&msg);
      if (zmq_msg_recv(&msg, pull, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&msg);
        break;  // EAGAIN (nothing waiting) or EINTR: either way, back to the loop
      }
      ++n;
      bump(frames_in);
      if (zmq_msg_more(&msg)) [[unlikely]] {
        handle_multipart(msg);
      } else {
        handle_frame(static_cast<const char*>(zmq_msg_data(&msg)), zmq_msg_size(&msg));
      }
      zmq_msg_close(&msg);
      // An inline handler queued outbound work (a reply): send it before reading on.
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

  /// Blocks in poll() on the PULL socket (unless a full mailbox paused reading), the
  /// mailbox's eventfd, and peers waiting to drain a backlog.
  void wait() {
    poll_items.clear();
    poll_items.push_back(zmq_pollitem_t{nullptr, wake_fd, ZMQ_POLLIN, 0});
    if (!stash) poll_items.push_back(zmq_pollitem_t{pull, 0, ZMQ_POLLIN, 0});
    for (std::uint32_t i : backlogged)
      poll_items.push_back(zmq_pollitem_t{peers[i].sock, 0, ZMQ_POLLOUT, 0});
    const int rc = zmq_poll(poll_items.data(), static_cast<int>(poll_items.size()), -1);
    if (rc > 0 && (poll_items[0].revents & ZMQ_POLLIN)) {
      eventfd_t v;
      (void)eventfd_read(wake_fd, &v);  // reset; EAGAIN if another wake already read it
    }
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
  if (!supported_endpoint(endpoint))
    throw std::invalid_argument("tern: gateway: endpoint '" + std::string(endpoint) +
                                "' is not tcp:// or ipc://");
  if (actor.empty()) throw std::invalid_argument("tern: gateway: empty remote actor name");
  const std::uint32_t idx = impl_->intern(actor, endpoint);
  if (!idx)
    throw std::length_error("tern: gateway: more than max_remotes (" +
                            std::to_string(impl_->cfg.max_remotes) + ") remote actors");
  return ActorRef(this, idx);
}

void Gateway::expose(std::string_view name, ActorRef target) {
  if (name.empty() || !target)
    throw std::invalid_argument("tern: gateway: expose needs a name and a non-empty ref");
  impl_->exposed.insert_or_assign(std::string(name), target);
}

std::string_view Gateway::endpoint() const noexcept { return impl_->advertised; }
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
  s.remotes = m.remote_count.load(std::memory_order_relaxed);
  s.peers_open = rd(m.peers_open);
  s.peers_evicted = rd(m.peers_evicted);
  s.backlog = rd(m.backlog_frames);
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
  impl_->forward(info, msg, peer, from);
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
      continue;
    }
    if (m.stash) {  // a local mailbox is full: keep forwarding outbound, retry with backoff
      detail::backoff(round);
      continue;
    }
    if (wake == Wake::spin) {
      detail::cpu_relax();
      continue;
    }
    if (wake == Wake::yield) {
      sched_yield();
      continue;
    }
    if (++idle <= m.cfg.spin_turns) {
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
