// ActorRef: the one handle through which anything is sent to an actor, local or remote.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <utility>

#include <tern/config.hpp>
#include <tern/message.hpp>

namespace tern {

class Actor;

/// Outcome of a send. The hot path reports, it never throws.
enum class SendResult : std::uint8_t {
  ok,         ///< accepted: it will be handled (also across Manager::end())
  full,       ///< try_send only: the mailbox is full; nothing was sent
  closed,     ///< the target is shutting down or stopped; nothing was sent
  no_target,  ///< empty ActorRef, or reply() with no sender to answer
  too_large,  ///< the message is larger than the target mailbox's max_message_bytes (or,
              ///< replying into a fast_send, than kFastReplyBytes); nothing was sent
  not_accepted,  ///< a remote actor in another process (tern/shm.hpp) does not take this type
                 ///< (not exported for it, or not trivially copyable); nothing was sent
};

/// Outcome of fast_send.
enum class FastStatus : std::uint8_t {
  ok,        ///< the handler ran and replied; the reply is in the FastReply
  no_reply,  ///< the handler ran and did not reply
  deadlock,  ///< waiting would deadlock (a cycle of fast_sends, or an actor calling itself)
  closed,    ///< the target has stopped
  remote,    ///< fast_send needs a local actor; remote refs take send()
  no_target, ///< empty ActorRef
  handler_threw,  ///< the handler threw: logged and counted (stats().handler_exceptions)
                  ///< like a queued message's; any reply it made is dropped
};

std::string_view to_string(SendResult r) noexcept;
std::string_view to_string(FastStatus s) noexcept;

/// The reply of a fast_send, held in place (no allocation): up to kFastReplyBytes.
class FastReply {
 public:
  FastReply() noexcept = default;
  explicit FastReply(FastStatus s) noexcept : status_(s) {}
  FastReply(FastReply&& o) noexcept : status_(o.status_), info_(o.info_) {
    if (info_) info_->relocate(buf_, o.buf_);
    o.info_ = nullptr;
  }
  FastReply& operator=(FastReply&&) = delete;
  ~FastReply() {
    if (info_) destroy_message(*info_, buf_);
  }

  FastStatus status() const noexcept { return status_; }
  /// True when the handler replied.
  explicit operator bool() const noexcept { return status_ == FastStatus::ok; }
  /// The reply as T, or nullptr when there is none or it is another type (compared by
  /// type, not by id: another type with T's id is not T).
  template <MessageType T>
  const T* get() const noexcept {
    return info_ == &message_info_v<T> || (info_ && same_type(*info_, message_info_v<T>))
               ? std::launder(reinterpret_cast<const T*>(buf_))
               : nullptr;
  }
  /// Type of the reply, or nullptr.
  const MessageInfo* info() const noexcept { return info_; }

  /// Runtime use: store a reply (a second reply replaces the first). An lvalue whose copy
  /// may throw is copied first, so a throwing copy leaves the previous state intact.
  template <class T>
  void set(T&& msg) noexcept(detail::nothrow_send_v<T>) {
    using U = std::remove_cvref_t<T>;
    static_assert(check_message<U>());
    static_assert(sizeof(U) <= kFastReplyBytes, "a fast_send reply holds at most kFastReplyBytes");
    if constexpr (!detail::nothrow_send_v<T>) {
      U copy(std::forward<T>(msg));
      set(std::move(copy));
    } else {
      if (info_) destroy_message(*info_, buf_);
      ::new (buf_) U(std::forward<T>(msg));
      info_ = &message_info_v<U>;
      status_ = FastStatus::ok;
    }
  }
  void set_status(FastStatus s) noexcept { status_ = s; }
  /// Runtime use: drop any reply and set the status (a handler that threw).
  void reset(FastStatus s) noexcept {
    if (info_) destroy_message(*info_, buf_);
    info_ = nullptr;
    status_ = s;
  }

