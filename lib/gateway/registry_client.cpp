// RegistryClient (include/tern/registry.hpp): two REQ sockets to the registry, one owned by
// the heartbeat thread and one for callers under a mutex, so a slow lookup never delays a
// heartbeat. Requests are written with json_writer.hpp, replies read with simdjson's DOM
// (they are small and rare; nothing here is on a hot path).
#include <tern/registry.hpp>
#include <tern/shm.hpp>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <random>
#include <thread>
#include <unordered_map>

#include <simdjson.h>
#include <zmq.h>

#include <tern/curve.hpp>
#include <tern/gateway.hpp>

#include "json_writer.hpp"

namespace tern {
namespace {

using Clock = std::chrono::steady_clock;
constexpr std::string_view kDuplicateReason = "Name already registered";  // the family's words

std::string make_manager_id() {
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0 || host[0] == '\0') std::snprintf(host, sizeof host, "host");
  std::random_device rd;
  char buf[320];
  std::snprintf(buf, sizeof buf, "%s-%d-%08x", host, static_cast<int>(getpid()), rd());
  return buf;
}

std::string json_str(std::string_view s) {
  std::string out;
  gw::json::append_string(out, s);
  return out;
}

/// One REQ connection. Not thread-safe: one owner at a time. `keys`: our CURVE key pair
/// when cfg.server_key is set (owned by the caller, outlives the socket), else null.
class ReqSocket {
 public:
  ReqSocket(void* ctx, const RegistryConfig& cfg, const CurveKeyPair* keys)
      : ctx_(ctx), cfg_(cfg), keys_(keys) {}
  ~ReqSocket() { reset(); }
  ReqSocket(const ReqSocket&) = delete;
  ReqSocket& operator=(const ReqSocket&) = delete;

  /// Sends `req`, waits for the reply and returns it parsed as an object. Throws
  /// RegistryError on a timeout, a malformed reply, or an {"error": ...} reply.
  simdjson::dom::object request(const std::string& req, std::string_view what) {
    void* s = socket();
    if (zmq_send(s, req.data(), req.size(), 0) < 0) fail(what);
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    if (zmq_msg_recv(&msg, s, 0) < 0) {
      zmq_msg_close(&msg);
      fail(what);
    }
    reply_.assign(static_cast<const char*>(zmq_msg_data(&msg)), zmq_msg_size(&msg));
    zmq_msg_close(&msg);
    simdjson::dom::object obj;
    if (parser_.parse(reply_).get_object().get(obj) != simdjson::SUCCESS)
      throw RegistryError("tern: registry " + cfg_.endpoint + " sent a malformed reply to " +
                          std::string(what) + ": " + reply_.substr(0, 200));
    std::string_view err;
    simdjson::dom::element mt;
    if (obj["error"].get_string().get(err) == simdjson::SUCCESS &&
        obj["message_type"].get(mt) != simdjson::SUCCESS)
      throw RegistryError("tern: registry " + cfg_.endpoint + " refused " + std::string(what) +
                          ": " + std::string(err));
    return obj;
  }

  void reset() noexcept {
    if (sock_ != nullptr) zmq_close(sock_);
    sock_ = nullptr;
  }

  const std::string& endpoint() const noexcept { return cfg_.endpoint; }

