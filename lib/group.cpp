// Group: the scheduler for actors that share worker threads. Ready actors wait in a bounded
// MPMC run queue (Vyukov); each actor is in it at most once (its mailbox's "scheduled"
// flag), so the queue, sized to the number of actors, can never overflow.
#include <tern/group.hpp>

#include <sched.h>

#include <stdexcept>

#include <tern/manager.hpp>

#include "runtime.hpp"

namespace tern {

using detail::Runtime;

class Group::RunQueue {
 public:
  explicit RunQueue(std::size_t n) : mask_(detail::round_capacity(static_cast<std::uint32_t>(n)) - 1),
                                     cells_(mask_ + 1) {
    for (std::size_t i = 0; i <= mask_; ++i) cells_[i].seq.store(i, std::memory_order_relaxed);
  }
  /// Any thread. seq_cst publish: pairs with an idle worker's seq_cst sleep announcement.
  void push(Actor* a) noexcept {
    std::size_t pos = tail_.load(std::memory_order_relaxed);
    for (;;) {
      Cell& c = cells_[pos & mask_];
      const std::size_t seq = c.seq.load(std::memory_order_acquire);
      const auto dif = static_cast<std::intptr_t>(seq) - static_cast<std::intptr_t>(pos);
      if (dif == 0) {
        if (tail_.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed)) {
          c.actor = a;
          c.seq.store(pos + 1, std::memory_order_seq_cst);
          return;
        }
      } else if (dif < 0) {
        // Each actor is queued at most once and capacity > 2 x actors, so this cell is not
        // really full: a worker that claimed it one lap ago was preempted before marking it
        // free. It will finish; wait for it.
        sched_yield();
        pos = tail_.load(std::memory_order_relaxed);
      } else {
        pos = tail_.load(std::memory_order_relaxed);
      }
    }
  }
  /// Any worker: an actor, or nullptr when empty.
  Actor* pop() noexcept {
    std::size_t pos = head_.load(std::memory_order_relaxed);
    for (;;) {
      Cell& c = cells_[pos & mask_];
      const std::size_t seq = c.seq.load(std::memory_order_acquire);
      const auto dif = static_cast<std::intptr_t>(seq) - static_cast<std::intptr_t>(pos + 1);
      if (dif == 0) {
        if (head_.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed)) {
          Actor* a = c.actor;
          c.seq.store(pos + mask_ + 1, std::memory_order_release);
          return a;
        }
      } else if (dif < 0) {
        return nullptr;
      } else {
        pos = head_.load(std::memory_order_relaxed);
      }
    }
  }
  bool empty_sc() const noexcept {
    const std::size_t pos = head_.load(std::memory_order_seq_cst);
    return cells_[pos & mask_].seq.load(std::memory_order_seq_cst) != pos + 1;
  }

 private:
  struct alignas(kCacheLine) Cell {
    std::atomic<std::size_t> seq{0};
    Actor* actor = nullptr;
  };
  alignas(kCacheLine) std::atomic<std::size_t> tail_{0};
  alignas(kCacheLine) std::atomic<std::size_t> head_{0};
  alignas(kCacheLine) const std::size_t mask_;
  std::vector<Cell> cells_;
};

Group::Group(std::string name, GroupConfig cfg) : name_(std::move(name)), cfg_(std::move(cfg)) {
  if (name_.empty()) throw std::invalid_argument("tern: a Group needs a non-empty name");
  if (cfg_.workers < 1 || cfg_.workers > 256)
    throw std::invalid_argument("tern: group '" + name_ + "': workers " +
                                std::to_string(cfg_.workers) + " is outside 1..256");
  if (cfg_.batch < 1)
    throw std::invalid_argument("tern: group '" + name_ + "': batch must be at least 1");
}

Group::~Group() { stop(); }

ActorRef Group::add(std::string name, std::unique_ptr<Actor> actor, MailboxConfig mailbox) {
  if (running_) throw std::logic_error("tern: Group::add('" + name + "') after start()");
  if (name.empty()) throw std::invalid_argument("tern: an actor needs a non-empty name");
  if (!actor) throw std::invalid_argument("tern: Group::add('" + name + "') got a null actor");
  if (find(name)) throw std::invalid_argument("tern: duplicate actor name '" + name + "' in group '" + name_ + "'");
  if (mailbox.capacity < 2 || mailbox.capacity > (1u << 24))
    throw std::invalid_argument("tern: actor '" + name + "': mailbox capacity " +
                                std::to_string(mailbox.capacity) + " is outside 2..16777216");
  Actor& a = *actor;
  Runtime::set_owner(a, std::move(name), manager_, this);
  a.mailbox().configure(mailbox, &a, a.name().data());  // throws naming a bad value
  a.check_message_sizes(mailbox);
  // Until prepare() the run queue does not exist: producers only publish (Notify::none),
  // and prepare() schedules whatever arrived before it.
  actors_.push_back(std::move(actor));
  return ActorRef(&a);
}

void Group::set_manager(Manager* m) {
  manager_ = m;
  for (auto& a : actors_) Runtime::set_owner(*a, std::string(a->name()), m, this);
}

ActorRef Group::find(std::string_view name) const noexcept {
  for (const auto& a : actors_)
    if (a->name() == name) return ActorRef(a.get());
  return {};
}

std::vector<ActorStats> Group::stats() const {
  std::vector<ActorStats> out;
  for (const auto& a : actors_) out.push_back(a->stats());
  return out;
}

