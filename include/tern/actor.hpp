// Actor: isolated state, handlers registered per message type, O(1) dispatch by id.
//
//   struct Ping { static constexpr tern::MessageId message_id = 100; int count = 0; };
//   struct Pong { static constexpr tern::MessageId message_id = 101; int count = 0; };
//
//   class PongActor : public tern::Actor {
//    public:
//     PongActor() { handle<&PongActor::on_ping>(); }
//     void on_ping(const Ping& m) { reply(Pong{m.count}); }
//   };
#pragma once
#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include <tern/actor_ref.hpp>
#include <tern/config.hpp>
#include <tern/detail/shm_layout.hpp>
#include <tern/mailbox.hpp>
#include <tern/message.hpp>

namespace tern {

class Manager;
class Group;
class Histogram;

/// Counters of one actor. Taken from any thread; each value is a relaxed snapshot.
struct ActorStats {
  std::string_view name;
  std::uint64_t handled = 0;         ///< messages handled (fast_send included)
  std::uint64_t depth = 0;           ///< messages waiting now
  std::uint64_t max_depth = 0;       ///< most messages seen waiting at once (see docs)
  std::uint32_t capacity = 0;        ///< normal-lane capacity
  std::uint64_t refused_full = 0;    ///< try_send that found the mailbox full
  std::uint64_t refused_closed = 0;  ///< sends refused because the actor was closing
  std::uint64_t refused_too_large = 0;  ///< sends above MailboxConfig::max_message_bytes
  std::uint64_t unhandled = 0;       ///< messages that reached on_unhandled
  std::uint64_t reply_failures = 0;  ///< reply() with no sender, or refused by the sender
  std::uint64_t fast_sends = 0;      ///< handlers run through fast_send
  std::uint64_t handler_exceptions = 0;  ///< handlers that threw (logged, message dropped)
};

namespace detail {

struct Runtime;  // lib/runtime.cpp: the loops that drain mailboxes
struct ShmInbox;  // lib/shm.cpp: an exported actor's connections from other processes
struct ShmLinkAccess;  // lib/shm.cpp
struct LinkConn;  // lib/shm.cpp: one attachment of a link to a peer's segment
/// Where a send through a shared-memory link goes (tern/shm.hpp): the ring in the peer's
/// segment, the record's type code and sender, how to wake the consumer; and what says the
/// route still holds (the link's attachment unchanged, the connection still active).
struct ShmRoute {
  shm::RingWriter* ring = nullptr;
  shm::Export* x = nullptr;
  std::uint32_t code = 0;
  std::uint32_t sender = 0;
  bool futex = false;  ///< the consumer may park: commit seq_cst, then shm_wake
  bool spsc = false;   ///< one producer thread per connection (ShmConfig::kind)
  const std::atomic<LinkConn*>* live = nullptr;  ///< the link's current attachment...
  LinkConn* conn = nullptr;                      ///< ...must still be this one
  const std::atomic<std::uint32_t>* state = nullptr;  ///< the slot's state: must be active
};
/// The last route this thread resolved, with what it was resolved for: a thread streaming to
/// one remote actor resolves once, then checks two words per send.
struct ShmRouteCache {
  const Actor* link = nullptr;
  std::uint32_t remote = 0;
  bool priority = false;
  const MessageInfo* info = nullptr;
  ActorRef from;
  const Actor* current = nullptr;  ///< tl_ctx.current then (the spsc producer check)
  std::uint64_t epoch = 0;         ///< g_shm_epoch then
  ShmRoute rt;
};
/// Bumped when a ShmNode goes (its link actors with it): older cached routes are void.
extern std::atomic<std::uint64_t> g_shm_epoch;
extern thread_local constinit ShmRouteCache tl_shm_route __attribute__((tls_model("initial-exec")));
/// Resolves remote actor `remote` behind link actor `link` for a message of type `info`
/// into tl_shm_route: ok, or why not (closed, no_target, not_accepted, too_large, full; the
/// cache is then cleared).
SendResult shm_route(Actor& link, std::uint32_t remote, const MessageInfo& info, ActorRef from,
                     bool priority) noexcept;
/// After a seq_cst commit: wakes the consumer if it announced that it parks.
void shm_wake(shm::Export& x) noexcept;
struct TopicAccess;  // tern/topic.hpp: registers the TopicWake handler
std::uint64_t now_ns() noexcept;

/// The actor table: index -> Actor, what a mailbox record carries instead of a pointer.
/// Written when an actor is constructed (set-up) and cleared when it is destroyed.
extern std::atomic<Actor*> g_actors[Tuning::max_actors];
/// Consumer: the actor of a record's sender index (nullptr for 0).
inline Actor* actor_at(std::uint32_t index) noexcept {
  // acquire: pairs with the release in the Actor constructor (set-up on another thread)
  return g_actors[index].load(std::memory_order_acquire);
}

}  // namespace detail

class Actor {
 public:
  Actor();
  virtual ~Actor();
  Actor(const Actor&) = delete;
  Actor& operator=(const Actor&) = delete;

