// Output of a run: the JSON result of DESIGN.md section 4, the wrk-like summary, and the
// HdrHistogram percentile text (--hgrm).
#pragma once

#include <cstdio>
#include <nlohmann/json.hpp>
#include <ostream>

#include "engine.hpp"
#include "options.hpp"
#include "stats.hpp"

namespace cmbench::loadgen {

struct Result {
  explicit Result(const Config& config) : cfg(config) {}
  const Config& cfg;
  Stats stats;
  double duration_s = 0;  // the measured window actually run
  double cpu_user_s = 0;  // loadgen's own CPU time during the window (getrusage)
  double cpu_sys_s = 0;
  IdleReport idle;
  double sent_rate = 0;   // requests of the window written per second (open loop)
  bool generator_limited = false;
};

// Open loop: lag p99 above 1 ms or fewer than 98 % of the target rate written.
bool is_generator_limited(const Config& cfg, const Stats& s, double duration_s);

nlohmann::ordered_json to_json(const Result& r);
// "Running 10s test @ URL" and the set-up line, printed before the run like wrk does.
void print_banner(const Config& cfg, std::FILE* out);
void print_summary(const Result& r, std::FILE* out);
// HdrHistogram's classic percentile distribution (outputPercentileDistribution, 5 ticks per
// half distance), values in milliseconds, readable by HdrHistogram's plotFiles.html.
void write_hgrm(const Histogram& h, std::ostream& out);

}  // namespace cmbench::loadgen