void Group::ready(void* group, Actor* a) noexcept { static_cast<Group*>(group)->push_ready(a); }

void Group::push_ready(Actor* a) noexcept {
  runq_->push(a);
  // seq_cst: pairs with a worker's seq_cst sleepers increment before its re-check (Dekker).
  if (sleepers_.load(std::memory_order_seq_cst) != 0) {
    epoch_.fetch_add(1, std::memory_order_seq_cst);
    detail::futex_wake_one(epoch_);
  }
}

void Group::prepare() {
  // The run queue must exist before a producer can make an actor runnable: a Start handler
  // of another group's actor may send to ours before this group's workers run.
  if (runq_) return;
  runq_ = std::make_unique<RunQueue>(2 * actors_.size() + 2);
  // Sends before this point (before Manager::init) only published their messages
  // (Notify::none): from now on producers schedule, and every actor that already holds
  // messages is scheduled here, once (the workers handle them after every Start).
  for (auto& a : actors_) a->mailbox().set_notify(detail::Notify::group, &Group::ready, this);
  for (auto& a : actors_)
    if (a->mailbox().depth() != 0 && a->mailbox().try_mark_scheduled()) runq_->push(a.get());
}

void Group::start() {
  if (running_) return;
  check_message_ids();  // two message types with one id: throws naming both
  running_ = true;
  prepare();
  phase_.store(0);
  started_count_.store(0);
  for (std::uint32_t i = 0; i < cfg_.workers; ++i) threads_.emplace_back([this, i] { worker(i); });
  wait_all_started();
}

void Group::wait_all_started() noexcept {
  // Sleep on the value just checked, never on a second read: a worker's last increment (and
  // its wake) between the check and that read would leave us asleep on a value that no
  // longer changes.
  for (;;) {
    const std::uint32_t n = started_count_.load(std::memory_order_acquire);
    if (n >= cfg_.workers) return;
    detail::futex_wait(started_count_, n);
  }
}

void Group::worker(std::uint32_t index) {
  ThreadConfig tc = cfg_.thread;
  tc.name = (tc.name.empty() ? name_ : tc.name).substr(0, 11) + "-" + std::to_string(index);
  const ThreadReport rep = apply_thread_config(tc, "group '" + name_ + "' worker " + std::to_string(index));
  for (const auto& p : rep.problems) std::fprintf(stderr, "tern: warning: %s\n", p.c_str());
  detail::ThreadCtx* me = &detail::tl_ctx;

  // Start, on the workers, before any worker takes a message: every actor sees Start first.
  for (std::size_t k = index; k < actors_.size(); k += cfg_.workers) {
    me->current = actors_[k].get();
    Runtime::deliver_start(*actors_[k], me);
  }
  me->current = nullptr;
  started_count_.fetch_add(1, std::memory_order_acq_rel);
  detail::futex_wake_all(started_count_);
  wait_all_started();

  std::uint32_t idle = 0;
  for (;;) {
    if (Actor* a = runq_->pop()) {
      idle = 0;
      turns_.fetch_add(1, std::memory_order_relaxed);
      me->current = a;
      while (!a->try_lock(me)) detail::cpu_relax();  // a fast_send is in its handler
      Runtime::drain_locked(*a, cfg_.batch);
      // Under the lock: finish_turn reads consumer state that the next worker to run this
      // actor will write as soon as "scheduled" is clear.
      const bool again = a->mailbox().finish_turn();
      a->unlock();
      me->current = nullptr;
      if (again) push_ready(a);
      continue;
    }
    if (phase_.load(std::memory_order_acquire) != 0) break;
    switch (cfg_.wake) {
      case Wake::spin:
        detail::cpu_relax();
        break;
      case Wake::yield:
        sched_yield();
        break;
      case Wake::futex:
        if (++idle <= cfg_.spin_limit) {
          detail::cpu_relax();
          break;
        }
        if (idle <= cfg_.spin_limit + cfg_.yield_limit) {
          sched_yield();
          break;
        }
        idle = 0;
        const std::uint32_t e = epoch_.load(std::memory_order_seq_cst);
        sleepers_.fetch_add(1, std::memory_order_seq_cst);
        if (runq_->empty_sc() && phase_.load(std::memory_order_seq_cst) == 0)
          detail::futex_wait(epoch_, e);
        sleepers_.fetch_sub(1, std::memory_order_seq_cst);
        break;
    }
  }
}

void Group::close_mailboxes() noexcept {
  for (auto& a : actors_) a->mailbox().close();
}

void Group::stop() {
  if (!running_) return;
  close_mailboxes();
  // Everything accepted gets handled: wait until each mailbox is empty (claims in flight
  // count as depth until consumed), then stop the workers.
  for (auto& a : actors_)
    while (a->mailbox().depth() != 0) std::this_thread::sleep_for(std::chrono::microseconds(50));
  phase_.store(1, std::memory_order_seq_cst);
  epoch_.fetch_add(1, std::memory_order_seq_cst);
  detail::futex_wake_all(epoch_);
  for (auto& t : threads_) t.join();
  threads_.clear();
  detail::ThreadCtx* me = &detail::tl_ctx;
  Actor* const saved = me->current;
  const Shutdown shutdown;
  for (auto& a : actors_) {
    me->current = a.get();
    Runtime::deliver(*a, message_info_v<Shutdown>, &shutdown, me);
    Runtime::phase(*a).store(3, std::memory_order_release);
  }
  me->current = saved;
  running_ = false;
}

}  // namespace tern
