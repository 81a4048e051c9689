// Flags, durations and URLs (see options.hpp). Every rejection is a UsageError with a one-line
// reason, so that main can report it and exit 2 before any socket is opened.
#include "options.hpp"

#include <netdb.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <iostream>

namespace cmbench::loadgen {
namespace {

std::string q(std::string_view s) { return "'" + std::string(s) + "'"; }

// Parses a non-negative decimal number with an optional fraction; returns the rest.
bool parse_number(std::string_view& text, double& out) {
  std::size_t i = 0;
  while (i < text.size() && ((text[i] >= '0' && text[i] <= '9') || text[i] == '.')) ++i;
  if (i == 0) return false;
  const std::string digits(text.substr(0, i));
  char* end = nullptr;
  out = std::strtod(digits.c_str(), &end);
  if (end != digits.c_str() + digits.size() || !std::isfinite(out)) return false;
  text.remove_prefix(i);
  return true;
}

int positive_int(std::string_view text, std::string_view what, double max) {
  const double v = parse_metric(text, what);
  if (v < 1 || v > max || v != std::floor(v)) {
    throw UsageError(std::string(what) + " must be an integer from 1 to " +
                     std::to_string(static_cast<long long>(max)) + ", got " + q(text));
  }
  return static_cast<int>(v);
}

bool is_token_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         std::strchr("!#$%&'*+-.^_`|~", c) != nullptr;
}

}  // namespace

std::int64_t parse_duration_ns(std::string_view text, std::string_view what) {
  std::string_view rest = text;
  double value = 0;
  if (!parse_number(rest, value)) {
    throw UsageError("bad " + std::string(what) + " " + q(text) +
                     ": expected a number with an optional unit us, ms, s, m or h");
  }
  double scale = 1e9;  // a bare number means seconds, as in wrk
  if (rest == "us") scale = 1e3;
  else if (rest == "ms") scale = 1e6;
  else if (rest.empty() || rest == "s") scale = 1e9;
  else if (rest == "m") scale = 60e9;
  else if (rest == "h") scale = 3600e9;
  else {
    throw UsageError("bad " + std::string(what) + " " + q(text) +
                     ": unit must be us, ms, s, m or h");
  }
  const double ns = value * scale;
  if (ns > 366.0 * 24 * 3600e9) throw UsageError(std::string(what) + " too long: " + q(text));
  return static_cast<std::int64_t>(std::llround(ns));
}

double parse_metric(std::string_view text, std::string_view what) {
  std::string_view rest = text;
  double value = 0;
  if (!parse_number(rest, value)) {
    throw UsageError("bad " + std::string(what) + " " + q(text) + ": expected a number");
  }
  if (rest == "k" || rest == "K") value *= 1e3;
  else if (rest == "M") value *= 1e6;
  else if (rest == "G") value *= 1e9;
  else if (!rest.empty()) {
    throw UsageError("bad " + std::string(what) + " " + q(text) + ": suffix must be k, M or G");
  }
  return value;
}

