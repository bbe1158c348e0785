// Per-thread runtime state: which actor's handler this thread is running. The mailbox reads
// it to tell producers apart; the runtime and fast_send set it.
#pragma once
#include <atomic>

namespace tern {
class Actor;
}

namespace tern::detail {

/// Per-thread runtime state. constinit: no TLS wrapper call on access.
struct ThreadCtx {
  Actor* current = nullptr;                ///< actor whose handler runs on this thread
  std::atomic<Actor*> waiting_for{nullptr}; ///< fast_send: the actor whose lock we wait for
  /// A gateway running a handler inline on its own thread: sends to remote refs behind it
  /// go straight out (Actor::forward_direct) instead of into its mailbox, whose only
  /// consumer is this very thread.
  Actor* direct_gateway = nullptr;
};
// why initial-exec: libtern is a shared library; the default (global-dynamic) model would
// call __tls_get_addr on every access, in the receive loop and on every send.
extern thread_local constinit ThreadCtx tl_ctx __attribute__((tls_model("initial-exec")));

}  // namespace tern::detail
