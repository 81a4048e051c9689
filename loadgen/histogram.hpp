// A log-linear latency histogram with HdrHistogram's memory layout (Gil Tene's HdrHistogram,
// as in HdrHistogram_c's hdr_histogram.c).
//
// Values are non-negative integers (the load generator records microseconds). With S significant
// digits, every value v is kept with a relative error below 10^-S: the range is split into
// power-of-two "buckets", each divided linearly into sub-buckets, and the bucket of v follows
// from the number of leading zero bits of v, so record() is a handful of integer operations on
// a counts array allocated once by the constructor: O(1), no allocation, no floating point.
//
// Layout (identical to HdrHistogram, so numbers and merges behave the same):
//   sub_bucket_count = 2^ceil(log2(2 * 10^S))       (2048 for S = 3)
//   bucket 0 covers [0, sub_bucket_count) << unit_magnitude at full resolution; bucket b > 0
//   covers [sub_bucket_count/2, sub_bucket_count) << (b + unit_magnitude), i.e. only its upper
//   half, because the lower half is already covered by bucket b - 1.
//
// Histograms are plain values: copy them per thread, merge() them afterwards.
#pragma once

#include <bit>
#include <cstdint>
#include <vector>

namespace cmbench {

class Histogram {
 public:
  // lowest: the smallest value that must be distinguishable from 0 (>= 1);
  // highest: the largest value that can be recorded (>= 2 * lowest);
  // significant_digits: 1..5. Throws std::invalid_argument on a bad configuration.
  explicit Histogram(std::int64_t lowest = 1, std::int64_t highest = 100'000'000,
                     int significant_digits = 3);

  // Records value (count times). Returns false, recording nothing, when value is negative or
  // above highest_trackable().
  bool record(std::int64_t value) noexcept { return record_n(value, 1); }
  bool record_n(std::int64_t value, std::int64_t count) noexcept {
    if (value < 0 || value > highest_ || count <= 0) return false;
    const std::int32_t index = counts_index(value);
    if (static_cast<std::uint32_t>(index) >= static_cast<std::uint32_t>(counts_.size())) {
      return false;
    }
    counts_[static_cast<std::size_t>(index)] += count;
    total_ += count;
    sum_ += static_cast<double>(value) * static_cast<double>(count);
    if (value < min_) min_ = value;
    if (value > max_) max_ = value;
    return true;
  }

  // Adds every value recorded in other. Same layout: counts are added index by index; another
  // layout: each bucket is re-recorded at its value (as hdr_add does). Returns the number of
  // values that did not fit (0 for the same layout).
  std::int64_t merge(const Histogram& other);
  void reset() noexcept;

  std::int64_t count() const noexcept { return total_; }
  // Exact smallest / largest recorded value (0 when empty).
  std::int64_t min() const noexcept { return total_ ? min_ : 0; }
  std::int64_t max() const noexcept { return total_ ? max_ : 0; }
  // Exact mean of the recorded values (0 when empty).
  double mean() const noexcept { return total_ ? sum_ / static_cast<double>(total_) : 0.0; }
  // Standard deviation computed from bucket midpoints around the exact mean.
  double stddev() const noexcept;
  // The value at percentile p (0..100), HdrHistogram's definition: the highest value equivalent
  // to the bucket holding the ceil-rounded p-th share of the samples, clamped into [min, max].
  std::int64_t value_at_percentile(double p) const noexcept;
  // How many recorded values are equivalent to value (share its bucket).
  std::int64_t count_at(std::int64_t value) const noexcept;
  // Number of samples whose bucket lies within [lo, hi] (for wrk's "+/- Stdev" column).
  std::int64_t count_between(std::int64_t lo, std::int64_t hi) const noexcept;

