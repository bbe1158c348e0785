// The `iceoryx` mode of bench/shm_pingpong (built when the iceoryx_baseline feature finds
// Debian's libiceoryx-posh-dev and iox-roudi): Eclipse iceoryx 2.0 publish/subscribe round
// trip of a 16-byte sample between two processes, busy-polling take(). The mode starts its own
// RouDi (iox-roudi, a small config in --ipc-dir, process monitoring off) and stops it.
//
// An iceoryx runtime is one per process for the life of the process, and its threads would
// make every later fork() of the benchmark unsafe, so the benchmark process never starts one:
// the measuring side is a child (on CPU A) that forks the echo side (on CPU B) and hands its
// samples back through a shared mapping.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "iceoryx_hoofs/log/logmanager.hpp"
#include "iceoryx_posh/popo/publisher.hpp"
#include "iceoryx_posh/popo/subscriber.hpp"
#include "iceoryx_posh/runtime/posh_runtime.hpp"

#include "shm_baselines.hpp"

namespace shmb {
namespace {

// Where RouDi 2.0 puts its socket, and each application its socket and lock file, named after
// the runtime (iceoryx's platform constant, not configurable).
constexpr const char* kRoudiSocket = "/tmp/roudi";
constexpr const char* kIoxSocketDir = "/tmp/";

struct Payload {
  std::uint64_t seq = 0;
  std::uint64_t pad = 0;
};
static_assert(sizeof(Payload) == 16);

/// iox-roudi as a child of the benchmark: started with a config of one small mempool, ready
/// once its socket exists, stopped with SIGTERM (so it removes its shared memory and socket;
/// SIGKILL after 10 s). A RouDi already running is refused, not shared.
class Roudi {
 public:
  explicit Roudi(const Ctx& c) : cfg_(unique_path(c.ipc_dir, ".toml")) {
    if (access(kRoudiSocket, F_OK) == 0)
      throw Failure(std::string("iceoryx: ") + kRoudiSocket +
                    " exists: another RouDi is running (or a killed one left it behind)");
    {
      std::ofstream f(cfg_.path());
      // why 128 bytes: a chunk holds iceoryx's chunk header and the 16-byte payload
      f << "[general]\nversion = 1\n\n[[segment]]\n\n[[segment.mempool]]\nsize = 128\ncount = 512\n";
      if (!f) throw Failure("iceoryx: cannot write '" + cfg_.path() + "'");
    }
    const pid_t parent = getpid();
    std::fflush(nullptr);
    pid_ = fork();
    if (pid_ < 0) throw Failure("iceoryx: fork failed: " + errno_text(errno));
    if (pid_ == 0) {
      cleanup::g_in_child = 1;
      prctl(PR_SET_PDEATHSIG, SIGTERM);  // why SIGTERM: RouDi then removes its own files
      if (getppid() != parent) _exit(1);
      const int devnull = open("/dev/null", O_WRONLY);
      if (devnull >= 0) {
        dup2(devnull, 1);
        dup2(devnull, 2);
      }
      // -k 1: at shutdown RouDi waits 1 s (not 45) for applications still registered, such as a
      // child killed mid-run
      execl(TERN_IOX_ROUDI, "iox-roudi", "-c", cfg_.path().c_str(), "-m", "off", "-k", "1", nullptr);
      _exit(127);
    }
    slot_ = cleanup::add_pid(pid_, SIGTERM);
    const std::uint64_t deadline = bench::now_ns() + static_cast<std::uint64_t>(c.timeout_s * 1e9);
    while (access(kRoudiSocket, F_OK) != 0) {
      int st = 0;
      if (waitpid(pid_, &st, WNOHANG) == pid_) {
        pid_ = -1;
        throw Failure(std::string("iceoryx: ") + TERN_IOX_ROUDI + " exited at start (status " +
                      std::to_string(WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st)) + ")");
      }
      if (bench::now_ns() > deadline)
        throw Failure(std::string("iceoryx: RouDi did not create ") + kRoudiSocket + " within " +
                      std::to_string(c.timeout_s) + " s");
      usleep(2000);
    }
  }
  Roudi(const Roudi&) = delete;
  Roudi& operator=(const Roudi&) = delete;
  ~Roudi() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      int st = 0;
      const std::uint64_t deadline = bench::now_ns() + 10'000'000'000ull;
      while (waitpid(pid_, &st, WNOHANG) == 0) {
        if (bench::now_ns() > deadline) {
          kill(pid_, SIGKILL);
          waitpid(pid_, &st, 0);
          break;
        }
        usleep(2000);
      }
    }
    cleanup::drop_pid(slot_);
  }

 private:
  TempPath cfg_;
  pid_t pid_ = -1;
  int slot_ = -1;
};

