// Shared memory between tern processes (tern/shm.hpp, docs/shared-memory.md): the node and
// its segment, links to other nodes (the producer side), the exported actor's inbound
// connections (the consumer side, run by the actor's own thread from Runtime::run_loop),
// and the monitor thread that notices dead peers, lost links and returning nodes.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>
#include <dirent.h>

#include <algorithm>
#include <condition_variable>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <stdexcept>
#include <thread>

#include <tern/detail/shm_layout.hpp>
#include <tern/shm.hpp>

#include "runtime.hpp"

namespace tern {

using namespace detail::shm;

namespace detail {

namespace {

std::string sys_error(const std::string& what) { return what + ": " + std::strerror(errno); }

/// An OFD lock request of `type` on byte `off`.
int lock_op(int fd, int cmd, short type, std::uint64_t off, short* found = nullptr) noexcept {
  struct flock fl {};
  fl.l_type = type;
  fl.l_whence = SEEK_SET;
  fl.l_start = static_cast<off_t>(off);
  fl.l_len = 1;
  const int r = fcntl(fd, cmd, &fl);
  if (found) *found = fl.l_type;
  return r;
}
/// Takes an OFD write lock on byte `off` of `fd` without waiting. The kernel drops it when
/// the last descriptor of that open file goes, so a lock is how a process says "alive".
bool lock_byte(int fd, std::uint64_t off) noexcept { return lock_op(fd, F_OFD_SETLK, F_WRLCK, off) == 0; }
void unlock_byte(int fd, std::uint64_t off) noexcept { (void)lock_op(fd, F_OFD_SETLK, F_UNLCK, off); }
/// Does another open file hold a lock on byte `off`?
bool byte_locked(int fd, std::uint64_t off) noexcept {
  short found = F_UNLCK;
  if (lock_op(fd, F_OFD_GETLK, F_WRLCK, off, &found) != 0) return true;  // cannot tell: not dead
  return found != F_UNLCK;
}

bool valid_node_name(std::string_view n) {
  if (n.empty() || n.size() >= kNameBytes) return false;
  for (const char c : n)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
          c == '.' || c == '-'))
      return false;
  return n != "." && n != "..";
}

void copy_name(char* dst, std::size_t cap, std::string_view s) {
  const std::size_t n = std::min(s.size(), cap - 1);
  std::memcpy(dst, s.data(), n);
  dst[n] = 0;
}

std::string fixed_name(const char* s, std::size_t cap) { return std::string(s, strnlen(s, cap)); }

TypeEntry fingerprint(const MessageInfo& m) {
  TypeEntry t{};
  t.id = m.id;
  t.size = m.size;
  t.align = m.align;
  t.flags = m.name.size() >= kTypeNameBytes ? 1u : 0u;
  t.layout = m.layout_hash ? m.layout_hash() : 0;
  t.name_hash = fnv1a(m.name);
  copy_name(t.name, kTypeNameBytes, m.name);
  return t;
}

/// "" when the peer's entry describes the same type as `m`; else the difference, in words.
std::string fingerprint_difference(const TypeEntry& peer, const MessageInfo& m) {
  const TypeEntry mine = fingerprint(m);
  auto both = [](const char* what, auto here, auto there) {
    return std::string(what) + " " + std::to_string(here) + " here, " + std::to_string(there) +
           " in the peer";
  };
  if (mine.name_hash != peer.name_hash)
    return "name '" + std::string(m.name) + "' here, '" + fixed_name(peer.name, kTypeNameBytes) + "' in the peer";
  if (mine.size != peer.size) return both("size", mine.size, peer.size);
  if (mine.align != peer.align) return both("alignment", mine.align, peer.align);
  if (mine.layout != peer.layout) return "field layout (TERN_WIRE) differs";
  if (!m.trivially_copyable) return "not trivially copyable here";
  return "";
}

std::uint64_t random_nonce() {
  std::uint64_t v = 0;
  if (getrandom(&v, sizeof v, 0) != sizeof v) v = static_cast<std::uint64_t>(now_ns()) ^ (std::uint64_t(getpid()) << 32);
  return v | 1;  // never 0 (0 in a slot means "no segment")
}

constexpr std::uint32_t kReplyBit = 0x80000000u;  ///< remote index: an export index, not a name id
constexpr std::uint32_t kMaxNames = 256;          ///< actor names one link resolves

}  // namespace

/// One attachment of a link to a peer's segment. Immutable once published, except through
/// the segment itself; retired (never freed before the node) when the peer goes away.
struct LinkConn {
  int fd = -1;
  unsigned char* base = nullptr;
  std::size_t len = 0;
  Layout layout;
  std::uint64_t nonce = 0;  ///< the peer segment's
  std::uint32_t slots = 0;
  struct Ex {
    std::string name;
    Export* x = nullptr;
    Slot* slot = nullptr;  ///< ours (locked), or nullptr when every slot was taken
    RingWriter normal, prio;
    std::uint32_t max_bytes = 0;
    std::uint32_t prio_max_bytes = 0;
    bool futex = false;
    std::vector<std::uint16_t> code_of;  ///< by our type index: 0 not taken, else code + 1
  };
  std::vector<Ex> ex;
  std::atomic<std::int16_t> ex_of[kMaxNames];  ///< by name id: export index, or -1
  /// kind = spsc: the one thread (or actor) that sends through each export's connection
  std::unique_ptr<std::atomic<const void*>[]> producer;
};

/// What the node needs of Actor's private parts.
struct ShmLinkAccess {
  static void make_link(Actor& a) noexcept { a.shm_link_ = true; }
  static void set_export(Actor& a, ShmInbox* in, const void* node, std::uint32_t e) noexcept {
    a.shm_in_ = in;
    a.shm_node_ = node;
    a.shm_export_ = e;
  }
  static bool started(const Actor& a) noexcept { return a.started_.load(std::memory_order_acquire); }
  static bool in_group(const Actor& a) noexcept { return a.group_ != nullptr; }
  static std::uint32_t export_of(const Actor& a, const void* node) noexcept {
    return a.shm_node_ == node ? a.shm_export_ : 0;
  }
  static std::vector<const MessageInfo*> handled(const Actor& a) {
    std::vector<const MessageInfo*> v;
    for (const auto& e : a.entries_)
      if (e.info) v.push_back(e.info);
    return v;
  }
};

