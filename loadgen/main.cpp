// loadgen: the load generator of cmbench (docs/architecture.md §4).
//
//   build/bin/loadgen [-c N] [-t N] [-d 10s] [--warmup 1s] [-R N] [--pipeline N] [--close]
//                     [--idle N] [--method M] [--body-size N] [--header 'K: V'] [--timeout 2s]
//                     [--latency] [--json FILE] [--hgrm FILE] http://HOST:PORT/path
//
// main() parses the flags, makes room for the descriptors, starts one Worker thread per -t,
// lets all of them finish set-up (idle and active connections open), fixes one time line for
// all, joins them, merges their statistics and reports. Exit status: 0 after a completed run
// with at least one successful request, 1 if not one request succeeded (or the run could not
// be carried out), 2 on bad flags or a bad URL.
#include <signal.h>
#include <sys/resource.h>
#include <time.h>

#include <algorithm>
#include <barrier>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "clock.hpp"
#include "engine.hpp"
#include "options.hpp"
#include "report.hpp"

namespace {

using namespace cmbench::loadgen;

std::atomic<bool>* g_stop = nullptr;

void on_signal(int) {
  if (g_stop) g_stop->store(true, std::memory_order_relaxed);
}

double seconds(const timeval& tv) { return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6; }

// Every connection is a descriptor; raise the soft limit to what the run needs if the hard
// limit allows. Returns false if it cannot.
bool ensure_descriptors(const Config& cfg, std::string& why) {
  const rlim_t need = static_cast<rlim_t>(cfg.connections) + static_cast<rlim_t>(cfg.idle) +
                      static_cast<rlim_t>(cfg.threads) * 2 + 32;
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return true;
  if (rl.rlim_cur >= need) return true;
  if (rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= need) {
    rl.rlim_cur = need;
    if (::setrlimit(RLIMIT_NOFILE, &rl) == 0) return true;
  }
  why = "-c " + std::to_string(cfg.connections) + " and --idle " + std::to_string(cfg.idle) + " need " +
        std::to_string(need) + " file descriptors but ulimit -n allows " + std::to_string(rl.rlim_max);
  return false;
}

bool write_file(const std::string& path, const std::string& content) {
  if (path == "-") {
    std::cout << content << std::flush;
    return true;
  }
  // Write beside, then rename: a reader never sees half a result.
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f || !(f << content) || !f.flush()) return false;
  }
  return std::rename(tmp.c_str(), path.c_str()) == 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::optional<Config> parsed;
  try {
    parsed = parse_args(argc, argv);
  } catch (const UsageError& e) {
    std::fprintf(stderr, "loadgen: %s (see loadgen --help)\n", e.what());
    return 2;
  }
  if (!parsed) return 0;
  const Config& cfg = *parsed;
  if (std::string why; !ensure_descriptors(cfg, why)) {
    std::fprintf(stderr, "loadgen: %s\n", why.c_str());
    return 2;
  }

  ::signal(SIGPIPE, SIG_IGN);  // a peer's reset must be an error value, not a signal
  Plan plan(cfg);
  g_stop = &plan.stop;
  struct sigaction sa{};
  sa.sa_handler = on_signal;
  ::sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);

  std::vector<std::unique_ptr<Worker>> workers;
  try {
    for (int i = 0; i < cfg.threads; ++i) workers.push_back(std::make_unique<Worker>(plan, i));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "loadgen: %s\n", e.what());
    return 1;
  }
  // With --json - the result owns stdout; the human summary moves to stderr.
  std::FILE* human = cfg.json_path == "-" ? stderr : stdout;
  print_banner(cfg, human);

  Timeline tl;
  std::barrier sync(cfg.threads + 1);
  std::mutex error_mutex;
  std::string worker_error;
  auto record_error = [&](const std::exception& e) {
    std::lock_guard lock(error_mutex);
    if (worker_error.empty()) worker_error = e.what();
    plan.stop.store(true);
  };
  std::vector<std::thread> threads;
  for (auto& w : workers) {
    threads.emplace_back([&, worker = w.get()] {
      bool ok = true;
      try {
        worker->setup();
      } catch (const std::exception& e) {
        record_error(e);
        ok = false;
      }
      sync.arrive_and_wait();  // everyone is set up
      sync.arrive_and_wait();  // the time line is fixed
      if (!ok) return;
      try {
        worker->run(tl);
      } catch (const std::exception& e) {
        record_error(e);
      }
    });
  }
  sync.arrive_and_wait();
  tl.start = mono_ns();
  tl.measure_start = tl.start + cfg.warmup_ns;
  tl.end = tl.measure_start + cfg.duration_ns;
  sync.arrive_and_wait();

  // CPU time of the measured window only (set-up and warm-up excluded).
  const timespec ms{static_cast<time_t>(tl.measure_start / kNsPerSec), static_cast<long>(tl.measure_start % kNsPerSec)};
  while (::clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ms, nullptr) == EINTR) {
  }
  rusage ru0{}, ru1{};
  ::getrusage(RUSAGE_SELF, &ru0);
  for (auto& t : threads) t.join();
  ::getrusage(RUSAGE_SELF, &ru1);
  // The CPU was measured over the window and the drain after it (answers still in flight).
  const double cpu_wall_s = static_cast<double>(mono_ns() - tl.measure_start) / 1e9;
  if (!worker_error.empty()) {
    std::fprintf(stderr, "loadgen: %s\n", worker_error.c_str());
    return 1;
  }

  Result result(cfg);
  std::int64_t ended = tl.measure_start;
  for (auto& w : workers) {
    result.stats.merge(w->stats());
    ended = std::max(ended, w->ended_at());
    result.busy_share = std::max(result.busy_share, w->busy_share());
    result.poll_idle_s += w->poll_idle_s();
    const IdleReport& ir = w->idle_report();
    result.idle.wanted += ir.wanted;
    result.idle.held += ir.held;
    result.idle.failed += ir.failed;
    result.idle.closed_by_server += ir.closed_by_server;
  }
  result.duration_s = static_cast<double>(ended - tl.measure_start) / 1e9;
  // A run stopped early (SIGINT) reports only the seconds it covered.
  const auto covered = static_cast<std::size_t>(std::max<std::int64_t>(1, (ended - tl.measure_start + kNsPerSec - 1) / kNsPerSec));
  if (result.stats.timeline.size() > covered) result.stats.timeline.resize(covered);
  result.cpu_user_s = seconds(ru1.ru_utime) - seconds(ru0.ru_utime);
  result.cpu_sys_s = seconds(ru1.ru_stime) - seconds(ru0.ru_stime);
  if (result.duration_s > 0) result.sent_rate = static_cast<double>(result.stats.sent) / result.duration_s;
  result.cpu_wall_s = cpu_wall_s;
  result.limit = generator_limit(cfg, result.stats, cpu_wall_s, result.work_s(), result.busy_share);
  result.generator_limited = result.limit.any();

  print_summary(result, human);
  std::fflush(human);
  if (result.idle.wanted && result.idle.held < result.idle.wanted) {
    std::fprintf(stderr, "loadgen: warning: only %llu of %llu idle connections were open and answered\n",
                 static_cast<unsigned long long>(result.idle.held), static_cast<unsigned long long>(result.idle.wanted));
  }
  if (result.generator_limited) {
    // Only the generator's own lateness gets here; waiting for the server is reported as wait.
    std::fprintf(stderr,
                 "loadgen: warning: generator limited (%s): lag p99 %.3f ms (limit %.0f ms), CPU %.0f%% of %d "
                 "thread(s), busiest thread on or waiting for a CPU %.0f%% (limit %.0f%%); the load generator "
                 "itself was late, so the server did not see the offered load on schedule\n",
                 result.limit.lag && result.limit.cpu ? "lag and CPU" : result.limit.lag ? "lag" : "CPU",
                 static_cast<double>(result.stats.lag.value_at_percentile(99)) / 1e3,
                 static_cast<double>(kMaxLagP99Us) / 1e3,
                 100.0 * result.cpu_share(), cfg.threads, result.busy_share < 0 ? 0.0 : 100.0 * result.busy_share,
                 100.0 * kMaxCpuShare);
  }

  int status = result.stats.requests > 0 ? 0 : 1;
  if (!cfg.json_path.empty() && !write_file(cfg.json_path, to_json(result).dump(2) + "\n")) {
    std::fprintf(stderr, "loadgen: cannot write %s: %s\n", cfg.json_path.c_str(), std::strerror(errno));
    status = 1;
  }
  if (!cfg.hgrm_path.empty()) {
    std::ostringstream text;
    write_hgrm(result.stats.latency, text);
    if (!write_file(cfg.hgrm_path, text.str())) {
      std::fprintf(stderr, "loadgen: cannot write %s: %s\n", cfg.hgrm_path.c_str(), std::strerror(errno));
      status = 1;
    }
  }
  if (result.stats.requests == 0) std::fprintf(stderr, "loadgen: not one request succeeded\n");
  return status;
}
