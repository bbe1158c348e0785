// Group: many light actors (one per instrument, say) sharing a few worker threads.
//
//   tern::Group group("books", {.workers = 2});
//   tern::ActorRef aapl = group.emplace<Book>("book.AAPL", {}, "AAPL");
//   mgr.attach(group);   // Manager::init/end start and stop it with the dedicated actors
//
// A ready actor (one with messages) sits once in the group's run queue; a worker takes it,
// holds its exclusion lock, handles at most `batch` messages (fairness), and requeues it if
// more arrived. So an actor never runs on two threads at once and sees each sender's
// messages in order. Idle workers park on a futex; a send to an idle group wakes one.
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <tern/actor.hpp>
#include <tern/actor_ref.hpp>
#include <tern/config.hpp>
#include <tern/mailbox.hpp>
#include <tern/thread_config.hpp>

namespace tern {

struct GroupConfig {
  /// Worker threads (1..256).
  std::uint32_t workers = 2;
  /// Messages an actor may handle per turn before the worker moves on (fairness knob).
  std::uint32_t batch = Tuning::batch;
  /// Idle workers: futex parks after spin_limit empty polls; spin never parks; yield yields.
  Wake wake = Wake::futex;
  std::uint32_t spin_limit = Tuning::futex_spin;
  /// futex: after spin_limit pause-polls, this many sched_yield() polls before parking.
  std::uint32_t yield_limit = 0;
  /// Applied to every worker (CPUs, policy, priority; the name gets "-N" appended).
  ThreadConfig thread;
};

class Group {
 public:
  /// Throws std::invalid_argument naming a bad value (0 workers, batch 0, empty name).
  explicit Group(std::string name, GroupConfig cfg = {});
  /// Stops the workers if still running.
  ~Group();
  Group(const Group&) = delete;
  Group& operator=(const Group&) = delete;

  /// Adds an actor. Set-up only (before start). Default mailbox: 256 slots, mpsc. The actor
  /// accepts sends at once (up to its capacity); they are handled after its Start.
  ActorRef add(std::string name, std::unique_ptr<Actor> actor,
               MailboxConfig mailbox = MailboxConfig{256, MailboxKind::mpsc});
  template <class A, class... Args>
  ActorRef emplace(std::string name, MailboxConfig mailbox, Args&&... args) {
    return add(std::move(name), std::make_unique<A>(std::forward<Args>(args)...), mailbox);
  }

  /// Starts the workers and delivers Start to every actor (on the workers); returns once all
  /// handled it. Called by Manager::init for an attached group.
  void start();
  /// Closes every mailbox, handles what was accepted, delivers Shutdown, joins. Idempotent.
  /// Called by Manager::end for an attached group.
  void stop();

  std::string_view name() const noexcept { return name_; }
  ActorRef find(std::string_view name) const noexcept;
  std::vector<ActorStats> stats() const;
  std::size_t size() const noexcept { return actors_.size(); }
  /// Turns an actor from the run queue into a worker turn: how many turns ran so far.
  std::uint64_t turns() const noexcept { return turns_.load(std::memory_order_relaxed); }

  /// Runtime use: makes `a` runnable (producers call it on an idle -> ready edge).
  static void ready(void* group, Actor* a) noexcept;

 private:
  friend class Manager;
  class RunQueue;
  void worker(std::uint32_t index);
  void set_manager(Manager* m);
  void prepare();
  void wait_all_started() noexcept;  ///< until every worker has delivered its Starts
  void close_mailboxes() noexcept;
  void push_ready(Actor* a) noexcept;

  std::string name_;
  GroupConfig cfg_;
  std::vector<std::unique_ptr<Actor>> actors_;
  std::unique_ptr<RunQueue> runq_;
  std::vector<std::thread> threads_;
  Manager* manager_ = nullptr;
  // why a separate line: producers touch it on every idle -> ready edge, workers when idle.
  alignas(kCacheLine) std::atomic<std::uint32_t> epoch_{0};  ///< futex word for idle workers
  std::atomic<std::uint32_t> sleepers_{0};
  alignas(kCacheLine) std::atomic<std::uint32_t> phase_{0};  ///< 0 run, 1 stop workers
  std::atomic<std::uint32_t> started_count_{0};
  std::atomic<std::uint64_t> turns_{0};
  bool running_ = false;
};

}  // namespace tern