 private:
  void* socket() {
    if (sock_ != nullptr) return sock_;
    void* s = zmq_socket(ctx_, ZMQ_REQ);
    if (s == nullptr)
      throw RegistryError(std::string("tern: registry: cannot create a socket: ") + zmq_strerror(zmq_errno()));
    const int zero = 0;
    const auto max = static_cast<std::int64_t>(cfg_.max_reply_bytes);
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &cfg_.timeout_ms, sizeof cfg_.timeout_ms);
    zmq_setsockopt(s, ZMQ_SNDTIMEO, &cfg_.timeout_ms, sizeof cfg_.timeout_ms);
    zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &max, sizeof max);
    if (keys_ != nullptr &&  // CURVE client of the registry (keys checked at construction)
        (zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, cfg_.server_key.c_str(), 40) != 0 ||
         zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, keys_->public_key.c_str(), 40) != 0 ||
         zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, keys_->secret_key.c_str(), 40) != 0)) {
      const int e = zmq_errno();
      zmq_close(s);
      throw RegistryError(std::string("tern: registry: cannot make a CURVE client: ") + zmq_strerror(e));
    }
    if (zmq_connect(s, cfg_.endpoint.c_str()) != 0) {
      const int e = zmq_errno();
      zmq_close(s);
      throw std::invalid_argument("tern: registry: cannot connect to '" + cfg_.endpoint +
                                  "': " + zmq_strerror(e));
    }
    sock_ = s;
    return s;
  }

  [[noreturn]] void fail(std::string_view what) {
    const int e = zmq_errno();
    reset();  // a REQ socket that lost its reply cannot send again
    if (e == EAGAIN)
      throw RegistryError("tern: registry " + cfg_.endpoint + " did not answer " +
                          std::string(what) + " within " + std::to_string(cfg_.timeout_ms) + " ms");
    throw RegistryError("tern: registry " + cfg_.endpoint + ": " + std::string(what) + ": " +
                        zmq_strerror(e));
  }

  void* ctx_;
  const RegistryConfig& cfg_;
  const CurveKeyPair* keys_;
  void* sock_ = nullptr;
  std::string reply_;
  simdjson::dom::parser parser_;
};

std::string_view str_field(simdjson::dom::object obj, const char* key) {
  std::string_view v;
  if (obj[key].get_string().get(v) != simdjson::SUCCESS) return {};
  return v;
}

void expect(simdjson::dom::object obj, std::string_view type, const ReqSocket& s) {
  const std::string_view got = str_field(obj, "message_type");
  if (got != type)
    throw RegistryError("tern: registry " + s.endpoint() + ": expected " + std::string(type) +
                        ", got " + std::string(simdjson::minify(obj)).substr(0, 200));
}

// ---- the requests --------------------------------------------------------------------------

/// `server_key`: our CURVE public key, sent as the extension field actor_server_key (empty:
/// not sent, the family's request exactly).
void do_register(ReqSocket& s, const std::string& manager_id, std::string_view name,
                 const std::string& endpoint, std::string_view server_key) {
  std::string req = "{\"message_type\":\"RegisterActor\",\"manager_id\":" + json_str(manager_id) +
                    ",\"actor_name\":" + json_str(name) + ",\"actor_endpoint\":" + json_str(endpoint);
  if (!server_key.empty()) req += ",\"actor_server_key\":" + json_str(server_key);
  req += "}";
  auto obj = s.request(req, "RegisterActor");
  if (str_field(obj, "message_type") == "RegistrationFailed") {
    const std::string reason(str_field(obj, "reason"));
    const std::string owner(str_field(obj, "owner"));
    if (reason == kDuplicateReason)
      throw NameTaken(std::string(name), owner,
                      "tern: registry: actor name '" + std::string(name) + "' is already registered by " +
                          (owner.empty() ? std::string("another manager") : "manager '" + owner + "'") +
                          " (" + reason + ")");
    throw RegistryError("tern: registry " + s.endpoint() + " refused actor name '" + std::string(name) +
                        "': " + reason);
  }
  expect(obj, "RegistrationOk", s);
}

void do_unregister(ReqSocket& s, const std::string& manager_id, std::string_view name) {
  const std::string req = "{\"message_type\":\"UnregisterActor\",\"actor_name\":" + json_str(name) +
                          ",\"manager_id\":" + json_str(manager_id) + "}";
  auto obj = s.request(req, "UnregisterActor");
  if (str_field(obj, "message_type") == "RegistrationFailed")
    throw RegistryError("tern: registry " + s.endpoint() + " refused to unregister '" + std::string(name) +
                        "': " + std::string(str_field(obj, "reason")) + " (owner '" +
                        std::string(str_field(obj, "owner")) + "')");
  expect(obj, "RegistrationOk", s);
}

