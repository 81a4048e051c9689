// HttpSession's deferred requests (server-offload): a request the model runs elsewhere leaves
// the session as an owned copy, the requests behind it wait, and its response, handed back
// later, takes its place in the order.
#include <gtest/gtest.h>
#include <sys/uio.h>

#include <string>
#include <vector>

#include "http_response.hpp"
#include "http_session.hpp"

namespace cmbench::http {
namespace {

const std::string kHello =
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, World!";
const std::string kOk = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok";
const std::string kThreeX =
    "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 3\r\n\r\nxxx";

bool sleeps(const Request& r) { return r.target.starts_with("/sleep/"); }

// Everything the session offers now (running its waiting turns), in order.
std::string written(HttpSession& s) {
  std::string out;
  std::vector<iovec> iov(64);
  for (int round = 0; round < 1000; ++round) {
    if (s.next() == Want::Process) {
      s.process();
      continue;
    }
    if (s.next() != Want::Write) break;
    const int n = s.gather(iov.data(), static_cast<int>(iov.size()));
    std::size_t wrote = 0;
    for (int i = 0; i < n; ++i) {
      out.append(static_cast<const char*>(iov[i].iov_base), iov[i].iov_len);
      wrote += iov[i].iov_len;
    }
    s.on_written(wrote);
  }
  return out;
}

TEST(SessionDefer, PipelineBehindADeferredRequestWaitsAndKeepsItsOrder) {
  HttpSession s;
  s.defer_if(sleeps);
  s.on_bytes("GET / HTTP/1.1\r\n\r\nGET /sleep/0 HTTP/1.1\r\n\r\nGET /bytes/3 HTTP/1.1\r\n\r\n");
  EXPECT_TRUE(s.waiting());
  EXPECT_EQ(s.phase(), Phase::Busy);  // a handler is running: no deadline
  EXPECT_EQ(written(s), kHello);      // the response before it goes out meanwhile
  EXPECT_TRUE(s.waiting());
  EXPECT_EQ(s.phase(), Phase::Busy);

  auto job = s.take_deferred();
  ASSERT_NE(job, nullptr);
  EXPECT_EQ(job->target, "/sleep/0");
  EXPECT_EQ(s.take_deferred(), nullptr);  // handed out once
  s.on_bytes("GET / HTTP/1.1\r\n\r\n");   // more input (a model should not read; if it does,
  EXPECT_EQ(written(s), "");              // nothing is answered out of order)

  s.resume(respond(job->view()));  // as a worker would, after the buffer has moved on
  EXPECT_FALSE(s.waiting());
  EXPECT_EQ(written(s), kOk + kThreeX + kHello);
  EXPECT_EQ(s.next(), Want::Read);
  EXPECT_EQ(s.phase(), Phase::Idle);
  EXPECT_EQ(s.requests(), 4u);
}

TEST(SessionDefer, WithoutAPredicateEverythingRunsInline) {
  HttpSession s;
  s.on_bytes("GET /sleep/0 HTTP/1.1\r\n\r\n");
  EXPECT_FALSE(s.waiting());
  EXPECT_EQ(s.take_deferred(), nullptr);
  EXPECT_EQ(written(s), kOk);
}

TEST(SessionDefer, ResumeWithoutAWaitingRequestIsIgnored) {
  HttpSession s;
  s.defer_if(sleeps);
  s.resume(respond_error(400));
  EXPECT_FALSE(s.has_output());
  EXPECT_EQ(s.next(), Want::Read);
}

TEST(SessionDefer, AFinalDeferredResponseFinishesTheConnection) {
  HttpSession s;
  s.defer_if(sleeps);
  s.on_bytes("GET /sleep/0 HTTP/1.1\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\n\r\n");
  auto job = s.take_deferred();
  ASSERT_NE(job, nullptr);
  EXPECT_FALSE(job->keep_alive);
  s.resume(respond(job->view()));
  const std::string out = written(s);
  EXPECT_NE(out.find("Connection: close"), std::string::npos);
  EXPECT_EQ(out.find("Hello"), std::string::npos);  // nothing after a final response
  EXPECT_EQ(s.next(), Want::Finish);
}

TEST(SessionDefer, ADeferredRequestArrivingOneByteAtATime) {
  HttpSession s;
  s.defer_if(sleeps);
  const std::string req = "GET /sleep/0 HTTP/1.1\r\n\r\nGET /bytes/3 HTTP/1.1\r\n\r\n";
  for (char c : req) s.on_bytes(std::string(1, c));
  auto job = s.take_deferred();
  ASSERT_NE(job, nullptr);
  s.resume(respond(job->view()));
  EXPECT_EQ(written(s), kOk + kThreeX);
}

}  // namespace
}  // namespace cmbench::http
