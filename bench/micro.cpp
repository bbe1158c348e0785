// Google Benchmark micro-benchmarks: the cost of one operation, single-threaded unless the
// name says otherwise, with a comparison beside each tern figure:
//   ring/*        a mailbox lane (tern::detail::Ring) push + pop, SPSC and MPSC claims,
//                 one at a time and in batches of 64; beside moodycamel ConcurrentQueue and
//                 ReaderWriterQueue doing the same.
//   slot_cycle/*  tern has no message pool: a message is constructed in its mailbox slot.
//                 So "allocate/free" is the slot cycle: claim + construct + publish (try_send)
//                 and front + destroy + pop + release (the consumer side), per message size.
//   alloc/*       malloc/free against mimalloc's mi_malloc/mi_free (gateway buffers).
//   dispatch/*    fast_send into a handler (O(1) lookup: the cost must not grow with the
//                 number of handlers), beside a plain virtual call.
//   timer/*       Actor::start_timer + cancel_timer (one timer thread per Manager).
//   histogram/*   Histogram::record, the per-message cost of instrumentation.
#include <benchmark/benchmark.h>
#include <mimalloc.h>

#include <cstdlib>
#include <memory>
#include <vector>

#include <concurrentqueue/concurrentqueue.h>
#include <readerwriterqueue/readerwriterqueue.h>

#include <tern/detail/ring.hpp>
#include <tern/histogram.hpp>
#include <tern/manager.hpp>

using namespace tern;