/// `keys`: take the registered server_key (a CURVE registry), else ignore it.
std::optional<Resolution> do_lookup(ReqSocket& s, std::string_view name, bool keys) {
  auto obj = s.request("{\"message_type\":\"LookupActor\",\"actor_name\":" + json_str(name) + "}",
                       "LookupActor");
  expect(obj, "LookupResult", s);
  simdjson::dom::element ep;
  if (obj["endpoint"].get(ep) != simdjson::SUCCESS || ep.is_null()) return std::nullopt;
  std::string_view e;
  if (ep.get_string().get(e) != simdjson::SUCCESS || e.empty())
    throw RegistryError("tern: registry " + s.endpoint() + ": LookupResult for '" + std::string(name) +
                        "' has a non-string endpoint");
  bool online = false;
  if (obj["online"].get_bool().get(online) != simdjson::SUCCESS) online = false;
  std::string key;
  if (keys) {
    key = str_field(obj, "server_key");
    if (!key.empty() && !valid_curve_key(key))
      throw RegistryError("tern: registry " + s.endpoint() + ": LookupResult for '" + std::string(name) +
                          "' has a server_key that is not a CURVE key");
  }
  return Resolution{std::string(e), online, std::move(key)};
}

void do_heartbeat(ReqSocket& s, const std::string& manager_id) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
  const std::string req = "{\"message_type\":\"Heartbeat\",\"manager_id\":" + json_str(manager_id) +
                          ",\"timestamp_ms\":" + std::to_string(ms) + "}";
  expect(s.request(req, "Heartbeat"), "HeartbeatAck", s);
}

}  // namespace

struct RegistryClient::Impl {
  Gateway& gateway;
  RegistryConfig cfg;
  std::string actor_endpoint;
  std::string own_key;     ///< the gateway's CURVE public key, registered with each name
  CurveKeyPair keys;       ///< ours at the registry (CURVE: cfg.server_key set)
  bool secure = false;
  void* ctx = nullptr;
  std::unique_ptr<ReqSocket> calls;  ///< callers, under calls_mu
  std::unique_ptr<ReqSocket> beats;  ///< the heartbeat thread only
  std::mutex calls_mu;

  std::mutex names_mu;  ///< mine, cache
  /// Our names and the endpoint each is registered at (the gateway's, or shm://NODE/NAME).
  std::vector<std::pair<std::string, std::string>> mine;
  struct Cached {
    Resolution r;
    Clock::time_point at;
  };
  std::unordered_map<std::string, Cached> cache;

  std::mutex stop_mu;
  std::condition_variable stop_cv;
  bool stopping = false;
  bool closed = false;
  std::thread thread;
  std::size_t turn = 0;  ///< heartbeat thread only

  std::atomic<std::uint64_t> heartbeats{0}, reregistered{0}, errors{0}, lookups{0}, cache_hits{0};

  Impl(Gateway& g, RegistryConfig c) : gateway(g), cfg(std::move(c)) {}

  void run() noexcept {
    bool failing = false;
    std::unique_lock lk(stop_mu);
    while (!stop_cv.wait_for(lk, std::chrono::milliseconds(cfg.heartbeat_ms), [&] { return stopping; })) {
      lk.unlock();
      try {
        beat();
        if (failing) std::fprintf(stderr, "tern: registry %s: reachable again\n", cfg.endpoint.c_str());
        failing = false;
      } catch (const std::exception& e) {
        errors.fetch_add(1, std::memory_order_relaxed);
        if (!failing) std::fprintf(stderr, "tern: warning: %s\n", e.what());  // once per outage
        failing = true;
      }
      lk.lock();
    }
  }

  bool stop_requested() {
    std::lock_guard lk(stop_mu);
    return stopping;
  }

