// servers/common/crew.hpp: a stopping server joins the threads that finished within the grace
// period and leaves one still in a handler to end with the process, without waiting for it.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>

#include "crew.hpp"

using namespace std::chrono_literals;

TEST(Crew, JoinsThreadsThatFinishWithinTheGrace) {
  auto ran = std::make_shared<std::atomic<int>>(0);
  cmbench::Crew crew;
  for (int i = 0; i < 4; ++i) crew.spawn([ran] { ran->fetch_add(1); });
  EXPECT_EQ(crew.finish(2s), 0u);
  EXPECT_EQ(ran->load(), 4);
}

TEST(Crew, WaitsForAThreadThatFinishesInsideTheGrace) {
  auto done = std::make_shared<std::atomic<bool>>(false);
  cmbench::Crew crew;
  crew.spawn([done] {
    std::this_thread::sleep_for(50ms);
    done->store(true);
  });
  EXPECT_EQ(crew.finish(2s), 0u);
  EXPECT_TRUE(done->load()) << "finish() returned before the thread did";
}

TEST(Crew, LeavesASleeperBehindAfterTheGrace) {
  auto release = std::make_shared<std::atomic<bool>>(false);
  cmbench::Crew crew;
  crew.spawn([] {});
  crew.spawn([release] {
    while (!release->load()) std::this_thread::sleep_for(1ms);  // "asleep in a handler"
  });
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(crew.finish(100ms), 1u);
  const auto waited = std::chrono::steady_clock::now() - t0;
  EXPECT_GE(waited, 100ms);
  EXPECT_LT(waited, 1500ms) << "finish() waited for the sleeper instead of leaving it";
  release->store(true);  // the detached thread ends on its own; it owns what it touches
  std::this_thread::sleep_for(20ms);
}
