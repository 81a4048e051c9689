// The load generator's incremental response parser: every split point, pipelined responses,
// framing (Content-Length, chunked, until close, HEAD/204/304) and malformed input.
#include "response_parser.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace {

using cmbench::loadgen::ResponseParser;
using Result = ResponseParser::Result;

const std::string kHello = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, World!";

struct Parsed {
  std::vector<int> statuses;
  std::vector<bool> keep_alive;
  bool error = false;
  bool pending = false;  // ended inside a response
};

// Feeds input in pieces of `step` bytes (0 = all at once), restarting after each response.
Parsed parse_all(const std::string& input, std::size_t step = 0, bool head = false) {
  Parsed out;
  ResponseParser p;
  p.start(head);
  std::size_t pos = 0;
  while (pos < input.size()) {
    const std::size_t len = step == 0 ? input.size() - pos : std::min(step, input.size() - pos);
    std::size_t off = 0;
    while (off < len) {
      std::size_t used = 0;
      const Result r = p.feed(input.data() + pos + off, len - off, used);
      off += used;
      if (r == Result::error) {
        out.error = true;
        return out;
      }
      if (r == Result::need_more) break;
      out.statuses.push_back(p.status());
      out.keep_alive.push_back(p.keep_alive());
      p.start(head);
    }
    pos += len;
  }
  out.pending = p.started();
  return out;
}

TEST(ResponseParser, CompleteResponseInOneRead) {
  ResponseParser p;
  p.start(false);
  std::size_t used = 0;
  ASSERT_EQ(p.feed(kHello.data(), kHello.size(), used), Result::complete);
  EXPECT_EQ(used, kHello.size());
  EXPECT_EQ(p.status(), 200);
  EXPECT_EQ(p.content_length(), 13u);
  EXPECT_TRUE(p.keep_alive());
}

TEST(ResponseParser, EverySplitPoint) {
  const std::string two = kHello + kHello;
  for (std::size_t step = 1; step <= two.size(); ++step) {
    const Parsed r = parse_all(two, step);
    ASSERT_FALSE(r.error) << "step " << step;
    ASSERT_EQ(r.statuses.size(), 2u) << "step " << step;
    EXPECT_FALSE(r.pending);
  }
  // Also every two-piece split.
  for (std::size_t cut = 1; cut < kHello.size(); ++cut) {
    ResponseParser p;
    p.start(false);
    std::size_t used = 0;
    ASSERT_EQ(p.feed(kHello.data(), cut, used), Result::need_more);
    ASSERT_EQ(used, cut);
    ASSERT_EQ(p.feed(kHello.data() + cut, kHello.size() - cut, used), Result::complete) << cut;
    ASSERT_EQ(used, kHello.size() - cut);
  }
}

TEST(ResponseParser, PipelinedResponsesStopAtEachEnd) {
  std::string many;
  for (int i = 0; i < 16; ++i) many += kHello;
  const Parsed r = parse_all(many);
  ASSERT_FALSE(r.error);
  EXPECT_EQ(r.statuses.size(), 16u);
}

