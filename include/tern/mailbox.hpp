// The mailbox: an actor's two lanes (normal + high priority) and how its consumer is woken.
// Producers: any thread (MailboxKind::mpsc) or exactly one producer (MailboxKind::spsc): one
// actor, whichever thread runs its handler, or one thread that is not running an actor.
// Consumer: the one thread that runs the actor at a time (its own thread, a Group worker, or
// a fast_send caller holding the actor's exclusion lock).
#pragma once
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include <tern/config.hpp>
#include <tern/detail/pool.hpp>
#include <tern/detail/ring.hpp>
#include <tern/detail/thread_ctx.hpp>

namespace tern {

/// Per-actor mailbox settings, fixed before the actor starts.
struct MailboxConfig {
  /// Normal-lane capacity, counted in small messages (up to 16 bytes, 32 bytes of ring
  /// each): the ring holds capacity x 32 bytes rounded up to a power of two. A record is at
  /// most half the ring (larger messages go to the pool, whatever inline_bytes says).
  /// A message of n <= inline_bytes bytes takes
  /// 16 + round_up(n, 16) bytes (32 more with a remote target or instrumentation on). A
  /// full mailbox makes try_send return SendResult::full and send() wait (it never drops,
  /// never grows).
  std::uint32_t capacity = Tuning::default_capacity;
  /// mpsc: any number of producer threads. spsc: exactly one producer, checked on every
  /// send: one actor (its handlers may run on other threads, through fast_send or the
  /// gateway's inline dispatch, but never two at once), or one thread that is not running an
  /// actor. A second producer aborts with a message naming the actor.
  MailboxKind kind = MailboxKind::mpsc;
  /// Largest message this mailbox accepts (1 .. kMaxMessageBytes). A handler for a larger
  /// type is a set-up error naming it; a send of one returns SendResult::too_large.
  std::uint32_t max_message_bytes = Tuning::default_max_message_bytes;
  /// Messages up to this size are constructed in the ring; larger ones in a pool block
  /// (the record carries its handle). 16 .. 65536.
  std::uint32_t inline_bytes = Tuning::default_inline_bytes;
  /// Blocks per pool size class (powers of two above inline_bytes up to max_message_bytes),
  /// allocated at set-up. An exhausted class makes a send report `full`, like the ring.
  /// Pool memory: pool_blocks x (sum of the class sizes) < pool_blocks x 4 x max_message_bytes.
  std::uint32_t pool_blocks = Tuning::default_pool_blocks;
};

namespace detail {

/// What a producer must do after publishing, decided by who consumes the mailbox.
enum class Notify : std::uint8_t {
  none,   ///< consumer busy-polls or yields: nothing
  futex,  ///< consumer may park: wake it if its sleep flag is up
  group,  ///< consumer is a Group: make the actor runnable if it is not already
};

void futex_wait(std::atomic<std::uint32_t>& word, std::uint32_t expected) noexcept;
void futex_wake_one(std::atomic<std::uint32_t>& word) noexcept;
void futex_wake_all(std::atomic<std::uint32_t>& word) noexcept;
/// The same on a word that other processes map too (not FUTEX_PRIVATE). A nonzero
/// `timeout_us` bounds the wait (the caller re-checks whatever it waits for).
void futex_wait_shared(std::atomic<std::uint32_t>& word, std::uint32_t expected,
                       std::uint32_t timeout_us) noexcept;
void futex_wake_shared(std::atomic<std::uint32_t>& word) noexcept;
/// Adds 1 to an eventfd (wakes a consumer blocked in poll() on it). One write(2).
void fd_wake(int fd) noexcept;

/// Callback a Group installs: makes `actor` runnable. Called at most once per idle->ready edge.
using ReadyFn = void (*)(void* group, Actor* actor) noexcept;

class Mailbox {
 public:
  ~Mailbox() { destroy_pending(); }

