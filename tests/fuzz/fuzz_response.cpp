// libFuzzer target for the load generator's response parser (loadgen/response_parser.cpp).
//
// The input is the raw byte stream a server -- possibly a hostile or broken one -- sends on one
// connection; the generator must neither crash nor loop on it, whatever it is. The parser is
// driven exactly as loadgen/engine.cpp drives it (feed what a read returned, restart after
// each complete response, stop at an error). Whether the requests were HEAD (no bodies) and the
// sizes of the reads come from a PRNG seeded with a hash of the input, so the corpus files stay
// plain HTTP responses and a crash reproduces from the file alone. Invariants checked:
//   1. feed() never reports more bytes used than it was given; `complete` always uses at least
//      one byte (else the engine's read loop would spin); `need_more` uses every byte (the
//      engine drops what is left of a read after need_more).
//   2. A complete response has a three-digit status (000-999: anything but 2xx is the engine's
//      status error); 1xx is never reported (it is skipped and the real response parsed); completes_at_eof() is only ever true while a body runs until
//      the close, so keep_alive() is false for such a response.
//   3. Parsing the stream whole and parsing it fed in random reads give the same responses
//      (status, keep-alive, end offset), the same error offset and the same state at the end.
// A violated invariant prints what broke and aborts, which libFuzzer reports as a crash; ASan
// and UBSan (make fuzz) catch out-of-bounds reads and arithmetic overflow.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "fuzz_support.hpp"
#include "response_parser.hpp"

namespace {

using cmbench::loadgen::ResponseParser;
using Result = ResponseParser::Result;

using cmbench::fuzz::Rng;

[[noreturn]] void fail(const char* what, std::size_t a = 0, std::size_t b = 0) {
  cmbench::fuzz::fail("fuzz_response", what, a, b);
}

void check(bool ok, const char* what, std::size_t a = 0, std::size_t b = 0) {
  if (!ok) fail(what, a, b);
}

// What one parse of the stream found.
struct Outcome {
  struct Response {
    int status;
    bool keep_alive;
    std::size_t end;  // offset just after its last byte
  };
  std::vector<Response> responses;
  bool error = false;
  std::size_t error_at = 0;  // offset the parser had reached when it failed
  bool started = false;      // the stream ended inside a response
  bool completes_at_eof = false;
};

// Parses `stream` as the engine would, in reads whose sizes `next_read` chooses.
template <class NextRead>
Outcome parse(std::string_view stream, bool head, NextRead next_read) {
  Outcome out;
  ResponseParser parser;
  parser.start(head);
  std::size_t pos = 0;
  while (pos < stream.size()) {
    const std::size_t len = std::min(next_read(), stream.size() - pos);
    std::size_t off = 0;
    while (off < len) {
      std::size_t used = 0;
      const Result r = parser.feed(stream.data() + pos + off, len - off, used);
      check(used <= len - off, "feed used more than it was given", used, len - off);
      off += used;
      if (r == Result::error) {
        out.error = true;
        out.error_at = pos + off;
        return out;
      }
      if (r == Result::need_more) {
        check(off == len, "need_more left bytes unused", off, len);
        check(!parser.completes_at_eof() || !parser.keep_alive(), "body until close on a keep-alive connection");
        break;
      }
      check(used > 0, "complete without using a byte");
      const int status = parser.status();
      check(status >= 0 && status <= 999 && (status < 100 || status >= 200), "complete response with a bad status",
            static_cast<std::size_t>(status));
      check(!parser.completes_at_eof(), "complete response still waiting for the close");
      out.responses.push_back({status, parser.keep_alive(), pos + off});
      parser.start(head);
    }
    pos += len;
  }
  out.started = parser.started();
  out.completes_at_eof = parser.completes_at_eof();
  return out;
}

void compare(const Outcome& a, const Outcome& b) {
  check(a.responses.size() == b.responses.size(), "reads of other sizes found another number of responses",
        a.responses.size(), b.responses.size());
  for (std::size_t i = 0; i < a.responses.size(); ++i) {
    check(a.responses[i].status == b.responses[i].status, "status differs", i);
    check(a.responses[i].keep_alive == b.responses[i].keep_alive, "keep-alive differs", i);
    check(a.responses[i].end == b.responses[i].end, "response end differs", a.responses[i].end, b.responses[i].end);
  }
  check(a.error == b.error, "error verdict differs", a.error, b.error);
  check(a.error_at == b.error_at, "error offset differs", a.error_at, b.error_at);
  if (!a.error) {
    check(a.started == b.started, "end state differs (started)");
    check(a.completes_at_eof == b.completes_at_eof, "end state differs (body until close)");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view stream(reinterpret_cast<const char*>(data), size);
  Rng rng(stream);
  const bool head = (rng.next() & 7) == 0;  // one in eight streams answers HEAD requests
  const Outcome whole = parse(stream, head, [&] { return stream.size(); });
  const Outcome bytewise = parse(stream, head, [] { return std::size_t{1}; });
  compare(whole, bytewise);
  const Outcome pieces = parse(stream, head, [&] { return rng.piece(4096); });
  compare(whole, pieces);
  return 0;
}