TEST(ResponseParser, StatusCodesAndConnectionHeader) {
  Parsed r = parse_all("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
  ASSERT_EQ(r.statuses, std::vector<int>{404});
  EXPECT_TRUE(r.keep_alive[0]);
  r = parse_all("HTTP/1.1 400 Bad Request\r\nCONNECTION: Close\r\nContent-Length: 3\r\n\r\nbad");
  ASSERT_EQ(r.statuses, std::vector<int>{400});
  EXPECT_FALSE(r.keep_alive[0]);
  r = parse_all("HTTP/1.1 200 OK\r\nConnection: keep-alive, close\r\nContent-Length: 0\r\n\r\n");
  EXPECT_FALSE(r.keep_alive[0]);
  r = parse_all("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n");
  EXPECT_FALSE(r.keep_alive[0]);  // HTTP/1.0 closes by default
  r = parse_all("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n");
  EXPECT_TRUE(r.keep_alive[0]);
  r = parse_all("HTTP/1.1 200 OK\r\nX-Connection: close\r\nContent-Length: 0\r\n\r\n");
  EXPECT_TRUE(r.keep_alive[0]);  // only the Connection header counts
  r = parse_all("HTTP/1.1 204\r\n\r\n");  // no reason phrase, no body
  EXPECT_EQ(r.statuses, std::vector<int>{204});
}

TEST(ResponseParser, HeadAndBodylessStatusesIgnoreContentLength) {
  const std::string head = "HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\n";
  const Parsed r = parse_all(head + head, 0, /*head=*/true);
  ASSERT_FALSE(r.error);
  EXPECT_EQ(r.statuses.size(), 2u);
  EXPECT_EQ(parse_all("HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n").statuses.size(), 1u);
}

TEST(ResponseParser, InformationalResponseIsSkipped) {
  const Parsed r = parse_all("HTTP/1.1 100 Continue\r\n\r\n" + kHello);
  EXPECT_EQ(r.statuses, std::vector<int>{200});
}

TEST(ResponseParser, ChunkedBodies) {
  const std::string chunked =
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5\r\nHello\r\n8;ext=1\r\n, World!\r\n0\r\nTrailer: x\r\n\r\n";
  for (std::size_t step : {0, 1, 3, 7}) {
    const Parsed r = parse_all(chunked + kHello, step);
    ASSERT_FALSE(r.error) << step;
    EXPECT_EQ(r.statuses.size(), 2u) << step;
  }
  EXPECT_TRUE(parse_all("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n").error);
}

TEST(ResponseParser, BodyUntilClose) {
  ResponseParser p;
  p.start(false);
  const std::string r = "HTTP/1.1 200 OK\r\n\r\nsome bytes";
  std::size_t used = 0;
  ASSERT_EQ(p.feed(r.data(), r.size(), used), Result::need_more);
  EXPECT_TRUE(p.completes_at_eof());
  EXPECT_FALSE(p.keep_alive());
}

TEST(ResponseParser, TruncatedBodyIsPendingAtEof) {
  ResponseParser p;
  p.start(false);
  const std::string r = "HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nHello";
  std::size_t used = 0;
  ASSERT_EQ(p.feed(r.data(), r.size(), used), Result::need_more);
  EXPECT_TRUE(p.started());
  EXPECT_FALSE(p.completes_at_eof());  // EOF now means a short body: a parse error
}

TEST(ResponseParser, MalformedInput) {
  for (const char* bad : {
           "HTTX/1.1 200 OK\r\n\r\n",
           "HTTP/2.0 200 OK\r\n\r\n",
           "HTTP/1.1 2x0 OK\r\n\r\n",
           "HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n",
           "HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n",
           "HTTP/1.1 200 OK\r\nContent-Length: 1 2\r\n\r\n",
           "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
           "HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
           "HTTP/1.1 200 OK\r\n folded\r\n\r\n",
           "HTTP/1.1 200 OK\rX\n\r\n",
           "garbage",
       }) {
    EXPECT_TRUE(parse_all(bad).error) << bad;
  }
  // Bytes after a complete response that are not a response: a too-long body shows up here.
  EXPECT_TRUE(parse_all("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nabcd").error);
}

TEST(ResponseParser, LargeContentLengthIsSkippedByCounting) {
  ResponseParser p;
  p.start(false);
  const std::string h = "HTTP/1.1 200 OK\r\nContent-Length: 1048576\r\n\r\n";
  std::size_t used = 0;
  ASSERT_EQ(p.feed(h.data(), h.size(), used), Result::need_more);
  const std::string chunk(65536, 'x');
  for (int i = 0; i < 15; ++i) ASSERT_EQ(p.feed(chunk.data(), chunk.size(), used), Result::need_more);
  ASSERT_EQ(p.feed(chunk.data(), chunk.size(), used), Result::complete);
  EXPECT_EQ(used, chunk.size());
}

}  // namespace