  /// Set-up only. Throws std::invalid_argument naming a bad value.
  void configure(const MailboxConfig& cfg, Actor* owner, const char* owner_name) {
    const std::string who = std::string("tern: actor '") + (owner_name ? owner_name : "?") + "': ";
    if (cfg.max_message_bytes == 0 || cfg.max_message_bytes > kMaxMessageBytes)
      throw std::invalid_argument(who + "MailboxConfig::max_message_bytes " +
                                  std::to_string(cfg.max_message_bytes) + " is outside 1.." +
                                  std::to_string(kMaxMessageBytes));
    if (cfg.inline_bytes < kRecordUnit || cfg.inline_bytes > 65536)
      throw std::invalid_argument(who + "MailboxConfig::inline_bytes " +
                                  std::to_string(cfg.inline_bytes) + " is outside 16..65536");
    destroy_pending();
    auto ring_bytes = [&](std::uint64_t messages) {
      const std::uint64_t b = messages * record_bytes(kRecordUnit, false);
      if (b > Ring::kMaxBytes)
        throw std::invalid_argument(who + "mailbox of " + std::to_string(b) +
                                    " bytes is above the largest ring (2^30 bytes)");
      // why 128: half of it (64) holds the largest pooled record (header, extension, handle)
      return round_capacity(static_cast<std::uint32_t>(b < 128 ? 128 : b));
    };
    const std::uint32_t normal_bytes = ring_bytes(cfg.capacity);
    const std::uint32_t priority_bytes = ring_bytes(Tuning::priority_capacity);
    // The inline limit: as configured, but a record must be at most half of the smaller
    // ring (why half: a record that does not fit before the end of the array is preceded
    // by a padding record, so an empty ring of twice the largest record always takes it).
    // Larger messages go to the pool, so a small ring keeps its capacity in messages.
    const std::uint32_t ring_min = normal_bytes < priority_bytes ? normal_bytes : priority_bytes;
    std::uint32_t inline_max = cfg.inline_bytes;
    if (inline_max > cfg.max_message_bytes) inline_max = cfg.max_message_bytes;
    const std::uint32_t fit = ring_min / 2 - static_cast<std::uint32_t>(kRecordHeaderBytes + kRecordUnit);
    if (inline_max > fit) inline_max = fit;
    normal_.init(normal_bytes, cfg.kind);
    priority_.init(priority_bytes);
    pool_.init(inline_max, cfg.max_message_bytes, cfg.pool_blocks);
    ro_.kind = cfg.kind;
    ro_.owner = owner;
    ro_.owner_name = owner_name;
    ro_.inline_bytes = inline_max;
    ro_.max_bytes = cfg.max_message_bytes;
    ro_.capacity = cfg.capacity;
  }
  /// Set-up only: wake a parked consumer by writing this eventfd instead of a futex wake, for
  /// a consumer that waits in poll() on the fd together with other sources (the gateway).
  void set_wake_fd(int fd) noexcept { ro_.wake_fd = fd; }
  /// Set-up only: wake a parked consumer by bumping this word and a shared-futex wake on it
  /// (a consumer that parks on a doorbell in memory shared with other processes, tern/shm.hpp).
  void set_wake_doorbell(std::atomic<std::uint32_t>* word) noexcept { ro_.doorbell = word; }
  /// How producers wake the consumer (set_notify).
  Notify notify_mode() const noexcept { return ro_.notify; }
  /// Set-up only: how producers wake the consumer.
  void set_notify(Notify n, ReadyFn ready = nullptr, void* group = nullptr) noexcept {
    ro_.notify = n;
    ro_.ready = ready;
    ro_.group = group;
  }

  /// Any producer thread (one only for spsc). Never blocks, allocates or throws.
  /// `fill(Record&, void* payload)` writes the header fields (not the commit word) and
  /// constructs the message of `bytes` at `payload`; `ext` asks for a RecordExt. A message
  /// above the inline limit is constructed in a pool block; an exhausted pool is `full`.
  template <class Fill>
  PushStatus push(std::uint32_t bytes, bool ext, Fill&& fill, bool high_priority) noexcept {
    if (bytes > ro_.max_bytes) [[unlikely]]
      return PushStatus::too_large;
    const bool sc = ro_.notify != Notify::none;
    const std::uint32_t off = ext ? static_cast<std::uint32_t>(kRecordUnit) : 0u;
    std::uint32_t word;
    std::uint32_t handle = 0;
    const bool pooled = bytes > ro_.inline_bytes;
    if (!pooled) [[likely]] {
      word = record_bytes(bytes, ext) | (ext ? kRecordExt : 0u);
    } else {
      if (!pool_.alloc(bytes, handle)) return PushStatus::full;
      word = record_bytes(sizeof(std::uint32_t), ext) | kRecordPooled | (ext ? kRecordExt : 0u);
    }
    auto put = [&](Record& r) noexcept {
      if (!pooled) [[likely]] {
        fill(r, r.body() + off);
      } else {
        std::memcpy(r.body() + off, &handle, sizeof handle);
        fill(r, pool_.block(handle));
      }
    };
    const PushStatus st =
        high_priority ? priority_.push_mpsc(word, put, sc) : push_normal(word, put, sc);
    if (st != PushStatus::ok && pooled) [[unlikely]]
      pool_.free(handle);  // nothing was constructed in it
    if (high_priority && st == PushStatus::ok) [[unlikely]]
      // after the publish: a consumer that sees the hint sees the message. An RMW, not a
      // store: the consumer's exchange(0) then reads the end of one release sequence that
      // holds every producer's raise, so it synchronises with all of them, not only the last
      // (docs/concurrency.md, priority hint; tests/relacy/priority_model_test.cpp).
      (void)sleep_.priority_hint.exchange(1, std::memory_order_release);
    if (st == PushStatus::ok && sc) notify();
    return st;
  }

