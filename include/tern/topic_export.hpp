// A Topic for remote subscribers (a Python research actor, another process) through the
// gateway: each one gets a conflated stream it can keep up with, paced by credit.
//
//   tern::Topic<Quote> quotes("quotes", {.capacity = 4096, .max_keys = 512}, &symbol_index);
//   reg.add<Quote>();  tern::add_topic_messages(reg);          // the gateway's wire registry
//   mgr.manage("quotes", std::make_unique<tern::TopicExport<Quote>>(quotes));
//
// A remote actor sends TopicSubscribe{window} to the exporter (by its name, "quotes"): it may
// then hold `window` values it has not given credit back for (TopicCredit{n}). While it has
// credit, values go out as they are published; while it has none, the exporter keeps only the
// latest value per key for it and sends those (oldest key first) as credit returns. So a
// subscriber 100x slower than the feed gets the newest values, never a stale backlog in a
// socket queue, and the gateway's memory stays bounded (window frames per subscriber). A new
// subscriber first gets the latest value of every key seen so far. TopicUnsubscribe ends it.
// python/tern/topic.py is the Python side (TopicFeed).
#pragma once
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <vector>

#include <tern/actor.hpp>
#include <tern/topic.hpp>
#include <tern/wire.hpp>

namespace tern {

/// A remote actor asks for the stream; `window`: values it may hold unacknowledged (1..).
struct TopicSubscribe {
  static constexpr MessageId message_id = kFirstReservedId + 0x20;
  std::int32_t window = 0;
  TERN_WIRE(TopicSubscribe, window)
};
/// A subscriber hands back credit for `credit` values it has handled.
struct TopicCredit {
  static constexpr MessageId message_id = kFirstReservedId + 0x21;
  std::int32_t credit = 0;
  TERN_WIRE(TopicCredit, credit)
};
/// A subscriber leaves.
struct TopicUnsubscribe {
  static constexpr MessageId message_id = kFirstReservedId + 0x22;
  TERN_WIRE(TopicUnsubscribe)
};

/// Registers the three messages above with a gateway's wire registry.
template <class Registry>
Registry& add_topic_messages(Registry& reg) {
  return reg.template add<TopicSubscribe>().template add<TopicCredit>().template add<TopicUnsubscribe>();
}

struct TopicExportConfig {
  std::uint32_t max_subscribers = 64;  ///< further TopicSubscribe are refused (counted)
  std::int32_t max_window = 4096;      ///< a larger window (or credit beyond it) is capped
};

/// One remote subscriber's counters.
struct RemoteSubscriberStats {
  ActorRef ref;
  std::int64_t credit = 0;      ///< values it may still be sent now
  std::uint64_t sent = 0;       ///< values sent to it
  std::uint64_t conflated = 0;  ///< values replaced by a newer one of their key before sending
  std::uint64_t refused = 0;    ///< sends the gateway refused (kept as pending, retried)
};

/// Counters over every remote subscriber since the start, those that unsubscribed included.
struct RemoteSubscriberTotals {
  std::uint64_t subscribed = 0;  ///< subscribers accepted (a re-subscribe of one counts once)
  std::uint64_t departed = 0;    ///< of them, gone by TopicUnsubscribe
  std::uint64_t sent = 0, conflated = 0, refused = 0;  ///< as in RemoteSubscriberStats
};

template <class T>
class TopicExport : public Actor {
 public:
  explicit TopicExport(Topic<T>& topic, TopicExportConfig cfg = {})
      : topic_(topic), cfg_(cfg), keys_(topic.max_keys()) {
    if (!keys_)
      throw std::logic_error("tern: TopicExport of topic '" + std::string(topic.name()) +
                             "': the topic needs max_keys and a key function (it conflates)");
    latest_.resize(keys_);
    have_.assign(keys_, 0);
    topic.template subscribe<&TopicExport::on_value>(*this, SlowPolicy::conflate);
    handle<&TopicExport::on_subscribe>();
    handle<&TopicExport::on_credit>();
    handle<&TopicExport::on_unsubscribe>();
  }

  /// Counters per subscriber. Only from this actor's handlers, or after Manager::end().
  std::vector<RemoteSubscriberStats> subscriber_stats() const {
    std::vector<RemoteSubscriberStats> out;
    for (const Sub& s : subs_) out.push_back({s.ref, s.credit, s.sent, s.conflated, s.refused});
    return out;
  }
  /// The same counters summed over every subscriber since the start, including those that
  /// unsubscribed (subscriber_stats() lists only the current ones). Only from this actor's
  /// handlers, or after Manager::end().
  RemoteSubscriberTotals totals() const {
    RemoteSubscriberTotals t = gone_;
    t.subscribed = subscribed_;
    for (const Sub& s : subs_) {
      t.sent += s.sent;
      t.conflated += s.conflated;
      t.refused += s.refused;
    }
    return t;
  }
  /// TopicSubscribe refused (max_subscribers, or no sender to answer). Any thread.
  std::uint64_t refused_subscriptions() const noexcept {
    return refused_subs_.load(std::memory_order_relaxed);
  }
  /// Subscribers now. Any thread.
  std::size_t subscribers() const noexcept { return count_.load(std::memory_order_relaxed); }

