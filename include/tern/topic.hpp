// Publish/subscribe: one publisher writes each value once into a ring; every subscriber
// reads it with a cursor of its own (Disruptor-style). A publish is one record write and one
// check per subscriber, not N copies; each subscriber chooses what it gets when it is slow:
//
//   backpressure  every value, in order; the publisher waits (try_publish: full) while this
//                 subscriber is a whole ring behind.
//   drop_oldest   every value it keeps up with, in order; when the publisher laps it, it skips
//                 to the oldest value still in the ring and counts what it skipped (dropped).
//   conflate      the latest value per key (TopicConfig::max_keys, key function given to the
//                 Topic): never a stale backlog. Skipped older values are counted (conflated).
//
//   struct Tick { static constexpr tern::MessageId message_id = 7; std::uint32_t sym; double px; };
//   tern::Topic<Tick> ticks("ticks", {.capacity = 4096, .max_keys = 512},
//                           [](const Tick& t) { return t.sym; });
//   class Strategy : public tern::Actor {
//    public:
//     explicit Strategy(tern::Topic<Tick>& t) { t.subscribe<&Strategy::on_tick>(*this, tern::SlowPolicy::conflate); }
//     void on_tick(const Tick& t) { ... }
//   };
//   // on the feed's thread:  ticks.try_publish(Tick{...});
//
// Values reach a subscriber on its own thread, through its mailbox: the publisher sends a
// TopicWake only to a subscriber that has none pending, and the subscriber's handler reads
// everything published since (up to drain_batch values per wake-up). Concurrency protocol:
// docs/concurrency.md ("Topics").
#pragma once
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <tern/actor.hpp>

namespace tern {

enum class SlowPolicy : std::uint8_t { backpressure, drop_oldest, conflate };

/// Set-up of a Topic. Every bound is fixed here: no allocation after construction.
struct TopicConfig {
  std::uint32_t capacity = 4096;       ///< values in the ring (rounded up to a power of two)
  std::uint32_t max_subscribers = 64;  ///< subscribe() beyond it throws
  std::uint32_t max_keys = 0;          ///< conflation keys 0..max_keys-1 (0: no conflation)
  std::uint32_t drain_batch = 256;     ///< values one wake-up hands a subscriber at most
};

/// One subscription's counters (relaxed snapshots, any thread).
struct SubscriptionStats {
  std::string_view actor;
  SlowPolicy policy = SlowPolicy::backpressure;
  std::uint64_t received = 0;   ///< values handed to the handler
  std::uint64_t dropped = 0;    ///< drop_oldest: values the publisher overwrote unread
  std::uint64_t conflated = 0;  ///< conflate: values covered but not handed (a newer one of the key was)
  std::uint64_t lag = 0;        ///< published - this subscriber's cursor
  bool closed = false;          ///< its actor stopped: no longer woken or waited for
};

/// The topic's counters (relaxed snapshots, any thread).
struct TopicStats {
  std::uint64_t published = 0;
  std::uint64_t refused_full = 0;  ///< try_publish refused: a backpressure subscriber is full
  std::uint64_t wakes_failed = 0;  ///< a subscriber's mailbox full, both lanes: woken later
  std::uint64_t bad_keys = 0;      ///< values whose key was >= max_keys (conflate skips them)
};

namespace detail {

struct SubscriptionBase {
  virtual ~SubscriptionBase() = default;
  /// Subscriber's thread, from its TopicWake handler: hands it what was published since.
  virtual void drain(Actor& a) = 0;
};

/// The one place a Topic reaches into Actor: its TopicWake handler.
struct TopicAccess {
  static void add_wake_handler(Actor& a);
};

}  // namespace detail

/// Sent by a Topic to a subscriber with values waiting (at most one pending per
/// subscription). Handled by tern: a subscribing actor does not handle it itself.
struct TopicWake {
  static constexpr MessageId message_id = kFirstReservedId + 4;
  detail::SubscriptionBase* sub = nullptr;
};

inline void detail::TopicAccess::add_wake_handler(Actor& a) {
  for (const Actor::Entry& e : a.entries_)
    if (e.info == &message_info_v<TopicWake>) return;  // one handler serves every topic
  a.add_handler(message_info_v<TopicWake>, [](Actor& self, const void* m) {
    static_cast<const TopicWake*>(m)->sub->drain(self);
  });
}

template <class T>
class Topic {
  static_assert(std::is_trivially_copyable_v<T>,
                "tern::Topic<T>: T must be trivially copyable (subscribers copy it word by word "
                "while the publisher may be overwriting it)");
  static constexpr std::size_t kWords = (sizeof(T) + 7) / 8;

