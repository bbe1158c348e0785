// Per-operation costs of tern::Histogram. Each group has a baseline measured in the same run
// (these machines are shared and noisy: compare ratios, not absolute times).
#include <tern/histogram.hpp>

#include <benchmark/benchmark.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <random>
#include <vector>

namespace {

constexpr std::uint64_t kHour = 3'600'000'000'000;
constexpr std::size_t kValues = 4096;  // power of two: index with a mask

// Log-uniform 1 ns .. 1 h, so record() touches buckets all over the array.
std::vector<std::uint64_t> make_values(std::uint64_t highest) {
  std::mt19937_64 rng(42);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  std::vector<std::uint64_t> v(kValues);
  for (auto& x : v) x = static_cast<std::uint64_t>(std::exp(unit(rng) * std::log(double(highest))));
  return v;
}

// Baseline: the cheapest possible counter update (plain increment, index from a mask).
void BM_BaselineIncrement(benchmark::State& state) {
  const auto values = make_values(kHour);
  auto counts = std::make_unique<std::uint64_t[]>(33 * 1024);
  std::size_t i = 0;
  for (auto _ : state) {
    ++counts[values[i++ & (kValues - 1)] & (33 * 1024 - 1)];
    benchmark::ClobberMemory();
  }
  benchmark::DoNotOptimize(counts[0]);
}
BENCHMARK(BM_BaselineIncrement);

void BM_Record(benchmark::State& state) {
  const int digits = static_cast<int>(state.range(0));
  tern::Histogram h(1, kHour, digits);
  const auto values = make_values(kHour);
  std::size_t i = 0;
  for (auto _ : state) {
    h.record(values[i++ & (kValues - 1)]);
    benchmark::ClobberMemory();
  }
  benchmark::DoNotOptimize(h.count());
}
BENCHMARK(BM_Record)->Arg(2)->Arg(3)->Arg(5);

void BM_RecordSameValue(benchmark::State& state) {
  tern::Histogram h;
  for (auto _ : state) {
    h.record(1234);
    benchmark::ClobberMemory();
  }
  benchmark::DoNotOptimize(h.count());
}
BENCHMARK(BM_RecordSameValue);

// No stall (value < 2 * interval): the common case of record_corrected.
void BM_RecordCorrectedNoStall(benchmark::State& state) {
  tern::Histogram h;
  const auto values = make_values(1'000'000);
  std::size_t i = 0;
  for (auto _ : state) {
    h.record_corrected(values[i++ & (kValues - 1)], 1'000'000);
    benchmark::ClobberMemory();
  }
  benchmark::DoNotOptimize(h.count());
}
BENCHMARK(BM_RecordCorrectedNoStall);

// Reader side: one percentile over a histogram holding 1M log-uniform values (1 ns .. 1 h).
void BM_ValueAtPercentile(benchmark::State& state) {
  const int digits = static_cast<int>(state.range(0));
  const double p = static_cast<double>(state.range(1)) / 100.0;
  tern::Histogram h(1, kHour, digits);
  const auto values = make_values(kHour);
  for (int r = 0; r < 256; ++r) {
    for (auto v : values) h.record(v);
  }
  for (auto _ : state) benchmark::DoNotOptimize(h.value_at_percentile(p));
  state.counters["counters"] = static_cast<double>(h.counts_length());
}
BENCHMARK(BM_ValueAtPercentile)
    ->ArgsProduct({{2, 3}, {5000, 9900, 9999}})
    ->Unit(benchmark::kMicrosecond);

void BM_Snapshot(benchmark::State& state) {
  tern::Histogram h;
  for (auto v : make_values(kHour)) h.record(v);
  for (auto _ : state) {
    tern::Histogram s = h.snapshot();
    benchmark::DoNotOptimize(s.count());
  }
}
BENCHMARK(BM_Snapshot)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
