// One clock for everything: CLOCK_MONOTONIC in nanoseconds (never wall time, which can jump).
#pragma once

#include <time.h>

#include <cstdint>

namespace cmbench::loadgen {

inline std::int64_t mono_ns() noexcept {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

constexpr std::int64_t kNsPerSec = 1'000'000'000;
constexpr std::int64_t kNsPerMs = 1'000'000;
constexpr std::int64_t kNsPerUs = 1'000;

}  // namespace cmbench::loadgen
