// Latency histogram in the HdrHistogram style: log-linear buckets over [lowest, highest] with
// a fixed number of significant decimal digits, O(1) recording with no allocation, and the
// .hgrm percentile-distribution text that HdrHistogram's plotters read.
//
//   tern::Histogram h;                       // 1 ns .. 1 h, 3 significant digits
//   h.record(elapsed_ns);                    // hot path: one writer thread
//   tern::Histogram s = h.snapshot();        // any thread
//   s.value_at_percentile(99.9);
//   s.write_hgrm(std::cout, 1000.0);         // values in microseconds
//
// Layout and index arithmetic follow HdrHistogram's AbstractHistogram exactly (unitMagnitude,
// subBucketHalfCountMagnitude, ...), so bucket boundaries and .hgrm rows match the Java
// implementation for the same configuration and data.
#pragma once
#include <algorithm>
#include <atomic>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <istream>
#include <limits>
#include <memory>
#include <ostream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace tern {

/// One row of a .hgrm percentile distribution: value (already divided by the output scale),
/// percentile as a fraction in [0, 1], and the cumulative count up to that value.
struct HgrmRow {
  double value;
  double percentile;
  std::uint64_t total_count;
};

/// HdrHistogram-style latency histogram.
///
/// Threads: exactly one writer thread calls record*/merge/reset; any number of other threads
/// may call the const members at the same time (counts are std::atomic, the writer uses
/// relaxed load + store, readers relaxed loads). Readers of a histogram that is being written
/// see a slightly stale, possibly torn-across-buckets view; snapshot() gives a copy whose count,
/// min and max are recomputed from its buckets, so they agree with each other.
/// Precision: every reported value v' for a recorded value v satisfies
/// |v' - v| <= max(v * 10^-significant_digits(), u) where u, the resolution, is lowest()
/// rounded down to a power of two (u = 1, so purely relative, for the default lowest = 1).
/// Allocation: only constructors, snapshot(), copy assignment and write_hgrm() allocate.
class Histogram {
 public:
  /// Tracks values in [0, highest] with `significant_digits` decimal digits of precision and
  /// resolution `lowest` (see the class comment). Throws std::invalid_argument naming the bad
  /// value if digits is not in 1..5, lowest < 1, highest < 2 * lowest, or lowest is too large
  /// for the digits. Any thread; allocates the counters, 8 bytes each (counts_length()):
  /// 264 KiB for the defaults, 26 MiB for 5 digits over 1 h, 48 MiB for 5 digits over 2^64.
  explicit Histogram(std::uint64_t lowest = 1, std::uint64_t highest = 3'600'000'000'000,
                     int significant_digits = 3);

  /// Same as snapshot(): any thread may copy a histogram while its writer records. Allocates.
  Histogram(const Histogram& other);
  /// Copy-and-swap; this histogram's writer thread only. Allocates.
  Histogram& operator=(const Histogram& other);
  /// Steals the buckets; the moved-from histogram may only be destroyed or assigned to.
  /// Neither histogram may be in use by another thread. Does not allocate.
  Histogram(Histogram&& other) noexcept;
  /// Steals the buckets (see the move constructor). Does not allocate.
  Histogram& operator=(Histogram&& other) noexcept;
  ~Histogram() = default;

  /// Records one value; values above highest() are recorded as highest() and counted in
  /// saturated(). O(1), writer thread only, never allocates, blocks or throws.
  void record(std::uint64_t value) noexcept { record_n(value, 1); }

  /// Records `n` occurrences of `value` (n == 0 is a no-op). O(1), writer thread only,
  /// never allocates, blocks or throws.
  void record_n(std::uint64_t value, std::uint64_t n) noexcept;

  /// Records `value`, then corrects for coordinated omission like HdrHistogram's
  /// recordValueWithExpectedInterval: also records value - k * expected_interval for k = 1, 2,
  /// ... while that is >= expected_interval (nothing extra if expected_interval is 0).
  /// The synthetic samples are added bucket by bucket, so the cost is bounded by the bucket
  /// count, not by value / expected_interval. Writer thread only; never allocates or throws.
  void record_corrected(std::uint64_t value, std::uint64_t expected_interval) noexcept;

