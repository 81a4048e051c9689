// Configuration, merging and queries of the HdrHistogram-layout histogram (see histogram.hpp).
#include "histogram.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace cmbench {
namespace {

// ceil(log2(x)) for x >= 1, exactly (HdrHistogram computes it with floating point).
int ceil_log2(std::int64_t x) {
  return x <= 1 ? 0 : 64 - std::countl_zero(static_cast<std::uint64_t>(x - 1));
}

// floor(log2(x)) for x >= 1.
int floor_log2(std::int64_t x) { return 63 - std::countl_zero(static_cast<std::uint64_t>(x)); }

}  // namespace

Histogram::Histogram(std::int64_t lowest, std::int64_t highest, int significant_digits)
    : lowest_(lowest), highest_(highest), significant_digits_(significant_digits) {
  if (lowest < 1 || significant_digits < 1 || significant_digits > 5 || highest < 2 * lowest) {
    throw std::invalid_argument("histogram: need lowest >= 1, highest >= 2 * lowest, 1..5 digits");
  }
  std::int64_t largest_single_unit = 2;  // 2 * 10^digits: values kept at unit resolution
  for (int i = 0; i < significant_digits; ++i) largest_single_unit *= 10;
  const int sub_bucket_count_magnitude = ceil_log2(largest_single_unit);
  sub_bucket_half_count_magnitude_ = std::max(sub_bucket_count_magnitude, 1) - 1;
  unit_magnitude_ = floor_log2(lowest);
  if (unit_magnitude_ + sub_bucket_half_count_magnitude_ > 61) {
    throw std::invalid_argument("histogram: lowest value too large for this precision");
  }
  sub_bucket_count_ = std::int32_t{1} << (sub_bucket_half_count_magnitude_ + 1);
  sub_bucket_half_count_ = sub_bucket_count_ / 2;
  sub_bucket_mask_ = static_cast<std::int64_t>(sub_bucket_count_ - 1) << unit_magnitude_;

  // Buckets needed so that the smallest untrackable value exceeds highest.
  std::int64_t smallest_untrackable = static_cast<std::int64_t>(sub_bucket_count_) << unit_magnitude_;
  bucket_count_ = 1;
  while (smallest_untrackable <= highest) {
    if (smallest_untrackable > INT64_MAX / 2) {
      ++bucket_count_;
      break;
    }
    smallest_untrackable <<= 1;
    ++bucket_count_;
  }
  counts_.assign(static_cast<std::size_t>(bucket_count_ + 1) *
                     static_cast<std::size_t>(sub_bucket_half_count_),
                 0);
}

std::int64_t Histogram::merge(const Histogram& other) {
  if (other.total_ == 0) return 0;
  std::int64_t dropped = 0;
  if (same_layout(other)) {
    for (std::size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
    total_ += other.total_;
    sum_ += other.sum_;
    min_ = std::min(min_, other.min_);
    max_ = std::max(max_, other.max_);
    return 0;
  }
  // Different layout: re-record each bucket at its lowest value, then keep the exact extremes
  // and sum of what fitted.
  const double sum_before = sum_;
  other.for_each([&](std::int64_t value, std::int64_t n) {
    if (!record_n(other.lowest_equivalent(value), n)) dropped += n;
  });
  if (dropped == 0) {
    sum_ = sum_before + other.sum_;
    min_ = std::min(min_, other.min_);
    max_ = std::max(max_, other.max_);
  }
  return dropped;
}

void Histogram::reset() noexcept {
  std::fill(counts_.begin(), counts_.end(), 0);
  total_ = 0;
  sum_ = 0.0;
  min_ = INT64_MAX;
  max_ = 0;
}

double Histogram::stddev() const noexcept {
  if (total_ == 0) return 0.0;
  const double m = mean();
  double acc = 0.0;
  for_each([&](std::int64_t value, std::int64_t n) {
    const double dev = static_cast<double>(median_equivalent(value)) - m;
    acc += dev * dev * static_cast<double>(n);
  });
  return std::sqrt(acc / static_cast<double>(total_));
}

std::int64_t Histogram::value_at_percentile(double p) const noexcept {
  if (total_ == 0) return 0;
  p = std::clamp(p, 0.0, 100.0);
  std::int64_t rank = static_cast<std::int64_t>(p / 100.0 * static_cast<double>(total_) + 0.5);
  rank = std::max<std::int64_t>(rank, 1);
  std::int64_t cumulative = 0;
  std::int64_t value = max_;
  for (std::size_t i = 0; i < counts_.size(); ++i) {
    cumulative += counts_[i];
    if (cumulative >= rank) {
      const std::int64_t at = value_at_index(static_cast<std::int32_t>(i));
      value = p == 0.0 ? lowest_equivalent(at) : highest_equivalent(at);
      break;
    }
  }
  // The true value lies in its bucket and in [min, max]; clamping keeps the error bound and
  // avoids reporting a p99.99 above the exact maximum.
  return std::clamp(value, min_, max_);
}

std::int64_t Histogram::count_at(std::int64_t value) const noexcept {
  if (value < 0 || value > highest_) return 0;
  const std::int32_t index = counts_index(value);
  if (static_cast<std::uint32_t>(index) >= static_cast<std::uint32_t>(counts_.size())) return 0;
  return counts_[static_cast<std::size_t>(index)];
}

std::int64_t Histogram::count_between(std::int64_t lo, std::int64_t hi) const noexcept {
  std::int64_t n = 0;
  for_each([&](std::int64_t value, std::int64_t c) {
    if (value >= lo && lowest_equivalent(value) <= hi) n += c;
  });
  return n;
}

}  // namespace cmbench
