// libFuzzer target for the request parser and the per-connection session (docs/architecture.md §2, §7).
//
// The input is the raw byte stream a client sends on one connection. Split points and write
// sizes come from a PRNG seeded with a hash of the input, so the corpus files stay plain HTTP
// and a crash reproduces from the file alone. Invariants checked:
//   1. Parsing the stream whole, request after request, and parsing it fed in random pieces
//      (prefix-extended, as a server does) give the same verdicts: same consumed counts, same
//      error statuses, same targets and bodies.
//   2. consumed <= input; a complete request's body is content_length bytes, ends at consumed,
//      and its head is at most kMaxHeaderBytes; errors are only 400/413/431/501.
//   3. An HttpSession fed the stream in random pieces and written out in random partial writes
//      emits exactly the responses the whole-stream parse predicts, in order, ending in Finish
//      after a closing response and in Read otherwise. (Skipped when the stream names /sleep/
//      or /cpu/: those handlers block on purpose, which a fuzzer must not wait for.)
// A violated invariant prints what broke and aborts, which libFuzzer reports as a crash.
#include <sys/uio.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_support.hpp"
#include "http_parser.hpp"
#include "http_response.hpp"
#include "http_session.hpp"

namespace {

using namespace cmbench::http;

using cmbench::fuzz::Rng;

[[noreturn]] void fail(const char* what, std::size_t a = 0, std::size_t b = 0) {
  cmbench::fuzz::fail("fuzz_parser", what, a, b);
}

void check(bool ok, const char* what, std::size_t a = 0, std::size_t b = 0) {
  if (!ok) fail(what, a, b);
}

struct Verdict {
  ParseStatus status;
  std::size_t consumed;
  int error_status;
  std::string target;
  std::string body;
};

void check_result(const ParseResult& r, std::string_view input) {
  check(r.consumed <= input.size(), "consumed > input size", r.consumed, input.size());
  if (r.status == ParseStatus::Complete) {
    const auto& q = r.request;
    check(r.consumed > 0, "complete request consumed nothing");
    check(q.content_length == q.body.size(), "content_length != body size", q.content_length,
          q.body.size());
    check(q.content_length <= kMaxBodyBytes, "body over the limit", q.content_length);
    check(r.consumed - q.content_length <= kMaxHeaderBytes, "head over the limit",
          r.consumed - q.content_length);
    check(q.body.empty() || q.body.data() + q.body.size() == input.data() + r.consumed,
          "body does not end at consumed");
    check(!q.target.empty() && q.target.front() == '/', "target does not start with /");
    check(!q.method_text.empty(), "empty method");
    check(q.version_minor == 0 || q.version_minor == 1, "bad version", std::size_t(q.version_minor));
    check(q.target.data() >= input.data() && q.target.data() + q.target.size() <= input.data() + r.consumed,
          "target outside the request");
  } else if (r.status == ParseStatus::Error) {
    const int s = r.error_status;
    check(s == 400 || s == 413 || s == 431 || s == 501, "unexpected error status", std::size_t(s));
    check(r.consumed == 0, "error consumed bytes", r.consumed);
  } else {
    check(r.consumed == 0, "need-more consumed bytes", r.consumed);
    check(input.size() <= kMaxHeaderBytes + kMaxBodyBytes, "need-more past every limit", input.size());
  }
}

Verdict verdict_of(const ParseResult& r) {
  Verdict v{r.status, r.consumed, r.error_status, {}, {}};
  if (r.status == ParseStatus::Complete) {
    v.target = std::string(r.request.target);
    v.body = std::string(r.request.body);
  }
  return v;
}

// The whole stream parsed request after request, stopping at the first error or incomplete tail.
std::vector<Verdict> parse_whole(std::string_view stream) {
  std::vector<Verdict> out;
  RequestParser parser;
  std::size_t pos = 0;
  while (true) {
    const auto rest = stream.substr(pos);
    const auto r = parser.parse(rest);
    check_result(r, rest);
    out.push_back(verdict_of(r));
    if (r.status != ParseStatus::Complete) return out;
    pos += r.consumed;
    parser.reset();
  }
}

// The same stream revealed in random pieces: each request is re-offered its growing prefix.
std::vector<Verdict> parse_pieces(std::string_view stream, Rng& rng) {
  std::vector<Verdict> out;
  RequestParser parser;
  std::size_t start = 0;
  std::size_t avail = 0;
  while (true) {
    avail = std::min(stream.size(), avail + rng.piece(4096));
    const auto rest = stream.substr(start, avail - start);
    const auto r = parser.parse(rest);
    check_result(r, rest);
    if (r.status == ParseStatus::NeedMore) {
      if (avail < stream.size()) continue;
      out.push_back(verdict_of(r));
      return out;
    }
    out.push_back(verdict_of(r));
    if (r.status == ParseStatus::Error) return out;
    start += r.consumed;
    avail = std::max(avail, start);
    parser.reset();
  }
}

void compare(const std::vector<Verdict>& a, const std::vector<Verdict>& b) {
  check(a.size() == b.size(), "piecewise parse found a different number of requests", a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    check(a[i].status == b[i].status, "piecewise verdict differs", i);
    check(a[i].consumed == b[i].consumed, "piecewise consumed differs", a[i].consumed, b[i].consumed);
    check(a[i].error_status == b[i].error_status, "piecewise error differs",
          std::size_t(a[i].error_status), std::size_t(b[i].error_status));
    check(a[i].target == b[i].target, "piecewise target differs", i);
    check(a[i].body == b[i].body, "piecewise body differs", i);
  }
}

// Walks the expected response bytes (head, body, then filler 'x') without materialising them.
class Expected {
 public:
  explicit Expected(std::vector<Response> responses) : rs_(std::move(responses)) {}

