// The two actors of bench/gateway_roundtrip's round trip through two gateways, also the
// `tern-gateway` row of bench/shm_pingpong (there the two gateways are in two processes): the
// pinger sends Ping i through its gateway, the ponger replies Pong i, the pinger records the
// round trip after the warm-up and sends the next one.
#pragma once
#include <atomic>
#include <cstdint>

#include <tern/actor.hpp>
#include <tern/histogram.hpp>
#include <tern/wire.hpp>

#include "bench_util.hpp"

namespace gwrt {

struct Ping {
  static constexpr tern::MessageId message_id = 1001;
  std::int64_t count = 0;
  TERN_WIRE(Ping, count)
};
struct Pong {
  static constexpr tern::MessageId message_id = 1002;
  std::int64_t count = 0;
  TERN_WIRE(Pong, count)
};
struct Go {
  static constexpr tern::MessageId message_id = 1003;
  std::uint8_t unused = 0;  // why: GCC 12 warns that an empty message's bytes are uninitialised
};

struct Result {
  tern::Histogram h;
  double seconds = 0;  ///< wall time of the measured round trips
  std::uint64_t n = 0;
};

class Pinger : public tern::Actor {
 public:
  Pinger(std::uint64_t warmup, std::uint64_t n, Result& out) : warmup_(warmup), n_(n), out_(out) {
    handle<&Pinger::on_go>();
    handle<&Pinger::on_pong>();
  }
  tern::ActorRef pong;
  std::atomic<std::uint32_t> done{0};

 private:
  void on_go(const Go&) { send(0); }
  void on_pong(const Pong& p) {
    const std::uint64_t now = bench::now_ns();
    const auto i = static_cast<std::uint64_t>(p.count);
    if (i >= warmup_) out_.h.record(now - t0_);
    if (i + 1 == warmup_ + n_) {
      out_.seconds += static_cast<double>(now - start_) / 1e9;
      out_.n += n_;
      done.store(1, std::memory_order_release);
      done.notify_all();
      return;
    }
    send(i + 1);
  }
  void send(std::uint64_t i) {
    t0_ = bench::now_ns();
    if (i == warmup_) start_ = t0_;
    (void)pong.send(Ping{static_cast<std::int64_t>(i)});
  }
  std::uint64_t warmup_, n_, t0_ = 0, start_ = 0;
  Result& out_;
};

class Ponger : public tern::Actor {
 public:
  Ponger() { handle<&Ponger::on_ping>(); }
  void on_ping(const Ping& p) { (void)reply(Pong{p.count}); }
};

}  // namespace gwrt