  /// Any producer thread, the common case: a message of `bytes` <= inline_bytes(), normal
  /// lane, no extension. The caller checked the size; `fill(Record&, void* payload)` as for
  /// push(). The same protocol as push() with fewer decisions on the way.
  template <class Fill>
  PushStatus push_inline(std::uint32_t bytes, Fill&& fill) noexcept {
    const bool sc = ro_.notify != Notify::none;
    const std::uint32_t word = record_bytes(bytes, false);
    auto put = [&](Record& r) noexcept { fill(r, r.body()); };
    const PushStatus st = push_normal(word, put, sc);
    if (st == PushStatus::ok && sc) notify();
    return st;
  }

  /// Consumer: where the message of record `r` (commit word `w`) is: in the record, or in
  /// its pool block.
  void* payload(Record& r, std::uint32_t w) noexcept {
    unsigned char* p = r.body() + ((w & kRecordExt) ? kRecordUnit : 0);
    if (!(w & kRecordPooled)) [[likely]]
      return p;
    std::uint32_t handle;
    std::memcpy(&handle, p, sizeof handle);
    return pool_.block(handle);
  }
  void* payload(Record& r) noexcept { return payload(r, r.word.load(std::memory_order_relaxed)); }
  /// Consumer: record `r`'s extension (commit word `w`), or nullptr.
  static const RecordExt* ext(Record& r, std::uint32_t w) noexcept {
    return (w & kRecordExt) ? reinterpret_cast<const RecordExt*>(r.body()) : nullptr;
  }

  /// Consumer: the next message, high-priority lane first; nullptr when both are empty.
  /// The priority lane is looked at only while its hint is up, so the common case costs one
  /// load of a line the consumer already holds.
  /// `w` gets the record's commit word.
  Record* front(std::uint32_t& w) noexcept {
    if (sleep_.priority_hint.load(std::memory_order_acquire)) [[unlikely]] {
      if (Record* s = priority_front(w)) {
        from_priority_ = true;  // until pop()
        return s;
      }
    }
    return normal_.front(w);
  }
  /// Consumer: done with record `r`, which front() returned (its message destroyed): its
  /// pool block, if any, goes back to the pool.
  void pop(Record& r, std::uint32_t w) noexcept {
    if (w & kRecordPooled) [[unlikely]] {
      std::uint32_t handle;
      std::memcpy(&handle, r.body() + ((w & kRecordExt) ? kRecordUnit : 0), sizeof handle);
      pool_.free(handle);
    }
    if (from_priority_) [[unlikely]] {
      priority_.pop(w);
      priority_popped_ = true;
      from_priority_ = false;
    } else {
      normal_.pop(w);
    }
  }
  /// Consumer: hands popped records back to producers (once per batch).
  void release() noexcept {
    normal_.release();
    if (priority_popped_) [[unlikely]] {
      priority_.release();
      priority_popped_ = false;
    }
  }
  /// Consumer, without the lock: is nothing waiting? Writes nothing (unlike front(), which
  /// moves past padding and notes the lane), so a thread that holds the actor's lock
  /// meanwhile (fast_send, inline dispatch) never races with it.
  bool empty() const noexcept {
    return normal_.empty() &&
           (!sleep_.priority_hint.load(std::memory_order_acquire) || priority_.empty());
  }
  /// Consumer, before parking (seq_cst, pairs with the producers' seq_cst publish).
  bool empty_sc() const noexcept { return normal_.empty_sc() && priority_.empty_sc(); }
  /// Consumer: nothing accepted is left unconsumed (valid once closed).
  bool drained() const noexcept { return normal_.drained() && priority_.drained(); }