  /// Adds every count of `other` (same or different configuration; merging into itself
  /// doubles it). Other's bucket values above highest() are clamped and counted in
  /// saturated(), as are other's saturated() samples. Writer thread of this histogram only;
  /// `other` may be recorded concurrently by its own writer. O(other's buckets), no allocation.
  void merge(const Histogram& other) noexcept;

  /// A copy taken from any thread while the writer records: counts are loaded relaxed one by
  /// one, and count(), min(), max() of the copy are recomputed from the copied buckets.
  /// saturated() is loaded separately and may lag the buckets. Allocates.
  [[nodiscard]] Histogram snapshot() const { return Histogram(*this); }

  /// Clears every count. Writer thread only; O(buckets), no allocation.
  void reset() noexcept;

  /// Number of recorded values (including saturated ones). Any thread; O(1).
  [[nodiscard]] std::uint64_t count() const noexcept {
    return total_count_.load(std::memory_order_relaxed);
  }
  /// Number of values that were above highest() and recorded as highest(). Any thread; O(1).
  [[nodiscard]] std::uint64_t saturated() const noexcept {
    return saturated_.load(std::memory_order_relaxed);
  }
  /// Lowest equivalent value of the smallest recorded value; 0 if empty (or if a value below
  /// the first bucket's width was recorded, as in HdrHistogram). Any thread; O(1).
  [[nodiscard]] std::uint64_t min() const noexcept;
  /// Highest equivalent value of the largest recorded value; 0 if empty. Any thread; O(1).
  [[nodiscard]] std::uint64_t max() const noexcept;
  /// Mean over bucket midpoints (HdrHistogram's getMean); 0 if empty. Any thread; O(buckets).
  [[nodiscard]] double mean() const noexcept;
  /// Population standard deviation over bucket midpoints (HdrHistogram's getStdDeviation);
  /// 0 if empty. Any thread; O(buckets).
  [[nodiscard]] double stddev() const noexcept;
  /// The value at percentile p (clamped to [0, 100]): the highest equivalent value of the first
  /// bucket where the cumulative count reaches ceil(p / 100 * count()) (at least 1), or the
  /// lowest equivalent value of the first non-empty bucket for p == 0, as in HdrHistogram.
  /// p / 100 * count() is snapped to an integer when within rounding error of one, so that
  /// decimal percentiles such as 99.9 select the intended rank. 0 if empty.
  /// Any thread (exact on a snapshot); O(buckets), no allocation.
  [[nodiscard]] std::uint64_t value_at_percentile(double p) const noexcept;
  /// Number of recorded values equivalent to `value` (in its bucket). Any thread; O(1).
  [[nodiscard]] std::uint64_t count_at(std::uint64_t value) const noexcept;

  /// Configuration as given to the constructor. Any thread; O(1).
  [[nodiscard]] std::uint64_t lowest() const noexcept { return lowest_; }
  /// Largest trackable value; larger ones are clamped to it. Any thread; O(1).
  [[nodiscard]] std::uint64_t highest() const noexcept { return highest_; }
  /// Decimal digits of precision (1..5). Any thread; O(1).
  [[nodiscard]] int significant_digits() const noexcept { return significant_digits_; }
  /// HdrHistogram's bucketCount (the "Buckets" in the .hgrm footer). Any thread; O(1).
  [[nodiscard]] int bucket_count() const noexcept { return bucket_count_; }
  /// HdrHistogram's subBucketCount (the "SubBuckets" in the .hgrm footer). Any thread; O(1).
  [[nodiscard]] std::uint64_t sub_bucket_count() const noexcept {
    return std::uint64_t{1} << (sub_bucket_half_count_magnitude_ + 1);
  }
  /// Number of counters (memory is 8 bytes per counter). Any thread; O(1).
  [[nodiscard]] std::size_t counts_length() const noexcept { return counts_length_; }

