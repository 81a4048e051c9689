// build/bin/micro: the mechanism costs underneath the concurrency models (Google Benchmark).
//
//   wait/{select,poll,epoll}/N   one readiness wait with 1 ready fd among N      readiness.cpp
//   spawn/fork_wait, spawn/thread_create_join                                    spawn.cpp
//   parse/<case>                 the shared HTTP request parser, ns per request  parse.cpp
//   histogram/record             loadgen's latency histogram, ns per value       histogram.cpp
//
// Run by the harness as `micro --benchmark_out=micro.json --benchmark_out_format=json`.
// The only thing main adds to BENCHMARK_MAIN is a raised fd limit (soft up to hard, and
// beyond when permitted): waiting on 10000 fds needs 10000 descriptors plus a few.
#include <benchmark/benchmark.h>
#include <sys/resource.h>

namespace {

void raise_fd_limit() {
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) return;
  constexpr rlim_t kWanted = 24000;
  if (lim.rlim_max != RLIM_INFINITY && lim.rlim_max < kWanted) {
    rlimit higher{kWanted, kWanted};
    if (::setrlimit(RLIMIT_NOFILE, &higher) == 0) return;  // needs CAP_SYS_RESOURCE
  }
  lim.rlim_cur = lim.rlim_max;  // otherwise as far as the hard limit allows
  ::setrlimit(RLIMIT_NOFILE, &lim);
}

}  // namespace

int main(int argc, char** argv) {
  raise_fd_limit();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
