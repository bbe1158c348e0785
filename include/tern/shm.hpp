// Shared memory between tern processes on one host (docs/shared-memory.md).
//
// A ShmNode is a process's presence on the host: a named segment (shm://NAME, the file
// DIR/tern.NAME, mode 0600 by default, owned by the user running the process) that holds,
// for each actor the node exports, one inbound connection per peer process: a record ring
// (the same 16-byte-header records as a mailbox) plus a small priority ring. A peer writes
// its messages straight into that ring and the exported actor's own thread reads them next to
// its mailbox: no gateway thread, no copy, no syscall unless the actor is parked.
//
//   // process "feed"                           // process "strategy"
//   tern::ShmNode node({.name = "feed"});        tern::ShmNode node({.name = "strategy"});
//   m.manage("quotes", ...);                     m.manage("orders", ...);
//   node.export_actor(m.find("quotes"));         node.export_actor(m.find("orders"));
//   node.start();                                node.start();
//   m.init();                                    m.init();
//                                                auto quotes = node.remote("shm://feed/quotes",
//                                                                          std::chrono::seconds(5));
//                                                quotes.send(Subscribe{...});  // reply() works
//
// A remote actor is an ordinary ActorRef: send, try_send, the priority variants and reply()
// work unchanged; fast_send returns FastStatus::remote. Only trivially copyable message types
// cross (a type another process would have to run code to copy cannot be written in place);
// at connect both processes compare each type's fingerprint (id, name, size, alignment,
// TERN_WIRE field layout) and a mismatch is refused naming the type and the difference.
// A reply reaches a sender in another process when that sender is exported by its node.
//
// Faults (docs/shared-memory.md, "Fault model"): a peer killed mid-stream is noticed by the
// node's monitor within ShmConfig::monitor_interval_us; sends to it then return `closed`, the
// records it committed are still handled, a record it had not finished is never delivered,
// and its connection is freed for the next process. A node that comes back under the same
// name is reconnected to by the monitor; a segment left by a crashed owner is reclaimed.
// A record that is not one this format writes fails its connection (sends through it return
// `closed`), never the reader.
#pragma once
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <tern/actor.hpp>
#include <tern/actor_ref.hpp>

namespace tern {

struct ShmConfig {
  /// This node's name on the host: 1..63 of [A-Za-z0-9_.-]. The segment is DIR/tern.NAME.
  std::string name;
  /// Where segments live: a tmpfs (default) or a hugetlbfs mount.
  std::string dir = "/dev/shm";
  /// Normal-lane ring of one connection into one exported actor (power of two, 4 KiB ..
  /// 256 MiB). The largest message an exported actor takes is half of it less 32 bytes.
  std::uint32_t ring_bytes = 1u << 20;
  /// Connections (peer processes) each exported actor accepts at once (1..64).
  std::uint32_t slots = 8;
  /// Permissions of the segment file (owner read/write by default: only processes of the
  /// same user connect).
  std::uint32_t mode = 0600;
  /// How often the monitor thread checks that peers are alive, reconnects lost links and
  /// notices new ones (microseconds, 100 .. 1,000,000). Bounds how long a send to a dead
  /// peer can still report ok (written into a ring nobody reads) before it reports closed.
  std::uint32_t monitor_interval_us = 1000;
  /// While a link is down (its node died or is restarting): false (default), sends through
  /// it return SendResult::closed; true, they report `full`, so a blocking send() waits until
  /// the node is back and the monitor has reconnected (try_send returns full at once).
  bool wait_for_reconnect = false;
  /// How this node's sends claim space in a peer's ring: mpsc (default: any threads of this
  /// process send through one connection, a CAS per send) or spsc (one thread per connection
  /// into each remote actor, a plain store: the faster stream; a second thread sending
  /// through the same connection corrupts it: the peer then fails the connection, as for
  /// garbage). The priority lane always claims by CAS.
  MailboxKind kind = MailboxKind::mpsc;
};

/// Counters of a node, since start(). Any thread; relaxed snapshots.
struct ShmStats {
  std::uint64_t connections = 0;        ///< peer connections accepted into our exports
  std::uint64_t peers_lost = 0;         ///< of those, ended because the peer process went away
                                        ///< (died, or exited: both drop its lock)
  std::uint64_t failed = 0;             ///< connections failed for an untrustworthy record
  std::uint64_t undelivered_bytes = 0;  ///< claimed by a peer that died before committing
  std::uint64_t links_up = 0;           ///< times one of our links (to a peer node) came up
  std::uint64_t links_lost = 0;         ///< times one went down (peer died or stopped)
  std::uint64_t refused_mismatch = 0;   ///< attempts to link refused for a type fingerprint
                                        ///< mismatch (the monitor's retries included)
  std::uint64_t reclaimed = 0;          ///< stale segments of a crashed owner reclaimed
};

/// One node found on the host (ShmNode::directory()).
struct ShmNodeInfo {
  std::string name;
  std::string path;
  std::uint32_t pid = 0;
  bool alive = false;                ///< its owner holds the segment
  std::vector<std::string> actors;   ///< exported actors (empty when not readable)
};

class ShmNode {
 public:
  /// Throws std::invalid_argument naming a bad ShmConfig value.
  explicit ShmNode(ShmConfig cfg);
  /// Closes the segment (peers' sends return closed), unlinks it, stops the monitor.
  /// Destroy it after Manager::end() of the exported actors' Manager.
  ~ShmNode();
  ShmNode(const ShmNode&) = delete;
  ShmNode& operator=(const ShmNode&) = delete;