  /// One value. `seq` is 0 (never written), 2p+1 while value p is written, 2p+2 once it is
  /// complete: a seqlock whose count is the position, so a reader knows which value it got.
  struct alignas(kCacheLine) Cell {
    std::atomic<std::uint64_t> seq{0};
    std::atomic<std::uint64_t> w[kWords];
  };

  class Subscription;

 public:
  /// `key`: the conflation key of a value (needed for SlowPolicy::conflate, with max_keys).
  using KeyFn = std::uint32_t (*)(const T&);

  explicit Topic(std::string name, TopicConfig cfg = {}, KeyFn key = nullptr)
      : name_(std::move(name)), cfg_(cfg), key_(key) {
    if (cfg_.capacity < 2 || cfg_.capacity > (1u << 30))
      throw std::invalid_argument("tern: topic '" + name_ + "': capacity " +
                                  std::to_string(cfg_.capacity) + " is outside 2..2^30");
    if (cfg_.drain_batch == 0)
      throw std::invalid_argument("tern: topic '" + name_ + "': drain_batch must be > 0");
    if ((cfg_.max_keys == 0) != (key_ == nullptr))
      throw std::invalid_argument("tern: topic '" + name_ + "': max_keys (" +
                                  std::to_string(cfg_.max_keys) +
                                  ") and a key function go together");
    cap_ = 2;
    while (cap_ < cfg_.capacity) cap_ <<= 1;
    mask_ = cap_ - 1;
    ring_ = std::make_unique<Cell[]>(cap_);
    if (cfg_.max_keys) latest_ = std::make_unique<Cell[]>(cfg_.max_keys);
    subs_.reserve(cfg_.max_subscribers);
  }
  Topic(const Topic&) = delete;
  Topic& operator=(const Topic&) = delete;

  std::string_view name() const noexcept { return name_; }
  std::uint32_t capacity() const noexcept { return cap_; }
  /// Conflation keys (TopicConfig::max_keys; 0: none) and the key of a value.
  std::uint32_t max_keys() const noexcept { return cfg_.max_keys; }
  std::uint32_t key_of(const T& v) const noexcept { return key_ ? key_(v) : 0; }

  /// Subscribes `who` with handler `Fn` (`void C::f(const T&)`). Set-up only: before the
  /// first publish and before the Manager starts `who`. Throws std::logic_error after a
  /// publish, beyond max_subscribers, or for conflate on a topic without keys.
  template <auto Fn>
  void subscribe(Actor& who, SlowPolicy policy) {
    using Traits = detail::HandlerTraits<decltype(Fn)>;
    using C = typename Traits::Class;
    static_assert(std::is_same_v<typename Traits::Msg, T>,
                  "subscribe<&C::f>: f must take const T& of this topic's T");
    static_assert(std::is_base_of_v<Actor, C>);
    if (head_ != 0)
      throw std::logic_error("tern: topic '" + name_ + "': subscribe after the first publish");
    if (subs_.size() >= cfg_.max_subscribers)
      throw std::logic_error("tern: topic '" + name_ + "': more than max_subscribers (" +
                             std::to_string(cfg_.max_subscribers) + ")");
    if (policy == SlowPolicy::conflate && !cfg_.max_keys)
      throw std::logic_error("tern: topic '" + name_ +
                             "': conflate needs max_keys and a key function");
    detail::TopicAccess::add_wake_handler(who);
    auto s = std::make_unique<Subscription>(*this, who, policy, [](Actor& a, const T& v) {
      (static_cast<C&>(a).*Fn)(v);
    });
    if (policy == SlowPolicy::backpressure) has_backpressure_ = true;
    subs_.push_back(std::move(s));
  }

