// RegistryClient: the C++ side of the name service (docs/registry.md). It registers a
// gateway's actors under the gateway's endpoint, heartbeats every 2 s on a thread of its own,
// unregisters at close(), and turns a name into an ActorRef through Gateway::remote():
//
//   tern::Gateway* gw = ...;                          // managed by the Manager as usual
//   tern::RegistryClient reg(*gw, {.endpoint = "tcp://127.0.0.1:5555", .actors = {"pong"}});
//   tern::ActorRef research = reg.lookup("research");  // throws NotFound / Offline
//   research.send(Quote{...});
//
// The protocol is the family's (REQ/REP, flat JSON); any registry that speaks it works,
// tern's own (scripts/registry) or the family's. With RegistryConfig::server_key the
// connection is CURVE (tern's registry run with --key-file), using the gateway's own key pair
// when it runs CURVE; a CURVE gateway registers its public key with each name (extension
// field actor_server_key), so lookup() through a CURVE registry gives a ref that works under
// CURVE. No call here is on a hot path: every
// request is a blocking round trip bounded by RegistryConfig::timeout_ms. ZeroMQ stays in
// lib/gateway/registry_client.cpp.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <tern/actor_ref.hpp>

namespace tern {

class Gateway;
class ShmNode;

/// RegistryClient settings, fixed at construction.
struct RegistryConfig {
  /// The registry's REP endpoint.
  std::string endpoint = "tcp://127.0.0.1:5555";
  /// This process's id at the registry. Empty: "host-pid-random", unique per process. Give
  /// a stable one to get the names back at once after a restart (docs/registry.md).
  std::string manager_id;
  /// Names to register at construction (the gateway's exposed or managed actors).
  std::vector<std::string> actors;
  /// Longest wait for one reply (ms); after a lost reply the REQ socket is recreated.
  int timeout_ms = 5000;
  /// Heartbeat period (ms). The registry expires a manager silent for 6 s.
  int heartbeat_ms = 2000;
  /// lookup() answers from its cache for this long after a resolution (ms); 0: always ask.
  int lookup_cache_ms = 1000;
  /// Names kept in the lookup cache (oldest dropped beyond it).
  std::uint32_t max_cached = 1024;
  /// Replies larger than this are refused by libzmq (ZMQ_MAXMSGSIZE): a RegistryError.
  std::size_t max_reply_bytes = 4u << 20;
  /// The registry's CURVE public key (Z85, 40 characters; e.g.
  /// load_curve_public_key("registry.key")). Empty (the default): plain TCP. Set: the
  /// connection is CURVE, with our key pair from `key_file`, or the gateway's own
  /// (GatewayConfig::curve) when `key_file` is empty.
  std::string server_key;
  /// Our key pair for the registry (NAME.key_secret); only with `server_key`. Empty: the
  /// gateway's.
  std::string key_file;
};

/// A registry request failed: an error reply, a refusal, or no reply within timeout_ms.
class RegistryError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
/// RegisterActor refused: `name()` is held by another manager, `owner()` (empty when the
/// registry does not say; tern's does).
class NameTaken : public RegistryError {
 public:
  NameTaken(std::string name, std::string owner, const std::string& what)
      : RegistryError(what), name_(std::move(name)), owner_(std::move(owner)) {}
  const std::string& name() const noexcept { return name_; }
  const std::string& owner() const noexcept { return owner_; }

 private:
  std::string name_, owner_;
};
/// lookup(): no actor of that name is registered.
class NotFound : public RegistryError {
 public:
  explicit NotFound(std::string name)
      : RegistryError("tern: registry: actor '" + name + "' is not registered"),
        name_(std::move(name)) {}
  const std::string& name() const noexcept { return name_; }

 private:
  std::string name_;
};
/// lookup(): registered, but its manager stopped heartbeating.
class Offline : public RegistryError {
 public:
  Offline(std::string name, std::string endpoint)
      : RegistryError("tern: registry: actor '" + name + "' at " + endpoint +
                      " is offline (no recent heartbeat)"),
        name_(std::move(name)), endpoint_(std::move(endpoint)) {}
  const std::string& name() const noexcept { return name_; }
  const std::string& endpoint() const noexcept { return endpoint_; }

