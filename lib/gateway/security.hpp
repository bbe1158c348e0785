// CURVE on one gateway's ZeroMQ context: the key pair, the allow-list, and one thread that
// answers ZAP requests (inproc://zeromq.zap.01) and counts failed handshakes from a monitor
// of the PULL socket. Private to lib/gateway.
#pragma once
#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_set>

#include <zmq.h>

#include <tern/curve.hpp>

namespace tern::gw {

class CurveSecurity {
 public:
  /// Loads the key pair and the allow-list when `cfg.enabled()`. Throws std::runtime_error
  /// naming the file, or when libzmq lacks CURVE or the allow-list is empty. Starts nothing.
  explicit CurveSecurity(const CurveConfig& cfg);
  ~CurveSecurity();
  CurveSecurity(const CurveSecurity&) = delete;
  CurveSecurity& operator=(const CurveSecurity&) = delete;

  bool enabled() const noexcept { return enabled_; }
  /// Our public key (Z85), empty when off.
  const std::string& public_key() const noexcept { return keys_.public_key; }

  /// The monitor events counted as handshakes_failed.
  static constexpr int kFailedEvents =
      ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL;

  /// Makes `pull` (not yet bound) a CURVE server whose clients go through our ZAP handler,
  /// binds that handler in `ctx`, with `watch` watches `pull` for failed handshakes, and
  /// starts the thread. libzmq allows one monitor per socket: a caller that monitors `pull`
  /// itself passes watch=false and reports kFailedEvents through count_handshake_failed().
  /// Set-up; throws std::runtime_error. No-op when off.
  void start_server(void* ctx, void* pull, bool watch = true);
  /// One more failed handshake, seen by the caller's own monitor (watch=false). Any thread.
  void count_handshake_failed() noexcept { failed_.fetch_add(1, std::memory_order_relaxed); }
  /// Makes `push` (not yet connected) a CURVE client of the server whose public key is
  /// `server_key` (Z85). False when that is not a valid key. No-op (true) when off.
  bool configure_client(void* push, std::string_view server_key) const noexcept;
  /// Stops watching `pull`; the thread that uses `pull`, before it closes it (libzmq would
  /// otherwise block on the monitor socket once our thread is gone).
  void stop_monitor(void* pull) noexcept;
  /// Stops and joins the thread, closing its sockets. Before zmq_ctx_term. Idempotent.
  void stop() noexcept;

  /// Handshakes the ZAP handler refused (client key not on the allow-list). Any thread.
  std::uint64_t denied() const noexcept { return denied_.load(std::memory_order_relaxed); }
  /// Handshakes on the PULL socket that failed before authentication (a client without
  /// CURVE, with a wrong server key, or not speaking ZMTP). Any thread.
  std::uint64_t handshakes_failed() const noexcept {
    return failed_.load(std::memory_order_relaxed);
  }

 private:
  void run() noexcept;
  void answer_zap() noexcept;
  void read_monitor() noexcept;

  bool enabled_ = false;
  CurveKeyPair keys_;
  std::unordered_set<std::string> allowed_;  ///< 32-byte binary keys; read-only once built
  void* zap_ = nullptr;      ///< REP bound to inproc://zeromq.zap.01; our thread only
  void* monitor_ = nullptr;  ///< PAIR reading the PULL socket's monitor; our thread only
  bool monitoring_ = false;
  int stop_fd_ = -1;         ///< eventfd: written by stop()
  std::thread thread_;
  std::atomic<std::uint64_t> denied_{0}, failed_{0};
};

}  // namespace tern::gw