  /// Publisher's thread (one thread). ok, or full while a backpressure subscriber is a
  /// whole ring behind (nothing written). Publish once the subscribers are managed (before
  /// or after Manager::init()): a wake-up refused as closed — an actor that stopped, or one
  /// no Manager has taken yet — closes that subscription for good.
  SendResult try_publish(const T& v) noexcept {
    const std::uint64_t p = head_;
    if (has_backpressure_ && p >= cap_ && !room_for(p)) {
      refused_full_.fetch_add(1, std::memory_order_relaxed);
      wake_all();  // a backpressure subscriber whose wake-up failed must still get one
      return SendResult::full;
    }
    std::uint64_t words[kWords] = {};
    std::memcpy(words, &v, sizeof(T));
    write(ring_[p & mask_], p, words);
    if (key_) {
      const std::uint32_t k = key_(v);
      if (k < cfg_.max_keys) [[likely]]
        write(latest_[k], p, words);
      else
        bad_keys_.fetch_add(1, std::memory_order_relaxed);
    }
    head_ = p + 1;
    published_.store(p + 1, std::memory_order_release);
    // Pairs with the fence in Subscription::drain (store `pending`, fence, load `seq`):
    // either it reads this value or we read its pending == 0 and wake it.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    wake_all();
    return SendResult::ok;
  }

  /// Publisher's thread: as try_publish, but waits (backing off) while full.
  void publish(const T& v) noexcept {
    std::uint32_t round = 0;
    while (try_publish(v) == SendResult::full) detail::backoff(round);
  }

  TopicStats stats() const noexcept {
    TopicStats s;
    s.published = published_.load(std::memory_order_relaxed);
    s.refused_full = refused_full_.load(std::memory_order_relaxed);
    s.wakes_failed = wakes_failed_.load(std::memory_order_relaxed);
    s.bad_keys = bad_keys_.load(std::memory_order_relaxed);
    return s;
  }
  std::vector<SubscriptionStats> subscription_stats() const {
    std::vector<SubscriptionStats> out;
    const std::uint64_t head = published_.load(std::memory_order_relaxed);
    for (const auto& s : subs_) out.push_back(s->stats(head));
    return out;
  }

 private:
  class Subscription final : public detail::SubscriptionBase {
   public:
    using Call = void (*)(Actor&, const T&);
    Subscription(Topic& t, Actor& a, SlowPolicy p, Call c)
        : topic_(t), actor_(a), policy_(p), call_(c) {
      if (p == SlowPolicy::conflate) {
        delivered_.assign(t.cfg_.max_keys, 0);
        marked_.assign(t.cfg_.max_keys, 0);
        touched_.reserve(t.cfg_.max_keys);
      }
    }

    // -- publisher side ----------------------------------------------------------------
    /// Sends a TopicWake unless one is pending. Publisher's thread.
    void wake() noexcept {
      if (pending_.load(std::memory_order_relaxed) || closed_.load(std::memory_order_relaxed))
        return;
      if (pending_.exchange(1, std::memory_order_acq_rel)) return;
      const SendResult r = send_wake();
      if (r == SendResult::ok) [[likely]]
        return;
      pending_.store(0, std::memory_order_relaxed);  // the next publish tries again
      if (r == SendResult::full) {
        topic_.wakes_failed_.fetch_add(1, std::memory_order_relaxed);
      } else {
        closed_.store(true, std::memory_order_release);  // stopped: never waited for again
      }
    }
    bool blocks(std::uint64_t need) const noexcept {
      return policy_ == SlowPolicy::backpressure && !closed_.load(std::memory_order_acquire) &&
             cursor_.load(std::memory_order_acquire) < need;
    }
    std::uint64_t cursor() const noexcept { return cursor_.load(std::memory_order_acquire); }
    SlowPolicy policy() const noexcept { return policy_; }
    bool closed() const noexcept { return closed_.load(std::memory_order_acquire); }

    SubscriptionStats stats(std::uint64_t head) const noexcept {
      SubscriptionStats s;
      s.actor = actor_.name();
      s.policy = policy_;
      s.received = received_.load(std::memory_order_relaxed);
      s.dropped = dropped_.load(std::memory_order_relaxed);
      const std::uint64_t c = cursor_.load(std::memory_order_relaxed);
      // values covered but not handed one by one (a value handed early, newer than the
      // drain's end, is not counted twice: hence the clamp)
      if (policy_ == SlowPolicy::conflate) s.conflated = c > s.received ? c - s.received : 0;
      s.lag = head > c ? head - c : 0;
      s.closed = closed_.load(std::memory_order_relaxed);
      return s;
    }

