// What may flag a run generator_limited: the generator's lag and CPU, never the wait for a server.
#include "report.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace {

using namespace cmbench::loadgen;

Config open_loop(double rate, int threads = 1) {
  std::vector<std::string> args = {"loadgen", "-R", std::to_string(static_cast<long>(rate)), "-t",
                                   std::to_string(threads), "http://127.0.0.1:1/"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  return *parse_args(static_cast<int>(args.size()), argv.data());
}

// 1000 requests: lag and wait values (us) as given.
Stats stats(std::int64_t lag_us, std::int64_t wait_us) {
  Stats s;
  for (int i = 0; i < 1000; ++i) {
    s.lag.record(lag_us);
    s.wait.record(wait_us);
  }
  s.sent = 1000;
  return s;
}

TEST(GeneratorLimit, WaitingForTheServerIsNotTheGenerator) {
  const Config cfg = open_loop(3000);
  // Every request waited 800 ms for its connection (a stopped server), the generator was on time.
  const GeneratorLimit g = generator_limit(cfg, stats(20, 800'000), 3.0, 0.3);
  EXPECT_FALSE(g.lag);
  EXPECT_FALSE(g.cpu);
  EXPECT_FALSE(g.any());
}

TEST(GeneratorLimit, LagAboveOneMillisecond) {
  const Config cfg = open_loop(3000);
  EXPECT_TRUE(generator_limit(cfg, stats(5'000, 0), 3.0, 0.3).lag);
  EXPECT_FALSE(generator_limit(cfg, stats(900, 0), 3.0, 0.3).lag);
}

TEST(GeneratorLimit, CpuOfItsThreads) {
  EXPECT_TRUE(generator_limit(open_loop(3000, 1), stats(20, 0), 2.0, 1.95).cpu);
  // Two threads have twice the CPU time to spend.
  EXPECT_FALSE(generator_limit(open_loop(3000, 2), stats(20, 0), 2.0, 1.95).cpu);
  EXPECT_TRUE(generator_limit(open_loop(3000, 2), stats(20, 0), 2.0, 3.9).cpu);
}

TEST(GeneratorLimit, AThreadThatNeverSlept) {
  const Config cfg = open_loop(3000);
  // Little CPU of its own but always runnable (a CPU hog beside it): it set the pace.
  EXPECT_TRUE(generator_limit(cfg, stats(20, 0), 2.0, 0.8, 0.97).cpu);
  EXPECT_FALSE(generator_limit(cfg, stats(20, 0), 2.0, 0.8, 0.60).cpu);
  EXPECT_FALSE(generator_limit(cfg, stats(20, 0), 2.0, 0.8, -1).cpu);  // unknown
}

TEST(GeneratorLimit, ClosedLoopIsNeverLimited) {
  std::vector<std::string> args = {"loadgen", "http://127.0.0.1:1/"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const Config cfg = *parse_args(static_cast<int>(args.size()), argv.data());
  EXPECT_FALSE(generator_limit(cfg, stats(50'000, 0), 2.0, 2.0).any());
}

}  // namespace