  /// Any thread: refuse new messages from now on. Accepted ones stay to be drained.
  void close() noexcept {
    normal_.close();
    priority_.close();
  }
  bool closed() const noexcept { return normal_.closed(); }

  // ---- parking (futex wake strategy) -------------------------------------------------
  /// Consumer: announce sleep, re-check, park. Returns when woken or when work/`cancel`
  /// appeared. `cancel` is re-checked after the announcement (stop requests).
  template <class Cancel>
  void park(Cancel&& cancel) noexcept {
    if (!begin_park(static_cast<Cancel&&>(cancel))) return;
    futex_wait(sleep_.word, 1);
    end_park();
  }
  /// Consumer that waits elsewhere (poll() on the fd given to set_wake_fd): announce sleep
  /// and re-check. false: work or `cancel` is already there (announcement taken back);
  /// true: wait, then call end_park().
  template <class Cancel>
  bool begin_park(Cancel&& cancel) noexcept {
    sleep_.word.store(1, std::memory_order_seq_cst);
    if (!empty_sc_hinted() || cancel()) {
      sleep_.word.store(0, std::memory_order_relaxed);
      return false;
    }
    return true;
  }
  /// Consumer: back from a wait announced by begin_park.
  void end_park() noexcept { sleep_.word.store(0, std::memory_order_relaxed); }
  /// Any thread: wake a parked consumer (used for stop requests; producers use notify()).
  void wake() noexcept {
    if (sleep_.word.exchange(0, std::memory_order_seq_cst) == 1) wake_parked();
  }

  // ---- group scheduling ------------------------------------------------------------------
  /// Group worker, after a turn: clear "scheduled", then re-check. Returns true when the
  /// caller must reschedule the actor itself (work arrived while it ran).
  bool finish_turn() noexcept {
    sleep_.scheduled.store(false, std::memory_order_seq_cst);
    if (empty_sc_hinted()) return false;
    return !sleep_.scheduled.exchange(true, std::memory_order_seq_cst);
  }
  /// Marks scheduled; true if it was not (the caller must then enqueue the actor).
  bool try_mark_scheduled() noexcept {
    return !sleep_.scheduled.load(std::memory_order_seq_cst) &&
           !sleep_.scheduled.exchange(true, std::memory_order_seq_cst);
  }

  std::uint64_t depth() const noexcept { return normal_.depth() + priority_.depth(); }
  /// Normal-lane capacity as configured (in small messages).
  std::uint32_t capacity() const noexcept { return ro_.capacity; }
  /// Largest message accepted, and the inline limit (MailboxConfig).
  std::uint32_t max_message_bytes() const noexcept { return ro_.max_bytes; }
  std::uint32_t inline_bytes() const noexcept { return ro_.inline_bytes; }
  MailboxKind kind() const noexcept { return ro_.kind; }
  /// Do producers stamp send times (instrumentation on)?
  bool stamps() const noexcept { return ro_.stamp; }
  /// Set-up only.
  void set_stamp(bool on) noexcept { ro_.stamp = on; }

 private:
  /// The normal lane, by its claim discipline (push and push_inline).
  template <class Put>
  PushStatus push_normal(std::uint32_t word, Put& put, bool sc) noexcept {
    if (ro_.kind == MailboxKind::spsc) {
      check_single_producer();
      return normal_.push_spsc(word, put, sc);
    }
    return normal_.push_mpsc(word, put, sc);
  }
  void notify() noexcept {
    if (ro_.notify == Notify::futex) {
      // seq_cst load: pairs with the consumer's seq_cst sleep announcement (Dekker).
      if (sleep_.word.load(std::memory_order_seq_cst) &&
          sleep_.word.exchange(0, std::memory_order_seq_cst) == 1)
        wake_parked();
    } else if (try_mark_scheduled()) {
      ro_.ready(ro_.group, ro_.owner);
    }
  }
  void wake_parked() noexcept {
    if (ro_.wake_fd >= 0) [[unlikely]] {
      fd_wake(ro_.wake_fd);
    } else if (ro_.doorbell) [[unlikely]] {
      ro_.doorbell->fetch_add(1, std::memory_order_seq_cst);
      futex_wake_shared(*ro_.doorbell);
    } else {
      futex_wake_one(sleep_.word);
    }
  }
  void check_single_producer() noexcept {
    // The producer is the actor whose handler is sending: its handlers never run on two
    // threads at once, and each move between threads goes through its exclusion lock, which
    // orders our plain tail store with the next push. Outside a handler, the thread itself:
    // its thread pointer (%fs base on x86-64) identifies it for free.
    const void* me = tl_ctx.current ? static_cast<const void*>(tl_ctx.current)
                                    : __builtin_thread_pointer();
    const void* owner = ro_.spsc_producer.load(std::memory_order_relaxed);
    if (owner == me) [[likely]] return;
    if (owner == nullptr && ro_.spsc_producer.compare_exchange_strong(owner, me)) return;
    std::fprintf(stderr,
                 "tern: actor '%s' has an spsc mailbox but a second producer sent to it "
                 "(spsc takes one actor, or one thread outside any actor); use "
                 "MailboxKind::mpsc\n",
                 ro_.owner_name ? ro_.owner_name : "?");
    std::abort();
  }

