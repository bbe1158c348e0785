// Manager: starts, runs and stops a static topology of actors.
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <tern/actor.hpp>
#include <tern/actor_ref.hpp>
#include <tern/mailbox.hpp>
#include <tern/thread_config.hpp>

namespace tern {

class Group;
namespace detail {
class TimerService;
}

class Manager {
 public:
  Manager();
  /// Calls end() if init() ran and end() did not.
  ~Manager();
  Manager(const Manager&) = delete;
  Manager& operator=(const Manager&) = delete;

  /// Adds an actor on a thread of its own. Set-up only (before init()). Throws
  /// std::invalid_argument on a duplicate or empty name.
  ActorRef manage(std::string name, std::unique_ptr<Actor> actor, ThreadConfig thread = {},
                  MailboxConfig mailbox = {});
  /// Constructs A in place: manage<A>("name", thread, mailbox, ctor args...).
  template <class A, class... Args>
  ActorRef emplace(std::string name, ThreadConfig thread, MailboxConfig mailbox,
                   Args&&... args) {
    return manage(std::move(name), std::make_unique<A>(std::forward<Args>(args)...),
                  std::move(thread), mailbox);
  }

  /// Turns on per-actor queue-wait and handler-time histograms (off by default; free when
  /// off). Set-up only; applies to actors managed so far and later.
  void instrument(bool on = true);

  /// Starts every thread, applies its ThreadConfig and delivers Start. Returns once every
  /// actor has handled Start. Throws std::runtime_error naming the actor and the refused
  /// value when a strict ThreadConfig could not be applied (the threads are stopped again).
  void init();
  /// Blocks until terminate() (any thread or actor) or SIGINT/SIGTERM. Returns at once if
  /// terminate() already happened.
  void run();
  /// Any thread, also signal-safe: makes run() return. Does not stop the actors.
  void terminate() noexcept;
  bool terminated() const noexcept;
  /// Stops: closes every mailbox (later sends return SendResult::closed), lets each actor
  /// handle everything it had accepted, delivers Shutdown, joins the threads. Idempotent.
  void end();

  /// The actor named `name`, or an empty ref.
  ActorRef find(std::string_view name) const noexcept;
  /// Counters of every actor, in manage() order.
  std::vector<ActorStats> stats() const;
  /// What applying each actor's ThreadConfig did (after init()).
  ThreadReport thread_report(std::string_view name) const;

  /// Registers a Group (tern/group.hpp) so init/end start and stop it with the actors: its
  /// actors get Start before the dedicated ones, and become reachable through find().
  /// Set-up only. The Group must outlive end().
  void attach(Group& group);

 private:
  friend class Actor;
  struct Entry;
  detail::TimerService& timers();
  std::vector<std::unique_ptr<Entry>> entries_;
  std::vector<Group*> groups_;
  std::unique_ptr<detail::TimerService> timers_;
  std::once_flag timers_once_;
  std::atomic<std::uint32_t> stop_word_{0};
  bool instrument_ = false;
  bool started_ = false;
  bool ended_ = false;
};

}  // namespace tern