 private:
  std::string name_, endpoint_;
};

/// What LookupActor answered for a registered name.
struct Resolution {
  std::string endpoint;
  bool online = false;
  /// The CURVE public key the actor's process registered (extension), from a CURVE registry
  /// only (a plain registry is not trusted for keys); empty otherwise.
  std::string server_key;
};

/// One row of list() (ListActors, a tern extension).
struct RegisteredActor {
  std::string name;
  std::string endpoint;
  std::string manager_id;
  bool online = false;
  std::string server_key;  ///< as in Resolution: from a CURVE registry only
};

/// Counters; any thread.
struct RegistryClientStats {
  std::uint64_t heartbeats = 0;    ///< heartbeats acknowledged
  std::uint64_t reregistered = 0;  ///< own names registered again after the registry lost them
  std::uint64_t errors = 0;        ///< failed heartbeat rounds and refused re-registrations
  std::uint64_t lookups = 0;       ///< LookupActor requests sent by lookup()/resolve()
  std::uint64_t cache_hits = 0;    ///< lookup() answered from the cache
};

/// A connection to a registry for one Gateway. Construct it after the Gateway (whose
/// endpoint it registers) and destroy or close() it before the Gateway goes away
/// (Manager::end()). All members may be called from any thread; they block for at most a
/// few round trips of timeout_ms each.
class RegistryClient {
 public:
  /// Connects, registers config.actors (throws NameTaken / RegistryError, after
  /// unregistering those already done), then starts the heartbeat thread. Throws
  /// std::invalid_argument naming a bad endpoint or value (a bad server_key, server_key with
  /// no key pair, key_file without server_key), std::runtime_error naming a bad key file.
  RegistryClient(Gateway& gateway, RegistryConfig config = {});
  /// close().
  ~RegistryClient();
  RegistryClient(const RegistryClient&) = delete;
  RegistryClient& operator=(const RegistryClient&) = delete;

  /// Registers `name` at the gateway's endpoint. Throws NameTaken naming the owner, or
  /// RegistryError. The same name twice is fine (the registry updates it).
  void register_actor(std::string_view name);
  /// Registers `name` at another endpoint, e.g. "shm://NODE/ACTOR" for an actor exported by
  /// a ShmNode (tern/shm.hpp): peers on this host find it by name and talk through shared
  /// memory. Kept registered (heartbeats) like the gateway's names.
  void register_actor(std::string_view name, std::string_view endpoint);
  /// Unregisters `name` (owner-checked by tern's registry). Throws RegistryError.
  void unregister_actor(std::string_view name);
  /// Asks the registry: the endpoint and online flag, or nullopt when not registered.
  std::optional<Resolution> resolve(std::string_view name);
  /// A ref to actor `name` via Gateway::remote(), from the cache when resolved within
  /// lookup_cache_ms, else asked again; so calling lookup() before sending follows a peer
  /// that moved (a new endpoint gives a new ref). With CURVE on the gateway the ref uses the
  /// key the actor registered, which only a CURVE registry (server_key set) gives: otherwise
  /// RegistryError (use resolve() and the three-argument Gateway::remote() with the key).
  /// Throws NotFound, Offline (unless `allow_offline`), RegistryError, or what
  /// Gateway::remote() throws.
  /// An actor registered at an shm:// endpoint throws RegistryError here (use the overload
  /// below).
  ActorRef lookup(std::string_view name, bool allow_offline = false);
  /// The same, and an actor registered at "shm://NODE/ACTOR" is reached through `node`
  /// (ShmNode::remote; throws what it throws).
  ActorRef lookup(std::string_view name, ShmNode& node, bool allow_offline = false);
  /// Everything the registry holds (ListActors: a tern extension; a family registry
  /// answers with an error, thrown as RegistryError).
  std::vector<RegisteredActor> list();
  /// Stops the heartbeats, unregisters our names (after one failure the rest are left to
  /// expire), closes the sockets. Idempotent; never throws.
  void close() noexcept;

  /// The id we register under.
  const std::string& manager_id() const noexcept;
  /// The endpoint we register our actors at (the gateway's).
  const std::string& actor_endpoint() const noexcept;
  /// True when the connection to the registry is CURVE (server_key set).
  bool secure() const noexcept;
  RegistryClientStats stats() const noexcept;

  struct Impl;  // lib/gateway/registry_client.cpp

 private:
  /// From the cache when fresh, else asked; throws NotFound / Offline (unless allowed).
  Resolution resolve_cached(std::string_view name, bool allow_offline);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tern
