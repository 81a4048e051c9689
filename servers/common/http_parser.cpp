#include "http_parser.hpp"

#include <algorithm>

namespace cmbench::http {
namespace {

constexpr int kBadRequest = 400;
constexpr int kContentTooLarge = 413;
constexpr int kHeaderTooLarge = 431;
constexpr int kNotImplemented = 501;

// RFC 9110 tchar.
bool is_token_char(unsigned char c) {
  if (c >= '0' && c <= '9') return true;
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
}

bool is_token(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return is_token_char(c); });
}

// Field values: visible ASCII, space, tab and obs-text; no other control characters.
bool is_field_value(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char ch) {
    const auto c = static_cast<unsigned char>(ch);
    return c == '\t' || (c >= 0x20 && c != 0x7f);
  });
}

std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

struct RequestLine {
  bool ok = false;
  Request request;
};

// `line` excludes CRLF: METHOD SP origin-form SP HTTP/1.0|HTTP/1.1
RequestLine parse_request_line(std::string_view line) {
  RequestLine out;
  const auto sp1 = line.find(' ');
  if (sp1 == std::string_view::npos) return out;
  const auto sp2 = line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos) return out;
  const auto method = line.substr(0, sp1);
  const auto target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  const auto version = line.substr(sp2 + 1);
  if (!is_token(method)) return out;
  if (target.empty() || target.front() != '/') return out;
  if (!std::all_of(target.begin(), target.end(),
                   [](char c) { return c > 0x20 && c < 0x7f; })) return out;
  if (version == "HTTP/1.1") {
    out.request.version_minor = 1;
  } else if (version == "HTTP/1.0") {
    out.request.version_minor = 0;
  } else {
    return out;
  }
  out.request.method_text = method;
  out.request.target = target;
  out.request.method = method == "GET"    ? Method::Get
                       : method == "HEAD" ? Method::Head
                       : method == "POST" ? Method::Post
                                          : Method::Other;
  out.ok = true;
  return out;
}

struct ConnectionTokens {
  bool close = false;
  bool keep_alive = false;
};

// Reads one "token, token" Connection header value.
ConnectionTokens connection_tokens(std::string_view value) {
  ConnectionTokens out;
  while (true) {
    const auto comma = value.find(',');
    const auto token = trim_ows(value.substr(0, comma));
    if (iequals(token, "close")) out.close = true;
    if (iequals(token, "keep-alive")) out.keep_alive = true;
    if (comma == std::string_view::npos) return out;
    value.remove_prefix(comma + 1);
  }
}

struct Head {
  int error_status = 0;
  Request request;
};

// Parses a complete head (request line .. CRLF CRLF) whose line endings were already checked.
Head parse_head(std::string_view head) {
  Head out;
  const auto line_end = head.find("\r\n");
  auto line = parse_request_line(head.substr(0, line_end));
  if (!line.ok) return {kBadRequest, {}};
  Request& req = line.request;
  req.keep_alive = req.version_minor == 1;

  bool saw_transfer_encoding = false;
  bool saw_length = false;
  bool keep_alive_token = false, close_token = false;
  std::size_t length = 0;
  bool length_too_large = false;
  std::size_t pos = line_end + 2;
  const std::size_t end = head.size() - 2;  // the final CRLF of the blank line
  while (pos < end) {
    const auto eol = head.find("\r\n", pos);
    const auto field = head.substr(pos, eol - pos);
    pos = eol + 2;
    const auto colon = field.find(':');
    if (colon == std::string_view::npos) return {kBadRequest, {}};
    const auto name = field.substr(0, colon);   // no whitespace allowed before the colon
    const auto value = trim_ows(field.substr(colon + 1));
    if (!is_token(name) || !is_field_value(value)) return {kBadRequest, {}};

    if (iequals(name, "Content-Length")) {
      if (value.empty() || !std::all_of(value.begin(), value.end(),
                                        [](char c) { return c >= '0' && c <= '9'; }))
        return {kBadRequest, {}};
      std::size_t n = 0;
      bool big = false;
      for (char c : value) {  // saturate instead of overflowing: anything past 1 MiB is 413
        n = n * 10 + static_cast<std::size_t>(c - '0');
        if (n > kMaxBodyBytes) { big = true; n = kMaxBodyBytes + 1; }
      }
      if (saw_length && (n != length || big != length_too_large)) return {kBadRequest, {}};
      saw_length = true;
      length = n;
      length_too_large = big;
    } else if (iequals(name, "Transfer-Encoding")) {
      saw_transfer_encoding = true;
    } else if (iequals(name, "Connection")) {
      const auto tokens = connection_tokens(value);
      close_token = close_token || tokens.close;
      keep_alive_token = keep_alive_token || tokens.keep_alive;
    }
  }
  if (saw_transfer_encoding) return {kNotImplemented, {}};
  if (length_too_large) return {kContentTooLarge, {}};
  if (close_token) req.keep_alive = false;  // "close" wins over anything else listed
  else if (keep_alive_token) req.keep_alive = true;
  req.content_length = length;
  out.request = req;
  return out;
}

}  // namespace