  /// Smallest value in the same bucket as `value` (value <= highest()). Any thread; O(1).
  [[nodiscard]] std::uint64_t lowest_equivalent(std::uint64_t value) const noexcept;
  /// Largest value in the same bucket as `value` (value <= highest()). Any thread; O(1).
  [[nodiscard]] std::uint64_t highest_equivalent(std::uint64_t value) const noexcept;
  /// Middle of the bucket of `value`, used by mean() and stddev(). Any thread; O(1).
  [[nodiscard]] std::uint64_t median_equivalent(std::uint64_t value) const noexcept;
  /// Width of the bucket of `value`. Any thread; O(1).
  [[nodiscard]] std::uint64_t equivalent_range(std::uint64_t value) const noexcept;
  /// True when a and b fall in the same bucket. Any thread; O(1).
  [[nodiscard]] bool equivalent(std::uint64_t a, std::uint64_t b) const noexcept {
    return lowest_equivalent(a) == lowest_equivalent(b);
  }

  /// Writes HdrHistogram's outputPercentileDistribution text (the .hgrm format) byte for byte:
  /// header, one row per percentile tick, the 100% row, and the Mean/Max/Buckets footer.
  /// Values are divided by output_scale (e.g. 1000.0 for ns -> us). Works on an internal
  /// snapshot, so any thread may call it while the writer records. Allocates (the snapshot and
  /// the text); throws std::invalid_argument if output_scale is not a positive finite number
  /// or ticks_per_half_distance < 1.
  void write_hgrm(std::ostream& os, double output_scale = 1.0,
                  int ticks_per_half_distance = 5) const;

  /// Parses .hgrm text (as written by write_hgrm or HdrHistogram): header, blank and '#'
  /// lines are skipped; every other line must be "value percentile total_count
  /// [1/(1-percentile)]". Throws std::runtime_error naming the 1-based line number on
  /// malformed input. Any thread; allocates.
  static std::vector<HgrmRow> read_hgrm(std::istream& is);

  /// Same configuration, counts, saturated(), min() and max(). Any thread; O(buckets).
  [[nodiscard]] bool operator==(const Histogram& other) const noexcept;

 private:
  using Counter = std::atomic<std::uint64_t>;

