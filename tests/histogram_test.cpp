// Tests for tern::Histogram against brute force (sorted vectors) and HdrHistogram's output.
#include <tern/histogram.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "test_util.hpp"

namespace {

using tern::Histogram;
using tern::HgrmRow;

constexpr std::uint64_t kHour = 3'600'000'000'000;
constexpr std::uint64_t kMax64 = std::numeric_limits<std::uint64_t>::max();
// Percentiles in hundredths of a percent, so the exact rank is integer arithmetic.
constexpr int kHundredths[] = {0, 100, 1000, 5000, 9000, 9900, 9990, 9999, 10000};

double precision(int digits) { return std::pow(10.0, -digits); }

// Allowed error for a value: relative 10^-digits or the resolution `lowest`, whichever is larger.
double tolerance(double exact, int digits, std::uint64_t lowest) {
  return std::max(exact * precision(digits), lowest > 1 ? static_cast<double>(lowest) : 0.0);
}

// Element at index ceil(p/100*n)-1 (at least 0) of the sorted values.
std::uint64_t exact_percentile(const std::vector<std::uint64_t>& sorted, int hundredths) {
  const std::uint64_t n = sorted.size();
  std::uint64_t rank = (static_cast<std::uint64_t>(hundredths) * n + 9999) / 10000;
  rank = std::max<std::uint64_t>(rank, 1);
  return sorted[rank - 1];
}

// Records `values` and checks count, percentiles, min, max, mean and stddev against brute force.
void check_against_brute_force(std::vector<std::uint64_t> values, int digits,
                               std::uint64_t lowest = 1, std::uint64_t highest = kHour) {
  Histogram h(lowest, highest, digits);
  std::uint64_t above = 0;
  for (auto v : values) {
    h.record(v);
    above += v > highest ? 1 : 0;
  }
  for (auto& v : values) v = std::min(v, highest);  // documented clamping
  std::sort(values.begin(), values.end());
  INFO("digits = ", digits, ", lowest = ", lowest, ", highest = ", highest, ", n = ", values.size());
  REQUIRE(h.count() == values.size());
  CHECK(h.saturated() == above);
  for (int hp : kHundredths) {
    const double p = hp / 100.0;
    const auto exact = static_cast<double>(exact_percentile(values, hp));
    const auto got = static_cast<double>(h.value_at_percentile(p));
    INFO("p = ", p, ", exact = ", exact, ", got = ", got);
    CHECK(std::fabs(got - exact) <= tolerance(exact, digits, lowest));
  }
  const auto lo = static_cast<double>(values.front());
  const auto hi = static_cast<double>(values.back());
  CHECK(std::fabs(static_cast<double>(h.min()) - lo) <= tolerance(lo, digits, lowest));
  CHECK(std::fabs(static_cast<double>(h.max()) - hi) <= tolerance(hi, digits, lowest));
  long double sum = 0;
  long double sum_sq = 0;
  for (auto v : values) {
    sum += static_cast<long double>(v);
    sum_sq += static_cast<long double>(v) * static_cast<long double>(v);
  }
  const auto n = static_cast<long double>(values.size());
  const auto mean = static_cast<double>(sum / n);
  const auto rms = static_cast<double>(std::sqrt(sum_sq / n));
  long double dev = 0;
  for (auto v : values) {
    const long double d = static_cast<long double>(v) - sum / n;
    dev += d * d;
  }
  const auto sd = static_cast<double>(std::sqrt(dev / n));
  // Each value moves by at most half a bucket (relative 10^-digits / 2, or lowest below it).
  const double slack = static_cast<double>(lowest) + 1e-9 * rms;
  CHECK(std::fabs(h.mean() - mean) <= mean * precision(digits) + slack);
  CHECK(std::fabs(h.stddev() - sd) <= rms * precision(digits) + slack);
}

std::vector<std::uint64_t> random_values(const std::string& kind, std::size_t n, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::vector<std::uint64_t> out;
  out.reserve(n);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  for (std::size_t i = 0; i < n; ++i) {
    if (kind == "uniform") {
      out.push_back(std::uniform_int_distribution<std::uint64_t>(0, 10'000'000)(rng));
    } else if (kind == "log-uniform") {
      out.push_back(static_cast<std::uint64_t>(std::exp(unit(rng) * std::log(double(kHour)))));
    } else if (kind == "constant") {
      out.push_back(123'456'789);
    } else {  // bimodal: fast path around 2 us, slow mode around 5 ms
      out.push_back(unit(rng) < 0.9
                        ? std::uniform_int_distribution<std::uint64_t>(1'900, 2'100)(rng)
                        : std::uniform_int_distribution<std::uint64_t>(4'000'000, 6'000'000)(rng));
    }
  }
  return out;
}

// Bucket edges over the whole range, powers of two +-1, 0, highest and beyond.
std::vector<std::uint64_t> adversarial_values(const Histogram& layout) {
  std::vector<std::uint64_t> out = {0, 0, 1, layout.highest(), layout.highest() - 1,
                                    layout.highest() + 1, kMax64, kMax64 - 1};
  for (int k = 0; k < 64; ++k) {
    const std::uint64_t p = std::uint64_t{1} << k;
    for (std::uint64_t v : {p - 1, p, p + 1}) out.push_back(v);
  }
  for (double x = 1; x < static_cast<double>(layout.highest()); x *= 1.003) {
    const auto v = std::min(static_cast<std::uint64_t>(x), layout.highest());
    out.push_back(layout.lowest_equivalent(v));
    out.push_back(layout.highest_equivalent(v));
  }
  return out;
}

std::string hgrm_of(const Histogram& h, double scale = 1.0) {
  std::ostringstream os;
  h.write_hgrm(os, scale);
  return os.str();
}

std::string error_of(auto&& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "no exception";
}

}  // namespace