namespace {

struct Msg8 {
  static constexpr MessageId message_id = 8;
  std::uint64_t a = 0;
};
struct Msg64 {
  static constexpr MessageId message_id = 64;
  std::uint64_t v[8] = {};
};
struct Msg80 {
  static constexpr MessageId message_id = 80;
  std::uint64_t v[10] = {};
};

// ---- ring ------------------------------------------------------------------------------------

template <bool Mpsc>
void ring_push_pop(benchmark::State& st) {
  detail::Ring r;
  r.init(4096 * 32, Mpsc ? MailboxKind::mpsc : MailboxKind::spsc);
  const auto batch = static_cast<std::uint32_t>(st.range(0));
  std::uint64_t sum = 0;
  const std::uint32_t type = detail::type_index_of(message_info_v<Msg8>);
  constexpr std::uint32_t word = detail::record_bytes(sizeof(Msg8), false);
  for (auto _ : st) {
    for (std::uint32_t i = 0; i < batch; ++i) {
      auto fill = [&](detail::Record& s) noexcept {
        ::new (static_cast<void*>(s.body())) Msg8{i};
        s.type = type;
      };
      const auto ok = Mpsc ? r.push_mpsc(word, fill, false) : r.push_spsc(word, fill, false);
      benchmark::DoNotOptimize(ok);
    }
    for (std::uint32_t i = 0; i < batch; ++i) {
      detail::Record* s = r.front();
      sum += reinterpret_cast<const Msg8*>(s->body())->a;
      r.pop();
    }
    r.release();
  }
  benchmark::DoNotOptimize(sum);
  st.SetItemsProcessed(static_cast<std::int64_t>(st.iterations()) * batch);
}
BENCHMARK(ring_push_pop<false>)->Name("ring/spsc_push_pop")->Arg(1)->Arg(64);
BENCHMARK(ring_push_pop<true>)->Name("ring/mpsc_push_pop")->Arg(1)->Arg(64);

template <bool Token>
void cq_push_pop(benchmark::State& st) {
  moodycamel::ConcurrentQueue<Msg8> q(4096);
  moodycamel::ProducerToken pt(q);
  moodycamel::ConsumerToken ct(q);
  const auto batch = static_cast<std::uint32_t>(st.range(0));
  std::uint64_t sum = 0;
  for (auto _ : st) {
    for (std::uint32_t i = 0; i < batch; ++i) {
      const bool ok = Token ? q.enqueue(pt, Msg8{i}) : q.enqueue(Msg8{i});
      benchmark::DoNotOptimize(ok);
    }
    Msg8 m;
    for (std::uint32_t i = 0; i < batch; ++i) {
      if (Token ? q.try_dequeue(ct, m) : q.try_dequeue(m)) sum += m.a;
    }
  }
  benchmark::DoNotOptimize(sum);
  st.SetItemsProcessed(static_cast<std::int64_t>(st.iterations()) * batch);
}
BENCHMARK(cq_push_pop<false>)->Name("ring/moodycamel_ConcurrentQueue")->Arg(1)->Arg(64);
BENCHMARK(cq_push_pop<true>)->Name("ring/moodycamel_ConcurrentQueue_tokens")->Arg(1)->Arg(64);

void rwq_push_pop(benchmark::State& st) {
  moodycamel::ReaderWriterQueue<Msg8> q(4096);
  const auto batch = static_cast<std::uint32_t>(st.range(0));
  std::uint64_t sum = 0;
  for (auto _ : st) {
    for (std::uint32_t i = 0; i < batch; ++i) benchmark::DoNotOptimize(q.try_enqueue(Msg8{i}));
    Msg8 m;
    for (std::uint32_t i = 0; i < batch; ++i)
      if (q.try_dequeue(m)) sum += m.a;
  }
  benchmark::DoNotOptimize(sum);
  st.SetItemsProcessed(static_cast<std::int64_t>(st.iterations()) * batch);
}
BENCHMARK(rwq_push_pop)->Name("ring/moodycamel_ReaderWriterQueue")->Arg(1)->Arg(64);

// ---- slot cycle (tern's "pool": the message lives in its mailbox slot) ------------------------

class Sink : public Actor {
 public:
  Sink() {
    handle<&Sink::on8>();
    handle<&Sink::on64>();
    handle<&Sink::on80>();
  }
  void on8(const Msg8& m) { sum += m.a; }
  void on64(const Msg64& m) { sum += m.v[0]; }
  void on80(const Msg80& m) { sum += m.v[0]; }
  std::uint64_t sum = 0;
};

template <class M>
void slot_cycle(benchmark::State& st) {
  Sink a;
  // Not managed by a Manager: configure the mailbox by hand, consume it on this thread.
  const auto kind = st.range(0) ? MailboxKind::mpsc : MailboxKind::spsc;
  a.mailbox().configure(MailboxConfig{4096, kind}, &a, "sink");
  const ActorRef ref = a.self();
  detail::Mailbox& mb = a.mailbox();
  for (auto _ : st) {
    const SendResult r = ref.try_send(M{}, ActorRef());
    benchmark::DoNotOptimize(r);
    std::uint32_t w = 0;
    detail::Record* s = mb.front(w);
    destroy_message(detail::message_type_at(s->type), mb.payload(*s, w));
    mb.pop(*s, w);
    mb.release();
  }
  st.SetItemsProcessed(static_cast<std::int64_t>(st.iterations()));
  st.SetLabel(kind == MailboxKind::spsc ? "spsc" : "mpsc");
}
BENCHMARK(slot_cycle<Msg8>)->Name("slot_cycle/8B")->Arg(0)->Arg(1);
BENCHMARK(slot_cycle<Msg64>)->Name("slot_cycle/64B")->Arg(0)->Arg(1);
BENCHMARK(slot_cycle<Msg80>)->Name("slot_cycle/80B")->Arg(0)->Arg(1);

// ---- allocators ---------------------------------------------------------------------------------

template <void* (*Alloc)(std::size_t), void (*Free)(void*)>
void alloc_free(benchmark::State& st) {
  const auto n = static_cast<std::size_t>(st.range(0));
  for (auto _ : st) {
    void* p = Alloc(n);
    benchmark::DoNotOptimize(p);
    static_cast<char*>(p)[0] = 1;
    Free(p);
  }
  st.SetItemsProcessed(static_cast<std::int64_t>(st.iterations()));
}
void* sys_malloc(std::size_t n) { return std::malloc(n); }
void sys_free(void* p) { std::free(p); }
BENCHMARK(alloc_free<sys_malloc, sys_free>)->Name("alloc/malloc_free")->Arg(64)->Arg(256)->Arg(4096)->Arg(65536);
BENCHMARK(alloc_free<mi_malloc, mi_free>)->Name("alloc/mi_malloc_mi_free")->Arg(64)->Arg(256)->Arg(4096)->Arg(65536);

// ---- dispatch ----------------------------------------------------------------------------------

template <MessageId Id>
struct Req {
  static constexpr MessageId message_id = Id;
  std::uint64_t x = 0;
};
struct Ack {
  static constexpr MessageId message_id = 1000;
  std::uint64_t x = 0;
};

/// An actor with `N` handlers for Req<0>..Req<N-1>; the benchmark always sends Req<0>.
template <MessageId N>
class Many : public Actor {
 public:
  Many() { add<0>(); }
  template <MessageId I>
  void on(const Req<I>& r) {
    sum += r.x + I;
    if constexpr (I == 0)
      if (reply_on) (void)reply(Ack{r.x});
  }
  std::uint64_t sum = 0;
  bool reply_on = false;

