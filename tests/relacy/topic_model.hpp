// Relacy model of tern::Topic<T> (include/tern/topic.hpp): the seqlock cells, the
// subscribers' cursors, the three slow policies and the coalesced TopicWake.
//
// A transcription, not an include (topic.hpp is built on std::atomic, which Relacy cannot
// instrument). As in ring_model.hpp, the model keeps the real member names, and every line
// marked `// =` is, after tests/scripts/test_relacy_mirror.py's normalisation, a line of
// topic.hpp: changing an operation or a memory order there fails CI until this model (and
// its check) follows.
//
// Model function          real function (include/tern/topic.hpp)
//   Topic::try_publish      Topic::try_publish          (every line marked)
//   Topic::publish          Topic::publish              (backoff: rl::yield)
//   Topic::write            Topic::write                (T1, writer side)
//   Topic::read             Topic::read                 (T1, reader side, with its fence)
//   Topic::read_latest      Topic::read_latest          (T5)
//   Topic::room_for         Topic::room_for             (T2, publisher side)
//   Topic::wake_all         Topic::wake_all
//   Subscription::wake      Topic::Subscription::wake   (T3, publisher side; coalescing)
//   Subscription::send_wake Topic::Subscription::send_wake (normal lane, then priority)
//   Subscription::drain     Topic::Subscription::drain  (T3, subscriber side; the cursor guard)
//   Subscription::drain_ordered, drain_conflated, touch, rewake, cursor, closed, policy:
//                           the members of the same names (T2 subscriber side, T4, T5)
//   Topic::subscribe        Topic::subscribe, set-up part only (no handler registration)
// Left out: Subscription::blocks (unused by topic.hpp), the stats getters (relaxed
// snapshots), the constructor's checks, cache-line alignment (no ordering effect).
//
// What stands for what:
//   - T is `Tick`, two 64-bit words, so a copy can be torn. Value p of key k is
//     {p + 1, ((p + 1) << 8) | k}: a subscriber checks every value it is handed, so a torn
//     copy (words of two values) or a stale one (words older than the stamp) is caught.
//   - The cell words are rl::atomic, loaded and stored relaxed, as in topic.hpp (that is
//     what makes the seqlock free of data races; the value check above catches what a
//     wrong order lets through). Each cell also holds a model-only rl::var `shadow` (the
//     position, written with the words) that backpressure subscribers read after a good
//     read: T2 says those reads happen-before the cell's overwrite, and Relacy reports a
//     DATA RACE if they do not. The subscriber-private state (next_, delivered_, marked_)
//     is rl::var too (`Own<>`): any access not ordered by happens-before is reported.
//   - The subscriber's actor is a model Actor: a Mailbox (mailbox_model.hpp, the real
//     push / park / notify protocol; 2 slots per lane, TERN_RL_TOPIC_MAILBOX) whose
//     messages are TopicWakes; its runtime loop
//     (run_subscriber) handles one message, destroys and pops it, releases the slot, and
//     parks (futex) when the mailbox is empty. `actor_.self().try_send(TopicWake{this})`
//     is a push into that mailbox (ok / full / closed).
//
// Seeded bugs (tests/relacy/meson.build builds each as a should_fail test):
//   TERN_RL_BUG_RELAXED_STAMP   write() completes a cell with a relaxed `seq = 2p+2`
//   TERN_RL_BUG_NO_WRITE_FENCE  write() without the release fence after the odd stamp
//   TERN_RL_BUG_NO_READ_FENCE   read() without the acquire fence before the second stamp load
//   TERN_RL_BUG_NO_STAMP_RECHECK  read() accepts the copy without re-reading the stamp
//   TERN_RL_BUG_RELAXED_CURSOR  drain() publishes the cursor relaxed (T2)
//   TERN_RL_BUG_EARLY_CURSOR    drain_ordered() publishes the cursor past a cell before
//                               copying it (backpressure lets the publisher overwrite it)
//   TERN_RL_BUG_NO_WAKE_FENCE   drain() clears `pending` without the seq_cst fence (T3)
//   TERN_RL_BUG_NO_PRIORITY_WAKE  send_wake() gives up when the normal lane is full (the
//                               gap this model found, fixed in topic.hpp)
//   TERN_RL_BUG_NO_STALE_CHECK  drain_conflated() hands a key's latest value without
//                               comparing its stamp with the last one handed
//   TERN_RL_BUG_CLEAR_TOUCHED   the bug this model found in topic.hpp (fixed): a lap found
//                               mid-scan emptied the touched-key list, leaving keys marked
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "harness.hpp"
#include "mailbox_model.hpp"