  [[nodiscard]] int bucket_index(std::uint64_t value) const noexcept {
    return leading_zero_count_base_ - std::countl_zero(value | sub_bucket_mask_);
  }
  [[nodiscard]] std::size_t counts_index(std::uint64_t value) const noexcept {
    const int bucket = bucket_index(value);
    const auto sub = static_cast<std::size_t>(value >> (bucket + unit_magnitude_));
    return (static_cast<std::size_t>(bucket + 1) << sub_bucket_half_count_magnitude_) + sub -
           sub_bucket_half_count_;
  }
  [[nodiscard]] std::uint64_t value_from_index(std::size_t index) const noexcept;
  [[nodiscard]] std::uint64_t load(std::size_t index) const noexcept {
    return counts_[index].load(std::memory_order_relaxed);
  }
  // Single writer: a relaxed load + store is enough, no read-modify-write (no lock prefix).
  static void add(Counter& c, std::uint64_t n) noexcept {
    c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  void write_hgrm_quiescent(std::ostream& os, double output_scale, int ticks) const;

  // Read on every record(): kept together at the front.
  std::unique_ptr<Counter[]> counts_;
  std::uint64_t highest_ = 0;
  std::uint64_t sub_bucket_mask_ = 0;
  std::size_t sub_bucket_half_count_ = 0;
  int unit_magnitude_ = 0;
  int sub_bucket_half_count_magnitude_ = 0;
  int leading_zero_count_base_ = 0;
  int bucket_count_ = 0;
  Counter total_count_{0};
  Counter saturated_{0};
  Counter max_value_{0};
  Counter min_nonzero_value_{std::numeric_limits<std::uint64_t>::max()};
  // Configuration.
  std::uint64_t lowest_ = 1;
  int significant_digits_ = 3;
  std::size_t counts_length_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Implementation.

namespace detail {

// Java's Formatter "%<width>.<precision>f": the shortest round-trip decimal digits of the value
// (Double.toString's digits), rounded HALF_UP at `precision` decimals, right-aligned.
inline void append_java_fixed(std::string& out, double v, int precision, int width) {
  std::string s;
  if (v < 0) {
    s.push_back('-');
    v = -v;
  }
  char buf[64];
  const auto res = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::scientific);
  std::string_view sci(buf, static_cast<std::size_t>(res.ptr - buf));
  const auto e_pos = sci.find('e');
  std::string digits;
  for (char c : sci.substr(0, e_pos)) {
    if (c != '.') digits.push_back(c);
  }
  int exp10 = 0;
  std::from_chars(sci.data() + e_pos + 1 + (sci[e_pos + 1] == '+' ? 1 : 0), sci.data() + sci.size(),
                  exp10);
  // value = 0.<digits> * 10^point (Java's decExponent).
  int point = exp10 + 1;
  if (v == 0) {
    digits = "0";
    point = 1;
  }
  const int keep = point + precision;
  if (keep >= 0 && keep < static_cast<int>(digits.size())) {
    const bool up = digits[static_cast<std::size_t>(keep)] >= '5';
    digits.resize(static_cast<std::size_t>(keep));
    if (up) {
      int i = keep - 1;
      while (i >= 0 && digits[static_cast<std::size_t>(i)] == '9') {
        digits[static_cast<std::size_t>(i)] = '0';
        --i;
      }
      if (i >= 0) {
        ++digits[static_cast<std::size_t>(i)];
      } else {
        digits.insert(digits.begin(), '1');
        ++point;
      }
    }
  } else if (keep < 0) {
    digits.clear();
  }
  auto digit_at = [&](int i) -> char {
    return (i >= 0 && i < static_cast<int>(digits.size())) ? digits[static_cast<std::size_t>(i)]
                                                           : '0';
  };
  if (point <= 0) {
    s.push_back('0');
  } else {
    for (int i = 0; i < point; ++i) s.push_back(digit_at(i));
  }
  if (precision > 0) {
    s.push_back('.');
    for (int i = 0; i < precision; ++i) s.push_back(digit_at(point + i));
  }
  if (static_cast<int>(s.size()) < width) out.append(static_cast<std::size_t>(width) - s.size(), ' ');
  out += s;
}

inline void append_padded_uint(std::string& out, std::uint64_t v, int width) {
  char buf[24];
  const auto res = std::to_chars(buf, buf + sizeof buf, v);
  const auto len = static_cast<int>(res.ptr - buf);
  if (len < width) out.append(static_cast<std::size_t>(width - len), ' ');
  out.append(buf, static_cast<std::size_t>(len));
}

inline std::string histogram_error(std::string_view what, std::uint64_t value,
                                   std::string_view rule) {
  std::string msg = "tern::Histogram: ";
  msg += what;
  msg += " = ";
  msg += std::to_string(value);
  msg += ' ';
  msg += rule;
  return msg;
}

}  // namespace detail

inline Histogram::Histogram(std::uint64_t lowest, std::uint64_t highest,
                            int significant_digits) {
  if (significant_digits < 1 || significant_digits > 5) {
    throw std::invalid_argument("tern::Histogram: significant_digits = " +
                                std::to_string(significant_digits) + " is not in 1..5");
  }
  if (lowest < 1) {
    throw std::invalid_argument(detail::histogram_error("lowest", lowest, "must be >= 1"));
  }
  if (highest / 2 < lowest) {
    throw std::invalid_argument(detail::histogram_error(
        "highest", highest, "must be >= 2 * lowest (lowest = " + std::to_string(lowest) + ")"));
  }
  std::uint64_t largest_single_unit = 2;
  for (int i = 0; i < significant_digits; ++i) largest_single_unit *= 10;
  const int sub_bucket_count_magnitude =
      static_cast<int>(std::bit_width(largest_single_unit - 1));  // ceil(log2)
  unit_magnitude_ = static_cast<int>(std::bit_width(lowest)) - 1;  // floor(log2)
  if (unit_magnitude_ + sub_bucket_count_magnitude > 63) {
    throw std::invalid_argument(detail::histogram_error(
        "lowest", lowest,
        "is too large for significant_digits = " + std::to_string(significant_digits)));
  }
  lowest_ = lowest;
  highest_ = highest;
  significant_digits_ = significant_digits;
  sub_bucket_half_count_magnitude_ = sub_bucket_count_magnitude - 1;
  const std::uint64_t sub_bucket_count = std::uint64_t{1} << sub_bucket_count_magnitude;
  sub_bucket_half_count_ = static_cast<std::size_t>(sub_bucket_count / 2);
  sub_bucket_mask_ = (sub_bucket_count - 1) << unit_magnitude_;
  leading_zero_count_base_ = 64 - unit_magnitude_ - sub_bucket_half_count_magnitude_ - 1;

  // HdrHistogram's getBucketsNeededToCoverValue.
  std::uint64_t smallest_untrackable = sub_bucket_count << unit_magnitude_;
  int buckets = 1;
  while (smallest_untrackable <= highest) {
    if (smallest_untrackable > std::numeric_limits<std::uint64_t>::max() / 2) {
      ++buckets;
      break;
    }
    smallest_untrackable <<= 1;
    ++buckets;
  }
  bucket_count_ = buckets;
  counts_length_ = static_cast<std::size_t>(buckets + 1) * sub_bucket_half_count_;
  counts_ = std::make_unique<Counter[]>(counts_length_);  // value-initialised: all zero
}

inline Histogram::Histogram(const Histogram& other)
    : Histogram(other.lowest_, other.highest_, other.significant_digits_) {
  std::uint64_t total = 0;
  std::size_t first_nonzero = 0;  // first non-empty index >= 1, 0 if none
  std::size_t last_nonzero = 0;
  bool any = false;
  for (std::size_t i = 0; i < counts_length_; ++i) {
    const std::uint64_t c = other.load(i);
    if (c == 0) continue;
    counts_[i].store(c, std::memory_order_relaxed);
    total += c;
    if (first_nonzero == 0 && i != 0) first_nonzero = i;
    last_nonzero = i;
    any = true;
  }
  total_count_.store(total, std::memory_order_relaxed);
  saturated_.store(other.saturated(), std::memory_order_relaxed);
  max_value_.store(any ? value_from_index(last_nonzero) : 0, std::memory_order_relaxed);
  if (first_nonzero != 0) {
    min_nonzero_value_.store(value_from_index(first_nonzero), std::memory_order_relaxed);
  }
}

inline Histogram& Histogram::operator=(const Histogram& other) {
  if (this != &other) {
    Histogram copy(other);
    *this = std::move(copy);
  }
  return *this;
}

inline Histogram::Histogram(Histogram&& other) noexcept { *this = std::move(other); }

inline Histogram& Histogram::operator=(Histogram&& other) noexcept {
  if (this == &other) return *this;
  counts_ = std::move(other.counts_);
  highest_ = other.highest_;
  sub_bucket_mask_ = other.sub_bucket_mask_;
  sub_bucket_half_count_ = other.sub_bucket_half_count_;
  unit_magnitude_ = other.unit_magnitude_;
  sub_bucket_half_count_magnitude_ = other.sub_bucket_half_count_magnitude_;
  leading_zero_count_base_ = other.leading_zero_count_base_;
  bucket_count_ = other.bucket_count_;
  total_count_.store(other.count(), std::memory_order_relaxed);
  saturated_.store(other.saturated(), std::memory_order_relaxed);
  max_value_.store(other.max_value_.load(std::memory_order_relaxed), std::memory_order_relaxed);
  min_nonzero_value_.store(other.min_nonzero_value_.load(std::memory_order_relaxed),
                           std::memory_order_relaxed);
  lowest_ = other.lowest_;
  significant_digits_ = other.significant_digits_;
  counts_length_ = other.counts_length_;
  other.counts_length_ = 0;
  other.total_count_.store(0, std::memory_order_relaxed);
  return *this;
}

inline void Histogram::record_n(std::uint64_t value, std::uint64_t n) noexcept {
  if (n == 0) return;
  if (value > highest_) [[unlikely]] {
    value = highest_;
    add(saturated_, n);
  }
  add(counts_[counts_index(value)], n);
  add(total_count_, n);
  if (value > max_value_.load(std::memory_order_relaxed)) [[unlikely]] {
    max_value_.store(value, std::memory_order_relaxed);
  }
  if (value < min_nonzero_value_.load(std::memory_order_relaxed) && value != 0) [[unlikely]] {
    min_nonzero_value_.store(value, std::memory_order_relaxed);
  }
}

inline void Histogram::record_corrected(std::uint64_t value,
                                        std::uint64_t expected_interval) noexcept {
  record_n(value, 1);
  const std::uint64_t step = expected_interval;
  if (step == 0 || value < step || value - step < step) return;
  // Synthetic samples m, m - step, ..., down to the last one >= step; each iteration records
  // all of them that share m's bucket with one record_n, so it runs at most once per bucket.
  std::uint64_t m = value - step;
  for (;;) {
    const std::uint64_t left = (m - step) / step + 1;
    std::uint64_t n;
    if (m > highest_) {
      n = std::min(left, (m - highest_ - 1) / step + 1);  // those above highest: clamped
    } else {
      n = (m - std::max(lowest_equivalent(m), step)) / step + 1;
    }
    record_n(m, n);
    if (n >= left) return;
    m -= n * step;
  }
}

inline void Histogram::merge(const Histogram& other) noexcept {
  const std::uint64_t other_saturated = other.saturated();
  const std::size_t len = other.counts_length_;
  for (std::size_t i = 0; i < len; ++i) {
    const std::uint64_t c = other.load(i);
    if (c != 0) record_n(other.value_from_index(i), c);
  }
  add(saturated_, other_saturated);
}

inline void Histogram::reset() noexcept {
  for (std::size_t i = 0; i < counts_length_; ++i) {
    counts_[i].store(0, std::memory_order_relaxed);
  }
  total_count_.store(0, std::memory_order_relaxed);
  saturated_.store(0, std::memory_order_relaxed);
  max_value_.store(0, std::memory_order_relaxed);
  min_nonzero_value_.store(std::numeric_limits<std::uint64_t>::max(), std::memory_order_relaxed);
}

inline std::uint64_t Histogram::value_from_index(std::size_t index) const noexcept {
  int bucket = static_cast<int>(index >> sub_bucket_half_count_magnitude_) - 1;
  std::uint64_t sub = (index & (sub_bucket_half_count_ - 1)) + sub_bucket_half_count_;
  if (bucket < 0) {
    sub -= sub_bucket_half_count_;
    bucket = 0;
  }
  return sub << (bucket + unit_magnitude_);
}

inline std::uint64_t Histogram::lowest_equivalent(std::uint64_t value) const noexcept {
  const int bucket = bucket_index(value);
  const std::uint64_t sub = value >> (bucket + unit_magnitude_);
  return sub << (bucket + unit_magnitude_);
}

inline std::uint64_t Histogram::equivalent_range(std::uint64_t value) const noexcept {
  return std::uint64_t{1} << (unit_magnitude_ + bucket_index(value));
}

inline std::uint64_t Histogram::highest_equivalent(std::uint64_t value) const noexcept {
  return lowest_equivalent(value) + (equivalent_range(value) - 1);  // no overflow at 2^64 - 1
}

inline std::uint64_t Histogram::median_equivalent(std::uint64_t value) const noexcept {
  return lowest_equivalent(value) + (equivalent_range(value) >> 1);
}

inline std::uint64_t Histogram::min() const noexcept {
  if (count() == 0 || load(0) != 0) return 0;
  const std::uint64_t m = min_nonzero_value_.load(std::memory_order_relaxed);
  return m == std::numeric_limits<std::uint64_t>::max() ? 0 : lowest_equivalent(m);
}

inline std::uint64_t Histogram::max() const noexcept {
  if (count() == 0) return 0;
  return highest_equivalent(max_value_.load(std::memory_order_relaxed));
}

inline std::uint64_t Histogram::count_at(std::uint64_t value) const noexcept {
  return load(counts_index(std::min(value, highest_)));
}

inline double Histogram::mean() const noexcept {
  double total_value = 0;
  std::uint64_t total = 0;
  for (std::size_t i = 0; i < counts_length_; ++i) {
    const std::uint64_t c = load(i);
    if (c == 0) continue;
    total_value += static_cast<double>(median_equivalent(value_from_index(i))) *
                   static_cast<double>(c);
    total += c;
  }
  return total == 0 ? 0.0 : total_value / static_cast<double>(total);
}

inline double Histogram::stddev() const noexcept {
  const double m = mean();
  double deviation_total = 0;
  std::uint64_t total = 0;
  for (std::size_t i = 0; i < counts_length_; ++i) {
    const std::uint64_t c = load(i);
    if (c == 0) continue;
    const double d = static_cast<double>(median_equivalent(value_from_index(i))) - m;
    deviation_total += d * d * static_cast<double>(c);
    total += c;
  }
  return total == 0 ? 0.0 : std::sqrt(deviation_total / static_cast<double>(total));
}

inline std::uint64_t Histogram::value_at_percentile(double p) const noexcept {
  if (!(p > 0)) p = 0;  // also NaN
  if (p > 100) p = 100;
  const std::uint64_t total = count();
  if (total == 0) return 0;
  double fractional = p / 100.0 * static_cast<double>(total);
  const double nearest = std::nearbyint(fractional);
  // Decimal percentiles are not exact in binary: a rank that is an integer up to a few ulps
  // of rounding is taken as that integer instead of being rounded up past it.
  if (std::fabs(fractional - nearest) <= fractional * 4e-15) fractional = nearest;
  auto target = static_cast<std::uint64_t>(std::ceil(fractional));
  target = std::clamp<std::uint64_t>(target, 1, total);
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < counts_length_; ++i) {
    cumulative += load(i);  // first reaches target on a non-empty bucket
    if (cumulative >= target) {
      const std::uint64_t v = value_from_index(i);
      return p == 0 ? v : highest_equivalent(v);
    }
  }
  // Only reachable while a writer races with this reader (count() ahead of the buckets).
  for (std::size_t i = counts_length_; i-- > 0;) {
    if (load(i) != 0) return highest_equivalent(value_from_index(i));
  }
  return 0;
}