  /// Set-up, before start() and before the actor's Manager::init(): peers may send to this
  /// actor the message types it handles that are trivially copyable (ids below the reserved
  /// range). The actor runs on a dedicated thread (Manager::manage); a Group actor is
  /// refused (std::invalid_argument), as is an actor without a name or a second export.
  void export_actor(ActorRef actor);
  /// The same, exporting exactly Ts (each must be trivially copyable, checked at compile
  /// time, and handled by the actor, checked here).
  template <class... Ts>
  void export_actor(ActorRef actor) {
    static_assert(sizeof...(Ts) > 0);
    static_assert((std::is_trivially_copyable_v<Ts> && ...),
                  "only trivially copyable message types cross a shared-memory link");
    static_assert((check_message<Ts>() && ...));
    export_types(actor, {&message_info_v<Ts>...});
  }
  /// Creates the segment (reclaiming one left by a crashed owner; a live owner of the same
  /// name is an error naming its pid) and starts the monitor thread. Throws
  /// std::runtime_error naming the path and the system error.
  void start();
  /// A ref to actor `actor` of node `node` ("shm://node/actor" or the two names). Connects
  /// when not yet connected, waiting up to `wait` for the node to appear. Throws
  /// std::runtime_error when the node or the actor is not there in time, or a type
  /// fingerprint differs (naming the type and the difference). Starts this node if needed.
  ActorRef remote(std::string_view address, std::chrono::milliseconds wait = {});
  ActorRef remote(std::string_view node, std::string_view actor, std::chrono::milliseconds wait = {});
  /// Is the link behind `ref` (from remote()) up?
  bool connected(ActorRef ref) const noexcept;
  ShmStats stats() const noexcept;
  const std::string& path() const noexcept;
  const std::string& name() const noexcept;

  /// The nodes with a segment in `dir`: name, owner pid, alive or left by a crash, and the
  /// actors each exports.
  static std::vector<ShmNodeInfo> directory(const std::string& dir = "/dev/shm");
  /// Removes the segments in `dir` that no live process owns (left by a crash whose node
  /// never came back: each pins its memory until removed). Returns how many were removed.
  /// Safe while nodes run: a live owner's segment is never touched.
  static std::size_t remove_stale(const std::string& dir = "/dev/shm");

  struct Impl;

 private:
  void export_types(ActorRef actor, std::vector<const MessageInfo*> types);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tern