namespace tern_model {

enum class SlowPolicy : std::uint8_t { backpressure, drop_oldest, conflate };
enum class SendResult : std::uint8_t { ok, full, closed };

/// The message type T of the model topic: two words, so a copy can be torn.
struct Tick {
  std::uint64_t pos1;  ///< position + 1
  std::uint64_t tag;   ///< (position + 1) << 8 | key
};
inline Tick tick(std::uint64_t p, std::uint32_t key) { return Tick{p + 1, ((p + 1) << 8) | key}; }
inline std::uint32_t tick_key(const Tick& t) { return static_cast<std::uint32_t>(t.tag & 0xff); }
/// Not torn: both words come from one value.
inline bool intact(const Tick& t) { return t.pos1 != 0 && (t.tag >> 8) == t.pos1; }

/// A subscriber-private variable as an rl::var, usable like the plain one in topic.hpp.
template <class V>
class Own {
 public:
  Own() = default;
  operator V() const { return v_(RL_INFO); }
  Own& operator=(V x) {
    v_(RL_INFO) = x;
    return *this;
  }
  Own& operator=(const Own& o) { return *this = static_cast<V>(o); }
  Own& operator++() {
    ++v_(RL_INFO);
    return *this;
  }

 private:
  mutable rl::var<V> v_;
};

#ifndef TERN_RL_TOPIC_MAILBOX
#define TERN_RL_TOPIC_MAILBOX 2
#endif
/// The subscribers' mailbox capacity (normal lane; the priority lane has 2 slots). With 2,
/// a wake can be refused as full (a stale view of the mailbox head), so send_wake's
/// priority-lane fallback runs (without it, NO_PRIORITY_WAKE, the last value is stranded).
inline constexpr unsigned kMailboxSlots = TERN_RL_TOPIC_MAILBOX;

inline constexpr int kTopicWake = 7;  ///< the payload of a TopicWake in the model mailbox

struct Actor;
struct SubscriptionBase {
  virtual ~SubscriptionBase() = default;
  virtual void drain(Actor& a) = 0;
};
struct TopicWake {
  SubscriptionBase* sub = nullptr;
};

/// The subscribing actor: its mailbox, and what its handler records (set by the test).
struct Actor {
  Mailbox<kMailboxSlots, 2> mb;
  SubscriptionBase* sub = nullptr;  // the one subscription this actor's TopicWakes name
  void* log = nullptr;
  struct Self {
    Actor* a;
    SendResult try_send(TopicWake w, bool priority = false) {
      RL_ASSERT(w.sub == a->sub);
      switch (a->mb.push(record_word(1), [](Record& r, std::uint64_t) { r.payload($) = kTopicWake; },
                         priority)) {
        case PushStatus::ok: return SendResult::ok;
        case PushStatus::full: return SendResult::full;
        default: return SendResult::closed;
      }
    }
    SendResult try_send_priority(TopicWake w) { return try_send(w, true); }
  };
  Self self() { return Self{this}; }
  void init() { mb.configure(MailboxKind::mpsc, Notify::futex); }
};

/// The runtime loop of a subscriber's thread (Runtime::run_loop with Wake::futex,
/// spin_limit 0, batch 1): handle a TopicWake, destroy it, pop, release; park when there is
/// nothing. Returns once `done()` holds (looked at before each message).
template <class Done>
void run_subscriber(Actor& a, Done&& done) {
  while (!done()) {
    std::uint32_t w = 0;
    Record* s = a.mb.front(w);
    if (!s) {
      a.mb.park([] { return false; });
      continue;
    }
    RL_ASSERT(s->payload($) == kTopicWake);
    a.sub->drain(a);
    s->payload($) = kDestroyed;
    a.mb.pop(w);
    a.mb.release();
  }
}

/// Topic<Tick> with Cap cells, Keys conflation keys, at most Subs subscribers.
template <unsigned Cap, unsigned Keys, unsigned Subs>
class Topic {
  using T = Tick;
  static constexpr std::size_t kWords = (sizeof(T) + 7) / 8;
  static_assert((Cap & (Cap - 1)) == 0 && Cap >= 2, "capacity: a power of two, as rounded");