 private:
  struct Sub {
    ActorRef ref;
    std::int64_t credit = 0;
    std::vector<std::uint8_t> dirty;   ///< per key: a pending value waits
    std::vector<std::uint32_t> order;  ///< pending keys, oldest first (a ring of keys_)
    std::uint32_t first = 0, count = 0;
    std::uint64_t sent = 0, conflated = 0, refused = 0;
  };

  void on_value(const T& v) {
    const std::uint32_t k = topic_.key_of(v);
    if (k >= keys_) return;  // counted by the topic (bad_keys)
    latest_[k] = v;
    have_[k] = 1;
    for (Sub& s : subs_) {
      if (s.credit > 0 && s.count == 0 && send_to(s, v)) continue;
      pend(s, k);
      if (s.credit > 0) flush(s);  // a send the gateway refused earlier: try again now
    }
  }

  void on_subscribe(const TopicSubscribe& m) {
    const ActorRef from = sender();
    if (!from) {
      refused_subs_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    Sub* s = find(from);
    if (!s) {
      if (subs_.size() >= cfg_.max_subscribers) {
        refused_subs_.fetch_add(1, std::memory_order_relaxed);
        return;
      }
      subs_.push_back(Sub{from, 0, std::vector<std::uint8_t>(keys_, 0),
                          std::vector<std::uint32_t>(keys_, 0)});
      s = &subs_.back();
      ++subscribed_;
      count_.store(subs_.size(), std::memory_order_relaxed);
    }
    s->credit = std::clamp<std::int64_t>(m.window, 1, cfg_.max_window);
    for (std::uint32_t k = 0; k < keys_; ++k)  // start with the latest of every key
      if (have_[k]) pend(*s, k);
    flush(*s);
  }

  void on_credit(const TopicCredit& m) {
    Sub* s = find(sender());
    if (!s || m.credit <= 0) return;
    s->credit = std::min<std::int64_t>(s->credit + m.credit, cfg_.max_window);
    flush(*s);
  }

  void on_unsubscribe(const TopicUnsubscribe&) {
    const ActorRef from = sender();
    if (const Sub* s = find(from)) {  // its counters stay in totals()
      ++gone_.departed;
      gone_.sent += s->sent;
      gone_.conflated += s->conflated;
      gone_.refused += s->refused;
    }
    subs_.erase(std::remove_if(subs_.begin(), subs_.end(), [&](const Sub& s) { return s.ref == from; }),
                subs_.end());
    count_.store(subs_.size(), std::memory_order_relaxed);
  }

  Sub* find(const ActorRef& r) {
    for (Sub& s : subs_)
      if (s.ref == r) return &s;
    return nullptr;
  }

  /// Key k has a newer value for s than what s was sent: remember it (once per key).
  void pend(Sub& s, std::uint32_t k) {
    if (s.dirty[k]) {
      ++s.conflated;  // the older pending value of k is never sent
      return;
    }
    s.dirty[k] = 1;
    s.order[(s.first + s.count) % keys_] = k;
    ++s.count;
  }

  /// Sends pending keys (oldest first, their latest values) while s has credit.
  void flush(Sub& s) {
    while (s.credit > 0 && s.count) {
      const std::uint32_t k = s.order[s.first];
      if (!send_to(s, latest_[k])) return;  // the gateway is full: retried at the next value
      s.dirty[k] = 0;
      s.first = (s.first + 1) % keys_;
      --s.count;
    }
  }

  bool send_to(Sub& s, const T& v) {
    if (s.ref.try_send(v) != SendResult::ok) {
      ++s.refused;
      return false;
    }
    --s.credit;
    ++s.sent;
    return true;
  }

  Topic<T>& topic_;
  TopicExportConfig cfg_;
  std::uint32_t keys_;
  std::vector<T> latest_;
  std::vector<std::uint8_t> have_;
  std::vector<Sub> subs_;
  RemoteSubscriberTotals gone_;  ///< counters of the subscribers that left (totals())
  std::uint64_t subscribed_ = 0;
  std::atomic<std::uint64_t> refused_subs_{0};
  std::atomic<std::size_t> count_{0};
};

}  // namespace tern