/// The actor that stands for a peer node: ActorRef(link, id) is a remote actor there. It
/// never runs; sends through it go straight into the peer's segment (shm_route, then the
/// push in ActorRef::push_with).
class ShmLink final : public Actor {
 public:
  ShmLink(ShmNode::Impl* node, std::string peer) : node_(node), peer_(std::move(peer)) {}
  std::string_view remote_name(std::uint32_t id) const noexcept override {
    if (id & kReplyBit) return peer_;
    const std::uint32_t i = id - 1;
    return i < n_names_.load(std::memory_order_acquire) ? std::string_view(names_[i]) : peer_;
  }
  ShmNode::Impl* node_;
  std::string peer_;
  std::atomic<LinkConn*> conn_{nullptr};
  std::vector<std::unique_ptr<LinkConn>> conns_;  ///< every attachment made (guarded by node mu)
  std::string names_[kMaxNames];                  ///< name ids (append-only, node mu)
  std::atomic<std::uint32_t> n_names_{0};
  bool wanted_ = false;  ///< the monitor reattaches when lost (guarded by node mu)
  std::string last_error_;
};

/// An exported actor's inbound connections: consumer state, owned by the actor's thread.
struct ShmInbox {
  ShmNode::Impl* node = nullptr;
  Actor* actor = nullptr;
  std::uint32_t e = 0;
  Export* x = nullptr;
  std::vector<const MessageInfo*> infos;  ///< by type code
  std::vector<std::uint32_t> index;       ///< by type code: our type index
  std::vector<std::uint32_t> sizes;       ///< by type code: its size
  struct Conn {
    std::uint32_t s = 0;
    Slot* slot = nullptr;
    RingReader normal, prio;
    std::uint32_t link = 0;  ///< our link actor for the peer node (0: none)
    bool dead = false;       ///< the peer died: drain what it committed, then free the slot
  };
  std::vector<Conn> conns;
  std::uint32_t seen_gen = ~0u;
  bool closed = false;
  std::uint64_t close_ns = 0;
};

}  // namespace detail

struct ShmNode::Impl {
  ShmConfig cfg;
  std::string path;
  int fd = -1;
  unsigned char* base = nullptr;
  Layout layout;
  std::uint64_t nonce = 0;
  bool started = false;
  struct Ex {
    Actor* actor;
    std::vector<const MessageInfo*> types;
    std::unique_ptr<detail::ShmInbox> inbox;
  };
  std::vector<Ex> exports;
  mutable std::mutex mu;  // links, their names and attachments
  std::map<std::string, std::unique_ptr<detail::ShmLink>, std::less<>> links;
  std::thread monitor;
  std::mutex stop_mu;
  std::condition_variable stop_cv;
  bool stopping = false;
  struct Counters {
    std::atomic<std::uint64_t> connections{0}, peers_lost{0}, failed{0}, undelivered{0},
        links_up{0}, links_lost{0}, mismatch{0}, reclaimed{0};
  } n;

  std::string peer_path(std::string_view node) const { return cfg.dir + "/tern." + std::string(node); }
  void create_segment();
  void monitor_loop();
  void check_own_slots();
  void check_links();
  /// Attaches `link` to its peer's segment. Returns "" or why not; `not_there`: the peer
  /// is absent or not ready (worth retrying), as opposed to refused.
  std::string attach(detail::ShmLink& link, bool& not_there);
  void retire(detail::ShmLink& link, detail::LinkConn* c);
  detail::ShmLink& link_for(std::string_view peer);  // caller holds mu
  std::uint32_t name_id(detail::ShmLink& link, std::string_view actor);  // caller holds mu
  /// The consumer thread met a connection from `peer`: the link replies go through.
  std::uint32_t link_for_peer(const std::string& peer, std::uint64_t nonce);
};

