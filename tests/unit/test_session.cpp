// HttpSession: the per-connection state machine every model drives. Pipelining, one byte at a
// time, partial writes, backpressure, the final response (Finish), and gather() serving a 16 MiB
// body from a shared block instead of materialising it.
#include <gtest/gtest.h>
#include <sys/uio.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <string>
#include <vector>

#include "connection_deadline.hpp"
#include "http_response.hpp"
#include "http_session.hpp"
#include "test_util.hpp"

namespace cmbench::http {
namespace {

using test::wire;

const std::string kHello =
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, World!";
const std::string kGetRoot = "GET / HTTP/1.1\r\n\r\n";

// Writes everything the session offers, `write_size(i)` bytes per simulated send(), and
// returns the bytes in order. Parsing resumes as output drains, so this may answer requests
// that were waiting. Bounded: at most `max_bytes` are taken.
template <typename WriteSize>
std::string drain(HttpSession& s, WriteSize write_size, std::size_t max_bytes = 64u << 20) {
  std::string out;
  std::vector<iovec> iov(64);
  for (std::size_t round = 0; out.size() < max_bytes; ++round) {
    if (s.next() == Want::Process) {  // pipelined requests beyond one turn: the next turn
      s.process();
      continue;
    }
    if (s.next() != Want::Write) break;
    const int n = s.gather(iov.data(), static_cast<int>(iov.size()));
    EXPECT_GT(n, 0) << "Want::Write but nothing to gather";
    if (n <= 0) break;
    std::size_t want = write_size(round);
    std::size_t wrote = 0;
    for (int i = 0; i < n && wrote < want; ++i) {
      const std::size_t take = std::min(want - wrote, iov[i].iov_len);
      out.append(static_cast<const char*>(iov[i].iov_base), take);
      wrote += take;
    }
    s.on_written(wrote);
  }
  return out;
}

std::string drain_all(HttpSession& s) {
  return drain(s, [](std::size_t) { return std::size_t{1} << 30; });
}

TEST(Session, FreshSessionWantsRead) {
  HttpSession s;
  EXPECT_EQ(s.next(), Want::Read);
  EXPECT_FALSE(s.has_output());
  EXPECT_EQ(s.output_bytes(), 0u);
  iovec iov[4];
  EXPECT_EQ(s.gather(iov, 4), 0);
}

TEST(Session, OneRequestThenBackToRead) {
  HttpSession s;
  s.on_bytes(kGetRoot);
  EXPECT_EQ(s.next(), Want::Write);
  EXPECT_EQ(s.output_bytes(), kHello.size());
  EXPECT_EQ(drain_all(s), kHello);
  EXPECT_EQ(s.next(), Want::Read);
  EXPECT_EQ(s.output_bytes(), 0u);
  EXPECT_EQ(s.requests(), 1u);
}

TEST(Session, OneByteAtATime) {
  const std::string req = "POST /echo HTTP/1.1\r\nContent-Length: 4\r\nHost: h\r\n\r\nabcd";
  HttpSession s;
  for (std::size_t i = 0; i + 1 < req.size(); ++i) {
    s.on_bytes(std::string_view(req).substr(i, 1));
    ASSERT_EQ(s.next(), Want::Read) << "answered after " << i + 1 << " bytes";
  }
  s.on_bytes(std::string_view(req).substr(req.size() - 1));
  EXPECT_EQ(drain_all(s), wire("200 OK", "application/octet-stream", "abcd"));
  EXPECT_EQ(s.next(), Want::Read);
}

TEST(Session, ThreePipelinedRequestsAnsweredInOrder) {
  HttpSession s;
  s.on_bytes("GET /bytes/3 HTTP/1.1\r\n\r\nGET /nope HTTP/1.1\r\n\r\n"
             "POST /echo HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi");
  EXPECT_EQ(s.requests(), 3u);
  EXPECT_EQ(drain_all(s), wire("200 OK", "application/octet-stream", "xxx") +
                              wire("404 Not Found", "text/plain", "Not Found") +
                              wire("200 OK", "application/octet-stream", "hi"));
  EXPECT_EQ(s.next(), Want::Read);
}

TEST(Session, RequestsSplitAcrossReadsAtEveryOffset) {
  const std::string two = kGetRoot + "HEAD /bytes/5 HTTP/1.1\r\n\r\n";
  const std::string expected = kHello + wire("200 OK", "application/octet-stream", "xxxxx", "", true);
  for (std::size_t cut = 0; cut <= two.size(); ++cut) {
    HttpSession s;
    s.on_bytes(std::string_view(two).substr(0, cut));
    s.on_bytes(std::string_view(two).substr(cut));
    EXPECT_EQ(drain_all(s), expected) << "cut at " << cut;
    EXPECT_EQ(s.next(), Want::Read);
  }
}

TEST(Session, InputWhileOutputPendingIsQueuedInOrder) {
  HttpSession s;
  s.on_bytes(kGetRoot);
  s.on_bytes("GET /by");          // arrives before the first response was written
  s.on_bytes("tes/2 HTTP/1.1\r\n\r\n");
  EXPECT_EQ(drain_all(s), kHello + wire("200 OK", "application/octet-stream", "xx"));
}

TEST(Session, PartialWritesResumeExactly) {
  HttpSession s;
  s.on_bytes("GET /bytes/200000 HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\nGET /bytes/70000 HTTP/1.1\r\n\r\n");
  const std::size_t sizes[] = {1, 7, 65536, 3, 100000, 13, 4096, 70001};
  const auto out = drain(s, [&](std::size_t round) { return sizes[round % std::size(sizes)]; });
  EXPECT_EQ(out, wire("200 OK", "application/octet-stream", std::string(200000, 'x')) + kHello +
                     wire("200 OK", "application/octet-stream", std::string(70000, 'x')));
  EXPECT_EQ(s.next(), Want::Read);
  EXPECT_EQ(s.output_bytes(), 0u);
}

TEST(Session, ConnectionCloseFinishesAndIgnoresLaterRequests) {
  HttpSession s;
  s.on_bytes("GET / HTTP/1.1\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\n\r\n");
  EXPECT_EQ(s.requests(), 1u);
  EXPECT_EQ(drain_all(s), wire("200 OK", "text/plain", "Hello, World!", "Connection: close\r\n"));
  EXPECT_EQ(s.next(), Want::Finish);
  s.on_bytes(kGetRoot);  // what a lingering close drains is never answered
  EXPECT_EQ(s.next(), Want::Finish);
  EXPECT_FALSE(s.has_output());
}

TEST(Session, Http10ClosesAfterTheResponse) {
  HttpSession s;
  s.on_bytes("GET / HTTP/1.0\r\n\r\n");
  EXPECT_EQ(drain_all(s), wire("200 OK", "text/plain", "Hello, World!", "Connection: close\r\n"));
  EXPECT_EQ(s.next(), Want::Finish);
}

TEST(Session, Http10KeepAliveStaysOpen) {
  HttpSession s;
  s.on_bytes("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /bytes/1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  EXPECT_EQ(drain_all(s), wire("200 OK", "text/plain", "Hello, World!", "Connection: keep-alive\r\n") +
                              wire("200 OK", "application/octet-stream", "x", "Connection: keep-alive\r\n"));
  EXPECT_EQ(s.next(), Want::Read);
}

TEST(Session, ErrorAfterGoodRequestsAnswersThemThenErrorThenFinish) {
  HttpSession s;
  s.on_bytes(kGetRoot + "GET /x HTTP/1.1\r\n\r\nBROKEN\r\n\r\n" + kGetRoot);
  EXPECT_EQ(drain_all(s), kHello + wire("404 Not Found", "text/plain", "Not Found") +
                              test::error_wire("400 Bad Request", "Bad Request"));
  EXPECT_EQ(s.next(), Want::Finish);
}

TEST(Session, EachParserErrorFinishes) {
  const std::pair<std::string, std::string> cases[] = {
      {"GET / HTTP/1.1\r\nX: " + std::string(9000, 'a') + "\r\n\r\n",
       test::error_wire("431 Request Header Fields Too Large", "Request Header Fields Too Large")},
      {"POST /echo HTTP/1.1\r\nContent-Length: 1048577\r\n\r\n",
       test::error_wire("413 Content Too Large", "Content Too Large")},
      {"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
       test::error_wire("501 Not Implemented", "Not Implemented")},
      {"GET / HTTP/1.1\n\n", test::error_wire("400 Bad Request", "Bad Request")},
      {"GET /bytes/16777217 HTTP/1.1\r\n\r\n" + kGetRoot, test::error_wire("400 Bad Request", "Bad Request")},
  };
  for (const auto& [input, expected] : cases) {
    HttpSession s;
    s.on_bytes(input);
    EXPECT_EQ(drain_all(s), expected);
    EXPECT_EQ(s.next(), Want::Finish);
  }
}

TEST(Session, HeadLimitOneByteAtATime) {
  // 8193 head bytes trickling in: refused with 431 once the limit is passed, not buffered on.
  const std::string input = "GET / HTTP/1.1\r\nX: " + std::string(20000, 'a');
  HttpSession s;
  std::size_t fed = 0;
  while (fed < input.size() && s.next() == Want::Read) s.on_bytes(std::string_view(input).substr(fed++, 1));
  EXPECT_EQ(fed, kMaxHeaderBytes + 1);
  EXPECT_EQ(drain_all(s), test::error_wire("431 Request Header Fields Too Large", "Request Header Fields Too Large"));
}

TEST(Session, EchoOneMiBInUnevenPieces) {
  std::string body(kMaxBodyBytes, '\0');
  for (std::size_t i = 0; i < body.size(); ++i) body[i] = static_cast<char>((i * 31) ^ (i >> 9));
  const std::string input = "POST /echo HTTP/1.1\r\nContent-Length: 1048576\r\n\r\n" + body + kGetRoot;
  HttpSession s;
  std::size_t fed = 0, step = 1;
  while (fed < input.size()) {
    const std::size_t n = std::min(step, input.size() - fed);
    s.on_bytes(std::string_view(input).substr(fed, n));
    fed += n;
    step = step % 20011 * 7 + 3;  // uneven, up to ~140 KB
  }
  // The 1 MiB echo is above the output high-water mark, so the GET behind it waits its turn.
  EXPECT_EQ(s.requests(), 1u);
  const auto out = drain_all(s);
  EXPECT_EQ(s.requests(), 2u);
  EXPECT_TRUE(out == wire("200 OK", "application/octet-stream", body) + kHello) << "echo differs";
}

TEST(Session, RejectQueuesA503ThenFinish) {
  HttpSession s;
  s.reject(503);
  EXPECT_EQ(s.next(), Want::Write);
  EXPECT_EQ(drain_all(s), test::error_wire("503 Service Unavailable", "Service Unavailable"));
  EXPECT_EQ(s.next(), Want::Finish);
}

TEST(Session, BackpressurePausesParsingThenResumes) {
  // 200 pipelined requests for 50000 bytes each, all in one read, client not reading: the session
  // must stop answering once ~256 KiB of responses wait (here before a turn's 8 requests),
  // instead of queuing 10 MB of output.
  std::string input;
  const std::string one = "GET /bytes/50000 HTTP/1.1\r\n\r\n";
  for (int i = 0; i < 200; ++i) input += one;
  HttpSession s;
  s.on_bytes(input);
  const std::string resp = wire("200 OK", "application/octet-stream", std::string(50000, 'x'));
  EXPECT_LT(s.requests(), static_cast<std::size_t>(kRequestsPerTurn));
  EXPECT_LE(s.output_bytes(), kOutputHighWater + resp.size());
  EXPECT_GE(s.output_bytes(), kOutputHighWater);
  EXPECT_EQ(s.next(), Want::Write);

  // Draining in odd-sized writes, with a turn whenever the session asks for one, answers every
  // request, in order, and the queue never grows past the high-water mark plus one response.
  std::size_t max_queued = 0;
  std::string out;
  std::vector<iovec> iov(IOV_MAX);
  while (s.next() == Want::Write || s.next() == Want::Process) {
    if (s.next() == Want::Process) {
      s.process();
      continue;
    }
    max_queued = std::max(max_queued, s.output_bytes());
    const int n = s.gather(iov.data(), static_cast<int>(iov.size()));
    ASSERT_GT(n, 0);
    std::size_t wrote = 0;
    const std::size_t budget = 50000 + out.size() % 777;
    for (int i = 0; i < n && wrote < budget; ++i) {
      const std::size_t take = std::min(budget - wrote, iov[i].iov_len);
      out.append(static_cast<const char*>(iov[i].iov_base), take);
      wrote += take;
    }
    s.on_written(wrote);
  }
  EXPECT_LE(max_queued, kOutputHighWater + resp.size());
  EXPECT_EQ(s.requests(), 200u);
  ASSERT_EQ(out.size(), resp.size() * 200);
  for (std::size_t i = 0; i < 200; ++i) {
    ASSERT_EQ(out.compare(i * resp.size(), resp.size(), resp), 0) << "response " << i;
  }
  EXPECT_EQ(s.next(), Want::Read);
}

TEST(Session, ExpensiveRequestsGoOnePerTurn) {
  // The turn's time budget: pipelined handlers of 10 ms each (> kTurnBudget) are answered one
  // per turn, so a loop serving this connection gets back to the others after each of them.
  std::string input;
  for (int i = 0; i < 4; ++i) input += "GET /cpu/10000 HTTP/1.1\r\n\r\n";
  HttpSession s;
  s.on_bytes(input);
  EXPECT_EQ(s.requests(), 1u);
  int turns = 1;
  while (true) {
    while (s.next() == Want::Write) {  // write everything, but take no turn
      std::vector<iovec> iov(8);
      const int n = s.gather(iov.data(), 8);
      std::size_t wrote = 0;
      for (int i = 0; i < n; ++i) wrote += iov[i].iov_len;
      s.on_written(wrote);
    }
    if (s.next() != Want::Process) break;
    const std::size_t before = s.requests();
    s.process();
    EXPECT_EQ(s.requests() - before, 1u);
    ++turns;
  }
  EXPECT_EQ(turns, 4);
  EXPECT_EQ(s.requests(), 4u);
}

TEST(Session, BodyOneByteAtATimeIsLinear) {
  // Issue 10: a 1 MiB body in 1-byte reads behind an 8 KiB head. The session appends to its
  // pending input (which moves as it grows) and the parser must not examine the head again per
  // byte: parser work stays about three passes over the head, independent of the body.
  std::string head = "POST /echo HTTP/1.1\r\nContent-Length: 1048576\r\nX-Pad: ";
  head += std::string(kMaxHeaderBytes - head.size() - 4, 'p') + "\r\n\r\n";
  HttpSession s;
  for (char c : head) s.on_bytes(std::string_view(&c, 1));
  EXPECT_EQ(s.phase(), Phase::Busy);  // the head is complete: no header deadline for the body
  const std::size_t head_work = s.parser_work();
  for (std::size_t i = 0; i < kMaxBodyBytes; ++i) {
    const char c = static_cast<char>('0' + i % 10);
    s.on_bytes(std::string_view(&c, 1));
  }
  EXPECT_EQ(s.requests(), 1u);
  EXPECT_LE(head_work, 3 * head.size());
  EXPECT_EQ(s.parser_work(), head_work);
  const std::string out = drain_all(s);
  ASSERT_EQ(out.size(), wire("200 OK", "application/octet-stream", std::string(kMaxBodyBytes, 'x')).size());
  std::string tail;
  for (std::size_t i = kMaxBodyBytes - 10; i < kMaxBodyBytes; ++i) tail += static_cast<char>('0' + i % 10);
  EXPECT_EQ(out.substr(out.size() - 10), tail);
}

TEST(Session, OneTurnAnswersAtMostTheTurnBound) {
  // Fairness: 40 pipelined requests in one read are answered kRequestsPerTurn per turn; the
  // session asks for another turn (Process) instead of running them all at once.
  std::string input;
  for (int i = 0; i < 40; ++i) input += kGetRoot;
  HttpSession s;
  s.on_bytes(input);
  EXPECT_EQ(s.requests(), static_cast<std::size_t>(kRequestsPerTurn));
  EXPECT_EQ(s.phase(), Phase::Busy);
  std::string out;
  int turns = 1;
  while (true) {
    std::vector<iovec> iov(64);
    while (s.next() == Want::Write) {  // write everything, but take no turn
      const int n = s.gather(iov.data(), 64);
      std::size_t wrote = 0;
      for (int i = 0; i < n; ++i) {
        out.append(static_cast<const char*>(iov[i].iov_base), iov[i].iov_len);
        wrote += iov[i].iov_len;
      }
      s.on_written(wrote);
    }
    if (s.next() != Want::Process) break;
    const std::size_t before = s.requests();
    s.process();
    EXPECT_LE(s.requests() - before, static_cast<std::size_t>(kRequestsPerTurn));
    ++turns;
  }
  EXPECT_EQ(turns, 40 / kRequestsPerTurn);
  EXPECT_EQ(s.requests(), 40u);
  std::string expected;
  for (int i = 0; i < 40; ++i) expected += kHello;
  EXPECT_EQ(out, expected);
  EXPECT_EQ(s.next(), Want::Read);
  EXPECT_EQ(s.phase(), Phase::Idle);
}

TEST(Session, BytesArrivingDuringABacklogKeepTheirOrder) {
  std::string input;
  for (int i = 0; i < 10; ++i) input += "GET /bytes/" + std::to_string(i) + " HTTP/1.1\r\n\r\n";
  HttpSession s;
  s.on_bytes(input);
  s.on_bytes("GET /bytes/10 HTTP/1.1\r\n\r\n");  // arrives while two requests wait their turn
  std::string expected;
  for (int i = 0; i <= 10; ++i)
    expected += wire("200 OK", "application/octet-stream", std::string(static_cast<std::size_t>(i), 'x'));
  EXPECT_EQ(drain_all(s), expected);
  EXPECT_EQ(s.requests(), 11u);
}

TEST(Session, PhaseFollowsTheRequest) {
  HttpSession s;
  EXPECT_EQ(s.phase(), Phase::Idle);
  s.on_bytes("GET / HT");
  EXPECT_EQ(s.phase(), Phase::Head);
  s.on_bytes("TP/1.1\r\n\r\n");
  EXPECT_EQ(s.phase(), Phase::Busy);  // a response waits to be written
  drain_all(s);
  EXPECT_EQ(s.phase(), Phase::Idle);
  s.on_bytes("POST /echo HTTP/1.1\r\nContent-Length: 5\r\n\r\nab");
  EXPECT_EQ(s.phase(), Phase::Busy);  // head complete, body arriving: no header deadline
  s.on_bytes("cde");
  drain_all(s);
  EXPECT_EQ(s.phase(), Phase::Idle);
}

TEST(Session, RejectWithTimeoutQueues408AndDropsInput) {
  HttpSession s;
  s.on_bytes("GET / HTTP/1.1\r\nHost: x");
  s.reject(408);
  EXPECT_EQ(drain_all(s), test::error_wire("408 Request Timeout", "Request Timeout"));
  EXPECT_EQ(s.next(), Want::Finish);
}

TEST(Session, PipelinedCloseAfterBackpressureStillFinishes) {
  std::string input;
  for (int i = 0; i < 5; ++i) input += "GET /bytes/100000 HTTP/1.1\r\n\r\n";
  input += "GET / HTTP/1.1\r\nConnection: close\r\n\r\n" + kGetRoot;
  HttpSession s;
  s.on_bytes(input);
  const auto out = drain(s, [](std::size_t) { return std::size_t{30000}; });
  std::string expected;
  for (int i = 0; i < 5; ++i) expected += wire("200 OK", "application/octet-stream", std::string(100000, 'x'));
  expected += wire("200 OK", "text/plain", "Hello, World!", "Connection: close\r\n");
  EXPECT_TRUE(out == expected) << "got " << out.size() << " bytes, expected " << expected.size();
  EXPECT_EQ(s.next(), Want::Finish);
  EXPECT_EQ(s.requests(), 6u);
}

// Classifies where an iovec points: the response head, the shared filler block, or elsewhere.
bool inside(const iovec& v, std::string_view region) {
  const char* p = static_cast<const char*>(v.iov_base);
  return p >= region.data() && p + v.iov_len <= region.data() + region.size();
}

TEST(Session, GatherServes16MiBFromTheSharedBlock) {
  HttpSession s;
  s.on_bytes("GET /bytes/16777216 HTTP/1.1\r\n\r\n");
  const std::string head =
      "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 16777216\r\n\r\n";
  ASSERT_EQ(s.output_bytes(), head.size() + 16777216u);

  std::vector<iovec> iov(IOV_MAX);
  const int n = s.gather(iov.data(), static_cast<int>(iov.size()));
  ASSERT_GE(n, 2);
  ASSERT_EQ(iov[0].iov_len, head.size());
  EXPECT_EQ(std::string_view(static_cast<const char*>(iov[0].iov_base), iov[0].iov_len), head);
  // The body: every iovec points into the one read-only block of 'x', none into a 16 MiB copy.
  const auto block = filler_block();
  ASSERT_FALSE(block.empty());
  EXPECT_LT(block.size(), 16777216u);
  EXPECT_EQ(std::count(block.begin(), block.end(), 'x'), static_cast<long>(block.size()));
  std::size_t body = 0;
  for (int i = 1; i < n; ++i) {
    EXPECT_TRUE(inside(iov[i], block)) << "iovec " << i << " is not in the shared block";
    body += iov[i].iov_len;
  }
  // With IOV_MAX entries the whole body fits (block >= 16 KiB); either way nothing exceeds it.
  EXPECT_LE(body, 16777216u);
  if (block.size() * (IOV_MAX - 1) >= 16777216u) {
    EXPECT_EQ(body, 16777216u);
  }

  // A small iovec budget is respected, and an odd partial write resumes mid-block.
  iovec few[3];
  ASSERT_EQ(s.gather(few, 3), 3);
  s.on_written(head.size() + 12345);
  ASSERT_EQ(s.gather(few, 3), 3);
  EXPECT_TRUE(inside(few[0], block));
  EXPECT_EQ(few[0].iov_len, block.size() - 12345 % block.size());

  // Writing it all in 1 MB sends returns the session to Read with every byte an 'x'.
  std::size_t sent = head.size() + 12345;
  while (s.next() == Want::Write) {
    const int k = s.gather(iov.data(), static_cast<int>(iov.size()));
    ASSERT_GT(k, 0);
    std::size_t w = 0;
    for (int i = 0; i < k && w < (1u << 20); ++i) {
      const std::size_t take = std::min<std::size_t>((1u << 20) - w, iov[i].iov_len);
      const char* p = static_cast<const char*>(iov[i].iov_base);
      ASSERT_TRUE(std::all_of(p, p + take, [](char c) { return c == 'x'; }));
      w += take;
    }
    s.on_written(w);
    sent += w;
  }
  EXPECT_EQ(sent, head.size() + 16777216u);
  EXPECT_EQ(s.next(), Want::Read);
}

TEST(Session, GatherNeverExceedsMax) {
  HttpSession s;
  std::string input;
  for (int i = 0; i < kRequestsPerTurn; ++i) input += "GET /bytes/5 HTTP/1.1\r\n\r\n";
  s.on_bytes(input);
  for (int max : {1, 2, 5, 16}) {  // 8 responses of head + body: 16 iovecs in all
    std::vector<iovec> iov(static_cast<std::size_t>(max) + 1);
    iov[static_cast<std::size_t>(max)].iov_len = 4242;  // sentinel
    const int n = s.gather(iov.data(), max);
    EXPECT_EQ(n, max);
    EXPECT_EQ(iov[static_cast<std::size_t>(max)].iov_len, 4242u);
  }
}

TEST(Session, ManyRequestsOneKeepAliveConnection) {
  HttpSession s;
  for (int i = 0; i < 100; ++i) {
    s.on_bytes("GET /bytes/" + std::to_string(i) + " HTTP/1.1\r\n\r\n");
    ASSERT_EQ(drain_all(s), wire("200 OK", "application/octet-stream", std::string(static_cast<std::size_t>(i), 'x')));
    ASSERT_EQ(s.next(), Want::Read);
  }
  EXPECT_EQ(s.requests(), 100u);
}

// The deadlines every model derives from the session (docs/architecture.md §3), on a fake clock.
TEST(Deadline, IdleThenHeaderFromTheFirstByteThenNoneWhileBusy) {
  using namespace std::chrono_literals;
  const Timeouts t{10s, 3s};
  const Clock::time_point t0{};
  const auto at = [&](auto d) { return t0 + 1h + d; };  // steer clear of the epoch sentinel
  HttpSession s;
  ConnectionDeadline d;
  EXPECT_TRUE(d.update(s, t, at(0s)));
  EXPECT_EQ(d.phase(), Phase::Idle);
  EXPECT_EQ(d.at(), at(10s));
  EXPECT_FALSE(d.update(s, t, at(5s))) << "a quiet connection's deadline must not move";
  s.on_bytes("GET / HT");
  EXPECT_TRUE(d.update(s, t, at(6s)));
  EXPECT_EQ(d.phase(), Phase::Head);
  EXPECT_EQ(d.at(), at(9s));  // 3 s from the first byte of the head
  s.on_bytes("TP/1.1\r\nX: y");
  EXPECT_FALSE(d.update(s, t, at(8s))) << "more head bytes must not extend the header deadline";
  s.on_bytes("\r\n\r\n");
  EXPECT_TRUE(d.update(s, t, at(8s)));
  EXPECT_EQ(d.phase(), Phase::Busy);  // a response waits to be written: no deadline
  EXPECT_FALSE(d.due(at(1000s)));
  EXPECT_EQ(drain_all(s), kHello);
  EXPECT_TRUE(d.update(s, t, at(20s)));  // keep-alive: idle again, from the response
  EXPECT_EQ(d.phase(), Phase::Idle);
  EXPECT_EQ(d.at(), at(30s));
  EXPECT_TRUE(d.due(at(30s)));
  EXPECT_EQ(d.expire(s), Expiry::Close);  // idle: closed without a word
  EXPECT_FALSE(s.has_output());
}

TEST(Deadline, HeaderTimeoutQueues408AndFinishes) {
  using namespace std::chrono_literals;
  const Timeouts t{10s, 3s};
  const Clock::time_point now = Clock::time_point{} + 1h;
  HttpSession s;
  ConnectionDeadline d;
  d.update(s, t, now);
  s.on_bytes("POST /echo HTTP/1.1\r\nContent-Le");
  d.update(s, t, now);
  ASSERT_TRUE(d.due(now + 3s));
  EXPECT_EQ(d.expire(s), Expiry::Respond);
  EXPECT_EQ(drain_all(s), test::error_wire("408 Request Timeout", "Request Timeout"));
  EXPECT_EQ(s.next(), Want::Finish);
  EXPECT_FALSE(d.update(s, t, now + 4s)) << "after the 408 only lingering close follows";
}

}  // namespace
}  // namespace cmbench::http