 private:
  template <MessageId I>
  void add() {
    handle<&Many::template on<I>>();
    if constexpr (I + 1 < N) add<I + 1>();
  }
};

template <MessageId N, bool Reply>
void dispatch_fast_send(benchmark::State& st) {
  Many<N> a;
  a.reply_on = Reply;
  const ActorRef ref = a.self();
  std::uint64_t i = 0;
  for (auto _ : st) {
    FastReply r = ref.fast_send(Req<0>{++i}, ActorRef());
    benchmark::DoNotOptimize(r.status());
  }
  benchmark::DoNotOptimize(a.sum);
  st.SetItemsProcessed(static_cast<std::int64_t>(st.iterations()));
}
BENCHMARK(dispatch_fast_send<1, false>)->Name("dispatch/fast_send_1_handler");
BENCHMARK(dispatch_fast_send<32, false>)->Name("dispatch/fast_send_32_handlers");
BENCHMARK(dispatch_fast_send<32, true>)->Name("dispatch/fast_send_32_handlers_reply");

struct Base {
  virtual ~Base() = default;
  virtual void on(std::uint64_t x) = 0;
};
struct Derived final : Base {
  void on(std::uint64_t x) override { sum += x; }
  std::uint64_t sum = 0;
};
void dispatch_virtual(benchmark::State& st) {
  std::unique_ptr<Base> b = std::make_unique<Derived>();
  Base* volatile vp = b.get();  // why volatile: keep the compiler from devirtualising
  std::uint64_t i = 0;
  for (auto _ : st) vp->on(++i);
  st.SetItemsProcessed(static_cast<std::int64_t>(st.iterations()));
}
BENCHMARK(dispatch_virtual)->Name("dispatch/virtual_call_baseline");

// ---- timers ----------------------------------------------------------------------------------

class TimerOwner : public Actor {
 public:
  using Actor::cancel_timer;
  using Actor::start_timer;
};

void timer_start_cancel(benchmark::State& st) {
  Manager mgr;
  ThreadConfig tc;
  tc.wake = Wake::futex;
  auto owner = std::make_unique<TimerOwner>();
  TimerOwner* t = owner.get();
  mgr.manage("timer_owner", std::move(owner), tc);
  mgr.init();
  // `live` timers stay armed far in the future so the heap has that many entries.
  std::vector<std::uint64_t> live;
  for (std::int64_t i = 0; i < st.range(0); ++i) live.push_back(t->start_timer(3'600'000'000));
  for (auto _ : st) {
    const std::uint64_t id = t->start_timer(1'000'000'000);  // 1000 s: never fires here
    benchmark::DoNotOptimize(t->cancel_timer(id));
  }
  for (std::uint64_t id : live) t->cancel_timer(id);
  mgr.end();
  st.SetItemsProcessed(static_cast<std::int64_t>(st.iterations()));
  st.SetLabel("start_timer + cancel_timer");
}
BENCHMARK(timer_start_cancel)->Name("timer/start_cancel")->Arg(0)->Arg(1000)->UseRealTime();

// ---- histogram -------------------------------------------------------------------------------

void histogram_record(benchmark::State& st) {
  Histogram h;
  std::uint64_t v = 1;
  for (auto _ : st) {
    v = v * 6364136223846793005ull + 1442695040888963407ull;  // spread over the buckets
    h.record((v >> 40) + 100);
  }
  benchmark::DoNotOptimize(h.count());
  st.SetItemsProcessed(static_cast<std::int64_t>(st.iterations()));
}
BENCHMARK(histogram_record)->Name("histogram/record");

}  // namespace

BENCHMARK_MAIN();