  /// Name given to Manager::manage / Group::add. Any thread.
  std::string_view name() const noexcept { return name_; }
  /// A ref to this actor. Any thread.
  ActorRef self() const noexcept { return ActorRef(const_cast<Actor*>(this)); }
  /// Counters. Any thread.
  ActorStats stats() const noexcept;
  /// Queue-wait (send to handler start) and handler-time histograms, in ns, or nullptr when
  /// instrumentation is off (Manager::instrument). Read them with Histogram::snapshot().
  const Histogram* queue_wait_histogram() const noexcept;
  const Histogram* handler_time_histogram() const noexcept;

  /// Runtime use: this actor's mailbox.
  detail::Mailbox& mailbox() noexcept { return mailbox_; }
  /// This actor's index in the process-wide actor table (what records carry). Never 0.
  std::uint32_t index() const noexcept { return index_; }
  /// Set-up: throws std::invalid_argument naming the type and both sizes when a handled
  /// message type is larger than `cfg.max_message_bytes` (Manager::manage, Group::add).
  void check_message_sizes(const MailboxConfig& cfg) const;

 protected:
  /// Registers member function `void C::f(const T&)` as the handler of message type T.
  /// Constructor (set-up) only. Two handlers for one message id throw std::logic_error
  /// naming both types.
  template <auto Fn>
  void handle();

  /// Sender of the message being handled (empty when it came from a non-actor thread).
  ActorRef sender() const noexcept {
    return ActorRef(detail::actor_at(cur_.sender), cur_.sender_remote);
  }
  /// Answers the current message's sender: into its mailbox, or into the FastReply when this
  /// handler runs from fast_send. Blocks like send() if the sender's mailbox is full.
  /// Not noexcept only for an lvalue whose copy may throw (see ActorRef::try_send).
  template <class T>
  SendResult reply(T&& msg) noexcept(detail::nothrow_send_v<T>);
  /// Asks the Manager to return from run(). Any handler.
  void terminate() noexcept;
  /// Called for a message type with no handler. Default: counts it (stats().unhandled).
  virtual void on_unhandled(const MessageInfo& info, const void* msg);

  /// Timers: a Timeout{id, due_ns, fired_ns} arrives through this actor's mailbox (its
  /// priority lane: before normal messages already waiting) after
  /// `after_us` microseconds, then every `period_us` if nonzero. Returns the id (never 0).
  /// Any thread; needs a Manager (manage() or a Group attached to one), else throws
  /// std::logic_error. After cancel_timer(id) returns true no new Timeout for it is sent
  /// (one already in the mailbox still arrives). One timer thread per Manager; no
  /// allocation per firing.
  std::uint64_t start_timer(std::uint64_t after_us, std::uint64_t period_us = 0);
  bool cancel_timer(std::uint64_t id) noexcept;

  /// The Manager running this actor (nullptr before manage()).
  Manager* manager() const noexcept { return manager_; }