Target parse_url(std::string_view url) {
  Target t;
  std::string_view rest = url;
  auto starts_with_ci = [](std::string_view s, std::string_view prefix) {
    if (s.size() < prefix.size()) return false;
    for (std::size_t i = 0; i < prefix.size(); ++i) {
      if (std::tolower(static_cast<unsigned char>(s[i])) != prefix[i]) return false;
    }
    return true;
  };
  if (starts_with_ci(rest, "https://")) throw UsageError("bad URL " + q(url) + ": https is not supported");
  if (!starts_with_ci(rest, "http://")) throw UsageError("bad URL " + q(url) + ": expected http://HOST:PORT/path");
  rest.remove_prefix(7);

  const std::size_t auth_end = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, auth_end);
  std::string_view path = auth_end == std::string_view::npos ? std::string_view{} : rest.substr(auth_end);
  if (authority.find('@') != std::string_view::npos) {
    throw UsageError("bad URL " + q(url) + ": user information is not supported");
  }
  std::string_view port_text;
  if (!authority.empty() && authority.front() == '[') {
    const std::size_t close = authority.find(']');
    if (close == std::string_view::npos) throw UsageError("bad URL " + q(url) + ": unclosed '['");
    t.host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') throw UsageError("bad URL " + q(url) + ": junk after ']'");
      port_text = after.substr(1);
    }
    t.host_header = "[" + t.host + "]";
  } else {
    const std::size_t colon = authority.find(':');
    t.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) port_text = authority.substr(colon + 1);
    t.host_header = t.host;
  }
  if (t.host.empty()) throw UsageError("bad URL " + q(url) + ": missing host");
  // An explicit but empty port ("http://h:/") is as wrong as a non-numeric one.
  if (!authority.empty() && authority.back() == ':') throw UsageError("bad URL " + q(url) + ": empty port");
  if (!port_text.empty()) {
    unsigned port = 0;
    auto [ptr, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (ec != std::errc{} || ptr != port_text.data() + port_text.size() || port == 0 || port > 65535) {
      throw UsageError("bad URL " + q(url) + ": port must be 1..65535");
    }
    t.port = static_cast<std::uint16_t>(port);
  }
  if (t.port != 80) t.host_header += ":" + std::to_string(t.port);

  if (const std::size_t hash = path.find('#'); hash != std::string_view::npos) path = path.substr(0, hash);
  if (path.empty()) t.path = "/";
  else if (path.front() == '?') t.path = "/" + std::string(path);
  else t.path = std::string(path);
  for (char c : t.path) {
    if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f) {
      throw UsageError("bad URL " + q(url) + ": spaces or control characters in the path");
    }
  }

  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* res = nullptr;
  const std::string service = std::to_string(t.port);
  if (const int rc = ::getaddrinfo(t.host.c_str(), service.c_str(), &hints, &res); rc != 0 || !res) {
    throw UsageError("bad URL " + q(url) + ": cannot resolve " + q(t.host) + ": " + gai_strerror(rc));
  }
  std::memcpy(&t.addr, res->ai_addr, res->ai_addrlen);
  t.addr_len = static_cast<socklen_t>(res->ai_addrlen);
  ::freeaddrinfo(res);
  return t;
}

std::string format_duration(std::int64_t ns) {
  char buf[64];
  if (ns % 1'000'000'000 == 0) std::snprintf(buf, sizeof buf, "%llds", static_cast<long long>(ns / 1'000'000'000));
  else if (ns < 1'000'000'000) std::snprintf(buf, sizeof buf, "%gms", static_cast<double>(ns) / 1e6);
  else std::snprintf(buf, sizeof buf, "%gs", static_cast<double>(ns) / 1e9);
  return buf;
}

