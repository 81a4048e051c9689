// The §3 duration syntax every server's --idle-timeout and --header-timeout take.
#include <gtest/gtest.h>

#include <chrono>

#include "server_main.hpp"

namespace cmbench {
namespace {

using std::chrono::microseconds;

microseconds us(std::string_view text) {
  const auto d = parse_duration(text);
  EXPECT_TRUE(d.has_value()) << text;
  return d ? std::chrono::duration_cast<microseconds>(*d) : microseconds(-1);
}

TEST(Duration, UnitsAndBareSeconds) {
  EXPECT_EQ(us("75"), microseconds(75'000'000));
  EXPECT_EQ(us("75s"), microseconds(75'000'000));
  EXPECT_EQ(us("1.5s"), microseconds(1'500'000));
  EXPECT_EQ(us("200ms"), microseconds(200'000));
  EXPECT_EQ(us("250us"), microseconds(250));
  EXPECT_EQ(us("2m"), microseconds(120'000'000));
  EXPECT_EQ(us("0"), microseconds(0));
  EXPECT_EQ(us("0.25"), microseconds(250'000));
}

TEST(Duration, RejectsWhatIsNotADuration) {
  for (const char* bad : {"", "s", "-1s", "5x", "5 s", "1h", "ms5", "1e3", "nan", "inf", "1.5.2s"}) {
    EXPECT_FALSE(parse_duration(bad).has_value()) << bad;
  }
}

}  // namespace
}  // namespace cmbench