inline bool Histogram::operator==(const Histogram& other) const noexcept {
  if (lowest_ != other.lowest_ || highest_ != other.highest_ ||
      significant_digits_ != other.significant_digits_ || count() != other.count() ||
      saturated() != other.saturated() || min() != other.min() || max() != other.max()) {
    return false;
  }
  for (std::size_t i = 0; i < counts_length_; ++i) {
    if (load(i) != other.load(i)) return false;
  }
  return true;
}

inline void Histogram::write_hgrm(std::ostream& os, double output_scale,
                                  int ticks_per_half_distance) const {
  if (!(output_scale > 0) || !std::isfinite(output_scale)) {
    throw std::invalid_argument("tern::Histogram::write_hgrm: output_scale = " +
                                std::to_string(output_scale) + " must be positive and finite");
  }
  if (ticks_per_half_distance < 1) {
    throw std::invalid_argument("tern::Histogram::write_hgrm: ticks_per_half_distance = " +
                                std::to_string(ticks_per_half_distance) + " must be >= 1");
  }
  snapshot().write_hgrm_quiescent(os, output_scale, ticks_per_half_distance);
}

// A port of AbstractHistogram.outputPercentileDistribution driving a PercentileIterator.
// Called on a snapshot, so count() equals the sum of the buckets.
inline void Histogram::write_hgrm_quiescent(std::ostream& os, double output_scale,
                                            int ticks) const {
  const int digits = significant_digits_;
  std::string out = "       Value     Percentile TotalCount 1/(1-Percentile)\n\n";
  const std::uint64_t total = count();
  auto row = [&](std::uint64_t value, double level, std::uint64_t cumulative) {
    detail::append_java_fixed(out, static_cast<double>(value) / output_scale, digits, 12);
    out.push_back(' ');
    detail::append_java_fixed(out, level / 100.0, 12, 2);
    out.push_back(' ');
    detail::append_padded_uint(out, cumulative, 10);
    if (level != 100.0) {
      out.push_back(' ');
      detail::append_java_fixed(out, 1.0 / (1.0 - level / 100.0), 2, 14);
    }
    out.push_back('\n');
  };
  if (total > 0) {
    double level = 0.0;  // percentileLevelToIterateTo
    bool reached_last = false;
    std::size_t index = 0;
    std::uint64_t cumulative = 0;
    bool fresh = true;
    for (;;) {
      // PercentileIterator.hasNext: one extra step to 100% after the last recorded value.
      if (cumulative >= total) {
        if (reached_last) break;
        level = 100.0;
        reached_last = true;
      }
      bool emitted = false;
      while (index < counts_length_) {
        const std::uint64_t c = load(index);
        if (fresh) {
          cumulative += c;
          fresh = false;
        }
        if (c != 0 &&
            100.0 * static_cast<double>(cumulative) / static_cast<double>(total) >= level) {
          row(highest_equivalent(value_from_index(index)), level, cumulative);
          // incrementIterationLevel: fixed-size ticks within each half of the distance to 100%.
          if (level >= 100.0) {
            level = std::numeric_limits<double>::infinity();  // what Java's arithmetic yields
          } else {
            const double halvings = std::log(100.0 / (100.0 - level)) / std::log(2.0);
            const auto e = static_cast<std::int64_t>(halvings);  // finite: level < 100
            const double reporting_ticks =
                static_cast<double>(ticks) * std::ldexp(1.0, static_cast<int>(e) + 1);
            level += 100.0 / reporting_ticks;
          }
          emitted = true;
          break;
        }
        ++index;
        fresh = true;
      }
      if (!emitted) break;
    }
  }
  out += "#[Mean    = ";
  detail::append_java_fixed(out, mean() / output_scale, digits, 12);
  out += ", StdDeviation   = ";
  detail::append_java_fixed(out, stddev() / output_scale, digits, 12);
  out += "]\n#[Max     = ";
  detail::append_java_fixed(out, static_cast<double>(max()) / output_scale, digits, 12);
  out += ", Total count    = ";
  detail::append_padded_uint(out, total, 12);
  out += "]\n#[Buckets = ";
  detail::append_padded_uint(out, static_cast<std::uint64_t>(bucket_count_), 12);
  out += ", SubBuckets     = ";
  detail::append_padded_uint(out, sub_bucket_count(), 12);
  out += "]\n";
  os.write(out.data(), static_cast<std::streamsize>(out.size()));
}