  void beat() {
    do_heartbeat(*beats, cfg.manager_id);
    heartbeats.fetch_add(1, std::memory_order_relaxed);
    std::vector<std::pair<std::string, std::string>> names;
    {
      std::lock_guard lk(names_mu);
      names = mine;
    }
    // One of our names per beat, in turn: a registry that restarted, or expired us after a
    // stall, has lost all of them, so one lookup notices; then every name is checked and
    // what is missing registered again.
    if (names.empty()) return;
    turn = (turn + 1) % names.size();
    if (do_lookup(*beats, names[turn].first, false)) return;
    for (const auto& [n, endpoint] : names) {
      if (stop_requested()) return;
      if (do_lookup(*beats, n, false)) continue;
      try {
        do_register(*beats, cfg.manager_id, n, endpoint, endpoint == actor_endpoint ? std::string_view(own_key) : std::string_view());
        reregistered.fetch_add(1, std::memory_order_relaxed);
      } catch (const NameTaken& e) {
        errors.fetch_add(1, std::memory_order_relaxed);
        std::fprintf(stderr, "tern: warning: %s\n", e.what());
      }
    }
  }

  void remember(std::string_view name, const Resolution& r) {
    std::lock_guard lk(names_mu);
    auto it = cache.find(std::string(name));
    if (it == cache.end()) {
      if (cache.size() >= cfg.max_cached) {
        auto oldest = std::min_element(cache.begin(), cache.end(),
                                       [](const auto& a, const auto& b) { return a.second.at < b.second.at; });
        cache.erase(oldest);
      }
      cache.emplace(std::string(name), Cached{r, Clock::now()});
    } else {
      it->second = Cached{r, Clock::now()};
    }
  }
};

RegistryClient::RegistryClient(Gateway& gateway, RegistryConfig config)
    : impl_(std::make_unique<Impl>(gateway, std::move(config))) {
  Impl& m = *impl_;
  if (m.cfg.endpoint.find("://") == std::string::npos)
    throw std::invalid_argument("tern: registry: invalid endpoint '" + m.cfg.endpoint +
                                "' (expected e.g. tcp://127.0.0.1:5555)");
  if (m.cfg.timeout_ms <= 0)
    throw std::invalid_argument("tern: registry: timeout_ms must be > 0, got " + std::to_string(m.cfg.timeout_ms));
  if (m.cfg.heartbeat_ms <= 0)
    throw std::invalid_argument("tern: registry: heartbeat_ms must be > 0, got " +
                                std::to_string(m.cfg.heartbeat_ms));
  if (m.cfg.lookup_cache_ms < 0)
    throw std::invalid_argument("tern: registry: lookup_cache_ms must be >= 0, got " +
                                std::to_string(m.cfg.lookup_cache_ms));
  if (m.cfg.max_cached == 0) throw std::invalid_argument("tern: registry: max_cached must be > 0");
  if (m.cfg.manager_id.empty()) m.cfg.manager_id = make_manager_id();
  m.actor_endpoint = std::string(gateway.endpoint());
  m.own_key = std::string(gateway.public_key());
  if (!m.cfg.key_file.empty() && m.cfg.server_key.empty())
    throw std::invalid_argument("tern: registry: key_file '" + m.cfg.key_file +
                                "' is set but server_key (the registry's public key) is empty");
  if (!m.cfg.server_key.empty()) {
    if (!valid_curve_key(m.cfg.server_key))
      throw std::invalid_argument("tern: registry: server_key '" + m.cfg.server_key +
                                  "' is not a CURVE public key (40 characters of Z85)");
    if (!curve_available())
      throw std::runtime_error("tern: registry: this libzmq was built without CURVE (zmq_has(\"curve\"))");
    const std::string& file = m.cfg.key_file.empty() ? gateway.curve_config().key_file : m.cfg.key_file;
    if (file.empty())
      throw std::invalid_argument("tern: registry: server_key is set but there is no key pair of "
                                  "ours: set key_file or run the gateway with CURVE "
                                  "(GatewayConfig::curve)");
    m.keys = load_curve_key_pair(file);  // throws std::runtime_error naming the file
    m.secure = true;
  }
  m.ctx = zmq_ctx_new();
  if (m.ctx == nullptr) throw RegistryError("tern: registry: zmq_ctx_new failed");
  const CurveKeyPair* keys = m.secure ? &m.keys : nullptr;
  m.calls = std::make_unique<ReqSocket>(m.ctx, m.cfg, keys);
  m.beats = std::make_unique<ReqSocket>(m.ctx, m.cfg, keys);
  try {
    for (const auto& n : m.cfg.actors) register_actor(n);
  } catch (...) {
    close();  // unregisters those done, closes the context
    throw;
  }
  m.thread = std::thread([&m] { m.run(); });
}

