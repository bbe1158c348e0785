// Open-loop one-way latency at a fixed send rate. A sender thread on CPU A paces itself with
// a busy-wait schedule (message i is due at start + i / rate), stamps each message with the
// time it was due, and sends it to a receiver actor on CPU B, which records now - due.
//
// Coordinated omission: the sender never waits for the receiver, and a message sent late (the
// sender was descheduled, or blocked on a full mailbox) still carries the time it was *due*,
// so every message that should have gone out during a stall is charged the stall. That is the
// corrected distribution (the main figures and the .hgrm). For comparison the JSON also has:
//   uncorrected_*: now - actual send time (what a naive harness reports);
//   corrected_*:   now - actual send time through Histogram::record_corrected(expected
//                  interval), HdrHistogram's after-the-fact correction.
// (Applying record_corrected to the due-time samples would count each stall twice.)
//
// In the same run, with the same pacing and CPUs, the same stream goes through labelled
// baselines: moodycamel ReaderWriterQueue (spin: busy-poll; yield: poll + sched_yield; futex:
// BlockingReaderWriterQueue) and a std::mutex + std::condition_variable + std::deque queue.
#include <atomic>
#include <cstdio>
#include <string>
#include <thread>

#include <readerwriterqueue/readerwriterqueue.h>

#include <tern/group.hpp>
#include <tern/manager.hpp>

#include "bench_util.hpp"

using namespace tern;

static const char* kUsage =
    "usage: oneway [--rate MSGS_PER_S] [--seconds S | --messages N] [--warmup N]\n"
    "              [--wake spin|futex|yield] [--spin N] [--group] [--cpus A,B]\n"
    "              [--mailbox spsc|mpsc] [--capacity N] [--baselines all|none] [--rounds N]\n"
    "              [--json FILE] [--hgrm PREFIX]\n"
    "  One-way latency of a paced stream (default 100000 msgs/s for 2 s) from a sender thread\n"
    "  on CPU A to a receiver actor on CPU B, measured from each message's intended send time\n"
    "  (coordinated omission corrected), beside ReaderWriterQueue and mutex+condvar queue\n"
    "  baselines paced the same way in the same run. --warmup: messages not recorded (default:\n"
    "  a tenth of the run). --spin: futex mode's empty polls before parking (default: the\n"
    "  library's). --group: the receiver runs in a tern::Group with one worker on CPU B.\n"
    "  --rounds N: split the run into N rounds that alternate tern and the baselines.\n"
    "  --hgrm PREFIX writes PREFIX<row>.hgrm in microseconds (rows: tern rwq mutex_condvar).\n";

namespace {

struct Stamp {
  static constexpr MessageId message_id = 1;
  std::uint64_t due_ns = 0;   // when the schedule wanted it sent
  std::uint64_t sent_ns = 0;  // when it was actually sent
};

/// The three views of one stream (see the header comment).
struct Result {
  Histogram due;          // now - due: coordinated omission corrected by construction
  Histogram corrected;    // now - sent, record_corrected(interval): filled after the run
  Histogram uncorrected;  // now - sent
  Histogram sender_lag;   // sent - due: how late the sender itself was
  // why keep raw samples: record_corrected costs O(value / interval) buckets (about 60 us
  // for a 100 ms sample at a 10 us interval), too slow for the receiver's hot path; one late
  // sample would make the receiver fall behind and feed on itself.
  std::vector<std::uint64_t> since_sent;
  void finish(std::uint64_t interval_ns) {
    for (std::uint64_t v : since_sent) corrected.record_corrected(v, interval_ns);
    since_sent = {};
  }
};

struct Plan {
  std::uint64_t messages, warmup, interval_ns;
  int cpu_a, cpu_b;
};

inline void record(Result& r, std::uint64_t now, const Stamp& s) {
  r.due.record(now - s.due_ns);
  r.uncorrected.record(now - s.sent_ns);
  r.since_sent.push_back(now - s.sent_ns);  // reserved: never allocates here
}

class Receiver : public Actor {
 public:
  Receiver(const Plan& p, Result& r) : p_(p), r_(r) { handle<&Receiver::on_stamp>(); }
  void on_stamp(const Stamp& s) {
    const std::uint64_t now = bench::now_ns();
    if (n_ >= p_.warmup) record(r_, now, s);
    if (++n_ == p_.messages) terminate();
  }