 private:
  FastStatus status_ = FastStatus::no_reply;
  const MessageInfo* info_ = nullptr;
  alignas(kMaxMessageAlign) unsigned char buf_[kFastReplyBytes];
};

/// A cheap copyable handle (16 bytes) to an actor: a local one, or a remote one reached
/// through a gateway actor. The same calls work for both.
class ActorRef {
 public:
  constexpr ActorRef() noexcept = default;
  constexpr explicit ActorRef(Actor* local, std::uint32_t remote = 0) noexcept
      : actor_(local), remote_(remote) {}

  /// The actor whose handler is running on this thread (or empty): the default sender.
  static ActorRef current() noexcept;

  /// Sends without blocking. Any thread. No allocation, lock or syscall (one futex wake
  /// when the target is parked). `from` is what the receiver sees as sender().
  /// Every send is noexcept except an lvalue send of a type whose copy constructor may
  /// throw: that copy is made before a slot is claimed and its exception reaches the caller,
  /// with nothing sent (detail::nothrow_send_v).
  template <class T>
  [[nodiscard]] SendResult try_send(T&& msg, ActorRef from = current()) const
      noexcept(detail::nothrow_send_v<T>);
  /// Sends; when the mailbox is full waits (spin, then yield, then sleep up to 100 us
  /// between tries) until there is room or the target closes. Never drops, never grows.
  /// Do not block-send between two actors that can both be full of each other's messages.
  template <class T>
  SendResult send(T&& msg, ActorRef from = current()) const noexcept(detail::nothrow_send_v<T>);
  /// Like try_send, on the high-priority lane: handled before normal messages waiting.
  template <class T>
  [[nodiscard]] SendResult try_send_priority(T&& msg, ActorRef from = current()) const
      noexcept(detail::nothrow_send_v<T>);
  /// Like send, on the high-priority lane.
  template <class T>
  SendResult send_priority(T&& msg, ActorRef from = current()) const
      noexcept(detail::nothrow_send_v<T>);

  /// Runs the target's handler for `msg` in the calling thread, mutually excluded with the
  /// target's own thread, and returns its reply. Blocks while the target is busy. Detects
  /// fast_send cycles (A -> B -> A) and returns FastStatus::deadlock instead of hanging.
  /// A handler that throws is logged and counted (stats().handler_exceptions) as on the
  /// queued path, the lock is released, and the caller gets FastStatus::handler_threw.
  template <class T>
  FastReply fast_send(T&& msg, ActorRef from = current()) const noexcept;

  /// Type-erased try_send for runtimes that build messages at run time (the gateway):
  /// on ok, the object at `obj` (of type `info`) was moved into the mailbox and destroyed;
  /// otherwise it is untouched. Any thread.
  [[nodiscard]] SendResult try_send_erased(const MessageInfo& info, void* obj, ActorRef from,
                                           bool priority = false) const noexcept;

  explicit operator bool() const noexcept { return actor_ != nullptr; }
  bool is_remote() const noexcept { return remote_ != 0; }
  /// The local actor, or for a remote ref the gateway that reaches it.
  Actor* actor() const noexcept { return actor_; }
  /// Remote peer index inside the gateway (0 for a local actor).
  std::uint32_t remote_index() const noexcept { return remote_; }
  /// The actor's name (for a remote ref, the remote actor's name).
  std::string_view name() const noexcept;

  friend bool operator==(const ActorRef&, const ActorRef&) = default;

 private:
  template <class T>
  SendResult push(T&& msg, ActorRef from, bool priority) const
      noexcept(detail::nothrow_send_v<T>);
  /// kStack: the largest message the send_direct path can build on the stack.
  template <std::size_t kStack, class Construct>
  SendResult push_with(const MessageInfo& info, Construct&& construct, ActorRef from,
                       bool priority) const noexcept;
  /// A send from a handler a gateway runs inline, to a remote ref behind that gateway: built
  /// on the stack and handed to the gateway right here (ThreadCtx::direct_gateway).
  template <std::size_t kStack, class Construct>
  static SendResult send_direct(Actor& gw, const MessageInfo& info, Construct& construct,
                                std::uint32_t remote, ActorRef from) noexcept;

  Actor* actor_ = nullptr;
  std::uint32_t remote_ = 0;
};

}  // namespace tern

#include <tern/actor.hpp>  // defines the templates above