  /// Gateway hook: a message addressed to remote peer `peer` behind this actor.
  virtual void forward_remote(const MessageInfo& info, const void* msg, std::uint32_t peer,
                              ActorRef from);
  /// Gateway hook: the same, called on the gateway's own thread by a handler it runs inline
  /// (instead of queueing into its own mailbox, which only that thread drains). Never
  /// blocks; ok when handed on, no_target for a forgotten peer, closed when dropped.
  virtual SendResult forward_direct(const MessageInfo& info, const void* msg, std::uint32_t peer,
                                    ActorRef from) noexcept;
  /// Gateway hook: the name of remote peer `peer` behind this actor.
  virtual std::string_view remote_name(std::uint32_t peer) const noexcept;

 private:
  friend class ActorRef;
  friend class ShmNode;
  friend struct detail::ShmLinkAccess;
  friend class Manager;
  friend class Group;
  friend struct detail::Runtime;
  friend struct detail::TopicAccess;

  /// Runtime hook: the body of this actor's dedicated thread (Manager), after its
  /// ThreadConfig was applied. Default: the standard receive loop. An actor that must also
  /// wait on something other than its mailbox overrides it (the gateway: a socket).
  virtual void run_thread(Wake wake, std::uint32_t spin_limit,
                          std::atomic<std::uint32_t>* started) noexcept;

  using Thunk = void (*)(Actor&, const void*);
  struct Entry {
    const MessageInfo* info;  ///< the handled type (nullptr: empty entry)
    Thunk fn;
  };
  struct Current {
    std::uint32_t sender = 0;  ///< actor index (0: none); resolved only when asked for
    std::uint32_t sender_remote = 0;
    FastReply* reply_sink = nullptr;
  };

  void add_handler(const MessageInfo& info, Thunk fn);
  void rebuild_table();
  std::uint32_t slot_of(MessageId id) const noexcept {
    return (id ^ (id >> shift_)) & mask_;
  }
  /// Runs the handler of one message (caller holds the exclusion lock). The entry is found
  /// by id but matched by type: a message of another type with the same id is never handed
  /// to this handler.
  /// Runs the handler of a record's message, found by its type index (the record's type);
  /// returns the type's MessageInfo (to destroy the message). A type index this actor has
  /// no entry for goes the way of dispatch() (same type through another MessageInfo copy,
  /// or unhandled).
  const MessageInfo& dispatch_indexed(std::uint32_t type, const void* msg) {
    if (type < by_type_n_) [[likely]] {
      const Entry& e = by_type_[type];
      if (e.fn) [[likely]] {
        e.fn(*this, msg);
        return *e.info;
      }
    }
    const MessageInfo& info = detail::message_type_at(type);
    dispatch(info, msg);
    return info;
  }
  void dispatch(const MessageInfo& info, const void* msg) {
    const Entry& e = table_[slot_of(info.id)];
    if (e.info == &info) [[likely]]
      e.fn(*this, msg);
    else
      dispatch_other(e, info, msg);
  }
  /// Not the entry's MessageInfo object: the same type through a second copy of its
  /// MessageInfo (same_type), or unhandled.
  void dispatch_other(const Entry& e, const MessageInfo& info, const void* msg);
  void unhandled(const MessageInfo& info, const void* msg);

  // exclusion lock: held by the thread running a handler of this actor
  bool try_lock(detail::ThreadCtx* me) noexcept {
    detail::ThreadCtx* expected = nullptr;
    return owner_.compare_exchange_strong(expected, me, std::memory_order_acquire,
                                          std::memory_order_relaxed);
  }
  void unlock() noexcept { owner_.store(nullptr, std::memory_order_release); }
  FastStatus lock_for_fast_send(detail::ThreadCtx* me) noexcept;

  detail::Mailbox mailbox_;
  std::uint32_t index_ = 0;  ///< in detail::g_actors (set in the constructor)

  // Consumer-side hot state: one line, written by whoever holds the lock.
  alignas(kCacheLine) std::atomic<detail::ThreadCtx*> owner_{nullptr};
  Current cur_;
  const Entry* table_ = nullptr;
  const Entry* by_type_ = nullptr;  ///< handlers by type index (detail::type_index_of)
  std::uint16_t mask_ = 0;
  std::uint16_t shift_ = 31;
  std::uint32_t by_type_n_ = 0;
  std::atomic<std::uint64_t> handled_{0};
  std::atomic<std::uint64_t> max_depth_{0};  ///< written by the lock holder, read by stats()