  struct Cell {
    rl::atomic<std::uint64_t> seq;
    rl::atomic<std::uint64_t> w[kWords];
    /// Model only: a plain copy of the position, written with the words. A backpressure
    /// subscriber reads it after a good read (T2: its reads of a cell happen-before the
    /// cell's overwrite), so Relacy reports a DATA RACE if the cursor protocol lets the
    /// publisher overwrite a cell that is still being read.
    rl::var<std::uint64_t> shadow;
  };

 public:
  using KeyFn = std::uint32_t (*)(const T&);
  struct Config {
    std::uint32_t max_keys = 0;
    std::uint32_t drain_batch = 256;
  };
  class Subscription;

  /// The constructor's effect (every atomic starts at 0, as value-initialised).
  void init(Config cfg, KeyFn key) {
    cfg_ = cfg;
    key_ = key;
    RL_ASSERT(cfg_.max_keys <= Keys && ((cfg_.max_keys == 0) == (key_ == nullptr)));
    cap_ = Cap;
    mask_ = Cap - 1;
    for (Cell& c : ring_) clear(c);
    for (Cell& c : latest_) clear(c);
    head_ = 0;
    min_cursor_ = 0;
    has_backpressure_ = false;
    published_.store(0, memory_order_relaxed);
    refused_full_.store(0, memory_order_relaxed);
    wakes_failed_.store(0, memory_order_relaxed);
    bad_keys_.store(0, memory_order_relaxed);
  }

  /// subscribe(), set-up part: `s` lives in the test (no allocation inside the model).
  void subscribe(Subscription& s, Actor& who, SlowPolicy policy,
                 void (*call)(Actor&, const T&)) {
    RL_ASSERT(head_ == 0 && subs_.size() < Subs);
    RL_ASSERT(policy != SlowPolicy::conflate || cfg_.max_keys);
    s.init(*this, who, policy, call);
    who.sub = &s;
    if (policy == SlowPolicy::backpressure) has_backpressure_ = true;
    subs_.push_back(&s);
  }

  std::uint64_t published() const { return published_.load(memory_order_relaxed); }
  std::uint64_t refused_full() const { return refused_full_.load(memory_order_relaxed); }

  // mirrors include/tern/topic.hpp
  SendResult try_publish(const T& v) {
    const std::uint64_t p = head_;  // =
    if (has_backpressure_ && p >= cap_ && !room_for(p)) {  // =
      refused_full_.fetch_add(1, memory_order_relaxed);  // =
      wake_all();  // =
      return SendResult::full;  // =
    }
    std::uint64_t words[kWords] = {};  // =
    std::memcpy(words, &v, sizeof(T));  // =
    write(ring_[p & mask_], p, words);  // =
    if (key_) {  // =
      const std::uint32_t k = key_(v);  // =
      if (k < cfg_.max_keys) [[likely]]  // =
        write(latest_[k], p, words);  // =
      else  // =
        bad_keys_.fetch_add(1, memory_order_relaxed);  // =
    }
    head_ = p + 1;  // =
    published_.store(p + 1, memory_order_release);  // =
    atomic_thread_fence(memory_order_seq_cst);  // =
    wake_all();  // =
    return SendResult::ok;  // =
  }

  void publish(const T& v) {
    while (try_publish(v) == SendResult::full) rl::yield(1, $);  // detail::backoff
  }

