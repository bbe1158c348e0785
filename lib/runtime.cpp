// How a message is handled: the drain loop, the exclusion lock, fast_send deadlock
// detection, the wake strategies of a dedicated thread, and the Actor's cold paths.
#include "runtime.hpp"

#include <sched.h>
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include <tern/histogram.hpp>
#include <tern/manager.hpp>

namespace tern {
namespace detail {

thread_local constinit ThreadCtx tl_ctx __attribute__((tls_model("initial-exec"))){};

std::uint64_t now_ns() noexcept {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

std::atomic<Actor*> g_actors[Tuning::max_actors];

namespace {
std::mutex g_actors_mu;
std::vector<std::uint32_t> g_free_actor_indices;  // guarded by g_actors_mu
std::uint32_t g_actor_count = 1;                  // 0 stays empty: "not an actor"

std::uint32_t register_actor(Actor* a) {
  const std::lock_guard lock(g_actors_mu);
  std::uint32_t i;
  if (!g_free_actor_indices.empty()) {
    i = g_free_actor_indices.back();
    g_free_actor_indices.pop_back();
  } else if (g_actor_count < Tuning::max_actors) {
    i = g_actor_count++;
  } else {
    throw std::length_error("tern: more than " + std::to_string(Tuning::max_actors - 1) +
                            " actors alive at once (Tuning::max_actors)");
  }
  g_actors[i].store(a, std::memory_order_release);
  return i;
}

void unregister_actor(std::uint32_t i) noexcept {
  const std::lock_guard lock(g_actors_mu);
  g_actors[i].store(nullptr, std::memory_order_relaxed);
  try {
    g_free_actor_indices.push_back(i);
  } catch (...) {
    // bad_alloc: the index is not reused, nothing else is lost
  }
}
}  // namespace

void count_refused(Actor& a, PushStatus st, const MessageInfo& info) noexcept {
  Runtime::count_refused(a, st);
  if (st == PushStatus::too_large && Runtime::first_too_large(a)) {
    std::fprintf(stderr,
                 "tern: actor '%.*s': a %.*s (%u bytes) is larger than its mailbox's "
                 "max_message_bytes (%u): refused (SendResult::too_large)\n",
                 static_cast<int>(a.name().size()), a.name().data(),
                 static_cast<int>(info.name.size()), info.name.data(), info.size,
                 a.mailbox().max_message_bytes());
  }
}

void fast_send_threw(Actor& a, const MessageInfo& info, FastReply& r) noexcept {
  Runtime::note_handler_exception(a, info);
  r.reset(FastStatus::handler_threw);
}

void backoff(std::uint32_t& round) noexcept {
  // Spin first (the consumer is usually about to free a slot), then yield, then sleep with
  // a growing pause capped at send_max_sleep_us: a blocked producer costs little CPU.
  ++round;
  if (round <= Tuning::send_spin) {
    cpu_relax();
  } else if (round <= Tuning::send_spin + 64) {
    sched_yield();
  } else {
    const std::uint32_t us =
        std::min<std::uint32_t>(Tuning::send_max_sleep_us, round - Tuning::send_spin - 64);
    timespec ts{0, static_cast<long>(us) * 1000};
    nanosleep(&ts, nullptr);
  }
}

void Runtime::note_handler_exception(Actor& a, const MessageInfo& info) noexcept {
  // Called from a catch (...) block: rethrow to read the message, then log and count.
  const char* what = "a non-std exception";
  try {
    throw;
  } catch (const std::exception& e) {
    what = e.what();
  } catch (...) {
  }
  std::fprintf(stderr, "tern: actor '%.*s': handler for %.*s threw: %s (message dropped)\n",
               static_cast<int>(a.name().size()), a.name().data(),
               static_cast<int>(info.name.size()), info.name.data(), what);
  a.handler_exceptions_.fetch_add(1, std::memory_order_relaxed);
}

std::uint32_t Runtime::drain_locked(Actor& a, std::uint32_t limit) noexcept {
  Mailbox& mb = a.mailbox_;
  std::uint32_t n = 0;
  Record* r = nullptr;  // the message being handled (the catch below needs this very one)
  std::uint32_t w = 0;  // its commit word
  void* payload = nullptr;
  for (;;) {
    try {
      while (n < limit) {
        r = mb.front(w);
        if (!r) break;
        a.cur_.sender = r->sender;
        a.cur_.sender_remote = r->sender_remote;
        if (!(w & (kRecordExt | kRecordPooled)) && !a.queue_hist_) [[likely]] {
          // the common case: the message is in the record, no extension, no timing
          payload = r->body();
          destroy_message(a.dispatch_indexed(r->type, payload), payload);
        } else {
          payload = mb.payload(*r, w);
          const RecordExt* ext = Mailbox::ext(*r, w);
          const MessageInfo& info = message_type_at(r->type);
          if (ext && ext->target_remote) [[unlikely]] {
            // a gateway: this message leaves the process
            a.forward_remote(info, payload, ext->target_remote,
                             ActorRef(actor_at(r->sender), r->sender_remote));
          } else if (a.queue_hist_) [[unlikely]] {
            const std::uint64_t t0 = now_ns();
            const std::uint64_t sent = ext ? ext->enqueue_ns : 0;
            if (sent && t0 >= sent) a.queue_hist_->record(t0 - sent);
            a.dispatch(info, payload);
            a.handler_hist_->record(now_ns() - t0);
          } else {
            a.dispatch(info, payload);
          }
          destroy_message(info, payload);
        }
        mb.pop(*r, w);
        ++n;
      }
      break;
    } catch (...) {
      // not front() again: a priority message that arrived meanwhile would be the front now
      const MessageInfo& info = message_type_at(r->type);
      note_handler_exception(a, info);
      destroy_message(info, payload);
      mb.pop(*r, w);
      ++n;
    }
  }
  // max_depth: a short batch ended on an empty mailbox, so it held at most n; a full batch
  // means a backlog, the only time we pay for reading the producers' line. Read before
  // release(): until then the n handled slots still count, so this is what was waiting.
  const std::uint64_t seen = n < limit ? n : mb.depth();
  mb.release();
  if (n) {
    a.handled_.store(a.handled_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
    if (seen > a.max_depth_.load(std::memory_order_relaxed))
      a.max_depth_.store(seen, std::memory_order_relaxed);
  }
  a.cur_ = Actor::Current{};
  return n;
}

std::uint32_t Runtime::drain(Actor& a, std::uint32_t limit, ThreadCtx* me) noexcept {
  if (a.mailbox_.empty()) return 0;  // a peek without the lock: must not write
  while (!a.try_lock(me)) cpu_relax();  // a fast_send is running a handler: wait it out
  const std::uint32_t n = drain_locked(a, limit);
  a.unlock();
  return n;
}

void Runtime::deliver_start(Actor& a, ThreadCtx* me) noexcept {
  const Start start;
  deliver(a, message_info_v<Start>, &start, me);
  a.started_.store(true, std::memory_order_release);
}

void Runtime::deliver(Actor& a, const MessageInfo& info, const void* msg, ThreadCtx* me) noexcept {
  while (!a.try_lock(me)) cpu_relax();
  try {
    a.dispatch(info, msg);
  } catch (...) {
    note_handler_exception(a, info);
  }
  a.unlock();
}

bool Runtime::try_run_inline(Actor& a, const MessageInfo& info, const void* msg, ActorRef from,
                             ThreadCtx* me) noexcept {
  // Not before its Start (Manager::init not done), not once it is stopping.
  if (!a.started_.load(std::memory_order_acquire) ||
      a.phase_.load(std::memory_order_acquire) != 0 || !a.try_lock(me))
    return false;
  // Messages already queued go first: run inline only when none is waiting. empty_sc(), not
  // front(): the owner thread peeks with front() without the lock, and front() writes.
  if (!a.mailbox_.empty_sc()) {
    a.unlock();
    return false;
  }
  Actor* const saved_current = me->current;
  me->current = &a;
  a.cur_ = Actor::Current{from.actor() ? from.actor()->index() : 0, from.remote_index(), nullptr};
  try {
    if (a.handler_hist_) [[unlikely]] {
      const std::uint64_t t0 = now_ns();
      a.dispatch(info, msg);
      a.handler_hist_->record(now_ns() - t0);
    } else {
      a.dispatch(info, msg);
    }
  } catch (...) {
    note_handler_exception(a, info);
  }
  a.cur_ = Actor::Current{};
  me->current = saved_current;
  a.handled_.store(a.handled_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  a.unlock();
  return true;
}

void Runtime::ack_phase(Actor& a) noexcept {
  if (a.ack_.load(std::memory_order_relaxed) == 0) {
    a.ack_.store(1, std::memory_order_release);
    futex_wake_all(a.ack_);
  }
}

void Runtime::count_refused(Actor& a, PushStatus st) noexcept {
  (st == PushStatus::full        ? a.refused_full_
   : st == PushStatus::too_large ? a.refused_too_large_
                                 : a.refused_closed_)
      .fetch_add(1, std::memory_order_relaxed);
}

void Runtime::run_loop(Actor& a, Wake wake, std::uint32_t spin_limit,
                       std::atomic<std::uint32_t>* started) noexcept {
  ThreadCtx* me = &tl_ctx;
  me->current = &a;
  deliver_start(a, me);
  if (started) {
    started->store(1, std::memory_order_release);
    futex_wake_all(*started);
  }
  std::uint32_t idle = 0;
  const std::uint32_t yields = a.idle_yields_;
  ShmInbox* const shm = a.shm_in_;  // exported to other processes (tern/shm.hpp)
  for (;;) {
    std::uint32_t n = drain(a, Tuning::batch, me);
    if (shm) [[unlikely]]
      n += shm_drain(a, *shm, Tuning::batch, me);
    const std::uint32_t ph = a.phase_.load(std::memory_order_acquire);
    if (ph != 0) [[unlikely]] {
      ack_phase(a);
      if (shm) shm_close(*shm);
      // phase 2: every producer has seen the close; leave once all accepted work is done.
      if (ph == 2 && n == 0 && a.mailbox_.drained() && (!shm || shm_drained(*shm))) break;
    }
    if (n) {
      idle = 0;
      continue;
    }
    switch (wake) {
      case Wake::spin:
        cpu_relax();
        break;
      case Wake::yield:
        sched_yield();
        break;
      case Wake::futex:
        // spin (pause), then yield, then park: the same shape as std::atomic::wait
        if (++idle <= spin_limit) {
          cpu_relax();
        } else if (idle <= spin_limit + yields) {
          sched_yield();
        } else {
          if (shm)
            shm_park(a, *shm, a.phase_, ph);
          else
            a.mailbox_.park([&]() noexcept { return a.phase_.load(std::memory_order_seq_cst) != ph; });
          idle = 0;
        }
        break;
    }
  }
  const Shutdown shutdown;
  deliver(a, message_info_v<Shutdown>, &shutdown, me);
  a.phase_.store(3, std::memory_order_release);
  me->current = nullptr;
}

}  // namespace detail

// ---- Actor ----------------------------------------------------------------------------

Actor::Actor() : index_(detail::register_actor(this)) { rebuild_table(); }
Actor::~Actor() { detail::unregister_actor(index_); }

void Actor::check_message_sizes(const MailboxConfig& cfg) const {
  for (const Entry& e : entries_) {
    if (e.info->size > cfg.max_message_bytes)
      throw std::invalid_argument(
          "tern: actor '" + name_ + "' handles " + std::string(e.info->name) + " (" +
          std::to_string(e.info->size) + " bytes) but its MailboxConfig::max_message_bytes is " +
          std::to_string(cfg.max_message_bytes));
  }
}

void Actor::add_handler(const MessageInfo& info, Thunk fn) {
  for (const Entry& e : entries_) {
    if (e.info->id == info.id) {
      throw std::logic_error("tern: two handlers for message id " + std::to_string(info.id) +
                             " in one actor: " + std::string(e.info->name) + " and " +
                             std::string(info.name));
    }
  }
  if (info.id == 0xFFFFFFFFu) throw std::logic_error("tern: message id 0xFFFFFFFF is reserved");
  // one type per id in the process: throws naming both types when another type has this id
  detail::register_message_type(info);
  entries_.push_back(Entry{&info, fn});
  rebuild_table();
}

void Actor::rebuild_table() {
  // Perfect hash by search: the smallest table, and a shift, such that (id ^ id >> shift)
  // & mask puts every registered id in its own entry. Dispatch is then one load and one
  // compare (of the MessageInfo pointer). Empty entries hold nullptr.
  std::uint32_t bits = 0;
  while ((1u << bits) < entries_.size() * 2) ++bits;
  for (; bits <= 16; ++bits) {
    const std::uint32_t mask = (1u << bits) - 1;
    for (std::uint32_t shift : {31u, 8u, 16u, 4u, 12u, 20u, 24u, 2u, 6u, 10u}) {
      std::vector<Entry> t(mask + 1, Entry{nullptr, nullptr});
      bool ok = true;
      for (const Entry& e : entries_) {
        const MessageId id = e.info->id;
        const std::uint32_t i = (id ^ (id >> shift)) & mask;
        if (t[i].info) {
          ok = false;
          break;
        }
        t[i] = e;
      }
      if (!ok) continue;
      table_storage_ = std::move(t);
      table_ = table_storage_.data();
      mask_ = static_cast<std::uint16_t>(mask);
      shift_ = static_cast<std::uint16_t>(shift);
      // by type index: what a record carries, so the receive loop finds the handler with
      // one load (dispatch_indexed)
      std::uint32_t n = 0;
      for (const Entry& e : entries_) n = std::max(n, detail::type_index_of(*e.info) + 1);
      by_type_storage_.assign(n, Entry{nullptr, nullptr});
      for (const Entry& e : entries_) by_type_storage_[detail::type_index_of(*e.info)] = e;
      by_type_ = by_type_storage_.data();
      by_type_n_ = n;
      return;
    }
  }
  throw std::logic_error("tern: cannot build a dispatch table for these message ids");
}

void Actor::dispatch_other(const Entry& e, const MessageInfo& info, const void* msg) {
  if (e.info && same_type(*e.info, info))
    e.fn(*this, msg);
  else
    unhandled(info, msg);
}

void Actor::unhandled(const MessageInfo& info, const void* msg) {
  if (info.id >= kFirstReservedId) return;  // built-ins without a handler are fine
  unhandled_.fetch_add(1, std::memory_order_relaxed);
  on_unhandled(info, msg);
}

void Actor::on_unhandled(const MessageInfo&, const void*) {}

void Actor::forward_remote(const MessageInfo& info, const void*, std::uint32_t, ActorRef) {
  std::fprintf(stderr, "tern: actor '%s' got a remote-bound %.*s but is not a gateway\n",
               name_.c_str(), static_cast<int>(info.name.size()), info.name.data());
}

SendResult Actor::forward_direct(const MessageInfo&, const void*, std::uint32_t,
                                 ActorRef) noexcept {
  return SendResult::closed;  // only a gateway sets ThreadCtx::direct_gateway
}

std::string_view Actor::remote_name(std::uint32_t) const noexcept { return {}; }

void Actor::run_thread(Wake wake, std::uint32_t spin_limit,
                       std::atomic<std::uint32_t>* started) noexcept {
  detail::Runtime::run_loop(*this, wake, spin_limit, started);
}

void Actor::terminate() noexcept {
  if (manager_) manager_->terminate();
}

ActorStats Actor::stats() const noexcept {
  ActorStats s;
  s.name = name_;
  s.handled = handled_.load(std::memory_order_relaxed);
  s.depth = mailbox_.depth();
  s.max_depth = max_depth_.load(std::memory_order_relaxed);
  s.capacity = mailbox_.capacity();
  s.refused_full = refused_full_.load(std::memory_order_relaxed);
  s.refused_closed = refused_closed_.load(std::memory_order_relaxed);
  s.refused_too_large = refused_too_large_.load(std::memory_order_relaxed);
  s.unhandled = unhandled_.load(std::memory_order_relaxed);
  s.reply_failures = reply_failures_.load(std::memory_order_relaxed);
  s.fast_sends = fast_sends_.load(std::memory_order_relaxed);
  s.handler_exceptions = handler_exceptions_.load(std::memory_order_relaxed);
  return s;
}

const Histogram* Actor::queue_wait_histogram() const noexcept { return queue_hist_; }
const Histogram* Actor::handler_time_histogram() const noexcept { return handler_hist_; }

FastStatus Actor::lock_for_fast_send(detail::ThreadCtx* me) noexcept {
  if (phase_.load(std::memory_order_acquire) == 3) return FastStatus::closed;
  if (try_lock(me)) return FastStatus::ok;
  if (owner_.load(std::memory_order_relaxed) == me) return FastStatus::deadlock;  // re-entry
  // Wait, publishing what we wait for, and walk the waits-for chain: owner of the lock we
  // want -> the actor that owner waits for -> its owner ... A walk that comes back to us is
  // a cycle no one can leave. Both ends of a cycle may detect it; both get `deadlock`.
  me->waiting_for.store(this, std::memory_order_seq_cst);
  FastStatus result = FastStatus::ok;
  for (std::uint32_t spin = 1;; ++spin) {
    if (try_lock(me)) break;
    if ((spin & 63) == 0) {
      const Actor* a = this;
      for (int hop = 0; hop < 64 && a; ++hop) {
        detail::ThreadCtx* o = a->owner_.load(std::memory_order_seq_cst);
        if (!o) break;
        if (o == me) {
          result = FastStatus::deadlock;
          break;
        }
        a = o->waiting_for.load(std::memory_order_seq_cst);
      }
      if (result == FastStatus::deadlock) break;
      if (phase_.load(std::memory_order_acquire) == 3) {
        result = FastStatus::closed;
        break;
      }
    }
    if (spin > 4096) sched_yield();
    else detail::cpu_relax();
  }
  me->waiting_for.store(nullptr, std::memory_order_seq_cst);
  return result;
}

// ---- ActorRef / results ------------------------------------------------------------------

std::string_view ActorRef::name() const noexcept {
  if (!actor_) return {};
  return remote_ ? actor_->remote_name(remote_) : actor_->name();
}

std::string_view to_string(SendResult r) noexcept {
  switch (r) {
    case SendResult::ok: return "ok";
    case SendResult::full: return "full";
    case SendResult::closed: return "closed";
    case SendResult::no_target: return "no_target";
    case SendResult::too_large: return "too_large";
    case SendResult::not_accepted: return "not_accepted";
  }
  return "?";
}

std::string_view to_string(FastStatus s) noexcept {
  switch (s) {
    case FastStatus::ok: return "ok";
    case FastStatus::no_reply: return "no_reply";
    case FastStatus::deadlock: return "deadlock";
    case FastStatus::closed: return "closed";
    case FastStatus::remote: return "remote";
    case FastStatus::no_target: return "no_target";
    case FastStatus::handler_threw: return "handler_threw";
  }
  return "?";
}

}  // namespace tern