 private:
  const Plan& p_;
  Result& r_;
  std::uint64_t n_ = 0;
};

/// The sender loop, shared by every variant: `send(Stamp)` delivers one message.
template <class Send>
void paced_send(const Plan& p, Result& r, Send&& send) {
  bench::pin(p.cpu_a);
  const bench::Pacer pacer(bench::now_ns() + 1'000'000, p.interval_ns);  // start in 1 ms
  for (std::uint64_t i = 0; i < p.messages; ++i) {
    const std::uint64_t due = pacer.wait(i);
    const std::uint64_t sent = bench::now_ns();
    if (i >= p.warmup) r.sender_lag.record(sent - due);
    send(Stamp{due, sent});
  }
  bench::unpin();
}

void run_tern(const Plan& p, Result& r, Wake wake, std::uint32_t spin, bool group,
              MailboxConfig mb) {
  Manager mgr;
  ActorRef rx;
  std::unique_ptr<Group> g;
  if (group) {
    GroupConfig gc;
    gc.workers = 1;
    gc.wake = wake;
    gc.spin_limit = spin;
    gc.thread.cpus = {p.cpu_b};
    g = std::make_unique<Group>("oneway", gc);
    rx = g->emplace<Receiver>("receiver", mb, p, r);
    mgr.attach(*g);
  } else {
    ThreadConfig tb;
    tb.wake = wake;
    tb.spin_limit = spin;
    tb.cpus = {p.cpu_b};
    rx = mgr.emplace<Receiver>("receiver", tb, mb, p, r);
  }
  mgr.init();
  paced_send(p, r, [&](const Stamp& s) { (void)rx.send(s); });
  mgr.run();  // until the receiver has seen the last message
  mgr.end();
}

/// A consumer thread on CPU B draining `Q` (pop() blocks or polls as the adapter decides).
template <class Q>
void run_queue(const Plan& p, Result& r, Q& q) {
  std::thread rx([&] {
    bench::pin(p.cpu_b);
    for (std::uint64_t n = 0; n < p.messages; ++n) {
      const Stamp s = q.pop();
      const std::uint64_t now = bench::now_ns();
      if (n >= p.warmup) record(r, now, s);
    }
  });
  paced_send(p, r, [&](const Stamp& s) { q.push(s); });
  rx.join();
}

template <bool Yield>
struct RwqPoll {
  explicit RwqPoll(std::uint32_t cap) : q(cap) {}
  moodycamel::ReaderWriterQueue<Stamp> q;
  void push(const Stamp& s) {
    while (!q.try_enqueue(s)) bench::relax();
  }
  Stamp pop() {
    Stamp s;
    while (!q.try_dequeue(s)) Yield ? (void)sched_yield() : bench::relax();
    return s;
  }
};
struct RwqBlocking {
  explicit RwqBlocking(std::uint32_t cap) : q(cap) {}
  moodycamel::BlockingReaderWriterQueue<Stamp> q;
  void push(const Stamp& s) {
    while (!q.try_enqueue(s)) bench::relax();
  }
  Stamp pop() {
    Stamp s;
    q.wait_dequeue(s);
    return s;
  }
};

struct Labelled {
  Labelled(std::string k, std::string l) : key(std::move(k)), label(std::move(l)) {}
  std::string key, label;
  Result r;
};

std::string fields(const Result& r) {
  char buf[256];
  std::snprintf(buf, sizeof buf,
                ", \"corrected_p99_ns\": %llu, \"corrected_p999_ns\": %llu, "
                "\"uncorrected_p99_ns\": %llu, \"uncorrected_p999_ns\": %llu, "
                "\"sender_lag_p99_ns\": %llu, \"sender_lag_max_ns\": %llu",
                (unsigned long long)r.corrected.value_at_percentile(99),
                (unsigned long long)r.corrected.value_at_percentile(99.9),
                (unsigned long long)r.uncorrected.value_at_percentile(99),
                (unsigned long long)r.uncorrected.value_at_percentile(99.9),
                (unsigned long long)r.sender_lag.value_at_percentile(99),
                (unsigned long long)r.sender_lag.max());
  return bench::json_fields("", r.due) + buf;
}

}  // namespace

