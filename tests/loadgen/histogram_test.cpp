// The HdrHistogram-layout histogram against exact answers: percentiles of 10^6 random samples
// from several distributions within 0.1 %, merge equal to recording everything in one, and
// the 1 us .. 100 s range.
#include "histogram.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using cmbench::Histogram;

constexpr std::int64_t kHighest = 100'000'000;  // 100 s in microseconds
constexpr std::size_t kSamples = 1'000'000;

// The exact value at percentile p with HdrHistogram's rank rule: the ceil-rounded p-th share.
std::int64_t exact_percentile(const std::vector<std::int64_t>& sorted, double p) {
  auto rank = static_cast<std::int64_t>(p / 100.0 * static_cast<double>(sorted.size()) + 0.5);
  rank = std::clamp<std::int64_t>(rank, 1, static_cast<std::int64_t>(sorted.size()));
  return sorted[static_cast<std::size_t>(rank - 1)];
}

std::vector<std::int64_t> draw(const std::function<double(std::mt19937_64&)>& dist, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<std::int64_t> v(kSamples);
  for (auto& x : v) {
    x = std::clamp<std::int64_t>(static_cast<std::int64_t>(std::llround(dist(rng))), 1, kHighest);
  }
  return v;
}

struct Distribution {
  std::string name;
  std::function<double(std::mt19937_64&)> sample;
};

std::vector<Distribution> distributions() {
  return {
      {"uniform 1us..100s", [](std::mt19937_64& r) { return std::uniform_real_distribution<double>(1, 1e8)(r); }},
      {"exponential mean 250us", [](std::mt19937_64& r) { return std::exponential_distribution<double>(1 / 250.0)(r); }},
      {"lognormal (latency-like)", [](std::mt19937_64& r) { return std::lognormal_distribution<double>(6.0, 1.5)(r); }},
      {"pareto heavy tail", [](std::mt19937_64& r) {
         const double u = std::uniform_real_distribution<double>(0, 1)(r);
         return 50.0 / std::pow(1.0 - u, 1.0 / 1.1);
       }},
      {"bimodal 80us / 1s", [](std::mt19937_64& r) {
         return std::bernoulli_distribution(0.9)(r) ? std::normal_distribution<double>(80, 5)(r)
                                                    : std::normal_distribution<double>(1e6, 1e5)(r);
       }},
  };
}

TEST(Histogram, PercentilesMatchExactWithinOneThousandth) {
  const double percentiles[] = {0.0, 1.0, 10.0, 25.0, 50.0, 75.0, 90.0, 99.0, 99.9, 99.99, 99.999, 100.0};
  std::uint64_t seed = 42;
  for (const Distribution& d : distributions()) {
    std::vector<std::int64_t> samples = draw(d.sample, seed++);
    Histogram h(1, kHighest, 3);
    for (std::int64_t v : samples) ASSERT_TRUE(h.record(v));
    std::sort(samples.begin(), samples.end());
    ASSERT_EQ(h.count(), static_cast<std::int64_t>(kSamples));
    EXPECT_EQ(h.min(), samples.front()) << d.name;
    EXPECT_EQ(h.max(), samples.back()) << d.name;
    for (double p : percentiles) {
      const auto exact = static_cast<double>(exact_percentile(samples, p));
      const auto got = static_cast<double>(h.value_at_percentile(p));
      EXPECT_LE(std::fabs(got - exact) / exact, 0.001) << d.name << " p" << p << ": exact " << exact << " got " << got;
    }
    double sum = 0;
    for (std::int64_t v : samples) sum += static_cast<double>(v);
    EXPECT_NEAR(h.mean(), sum / static_cast<double>(kSamples), 1e-6 * sum / static_cast<double>(kSamples)) << d.name;
  }
}

TEST(Histogram, EveryValueKeepsThreeSignificantDigits) {
  Histogram h(1, kHighest, 3);
  std::mt19937_64 rng(7);
  for (int i = 0; i < 200'000; ++i) {
    const std::int64_t v = std::uniform_int_distribution<std::int64_t>(0, kHighest)(rng);
    const std::int64_t lo = h.lowest_equivalent(v), hi = h.highest_equivalent(v);
    ASSERT_LE(lo, v);
    ASSERT_GE(hi, v);
    ASSERT_LE(static_cast<double>(hi - lo), std::max(0.0, static_cast<double>(v) / 1000.0)) << v;
  }
  // Below 2048 every integer has its own bucket.
  for (std::int64_t v = 0; v < 2048; ++v) ASSERT_EQ(h.highest_equivalent(v), v);
}