  // Read-mostly: the stop protocol (Manager::end) and instrumentation switch.
  alignas(kCacheLine) std::atomic<std::uint32_t> phase_{0};  ///< 0 run, 1 closing, 2 drain+stop
  std::atomic<std::uint32_t> ack_{0};
  std::atomic<bool> started_{false};  ///< Start handled (set by Runtime::deliver_start)
  std::uint32_t idle_yields_ = 0;    ///< futex wake: sched_yield polls before parking
  Histogram* queue_hist_ = nullptr;  ///< non-null: instrumentation on
  Histogram* handler_hist_ = nullptr;

  // Cold: counters that move only on failures, and set-up data.
  alignas(kCacheLine) std::atomic<std::uint64_t> refused_full_{0};
  std::atomic<std::uint64_t> refused_closed_{0};
  std::atomic<std::uint64_t> refused_too_large_{0};
  std::atomic<std::uint64_t> unhandled_{0};
  std::atomic<std::uint64_t> reply_failures_{0};
  std::atomic<std::uint64_t> fast_sends_{0};
  std::atomic<std::uint64_t> handler_exceptions_{0};
  std::vector<Entry> entries_;
  std::vector<Entry> table_storage_;
  std::vector<Entry> by_type_storage_;
  std::string name_;
  Manager* manager_ = nullptr;
  Group* group_ = nullptr;
  // Shared memory (tern/shm.hpp): set up by a ShmNode before the actor starts.
  detail::ShmInbox* shm_in_ = nullptr;  ///< exported: connections from other processes
  bool shm_link_ = false;               ///< this actor stands for a peer process's actors
  const void* shm_node_ = nullptr;      ///< the ShmNode that exported this actor
  std::uint32_t shm_export_ = 0;        ///< 1 + its export index in that node's segment
};

// ---- templates --------------------------------------------------------------------------

namespace detail {
template <class F>
struct HandlerTraits;
template <class C, class M>
struct HandlerTraits<void (C::*)(const M&)> {
  using Class = C;
  using Msg = M;
};
template <class C, class M>
struct HandlerTraits<void (C::*)(const M&) noexcept> {
  using Class = C;
  using Msg = M;
};

inline SendResult to_send_result(PushStatus st) noexcept {
  return st == PushStatus::ok          ? SendResult::ok
         : st == PushStatus::full      ? SendResult::full
         : st == PushStatus::too_large ? SendResult::too_large
                                       : SendResult::closed;
}
/// Counts a refused send; a too_large one is also logged (naming the type and both sizes)
/// the first time it happens for that mailbox.
void count_refused(Actor& a, PushStatus st, const MessageInfo& info) noexcept;
/// Inside fast_send's catch block: logs and counts the exception like a queued handler's,
/// drops any reply and sets FastStatus::handler_threw.
void fast_send_threw(Actor& a, const MessageInfo& info, FastReply& r) noexcept;
void backoff(std::uint32_t& round) noexcept;
}  // namespace detail

template <auto Fn>
void Actor::handle() {
  using Traits = detail::HandlerTraits<decltype(Fn)>;
  using C = typename Traits::Class;
  using M = typename Traits::Msg;
  static_assert(std::is_base_of_v<Actor, C>, "handle<&C::f>: C must derive from tern::Actor");
  static_assert(check_message_layout<M>());  // add_handler registers it (throws on a clash)
  add_handler(message_info_v<M>, [](Actor& self, const void* msg) {
    (static_cast<C&>(self).*Fn)(*static_cast<const M*>(msg));
  });
}

inline ActorRef ActorRef::current() noexcept { return ActorRef(detail::tl_ctx.current); }

template <std::size_t kStack, class Construct>
SendResult ActorRef::push_with(const MessageInfo& info, Construct&& construct, ActorRef from,
                               bool priority) const noexcept {
  if (!actor_) [[unlikely]]
    return SendResult::no_target;
  Actor& a = *actor_;
  const std::uint32_t remote = remote_;
  if (remote) [[unlikely]] {
    if (detail::tl_ctx.direct_gateway == &a) return send_direct<kStack>(a, info, construct, remote, from);
    if (a.shm_link_) {  // another process on this host: straight into its segment
      detail::ShmRouteCache& rc = detail::tl_shm_route;
      if (rc.link != &a || rc.remote != remote || rc.info != &info || rc.priority != priority ||
          rc.from != from || rc.current != detail::tl_ctx.current ||
          rc.epoch != detail::g_shm_epoch.load(std::memory_order_acquire) ||
          rc.rt.live->load(std::memory_order_acquire) != rc.rt.conn ||
          rc.rt.state->load(std::memory_order_relaxed) != detail::shm::kActive) [[unlikely]] {
        if (const SendResult r = detail::shm_route(a, remote, info, from, priority); r != SendResult::ok)
          return r;
      }
      const detail::ShmRoute& rt = rc.rt;
      auto fill = [&](detail::Record& r) noexcept {
        construct(r.body());
        r.type = rt.code;
        r.sender = rt.sender;
        r.sender_remote = 0;
      };
      const std::uint32_t word = detail::record_bytes(info.size, false);
      const detail::PushStatus st =
          rt.spsc ? rt.ring->push_spsc(word, fill, rt.futex) : rt.ring->push(word, fill, rt.futex);
      if (st != detail::PushStatus::ok) [[unlikely]]
        return detail::to_send_result(st);
      if (rt.futex) detail::shm_wake(*rt.x);
      return SendResult::ok;
    }
  }
  const bool stamp = a.mailbox_.stamps();
  const std::uint32_t type = detail::type_index_of(info);
  const std::uint32_t sender = from.actor_ ? from.actor_->index_ : 0;
  const std::uint32_t sender_remote = from.remote_;
  const bool ext = remote || stamp;
  if (!ext && !priority && info.size <= a.mailbox_.inline_bytes()) [[likely]] {
    // the common case: constructed in the ring, normal lane, no extension
    const detail::PushStatus st = a.mailbox_.push_inline(
        info.size, [&](detail::Record& r, void* payload) noexcept {
          construct(payload);
          r.type = type;
          r.sender = sender;
          r.sender_remote = sender_remote;
        });
    if (st != detail::PushStatus::ok) [[unlikely]]
      detail::count_refused(a, st, info);
    return detail::to_send_result(st);
  }
  const detail::PushStatus st = a.mailbox_.push(
      info.size, ext,
      [&](detail::Record& r, void* payload) noexcept {
        construct(payload);
        r.type = type;
        r.sender = sender;
        r.sender_remote = sender_remote;
        if (ext) [[unlikely]] {
          auto* e = reinterpret_cast<detail::RecordExt*>(r.body());
          e->target_remote = remote;
          e->reserved = 0;
          e->enqueue_ns = stamp ? detail::now_ns() : 0;  // read only when instrumentation is on
        }
      },
      priority);
  if (st != detail::PushStatus::ok) [[unlikely]]
    detail::count_refused(a, st, info);
  return detail::to_send_result(st);
}

template <std::size_t kStack, class Construct>
SendResult ActorRef::send_direct(Actor& gw, const MessageInfo& info, Construct& construct,
                                 std::uint32_t remote, ActorRef from) noexcept {
  if (info.size > kStack) [[unlikely]]
    return SendResult::too_large;  // only a type-erased send of a large type gets here
  alignas(kMaxMessageAlign) unsigned char buf[kStack];
  construct(static_cast<void*>(buf));
  const SendResult r = gw.forward_direct(info, buf, remote, from);
  destroy_message(info, buf);
  return r;
}

template <class T>
SendResult ActorRef::push(T&& msg, ActorRef from, bool priority) const
    noexcept(detail::nothrow_send_v<T>) {
  using U = std::remove_cvref_t<T>;
  static_assert(check_message<U>());
  if constexpr (!detail::nothrow_send_v<T>) {
    // why: the slot is filled inside a noexcept publish; a copy that may throw is made
    // here, before a slot is claimed, so its exception leaves nothing half-sent.
    U copy(std::forward<T>(msg));
    return push(std::move(copy), from, priority);
  } else {
    return push_with<sizeof(U)>(
        message_info_v<U>, [&](void* p) noexcept { ::new (p) U(std::forward<T>(msg)); }, from,
        priority);
  }
}

inline SendResult ActorRef::try_send_erased(const MessageInfo& info, void* obj, ActorRef from,
                                            bool priority) const noexcept {
  // 1 KiB: the largest type-erased message a gateway-inline handler can send to a remote
  // peer of that same gateway (larger: too_large). Other erased sends have no such limit.
  return push_with<1024>(
      info, [&](void* p) noexcept { info.relocate(p, obj); }, from, priority);
}

template <class T>
SendResult ActorRef::try_send(T&& msg, ActorRef from) const
    noexcept(detail::nothrow_send_v<T>) {
  return push(std::forward<T>(msg), from, false);
}
template <class T>
SendResult ActorRef::try_send_priority(T&& msg, ActorRef from) const
    noexcept(detail::nothrow_send_v<T>) {
  return push(std::forward<T>(msg), from, true);
}

template <class T>
SendResult ActorRef::send(T&& msg, ActorRef from) const noexcept(detail::nothrow_send_v<T>) {
  if constexpr (!detail::nothrow_send_v<T>) {
    std::remove_cvref_t<T> copy(std::forward<T>(msg));  // once, before any slot is claimed
    return send(std::move(copy), from);
  } else {
    std::uint32_t round = 0;
    for (;;) {
      // `msg` is moved into a slot only when one was claimed, so retrying with it is safe.
      const SendResult r = push(std::forward<T>(msg), from, false);
      if (r != SendResult::full) return r;
      detail::backoff(round);
    }
  }
}
template <class T>
SendResult ActorRef::send_priority(T&& msg, ActorRef from) const
    noexcept(detail::nothrow_send_v<T>) {
  if constexpr (!detail::nothrow_send_v<T>) {
    std::remove_cvref_t<T> copy(std::forward<T>(msg));  // once, before any slot is claimed
    return send_priority(std::move(copy), from);
  } else {
    std::uint32_t round = 0;
    for (;;) {
      const SendResult r = push(std::forward<T>(msg), from, true);
      if (r != SendResult::full) return r;
      detail::backoff(round);
    }
  }
}

template <class T>
FastReply ActorRef::fast_send(T&& msg, ActorRef from) const noexcept {
  using U = std::remove_cvref_t<T>;
  static_assert(check_message<U>());
  if (!actor_) return FastReply(FastStatus::no_target);
  if (remote_) return FastReply(FastStatus::remote);
  Actor& a = *actor_;
  detail::ThreadCtx* me = &detail::tl_ctx;
  if (const FastStatus st = a.lock_for_fast_send(me); st != FastStatus::ok)
    return FastReply(st);
  FastReply r;
  const Actor::Current saved = a.cur_;
  Actor* const saved_current = me->current;
  a.cur_ = Actor::Current{from.actor_ ? from.actor_->index_ : 0, from.remote_, &r};
  me->current = &a;
  const U& m = msg;
  try {
    a.dispatch(message_info_v<U>, &m);
  } catch (...) {
    detail::fast_send_threw(a, message_info_v<U>, r);
  }
  me->current = saved_current;
  a.cur_ = saved;
  a.handled_.store(a.handled_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  a.fast_sends_.fetch_add(1, std::memory_order_relaxed);
  a.unlock();
  return r;
}

template <class T>
SendResult Actor::reply(T&& msg) noexcept(detail::nothrow_send_v<T>) {
  if (cur_.reply_sink) {
    if constexpr (sizeof(std::remove_cvref_t<T>) > kFastReplyBytes) {
      reply_failures_.fetch_add(1, std::memory_order_relaxed);
      return SendResult::too_large;  // a fast_send caller receives at most kFastReplyBytes
    } else {
      cur_.reply_sink->set(std::forward<T>(msg));
      return SendResult::ok;
    }
  }
  const SendResult r = sender().send(std::forward<T>(msg), self());
  if (r != SendResult::ok) [[unlikely]]
    reply_failures_.fetch_add(1, std::memory_order_relaxed);
  return r;
}

}  // namespace tern