  void match(const char* p, std::size_t n) {
    while (n > 0) {
      check(i_ < rs_.size(), "session wrote more than the expected responses", n);
      const Response& r = rs_[i_];
      std::size_t take = 0;
      if (off_ < r.head.size()) {
        take = std::min(n, r.head.size() - off_);
        check(std::memcmp(p, r.head.data() + off_, take) == 0, "response head bytes differ", i_, off_);
      } else if (off_ < r.head.size() + r.body.size()) {
        const std::size_t o = off_ - r.head.size();
        take = std::min(n, r.body.size() - o);
        check(std::memcmp(p, r.body.data() + o, take) == 0, "response body bytes differ", i_, o);
      } else {
        take = std::min(n, r.size() - off_);
        check(std::all_of(p, p + take, [](char c) { return c == 'x'; }), "filler is not 'x'", i_);
      }
      p += take;
      n -= take;
      off_ += take;
      if (off_ == r.size()) {
        ++i_;
        off_ = 0;
      }
    }
  }
  bool done() const { return i_ == rs_.size(); }

 private:
  std::vector<Response> rs_;
  std::size_t i_ = 0;
  std::size_t off_ = 0;
};

void check_head(const Response& r) {
  const std::string_view h = r.head;
  check(h.substr(0, 9) == "HTTP/1.1 ", "status line is not HTTP/1.1");
  check(h.size() >= 4 && h.substr(h.size() - 4) == "\r\n\r\n", "head does not end in a blank line");
  const auto cl = h.find("\r\nContent-Length: ");
  check(cl != std::string_view::npos, "no Content-Length");
  check(h.find("\r\nContent-Length: ", cl + 1) == std::string_view::npos, "two Content-Length");
  check(h.find("\r\nContent-Type: ") != std::string_view::npos, "no Content-Type");
}

void run_session(std::string_view stream, const std::vector<Verdict>& verdicts, Rng& rng) {
  // What the session must say, from the whole-stream parse.
  std::vector<Response> expected;
  bool closes = false;
  {
    RequestParser parser;
    std::size_t pos = 0;
    for (const auto& v : verdicts) {
      if (v.status == ParseStatus::NeedMore) break;
      if (v.status == ParseStatus::Error) {
        expected.push_back(respond_error(v.error_status));
        closes = true;
        break;
      }
      const auto r = parser.parse(stream.substr(pos));
      auto resp = respond(r.request);
      check_head(resp);
      if (r.request.method != Method::Head) {
        check(resp.head.find("\r\nContent-Length: " + std::to_string(resp.body.size() + resp.filler) + "\r\n") !=
                  std::string::npos,
              "Content-Length does not match the body", resp.body.size() + resp.filler);
      } else {
        check(resp.body.empty() && resp.filler == 0, "HEAD response has a body");
      }
      closes = resp.close_after;
      expected.push_back(std::move(resp));
      if (closes) break;
      pos += v.consumed;
      parser.reset();
    }
  }

  Expected want(std::move(expected));
  HttpSession s;
  std::size_t fed = 0;
  std::vector<iovec> iov(64);
  // Bounded: every round feeds input, writes at least one byte, or answers a request.
  for (int rounds = 0; rounds < 10'000'000; ++rounds) {
    const Want w = s.next();
    if (w == Want::Write) {
      check(s.output_bytes() <= kOutputHighWater + kMaxBytesBody + 2 * kMaxBodyBytes,
            "session output unbounded", s.output_bytes());
      const int max = 1 + static_cast<int>(rng.next() % iov.size());
      const int n = s.gather(iov.data(), max);
      check(n > 0 && n <= max, "gather count", std::size_t(n), std::size_t(max));
      std::size_t budget = (rng.next() & 1) ? rng.piece(1 << 20) : std::size_t{1} << 30;
      std::size_t wrote = 0;
      for (int i = 0; i < n && wrote < budget; ++i) {
        check(iov[i].iov_len > 0, "empty iovec");
        const std::size_t take = std::min(budget - wrote, iov[i].iov_len);
        want.match(static_cast<const char*>(iov[i].iov_base), take);
        wrote += take;
      }
      s.on_written(wrote);
      continue;
    }
    if (w == Want::Process) {  // complete requests wait beyond one turn: take the next turn
      s.process();
      continue;
    }
    if (w == Want::Finish || fed == stream.size()) break;
    const std::size_t n = std::min(rng.piece(kReadSize), stream.size() - fed);
    s.on_bytes(stream.substr(fed, n));
    fed += n;
  }
  check(want.done(), "session did not write every expected response");
  check(s.next() == (closes ? Want::Finish : Want::Read), "session ended in the wrong state");
  check(s.output_bytes() == 0, "output left after everything was written", s.output_bytes());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view stream(reinterpret_cast<const char*>(data), size);
  Rng rng(stream);
  const auto whole = parse_whole(stream);
  compare(whole, parse_pieces(stream, rng));
  // Handlers that sleep or spin on purpose are left out of the session run.
  if (stream.find("/sleep/") == std::string_view::npos && stream.find("/cpu/") == std::string_view::npos) {
    run_session(stream, whole, rng);
  }
  return 0;
}