int main(int argc, char** argv) {
  bench::Args args(argc, argv,
                   {{"rate", "100000"},
                    {"seconds", "2"},
                    {"messages", "0"},
                    {"warmup", "auto"},
                    {"wake", "spin"},
                    {"spin", std::to_string(Tuning::futex_spin)},
                    {"cpus", "0,1"},
                    {"mailbox", "spsc"},
                    {"capacity", "4096"},
                    {"baselines", "all"},
                    {"rounds", "1"},
                    {"json", ""},
                    {"hgrm", ""}},
                   kUsage, {"group"});
  const std::string wname = args.str("wake");
  Wake wake{};
  if (!bench::parse_wake(wname, wake))
    bench::Args::fail("--wake must be spin, futex or yield, got '" + wname + "'", kUsage);
  const std::uint64_t rate = args.u64("rate");
  if (rate == 0 || rate > 100'000'000) bench::Args::fail("--rate must be in 1..100000000", kUsage);
  std::uint64_t messages = args.u64("messages");
  if (messages == 0) messages = rate * args.u64("seconds");
  if (messages < 10) bench::Args::fail("fewer than 10 messages: raise --seconds or --messages", kUsage);
  const std::uint64_t warmup =
      args.str("warmup") == "auto" ? messages / 10 : args.u64("warmup");
  if (warmup >= messages) bench::Args::fail("--warmup must be below the message count", kUsage);
  const std::vector<int> cpus = args.cpus("cpus");
  if (cpus.size() != 2) bench::Args::fail("--cpus wants two CPUs, e.g. 0,1", kUsage);
  const std::string mname = args.str("mailbox");
  if (mname != "spsc" && mname != "mpsc")
    bench::Args::fail("--mailbox must be spsc or mpsc, got '" + mname + "'", kUsage);
  const auto cap = static_cast<std::uint32_t>(args.u64("capacity"));
  if (cap < 2 || cap > (1u << 24)) bench::Args::fail("--capacity must be in 2..16777216", kUsage);
  const std::string bname = args.str("baselines");
  if (bname != "all" && bname != "none")
    bench::Args::fail("--baselines must be all or none, got '" + bname + "'", kUsage);
  const auto spin = static_cast<std::uint32_t>(args.u64("spin"));
  const bool group = args.flag("group");
  const MailboxConfig mb{cap, mname == "spsc" ? MailboxKind::spsc : MailboxKind::mpsc};
  const std::uint64_t rounds = args.u64("rounds");
  if (rounds == 0 || rounds > 1000) bench::Args::fail("--rounds must be in 1..1000", kUsage);
  if (messages / rounds <= warmup / rounds || messages / rounds < 10)
    bench::Args::fail("too few messages per round", kUsage);
  // Each round sends messages / rounds and skips warmup / rounds of them.
  const Plan plan{messages / rounds, warmup / rounds, 1'000'000'000 / rate, cpus[0], cpus[1]};

  std::printf("oneway: wake=%s mailbox=%s rate=%llu msgs/s messages=%llu warmup=%llu rounds=%llu "
              "cpus=%d,%d%s%s\n",
              wname.c_str(), mname.c_str(), (unsigned long long)rate,
              (unsigned long long)messages, (unsigned long long)warmup,
              (unsigned long long)rounds, cpus[0], cpus[1],
              wake == Wake::futex ? (" spin=" + std::to_string(spin)).c_str() : "",
              group ? " group=1 worker" : "");
  std::fflush(stdout);

  std::vector<Labelled> rows;
  rows.reserve(3);  // receivers hold references into rows while they run
  rows.emplace_back("tern", group ? "tern " + wname + " (group, 1 worker)"
                                  : "tern " + wname + " (" + mname + ")");
  if (bname == "all") {
    rows.emplace_back("rwq", wake == Wake::spin    ? "moodycamel RWQ busy-poll"
                             : wake == Wake::yield ? "moodycamel RWQ poll+yield"
                                                   : "moodycamel BlockingRWQ");
    rows.emplace_back("mutex_condvar", "mutex+condvar queue");
  }
  // Receivers record into since_sent without allocating: room for every round up front.
  for (Labelled& l : rows) l.r.since_sent.reserve(plan.messages * rounds);
  // Rounds interleave the implementations (tern, rwq, mutex, tern, ...), so a noisy
  // neighbour during one stretch of the run hits all of them alike.
  for (std::uint64_t round = 0; round < rounds; ++round) {
    run_tern(plan, rows[0].r, wake, spin, group, mb);
    if (bname != "all") continue;
    if (wake == Wake::spin) {
      RwqPoll<false> q(cap);
      run_queue(plan, rows[1].r, q);
    } else if (wake == Wake::yield) {
      RwqPoll<true> q(cap);
      run_queue(plan, rows[1].r, q);
    } else {
      RwqBlocking q(cap);
      run_queue(plan, rows[1].r, q);
    }
    bench::MutexQueue<Stamp> q;
    run_queue(plan, rows[2].r, q);
  }

  for (Labelled& l : rows) l.r.finish(plan.interval_ns);

  std::vector<bench::Row> table;
  for (const Labelled& l : rows)
    table.push_back({l.label + (l.key == "tern" ? "" : " (baseline)"), l.r.due});
  bench::print_table("one-way from intended send time", table);
  std::printf("%-28s %9s %9s %9s\n", "p99 (ns) by method:", "due-time", "HdrCorr", "naive");
  for (const Labelled& l : rows)
    std::printf("%-28s %9llu %9llu %9llu   sender lag p99 %llu max %llu\n", l.key.c_str(),
                (unsigned long long)l.r.due.value_at_percentile(99),
                (unsigned long long)l.r.corrected.value_at_percentile(99),
                (unsigned long long)l.r.uncorrected.value_at_percentile(99),
                (unsigned long long)l.r.sender_lag.value_at_percentile(99),
                (unsigned long long)l.r.sender_lag.max());
  const Histogram& t = rows[0].r.due;
  for (std::size_t i = 1; i < rows.size(); ++i)
    std::printf("ratio p50 tern/%s: %.2fx   p99: %.2fx\n", rows[i].label.c_str(),
                static_cast<double>(t.value_at_percentile(50)) /
                    static_cast<double>(std::max<std::uint64_t>(1, rows[i].r.due.value_at_percentile(50))),
                static_cast<double>(t.value_at_percentile(99)) /
                    static_cast<double>(std::max<std::uint64_t>(1, rows[i].r.due.value_at_percentile(99))));

  const std::string prefix = args.str("hgrm");
  for (const Labelled& l : rows) bench::write_hgrm(prefix, l.key, l.r.due);
  char head[384];
  std::snprintf(head, sizeof head,
                "{\"wake\": \"%s\", \"mailbox\": \"%s\", \"group\": %s, \"rate\": %llu, "
                "\"messages\": %llu, \"warmup\": %llu, \"interval_ns\": %llu, \"cpus\": [%d, %d], "
                "\"spin\": %u, \"rounds\": %llu, ",
                wname.c_str(), mname.c_str(), group ? "true" : "false", (unsigned long long)rate,
                (unsigned long long)messages, (unsigned long long)warmup,
                (unsigned long long)plan.interval_ns, cpus[0], cpus[1], spin,
                (unsigned long long)rounds);
  std::string json = head + fields(rows[0].r) + ", \"rows\": [";
  for (std::size_t i = 0; i < rows.size(); ++i)
    json += std::string(i ? ", " : "") + "{\"key\": " + bench::jstr(rows[i].key) +
            ", \"label\": " + bench::jstr(rows[i].label) + ", " + fields(rows[i].r) + "}";
  json += "]}\n";
  bench::write_file(args.str("json"), json);
  return 0;
}