bool iequals(std::string_view a, std::string_view b) noexcept {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return (x >= 'A' && x <= 'Z' ? x | 0x20 : x) == (y >= 'A' && y <= 'Z' ? y | 0x20 : y);
         });
}

ParseResult RequestParser::parse(std::string_view input) {
  ParseResult result;
  const auto error = [&result](int status) {
    result.status = ParseStatus::Error;
    result.error_status = status;
    return result;
  };

  if (head_error_ != 0) return error(head_error_);  // the caller should have stopped; say it again
  if (head_len_ == 0) {
    // Scan only new bytes, and never past the head limit: a head that has not ended within
    // kMaxHeaderBytes is refused without reading further.
    const std::size_t limit = std::min(input.size(), kMaxHeaderBytes);
    std::size_t i = scanned_;
    for (; i < limit; ++i) {
      const char c = input[i];
      if (i > 0 && input[i - 1] == '\r' && c != '\n') return error(kBadRequest);  // bare CR
      if (c != '\n') continue;
      if (i == 0 || input[i - 1] != '\r') return error(kBadRequest);            // bare LF
      if (first_line_end_ == 0) {
        // Judge the request line as soon as it is complete, before the headers arrive.
        first_line_end_ = i;
        work_ += i;
        if (!parse_request_line(input.substr(0, i - 1)).ok) return error(kBadRequest);
      } else if (i >= 3 && input[i - 2] == '\n') {  // "\r\n\r\n" ends the head
        head_len_ = i + 1;
        break;
      }
    }
    work_ += i - scanned_;
    scanned_ = i;
    if (head_len_ == 0) {
      if (input.size() > kMaxHeaderBytes) return error(kHeaderTooLarge);
      return result;  // NeedMore
    }
    // The head is complete: parse it once, and keep what it said for the calls that follow
    // while the body arrives (re-parsing it per body piece would be quadratic).
    work_ += head_len_;
    const auto head = parse_head(input.substr(0, head_len_));
    if (head.error_status != 0) {
      head_error_ = head.error_status;
      return error(head_error_);
    }
    const Request& req = head.request;
    method_ = req.method;
    method_len_ = req.method_text.size();
    target_off_ = static_cast<std::size_t>(req.target.data() - input.data());
    target_len_ = req.target.size();
    version_minor_ = req.version_minor;
    keep_alive_ = req.keep_alive;
    content_length_ = req.content_length;
  }

  // Body arrival costs O(1) per call: only the length is compared.
  if (input.size() - head_len_ < content_length_) return result;  // NeedMore: body incomplete

  result.status = ParseStatus::Complete;
  Request& req = result.request;
  req.method = method_;
  req.method_text = input.substr(0, method_len_);
  req.target = input.substr(target_off_, target_len_);
  req.version_minor = version_minor_;
  req.keep_alive = keep_alive_;
  req.content_length = content_length_;
  req.body = input.substr(head_len_, content_length_);
  result.consumed = head_len_ + content_length_;
  return result;
}

}  // namespace cmbench::http
