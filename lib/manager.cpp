// Manager: threads for a static topology; the start handshake; run/terminate (signals);
// the two-phase stop protocol that keeps "accepted means handled" true at shutdown.
#include <tern/manager.hpp>

#include <signal.h>

#include <cstdio>
#include <stdexcept>

#include <tern/group.hpp>
#include <tern/histogram.hpp>

#include "runtime.hpp"
#include "timer.hpp"

namespace tern {

using detail::Runtime;

struct Manager::Entry {
  std::unique_ptr<Actor> actor;
  ThreadConfig thread;
  MailboxConfig mailbox;
  std::thread th;
  ThreadReport report;
  std::atomic<std::uint32_t> configured{0};  ///< 1: ThreadConfig applied, report written
  std::atomic<std::uint32_t> go{0};          ///< 1: run, 2: abort (strict failure elsewhere)
  std::atomic<std::uint32_t> started{0};     ///< 1: Start handled
  std::unique_ptr<Histogram> queue_hist, handler_hist;
};

namespace {
std::atomic<std::atomic<std::uint32_t>*> g_stop_word{nullptr};

extern "C" void on_stop_signal(int) {
  // Async-signal-safe: a lock-free store and a raw futex syscall.
  if (auto* w = g_stop_word.load()) {
    w->store(1);
    detail::futex_wake_all(*w);
  }
}

void wait_for(std::atomic<std::uint32_t>& word, std::uint32_t until_not) {
  while (word.load(std::memory_order_acquire) == until_not) detail::futex_wait(word, until_not);
}
}  // namespace

Manager::Manager() = default;

Manager::~Manager() {
  if (started_ && !ended_) end();
}

detail::TimerService& Manager::timers() {
  // Created on first use (any thread may start a timer): guarded by a once_flag.
  std::call_once(timers_once_, [this] { timers_ = std::make_unique<detail::TimerService>(); });
  return *timers_;
}

ActorRef Manager::manage(std::string name, std::unique_ptr<Actor> actor, ThreadConfig thread,
                         MailboxConfig mailbox) {
  if (started_) throw std::logic_error("tern: manage('" + name + "') after init()");
  if (name.empty()) throw std::invalid_argument("tern: an actor needs a non-empty name");
  if (!actor) throw std::invalid_argument("tern: manage('" + name + "') got a null actor");
  if (find(name)) throw std::invalid_argument("tern: duplicate actor name '" + name + "'");
  if (mailbox.capacity < 2 || mailbox.capacity > (1u << 24))
    throw std::invalid_argument("tern: actor '" + name + "': mailbox capacity " +
                                std::to_string(mailbox.capacity) + " is outside 2..16777216");
  auto e = std::make_unique<Entry>();
  Actor& a = *actor;
  Runtime::set_owner(a, name, this, nullptr);
  a.mailbox().configure(mailbox, &a, a.name().data());  // throws naming a bad value
  a.check_message_sizes(mailbox);
  // How producers wake it, fixed here rather than at init(): a ShmNode exporting this actor
  // (started before init()) writes into its segment whether peers must wake it.
  a.mailbox().set_notify(thread.wake == Wake::futex ? detail::Notify::futex : detail::Notify::none);
  e->actor = std::move(actor);
  e->thread = std::move(thread);
  e->mailbox = mailbox;
  entries_.push_back(std::move(e));
  if (instrument_) instrument(true);
  return ActorRef(&a);
}

void Manager::instrument(bool on) {
  if (started_) throw std::logic_error("tern: Manager::instrument after init()");
  instrument_ = on;
  for (auto& e : entries_) {
    if (on && !e->queue_hist) {
      e->queue_hist = std::make_unique<Histogram>();
      e->handler_hist = std::make_unique<Histogram>();
    }
    Runtime::set_histograms(*e->actor, on ? e->queue_hist.get() : nullptr,
                            on ? e->handler_hist.get() : nullptr);
  }
}

void Manager::attach(Group& group) {
  if (started_) throw std::logic_error("tern: Manager::attach after init()");
  for (Group* g : groups_)
    if (g == &group) throw std::invalid_argument("tern: group '" + std::string(group.name()) + "' attached twice");
  groups_.push_back(&group);
  group.set_manager(this);
}

void Manager::init() {
  if (started_) throw std::logic_error("tern: Manager::init() called twice");
  check_message_ids();  // two message types with one id: throws naming both
  started_ = true;
  for (auto& ep : entries_) {
    Entry* e = ep.get();
    Runtime::set_idle_yields(*e->actor, e->thread.yield_limit);
    e->th = std::thread([this, e] {
      e->report = apply_thread_config(e->thread, std::string(e->actor->name()));
      e->configured.store(1, std::memory_order_release);
      detail::futex_wake_all(e->configured);
      wait_for(e->go, 0);
      if (e->go.load(std::memory_order_acquire) != 1) return;
      e->actor->run_thread(e->thread.wake, e->thread.spin_limit, &e->started);
    });
  }
  // Group actors first: they get Start before any dedicated actor can send to them. Every
  // group's run queue exists before any group starts (Start handlers may send across).
  for (Group* g : groups_) g->prepare();
  for (Group* g : groups_) g->start();
  std::string errors;
  for (auto& e : entries_) {
    wait_for(e->configured, 0);
    for (const auto& p : e->report.problems) {
      if (e->thread.strict)
        errors += (errors.empty() ? "" : "; ") + p;
      else
        std::fprintf(stderr, "tern: warning: %s\n", p.c_str());
    }
  }
  const std::uint32_t verdict = errors.empty() ? 1 : 2;
  for (auto& e : entries_) {
    e->go.store(verdict, std::memory_order_release);
    detail::futex_wake_all(e->go);
  }
  if (verdict == 2) {
    for (auto& e : entries_) e->th.join();
    for (Group* g : groups_) g->stop();
    if (timers_) timers_->stop();
    ended_ = true;
    throw std::runtime_error("tern: ThreadConfig refused: " + errors);
  }
  for (auto& e : entries_) wait_for(e->started, 0);
}

void Manager::run() {
  struct sigaction sa {}, old_int{}, old_term{};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  g_stop_word.store(&stop_word_);
  sigaction(SIGINT, &sa, &old_int);
  sigaction(SIGTERM, &sa, &old_term);
  wait_for(stop_word_, 0);
  sigaction(SIGINT, &old_int, nullptr);
  sigaction(SIGTERM, &old_term, nullptr);
  g_stop_word.store(nullptr);
}

void Manager::terminate() noexcept {
  stop_word_.store(1, std::memory_order_release);
  detail::futex_wake_all(stop_word_);
}

bool Manager::terminated() const noexcept {
  return stop_word_.load(std::memory_order_acquire) != 0;
}

void Manager::end() {
  if (!started_ || ended_) return;
  ended_ = true;
  // Phase 1: close every mailbox, then wait until every actor thread has come round its
  // loop once (so no handler is mid-send with a stale view of "open").
  if (timers_) timers_->stop();
  for (auto& e : entries_) e->actor->mailbox().close();
  for (Group* g : groups_) g->close_mailboxes();
  for (auto& e : entries_) {
    Runtime::phase(*e->actor).store(1, std::memory_order_seq_cst);
    e->actor->mailbox().wake();
  }
  for (auto& e : entries_) wait_for(Runtime::ack(*e->actor), 0);
  // Groups drain what they accepted and get Shutdown; then phase 2 for dedicated actors:
  // drain everything accepted, deliver Shutdown, exit.
  for (Group* g : groups_) g->stop();
  for (auto& e : entries_) {
    Runtime::phase(*e->actor).store(2, std::memory_order_seq_cst);
    e->actor->mailbox().wake();
  }
  for (auto& e : entries_) {
    e->th.join();
    if (e->report.isolated_cpu >= 0) release_isolated_core(e->report.isolated_cpu);
  }
}

ActorRef Manager::find(std::string_view name) const noexcept {
  for (const auto& e : entries_)
    if (e->actor->name() == name) return ActorRef(e->actor.get());
  for (const Group* g : groups_)
    if (ActorRef r = g->find(name)) return r;
  return {};
}

std::vector<ActorStats> Manager::stats() const {
  std::vector<ActorStats> out;
  for (const auto& e : entries_) out.push_back(e->actor->stats());
  for (const Group* g : groups_)
    for (const ActorStats& s : g->stats()) out.push_back(s);
  return out;
}

// ---- Actor timers (here: they need the Manager's timer service) -------------------------

std::uint64_t Actor::start_timer(std::uint64_t after_us, std::uint64_t period_us) {
  if (!manager_)
    throw std::logic_error("tern: actor '" + name_ + "' has no Manager: timers need one");
  return manager_->timers().start(this, after_us, period_us);
}

bool Actor::cancel_timer(std::uint64_t id) noexcept {
  return manager_ && manager_->timers_ && manager_->timers_->cancel(id);
}

ThreadReport Manager::thread_report(std::string_view name) const {
  for (const auto& e : entries_)
    if (e->actor->name() == name) return e->report;
  throw std::invalid_argument("tern: no actor named '" + std::string(name) + "'");
}

}  // namespace tern