std::optional<Config> parse_args(int argc, char** argv) {
  Config cfg;
  CLI::App app{"loadgen: HTTP/1.1 load generator (wrk-like flags, coordinated-omission-corrected latency)",
               "loadgen"};
  app.set_help_flag("-h,--help", "Print this help and exit");
  app.set_version_flag("-v,--version", std::string(kVersion));
  std::string connections = "10", threads = "1", duration = "10s", warmup = "0s", timeout = "2s";
  std::string rate, pipeline = "1", idle = "0", body_size = "0";
  app.add_option("-c,--connections", connections, "Active connections (default 10)")->type_name("N");
  app.add_option("-t,--threads", threads, "Threads, each with its own epoll loop (default 1)")->type_name("N");
  app.add_option("-d,--duration", duration, "Measured duration, e.g. 10s, 1.5s, 500ms, 2m (default 10s)")->type_name("TIME");
  app.add_option("--warmup", warmup, "Unrecorded run before the measurement (default 0s)")->type_name("TIME");
  app.add_option("-R,--rate", rate, "Open loop at this many requests/s in total (wrk2); default closed loop")->type_name("N");
  app.add_option("--pipeline", pipeline, "Requests in flight per connection (default 1)")->type_name("N");
  app.add_flag("--close", cfg.close, "Connection: close on every request: a new connection per request");
  app.add_option("--idle", idle, "Also hold this many idle connections (one request each, then silent)")->type_name("N");
  app.add_option("--method", cfg.method, "Request method (default GET)")->type_name("METHOD");
  app.add_option("--body-size", body_size, "Request body of this many bytes of 'x' (default 0)")->type_name("N");
  app.add_option("-H,--header", cfg.headers, "Extra request header 'Name: value' (repeatable)")
      ->type_name("'K: V'")
      ->expected(1)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  app.add_option("--timeout", timeout, "A response slower than this is a timeout error (default 2s)")->type_name("TIME");
  app.add_option("--json", cfg.json_path, "Write the machine-readable result to FILE ('-' = stdout)")->type_name("FILE");
  app.add_option("--hgrm", cfg.hgrm_path, "Write the latency percentile distribution (HdrHistogram text) to FILE")->type_name("FILE");
  app.add_flag("-L,--latency", cfg.latency, "Print the latency percentile table");
  app.add_option("url", cfg.url, "http://HOST:PORT/path (IPv4, [IPv6] or a name)")->required()->type_name("URL");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::cout << app.help();
    return std::nullopt;
  } catch (const CLI::CallForVersion&) {
    std::cout << kVersion << "\n";
    return std::nullopt;
  } catch (const CLI::ParseError& e) {
    throw UsageError(e.what());
  }

  cfg.connections = positive_int(connections, "-c", 1'000'000);
  cfg.threads = positive_int(threads, "-t", 1024);
  if (cfg.connections < cfg.threads) throw UsageError("-c must be at least -t (every thread needs a connection)");
  cfg.duration_ns = parse_duration_ns(duration, "-d");
  if (cfg.duration_ns < 1'000'000) throw UsageError("-d must be at least 1ms");
  cfg.warmup_ns = parse_duration_ns(warmup, "--warmup");
  cfg.timeout_ns = parse_duration_ns(timeout, "--timeout");
  if (cfg.timeout_ns < 1'000'000) throw UsageError("--timeout must be at least 1ms");
  if (!rate.empty()) {
    cfg.rate = parse_metric(rate, "-R");
    if (!(cfg.rate > 0) || cfg.rate > 1e9) throw UsageError("-R must be a rate above 0 requests/s");
  }
  cfg.pipeline = positive_int(pipeline, "--pipeline", 1024);
  if (idle != "0") cfg.idle = positive_int(idle, "--idle", 1'000'000);
  const double body = parse_metric(body_size, "--body-size");
  if (body < 0 || body > 16 * 1024 * 1024 || body != std::floor(body)) {
    throw UsageError("--body-size must be an integer from 0 to 16777216");
  }
  cfg.body_size = static_cast<std::size_t>(body);
  if (cfg.close && cfg.pipeline > 1) throw UsageError("--close sends one request per connection: drop --pipeline");
  if (cfg.method.empty()) throw UsageError("--method must not be empty");
  for (char c : cfg.method) {
    if (!is_token_char(c)) throw UsageError("bad --method " + q(cfg.method));
  }
  for (const std::string& h : cfg.headers) {
    const std::size_t colon = h.find(':');
    if (colon == 0 || colon == std::string::npos) throw UsageError("bad --header " + q(h) + ": expected 'Name: value'");
    for (std::size_t i = 0; i < colon; ++i) {
      if (!is_token_char(h[i])) throw UsageError("bad --header " + q(h) + ": bad character in the name");
    }
    if (h.find_first_of("\r\n") != std::string::npos) throw UsageError("bad --header: line breaks are not allowed");
  }
  cfg.target = parse_url(cfg.url);
  if (build_request(cfg).size() * static_cast<std::size_t>(cfg.pipeline) > 64u * 1024 * 1024) {
    throw UsageError("request size times --pipeline exceeds 64 MiB");
  }
  return cfg;
}

std::string build_request(const Config& cfg) {
  auto has_header = [&](std::string_view name) {
    for (const std::string& h : cfg.headers) {
      const std::string_view n = std::string_view(h).substr(0, h.find(':'));
      if (n.size() == name.size() &&
          std::equal(n.begin(), n.end(), name.begin(), [](char a, char b) {
            return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b));
          })) {
        return true;
      }
    }
    return false;
  };
  std::string r = cfg.method + " " + cfg.target.path + " HTTP/1.1\r\n";
  if (!has_header("host")) r += "Host: " + cfg.target.host_header + "\r\n";
  for (const std::string& h : cfg.headers) r += h + "\r\n";
  const bool sends_body = cfg.body_size > 0 || cfg.method == "POST" || cfg.method == "PUT";
  if (sends_body && !has_header("content-length")) r += "Content-Length: " + std::to_string(cfg.body_size) + "\r\n";
  if (cfg.close && !has_header("connection")) r += "Connection: close\r\n";
  r += "\r\n";
  r.append(cfg.body_size, 'x');
  return r;
}

}  // namespace cmbench::loadgen
