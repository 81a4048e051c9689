// RequestParser: what it accepts, what it refuses with which status, its limits at and one past
// each boundary, and that any split of the input (one byte at a time, many requests at once)
// gives the same result.
#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

#include "http_parser.hpp"
#include "test_util.hpp"

namespace cmbench::http {
namespace {

ParseResult parse_whole(std::string_view input) {
  RequestParser parser;
  return parser.parse(input);
}

// Feeds prefixes growing by one byte, as a server reading one byte per recv() would. Every
// prefix short of `complete_at` must say NeedMore; returns the first non-NeedMore result.
ParseResult parse_bytewise(std::string_view input, std::size_t* decided_at = nullptr) {
  RequestParser parser;
  for (std::size_t n = 1; n <= input.size(); ++n) {
    auto r = parser.parse(input.substr(0, n));
    if (r.status != ParseStatus::NeedMore) {
      if (decided_at) *decided_at = n;
      return r;
    }
  }
  if (decided_at) *decided_at = input.size() + 1;
  return ParseResult{};
}

// A head of exactly `total` bytes: request line, one padding header, blank line.
std::string head_of_size(std::size_t total) {
  const std::string start = "GET / HTTP/1.1\r\nX-Pad: ";
  const std::string end = "\r\n\r\n";
  return start + std::string(total - start.size() - end.size(), 'a') + end;
}

TEST(Parser, SimpleGet) {
  const std::string req = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
  const auto r = parse_whole(req);
  ASSERT_EQ(r.status, ParseStatus::Complete);
  EXPECT_EQ(r.consumed, req.size());
  EXPECT_EQ(r.request.method, Method::Get);
  EXPECT_EQ(r.request.method_text, "GET");
  EXPECT_EQ(r.request.target, "/");
  EXPECT_EQ(r.request.version_minor, 1);
  EXPECT_TRUE(r.request.keep_alive);
  EXPECT_EQ(r.request.content_length, 0u);
  EXPECT_TRUE(r.request.body.empty());
}

TEST(Parser, NoHeadersAtAll) {
  const auto r = parse_whole("GET /bytes/5 HTTP/1.1\r\n\r\n");
  ASSERT_EQ(r.status, ParseStatus::Complete);
  EXPECT_EQ(r.request.target, "/bytes/5");
}

TEST(Parser, MethodsAreClassifiedCaseSensitively) {
  EXPECT_EQ(parse_whole("HEAD / HTTP/1.1\r\n\r\n").request.method, Method::Head);
  EXPECT_EQ(parse_whole("POST /echo HTTP/1.1\r\n\r\n").request.method, Method::Post);
  const auto del = parse_whole("DELETE / HTTP/1.1\r\n\r\n");
  ASSERT_EQ(del.status, ParseStatus::Complete);
  EXPECT_EQ(del.request.method, Method::Other);
  EXPECT_EQ(del.request.method_text, "DELETE");
  // Methods are case-sensitive tokens: "get" is some other method, not GET.
  const auto lower = parse_whole("get / HTTP/1.1\r\n\r\n");
  ASSERT_EQ(lower.status, ParseStatus::Complete);
  EXPECT_EQ(lower.request.method, Method::Other);
}

TEST(Parser, PostBodyAndContentLengthMatch) {
  const std::string req = "POST /echo HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello";
  const auto r = parse_whole(req);
  ASSERT_EQ(r.status, ParseStatus::Complete);
  EXPECT_EQ(r.consumed, req.size());
  EXPECT_EQ(r.request.content_length, 5u);
  EXPECT_EQ(r.request.body, "hello");
}

TEST(Parser, BodyMayContainAnyBytes) {
  std::string body;
  for (int c = 0; c < 256; ++c) body.push_back(static_cast<char>(c));
  const std::string req = "POST /echo HTTP/1.1\r\nContent-Length: 256\r\n\r\n" + body;
  const auto r = parse_whole(req);
  ASSERT_EQ(r.status, ParseStatus::Complete);
  EXPECT_EQ(r.request.body, body);
}

TEST(Parser, HeaderNamesAreCaseInsensitive) {
  const auto r = parse_whole("POST /echo HTTP/1.1\r\ncOnTeNt-LeNgTh: 3\r\nCONNECTION: CLOSE\r\n\r\nabc");
  ASSERT_EQ(r.status, ParseStatus::Complete);
  EXPECT_EQ(r.request.body, "abc");
  EXPECT_FALSE(r.request.keep_alive);
}

TEST(Parser, OptionalWhitespaceAroundValues) {
  const auto r = parse_whole("POST /echo HTTP/1.1\r\nContent-Length:\t 2 \t\r\n\r\nok");
  ASSERT_EQ(r.status, ParseStatus::Complete);
  EXPECT_EQ(r.request.body, "ok");
  const auto bare = parse_whole("POST /echo HTTP/1.1\r\nContent-Length:2\r\n\r\nok");
  ASSERT_EQ(bare.status, ParseStatus::Complete);
  EXPECT_EQ(bare.request.body, "ok");
}

TEST(Parser, KeepAliveDefaultsAndConnectionHeader) {
  EXPECT_TRUE(parse_whole("GET / HTTP/1.1\r\n\r\n").request.keep_alive);
  EXPECT_FALSE(parse_whole("GET / HTTP/1.1\r\nConnection: close\r\n\r\n").request.keep_alive);
  EXPECT_FALSE(parse_whole("GET / HTTP/1.0\r\n\r\n").request.keep_alive);
  EXPECT_EQ(parse_whole("GET / HTTP/1.0\r\n\r\n").request.version_minor, 0);
  EXPECT_TRUE(parse_whole("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").request.keep_alive);
  EXPECT_TRUE(parse_whole("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").request.keep_alive);
  // A token list: "close" anywhere in it closes.
  EXPECT_FALSE(parse_whole("GET / HTTP/1.1\r\nConnection: foo, close\r\n\r\n").request.keep_alive);
  EXPECT_TRUE(parse_whole("GET / HTTP/1.0\r\nConnection: upgrade, keep-alive\r\n\r\n").request.keep_alive);
  // Other headers that merely contain the word do not count.
  EXPECT_TRUE(parse_whole("GET / HTTP/1.1\r\nX-Connection: close\r\n\r\n").request.keep_alive);
}

TEST(Parser, HostHeaderNotRequired) {
  EXPECT_EQ(parse_whole("GET / HTTP/1.1\r\n\r\n").status, ParseStatus::Complete);
}

TEST(Parser, DuplicateEqualContentLengthAccepted) {
  const auto r = parse_whole("POST /echo HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nab");
  ASSERT_EQ(r.status, ParseStatus::Complete);
  EXPECT_EQ(r.request.body, "ab");
}

TEST(Parser, QueryStringKeptInTarget) {
  const auto r = parse_whole("GET /bytes/3?x=1&y=2 HTTP/1.1\r\n\r\n");
  ASSERT_EQ(r.status, ParseStatus::Complete);
  EXPECT_EQ(r.request.target, "/bytes/3?x=1&y=2");
}

TEST(Parser, OneByteAtATimeEqualsWhole) {
  const std::vector<std::string> requests = {
      "GET / HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n",
      "POST /echo HTTP/1.1\r\nContent-Length: 11\r\n\r\nhello world",
      "HEAD /bytes/16777216 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
  };
  for (const auto& req : requests) {
    std::size_t at = 0;
    const auto r = parse_bytewise(req, &at);
    ASSERT_EQ(r.status, ParseStatus::Complete) << req;
    EXPECT_EQ(at, req.size()) << "decided before the last byte: " << req;
    EXPECT_EQ(r.consumed, req.size());
    const auto whole = parse_whole(req);
    EXPECT_EQ(r.request.target, whole.request.target);
    EXPECT_EQ(r.request.body, whole.request.body);
    EXPECT_EQ(r.request.keep_alive, whole.request.keep_alive);
    EXPECT_EQ(r.request.method, whole.request.method);
  }
}

TEST(Parser, BodyInUnevenPieces) {
  const std::string body(100000, 'b');
  const std::string req = "POST /echo HTTP/1.1\r\nContent-Length: 100000\r\n\r\n" + body;
  RequestParser parser;
  std::size_t n = 0;
  std::size_t step = 1;
  ParseResult r;
  while (n < req.size()) {
    n = std::min(req.size(), n + step);
    step = step * 3 + 1;  // 1, 4, 13, 40, ... crosses the head/body boundary mid-piece
    r = parser.parse(std::string_view(req).substr(0, n));
    if (n < req.size()) {
      ASSERT_EQ(r.status, ParseStatus::NeedMore) << n;
    }
  }
  ASSERT_EQ(r.status, ParseStatus::Complete);
  EXPECT_EQ(r.request.body, body);
}

// Linear parsing (issue 10): a 1 MiB body sent one byte per segment behind an 8 KiB head. The
// head is examined once (line ends, then its fields); each body byte only compares a length.
// Re-parsing the head per body piece, as the parser once did, makes work() ~8 GiB here.
TEST(ParserLinear, BodyOneByteAtATimeBehindAFullHeadExaminesTheHeadOnce) {
  std::string head = "POST /echo HTTP/1.1\r\nContent-Length: 1048576\r\nX-Pad: ";
  head += std::string(8192 - head.size() - 4, 'a') + "\r\n\r\n";
  ASSERT_EQ(head.size(), kMaxHeaderBytes);
  std::string input;  // grows like a session's pending input: the buffer moves as it does
  RequestParser parser;
  for (char c : head) {
    input.push_back(c);
    ASSERT_EQ(parser.parse(input).status, ParseStatus::NeedMore);
  }
  const std::size_t head_work = parser.work();
  ParseResult r;
  for (std::size_t i = 0; i < kMaxBodyBytes; ++i) {
    input.push_back(static_cast<char>('a' + i % 26));
    r = parser.parse(input);
    if (i + 1 < kMaxBodyBytes) {
      ASSERT_EQ(r.status, ParseStatus::NeedMore) << i;
    }
  }
  ASSERT_EQ(r.status, ParseStatus::Complete);
  EXPECT_EQ(r.consumed, head.size() + kMaxBodyBytes);
  EXPECT_EQ(r.request.target, "/echo");
  EXPECT_EQ(r.request.method_text, "POST");
  EXPECT_EQ(r.request.body.size(), kMaxBodyBytes);
  EXPECT_EQ(r.request.body.data(), input.data() + head.size());
  // Scanning the head for line ends, its request line and its fields: about 3 passes.
  EXPECT_LE(head_work, 3 * head.size());
  EXPECT_EQ(parser.work(), head_work) << "body bytes made the parser examine the head again";
}

// The head's views are rebuilt from offsets on the call that completes the request, so they
// point into the buffer of that call even when the earlier calls saw another buffer.
TEST(ParserLinear, ViewsPointIntoTheLatestBufferAfterItMoved) {
  const std::string head = "POST /echo?x=1 HTTP/1.0\r\nContent-Length: 5\r\n\r\n";
  RequestParser parser;
  std::string first = head + "he";
  ASSERT_EQ(parser.parse(first).status, ParseStatus::NeedMore);
  const std::string second = first + "llo";  // a new allocation, as a growing buffer gets
  first.assign(first.size(), '#');           // the old bytes are gone
  const auto r = parser.parse(second);
  ASSERT_EQ(r.status, ParseStatus::Complete);
  EXPECT_EQ(r.request.method_text, "POST");
  EXPECT_EQ(r.request.target, "/echo?x=1");
  EXPECT_EQ(r.request.body, "hello");
  EXPECT_FALSE(r.request.keep_alive);
  EXPECT_EQ(r.request.version_minor, 0);
  EXPECT_GE(r.request.target.data(), second.data());
  EXPECT_LT(r.request.target.data(), second.data() + second.size());
}

// A refused head stays refused on a later call (the caller should stop, but must not get a
// request built from half-set state if it does not).
TEST(ParserLinear, RefusedHeadStaysRefused) {
  RequestParser parser;
  const std::string bad = "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
  EXPECT_EQ(parser.parse(bad).error_status, 501);
  EXPECT_EQ(parser.parse(bad + "5\r\n").error_status, 501);
}

TEST(Parser, ManyRequestsInOneBuffer) {
  const std::vector<std::string> reqs = {
      "GET / HTTP/1.1\r\n\r\n",
      "POST /echo HTTP/1.1\r\nContent-Length: 4\r\n\r\nGET ",  // body that looks like a request
      "HEAD /bytes/7 HTTP/1.1\r\n\r\n",
      "GET /sleep/0 HTTP/1.1\r\nConnection: close\r\n\r\n",
  };
  std::string all;
  for (const auto& r : reqs) all += r;
  RequestParser parser;
  std::string_view rest = all;
  for (const auto& expected : reqs) {
    const auto r = parser.parse(rest);
    ASSERT_EQ(r.status, ParseStatus::Complete);
    ASSERT_EQ(r.consumed, expected.size());
    ASSERT_LE(r.consumed, rest.size());
    rest.remove_prefix(r.consumed);
    parser.reset();
  }
  EXPECT_TRUE(rest.empty());
}

TEST(Parser, TrailingPartialRequestNeedsMore) {
  const std::string first = "GET / HTTP/1.1\r\n\r\n";
  const std::string all = first + "GET /byt";
  RequestParser parser;
  const auto r = parser.parse(all);
  ASSERT_EQ(r.status, ParseStatus::Complete);
  EXPECT_EQ(r.consumed, first.size());
  parser.reset();
  EXPECT_EQ(parser.parse(std::string_view(all).substr(r.consumed)).status, ParseStatus::NeedMore);
}

// --- limits ----------------------------------------------------------------------------------

TEST(ParserLimits, HeadOf8192BytesAccepted) {
  const auto head = head_of_size(kMaxHeaderBytes);
  ASSERT_EQ(head.size(), 8192u);
  const auto r = parse_whole(head);
  ASSERT_EQ(r.status, ParseStatus::Complete);
  EXPECT_EQ(r.consumed, 8192u);
  EXPECT_EQ(parse_bytewise(head).status, ParseStatus::Complete);
}

TEST(ParserLimits, HeadOf8193BytesIs431) {
  const auto head = head_of_size(kMaxHeaderBytes + 1);
  ASSERT_EQ(head.size(), 8193u);
  const auto r = parse_whole(head);
  ASSERT_EQ(r.status, ParseStatus::Error);
  EXPECT_EQ(r.error_status, 431);
  std::size_t at = 0;
  const auto b = parse_bytewise(head, &at);
  ASSERT_EQ(b.status, ParseStatus::Error);
  EXPECT_EQ(b.error_status, 431);
}

TEST(ParserLimits, EndlessHeadRefusedOnceItPassesTheLimit) {
  // No blank line ever comes: refused as soon as byte 8193 arrives, not buffered further.
  const std::string req = "GET / HTTP/1.1\r\nX-Pad: " + std::string(20000, 'a');
  std::size_t at = 0;
  const auto r = parse_bytewise(req, &at);
  ASSERT_EQ(r.status, ParseStatus::Error);
  EXPECT_EQ(r.error_status, 431);
  EXPECT_EQ(at, kMaxHeaderBytes + 1);
  EXPECT_EQ(parse_whole(std::string_view(req).substr(0, kMaxHeaderBytes)).status,
            ParseStatus::NeedMore);
}

TEST(ParserLimits, LongRequestLineIs431) {
  const std::string req = "GET /" + std::string(9000, 'a') + " HTTP/1.1\r\n\r\n";
  const auto r = parse_whole(req);
  ASSERT_EQ(r.status, ParseStatus::Error);
  EXPECT_EQ(r.error_status, 431);
}

TEST(ParserLimits, BodyOf1MiBAccepted) {
  const std::string body(kMaxBodyBytes, 'z');
  const std::string head = "POST /echo HTTP/1.1\r\nContent-Length: 1048576\r\n\r\n";
  EXPECT_EQ(parse_whole(head).status, ParseStatus::NeedMore);
  const auto r = parse_whole(head + body);
  ASSERT_EQ(r.status, ParseStatus::Complete);
  EXPECT_EQ(r.request.content_length, 1048576u);
  EXPECT_EQ(r.request.body.size(), 1048576u);
  EXPECT_EQ(r.consumed, head.size() + body.size());
}

TEST(ParserLimits, BodyOf1MiBPlusOneIs413BeforeTheBodyArrives) {
  const auto r = parse_whole("POST /echo HTTP/1.1\r\nContent-Length: 1048577\r\n\r\n");
  ASSERT_EQ(r.status, ParseStatus::Error);
  EXPECT_EQ(r.error_status, 413);
}

TEST(ParserLimits, HugeContentLengthIs413NotOverflow) {
  for (const char* n : {"18446744073709551616", "99999999999999999999999999999", "4294967296"}) {
    const auto r = parse_whole(std::string("POST /echo HTTP/1.1\r\nContent-Length: ") + n + "\r\n\r\n");
    ASSERT_EQ(r.status, ParseStatus::Error) << n;
    EXPECT_EQ(r.error_status, 413) << n;
  }
}

// --- errors ----------------------------------------------------------------------------------

void expect_error(std::string_view req, int status) {
  const auto r = parse_whole(req);
  EXPECT_EQ(r.status, ParseStatus::Error) << testing::PrintToString(std::string(req));
  EXPECT_EQ(r.error_status, status) << testing::PrintToString(std::string(req));
  // The same verdict when the bytes trickle in.
  const auto b = parse_bytewise(req);
  EXPECT_EQ(b.status, ParseStatus::Error) << "bytewise " << testing::PrintToString(std::string(req));
  EXPECT_EQ(b.error_status, status) << "bytewise " << testing::PrintToString(std::string(req));
}

TEST(ParserErrors, MalformedRequestLineIs400) {
  for (const char* req : {
           "GET\r\n\r\n",
           "GET /\r\n\r\n",                       // no version
           "GET / HTTP/1.1 extra\r\n\r\n",        // too many parts
           "GET  / HTTP/1.1\r\n\r\n",             // double space
           "GET / HTTP/1.1 \r\n\r\n",             // trailing space
           " GET / HTTP/1.1\r\n\r\n",             // leading space
           "GET\t/\tHTTP/1.1\r\n\r\n",            // tabs are not SP
           "\r\nGET / HTTP/1.1\r\n\r\n",          // empty request line
           "G(T / HTTP/1.1\r\n\r\n",              // method not a token
           "GET x HTTP/1.1\r\n\r\n",              // target must start with '/'
           "GET * HTTP/1.1\r\n\r\n",
           "GET http://localhost/ HTTP/1.1\r\n\r\n",
           "GET /a\x01 HTTP/1.1\r\n\r\n",         // control byte in target
           "GET /\x7f HTTP/1.1\r\n\r\n",
       }) {
    expect_error(req, 400);
  }
}

TEST(ParserErrors, UnknownVersionIs400) {
  for (const char* req : {"GET / HTTP/1.2\r\n\r\n", "GET / HTTP/2.0\r\n\r\n", "GET / HTTP/0.9\r\n\r\n",
                          "GET / http/1.1\r\n\r\n", "GET / HTTP/1.10\r\n\r\n", "GET / HTTP/1\r\n\r\n",
                          "GET / HTTP/1.1x\r\n\r\n", "GET / FTP/1.1\r\n\r\n"}) {
    expect_error(req, 400);
  }
}

TEST(ParserErrors, BareLineEndingsAre400) {
  expect_error("GET / HTTP/1.1\n\n", 400);
  expect_error("GET / HTTP/1.1\r\nHost: a\n\r\n", 400);
  expect_error("GET / HTTP/1.1\r\nHost: a\r\n\n", 400);
  expect_error("GET / HTTP/1.1\r\r\n\r\n", 400);       // bare CR
  expect_error("GET / HTTP/1.1\r\nHo\rst: a\r\n\r\n", 400);
}

TEST(ParserErrors, BadRequestLineRefusedBeforeHeadersArrive) {
  // A server must not wait for a whole head behind an already-broken request line.
  const auto r = parse_whole("GET / HTTP/9.9\r\n");
  EXPECT_EQ(r.status, ParseStatus::Error);
  EXPECT_EQ(r.error_status, 400);
}

TEST(ParserErrors, MalformedHeadersAre400) {
  for (const char* req : {
           "GET / HTTP/1.1\r\nNoColon\r\n\r\n",
           "GET / HTTP/1.1\r\nHost : a\r\n\r\n",             // whitespace before colon
           "GET / HTTP/1.1\r\nHost\t: a\r\n\r\n",
           "GET / HTTP/1.1\r\n: empty-name\r\n\r\n",
           "GET / HTTP/1.1\r\nBad Name: a\r\n\r\n",
           "GET / HTTP/1.1\r\nX(y): a\r\n\r\n",
           "GET / HTTP/1.1\r\nX-A: b\r\n c\r\n\r\n",         // obs-fold
           "GET / HTTP/1.1\r\nX-A: b\r\n\tc\r\n\r\n",        // obs-fold with tab
           "GET / HTTP/1.1\r\n Host: a\r\n\r\n",             // leading whitespace
           "GET / HTTP/1.1\r\nX-A: a\x01z\r\n\r\n",          // control byte in value
           "GET / HTTP/1.1\r\nX-A: a\x7fz\r\n\r\n",
       }) {
    expect_error(req, 400);
  }
}

TEST(ParserErrors, BadContentLengthIs400) {
  for (const char* value : {"", "abc", "-1", "+5", "5a", "0x10", "1 2", "1,1", "1.0"}) {
    expect_error(std::string("POST /echo HTTP/1.1\r\nContent-Length: ") + value + "\r\n\r\n", 400);
  }
  // Two lengths that disagree: request smuggling territory, refused.
  expect_error("POST /echo HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400);
}

TEST(ParserErrors, TransferEncodingIs501) {
  expect_error("POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 501);
  expect_error("POST /echo HTTP/1.1\r\ntransfer-encoding: identity\r\n\r\n", 501);
  expect_error("GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 501);
  expect_error("POST /echo HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 501);
}

TEST(ParserErrors, ConsumedNeverExceedsInput) {
  // Whatever the verdict, consumed stays within the input and NeedMore/Error consume nothing.
  for (const char* req : {"GET / HTTP/1.1\r\n\r\n", "GET / HTTP/1.1\r\n", "BAD\r\n\r\n",
                          "POST /echo HTTP/1.1\r\nContent-Length: 9\r\n\r\nabc"}) {
    const auto r = parse_whole(req);
    EXPECT_LE(r.consumed, std::string_view(req).size());
    if (r.status != ParseStatus::Complete) {
      EXPECT_EQ(r.consumed, 0u);
    }
  }
}

TEST(Parser, IEquals) {
  EXPECT_TRUE(iequals("Content-Length", "content-length"));
  EXPECT_TRUE(iequals("", ""));
  EXPECT_FALSE(iequals("abc", "abd"));
  EXPECT_FALSE(iequals("abc", "abcd"));
  EXPECT_FALSE(iequals("[", "{"));  // only letters fold: '[' | 0x20 == '{'
}

}  // namespace
}  // namespace cmbench::http