RegistryClient::~RegistryClient() { close(); }

void RegistryClient::register_actor(std::string_view name) { register_actor(name, impl_->actor_endpoint); }

void RegistryClient::register_actor(std::string_view name, std::string_view endpoint) {
  Impl& m = *impl_;
  if (name.empty()) throw std::invalid_argument("tern: registry: empty actor name");
  if (endpoint.empty()) throw std::invalid_argument("tern: registry: empty endpoint for '" + std::string(name) + "'");
  const bool ours = endpoint == m.actor_endpoint;
  {
    std::lock_guard lk(m.calls_mu);
    if (m.closed) throw RegistryError("tern: registry: client is closed");
    do_register(*m.calls, m.cfg.manager_id, name, std::string(endpoint), ours ? std::string_view(m.own_key) : std::string_view());
  }
  std::lock_guard lk(m.names_mu);
  auto it = std::find_if(m.mine.begin(), m.mine.end(), [&](const auto& p) { return p.first == name; });
  if (it == m.mine.end())
    m.mine.emplace_back(std::string(name), std::string(endpoint));
  else
    it->second = std::string(endpoint);
}

void RegistryClient::unregister_actor(std::string_view name) {
  Impl& m = *impl_;
  {
    std::lock_guard lk(m.names_mu);
    std::erase_if(m.mine, [&](const auto& p) { return p.first == name; });
  }
  std::lock_guard lk(m.calls_mu);
  if (m.closed) throw RegistryError("tern: registry: client is closed");
  do_unregister(*m.calls, m.cfg.manager_id, name);
}

std::optional<Resolution> RegistryClient::resolve(std::string_view name) {
  Impl& m = *impl_;
  if (name.empty()) throw std::invalid_argument("tern: registry: empty actor name");
  std::optional<Resolution> r;
  {
    std::lock_guard lk(m.calls_mu);
    if (m.closed) throw RegistryError("tern: registry: client is closed");
    m.lookups.fetch_add(1, std::memory_order_relaxed);
    r = do_lookup(*m.calls, name, m.secure);
  }
  if (r) {
    m.remember(name, *r);
  } else {
    std::lock_guard lk(m.names_mu);
    m.cache.erase(std::string(name));
  }
  return r;
}

ActorRef RegistryClient::lookup(std::string_view name, ShmNode& node, bool allow_offline) {
  const Resolution r = resolve_cached(name, allow_offline);
  if (r.endpoint.rfind("shm://", 0) == 0) return node.remote(r.endpoint);
  return lookup(name, allow_offline);
}

Resolution RegistryClient::resolve_cached(std::string_view name, bool allow_offline) {
  Impl& m = *impl_;
  std::optional<Resolution> r;
  if (m.cfg.lookup_cache_ms > 0) {
    std::lock_guard lk(m.names_mu);
    if (auto it = m.cache.find(std::string(name));
        it != m.cache.end() && Clock::now() - it->second.at < std::chrono::milliseconds(m.cfg.lookup_cache_ms)) {
      r = it->second.r;
      m.cache_hits.fetch_add(1, std::memory_order_relaxed);
    }
  }
  if (!r) r = resolve(name);
  if (!r) throw NotFound(std::string(name));
  if (!r->online && !allow_offline) throw Offline(std::string(name), r->endpoint);
  return *r;
}