    // -- subscriber side ---------------------------------------------------------------
    void drain(Actor& a) override {
      pending_.store(0, std::memory_order_relaxed);
      // Pairs with the fence in try_publish: a value published after this point finds
      // pending == 0 and sends another wake; one published before is read below.
      std::atomic_thread_fence(std::memory_order_seq_cst);
      // why a guard: a throwing handler must not leave the cursor behind (a backpressure
      // publisher waits on it); the value it threw on counts as received.
      struct Publish {
        Subscription& s;
        ~Publish() { s.cursor_.store(s.next_, std::memory_order_release); }
      } publish{*this};
      const bool more = policy_ == SlowPolicy::conflate ? drain_conflated(a) : drain_ordered(a);
      if (more) rewake();
    }

   private:
    /// backpressure and drop_oldest: values in order, from next_. True: more are waiting.
    bool drain_ordered(Actor& a) {
      Topic& t = topic_;
      std::uint32_t budget = t.cfg_.drain_batch;
      T v;
      while (budget) {
        const ReadResult r = t.read(t.ring_[next_ & t.mask_], next_, v);
        if (r == ReadResult::ok) {
          ++next_;
          --budget;
          received_.fetch_add(1, std::memory_order_relaxed);
          call_(a, v);
          continue;
        }
        if (r == ReadResult::not_yet) return false;
        // lapped: the publisher overwrote next_ (never for backpressure, which it waits for)
        const std::uint64_t head = t.published_.load(std::memory_order_acquire);
        const std::uint64_t oldest = head > t.cap_ ? head - t.cap_ + 1 : 0;
        if (oldest > next_) {
          dropped_.fetch_add(oldest - next_, std::memory_order_relaxed);
          next_ = oldest;
        }
      }
      return t.published_.load(std::memory_order_acquire) > next_;
    }

    /// conflate: the latest value of every key published since next_, each once.
    bool drain_conflated(Actor& a) {
      Topic& t = topic_;
      const std::uint64_t head = t.published_.load(std::memory_order_acquire);
      if (head == next_) return false;
      bool all = head - next_ > t.cap_;
      T v;
      for (std::uint64_t p = next_; !all && p < head; ++p) {
        const ReadResult r = t.read(t.ring_[p & t.mask_], p, v);
        if (r == ReadResult::ok) {
          touch(t.key_(v));
        } else {
          all = true;  // lapped while scanning: every key may have moved
        }
      }
      // why the keys already touched stay listed: they are marked, so touch() skips them
      // (clearing the list here lost them for good; found by tests/relacy, Conflate)
      if (all)
        for (std::uint32_t k = 0; k < t.cfg_.max_keys; ++k) touch(k);
      for (std::size_t i = 0; i < touched_.size(); ++i) {
        const std::uint32_t k = touched_[i];
        marked_[k] = 0;
        std::uint64_t stamp = 0;
        if (!t.read_latest(k, v, stamp) || stamp <= delivered_[k]) continue;
        delivered_[k] = stamp;
        received_.fetch_add(1, std::memory_order_relaxed);
        call_(a, v);
      }
      touched_.clear();
      next_ = head;
      return t.published_.load(std::memory_order_acquire) > next_;
    }

    void touch(std::uint32_t k) noexcept {
      if (k >= marked_.size() || marked_[k]) return;  // out-of-range keys are counted on publish
      marked_[k] = 1;
      touched_.push_back(k);
    }

    /// Hands itself another wake-up so that other messages interleave with a long backlog.
    void rewake() noexcept {
      if (pending_.exchange(1, std::memory_order_acq_rel)) return;
      if (send_wake() != SendResult::ok)
        pending_.store(0, std::memory_order_relaxed);  // the next publish wakes us
    }

    /// The TopicWake: normal lane, or the priority lane when the normal one is full.
    SendResult send_wake() noexcept {
      const SendResult r = actor_.self().try_send(TopicWake{this});
      // why the fallback: a wake refused as full leaves what was published unread until
      // the next publish, for ever if the feed stops (docs/concurrency.md, Topics, T3)
      if (r != SendResult::full) [[likely]]
        return r;
      return actor_.self().try_send_priority(TopicWake{this});
    }