  // read-mostly: every producer reads it on every send
  struct alignas(kCacheLine) ReadMostly {
    MailboxKind kind = MailboxKind::mpsc;
    Notify notify = Notify::none;
    Actor* owner = nullptr;
    const char* owner_name = nullptr;
    ReadyFn ready = nullptr;
    void* group = nullptr;
    bool stamp = false;  ///< instrumentation on: producers stamp the send time
    int wake_fd = -1;    ///< >= 0: wake the parked consumer through this eventfd
    std::atomic<std::uint32_t>* doorbell = nullptr;  ///< set: wake through this shared word
    std::uint32_t inline_bytes = Tuning::default_inline_bytes;  ///< larger: pooled
    std::uint32_t max_bytes = Tuning::default_max_message_bytes;
    std::uint32_t capacity = 0;
    std::atomic<const void*> spsc_producer{nullptr};  ///< first producer: Actor* or thread
  };
  /// Consumer, before it sleeps: empty_sc(), and when a priority message is there, the hint
  /// raised too (its producer may not have raised it yet), so the next front() sees it.
  bool empty_sc_hinted() noexcept {
    if (!priority_.empty_sc()) {
      sleep_.priority_hint.store(1, std::memory_order_relaxed);
      return false;
    }
    return normal_.empty_sc();
  }
  /// Consumer, hint up: the priority lane's oldest message, or nullptr after taking the hint
  /// down. A producer publishes before it raises the hint, so once the hint is down (a full
  /// barrier) a second look finds anything whose hint the clear overwrote. The clear may
  /// have overwritten the hints of several messages: when the second look finds one, the
  /// hint goes up again, so the next front() keeps looking until the lane is seen empty
  /// (without it, a spinning consumer stranded the second message until the next priority
  /// send: found by the Relacy model).
  Record* priority_front(std::uint32_t& w) noexcept {
    if (Record* s = priority_.front(w)) return s;
    sleep_.priority_hint.exchange(0, std::memory_order_seq_cst);
    Record* s = priority_.front(w);
    if (s) sleep_.priority_hint.fetch_or(1, std::memory_order_relaxed);
    return s;
  }

  // written by the consumer only when it parks/finishes a turn; read by producers after a send
  struct alignas(kCacheLine) Sleep {
    std::atomic<std::uint32_t> word{0};  ///< futex word: 1 = consumer parked or about to
    std::atomic<bool> scheduled{false};  ///< group: actor is queued or running
    /// 1: the priority lane may hold messages (raised by priority producers, lowered by the
    /// consumer when it finds the lane empty). Read by the consumer on every front().
    std::atomic<std::uint32_t> priority_hint{0};
  };
  /// Destroys the messages accepted and never handled (both lanes), returning pool blocks.
  void destroy_pending() noexcept {
    auto destroy = [&](Record& r) noexcept {
      if (r.type) destroy_message(message_type_at(r.type), payload(r));
      const std::uint32_t w = r.word.load(std::memory_order_relaxed);
      if (w & kRecordPooled) {
        std::uint32_t handle;
        std::memcpy(&handle, r.body() + ((w & kRecordExt) ? kRecordUnit : 0), sizeof handle);
        pool_.free(handle);
      }
    };
    normal_.destroy_pending(destroy);
    priority_.destroy_pending(destroy);
  }

  ReadMostly ro_;
  Pool pool_;  ///< before the rings: destroyed after them (their pending messages use it)
  Ring normal_;
  Ring priority_;
  Sleep sleep_;
  bool from_priority_ = false;    ///< consumer-only
  bool priority_popped_ = false;  ///< consumer-only: release() must hand priority slots back
};

}  // namespace detail
}  // namespace tern
