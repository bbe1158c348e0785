// registry_peer: the C++ side of tests/integration/test_registry_processes.py. A Manager with a
// Gateway, a pong actor registered in a registry under --name (answers Ping{count} with
// Pong{count}), and optionally a pinger that looks --lookup up by name and sends it --count
// Pings, counting the Pongs.
//
//   registry_peer --registry tcp://127.0.0.1:5555 --name cpp-pong [--manager-id ID]
//                 [--lookup py-pong --count 5 --wait-s 20] [--exit] [--timeout-ms 5000]
//                 [--curve-key me.key_secret --allow-dir DIR --registry-key registry.key]
//
// --curve-key: the gateway runs CURVE with that key pair and allow directory, and so does its
// connection to the registry whose public certificate is --registry-key (the gateway's own
// key pair, RegistryConfig::server_key); lookups then use the key the peer registered.
// Prints "registry_peer: registered NAME at ENDPOINT as ID", then with --lookup
// "registry_peer: found NAME at ENDPOINT" and "registry_peer: pongs N from NAME"; runs until
// SIGTERM/SIGINT (or exits after the pongs with --exit), unregisters, prints
// "registry_peer: stopped". Exit status: 0 ok, 1 set-up error, 2 bad arguments, 3 the name is
// taken (the message names the owner), 4 --lookup not found or no Pongs in time.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>

#include <tern/curve.hpp>
#include <tern/gateway.hpp>
#include <tern/manager.hpp>
#include <tern/registry.hpp>

namespace {

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
struct Go {  // local only: start pinging `target`
  static constexpr tern::MessageId message_id = 1010;
  tern::ActorRef target;
  std::int64_t count = 0;
};

class PongActor : public tern::Actor {
 public:
  PongActor() { handle<&PongActor::on_ping>(); }

 private:
  void on_ping(const Ping& p) { (void)reply(Pong{p.count}); }
};

class Pinger : public tern::Actor {
 public:
  Pinger() {
    handle<&Pinger::on_go>();
    handle<&Pinger::on_pong>();
  }
  std::atomic<std::int64_t> pongs{0};

 private:
  void on_go(const Go& g) {
    for (std::int64_t i = 1; i <= g.count; ++i) (void)g.target.send(Ping{i});
  }
  void on_pong(const Pong&) { pongs.fetch_add(1, std::memory_order_relaxed); }
};

int usage() {
  std::fprintf(stderr,
               "usage: registry_peer --registry EP --name NAME [--bind EP] [--manager-id ID]\n"
               "                     [--lookup NAME --count N --wait-s S] [--exit] [--timeout-ms MS]\n"
               "                     [--curve-key FILE --allow-dir DIR --registry-key FILE]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string registry, name, bind = "tcp://127.0.0.1:*", manager_id, target;
  std::string curve_key, allow_dir, registry_key;
  int timeout_ms = 5000;
  long count = 5;
  double wait_s = 20;
  bool exit_after = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    const char* v = nullptr;
    if (a == "--exit") {
      exit_after = true;
      continue;
    }
    if ((v = next()) == nullptr) return usage();
    if (a == "--registry") registry = v;
    else if (a == "--name") name = v;
    else if (a == "--bind") bind = v;
    else if (a == "--manager-id") manager_id = v;
    else if (a == "--lookup") target = v;
    else if (a == "--count") count = std::atol(v);
    else if (a == "--wait-s") wait_s = std::atof(v);
    else if (a == "--timeout-ms") timeout_ms = std::atoi(v);
    else if (a == "--curve-key") curve_key = v;
    else if (a == "--allow-dir") allow_dir = v;
    else if (a == "--registry-key") registry_key = v;
    else return usage();
  }
  if (registry.empty() || name.empty()) return usage();

  tern::wire::Registry types;
  types.add<Ping>().add<Pong>();
  tern::Manager mgr;
  tern::Gateway* gw = nullptr;
  Pinger* pinger = nullptr;
  try {
    tern::GatewayConfig gc{.bind = bind};
    gc.curve.key_file = curve_key;
    gc.curve.allow_dir = allow_dir;
    auto g = std::make_unique<tern::Gateway>(types, gc);
    gw = g.get();
    mgr.manage("gateway", std::move(g));
    mgr.manage(name, std::make_unique<PongActor>());
    auto p = std::make_unique<Pinger>();
    pinger = p.get();
    mgr.manage("pinger", std::move(p));
    mgr.init();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "registry_peer: %s\n", e.what());
    return 1;
  }

  std::unique_ptr<tern::RegistryClient> reg;
  try {
    tern::RegistryConfig rc{.endpoint = registry, .manager_id = manager_id, .actors = {name},
                            .timeout_ms = timeout_ms};
    if (!registry_key.empty()) rc.server_key = tern::load_curve_public_key(registry_key);
    reg = std::make_unique<tern::RegistryClient>(*gw, rc);
  } catch (const tern::NameTaken& e) {
    std::printf("registry_peer: name taken: %s\n", e.what());
    std::fflush(stdout);
    mgr.end();
    return 3;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "registry_peer: %s\n", e.what());
    mgr.end();
    return 1;
  }
  std::printf("registry_peer: registered %s at %s as %s\n", name.c_str(), reg->actor_endpoint().c_str(),
              reg->manager_id().c_str());
  std::fflush(stdout);

  int status = 0;
  if (!target.empty()) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(wait_s);
    tern::ActorRef ref;
    std::string last_error;
    while (!ref && std::chrono::steady_clock::now() < deadline) {
      try {
        ref = reg->lookup(target);
      } catch (const tern::RegistryError& e) {  // NotFound / Offline until the peer is up
        last_error = e.what();
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
    }
    if (!ref) {
      std::printf("registry_peer: lookup failed: %s\n", last_error.c_str());
      status = 4;
    } else {
      std::printf("registry_peer: found %s at %s\n", target.c_str(), reg->resolve(target)->endpoint.c_str());
      std::fflush(stdout);
      (void)mgr.find("pinger").send(Go{ref, count});
      while (pinger->pongs.load() < count && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      std::printf("registry_peer: pongs %lld from %s\n", static_cast<long long>(pinger->pongs.load()),
                  target.c_str());
      if (pinger->pongs.load() < count) status = 4;
    }
    std::fflush(stdout);
  }
  if (!exit_after) mgr.run();  // until SIGTERM/SIGINT
  reg->close();                // unregisters before the gateway goes away
  mgr.end();
  std::printf("registry_peer: stopped\n");
  std::fflush(stdout);
  return status;
}