ActorRef RegistryClient::lookup(std::string_view name, bool allow_offline) {
  Impl& m = *impl_;
  const Resolution r = resolve_cached(name, allow_offline);  // throws when absent or offline
  if (r.endpoint.rfind("shm://", 0) == 0)
    throw RegistryError("tern: registry: actor '" + std::string(name) + "' is at " + r.endpoint +
                        " (shared memory on its host): use lookup(name, shm_node)");
  if (m.own_key.empty()) return m.gateway.remote(name, r.endpoint);
  if (r.server_key.empty())
    throw RegistryError("tern: registry: the gateway runs CURVE but actor '" + std::string(name) + "' at " +
                        r.endpoint +
                        (m.secure ? std::string(" was registered without a CURVE key")
                                  : std::string(" was looked up in a plain registry (not trusted for keys)")) +
                        ": use resolve() and Gateway::remote(name, endpoint, server_key)");
  return m.gateway.remote(name, r.endpoint, r.server_key);
}

std::vector<RegisteredActor> RegistryClient::list() {
  Impl& m = *impl_;
  std::lock_guard lk(m.calls_mu);
  if (m.closed) throw RegistryError("tern: registry: client is closed");
  simdjson::dom::object obj;
  try {
    obj = m.calls->request("{\"message_type\":\"ListActors\"}", "ListActors");
  } catch (const RegistryError& e) {
    if (std::string_view(e.what()).find("Unknown message type") != std::string_view::npos)
      throw RegistryError("tern: registry " + m.cfg.endpoint + " does not support ListActors (a tern extension)");
    throw;
  }
  expect(obj, "ActorList", *m.calls);
  simdjson::dom::array arr;
  if (obj["actors"].get_array().get(arr) != simdjson::SUCCESS)
    throw RegistryError("tern: registry " + m.cfg.endpoint + ": ActorList without an 'actors' array");
  std::vector<RegisteredActor> out;
  for (simdjson::dom::element e : arr) {
    simdjson::dom::object a;
    if (e.get_object().get(a) != simdjson::SUCCESS) continue;
    RegisteredActor row;
    row.name = str_field(a, "actor_name");
    row.endpoint = str_field(a, "endpoint");
    row.manager_id = str_field(a, "manager_id");
    if (m.secure) row.server_key = str_field(a, "server_key");
    bool online = false;
    row.online = a["online"].get_bool().get(online) == simdjson::SUCCESS && online;
    out.push_back(std::move(row));
  }
  return out;
}

void RegistryClient::close() noexcept {
  Impl& m = *impl_;
  {
    std::lock_guard lk(m.stop_mu);
    m.stopping = true;
  }
  m.stop_cv.notify_all();
  if (m.thread.joinable()) m.thread.join();
  std::vector<std::pair<std::string, std::string>> names;
  {
    std::lock_guard lk(m.names_mu);
    names.swap(m.mine);
  }
  std::lock_guard lk(m.calls_mu);
  if (m.closed) return;
  m.closed = true;
  for (const auto& [n, endpoint] : names) {
    try {
      do_unregister(*m.calls, m.cfg.manager_id, n);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "tern: warning: could not unregister '%s': %s (it expires by itself)\n",
                   n.c_str(), e.what());
      break;
    }
  }
  m.calls.reset();
  m.beats.reset();
  if (m.ctx != nullptr) zmq_ctx_term(m.ctx);
  m.ctx = nullptr;
}

const std::string& RegistryClient::manager_id() const noexcept { return impl_->cfg.manager_id; }
const std::string& RegistryClient::actor_endpoint() const noexcept { return impl_->actor_endpoint; }
bool RegistryClient::secure() const noexcept { return impl_->secure; }

RegistryClientStats RegistryClient::stats() const noexcept {
  const Impl& m = *impl_;
  return {m.heartbeats.load(std::memory_order_relaxed), m.reregistered.load(std::memory_order_relaxed),
          m.errors.load(std::memory_order_relaxed), m.lookups.load(std::memory_order_relaxed),
          m.cache_hits.load(std::memory_order_relaxed)};
}

}  // namespace tern
