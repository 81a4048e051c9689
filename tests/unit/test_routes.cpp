// Every row of the docs/architecture.md §2 table through parser + respond(), compared byte for byte with
// the response spelled out from the contract, plus every error status and each route limit at
// and one past its boundary.
#include <gtest/gtest.h>
#include <time.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "http_parser.hpp"
#include "http_response.hpp"
#include "test_util.hpp"

namespace cmbench::http {
namespace {

using test::answer;
using test::answer_bytes;
using test::error_wire;
using test::wire;

constexpr std::string_view kOk = "200 OK";
constexpr std::string_view kText = "text/plain";
constexpr std::string_view kOctets = "application/octet-stream";

TEST(Routes, GetRootIsExactlyTheContractBytes) {
  EXPECT_EQ(answer_bytes("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, World!");
  EXPECT_FALSE(answer("GET / HTTP/1.1\r\n\r\n").response.close_after);
}

TEST(Routes, HeadRootHasGetHeadersAndNoBody) {
  const auto a = answer("HEAD / HTTP/1.1\r\n\r\n");
  EXPECT_EQ(test::flatten(a.response),
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\n");
  EXPECT_EQ(a.response.size(), a.response.head.size());
}

TEST(Routes, BytesSmall) {
  EXPECT_EQ(answer_bytes("GET /bytes/0 HTTP/1.1\r\n\r\n"), wire(kOk, kOctets, ""));
  EXPECT_EQ(answer_bytes("GET /bytes/1 HTTP/1.1\r\n\r\n"), wire(kOk, kOctets, "x"));
  EXPECT_EQ(answer_bytes("GET /bytes/13 HTTP/1.1\r\n\r\n"),
            "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 13\r\n\r\n"
            "xxxxxxxxxxxxx");
  EXPECT_EQ(answer_bytes("GET /bytes/100000 HTTP/1.1\r\n\r\n"),
            wire(kOk, kOctets, std::string(100000, 'x')));
  EXPECT_EQ(answer_bytes("GET /bytes/007 HTTP/1.1\r\n\r\n"), wire(kOk, kOctets, "xxxxxxx"));
}

TEST(Routes, BytesAtLimitIsNotMaterialised) {
  const auto a = answer("GET /bytes/16777216 HTTP/1.1\r\n\r\n");
  ASSERT_EQ(a.status, ParseStatus::Complete);
  const auto& r = a.response;
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.head,
            "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 16777216\r\n\r\n");
  // 16 MiB of 'x' is described, not allocated: the filler count, served from a shared block.
  EXPECT_TRUE(r.body.empty());
  EXPECT_EQ(r.filler, 16777216u);
  EXPECT_EQ(r.size(), r.head.size() + 16777216u);
  EXPECT_FALSE(r.close_after);
}

TEST(Routes, HeadBytesAtLimit) {
  const auto a = answer("HEAD /bytes/16777216 HTTP/1.1\r\n\r\n");
  EXPECT_EQ(test::flatten(a.response),
            "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 16777216\r\n\r\n");
  EXPECT_EQ(a.response.filler, 0u);
}

TEST(Routes, BytesPastLimitAndBadNumbersAre400AndClose) {
  for (const char* n : {"16777217", "", "abc", "-1", "+1", "1x", "1.5", "0x10", "99999999999999999999",
                        "1/2", "%31"}) {
    const auto a = answer(std::string("GET /bytes/") + n + " HTTP/1.1\r\n\r\n");
    ASSERT_EQ(a.status, ParseStatus::Complete) << n;
    EXPECT_EQ(test::flatten(a.response), error_wire("400 Bad Request", "Bad Request")) << n;
    EXPECT_TRUE(a.response.close_after) << n;
  }
}

TEST(Routes, HeadWithBadNumberIs400WithoutBody) {
  // HEAD gets what GET would get, minus the body: a 400 too, but no content (RFC 9110 9.3.2).
  const auto a = answer("HEAD /bytes/16777217 HTTP/1.1\r\n\r\n");
  EXPECT_EQ(test::flatten(a.response),
            "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n"
            "Connection: close\r\n\r\n");
  EXPECT_TRUE(a.response.close_after);
}

TEST(Routes, QueryStringIgnoredForRouting) {
  EXPECT_EQ(answer_bytes("GET /?a=b HTTP/1.1\r\n\r\n"), wire(kOk, kText, "Hello, World!"));
  EXPECT_EQ(answer_bytes("GET /bytes/5?n=9 HTTP/1.1\r\n\r\n"), wire(kOk, kOctets, "xxxxx"));
  EXPECT_EQ(answer_bytes("POST /echo?x=1 HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi"),
            wire(kOk, kOctets, "hi"));
  EXPECT_EQ(answer_bytes("GET /sleep/0? HTTP/1.1\r\n\r\n"), wire(kOk, kText, "ok"));
}

TEST(Routes, EchoReturnsTheBody) {
  EXPECT_EQ(answer_bytes("POST /echo HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"),
            "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 5\r\n\r\nhello");
  EXPECT_EQ(answer_bytes("POST /echo HTTP/1.1\r\nContent-Length: 0\r\n\r\n"), wire(kOk, kOctets, ""));
  // No Content-Length: an empty body.
  EXPECT_EQ(answer_bytes("POST /echo HTTP/1.1\r\n\r\n"), wire(kOk, kOctets, ""));
}

TEST(Routes, EchoAtBodyLimit) {
  std::string body(kMaxBodyBytes, '\0');
  for (std::size_t i = 0; i < body.size(); ++i) body[i] = static_cast<char>(i * 7 + i / 251);
  const auto bytes = answer_bytes("POST /echo HTTP/1.1\r\nContent-Length: 1048576\r\n\r\n" + body);
  EXPECT_EQ(bytes, wire(kOk, kOctets, body));
}

TEST(Routes, EchoPastBodyLimitIs413AndClose) {
  const auto a = answer("POST /echo HTTP/1.1\r\nContent-Length: 1048577\r\n\r\n");
  ASSERT_EQ(a.status, ParseStatus::Error);
  EXPECT_EQ(test::flatten(a.response), error_wire("413 Content Too Large", "Content Too Large"));
  EXPECT_TRUE(a.response.close_after);
}

TEST(Routes, HeadEcho) {
  // HEAD is a GET-like method: /echo is a POST route, so HEAD /echo is a 404 without body.
  EXPECT_EQ(answer_bytes("HEAD /echo HTTP/1.1\r\n\r\n"), wire("404 Not Found", kText, "Not Found", "", true));
}

double wall_seconds_of(const std::function<void()>& f) {
  const auto t0 = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

TEST(Routes, SleepBlocksForTheRequestedTime) {
  std::string bytes;
  const double cpu0 = thread_cpu_seconds();
  const double wall = wall_seconds_of([&] { bytes = answer_bytes("GET /sleep/50000 HTTP/1.1\r\n\r\n"); });
  const double cpu = thread_cpu_seconds() - cpu0;
  EXPECT_EQ(bytes, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok");
  EXPECT_GE(wall, 0.050);
  EXPECT_LT(cpu, 0.040) << "a sleep must not burn CPU";
  EXPECT_EQ(answer_bytes("GET /sleep/0 HTTP/1.1\r\n\r\n"), wire(kOk, kText, "ok"));
  EXPECT_EQ(answer_bytes("HEAD /sleep/0 HTTP/1.1\r\n\r\n"), wire(kOk, kText, "ok", "", true));
}

TEST(Routes, CpuSpinsForTheRequestedCpuTime) {
  std::string bytes;
  const double cpu0 = thread_cpu_seconds();
  bytes = answer_bytes("GET /cpu/30000 HTTP/1.1\r\n\r\n");
  const double cpu = thread_cpu_seconds() - cpu0;
  EXPECT_EQ(bytes, wire(kOk, kText, "ok"));
  EXPECT_GE(cpu, 0.030);
  EXPECT_EQ(answer_bytes("GET /cpu/0 HTTP/1.1\r\n\r\n"), wire(kOk, kText, "ok"));
}

// The handler limit (10 s) itself is accepted: the request starts sleeping/spinning instead of
// being answered 400 at once. We watch it for a moment on a helper thread and leave it running;
// the test process exits right after (CTest runs each test in its own process).
void expect_still_running_after(const std::string& request, std::chrono::milliseconds wait) {
  auto done = std::make_shared<std::atomic<bool>>(false);
  auto response = std::make_shared<std::string>();
  std::thread([request, done, response] {
    *response = test::answer_bytes(request);
    done->store(true);
  }).detach();
  std::this_thread::sleep_for(wait);
  EXPECT_FALSE(done->load()) << request << " answered at once: "
                             << (done->load() ? *response : std::string());
}

TEST(Routes, SleepAtLimitIsAccepted) {
  expect_still_running_after("GET /sleep/10000000 HTTP/1.1\r\n\r\n", std::chrono::milliseconds(300));
}

TEST(Routes, CpuAtLimitIsAccepted) {
  expect_still_running_after("GET /cpu/10000000 HTTP/1.1\r\n\r\n", std::chrono::milliseconds(300));
}

TEST(Routes, SleepAndCpuPastLimitAndBadNumbersAre400AndClose) {
  for (const char* route : {"/sleep/", "/cpu/"}) {
    for (const char* n : {"10000001", "", "x", "-5", "1e6", "99999999999999999999"}) {
      const std::string req = std::string("GET ") + route + n + " HTTP/1.1\r\n\r\n";
      double wall = 0;
      test::Answer a;
      wall = wall_seconds_of([&] { a = answer(req); });
      EXPECT_EQ(test::flatten(a.response), error_wire("400 Bad Request", "Bad Request")) << req;
      EXPECT_TRUE(a.response.close_after) << req;
      EXPECT_LT(wall, 0.5) << req << " must be refused before running the handler";
    }
  }
}

TEST(Routes, UnknownPathIs404AndKeepsConnection) {
  for (const char* req : {"GET /nope HTTP/1.1\r\n\r\n", "GET /echo HTTP/1.1\r\n\r\n",
                          "POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
                          "POST /bytes/5 HTTP/1.1\r\n\r\n", "GET /bytes HTTP/1.1\r\n\r\n",
                          "GET /bytes5 HTTP/1.1\r\n\r\n", "GET /byte/5 HTTP/1.1\r\n\r\n",
                          "GET //x HTTP/1.1\r\n\r\n", "GET /index.html HTTP/1.1\r\n\r\n",
                          "GET /echo/ HTTP/1.1\r\n\r\n", "POST /echo/ HTTP/1.1\r\n\r\n",
                          "GET /sleep HTTP/1.1\r\n\r\n", "GET /cpu HTTP/1.1\r\n\r\n"}) {
    const auto a = answer(req);
    ASSERT_EQ(a.status, ParseStatus::Complete) << req;
    EXPECT_EQ(test::flatten(a.response),
              "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 9\r\n\r\nNot Found")
        << req;
    EXPECT_FALSE(a.response.close_after) << req;
  }
  EXPECT_EQ(answer_bytes("HEAD /nope HTTP/1.1\r\n\r\n"), wire("404 Not Found", kText, "Not Found", "", true));
}

TEST(Routes, OtherMethodIs405WithAllowAndKeepsConnection) {
  const std::string expected =
      "HTTP/1.1 405 Method Not Allowed\r\nContent-Type: text/plain\r\nContent-Length: 18\r\n"
      "Allow: GET, HEAD, POST\r\n\r\nMethod Not Allowed";
  for (const char* req : {"DELETE / HTTP/1.1\r\n\r\n", "PUT /echo HTTP/1.1\r\nContent-Length: 1\r\n\r\na",
                          "OPTIONS / HTTP/1.1\r\n\r\n", "PATCH /nope HTTP/1.1\r\n\r\n",
                          "get / HTTP/1.1\r\n\r\n", "BREW /bytes/5 HTTP/1.1\r\n\r\n"}) {
    const auto a = answer(req);
    ASSERT_EQ(a.status, ParseStatus::Complete) << req;
    EXPECT_EQ(test::flatten(a.response), expected) << req;
    EXPECT_FALSE(a.response.close_after) << req;
  }
}

TEST(Routes, HeaderSectionTooLargeIs431AndClose) {
  const auto a = answer("GET / HTTP/1.1\r\nX-Big: " + std::string(9000, 'a') + "\r\n\r\n");
  ASSERT_EQ(a.status, ParseStatus::Error);
  EXPECT_EQ(test::flatten(a.response),
            "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/plain\r\n"
            "Content-Length: 31\r\nConnection: close\r\n\r\nRequest Header Fields Too Large");
  EXPECT_TRUE(a.response.close_after);
}

TEST(Routes, TransferEncodingIs501AndClose) {
  const auto a = answer("POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
  ASSERT_EQ(a.status, ParseStatus::Error);
  EXPECT_EQ(test::flatten(a.response),
            "HTTP/1.1 501 Not Implemented\r\nContent-Type: text/plain\r\nContent-Length: 15\r\n"
            "Connection: close\r\n\r\nNot Implemented");
}

TEST(Routes, MalformedIs400AndClose) {
  const auto a = answer("GET / HTTP/1.1\nHost: a\n\n");
  ASSERT_EQ(a.status, ParseStatus::Error);
  EXPECT_EQ(test::flatten(a.response),
            "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n"
            "Connection: close\r\n\r\nBad Request");
}

TEST(Routes, ServiceUnavailable) {
  const auto r = respond_error(503);
  EXPECT_EQ(test::flatten(r),
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 19\r\n"
            "Connection: close\r\n\r\nService Unavailable");
  EXPECT_TRUE(r.close_after);
}

TEST(Routes, EveryErrorStatusHasItsReasonAndCloses) {
  const std::pair<int, const char*> table[] = {
      {400, "Bad Request"},       {413, "Content Too Large"}, {431, "Request Header Fields Too Large"},
      {501, "Not Implemented"},   {503, "Service Unavailable"}};
  for (const auto& [status, reason] : table) {
    EXPECT_EQ(reason_phrase(status), reason);
    EXPECT_EQ(test::flatten(respond_error(status)),
              error_wire(std::to_string(status) + " " + reason, reason));
  }
  EXPECT_EQ(reason_phrase(200), "OK");
  EXPECT_EQ(reason_phrase(404), "Not Found");
  EXPECT_EQ(reason_phrase(405), "Method Not Allowed");
}

TEST(Routes, Http10ClosesByDefault) {
  const auto a = answer("GET / HTTP/1.0\r\n\r\n");
  EXPECT_EQ(test::flatten(a.response), wire(kOk, kText, "Hello, World!", "Connection: close\r\n"));
  EXPECT_TRUE(a.response.close_after);
}

TEST(Routes, Http10KeepAliveSaysSo) {
  const auto a = answer("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  EXPECT_EQ(test::flatten(a.response), wire(kOk, kText, "Hello, World!", "Connection: keep-alive\r\n"));
  EXPECT_FALSE(a.response.close_after);
  // Also on 404 and 405, which keep the connection.
  EXPECT_EQ(answer_bytes("GET /x HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"),
            wire("404 Not Found", kText, "Not Found", "Connection: keep-alive\r\n"));
  EXPECT_EQ(answer_bytes("PUT / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"),
            wire("405 Method Not Allowed", kText, "Method Not Allowed",
                 "Allow: GET, HEAD, POST\r\nConnection: keep-alive\r\n"));
  EXPECT_EQ(answer_bytes("HEAD /bytes/3 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"),
            wire(kOk, kOctets, "xxx", "Connection: keep-alive\r\n", true));
}

TEST(Routes, Http11ConnectionCloseSaysSo) {
  const auto a = answer("GET / HTTP/1.1\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(test::flatten(a.response), wire(kOk, kText, "Hello, World!", "Connection: close\r\n"));
  EXPECT_TRUE(a.response.close_after);
  EXPECT_EQ(answer_bytes("DELETE / HTTP/1.1\r\nConnection: close\r\n\r\n"),
            wire("405 Method Not Allowed", kText, "Method Not Allowed",
                 "Allow: GET, HEAD, POST\r\nConnection: close\r\n"));
  EXPECT_EQ(answer_bytes("GET /nope HTTP/1.0\r\n\r\n"),
            wire("404 Not Found", kText, "Not Found", "Connection: close\r\n"));
  // HTTP/1.1 keep-alive needs no header.
  EXPECT_EQ(answer_bytes("GET / HTTP/1.1\r\nConnection: keep-alive\r\n\r\n"),
            wire(kOk, kText, "Hello, World!"));
}

}  // namespace
}  // namespace cmbench::http