TEST_CASE("percentiles match a sorted vector on random inputs for every precision") {
  for (int digits = 1; digits <= 5; ++digits) {
    for (const char* kind : {"uniform", "log-uniform", "constant", "bimodal"}) {
      INFO("distribution = ", kind);
      check_against_brute_force(random_values(kind, 20'000, 7u + unsigned(digits)), digits);
    }
  }
}

TEST_CASE("percentiles match a sorted vector on bucket edges, powers of two and out-of-range values") {
  for (int digits = 1; digits <= 5; ++digits) {
    const Histogram layout(1, kHour, digits);
    check_against_brute_force(adversarial_values(layout), digits);
  }
}

TEST_CASE("a histogram with a coarser lowest and a full 64-bit range stays within its precision") {
  for (int digits = 1; digits <= 4; ++digits) {
    check_against_brute_force(random_values("log-uniform", 20'000, 99), digits, 1000, kHour);
    const Histogram wide(1, kMax64, digits);
    check_against_brute_force(adversarial_values(wide), digits, 1, kMax64);
  }
  check_against_brute_force({0, 1, 2, 3, 2, 1}, 1, 1, 2);  // smallest legal range
}

TEST_CASE("the bucket layout is HdrHistogram's") {
  const Histogram h;  // 1 ns .. 1 h, 3 digits
  CHECK(h.sub_bucket_count() == 2048);
  CHECK(h.bucket_count() == 32);
  CHECK(h.counts_length() == 33 * 1024);
  CHECK(Histogram(1, kHour, 1).sub_bucket_count() == 32);
  CHECK(Histogram(1, kHour, 2).sub_bucket_count() == 256);
  CHECK(Histogram(1, kHour, 4).sub_bucket_count() == 32768);
  CHECK(Histogram(1, kHour, 5).sub_bucket_count() == 262144);
  // Unit resolution up to 2048, then buckets of 2, 4, ...
  CHECK(h.highest_equivalent(2047) == 2047);
  CHECK(h.lowest_equivalent(2049) == 2048);
  CHECK(h.highest_equivalent(2048) == 2049);
  CHECK(h.equivalent_range(10'000'000) == 8192);
  CHECK(h.median_equivalent(4100) == 4102);
  CHECK(h.equivalent(1'000'000, 1'000'100));
  CHECK_FALSE(h.equivalent(1'000'000, 1'001'000));
  const Histogram coarse(1000, kHour, 3);  // unit of 512: values below it share bucket 0
  CHECK(coarse.lowest_equivalent(700) == 512);
  CHECK(coarse.highest_equivalent(0) == 511);
}

TEST_CASE("zero, saturation, reset and empty statistics behave as documented") {
  Histogram h(1, 1'000'000, 3);
  CHECK(h.count() == 0);
  CHECK(h.min() == 0);
  CHECK(h.max() == 0);
  CHECK(h.mean() == 0.0);
  CHECK(h.stddev() == 0.0);
  CHECK(h.value_at_percentile(50) == 0);
  h.record(0);
  CHECK(h.count() == 1);
  CHECK(h.count_at(0) == 1);
  CHECK(h.value_at_percentile(100) == 0);
  h.record(5'000'000);
  h.record_n(kMax64, 3);
  CHECK(h.saturated() == 4);
  CHECK(h.count() == 5);
  CHECK(h.max() == h.highest_equivalent(1'000'000));
  CHECK(h.count_at(1'000'000) == 4);
  h.record_n(77, 0);
  CHECK(h.count() == 5);
  h.reset();
  CHECK(h.count() == 0);
  CHECK(h.saturated() == 0);
  CHECK(h.max() == 0);
  CHECK(h.count_at(1'000'000) == 0);
  h.record(42);
  CHECK(h.min() == 42);
  CHECK(h.max() == 42);
  CHECK(h.value_at_percentile(std::nan("")) == 42);
  CHECK(h.value_at_percentile(-5) == 42);
  CHECK(h.value_at_percentile(500) == 42);
}

TEST_CASE("record_corrected adds exactly the expected synthetic samples") {
  SUBCASE("a stall of ten intervals adds the nine missing samples") {
    Histogram h;
    h.record_corrected(10'000, 1'000);
    CHECK(h.count() == 10);
    for (std::uint64_t v = 1'000; v <= 10'000; v += 1'000) CHECK(h.count_at(v) == 1);
    CHECK(h.count_at(999) == 0);
    Histogram none;
    none.record_corrected(1'999, 1'000);  // 999 < interval: nothing missing
    none.record_corrected(500, 1'000);
    none.record_corrected(500, 0);
    CHECK(none.count() == 3);
    none.record_corrected(2'000, 1'000);  // 1000 >= interval: one missing sample
    CHECK(none.count() == 5);
  }
  SUBCASE("it equals recording every synthetic sample one by one") {
    std::mt19937_64 rng(3);
    for (int digits = 1; digits <= 5; ++digits) {
      Histogram fast(1, 3'000'000, digits);
      Histogram slow(1, 3'000'000, digits);
      for (int i = 0; i < 300; ++i) {
        const std::uint64_t interval = std::uniform_int_distribution<std::uint64_t>(1, 3'000)(rng);
        const std::uint64_t value =
            std::uniform_int_distribution<std::uint64_t>(0, i % 10 == 0 ? 8'000'000 : 400'000)(rng);
        fast.record_corrected(value, interval);
        slow.record(value);
        if (value >= interval) {
          for (std::uint64_t m = value - interval; m >= interval; m -= interval) slow.record(m);
        }
      }
      INFO("digits = ", digits);
      CHECK(fast.count() == slow.count());
      CHECK(fast.saturated() == slow.saturated());
      CHECK(fast == slow);
    }
  }
  SUBCASE("a huge stall costs at most one step per bucket") {
    Histogram h(1, kHour, 2);
    const auto start = std::chrono::steady_clock::now();
    h.record_corrected(kHour, 1);  // 3.6e12 samples
    // one step per sample would take hours; a generous bound that no stall reaches
    CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(10));
    CHECK(h.count() == kHour);
    const auto median = static_cast<double>(h.value_at_percentile(50));
    CHECK(std::fabs(median - kHour / 2.0) <= kHour / 2.0 * precision(2));
  }
}

TEST_CASE("merge equals recording everything into one histogram") {
  const auto a_values = random_values("log-uniform", 30'000, 11);
  const auto b_values = random_values("bimodal", 30'000, 12);
  SUBCASE("same configuration") {
    Histogram a;
    Histogram b;
    Histogram all;
    for (auto v : a_values) a.record(v), all.record(v);
    for (auto v : b_values) b.record(v), all.record(v);
    b.record(kMax64);
    all.record(kMax64);
    a.merge(b);
    CHECK(a == all);
    CHECK(a.saturated() == 1);
    Histogram twice = all;
    twice.merge(twice);
    CHECK(twice.count() == 2 * all.count());
    CHECK(twice.value_at_percentile(90) == all.value_at_percentile(90));
  }
  SUBCASE("different configurations keep the coarser precision and clamp") {
    Histogram fine(1, kHour, 3);
    Histogram coarse(1, 1'000'000'000, 2);
    std::vector<std::uint64_t> all;
    for (auto v : a_values) fine.record(v), all.push_back(v);
    for (auto v : b_values) coarse.record(v), all.push_back(v);
    fine.merge(coarse);
    std::sort(all.begin(), all.end());
    CHECK(fine.count() == all.size());
    for (int hp : kHundredths) {
      const auto exact = static_cast<double>(exact_percentile(all, hp));
      const auto got = static_cast<double>(fine.value_at_percentile(hp / 100.0));
      INFO("p = ", hp / 100.0);
      CHECK(std::fabs(got - exact) <= exact * (precision(2) + precision(3)));
    }
    Histogram narrow(1, 10'000, 3);
    narrow.merge(fine);
    const auto above = static_cast<std::uint64_t>(
        std::count_if(all.begin(), all.end(), [](std::uint64_t v) { return v > 10'000; }));
    CHECK(narrow.count() == all.size());
    CHECK(narrow.saturated() >= above - above / 100);  // bucket values near 10'000 may round down
    CHECK(narrow.saturated() <= above + above / 100);
  }
}

TEST_CASE("write_hgrm reproduces HdrHistogram's outputPercentileDistribution text") {
  // Reference: org.HdrHistogram.Histogram(1, 3600000000000L, 3) with values 1..20 and 1000,
  // outputPercentileDistribution(out, 5, 1.0) from HdrHistogram 2.1.11.
  Histogram h;
  for (std::uint64_t v = 1; v <= 20; ++v) h.record(v);
  h.record(1000);
  const std::string expected =
      "       Value     Percentile TotalCount 1/(1-Percentile)\n"
      "\n"
      "       1.000 0.000000000000          1           1.00\n"
      "       3.000 0.100000000000          3           1.11\n"
      "       5.000 0.200000000000          5           1.25\n"
      "       7.000 0.300000000000          7           1.43\n"
      "       9.000 0.400000000000          9           1.67\n"
      "      11.000 0.500000000000         11           2.00\n"
      "      12.000 0.550000000000         12           2.22\n"
      "      13.000 0.600000000000         13           2.50\n"
      "      14.000 0.650000000000         14           2.86\n"
      "      15.000 0.700000000000         15           3.33\n"
      "      16.000 0.750000000000         16           4.00\n"
      "      17.000 0.775000000000         17           4.44\n"
      "      17.000 0.800000000000         17           5.00\n"
      "      18.000 0.825000000000         18           5.71\n"
      "      18.000 0.850000000000         18           6.67\n"
      "      19.000 0.875000000000         19           8.00\n"
      "      19.000 0.887500000000         19           8.89\n"
      "      19.000 0.900000000000         19          10.00\n"
      "      20.000 0.912500000000         20          11.43\n"
      "      20.000 0.925000000000         20          13.33\n"
      "      20.000 0.937500000000         20          16.00\n"
      "      20.000 0.943750000000         20          17.78\n"
      "      20.000 0.950000000000         20          20.00\n"
      "    1000.000 0.956250000000         21          22.86\n"
      "    1000.000 1.000000000000         21\n"
      "#[Mean    =       57.619, StdDeviation   =      210.798]\n"
      "#[Max     =     1000.000, Total count    =           21]\n"
      "#[Buckets =           32, SubBuckets     =         2048]\n";
  CHECK(hgrm_of(h) == expected);
  // Half-up rounding of the shortest decimal, as Java's Formatter does (0.125 -> 0.13, where
  // printf would round half to even: 0.12).
  Histogram two_digits(1, kHour, 2);
  two_digits.record(125);
  CHECK(hgrm_of(two_digits, 1000.0).find("        0.13 0.000000000000") != std::string::npos);
  const std::string empty = hgrm_of(Histogram());
  CHECK(empty.rfind("       Value     Percentile TotalCount 1/(1-Percentile)\n\n#[Mean    =", 0) == 0);
}

TEST_CASE("a written hgrm reads back with the histogram's percentiles") {
  // Each row costs two O(buckets) look-ups: keep the 4- and 5-digit layouts to 10 ms.
  for (int digits = 1; digits <= 5; ++digits) {
    for (double scale : {1.0, 1000.0}) {
      const std::uint64_t highest = digits <= 3 ? kHour : 10'000'000;
      Histogram h(1, highest, digits);
      for (auto v : random_values("log-uniform", 5'000, 21)) h.record(v);
      for (auto v : random_values("bimodal", 5'000, 22)) h.record(v);
      std::istringstream in(hgrm_of(h, scale));
      const std::vector<HgrmRow> rows = Histogram::read_hgrm(in);
      INFO("digits = ", digits, ", scale = ", scale);
      REQUIRE(rows.size() > 10);
      CHECK(rows.front().percentile == 0.0);
      CHECK(rows.back().percentile == 1.0);
      CHECK(rows.back().total_count == h.count());
      const double rounding = 0.5 * precision(digits) * scale * 1.000001;
      for (std::size_t i = 0; i < rows.size(); ++i) {
        const HgrmRow& r = rows[i];
        if (i > 0) {
          CHECK(r.total_count >= rows[i - 1].total_count);
          CHECK(r.percentile >= rows[i - 1].percentile);
        }
        // The printed percentile has 12 decimals: bracket it by the rounding of that print.
        const double p = r.percentile * 100.0;
        const auto lo = static_cast<double>(h.lowest_equivalent(h.value_at_percentile(std::max(0.0, p - 1e-8))));
        const auto hi = static_cast<double>(h.value_at_percentile(std::min(100.0, p + 1e-8)));
        const double value = r.value * scale;
        INFO("row ", i, ": value = ", value, ", percentile = ", r.percentile, ", range = [", lo, ", ", hi, "]");
        CHECK(value >= lo - rounding);
        CHECK(value <= hi + rounding);
      }
    }
  }
  std::istringstream empty(hgrm_of(Histogram()));
  CHECK(Histogram::read_hgrm(empty).empty());
}

TEST_CASE("malformed hgrm input names the offending line") {
  const std::string header = "       Value     Percentile TotalCount 1/(1-Percentile)\n\n";
  const std::string good = "       1.000 0.000000000000          1           1.00\n";
  auto parse = [](const std::string& text) {
    std::istringstream in(text);
    return Histogram::read_hgrm(in);
  };
  CHECK(parse(header + good + "#[Mean = 1]\r\n").size() == 1);
  CHECK(error_of([&] { parse(header + good + "       abc 0.5 2 2.00\n"); })
            .find("line 4: bad value 'abc'") != std::string::npos);
  CHECK(error_of([&] { parse(header + "       1.000 0.5\n"); }).find("line 3:") != std::string::npos);
  CHECK(error_of([&] { parse(good + good + "  2.0 1.5 3\n"); }).find("line 3: percentile") !=
        std::string::npos);
  CHECK(error_of([&] { parse(good + "  2.0 0.5 -3 2.00\n"); }).find("line 2: bad total count") !=
        std::string::npos);
  CHECK(error_of([&] { parse("1 0.5 3 2.00 extra\n"); }).find("line 1:") != std::string::npos);
  CHECK_THROWS_AS(parse("1 0.5 3 x\n"), std::runtime_error);
}

TEST_CASE("constructor and write_hgrm errors name the bad value") {
  CHECK_THROWS_AS(Histogram(1, kHour, 0), std::invalid_argument);
  CHECK(error_of([] { Histogram(1, kHour, 0); }).find("significant_digits = 0") != std::string::npos);
  CHECK(error_of([] { Histogram(1, kHour, 6); }).find("significant_digits = 6") != std::string::npos);
  CHECK(error_of([] { Histogram(0, kHour, 3); }).find("lowest = 0") != std::string::npos);
  CHECK(error_of([] { Histogram(1000, 1999, 3); }).find("highest = 1999") != std::string::npos);
  CHECK(error_of([] { Histogram(kMax64 / 4, kMax64, 3); }).find("lowest = 4611686018427387903") !=
        std::string::npos);
  CHECK_NOTHROW(Histogram(1000, 2000, 3));
  std::ostringstream os;
  CHECK(error_of([&] { Histogram().write_hgrm(os, 0.0); }).find("output_scale = 0") != std::string::npos);
  CHECK(error_of([&] { Histogram().write_hgrm(os, 1.0, 0); }).find("ticks_per_half_distance = 0") !=
        std::string::npos);
}

TEST_CASE("copies, moves and equality keep the recorded data") {
  Histogram a(1, 1'000'000, 2);
  for (std::uint64_t v = 0; v < 5'000; v += 7) a.record(v);
  Histogram copy = a;
  CHECK(copy == a);
  Histogram moved = std::move(copy);
  CHECK(moved == a);
  Histogram assigned(5, 50, 1);
  assigned = a;
  CHECK(assigned == a);
  assigned.record(1);
  CHECK_FALSE(assigned == a);
  CHECK_FALSE(Histogram(1, 1'000'000, 3) == Histogram(1, 1'000'000, 2));
}

TEST_CASE("snapshots taken while one writer records are consistent and monotone") {
  const std::uint64_t kValues = tern::test::scaled(2'000'000);
  Histogram h(1, 1'000'000'000, 3);
  std::atomic<bool> reader_started{false};
  std::atomic<bool> writer_done{false};
  std::uint64_t snapshots = 0;
  std::uint64_t non_monotone = 0;
  std::uint64_t too_large = 0;
  std::uint64_t inconsistent = 0;
  std::thread reader([&] {
    std::uint64_t last = 0;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(300);
    for (;;) {
      // acquire: pairs with the writer's release so the last snapshot sees every record.
      const bool done = writer_done.load(std::memory_order_acquire);
      const Histogram s = h.snapshot();
      reader_started.store(true, std::memory_order_release);
      ++snapshots;
      non_monotone += s.count() < last ? 1 : 0;
      too_large += s.count() > kValues ? 1 : 0;
      if (s.count() > 0 && s.value_at_percentile(100) != s.max()) ++inconsistent;
      last = s.count();
      if (done || std::chrono::steady_clock::now() > deadline) break;
    }
    if (last != kValues) ++inconsistent;
  });
  while (!reader_started.load(std::memory_order_acquire)) std::this_thread::yield();
  for (std::uint64_t i = 0; i < kValues; ++i) h.record(1 + (i * 7919) % 1'000'000);
  writer_done.store(true, std::memory_order_release);
  reader.join();
  INFO("snapshots = ", snapshots);
  CHECK(snapshots >= 1);
  CHECK(non_monotone == 0);
  CHECK(too_large == 0);
  CHECK(inconsistent == 0);
  CHECK(h.count() == kValues);
  CHECK(h.snapshot().count() == kValues);
  CHECK(h.max() == h.highest_equivalent(1'000'000));
}
