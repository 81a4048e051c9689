// Incremental HTTP/1.x request parser (docs/architecture.md §2). Pure: no I/O, no allocation.
//
// The caller keeps the unconsumed bytes of a connection and hands all of them to parse() each
// time more arrive. The parser remembers how far it has already scanned and, once the head is
// complete, what the head said (as offsets: the caller's buffer may move between calls), so a
// request arriving one byte at a time costs O(head + body) in total, and it reports one of: a complete request (with how
// many bytes it used, so a pipelined request starts right after), "need more", or an error
// status after which the connection is answered and closed. A complete request holds views into
// the input, valid until the caller changes that buffer.
#pragma once

#include <cstddef>
#include <string_view>

namespace cmbench::http {

inline constexpr std::size_t kMaxHeaderBytes = 8192;   // whole head: request line .. blank line
inline constexpr std::size_t kMaxBodyBytes = 1048576;  // 1 MiB

enum class Method { Get, Head, Post, Other };

struct Request {
  Method method = Method::Other;
  std::string_view method_text;   // as sent, e.g. "DELETE"
  std::string_view target;        // origin-form, e.g. "/bytes/13?x=1"
  int version_minor = 1;          // HTTP/1.0 or HTTP/1.1
  bool keep_alive = true;         // version default, then the Connection header
  std::size_t content_length = 0;
  std::string_view body;          // content_length bytes
};

enum class ParseStatus { Complete, NeedMore, Error };

struct ParseResult {
  ParseStatus status = ParseStatus::NeedMore;
  std::size_t consumed = 0;  // bytes of the input this request used (Complete only)
  int error_status = 0;      // 400, 413, 431 or 501 (Error only)
  Request request;           // Complete only
};

class RequestParser {
 public:
  // `input` starts at the first byte of the current request and is a prefix-extension of what
  // the previous call saw (the caller appends, it never drops unconsumed bytes).
  ParseResult parse(std::string_view input);

  // Start over for the next request (after Complete).
  void reset() noexcept {
    const std::size_t work = work_;
    *this = RequestParser{};
    work_ = work;
  }

  // The current request's head has been seen whole (its body may still be arriving).
  bool head_complete() const noexcept { return head_len_ != 0; }

  // Parser work so far, in bytes examined (line-end scan plus head parse), summed over every
  // request since construction (reset() keeps it). Tests use it to show parsing is linear: a
  // body fed one byte at a time must not make the head be examined again per byte.
  std::size_t work() const noexcept { return work_; }

 private:
  std::size_t scanned_ = 0;          // head bytes already checked for line ends
  std::size_t first_line_end_ = 0;   // offset of the request line's LF, 0 = not yet seen
  std::size_t head_len_ = 0;         // head length incl. blank line once found, else 0
  // What the complete head said, kept while its body arrives. Offsets into the input, never
  // views: the caller's buffer may be reallocated between calls.
  Method method_ = Method::Other;
  std::size_t method_len_ = 0;                       // the method starts at offset 0
  std::size_t target_off_ = 0, target_len_ = 0;
  int version_minor_ = 1;
  bool keep_alive_ = true;
  std::size_t content_length_ = 0;
  int head_error_ = 0;                               // the complete head was refused with this
  std::size_t work_ = 0;
};

// Case-insensitive ASCII comparison, as header names and connection tokens require.
bool iequals(std::string_view a, std::string_view b) noexcept;

}  // namespace cmbench::http
