// Durations, rates, URLs, flags and the serialised request of the load generator.
#include "options.hpp"

#include <gtest/gtest.h>
#include <netinet/in.h>

#include <string>
#include <vector>

namespace {

using namespace cmbench::loadgen;

std::optional<Config> parse(std::vector<std::string> args) {
  args.insert(args.begin(), "loadgen");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  return parse_args(static_cast<int>(args.size()), argv.data());
}

TEST(Options, Durations) {
  EXPECT_EQ(parse_duration_ns("1.5s", "-d"), 1'500'000'000);
  EXPECT_EQ(parse_duration_ns("500ms", "-d"), 500'000'000);
  EXPECT_EQ(parse_duration_ns("2m", "-d"), 120'000'000'000);
  EXPECT_EQ(parse_duration_ns("10", "-d"), 10'000'000'000);
  EXPECT_EQ(parse_duration_ns("250us", "-d"), 250'000);
  EXPECT_EQ(parse_duration_ns("1h", "-d"), 3'600'000'000'000);
  for (const char* bad : {"", "s", "1.5x", "-1s", "1 s", "abc"}) {
    EXPECT_THROW(parse_duration_ns(bad, "-d"), UsageError) << bad;
  }
}

TEST(Options, Metrics) {
  EXPECT_EQ(parse_metric("2000", "-R"), 2000);
  EXPECT_EQ(parse_metric("10k", "-R"), 10000);
  EXPECT_EQ(parse_metric("1.5M", "-R"), 1.5e6);
  EXPECT_THROW(parse_metric("10q", "-R"), UsageError);
}

TEST(Options, Urls) {
  Target t = parse_url("http://127.0.0.1:8080/bytes/13?x=1");
  EXPECT_EQ(t.host, "127.0.0.1");
  EXPECT_EQ(t.port, 8080);
  EXPECT_EQ(t.path, "/bytes/13?x=1");
  EXPECT_EQ(t.host_header, "127.0.0.1:8080");
  EXPECT_EQ(t.addr.ss_family, AF_INET);

  t = parse_url("http://[::1]:9000");
  EXPECT_EQ(t.host, "::1");
  EXPECT_EQ(t.path, "/");
  EXPECT_EQ(t.host_header, "[::1]:9000");
  EXPECT_EQ(t.addr.ss_family, AF_INET6);

  t = parse_url("HTTP://127.0.0.1/");
  EXPECT_EQ(t.port, 80);
  EXPECT_EQ(t.host_header, "127.0.0.1");

  for (const char* bad : {"127.0.0.1:8080/", "https://127.0.0.1/", "http://", "http://:80/", "http://127.0.0.1:0/",
                          "http://127.0.0.1:65536/", "http://127.0.0.1:8x/", "http://[::1/", "http://127.0.0.1:/",
                          "http://u@127.0.0.1/", "ftp://127.0.0.1/"}) {
    EXPECT_THROW(parse_url(bad), UsageError) << bad;
  }
}

TEST(Options, DefaultsAndFlags) {
  auto cfg = parse({"http://127.0.0.1:8080/"});
  ASSERT_TRUE(cfg);
  EXPECT_EQ(cfg->connections, 10);
  EXPECT_EQ(cfg->threads, 1);
  EXPECT_EQ(cfg->duration_ns, 10'000'000'000);
  EXPECT_EQ(cfg->timeout_ns, 2'000'000'000);
  EXPECT_FALSE(cfg->open_loop());

  cfg = parse({"-c", "100", "-t", "2", "-d", "1.5s", "--warmup", "500ms", "-R", "2k", "--pipeline", "4", "--idle",
               "10", "--timeout", "250ms", "--method", "POST", "--body-size", "16", "--header", "X-A: 1", "--header",
               "X-B: 2", "--latency", "--json", "out.json", "--hgrm", "out.hgrm", "http://127.0.0.1:8080/echo"});
  ASSERT_TRUE(cfg);
  EXPECT_EQ(cfg->connections, 100);
  EXPECT_EQ(cfg->threads, 2);
  EXPECT_EQ(cfg->duration_ns, 1'500'000'000);
  EXPECT_EQ(cfg->warmup_ns, 500'000'000);
  EXPECT_EQ(cfg->rate, 2000);
  EXPECT_EQ(cfg->pipeline, 4);
  EXPECT_EQ(cfg->idle, 10);
  EXPECT_EQ(cfg->timeout_ns, 250'000'000);
  EXPECT_EQ(cfg->headers, (std::vector<std::string>{"X-A: 1", "X-B: 2"}));
  EXPECT_TRUE(cfg->latency);
  EXPECT_EQ(cfg->json_path, "out.json");
  EXPECT_EQ(cfg->hgrm_path, "out.hgrm");
}

TEST(Options, BadFlagsAreUsageErrors) {
  const std::vector<std::vector<std::string>> bad = {
      {},                                                   // no URL
      {"--bogus", "http://127.0.0.1:1/"},                   // unknown flag
      {"-c", "0", "http://127.0.0.1:1/"},
      {"-c", "1", "-t", "2", "http://127.0.0.1:1/"},        // fewer connections than threads
      {"-c", "ten", "http://127.0.0.1:1/"},
      {"-d", "0s", "http://127.0.0.1:1/"},
      {"-d", "5x", "http://127.0.0.1:1/"},
      {"-R", "0", "http://127.0.0.1:1/"},
      {"--pipeline", "0", "http://127.0.0.1:1/"},
      {"--close", "--pipeline", "2", "http://127.0.0.1:1/"},
      {"--header", "NoColon", "http://127.0.0.1:1/"},
      {"--method", "GE T", "http://127.0.0.1:1/"},
      {"--body-size", "-1", "http://127.0.0.1:1/"},
      {"not-a-url"},
  };
  for (const auto& args : bad) {
    std::string joined;
    for (const auto& a : args) joined += a + " ";
    EXPECT_THROW(parse(args), UsageError) << joined;
  }
}

TEST(Options, RequestIsSerialisedOnce) {
  auto cfg = parse({"--header", "X-Test: yes", "http://127.0.0.1:8080/"});
  ASSERT_TRUE(cfg);
  EXPECT_EQ(build_request(*cfg), "GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nX-Test: yes\r\n\r\n");

  cfg = parse({"--close", "--method", "POST", "--body-size", "3", "http://127.0.0.1:8080/echo"});
  ASSERT_TRUE(cfg);
  EXPECT_EQ(build_request(*cfg),
            "POST /echo HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nContent-Length: 3\r\nConnection: close\r\n\r\nxxx");

  cfg = parse({"--header", "Host: example", "http://127.0.0.1:8080/"});
  ASSERT_TRUE(cfg);
  EXPECT_EQ(build_request(*cfg), "GET / HTTP/1.1\r\nHost: example\r\n\r\n");
}

}  // namespace
