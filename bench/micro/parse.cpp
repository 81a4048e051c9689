// The shared request parser (servers/common/http_parser.hpp): nanoseconds per request for the
// requests the benchmarks send, a browser-sized request, a POST with a body, and the worst
// case of a request arriving one byte at a time (every byte is a new parse() call).
#include <benchmark/benchmark.h>

#include <string>
#include <string_view>

#include "http_parser.hpp"

namespace {

using cmbench::http::ParseStatus;
using cmbench::http::RequestParser;

const std::string kMinimal = "GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n";
const std::string kCurl =
    "GET /bytes/1024 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: curl/7.88.1\r\n"
    "Accept: */*\r\n\r\n";
const std::string kBrowser =
    "GET /index.html?q=concurrency HTTP/1.1\r\n"
    "Host: localhost:8080\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:109.0) Gecko/20100101 Firefox/115.0\r\n"
    "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8\r\n"
    "Accept-Language: en-US,en;q=0.5\r\n"
    "Accept-Encoding: gzip, deflate, br\r\n"
    "Connection: keep-alive\r\n"
    "Upgrade-Insecure-Requests: 1\r\n"
    "Sec-Fetch-Dest: document\r\n"
    "Sec-Fetch-Mode: navigate\r\n"
    "Sec-Fetch-Site: none\r\n"
    "Cookie: session=0123456789abcdef0123456789abcdef; theme=dark\r\n\r\n";
const std::string kPost = "POST /echo HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nContent-Length: 1024\r\n\r\n" +
                          std::string(1024, 'x');

void ParseWhole(benchmark::State& state, const std::string& request) {
  RequestParser parser;
  for (auto _ : state) {
    const auto r = parser.parse(request);
    if (r.status != ParseStatus::Complete) return state.SkipWithError("request did not parse");
    benchmark::DoNotOptimize(r.request.target.data());
    parser.reset();
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(request.size()));
}

void ParseBytewise(benchmark::State& state) {
  const std::string_view all = kMinimal;
  RequestParser parser;
  for (auto _ : state) {
    ParseStatus status = ParseStatus::NeedMore;
    for (std::size_t n = 1; n <= all.size() && status == ParseStatus::NeedMore; ++n) {
      status = parser.parse(all.substr(0, n)).status;  // the caller appends one byte per read
    }
    if (status != ParseStatus::Complete) return state.SkipWithError("request did not parse");
    parser.reset();
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(all.size()));
}

BENCHMARK_CAPTURE(ParseWhole, minimal, kMinimal)->Name("parse/minimal");
BENCHMARK_CAPTURE(ParseWhole, curl, kCurl)->Name("parse/curl");
BENCHMARK_CAPTURE(ParseWhole, browser, kBrowser)->Name("parse/browser");
BENCHMARK_CAPTURE(ParseWhole, post_1k, kPost)->Name("parse/post_1k");
BENCHMARK(ParseBytewise)->Name("parse/bytewise_minimal");

}  // namespace
