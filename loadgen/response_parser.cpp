// The response state machine (see response_parser.hpp).
//
// Lenient where real servers differ harmlessly (bare LF line ends, a missing reason phrase,
// header-name case), strict where framing is at stake (Content-Length syntax, chunk sizes):
// a framing mistake would silently shift every later response on the connection.
#include "response_parser.hpp"

#include <algorithm>
#include <cstring>
#include <string_view>

namespace cmbench::loadgen {
namespace {

constexpr std::string_view kProto = "HTTP/1.";
// Header names we act on, indexed like Header minus one; matched case-insensitively.
constexpr std::string_view kNames[] = {"content-length", "connection", "transfer-encoding"};
// Tokens we act on in Connection and Transfer-Encoding values.
constexpr std::string_view kTokens[] = {"close", "keep-alive", "chunked"};
constexpr std::uint8_t kTokenClose = 1, kTokenKeepAlive = 2, kTokenChunked = 4;
// Larger lengths are not plausible and would overflow the arithmetic.
constexpr std::uint64_t kMaxLength = std::uint64_t{1} << 60;

char lower(char c) noexcept { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }
bool is_ws(char c) noexcept { return c == ' ' || c == '\t'; }
int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

void ResponseParser::start(bool head) noexcept {
  *this = ResponseParser{};
  head_ = head;
}

bool ResponseParser::keep_alive() const noexcept {
  if (until_close_ || conn_close_) return false;
  return http10_ ? conn_keep_alive_ : true;
}

inline void ResponseParser::name_char(char c) noexcept {
  c = lower(c);
  for (std::uint8_t k = 0; k < 3; ++k) {
    const std::uint8_t bit = static_cast<std::uint8_t>(1u << k);
    if ((candidates_ & bit) && (pos_ >= kNames[k].size() || kNames[k][pos_] != c)) {
      candidates_ &= static_cast<std::uint8_t>(~bit);
    }
  }
  if (pos_ < 255) ++pos_;
}

inline void ResponseParser::token_char(char c) noexcept {
  c = lower(c);
  for (std::uint8_t k = 0; k < 3; ++k) {
    const std::uint8_t bit = static_cast<std::uint8_t>(1u << k);
    if ((candidates_ & bit) && (pos_ >= kTokens[k].size() || kTokens[k][pos_] != c)) {
      candidates_ &= static_cast<std::uint8_t>(~bit);
    }
  }
  if (pos_ < 255) ++pos_;
}

void ResponseParser::token_end() noexcept {
  if (pos_ == 0) return;  // separators in a row
  last_token_ = 0;
  for (std::uint8_t k = 0; k < 3; ++k) {
    const std::uint8_t bit = static_cast<std::uint8_t>(1u << k);
    if ((candidates_ & bit) && kTokens[k].size() == pos_) last_token_ = bit;
  }
  if (header_ == Header::connection) {
    if (last_token_ == kTokenClose) conn_close_ = true;
    if (last_token_ == kTokenKeepAlive) conn_keep_alive_ = true;
  }
  pos_ = 0;
  candidates_ = 7;
}

ResponseParser::Result ResponseParser::headers_done() noexcept {
  if (status_ >= 100 && status_ < 200) {
    // Informational (100 Continue): the real response follows on the same connection.
    const bool head = head_;
    start(head);
    started_ = true;
    return Result::need_more;
  }
  if (head_ || status_ == 204 || status_ == 304) {
    state_ = State::done;
    return Result::complete;
  }
  if (te_present_) {
    // RFC 9112 6.3: chunked must be the final coding; otherwise the body runs until close.
    if (chunked_) {
      value_num_ = 0;
      value_digits_ = false;
      state_ = State::chunk_size;
    } else {
      until_close_ = true;
      state_ = State::body_until_close;
    }
    return Result::need_more;
  }
  if (has_length_) {
    if (content_length_ == 0) {
      state_ = State::done;
      return Result::complete;
    }
    remaining_ = content_length_;
    state_ = State::body;
    return Result::need_more;
  }
  until_close_ = true;
  state_ = State::body_until_close;
  return Result::need_more;
}

ResponseParser::Result ResponseParser::feed(const char* data, std::size_t len,
                                            std::size_t& consumed) noexcept {
  const char* p = data;
  const char* const end = data + len;
  if (len > 0) started_ = true;
  auto fail = [&] {
    consumed = static_cast<std::size_t>(p - data);
    return Result::error;
  };
  while (p < end) {
    switch (state_) {
      case State::version: {
        const char c = *p++;
        if (pos_ < kProto.size()) {
          if (c != kProto[pos_]) return fail();
        } else if (pos_ == kProto.size()) {
          if (c != '0' && c != '1') return fail();
          http10_ = c == '0';
        } else {
          if (c != ' ') return fail();
          state_ = State::status_code;
          pos_ = 0;
          break;
        }
        ++pos_;
        break;
      }
      case State::status_code: {
        const char c = *p++;
        if (c < '0' || c > '9') return fail();
        status_ = static_cast<std::uint16_t>(status_ * 10 + (c - '0'));
        if (++pos_ == 3) state_ = State::status_end;
        break;
      }
      case State::status_end: {
        const char c = *p++;
        if (c == ' ') state_ = State::reason;
        else if (c == '\r') state_ = State::line_lf;
        else if (c == '\n') state_ = State::header_start;
        else return fail();
        break;
      }
      case State::reason: {
        // Skip the reason phrase in one scan.
        const char* cr = static_cast<const char*>(std::memchr(p, '\r', static_cast<std::size_t>(end - p)));
        const char* lf = static_cast<const char*>(std::memchr(p, '\n', static_cast<std::size_t>(end - p)));
        if (lf && (!cr || lf < cr)) {
          p = lf + 1;
          state_ = State::header_start;
        } else if (cr) {
          p = cr + 1;
          state_ = State::line_lf;
        } else {
          p = end;
        }
        break;
      }
      case State::line_lf:
      case State::value_lf:
        if (*p++ != '\n') return fail();
        state_ = State::header_start;
        break;
      case State::header_start: {
        const char c = *p++;
        if (c == '\r') {
          state_ = State::headers_lf;
        } else if (c == '\n') {
          if (headers_done() == Result::complete) {
            consumed = static_cast<std::size_t>(p - data);
            return Result::complete;
          }
        } else if (is_ws(c) || c == ':') {
          return fail();  // obsolete line folding or an empty name
        } else {
          header_ = Header::other;
          pos_ = 0;
          candidates_ = 7;
          name_char(c);
          state_ = State::name;
        }
        break;
      }
      case State::name: {
        if (candidates_ == 0) {
          // No header we act on can match any more: skip the rest of the name in one scan.
          while (p < end && *p != ':' && *p != '\r' && *p != '\n' && !is_ws(*p)) ++p;
          if (p == end) break;
        }
        const char c = *p++;
        if (c == ':') {
          header_ = Header::other;
          for (std::uint8_t k = 0; k < 3; ++k) {
            if ((candidates_ & (1u << k)) && kNames[k].size() == pos_) {
              header_ = static_cast<Header>(k + 1);
            }
          }
          if (header_ == Header::transfer_encoding) {
            te_present_ = true;
            chunked_ = false;
          }
          pos_ = 0;
          candidates_ = 7;
          last_token_ = 0;
          value_num_ = 0;
          value_digits_ = false;
          state_ = State::value_ows;
        } else if (c == '\r' || c == '\n' || is_ws(c)) {
          return fail();
        } else {
          name_char(c);
        }
        break;
      }
      case State::value_ows:
        if (is_ws(*p)) {
          ++p;
          break;
        }
        state_ = State::value;
        [[fallthrough]];
      case State::value: {
        if (header_ == Header::other) {
          // Skip uninteresting values in one scan.
          while (p < end && *p != '\r' && *p != '\n') ++p;
          if (p == end) break;
        }
        const char c = *p++;
        if (c == '\r' || c == '\n') {
          if (header_ == Header::content_length) {
            if (!value_digits_) return fail();
            if (has_length_ && content_length_ != value_num_) return fail();
            has_length_ = true;
            content_length_ = value_num_;
          } else if (header_ != Header::other) {
            token_end();
            if (header_ == Header::transfer_encoding) chunked_ = last_token_ == kTokenChunked;
          }
          state_ = c == '\r' ? State::value_lf : State::header_start;
        } else if (header_ == Header::content_length) {
          if (c >= '0' && c <= '9') {
            if (pos_ != 0) return fail();  // a digit after trailing whitespace
            value_num_ = value_num_ * 10 + static_cast<std::uint64_t>(c - '0');
            if (value_num_ > kMaxLength) return fail();
            value_digits_ = true;
          } else if (is_ws(c)) {
            pos_ = 1;
          } else {
            return fail();
          }
        } else if (c == ',' || is_ws(c)) {
          token_end();
        } else {
          token_char(c);
        }
        break;
      }
      case State::headers_lf:
        if (*p++ != '\n') return fail();
        if (headers_done() == Result::complete) {
          consumed = static_cast<std::size_t>(p - data);
          return Result::complete;
        }
        break;
      case State::body: {
        // Skip the body without looking at it.
        const std::uint64_t n = std::min<std::uint64_t>(remaining_, static_cast<std::uint64_t>(end - p));
        p += n;
        remaining_ -= n;
        if (remaining_ == 0) {
          state_ = State::done;
          consumed = static_cast<std::size_t>(p - data);
          return Result::complete;
        }
        break;
      }
      case State::body_until_close:
        p = end;
        break;
      case State::chunk_size: {
        const char c = *p++;
        const int h = hex_value(c);
        if (h >= 0) {
          value_num_ = value_num_ * 16 + static_cast<std::uint64_t>(h);
          if (value_num_ > kMaxLength) return fail();
          value_digits_ = true;
        } else if (!value_digits_) {
          return fail();
        } else if (c == ';' || is_ws(c)) {
          state_ = State::chunk_ext;
        } else if (c == '\r') {
          state_ = State::chunk_size_lf;
        } else if (c == '\n') {
          --p;  // let chunk_size_lf see it
          state_ = State::chunk_size_lf;
        } else {
          return fail();
        }
        break;
      }
      case State::chunk_ext: {
        const char c = *p++;
        if (c == '\r') state_ = State::chunk_size_lf;
        else if (c == '\n') {
          --p;  // let chunk_size_lf see it
          state_ = State::chunk_size_lf;
        }
        break;
      }
      case State::chunk_size_lf:
        if (*p++ != '\n') return fail();
        if (value_num_ == 0) {
          state_ = State::trailer_start;
        } else {
          remaining_ = value_num_;
          state_ = State::chunk_data;
        }
        break;
      case State::chunk_data: {
        const std::uint64_t n = std::min<std::uint64_t>(remaining_, static_cast<std::uint64_t>(end - p));
        p += n;
        remaining_ -= n;
        if (remaining_ == 0) state_ = State::chunk_data_cr;
        break;
      }
      case State::chunk_data_cr: {
        const char c = *p++;
        if (c == '\r') {
          state_ = State::chunk_data_lf;
        } else if (c == '\n') {
          value_num_ = 0;
          value_digits_ = false;
          state_ = State::chunk_size;
        } else {
          return fail();
        }
        break;
      }
      case State::chunk_data_lf:
        if (*p++ != '\n') return fail();
        value_num_ = 0;
        value_digits_ = false;
        state_ = State::chunk_size;
        break;
      case State::trailer_start: {
        const char c = *p++;
        if (c == '\r') {
          state_ = State::trailers_lf;
        } else if (c == '\n') {
          state_ = State::done;
          consumed = static_cast<std::size_t>(p - data);
          return Result::complete;
        } else {
          state_ = State::trailer_line;
        }
        break;
      }
      case State::trailer_line: {
        const char c = *p++;
        if (c == '\r') state_ = State::trailer_lf;
        else if (c == '\n') state_ = State::trailer_start;
        break;
      }
      case State::trailer_lf:
        if (*p++ != '\n') return fail();
        state_ = State::trailer_start;
        break;
      case State::trailers_lf:
        if (*p++ != '\n') return fail();
        state_ = State::done;
        consumed = static_cast<std::size_t>(p - data);
        return Result::complete;
      case State::done:
        // Bytes after a complete response belong to the next one: the caller must start().
        return fail();
    }
  }
  consumed = len;
  return Result::need_more;
}

}  // namespace cmbench::loadgen