  class Subscription final : public SubscriptionBase {
   public:
    using Call = void (*)(Actor&, const T&);
    void init(Topic& t, Actor& a, SlowPolicy p, Call c) {
      topic_ = &t;
      actor_ = &a;
      policy_ = p;
      call_ = c;
      check_shadow_ = p == SlowPolicy::backpressure;
      cursor_.store(0, memory_order_relaxed);
      pending_.store(0, memory_order_relaxed);
      closed_.store(false, memory_order_relaxed);
      next_ = 0;
      for (unsigned k = 0; k < Keys; ++k) {
        delivered_[k] = 0;
        marked_[k] = 0;
      }
      touched_.clear();
      received_.store(0, memory_order_relaxed);
      dropped_.store(0, memory_order_relaxed);
    }
    std::uint64_t received() const { return received_.load(memory_order_relaxed); }
    std::uint64_t dropped() const { return dropped_.load(memory_order_relaxed); }
    /// Model only: do not read Cell::shadow (for a backpressure subscriber that will stop:
    /// once its mailbox is closed it is no longer waited for, see StopUnblocks).
    void stop_shadow_check() { check_shadow_ = false; }

    // mirrors include/tern/topic.hpp
    void wake() {
      Topic& topic_ = *this->topic_;
      if (pending_.load(memory_order_relaxed) || closed_.load(memory_order_relaxed))  // =
        return;  // =
      if (pending_.exchange(1, memory_order_acq_rel)) return;  // =
      const SendResult r = send_wake();  // =
      if (r == SendResult::ok) [[likely]]  // =
        return;  // =
      pending_.store(0, memory_order_relaxed);  // =
      if (r == SendResult::full) {  // =
        topic_.wakes_failed_.fetch_add(1, memory_order_relaxed);  // =
      } else {  // =
        closed_.store(true, memory_order_release);  // =
      }
    }
    std::uint64_t cursor() const { return cursor_.load(memory_order_acquire); }  // =
    SlowPolicy policy() const { return policy_; }  // =
    bool closed() const { return closed_.load(memory_order_acquire); }  // =

    // mirrors include/tern/topic.hpp
    void drain(Actor& a) override {
#ifdef TERN_RL_BUG_NO_WAKE_FENCE
      pending_.store(0, memory_order_relaxed);  // seeded bug: no fence after it
#else
      pending_.store(0, memory_order_relaxed);  // =
      atomic_thread_fence(memory_order_seq_cst);  // =
#endif
      struct Publish {  // =
        Subscription& s;  // =
#ifdef TERN_RL_BUG_RELAXED_CURSOR
        ~Publish() { s.cursor_.store(s.next_, memory_order_relaxed); }  // seeded bug
#else
        ~Publish() { s.cursor_.store(s.next_, memory_order_release); }  // =
#endif
      } publish{*this};  // =
      const bool more = policy_ == SlowPolicy::conflate ? drain_conflated(a) : drain_ordered(a);  // =
      if (more) rewake();  // =
    }

   private:
    // mirrors include/tern/topic.hpp
    bool drain_ordered(Actor& a) {
      Topic& t = *topic_;
      std::uint32_t budget = t.cfg_.drain_batch;  // =
      T v;  // =
      while (budget) {  // =
#ifdef TERN_RL_BUG_EARLY_CURSOR
        cursor_.store(next_ + 1, memory_order_release);  // seeded bug: before the copy
#endif
        const ReadResult r = t.read(t.ring_[next_ & t.mask_], next_, v);  // =
        if (r == ReadResult::ok) {  // =
          if (check_shadow_) RL_ASSERT(t.ring_[next_ & t.mask_].shadow($) == next_);  // model only
          ++next_;  // =
          --budget;  // =
          received_.fetch_add(1, memory_order_relaxed);  // =
          call_(a, v);  // =
          continue;  // =
        }
        if (r == ReadResult::not_yet) return false;  // =
        const std::uint64_t head = t.published_.load(memory_order_acquire);  // =
        const std::uint64_t oldest = head > t.cap_ ? head - t.cap_ + 1 : 0;  // =
        if (oldest > next_) {  // =
          dropped_.fetch_add(oldest - next_, memory_order_relaxed);  // =
          next_ = oldest;  // =
        }
      }
      return t.published_.load(memory_order_acquire) > next_;  // =
    }