/// One runtime per process; logs from warnings up only.
void init_runtime(const std::string& name) {
  iox::log::LogManager::GetLogManager().SetDefaultLogLevel(iox::log::LogLevel::kWarn,
                                                           iox::log::LogLevelOutput::kHideLogLevel);
  iox::runtime::PoshRuntime::initRuntime(iox::RuntimeName_t(iox::cxx::TruncateToCapacity, name.c_str()));
}

/// Publishes {seq}; false when no chunk could be loaned.
bool publish(iox::popo::Publisher<Payload>& pub, std::uint64_t seq) {
  auto s = pub.loan();
  if (s.has_error()) return false;
  s.value()->seq = seq;
  s.value().publish();
  return true;
}

}  // namespace

RoundOut run_iceoryx(const Ctx& c) {
  // The runtimes' names, after this process: their socket and lock files are removed here
  // too, in case a child dies before its runtime does it.
  const std::string echo_name = "tern-shmbench-" + std::to_string(getpid()) + "-echo";
  const std::string ping_name = "tern-shmbench-" + std::to_string(getpid()) + "-ping";
  TempPath echo_sock(kIoxSocketDir + echo_name), echo_lock(kIoxSocketDir + echo_name + ".lock");
  TempPath ping_sock(kIoxSocketDir + ping_name), ping_lock(kIoxSocketDir + ping_name + ".lock");
  Roudi roudi(c);
  const std::uint64_t total = c.warmup + c.iterations;
  void* m = mmap(nullptr, c.iterations * 8, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) throw Failure("iceoryx: cannot map the sample buffer: " + errno_text(errno));
  struct Unmap {
    void* p;
    std::size_t n;
    ~Unmap() { munmap(p, n); }
  } unmap{m, c.iterations * 8};
  auto* samples = static_cast<std::uint64_t*>(m);

  ProcOptions outer = c.procs("iceoryx");
  outer.cpu_parent = -1;  // the benchmark process only waits
  outer.cpu_child = c.cpu_a;
  TwoProcs measurer(outer, [&](Ctl& mctl) {
    dup2(2, 1);  // why: iceoryx's log lines must not land in --json's stdout
    ProcOptions inner = c.procs("iceoryx");
    inner.inject = Inject::none;  // injected into the measurer already
    TwoProcs p(inner, [&](Ctl& ctl) {
      init_runtime(echo_name);
      iox::popo::Publisher<Payload> pub({"tern", "shmbench", "pong"});
      iox::popo::Subscriber<Payload> sub({"tern", "shmbench", "ping"});
      while (!pub.hasSubscribers()) usleep(1000);
      ctl.stage.store(1, std::memory_order_release);
      for (std::uint64_t i = 0; i < total; ++i) {
        std::uint64_t seq = 0;
        for (;;) {
          auto r = sub.take();
          if (!r.has_error()) {
            seq = r.value()->seq;
            break;
          }
          bench::relax();
        }
        if (seq != i) throw Failure("iceoryx: echo got sequence number " + std::to_string(seq) +
                                    " for " + std::to_string(i));
        if (!publish(pub, seq)) throw Failure("iceoryx: echo could not loan a chunk");
      }
      // why exit, not return (TwoProcs' _exit): the runtime's destructor deregisters from RouDi
      // and removes the application's socket
      std::exit(0);
    });
    init_runtime(ping_name);
    iox::popo::Publisher<Payload> pub({"tern", "shmbench", "ping"});
    iox::popo::Subscriber<Payload> sub({"tern", "shmbench", "pong"});
    p.wait_stage(1);
    while (!pub.hasSubscribers()) {
      p.check();
      usleep(1000);
    }
    for (std::uint64_t i = 0; i < total; ++i) {
      const std::uint64_t t0 = bench::now_ns();
      if (!publish(pub, i)) throw Failure("iceoryx: could not loan a chunk");
      std::uint64_t seq = 0;
      for (;;) {
        auto r = sub.take();
        if (!r.has_error()) {
          seq = r.value()->seq;
          break;
        }
        p.poll();
      }
      const std::uint64_t t1 = bench::now_ns();
      if (seq != i) throw Failure("iceoryx: round trip " + std::to_string(i) + " came back as " +
                                  std::to_string(seq));
      if (i >= c.warmup) samples[i - c.warmup] = t1 - t0;
    }
    p.join();
    mctl.done.store(1, std::memory_order_release);
    std::exit(0);  // as the echo side: deregister
  });
  measurer.join();
  RoundOut o;
  tern::Histogram h;
  for (std::uint64_t i = 0; i < c.iterations; ++i) h.record(samples[i]);
  o.lat.push_back({"iceoryx_", "Eclipse iceoryx pub/sub, 2 processes, busy-poll, 16 B", h});
  return o;
}

}  // namespace shmb