inline std::vector<HgrmRow> Histogram::read_hgrm(std::istream& is) {
  std::vector<HgrmRow> rows;
  std::string line;
  std::size_t line_no = 0;
  auto fail = [&](std::string_view why) {
    throw std::runtime_error("tern::Histogram::read_hgrm: line " + std::to_string(line_no) +
                             ": " + std::string(why) + ": \"" + line + "\"");
  };
  while (std::getline(is, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    std::vector<std::string_view> fields;
    std::string_view rest(line);
    while (!rest.empty()) {
      const auto start = rest.find_first_not_of(" \t");
      if (start == std::string_view::npos) break;
      rest.remove_prefix(start);
      const auto end = std::min(rest.find_first_of(" \t"), rest.size());
      fields.push_back(rest.substr(0, end));
      rest.remove_prefix(end);
    }
    if (fields.empty() || fields[0].front() == '#' || fields[0] == "Value") continue;
    if (fields.size() != 3 && fields.size() != 4) fail("expected 3 or 4 fields");
    auto parse_double = [&](std::string_view f, std::string_view name) {
      double d = 0;
      const auto r = std::from_chars(f.data(), f.data() + f.size(), d);
      if (r.ec != std::errc{} || r.ptr != f.data() + f.size()) {
        fail("bad " + std::string(name) + " '" + std::string(f) + "'");
      }
      return d;
    };
    HgrmRow r{};
    r.value = parse_double(fields[0], "value");
    r.percentile = parse_double(fields[1], "percentile");
    if (!(r.percentile >= 0.0 && r.percentile <= 1.0)) fail("percentile outside [0, 1]");
    const auto res =
        std::from_chars(fields[2].data(), fields[2].data() + fields[2].size(), r.total_count);
    if (res.ec != std::errc{} || res.ptr != fields[2].data() + fields[2].size()) {
      fail("bad total count '" + std::string(fields[2]) + "'");
    }
    if (fields.size() == 4) parse_double(fields[3], "1/(1-percentile)");
    rows.push_back(r);
  }
  return rows;
}

}  // namespace tern
