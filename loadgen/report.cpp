// JSON, human summary and --hgrm output (see report.hpp).
#include "report.hpp"

#include <cmath>
#include <string>
#include <utility>
#include <vector>

namespace cmbench::loadgen {
namespace {

using ordered_json = nlohmann::ordered_json;

ordered_json summary_json(const Histogram& h) {
  return ordered_json{
      {"min", h.min()},
      {"mean", static_cast<std::int64_t>(std::llround(h.mean()))},
      {"p50", h.value_at_percentile(50)},
      {"p90", h.value_at_percentile(90)},
      {"p99", h.value_at_percentile(99)},
      {"p999", h.value_at_percentile(99.9)},
      {"p9999", h.value_at_percentile(99.99)},
      {"max", h.max()},
  };
}

// wrk's units: 123.45us, 1.23ms, 2.00s, 1.50m.
std::string format_us(double us) {
  char buf[32];
  if (us < 1000) std::snprintf(buf, sizeof buf, "%.2fus", us);
  else if (us < 1e6) std::snprintf(buf, sizeof buf, "%.2fms", us / 1e3);
  else if (us < 60e6) std::snprintf(buf, sizeof buf, "%.2fs", us / 1e6);
  else std::snprintf(buf, sizeof buf, "%.2fm", us / 60e6);
  return buf;
}

std::string format_metric(double n) {
  char buf[32];
  if (n < 1e3) std::snprintf(buf, sizeof buf, "%.2f", n);
  else if (n < 1e6) std::snprintf(buf, sizeof buf, "%.2fk", n / 1e3);
  else if (n < 1e9) std::snprintf(buf, sizeof buf, "%.2fM", n / 1e6);
  else std::snprintf(buf, sizeof buf, "%.2fG", n / 1e9);
  return buf;
}

std::string format_bytes(double n) {
  const char* units[] = {"B", "KB", "MB", "GB", "TB"};
  int u = 0;
  while (n >= 1024 && u < 4) {
    n /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f%s", n, units[u]);
  return buf;
}

void stats_row(std::FILE* out, const char* name, const Histogram& h) {
  const double mean = h.mean(), sd = h.stddev();
  const double within = h.count() ? 100.0 * static_cast<double>(h.count_between(
                                                static_cast<std::int64_t>(mean - sd),
                                                static_cast<std::int64_t>(std::ceil(mean + sd)))) /
                                        static_cast<double>(h.count())
                                  : 0.0;
  std::fprintf(out, "    %-8s %10s %10s %10s %9.2f%%\n", name, format_us(mean).c_str(), format_us(sd).c_str(),
               format_us(static_cast<double>(h.max())).c_str(), within);
}

void distribution(std::FILE* out, const char* title, const Histogram& h) {
  std::fprintf(out, "  %s\n", title);
  for (double p : {50.0, 75.0, 90.0, 99.0, 99.9, 99.99, 99.999, 100.0}) {
    std::fprintf(out, "    %7.3f%% %10s\n", p, format_us(static_cast<double>(h.value_at_percentile(p))).c_str());
  }
}

}  // namespace

// The achieved send rate is deliberately not a criterion: requests queued behind a server that
// has not answered are sent late too, and that is the server's knee (wait_us), which is data.
GeneratorLimit generator_limit(const Config& cfg, const Stats& s, double wall_s, double cpu_s, double busy_share) {
  GeneratorLimit g;
  if (!cfg.open_loop() || wall_s <= 0) return g;
  g.lag = s.lag.count() > 0 && s.lag.value_at_percentile(99) > kMaxLagP99Us;
  g.cpu = cpu_s >= kMaxCpuShare * wall_s * cfg.threads || busy_share >= kMaxCpuShare;
  return g;
}

ordered_json to_json(const Result& r) {
  const Stats& s = r.stats;
  const bool open = r.cfg.open_loop();
  ordered_json errors = ordered_json::object();
  for (std::size_t i = 0; i < kErrKinds; ++i) errors[std::string(kErrNames[i])] = s.errors[i];
  ordered_json buckets = ordered_json::array();
  s.latency.for_each([&](std::int64_t value, std::int64_t count) { buckets.push_back({value, count}); });
  ordered_json timeline = ordered_json::array();
  for (std::size_t i = 0; i < s.timeline.size(); ++i) {
    timeline.push_back({{"t", i + 1}, {"requests", s.timeline[i].requests}, {"errors", s.timeline[i].errors}});
  }
  return ordered_json{
      {"url", r.cfg.url},
      {"mode", open ? "open" : "closed"},
      {"connections", r.cfg.connections},
      {"threads", r.cfg.threads},
      {"duration_s", r.duration_s},
      // Requests/s asked for with -R; 0 in closed loop. Integral rates stay integers.
      {"rate", r.cfg.rate == std::floor(r.cfg.rate) ? ordered_json(static_cast<std::int64_t>(r.cfg.rate))
                                                     : ordered_json(r.cfg.rate)},
      {"requests", s.requests},
      {"bytes", s.bytes},
      {"rps", r.duration_s > 0 ? static_cast<double>(s.requests) / r.duration_s : 0.0},
      {"errors", errors},
      {"incomplete", s.incomplete},
      {"latency_us", summary_json(s.latency)},
      {"service_us", open ? summary_json(s.service) : ordered_json(nullptr)},
      {"lag_us", open ? summary_json(s.lag) : ordered_json(nullptr)},
      {"wait_us", open ? summary_json(s.wait) : ordered_json(nullptr)},
      {"generator_limited", r.generator_limited},
      {"histogram", {{"sig_digits", s.latency.significant_digits()}, {"unit", "us"}, {"buckets", buckets}}},
      {"timeline", timeline},
      // The CPU spent on the load: open-loop pacing's empty polls (mostly system time in
      // epoll_wait) are idle time that kept the core awake, not work, so they are left out.
      {"cpu_s", {{"user", r.work_user_s()}, {"sys", r.work_sys_s()}}},
  };
}

void print_banner(const Config& cfg, std::FILE* out) {
  std::fprintf(out, "Running %s test @ %s\n", format_duration(cfg.duration_ns).c_str(), cfg.url.c_str());
  std::fprintf(out, "  %d threads and %d connections, ", cfg.threads, cfg.connections);
  if (cfg.open_loop()) std::fprintf(out, "open loop at %s req/s", format_metric(cfg.rate).c_str());
  else std::fprintf(out, "closed loop");
  if (cfg.pipeline > 1) std::fprintf(out, ", pipeline %d", cfg.pipeline);
  if (cfg.close) std::fprintf(out, ", new connection per request");
  if (cfg.idle > 0) std::fprintf(out, ", %d idle connections", cfg.idle);
  if (cfg.warmup_ns > 0) std::fprintf(out, ", %s warm-up", format_duration(cfg.warmup_ns).c_str());
  std::fprintf(out, "\n");
  std::fflush(out);
}

void print_summary(const Result& r, std::FILE* out) {
  const Stats& s = r.stats;
  const bool open = r.cfg.open_loop();
  std::fprintf(out, "  Thread Stats   %7s %10s %10s %10s\n", "Avg", "Stdev", "Max", "+/- Stdev");
  stats_row(out, "Latency", s.latency);
  if (open) {
    stats_row(out, "Service", s.service);
    stats_row(out, "Wait", s.wait);
    stats_row(out, "Lag", s.lag);
  }
  // Requests per second over the full seconds of the window.
  std::size_t full = static_cast<std::size_t>(r.duration_s + 1e-9);
  full = std::min(std::max<std::size_t>(full, 1), s.timeline.size());
  double mean = 0, sd = 0, max = 0;
  for (std::size_t i = 0; i < full; ++i) mean += static_cast<double>(s.timeline[i].requests);
  mean /= static_cast<double>(full);
  for (std::size_t i = 0; i < full; ++i) {
    const double v = static_cast<double>(s.timeline[i].requests);
    sd += (v - mean) * (v - mean);
    max = std::max(max, v);
  }
  sd = std::sqrt(sd / static_cast<double>(full));
  std::size_t within = 0;
  for (std::size_t i = 0; i < full; ++i) {
    within += std::fabs(static_cast<double>(s.timeline[i].requests) - mean) <= sd ? 1 : 0;
  }
  std::fprintf(out, "    %-8s %10s %10s %10s %9.2f%%\n", "Req/Sec", format_metric(mean).c_str(),
               format_metric(sd).c_str(), format_metric(max).c_str(),
               100.0 * static_cast<double>(within) / static_cast<double>(full));
  if (r.cfg.latency) {
    if (open) {
      distribution(out, "Latency Distribution (corrected: from the intended send time)", s.latency);
      distribution(out, "Service Time Distribution (from the actual send)", s.service);
    } else {
      distribution(out, "Latency Distribution", s.latency);
    }
  }
  std::fprintf(out, "  %llu requests in %.2fs, %s read\n", static_cast<unsigned long long>(s.requests),
               r.duration_s, format_bytes(static_cast<double>(s.bytes)).c_str());
  const auto err = [&](Err e) { return static_cast<unsigned long long>(s.errors[static_cast<std::size_t>(e)]); };
  if (err(Err::connect) || err(Err::read) || err(Err::write) || err(Err::timeout)) {
    std::fprintf(out, "  Socket errors: connect %llu, read %llu, write %llu, timeout %llu\n", err(Err::connect),
                 err(Err::read), err(Err::write), err(Err::timeout));
  }
  if (err(Err::status)) std::fprintf(out, "  Non-2xx responses: %llu\n", err(Err::status));
  if (err(Err::parse)) std::fprintf(out, "  Malformed responses: %llu\n", err(Err::parse));
  if (s.incomplete) {
    std::fprintf(out, "  Unfinished at the end: %llu (in the latency histogram as end - start)\n",
                 static_cast<unsigned long long>(s.incomplete));
  }
  if (r.idle.wanted) {
    std::fprintf(out, "  Idle connections: %llu of %llu held", static_cast<unsigned long long>(r.idle.held),
                 static_cast<unsigned long long>(r.idle.wanted));
    if (r.idle.closed_by_server) {
      std::fprintf(out, ", %llu closed by the server", static_cast<unsigned long long>(r.idle.closed_by_server));
    }
    std::fprintf(out, "\n");
  }
  if (open) {
    std::fprintf(out, "  Sent %.2f req/s of %.2f req/s offered\n", r.sent_rate, r.cfg.rate);
    // Which side set the pace: the generator's lateness (lag, CPU) or the server (wait).
    const double lag_ms = static_cast<double>(s.lag.value_at_percentile(99)) / 1e3;
    const double wait_ms = static_cast<double>(s.wait.value_at_percentile(99)) / 1e3;
    const double cpu = 100.0 * r.cpu_share();
    const double busy = r.busy_share < 0 ? 0 : 100.0 * r.busy_share;
    if (r.limit.any()) {
      std::fprintf(out,
                   "  Schedule: GENERATOR LIMITED by %s%s%s (lag p99 %.3f ms, limit %.0f ms; CPU %.0f%% of %d "
                   "thread(s), busiest thread on or waiting for a CPU %.0f%%, limit %.0f%%)\n",
                   r.limit.lag ? "its lag" : "", r.limit.lag && r.limit.cpu ? " and " : "", r.limit.cpu ? "its CPU" : "",
                   lag_ms, static_cast<double>(kMaxLagP99Us) / 1e3, cpu, r.cfg.threads, busy, 100.0 * kMaxCpuShare);
    } else {
      std::fprintf(out,
                   "  Schedule: generator on time (lag p99 %.3f ms, CPU %.0f%% of %d thread(s), busiest thread on "
                   "or waiting for a CPU %.0f%%)\n",
                   lag_ms, cpu, r.cfg.threads, busy);
    }
    if (s.wait.value_at_percentile(99) > kMaxLagP99Us) {
      const std::int64_t waited = s.wait.count_between(kMaxLagP99Us + 1, s.wait.max());
      std::fprintf(out, "  Server-limited: %.1f%% of requests waited > %.0f ms for their connection (wait p99 "
                   "%.3f ms): the server had not answered the request before them\n",
                   100.0 * static_cast<double>(waited) / static_cast<double>(s.wait.count()),
                   static_cast<double>(kMaxLagP99Us) / 1e3, wait_ms);
    }
  }
  const double rps = r.duration_s > 0 ? static_cast<double>(s.requests) / r.duration_s : 0;
  std::fprintf(out, "Requests/sec: %9.2f\n", rps);
  std::fprintf(out, "Transfer/sec: %10s\n",
               format_bytes(r.duration_s > 0 ? static_cast<double>(s.bytes) / r.duration_s : 0).c_str());
}

void write_hgrm(const Histogram& h, std::ostream& out) {
  constexpr double kScale = 1000.0;  // microseconds recorded, milliseconds written
  constexpr int kTicksPerHalfDistance = 5;
  char line[160];
  std::snprintf(line, sizeof line, "%12s %14s %10s %14s\n\n", "Value", "Percentile", "TotalCount", "1/(1-Percentile)");
  out << line;
  const std::int64_t total = h.count();
  std::vector<std::pair<std::int64_t, std::int64_t>> buckets;
  h.for_each([&](std::int64_t v, std::int64_t n) { buckets.emplace_back(v, n); });
  // HdrHistogram's percentile iterator: report each bucket the next percentile tick reaches;
  // ticks get denser towards 100 % (5 per halving of the distance to 100 %).
  double tick = 0.0;
  std::int64_t cumulative = 0;
  const auto advance = [&] {
    const auto halvings = static_cast<std::int64_t>(std::log(100.0 / (100.0 - tick)) / std::log(2.0)) + 1;
    tick += 100.0 / (kTicksPerHalfDistance * std::pow(2.0, static_cast<double>(halvings)));
  };
  const auto emit = [&](std::int64_t value, double percentile) {
    const double p = percentile / 100.0;
    std::snprintf(line, sizeof line, "%12.3f %2.12f %10lld %14.2f\n", static_cast<double>(value) / kScale, p,
                  static_cast<long long>(cumulative), 1.0 / (1.0 - p));
    out << line;
  };
  for (const auto& [value, n] : buckets) {
    cumulative += n;
    const double current = 100.0 * static_cast<double>(cumulative) / static_cast<double>(total);
    if (cumulative < total) {
      while (tick <= current) {
        emit(value, tick);
        advance();
      }
    } else {
      if (tick <= current) emit(value, tick);
      std::snprintf(line, sizeof line, "%12.3f %2.12f %10lld\n", static_cast<double>(value) / kScale, 1.0,
                    static_cast<long long>(cumulative));
      out << line;
    }
  }
  std::snprintf(line, sizeof line, "#[Mean    = %12.3f, StdDeviation   = %12.3f]\n", h.mean() / kScale,
                h.stddev() / kScale);
  out << line;
  std::snprintf(line, sizeof line, "#[Max     = %12.3f, Total count    = %12lld]\n",
                static_cast<double>(total ? h.highest_equivalent(h.max()) : 0) / kScale,
                static_cast<long long>(total));
  out << line;
  std::snprintf(line, sizeof line, "#[Buckets = %12d, SubBuckets     = %12d]\n", h.bucket_count(), h.sub_bucket_count());
  out << line;
}

}  // namespace cmbench::loadgen