namespace detail {

// ---- the producer side: a send into a peer's segment ---------------------------------------

thread_local constinit ShmRouteCache tl_shm_route __attribute__((tls_model("initial-exec"))){};
std::atomic<std::uint64_t> g_shm_epoch{1};

SendResult shm_route(Actor& link_actor, std::uint32_t remote, const MessageInfo& info, ActorRef from,
                     bool priority) noexcept {
  ShmRouteCache& rc = tl_shm_route;
  rc.link = nullptr;  // until resolved
  ShmLink& link = static_cast<ShmLink&>(link_actor);
  ShmRoute& out = rc.rt;
  LinkConn* c = link.conn_.load(std::memory_order_acquire);
  if (!c)  // the peer is not there (now)
    return link.node_->cfg.wait_for_reconnect ? SendResult::full : SendResult::closed;
  std::uint32_t e;
  if (remote & kReplyBit) {
    e = (remote & ~kReplyBit) - 1;
  } else {
    const std::uint32_t id = remote - 1;
    const std::int16_t ei = id < kMaxNames ? c->ex_of[id].load(std::memory_order_relaxed) : -1;
    if (ei < 0) return SendResult::no_target;
    e = static_cast<std::uint32_t>(ei);
  }
  if (e >= c->ex.size()) return SendResult::no_target;
  LinkConn::Ex& x = c->ex[e];
  if (!x.slot || x.slot->state.load(std::memory_order_relaxed) != kActive) return SendResult::closed;
  const std::uint32_t ti = type_index_of(info);
  const std::uint16_t code = ti < x.code_of.size() ? x.code_of[ti] : 0;
  if (!code) return SendResult::not_accepted;
  if (info.size > (priority ? x.prio_max_bytes : x.max_bytes)) return SendResult::too_large;
  Actor* const fa = from.actor();
  out.ring = priority ? &x.prio : &x.normal;
  out.x = x.x;
  out.code = code - 1u;
  out.sender = fa && !from.is_remote() ? ShmLinkAccess::export_of(*fa, link.node_) : 0;
  out.futex = x.futex;
  out.spsc = !priority && link.node_->cfg.kind == MailboxKind::spsc;
  if (out.spsc) {
    // as Mailbox::check_single_producer: the actor whose handler sends, else the thread
    const void* me = tl_ctx.current ? static_cast<const void*>(tl_ctx.current) : __builtin_thread_pointer();
    std::atomic<const void*>& owner = c->producer[e];
    const void* first = owner.load(std::memory_order_relaxed);
    if (first != me && !(first == nullptr && owner.compare_exchange_strong(first, me))) {
      std::fprintf(stderr,
                   "tern: ShmNode '%s' has kind spsc but a second thread sent to '%s' of node '%s' "
                   "(spsc takes one thread, or one actor, per remote actor); use MailboxKind::mpsc\n",
                   link.node_->cfg.name.c_str(), x.name.c_str(), link.peer_.c_str());
      std::abort();
    }
  }
  out.live = &link.conn_;
  out.conn = c;
  out.state = &x.slot->state;
  rc.link = &link;
  rc.remote = remote;
  rc.priority = priority;
  rc.info = &info;
  rc.from = from;
  rc.current = tl_ctx.current;
  rc.epoch = g_shm_epoch.load(std::memory_order_acquire);
  return SendResult::ok;
}

void shm_wake(Export& x) noexcept {
  if (x.sleeping.load(std::memory_order_seq_cst) && x.sleeping.exchange(0, std::memory_order_seq_cst) == 1) {
    x.doorbell.fetch_add(1, std::memory_order_seq_cst);
    futex_wake_shared(x.doorbell);
  }
}

// ---- the consumer side: run by the exported actor's thread ---------------------------------

namespace {

void ring_doorbell(Export* x) noexcept {
  x->doorbell.fetch_add(1, std::memory_order_seq_cst);
  futex_wake_shared(x->doorbell);
}

/// Frees a slot whose peer is gone: zero both rings, then hand it to the next process.
void free_slot(ShmNode::Impl& n, ShmInbox& in, ShmInbox::Conn& c) noexcept {
  n.n.undelivered.fetch_add(c.normal.pending_bytes(n.cfg.ring_bytes) + c.prio.pending_bytes(kPrioRingBytes),
                            std::memory_order_relaxed);
  c.normal.reset(n.cfg.ring_bytes);
  c.prio.reset(kPrioRingBytes);
  std::uint32_t dead = kDead;
  c.slot->state.compare_exchange_strong(dead, kFree, std::memory_order_acq_rel);
  in.x->conn_gen.fetch_add(1, std::memory_order_acq_rel);
}

/// The consumer's view of slot `s` of the export: both lanes, read from the start.
ShmInbox::Conn conn_of(ShmNode::Impl& n, ShmInbox& in, std::uint32_t s, Slot* slot) {
  ShmInbox::Conn c;
  c.s = s;
  c.slot = slot;
  c.normal = RingReader(&slot->normal, ring_data(n.base, n.layout, n.cfg.slots, n.cfg.ring_bytes, in.e, s, false),
                        n.cfg.ring_bytes);
  c.prio = RingReader(&slot->prio, ring_data(n.base, n.layout, n.cfg.slots, n.cfg.ring_bytes, in.e, s, true),
                      kPrioRingBytes);
  return c;
}

void rescan(ShmInbox& in) {
  ShmNode::Impl& n = *in.node;
  in.seen_gen = in.x->conn_gen.load(std::memory_order_acquire);
  for (std::uint32_t s = 0; s < n.cfg.slots; ++s) {
    Slot* slot = slot_at(n.base, n.layout, n.cfg.slots, in.e, s);
    const std::uint32_t st = slot->state.load(std::memory_order_acquire);
    auto it = std::find_if(in.conns.begin(), in.conns.end(),
                           [&](const ShmInbox::Conn& c) { return c.s == s; });
    const bool known = it != in.conns.end();
    if (st == kActive && !known) {
      ShmInbox::Conn c = conn_of(n, in, s, slot);
      char peer[kNameBytes];
      std::memcpy(peer, slot->peer_node, kNameBytes);
      peer[kNameBytes - 1] = 0;
      const std::uint64_t nonce = slot->peer_nonce;
      try {
        c.link = valid_node_name(peer) ? n.link_for_peer(peer, nonce) : 0;
      } catch (...) {
        c.link = 0;  // replies to it fail (no_target); its messages still arrive
      }
      in.conns.push_back(c);
      n.n.connections.fetch_add(1, std::memory_order_relaxed);
    } else if (st == kDead) {
      if (known) {
        it->dead = true;  // drained first (shm_drain), then freed
      } else {
        ShmInbox::Conn c = conn_of(n, in, s, slot);
        // never read: whatever is in it came before we looked; drop it
        c.normal.reset(n.cfg.ring_bytes);
        c.prio.reset(kPrioRingBytes);
        std::uint32_t dead = kDead;
        slot->state.compare_exchange_strong(dead, kFree, std::memory_order_acq_rel);
        in.x->conn_gen.fetch_add(1, std::memory_order_acq_rel);
      }
    } else if ((st == kFailed || st == kClosed || st == kFree) && known && !it->dead) {
      in.conns.erase(it);
    }
  }
}

void fail_conn(ShmInbox& in, std::size_t i, const char* why) noexcept {
  ShmInbox::Conn& c = in.conns[i];
  std::uint32_t active = kActive;
  c.slot->state.compare_exchange_strong(active, kFailed, std::memory_order_acq_rel);
  in.x->conn_gen.fetch_add(1, std::memory_order_acq_rel);
  in.node->n.failed.fetch_add(1, std::memory_order_relaxed);
  std::fprintf(stderr,
               "tern: shm node '%s': actor '%s': connection %u (peer pid %u) failed: %s; "
               "sends through it now return closed\n",
               in.node->cfg.name.c_str(), in.actor->name().data(), c.s, c.slot->peer_pid, why);
  in.conns.erase(in.conns.begin() + static_cast<std::ptrdiff_t>(i));
}

}  // namespace

std::uint32_t Runtime::shm_drain(Actor& a, ShmInbox& in, std::uint32_t limit, ThreadCtx* me) noexcept {
  if (in.x->conn_gen.load(std::memory_order_acquire) != in.seen_gen) [[unlikely]] {
    try {
      rescan(in);
    } catch (...) {
      // bad_alloc: the new connection is picked up at the next change
    }
  }
  bool any = false;
  for (const ShmInbox::Conn& c : in.conns) any |= !c.normal.empty() || !c.prio.empty() || c.dead;
  if (!any) return 0;
  while (!a.try_lock(me)) cpu_relax();
  std::uint32_t n = 0;
  const std::uint32_t n_types = static_cast<std::uint32_t>(in.sizes.size());
  const std::uint32_t* const sizes = in.sizes.data();
  const std::uint32_t* const index = in.index.data();
  // One ring up to the batch limit: nullptr, or why its connection must fail.
  auto drain_ring = [&](RingReader& ring, std::uint32_t link) noexcept -> const char* {
    while (n < limit) {
      bool bad = false;
      std::uint32_t w;
      Record* r = ring.front(w, bad);
      if (!r) return bad ? "a commit word this format never writes" : nullptr;
      const std::uint32_t code = r->type;
      if (const char* why = check_record(w, code, n_types, sizes)) [[unlikely]]
        return why;
      const std::uint32_t sender = r->sender;
      a.cur_.sender = sender && link ? link : 0;
      a.cur_.sender_remote = sender && link ? (kReplyBit | sender) : 0;
      try {
        a.dispatch_indexed(index[code], r->body());
      } catch (...) {
        note_handler_exception(a, *in.infos[code]);
      }
      ring.pop(w);
      ++n;
    }
    return nullptr;
  };
  for (std::size_t i = 0; i < in.conns.size() && n < limit;) {
    ShmInbox::Conn& c = in.conns[i];
    // the priority lane first, once per batch (a priority message waits at most one batch)
    const char* why = drain_ring(c.prio, c.link);
    if (!why) why = drain_ring(c.normal, c.link);
    c.prio.release();
    c.normal.release();
    if (why) [[unlikely]] {
      fail_conn(in, i, why);
      continue;
    }
    if (c.dead && c.normal.empty() && c.prio.empty()) [[unlikely]] {
      free_slot(*in.node, in, c);
      in.conns.erase(in.conns.begin() + static_cast<std::ptrdiff_t>(i));
      continue;
    }
    ++i;
  }
  a.cur_ = Actor::Current{};
  if (n) a.handled_.store(a.handled_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  a.unlock();
  return n;
}

void Runtime::shm_close(ShmInbox& in) noexcept {
  if (in.closed) return;
  in.closed = true;
  in.close_ns = now_ns();
  in.x->closed.store(1, std::memory_order_seq_cst);
  for (ShmInbox::Conn& c : in.conns) {
    std::uint32_t active = kActive;
    c.slot->state.compare_exchange_strong(active, kClosed, std::memory_order_acq_rel);
  }
  in.x->conn_gen.fetch_add(1, std::memory_order_acq_rel);
}

bool Runtime::shm_drained(ShmInbox& in) noexcept {
  // why bounded: a producer killed between its claim and its commit never commits
  if (now_ns() - in.close_ns > 100'000'000u) return true;
  for (const ShmInbox::Conn& c : in.conns)
    if (!c.normal.empty() || !c.prio.empty()) return false;
  return true;
}

bool Runtime::shm_begin_park(ShmInbox& in) noexcept {
  // Dekker with the producers' push (ActorRef::push_with, shm_wake): our seq_cst store of `sleeping`, then the rings; a producer's
  // seq_cst commit, then `sleeping`. A doorbell bumped after `seen` makes the wait return.
  in.x->sleeping.store(1, std::memory_order_seq_cst);
  if (in.x->conn_gen.load(std::memory_order_seq_cst) != in.seen_gen) return false;
  for (const ShmInbox::Conn& c : in.conns)
    if (!c.normal.empty_sc() || !c.prio.empty_sc() || c.dead) return false;
  return true;
}

void Runtime::shm_park(Actor& a, ShmInbox& in, std::atomic<std::uint32_t>& phase,
                       std::uint32_t ph) noexcept {
  const std::uint32_t seen = in.x->doorbell.load(std::memory_order_seq_cst);
  auto cancel = [&]() noexcept { return phase.load(std::memory_order_seq_cst) != ph; };
  if (!a.mailbox_.begin_park(cancel)) return;
  if (shm_begin_park(in)) {
    // bounded: the monitor's view of dead peers reaches us through conn_gen, which it bumps
    // with a doorbell ring; the timeout is a backstop, not the mechanism
    futex_wait_shared(in.x->doorbell, seen, 100'000);
  }
  in.x->sleeping.store(0, std::memory_order_relaxed);
  a.mailbox_.end_park();
}


}  // namespace detail

// ---- the node -----------------------------------------------------------------------------

using detail::LinkConn;
using detail::ShmLink;
using detail::ShmLinkAccess;

ShmNode::ShmNode(ShmConfig cfg) : impl_(std::make_unique<Impl>()) {
  auto bad = [&](const std::string& what) {
    throw std::invalid_argument("tern: ShmConfig: " + what);
  };
  if (!detail::valid_node_name(cfg.name))
    bad("name '" + cfg.name + "' must be 1..63 characters of [A-Za-z0-9_.-]");
  if (!power_of_two(cfg.ring_bytes) || cfg.ring_bytes < kMinRingBytes || cfg.ring_bytes > kMaxRingBytes)
    bad("ring_bytes " + std::to_string(cfg.ring_bytes) + " must be a power of two in 4096..268435456");
  if (cfg.slots == 0 || cfg.slots > kMaxSlots) bad("slots " + std::to_string(cfg.slots) + " is outside 1..64");
  if (cfg.mode & ~0777u) bad("mode " + std::to_string(cfg.mode) + " has bits outside 0777");
  if (cfg.monitor_interval_us < 100 || cfg.monitor_interval_us > 1'000'000)
    bad("monitor_interval_us " + std::to_string(cfg.monitor_interval_us) + " is outside 100..1000000");
  if (cfg.dir.empty()) bad("dir is empty");
  impl_->cfg = std::move(cfg);
  impl_->path = impl_->peer_path(impl_->cfg.name);
}

ShmNode::~ShmNode() {
  Impl& n = *impl_;
  if (n.monitor.joinable()) {
    {
      const std::lock_guard lock(n.stop_mu);
      n.stopping = true;
    }
    n.stop_cv.notify_all();
    n.monitor.join();
  }
  const std::lock_guard lock(n.mu);
  for (auto& [name, link] : n.links) {
    LinkConn* c = link->conn_.exchange(nullptr);
    (void)c;
    for (auto& conn : link->conns_) {
      if (conn->base) munmap(conn->base, conn->len);
      if (conn->fd >= 0) close(conn->fd);
    }
  }
  // routes cached by any thread may point into these links: void them first
  detail::g_shm_epoch.fetch_add(1, std::memory_order_acq_rel);
  n.links.clear();
  // The exported actors are not touched: they have stopped (Manager::end() comes first) and
  // may already be destroyed (a Manager destroyed before this node).
  if (n.base) {
    header(n.base)->state.store(2, std::memory_order_seq_cst);
    for (std::uint32_t e = 0; e < n.exports.size(); ++e) {
      export_at(n.base, n.layout, e)->closed.store(1, std::memory_order_seq_cst);
      for (std::uint32_t s = 0; s < n.cfg.slots; ++s) {
        Slot* slot = slot_at(n.base, n.layout, n.cfg.slots, e, s);
        std::uint32_t st = kActive;
        slot->state.compare_exchange_strong(st, kClosed);
      }
    }
    unlink(n.path.c_str());
    munmap(n.base, n.layout.total);
  }
  if (n.fd >= 0) close(n.fd);
}

const std::string& ShmNode::path() const noexcept { return impl_->path; }
const std::string& ShmNode::name() const noexcept { return impl_->cfg.name; }

void ShmNode::export_actor(ActorRef actor) {
  if (!actor || actor.is_remote())
    throw std::invalid_argument("tern: ShmNode::export_actor: not a local actor");
  std::vector<const MessageInfo*> types;
  for (const MessageInfo* m : ShmLinkAccess::handled(*actor.actor()))
    if (m->trivially_copyable && m->id < kFirstReservedId) types.push_back(m);
  export_types(actor, std::move(types));
}

void ShmNode::export_types(ActorRef actor, std::vector<const MessageInfo*> types) {
  Impl& n = *impl_;
  if (!actor || actor.is_remote())
    throw std::invalid_argument("tern: ShmNode::export_actor: not a local actor");
  Actor& a = *actor.actor();
  const std::string who = "tern: ShmNode '" + n.cfg.name + "': export of actor '" + std::string(a.name()) + "': ";
  if (n.started) throw std::logic_error(who + "after start()");
  if (a.name().empty() || a.name().size() >= kNameBytes)
    throw std::invalid_argument(who + "the actor needs a name of 1..63 bytes (Manager::manage)");
  if (ShmLinkAccess::in_group(a))
    throw std::invalid_argument(who + "it runs in a Group; an exported actor needs its own thread");
  if (ShmLinkAccess::started(a)) throw std::logic_error(who + "after Manager::init()");
  if (a.mailbox().notify_mode() == detail::Notify::group)
    throw std::invalid_argument(who + "it runs in a Group; an exported actor needs its own thread");
  for (const Impl::Ex& e : n.exports)
    if (e.actor == &a || e.actor->name() == a.name()) throw std::invalid_argument(who + "exported twice");
  if (n.exports.size() >= kMaxExports) throw std::invalid_argument(who + "more than 64 exports");
  if (types.size() > kMaxTypes)
    throw std::invalid_argument(who + std::to_string(types.size()) + " message types, at most 64 cross");
  const auto handled = ShmLinkAccess::handled(a);
  for (const MessageInfo* m : types)
    if (std::none_of(handled.begin(), handled.end(), [&](const MessageInfo* h) { return same_type(*h, *m); }))
      throw std::invalid_argument(who + "it has no handler for " + std::string(m->name));
  n.exports.push_back(Impl::Ex{&a, std::move(types), nullptr});
}

void ShmNode::Impl::create_segment() {
  if (!compute_layout(static_cast<std::uint32_t>(exports.size()), cfg.slots, cfg.ring_bytes,
                      kPrioRingBytes, layout))
    throw std::invalid_argument("tern: ShmNode '" + cfg.name + "': sizes out of bounds");
  for (int attempt = 0;; ++attempt) {
    fd = open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, cfg.mode);
    if (fd >= 0) break;
    if (errno != EEXIST || attempt > 3)
      throw std::runtime_error(detail::sys_error("tern: ShmNode '" + cfg.name + "': cannot create " + path));
    // Someone's segment is there: alive (its owner holds byte 0) or left by a crash.
    const int old = open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (old < 0) continue;  // gone meanwhile
    if (!detail::lock_byte(old, 0)) {
      Header h{};
      const bool got = pread(old, &h, sizeof h, 0) == static_cast<ssize_t>(sizeof h);
      close(old);
      throw std::runtime_error("tern: ShmNode '" + cfg.name + "': " + path +
                               " belongs to a running process" +
                               (got && h.magic == kMagic ? " (pid " + std::to_string(h.owner_pid) + ")" : "") +
                               "; pick another name or stop it");
    }
    unlink(path.c_str());  // stale: its owner died without removing it
    close(old);
    n.reclaimed.fetch_add(1, std::memory_order_relaxed);
  }
  auto fail = [&](const std::string& what) {
    const std::string msg = detail::sys_error("tern: ShmNode '" + cfg.name + "': " + what + " " + path);
    unlink(path.c_str());
    close(fd);
    fd = -1;
    throw std::runtime_error(msg);
  };
  if (fchmod(fd, cfg.mode) != 0) fail("fchmod");
  if (!detail::lock_byte(fd, 0)) fail("cannot lock");
  if (ftruncate(fd, static_cast<off_t>(layout.total)) != 0) fail("cannot size");
  void* m = mmap(nullptr, layout.total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (m == MAP_FAILED) fail("cannot map");
  base = static_cast<unsigned char*>(m);
  nonce = detail::random_nonce();
  Header* h = header(base);
  h->magic = kMagic;
  h->version = kVersion;
  h->header_bytes = sizeof(Header);
  h->total_bytes = layout.total;
  h->nonce = nonce;
  h->n_exports = static_cast<std::uint32_t>(exports.size());
  h->slots = cfg.slots;
  h->ring_bytes = cfg.ring_bytes;
  h->prio_ring_bytes = kPrioRingBytes;
  h->owner_pid = static_cast<std::uint32_t>(getpid());
  detail::copy_name(h->node, kNameBytes, cfg.name);
  const std::uint32_t ring_max = cfg.ring_bytes / 2 - 2 * kRecordUnit;
  for (std::uint32_t e = 0; e < exports.size(); ++e) {
    Ex& ex = exports[e];
    Export* x = export_at(base, layout, e);
    detail::copy_name(x->name, kNameBytes, ex.actor->name());
    x->n_types = static_cast<std::uint32_t>(ex.types.size());
    x->futex = ex.actor->mailbox().notify_mode() == detail::Notify::futex ? 1 : 0;
    x->max_message_bytes = std::min(ex.actor->mailbox().max_message_bytes(), ring_max);
    auto in = std::make_unique<detail::ShmInbox>();
    in->node = this;
    in->actor = ex.actor;
    in->e = e;
    in->x = x;
    for (std::uint32_t t = 0; t < ex.types.size(); ++t) {
      x->types[t] = detail::fingerprint(*ex.types[t]);
      in->infos.push_back(ex.types[t]);
      in->index.push_back(detail::type_index_of(*ex.types[t]));
      in->sizes.push_back(ex.types[t]->size);
    }
    ex.inbox = std::move(in);
  }
  header(base)->state.store(1, std::memory_order_release);
}

void ShmNode::start() {
  Impl& n = *impl_;
  if (n.started) return;
  n.create_segment();
  for (std::uint32_t e = 0; e < n.exports.size(); ++e) {
    Impl::Ex& ex = n.exports[e];
    ShmLinkAccess::set_export(*ex.actor, ex.inbox.get(), &n, e + 1);
    if (export_at(n.base, n.layout, e)->futex)
      ex.actor->mailbox().set_wake_doorbell(&export_at(n.base, n.layout, e)->doorbell);
  }
  n.started = true;
  n.monitor = std::thread([&n] { n.monitor_loop(); });
}

ShmLink& ShmNode::Impl::link_for(std::string_view peer) {
  auto it = links.find(peer);
  if (it != links.end()) return *it->second;
  auto link = std::make_unique<ShmLink>(this, std::string(peer));
  ShmLinkAccess::make_link(*link);
  ShmLink& ref = *link;
  links.emplace(std::string(peer), std::move(link));
  return ref;
}

std::uint32_t ShmNode::Impl::name_id(ShmLink& link, std::string_view actor) {
  const std::uint32_t n_names = link.n_names_.load(std::memory_order_relaxed);
  for (std::uint32_t i = 0; i < n_names; ++i)
    if (link.names_[i] == actor) return i + 1;
  if (n_names >= detail::kMaxNames)
    throw std::runtime_error("tern: ShmNode: more than 256 remote actor names on one link");
  link.names_[n_names] = std::string(actor);
  link.n_names_.store(n_names + 1, std::memory_order_release);
  // the current attachment learns the new name too (later ones compute it)
  if (LinkConn* c = link.conn_.load(std::memory_order_acquire)) {
    for (std::uint32_t e = 0; e < c->ex.size(); ++e)
      if (c->ex[e].name == actor) c->ex_of[n_names].store(static_cast<std::int16_t>(e), std::memory_order_relaxed);
  }
  return n_names + 1;
}

std::string ShmNode::Impl::attach(ShmLink& link, bool& not_there) {
  not_there = true;
  const std::string p = peer_path(link.peer_);
  const int pfd = open(p.c_str(), O_RDWR | O_CLOEXEC);
  if (pfd < 0) return detail::sys_error("cannot open " + p);
  struct stat st {};
  auto give_up = [&](std::string why, void* m = nullptr, std::size_t len = 0) {
    if (m) munmap(m, len);
    close(pfd);
    return why;
  };
  if (fstat(pfd, &st) != 0) return give_up(detail::sys_error("fstat " + p));
  if (st.st_uid != geteuid()) {
    not_there = false;
    return give_up(p + " belongs to uid " + std::to_string(st.st_uid) + ", not to this process's user");
  }
  const std::size_t len = static_cast<std::size_t>(st.st_size);
  if (len < sizeof(Header)) return give_up(p + " is not ready (" + std::to_string(len) + " bytes)");
  void* m = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED, pfd, 0);
  if (m == MAP_FAILED) return give_up(detail::sys_error("cannot map " + p));
  unsigned char* b = static_cast<unsigned char*>(m);
  if (header(b)->state.load(std::memory_order_acquire) != 1 || !detail::byte_locked(pfd, 0))
    return give_up(p + " is not open (being built, closed, or left by a dead process)", m, len);
  Layout l;
  Header hdr;
  std::string why;
  if (!validate(b, len, l, hdr, why)) {
    not_there = false;
    return give_up(p + " refused: " + why, m, len);
  }
  auto c = std::make_unique<LinkConn>();
  c->fd = pfd;
  c->base = b;
  c->len = len;
  c->layout = l;
  // from the checked copy: the segment's own fields may have changed since
  c->nonce = hdr.nonce;
  c->slots = hdr.slots;
  const std::uint32_t ring = hdr.ring_bytes;
  const std::uint32_t prio = hdr.prio_ring_bytes;
  for (auto& v : c->ex_of) v.store(-1, std::memory_order_relaxed);
  // our type table, by index (dense from 1)
  std::vector<const MessageInfo*> ours;
  for (std::uint32_t i = 1; i < Tuning::max_message_types; ++i) {
    const MessageInfo* mi = detail::g_message_types[i].load(std::memory_order_acquire);
    if (!mi) break;
    ours.push_back(mi);
  }
  const std::uint32_t n_exp = hdr.n_exports;
  c->producer = std::make_unique<std::atomic<const void*>[]>(n_exp ? n_exp : 1);
  for (std::uint32_t e = 0; e < n_exp; ++e) {
    Export* x = export_at(b, l, e);
    LinkConn::Ex ex;
    ex.name = detail::fixed_name(x->name, kNameBytes);
    ex.x = x;
    ex.max_bytes = std::min<std::uint32_t>(x->max_message_bytes, ring / 2 - 2 * kRecordUnit);
    ex.prio_max_bytes = std::min<std::uint32_t>(ex.max_bytes, prio / 2 - 2 * kRecordUnit);
    ex.futex = x->futex != 0;
    ex.code_of.assign(ours.size() + 1, 0);
    const std::uint32_t nt = std::min<std::uint32_t>(x->n_types, kMaxTypes);
    for (std::uint32_t t = 0; t < nt; ++t) {
      const TypeEntry te = x->types[t];
      for (std::uint32_t i = 0; i < ours.size(); ++i) {
        if (ours[i]->id != te.id) continue;
        const std::string diff = detail::fingerprint_difference(te, *ours[i]);
        if (!diff.empty()) {
          not_there = false;
          n.mismatch.fetch_add(1, std::memory_order_relaxed);
          std::string msg = "node '" + link.peer_ + "' actor '" + ex.name + "' takes message id " +
                            std::to_string(te.id) + " (" + std::string(ours[i]->name) + "): " + diff;
          c.reset();
          munmap(m, len);
          close(pfd);
          return msg;
        }
        ex.code_of[i + 1] = static_cast<std::uint16_t>(t + 1);
      }
    }
    // claim a connection slot: the lock is the claim; the state says it is ready
    if (!x->closed.load(std::memory_order_acquire)) {
      for (std::uint32_t s = 0; s < c->slots; ++s) {
        Slot* slot = slot_at(b, l, c->slots, e, s);
        if (slot->state.load(std::memory_order_acquire) != kFree) continue;
        if (!detail::lock_byte(pfd, slot_offset(l, c->slots, e, s))) continue;
        if (slot->state.load(std::memory_order_acquire) != kFree) {
          // taken by a peer that died just now: our lock would make it look alive
          detail::unlock_byte(pfd, slot_offset(l, c->slots, e, s));
          continue;
        }
        slot->peer_pid = static_cast<std::uint32_t>(getpid());
        slot->peer_nonce = started ? nonce : 0;
        detail::copy_name(slot->peer_node, kNameBytes, started ? std::string_view(cfg.name) : std::string_view());
        ex.slot = slot;
        ex.normal = RingWriter(&slot->normal, ring_data(b, l, c->slots, ring, e, s, false), ring);
        ex.prio = RingWriter(&slot->prio, ring_data(b, l, c->slots, ring, e, s, true), prio);
        slot->state.store(kActive, std::memory_order_release);
        x->conn_gen.fetch_add(1, std::memory_order_acq_rel);
        detail::ring_doorbell(x);
        break;
      }
    }
    c->ex.push_back(std::move(ex));
  }
  const std::uint32_t n_names = link.n_names_.load(std::memory_order_relaxed);
  for (std::uint32_t i = 0; i < n_names; ++i)
    for (std::uint32_t e = 0; e < c->ex.size(); ++e)
      if (c->ex[e].name == link.names_[i]) c->ex_of[i].store(static_cast<std::int16_t>(e), std::memory_order_relaxed);
  LinkConn* raw = c.get();
  link.conns_.push_back(std::move(c));
  link.conn_.store(raw, std::memory_order_release);
  n.links_up.fetch_add(1, std::memory_order_relaxed);
  not_there = false;
  return "";
}

void ShmNode::Impl::retire(ShmLink& link, LinkConn* c) {
  link.conn_.store(nullptr, std::memory_order_release);
  n.links_lost.fetch_add(1, std::memory_order_relaxed);
  // A sender may still be writing through `c`: swap the peer's pages for private anonymous
  // ones at the same addresses (no gap in the mapping), so the dead segment's memory is
  // released and a late write lands nowhere. The address range stays reserved.
  if (c->base)
    mmap(c->base, c->len, PROT_READ | PROT_WRITE, MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (c->fd >= 0) close(c->fd);
  c->fd = -1;
}

std::uint32_t ShmNode::Impl::link_for_peer(const std::string& peer, std::uint64_t nonce) {
  const std::lock_guard lock(mu);
  ShmLink& link = link_for(peer);
  link.wanted_ = link.wanted_ || nonce != 0;
  LinkConn* c = link.conn_.load(std::memory_order_acquire);
  if (nonce && (!c || c->nonce != nonce)) {
    if (c) retire(link, c);
    bool not_there;
    const std::string why = attach(link, not_there);
    if (!why.empty()) link.last_error_ = why;  // the monitor retries
  }
  return link.index();
}

ActorRef ShmNode::remote(std::string_view address, std::chrono::milliseconds wait) {
  std::string_view a = address;
  if (a.substr(0, 6) == "shm://") a.remove_prefix(6);
  const auto slash = a.find('/');
  if (slash == std::string_view::npos)
    throw std::invalid_argument("tern: ShmNode::remote: '" + std::string(address) +
                                "' is not shm://NODE/ACTOR");
  return remote(a.substr(0, slash), a.substr(slash + 1), wait);
}

ActorRef ShmNode::remote(std::string_view node, std::string_view actor, std::chrono::milliseconds wait) {
  Impl& n = *impl_;
  if (!detail::valid_node_name(node))
    throw std::invalid_argument("tern: ShmNode::remote: node name '" + std::string(node) + "' is not valid");
  if (actor.empty() || actor.size() >= kNameBytes)
    throw std::invalid_argument("tern: ShmNode::remote: actor name '" + std::string(actor) + "' is not valid");
  if (!n.started) start();
  const auto deadline = std::chrono::steady_clock::now() + wait;
  std::string why;
  for (;;) {
    {
      const std::lock_guard lock(n.mu);
      ShmLink& link = n.link_for(node);
      link.wanted_ = true;
      const std::uint32_t id = n.name_id(link, actor);
      LinkConn* c = link.conn_.load(std::memory_order_acquire);
      bool not_there = true;
      if (!c) {
        why = n.attach(link, not_there);
        if (!why.empty() && !not_there)
          throw std::runtime_error("tern: ShmNode '" + n.cfg.name + "': " + why);
        c = link.conn_.load(std::memory_order_acquire);
      }
      if (c) {
        const std::int16_t e = c->ex_of[id - 1].load(std::memory_order_relaxed);
        if (e >= 0 && c->ex[static_cast<std::size_t>(e)].slot) return ActorRef(&link, id);
        why = e < 0 ? "node '" + std::string(node) + "' exports no actor '" + std::string(actor) + "'"
                    : "actor '" + std::string(actor) + "' of node '" + std::string(node) +
                          "' has no free connection slot";
      }
    }
    if (std::chrono::steady_clock::now() >= deadline)
      throw std::runtime_error("tern: ShmNode '" + n.cfg.name + "': shm://" + std::string(node) + "/" +
                               std::string(actor) + ": " + why);
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

bool ShmNode::connected(ActorRef ref) const noexcept {
  Actor* a = ref.actor();
  if (!a || !ref.is_remote()) return false;
  const std::lock_guard lock(impl_->mu);
  for (auto& [name, link] : impl_->links)
    if (link.get() == a) return link->conn_.load(std::memory_order_acquire) != nullptr;
  return false;
}

ShmStats ShmNode::stats() const noexcept {
  const Impl::Counters& c = impl_->n;
  ShmStats s;
  s.connections = c.connections.load(std::memory_order_relaxed);
  s.peers_lost = c.peers_lost.load(std::memory_order_relaxed);
  s.failed = c.failed.load(std::memory_order_relaxed);
  s.undelivered_bytes = c.undelivered.load(std::memory_order_relaxed);
  s.links_up = c.links_up.load(std::memory_order_relaxed);
  s.links_lost = c.links_lost.load(std::memory_order_relaxed);
  s.refused_mismatch = c.mismatch.load(std::memory_order_relaxed);
  s.reclaimed = c.reclaimed.load(std::memory_order_relaxed);
  return s;
}

// ---- the monitor ----------------------------------------------------------------------------

void ShmNode::Impl::check_own_slots() {
  for (std::uint32_t e = 0; e < exports.size(); ++e) {
    Export* x = export_at(base, layout, e);
    bool changed = false;
    for (std::uint32_t s = 0; s < cfg.slots; ++s) {
      Slot* slot = slot_at(base, layout, cfg.slots, e, s);
      std::uint32_t st = slot->state.load(std::memory_order_acquire);
      if (st != kActive && st != kFailed && st != kClosed) continue;
      if (detail::byte_locked(fd, slot_offset(layout, cfg.slots, e, s))) continue;
      if (slot->state.compare_exchange_strong(st, kDead, std::memory_order_acq_rel)) {
        changed = true;
        n.peers_lost.fetch_add(1, std::memory_order_relaxed);
      }
    }
    if (changed) {
      x->conn_gen.fetch_add(1, std::memory_order_acq_rel);
      detail::ring_doorbell(x);
    }
  }
}

void ShmNode::Impl::check_links() {
  const std::lock_guard lock(mu);
  for (auto& [name, link] : links) {
    LinkConn* c = link->conn_.load(std::memory_order_acquire);
    if (c) {
      const bool alive = header(c->base)->state.load(std::memory_order_acquire) == 1 &&
                         detail::byte_locked(c->fd, 0);
      if (!alive) retire(*link, c);
      continue;
    }
    if (!link->wanted_) continue;
    bool not_there;
    const std::string why = attach(*link, not_there);
    if (!why.empty() && why != link->last_error_) {
      if (!not_there) std::fprintf(stderr, "tern: ShmNode '%s': %s\n", cfg.name.c_str(), why.c_str());
      link->last_error_ = why;
    }
  }
}

void ShmNode::Impl::monitor_loop() {
  std::unique_lock lock(stop_mu);
  while (!stopping) {
    lock.unlock();
    try {
      check_own_slots();
      check_links();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "tern: ShmNode '%s': monitor: %s\n", cfg.name.c_str(), e.what());
    }
    lock.lock();
    stop_cv.wait_for(lock, std::chrono::microseconds(cfg.monitor_interval_us), [&] { return stopping; });
  }
}

// ---- discovery ------------------------------------------------------------------------------

std::vector<ShmNodeInfo> ShmNode::directory(const std::string& dir) {
  std::vector<ShmNodeInfo> out;
  DIR* d = opendir(dir.c_str());
  if (!d) return out;
  while (dirent* ent = readdir(d)) {
    const std::string f = ent->d_name;
    if (f.rfind("tern.", 0) != 0 || !detail::valid_node_name(f.substr(5))) continue;
    ShmNodeInfo info;
    info.name = f.substr(5);
    info.path = dir + "/" + f;
    const int fd = open(info.path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    struct stat st {};
    if (fstat(fd, &st) == 0 && static_cast<std::size_t>(st.st_size) >= sizeof(Header)) {
      const std::size_t len = static_cast<std::size_t>(st.st_size);
      void* m = mmap(nullptr, len, PROT_READ, MAP_SHARED, fd, 0);
      if (m != MAP_FAILED) {
        const unsigned char* b = static_cast<const unsigned char*>(m);
        Layout l;
        std::string why;
        Header h;  // the copy validate() checked: n_exports is not read again
        if (validate(b, len, l, h, why)) {
          info.pid = h.owner_pid;
          for (std::uint32_t e = 0; e < h.n_exports; ++e)
            info.actors.push_back(detail::fixed_name(
                (reinterpret_cast<const Export*>(b + l.exports) + e)->name, kNameBytes));
          info.alive = h.state.load() == 1 && detail::byte_locked(fd, 0);
        }
        munmap(m, len);
      }
    }
    close(fd);
    out.push_back(std::move(info));
  }
  closedir(d);
  std::sort(out.begin(), out.end(), [](const ShmNodeInfo& a, const ShmNodeInfo& b) { return a.name < b.name; });
  return out;
}

}  // namespace tern

namespace tern {

std::size_t ShmNode::remove_stale(const std::string& dir) {
  std::size_t removed = 0;
  for (const ShmNodeInfo& info : directory(dir)) {
    if (info.alive) continue;
    const int fd = open(info.path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) continue;
    // the owner lock decides, not the snapshot: a node may have started meanwhile
    Header h{};
    const bool ours = pread(fd, &h, sizeof h, 0) == static_cast<ssize_t>(sizeof h) && h.magic == kMagic;
    if (ours && detail::lock_byte(fd, 0)) {
      unlink(info.path.c_str());
      ++removed;
    }
    close(fd);
  }
  return removed;
}

}  // namespace tern