TEST(Histogram, LayoutIsHdrHistogramsForThreeDigits) {
  Histogram h(1, kHighest, 3);
  EXPECT_EQ(h.sub_bucket_count(), 2048);
  // 2048 << 16 > 1e8 >= 2048 << 15: 17 buckets, (17 + 1) * 1024 counters (hdr_calculate_bucket_config).
  EXPECT_EQ(h.bucket_count(), 17);
  EXPECT_EQ(h.counts_length(), 18u * 1024u);
  EXPECT_EQ(h.value_at_index(1024), 1024);
  EXPECT_EQ(h.value_at_index(2048), 2048);  // bucket 1 starts at its upper half
  EXPECT_EQ(h.value_at_index(2049), 2050);
}

TEST(Histogram, MergeEqualsRecordingEverything) {
  std::vector<std::int64_t> a = draw([](std::mt19937_64& r) { return std::lognormal_distribution<double>(5, 1)(r); }, 1);
  std::vector<std::int64_t> b = draw([](std::mt19937_64& r) { return std::exponential_distribution<double>(1e-5)(r); }, 2);
  Histogram ha, hb, all, merged;
  for (auto v : a) {
    ha.record(v);
    all.record(v);
  }
  for (auto v : b) {
    hb.record(v);
    all.record(v);
  }
  EXPECT_EQ(merged.merge(ha), 0);
  EXPECT_EQ(merged.merge(hb), 0);
  EXPECT_EQ(merged.count(), all.count());
  EXPECT_EQ(merged.min(), all.min());
  EXPECT_EQ(merged.max(), all.max());
  EXPECT_NEAR(merged.mean(), all.mean(), 1e-9 * all.mean());
  std::vector<std::pair<std::int64_t, std::int64_t>> m, r;
  merged.for_each([&](std::int64_t v, std::int64_t n) { m.emplace_back(v, n); });
  all.for_each([&](std::int64_t v, std::int64_t n) { r.emplace_back(v, n); });
  EXPECT_EQ(m, r);
  for (double p : {50.0, 99.0, 99.99}) EXPECT_EQ(merged.value_at_percentile(p), all.value_at_percentile(p));
}

TEST(Histogram, MergeAcrossLayoutsKeepsCounts) {
  Histogram coarse(1, kHighest, 2), fine(1, kHighest, 3);
  for (std::int64_t v = 1; v <= 100'000; v += 7) fine.record(v);
  EXPECT_EQ(coarse.merge(fine), 0);
  EXPECT_EQ(coarse.count(), fine.count());
  EXPECT_EQ(coarse.max(), fine.max());
  EXPECT_LE(std::fabs(static_cast<double>(coarse.value_at_percentile(50) - fine.value_at_percentile(50))),
            0.01 * static_cast<double>(fine.value_at_percentile(50)));
}

TEST(Histogram, CoversOneMicrosecondToHundredSeconds) {
  Histogram h(1, kHighest, 3);
  EXPECT_TRUE(h.record(1));
  EXPECT_TRUE(h.record(kHighest));
  EXPECT_EQ(h.min(), 1);
  EXPECT_EQ(h.max(), kHighest);
  EXPECT_EQ(h.value_at_percentile(0), 1);
  EXPECT_EQ(h.value_at_percentile(100), kHighest);
  EXPECT_EQ(h.count_at(kHighest), 1);
  EXPECT_FALSE(h.record(kHighest * 2));  // beyond the configured range: refused, not wrapped
  EXPECT_FALSE(h.record(-1));
  EXPECT_EQ(h.count(), 2);
  EXPECT_TRUE(h.record(0));  // sub-microsecond latencies round to 0 and still count
  EXPECT_EQ(h.min(), 0);
}

TEST(Histogram, RecordNAndReset) {
  Histogram h;
  h.record_n(500, 10);
  h.record(1000);
  EXPECT_EQ(h.count(), 11);
  EXPECT_EQ(h.count_at(500), 10);
  EXPECT_EQ(h.value_at_percentile(50), 500);
  EXPECT_EQ(h.value_at_percentile(100), 1000);
  h.reset();
  EXPECT_EQ(h.count(), 0);
  EXPECT_EQ(h.value_at_percentile(99), 0);
  EXPECT_EQ(h.min(), 0);
  EXPECT_EQ(h.max(), 0);
}

TEST(Histogram, RejectsBadConfiguration) {
  EXPECT_THROW(Histogram(0, 100, 3), std::invalid_argument);
  EXPECT_THROW(Histogram(10, 15, 3), std::invalid_argument);
  EXPECT_THROW(Histogram(1, 100, 6), std::invalid_argument);
  EXPECT_THROW(Histogram(1, 100, 0), std::invalid_argument);
}

}  // namespace
