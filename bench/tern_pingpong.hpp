// The two actors of tern's in-process round trip (bench/pingpong, and the `inproc` row of
// bench/shm_pingpong): the pinger sends a ball stamped with its send time, the ponger replies
// with it, and the pinger records now minus the stamp after the warm-up.
#pragma once
#include <cstdint>

#include <tern/actor.hpp>
#include <tern/histogram.hpp>

#include "bench_util.hpp"

namespace bench {

/// The ball: its send time, padded to N bytes (8 is the plain timestamp).
template <std::size_t N>
struct BallN {
  static constexpr tern::MessageId message_id = 1000 + N;
  std::uint64_t t0 = 0;
  unsigned char pad[N - 8] = {};
};
template <>
struct BallN<8> {
  static constexpr tern::MessageId message_id = 1;
  std::uint64_t t0 = 0;
};

template <class B>
class Ponger : public tern::Actor {
 public:
  Ponger() { handle<&Ponger::on_ball>(); }
  void on_ball(const B& b) { (void)reply(B{b.t0}); }
};

/// Sends `warmup + iterations` balls one at a time, records the last `iterations` round trips
/// in `h`, then terminates.
template <class B>
class Pinger : public tern::Actor {
 public:
  Pinger(tern::ActorRef peer, std::uint64_t warmup, std::uint64_t iterations, tern::Histogram& h)
      : peer_(peer), warmup_(warmup), total_(warmup + iterations), h_(h) {
    handle<&Pinger::on_start>();
    handle<&Pinger::on_ball>();
  }
  /// Set-up only, before the Manager's init(): a peer known only after the pinger exists
  /// (bench/shm_pingpong: a remote actor, reachable once this pinger's node has started).
  void set_peer(tern::ActorRef peer) { peer_ = peer; }
  void on_start(const tern::Start&) { (void)peer_.send(B{now_ns()}); }
  void on_ball(const B& b) {
    const std::uint64_t t1 = now_ns();
    if (n_++ >= warmup_) h_.record(t1 - b.t0);
    if (n_ < total_)
      (void)peer_.send(B{now_ns()});
    else
      terminate();
  }

 private:
  tern::ActorRef peer_;
  std::uint64_t warmup_, total_, n_ = 0;
  tern::Histogram& h_;
};

}  // namespace bench