    // mirrors include/tern/topic.hpp
    bool drain_conflated(Actor& a) {
      Topic& t = *topic_;
      const std::uint64_t head = t.published_.load(memory_order_acquire);  // =
      if (head == next_) return false;  // =
      bool all = head - next_ > t.cap_;  // =
      T v;  // =
      for (std::uint64_t p = next_; !all && p < head; ++p) {  // =
        const ReadResult r = t.read(t.ring_[p & t.mask_], p, v);  // =
        if (r == ReadResult::ok) {  // =
          touch(t.key_(v));  // =
        } else {  // =
          all = true;  // =
        }
      }
#ifdef TERN_RL_BUG_CLEAR_TOUCHED  // the bug the model found (fixed in topic.hpp)
      if (all) {
        touched_.clear();
        for (std::uint32_t k = 0; k < t.cfg_.max_keys; ++k) touch(k);
      }
#else
      if (all)  // =
        for (std::uint32_t k = 0; k < t.cfg_.max_keys; ++k) touch(k);  // =
#endif
      for (std::size_t i = 0; i < touched_.size(); ++i) {  // =
        const std::uint32_t k = touched_[i];  // =
        marked_[k] = 0;  // =
        std::uint64_t stamp = 0;  // =
#ifdef TERN_RL_BUG_NO_STALE_CHECK
        if (!t.read_latest(k, v, stamp)) continue;  // seeded bug: no stamp comparison
#else
        if (!t.read_latest(k, v, stamp) || stamp <= delivered_[k]) continue;  // =
#endif
        delivered_[k] = stamp;  // =
        received_.fetch_add(1, memory_order_relaxed);  // =
        call_(a, v);  // =
      }
      touched_.clear();  // =
      next_ = head;  // =
      return t.published_.load(memory_order_acquire) > next_;  // =
    }

    // mirrors include/tern/topic.hpp
    void touch(std::uint32_t k) {
      if (k >= marked_.size() || marked_[k]) return;  // =
      marked_[k] = 1;  // =
      touched_.push_back(k);  // =
    }

    // mirrors include/tern/topic.hpp
    void rewake() {
      if (pending_.exchange(1, memory_order_acq_rel)) return;  // =
      if (send_wake() != SendResult::ok)  // =
        pending_.store(0, memory_order_relaxed);  // =
    }

    // mirrors include/tern/topic.hpp
    SendResult send_wake() {
      Actor& actor_ = *this->actor_;
      const SendResult r = actor_.self().try_send(TopicWake{this});  // =
#ifndef TERN_RL_BUG_NO_PRIORITY_WAKE  // seeded bug: a wake refused as full is dropped
      if (r != SendResult::full) [[likely]]  // =
        return r;  // =
      return actor_.self().try_send_priority(TopicWake{this});  // =
#else
      return r;
#endif
    }

    /// Fixed-size stand-ins for the subscriber's vectors (their size is max_keys).
    struct Marks {
      Own<std::uint8_t> m[Keys];
      std::size_t size() const { return Keys; }
      Own<std::uint8_t>& operator[](std::size_t i) { return m[i]; }
    };
    struct Touched {
      std::uint32_t k[Keys] = {};
      std::size_t n = 0;
      void clear() { n = 0; }
      void push_back(std::uint32_t x) {
        RL_ASSERT(n < Keys);
        k[n++] = x;
      }
      std::size_t size() const { return n; }
      std::uint32_t operator[](std::size_t i) const { return k[i]; }
    };

    Topic* topic_ = nullptr;
    Actor* actor_ = nullptr;
    SlowPolicy policy_ = SlowPolicy::backpressure;
    Call call_ = nullptr;
    bool check_shadow_ = false;  // model only: see Cell::shadow
    rl::atomic<std::uint64_t> cursor_;
    rl::atomic<std::uint32_t> pending_;
    rl::atomic<bool> closed_;
    Own<std::uint64_t> next_;
    Own<std::uint64_t> delivered_[Keys];
    Marks marked_;
    Touched touched_;
    rl::atomic<std::uint64_t> received_, dropped_;
  };

 private:
  enum class ReadResult : std::uint8_t { ok, not_yet, lapped };

  static void clear(Cell& c) {
    c.seq.store(0, memory_order_relaxed);
    for (std::size_t i = 0; i < kWords; ++i) c.w[i].store(0, memory_order_relaxed);
    c.shadow($) = 0;
  }