    Topic& topic_;
    Actor& actor_;
    const SlowPolicy policy_;
    const Call call_;
    // publisher reads, subscriber writes: own line
    alignas(kCacheLine) std::atomic<std::uint64_t> cursor_{0};  ///< next value to read
    std::atomic<std::uint32_t> pending_{0};  ///< a TopicWake is queued or being handled
    std::atomic<bool> closed_{false};
    // subscriber's own
    alignas(kCacheLine) std::uint64_t next_ = 0;
    std::vector<std::uint64_t> delivered_;  ///< conflate: stamp of the last value handed, per key
    std::vector<std::uint8_t> marked_;
    std::vector<std::uint32_t> touched_;
    std::atomic<std::uint64_t> received_{0}, dropped_{0};
  };

  enum class ReadResult : std::uint8_t { ok, not_yet, lapped };

  static void write(Cell& c, std::uint64_t p, const std::uint64_t* words) noexcept {
    c.seq.store(2 * p + 1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);  // odd before any word (seqlock)
    for (std::size_t i = 0; i < kWords; ++i) c.w[i].store(words[i], std::memory_order_relaxed);
    c.seq.store(2 * p + 2, std::memory_order_release);
  }

  /// Reads value `p` from cell `c` (seqlock: stamp, words, fence, stamp again).
  static ReadResult read(const Cell& c, std::uint64_t p, T& out) noexcept {
    const std::uint64_t want = 2 * p + 2;
    const std::uint64_t s1 = c.seq.load(std::memory_order_acquire);
    if (s1 < want) return ReadResult::not_yet;  // older lap, never written, or being written
    if (s1 > want) return ReadResult::lapped;
    std::uint64_t words[kWords];
    for (std::size_t i = 0; i < kWords; ++i) words[i] = c.w[i].load(std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_acquire);
    if (c.seq.load(std::memory_order_relaxed) != s1) return ReadResult::lapped;
    std::memcpy(&out, words, sizeof(T));
    return ReadResult::ok;
  }

  /// The latest value of key `k`; false if none yet (or it kept changing under us).
  bool read_latest(std::uint32_t k, T& out, std::uint64_t& stamp) const noexcept {
    const Cell& c = latest_[k];
    for (int attempt = 0; attempt < 64; ++attempt) {
      const std::uint64_t s1 = c.seq.load(std::memory_order_acquire);
      if (s1 == 0) return false;
      if (s1 & 1) continue;  // being written
      std::uint64_t words[kWords];
      for (std::size_t i = 0; i < kWords; ++i) words[i] = c.w[i].load(std::memory_order_relaxed);
      std::atomic_thread_fence(std::memory_order_acquire);
      if (c.seq.load(std::memory_order_relaxed) != s1) continue;
      std::memcpy(&out, words, sizeof(T));
      stamp = s1;
      return true;
    }
    return false;  // published faster than we can copy: the next drain sees it (marked again)
  }

  /// Backpressure: may value p overwrite value p - cap? Rereads the cursors only when the
  /// cached minimum says no.
  bool room_for(std::uint64_t p) noexcept {
    const std::uint64_t need = p - cap_ + 1;
    if (min_cursor_ >= need) return true;
    std::uint64_t m = UINT64_MAX;
    for (const auto& s : subs_)
      if (s->policy() == SlowPolicy::backpressure && !s->closed()) m = std::min(m, s->cursor());
    min_cursor_ = m;
    return m >= need;
  }

  void wake_all() noexcept {
    for (const auto& s : subs_) s->wake();
  }

  // set-up
  std::string name_;
  TopicConfig cfg_;
  KeyFn key_;
  std::uint32_t cap_ = 0, mask_ = 0;
  std::unique_ptr<Cell[]> ring_;
  std::unique_ptr<Cell[]> latest_;  ///< conflation: the latest value per key
  std::vector<std::unique_ptr<Subscription>> subs_;
  bool has_backpressure_ = false;
  // publisher's own line
  alignas(kCacheLine) std::uint64_t head_ = 0;
  std::uint64_t min_cursor_ = 0;  ///< cached minimum of the backpressure cursors
  // read by subscribers that were lapped, and by stats
  alignas(kCacheLine) std::atomic<std::uint64_t> published_{0};
  std::atomic<std::uint64_t> refused_full_{0}, wakes_failed_{0}, bad_keys_{0};
};

}  // namespace tern
