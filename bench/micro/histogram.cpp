// The load generator's latency histogram (loadgen/histogram.hpp): nanoseconds to record one
// value. Values are latencies spread log-uniformly over 10 us .. 100 ms, precomputed, so the
// loop measures record() and not a random number generator.
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "histogram.hpp"

namespace {

std::vector<std::int64_t> latencies() {
  std::mt19937_64 rng(42);
  std::uniform_real_distribution<double> exponent(1.0, 5.0);  // 10^1 .. 10^5 us
  std::vector<std::int64_t> v(4096);
  for (auto& x : v) x = static_cast<std::int64_t>(std::pow(10.0, exponent(rng)));
  return v;
}

void Record(benchmark::State& state) {
  const auto values = latencies();
  cmbench::Histogram h(1, 100'000'000, 3);
  std::size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(h.record(values[i]));
    i = (i + 1) & (values.size() - 1);
  }
  state.SetItemsProcessed(state.iterations());
  if (h.count() != static_cast<std::int64_t>(state.iterations())) {
    state.SkipWithError("histogram lost values");
  }
}

BENCHMARK(Record)->Name("histogram/record");

}  // namespace