  // mirrors include/tern/topic.hpp
  static void write(Cell& c, std::uint64_t p, const std::uint64_t* words) {
    c.seq.store(2 * p + 1, memory_order_relaxed);  // =
#ifndef TERN_RL_BUG_NO_WRITE_FENCE  // seeded bug: the words may be seen before the odd stamp
    atomic_thread_fence(memory_order_release);  // =
#endif
    for (std::size_t i = 0; i < kWords; ++i) c.w[i].store(words[i], memory_order_relaxed);  // =
    c.shadow($) = p;  // model only
#ifdef TERN_RL_BUG_RELAXED_STAMP
    c.seq.store(2 * p + 2, memory_order_relaxed);  // seeded bug
#else
    c.seq.store(2 * p + 2, memory_order_release);  // =
#endif
  }

  // mirrors include/tern/topic.hpp
  static ReadResult read(const Cell& c, std::uint64_t p, T& out) {
    const std::uint64_t want = 2 * p + 2;  // =
    const std::uint64_t s1 = c.seq.load(memory_order_acquire);  // =
    if (s1 < want) return ReadResult::not_yet;  // =
    if (s1 > want) return ReadResult::lapped;  // =
    std::uint64_t words[kWords];  // =
    for (std::size_t i = 0; i < kWords; ++i) words[i] = c.w[i].load(memory_order_relaxed);  // =
#ifndef TERN_RL_BUG_NO_READ_FENCE  // seeded bug: the second stamp load may be satisfied early
    atomic_thread_fence(memory_order_acquire);  // =
#endif
#ifndef TERN_RL_BUG_NO_STAMP_RECHECK  // seeded bug: the copy is taken without a second look
    if (c.seq.load(memory_order_relaxed) != s1) return ReadResult::lapped;  // =
#endif
    std::memcpy(&out, words, sizeof(T));  // =
    return ReadResult::ok;  // =
  }

  // mirrors include/tern/topic.hpp
  bool read_latest(std::uint32_t k, T& out, std::uint64_t& stamp) const {
    const Cell& c = latest_[k];  // =
    for (int attempt = 0; attempt < 64; ++attempt) {  // =
      const std::uint64_t s1 = c.seq.load(memory_order_acquire);  // =
      if (s1 == 0) return false;  // =
      if (s1 & 1) continue;  // =
      std::uint64_t words[kWords];  // =
      for (std::size_t i = 0; i < kWords; ++i) words[i] = c.w[i].load(memory_order_relaxed);  // =
      atomic_thread_fence(memory_order_acquire);  // =
      if (c.seq.load(memory_order_relaxed) != s1) continue;  // =
      std::memcpy(&out, words, sizeof(T));  // =
      stamp = s1;  // =
      return true;  // =
    }
    return false;  // =
  }

  // mirrors include/tern/topic.hpp
  bool room_for(std::uint64_t p) {
    const std::uint64_t need = p - cap_ + 1;  // =
    if (min_cursor_ >= need) return true;  // =
    std::uint64_t m = UINT64_MAX;  // =
    for (const auto& s : subs_)  // =
      if (s->policy() == SlowPolicy::backpressure && !s->closed()) m = std::min(m, s->cursor());  // =
    min_cursor_ = m;  // =
    return m >= need;  // =
  }

  // mirrors include/tern/topic.hpp
  void wake_all() {
    for (const auto& s : subs_) s->wake();  // =
  }

  struct SubList {
    Subscription* s[Subs] = {};
    std::size_t n = 0;
    std::size_t size() const { return n; }
    void push_back(Subscription* x) { s[n++] = x; }
    Subscription* const* begin() const { return s; }
    Subscription* const* end() const { return s + n; }
  };

  Config cfg_;
  KeyFn key_ = nullptr;
  std::uint32_t cap_ = 0, mask_ = 0;
  Cell ring_[Cap];
  Cell latest_[Keys];
  SubList subs_;
  bool has_backpressure_ = false;
  std::uint64_t head_ = 0;        // publisher's own
  std::uint64_t min_cursor_ = 0;  // publisher's own
  rl::atomic<std::uint64_t> published_;
  rl::atomic<std::uint64_t> refused_full_, wakes_failed_, bad_keys_;
};

}  // namespace tern_model
