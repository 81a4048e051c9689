// Output of a run: the JSON result of docs/architecture.md §4, the wrk-like summary, and the
// HdrHistogram percentile text (--hgrm).
#pragma once

#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <ostream>

#include "engine.hpp"
#include "options.hpp"
#include "stats.hpp"

namespace cmbench::loadgen {

// What made an open-loop generator late, if anything. Only the generator's own lateness (lag)
// and its own CPU count: requests that waited for their connection because the server had not
// answered yet (wait) are the server's latency, never the generator's fault.
struct GeneratorLimit {
  bool lag = false;  // lag p99 above kMaxLagP99Us
  // A thread was on a CPU, or runnable and waiting for one, at least kMaxCpuShare of the time:
  // it never ran out of work, so it read answers and sent requests as late as its CPU allowed.
  // (Such lateness can pass for service time and wait, as only the kernel saw the answer come.)
  bool cpu = false;
  bool any() const noexcept { return lag || cpu; }
};
constexpr std::int64_t kMaxLagP99Us = 1000;
constexpr double kMaxCpuShare = 0.95;

struct Result {
  explicit Result(const Config& config) : cfg(config) {}
  const Config& cfg;
  Stats stats;
  double duration_s = 0;  // the measured window actually run
  double cpu_user_s = 0;  // loadgen's own CPU time during the window (getrusage)
  double cpu_sys_s = 0;
  double cpu_wall_s = 0;  // the time that CPU was measured over (the window and its drain)
  double busy_share = -1; // the busiest thread's Worker::busy_share() (-1: unknown)
  double poll_idle_s = 0; // of cpu_user_s + cpu_sys_s: polling with nothing due (pacing, not work)
  IdleReport idle;
  double sent_rate = 0;   // requests of the window written per second (open loop)
  bool generator_limited = false;
  GeneratorLimit limit;
  // The CPU spent on the load, without the empty pacing polls (taken from system time first:
  // an empty epoll_wait is spent in the kernel).
  double work_sys_s() const noexcept { return std::max(0.0, cpu_sys_s - poll_idle_s); }
  double work_user_s() const noexcept {
    return std::max(0.0, cpu_user_s - std::max(0.0, poll_idle_s - cpu_sys_s));
  }
  double work_s() const noexcept { return work_user_s() + work_sys_s(); }
  // Share of its threads' time the generator was working (1 = every thread always busy).
  double cpu_share() const noexcept {
    return cpu_wall_s > 0 ? work_s() / (cpu_wall_s * cfg.threads) : 0.0;
  }
};

// cpu_s: the generator's user + system CPU seconds over wall_s seconds, less its idle polling; busy_share: the busiest
// thread's share of time on or waiting for a CPU (-1: unknown).
GeneratorLimit generator_limit(const Config& cfg, const Stats& s, double wall_s, double cpu_s,
                               double busy_share = -1);

nlohmann::ordered_json to_json(const Result& r);
// "Running 10s test @ URL" and the set-up line, printed before the run like wrk does.
void print_banner(const Config& cfg, std::FILE* out);
void print_summary(const Result& r, std::FILE* out);
// HdrHistogram's classic percentile distribution (outputPercentileDistribution, 5 ticks per
// half distance), values in milliseconds, readable by HdrHistogram's plotFiles.html.
void write_hgrm(const Histogram& h, std::ostream& out);

}  // namespace cmbench::loadgen