  std::int64_t lowest_equivalent(std::int64_t value) const noexcept {
    const std::int32_t b = bucket_index(value);
    return value_from(b, sub_bucket_index(value, b));
  }
  std::int64_t size_of_equivalent_range(std::int64_t value) const noexcept {
    const std::int32_t b = bucket_index(value);
    const std::int32_t sub = sub_bucket_index(value, b);
    const std::int32_t adjusted = sub >= sub_bucket_count_ ? b + 1 : b;
    return std::int64_t{1} << (unit_magnitude_ + adjusted);
  }
  std::int64_t highest_equivalent(std::int64_t value) const noexcept {
    return lowest_equivalent(value) + size_of_equivalent_range(value) - 1;
  }
  std::int64_t median_equivalent(std::int64_t value) const noexcept {
    return lowest_equivalent(value) + (size_of_equivalent_range(value) >> 1);
  }
  bool equivalent(std::int64_t a, std::int64_t b) const noexcept {
    return lowest_equivalent(a) == lowest_equivalent(b);
  }

  // Calls f(value, count) for every non-empty bucket in ascending order, where value is the
  // highest value equivalent to the bucket (HdrHistogram's reporting convention; recording it
  // again lands in the same bucket).
  template <class F>
  void for_each(F&& f) const {
    std::int64_t seen = 0;
    for (std::size_t i = 0; i < counts_.size() && seen < total_; ++i) {
      const std::int64_t n = counts_[i];
      if (n == 0) continue;
      seen += n;
      f(highest_equivalent(value_at_index(static_cast<std::int32_t>(i))), n);
    }
  }

  std::int64_t lowest_trackable() const noexcept { return lowest_; }
  std::int64_t highest_trackable() const noexcept { return highest_; }
  int significant_digits() const noexcept { return significant_digits_; }
  int bucket_count() const noexcept { return bucket_count_; }
  int sub_bucket_count() const noexcept { return sub_bucket_count_; }
  std::size_t counts_length() const noexcept { return counts_.size(); }
  bool same_layout(const Histogram& o) const noexcept {
    return unit_magnitude_ == o.unit_magnitude_ && sub_bucket_count_ == o.sub_bucket_count_ &&
           counts_.size() == o.counts_.size();
  }

  // The value at the start of the bucket at counts index i (hdr_value_at_index).
  std::int64_t value_at_index(std::int32_t i) const noexcept {
    std::int32_t b = (i >> sub_bucket_half_count_magnitude_) - 1;
    std::int32_t sub = (i & (sub_bucket_half_count_ - 1)) + sub_bucket_half_count_;
    if (b < 0) {
      sub -= sub_bucket_half_count_;
      b = 0;
    }
    return value_from(b, sub);
  }

 private:
  // Bucket from the leading-zero count: the position of the highest set bit of value, with the
  // sub-bucket mask OR-ed in so that every value below sub_bucket_count lands in bucket 0.
  std::int32_t bucket_index(std::int64_t value) const noexcept {
    const int pow2ceiling =
        64 - std::countl_zero(static_cast<std::uint64_t>(value | sub_bucket_mask_));
    return pow2ceiling - unit_magnitude_ - (sub_bucket_half_count_magnitude_ + 1);
  }
  std::int32_t sub_bucket_index(std::int64_t value, std::int32_t bucket) const noexcept {
    return static_cast<std::int32_t>(value >> (bucket + unit_magnitude_));
  }
  std::int32_t counts_index(std::int64_t value) const noexcept {
    const std::int32_t b = bucket_index(value);
    const std::int32_t sub = sub_bucket_index(value, b);
    // (b + 1) * half_count + (sub - half_count): the upper half of bucket b follows bucket b-1.
    return ((b + 1) << sub_bucket_half_count_magnitude_) + (sub - sub_bucket_half_count_);
  }
  std::int64_t value_from(std::int32_t bucket, std::int32_t sub) const noexcept {
    return static_cast<std::int64_t>(sub) << (bucket + unit_magnitude_);
  }

  std::int64_t lowest_;
  std::int64_t highest_;
  int significant_digits_;
  std::int32_t unit_magnitude_;
  std::int32_t sub_bucket_half_count_magnitude_;
  std::int32_t sub_bucket_count_;
  std::int32_t sub_bucket_half_count_;
  std::int64_t sub_bucket_mask_;
  std::int32_t bucket_count_;
  std::vector<std::int64_t> counts_;
  std::int64_t total_ = 0;
  double sum_ = 0.0;
  std::int64_t min_ = INT64_MAX;
  std::int64_t max_ = 0;
};

}  // namespace cmbench
