// Incremental HTTP/1.x response parser for the load generator.
//
// A byte-driven state machine: it keeps no copy of the input, so a connection needs only this
// small struct (no buffer) and one scratch read buffer per thread serves every connection.
// It extracts what a load generator needs -- status code, Content-Length, chunked framing,
// Connection: close / keep-alive -- and skips bodies by counting, without copying.
// Responses may arrive split at any byte, and several may arrive in one read (pipelining):
// feed() stops right after the last byte of a complete response and reports how much it used.
#pragma once

#include <cstddef>
#include <cstdint>

namespace cmbench::loadgen {

class ResponseParser {
 public:
  enum class Result : std::uint8_t { need_more, complete, error };

  // Prepares for the next response. head: the request was HEAD, so the response has no body
  // whatever its headers say.
  void start(bool head) noexcept;
  // Parses up to len bytes; consumed is set to how many were used. Returns complete right after
  // the final byte of a response (call start() before feeding the rest), need_more when every
  // byte was used and the response is unfinished, error on malformed input.
  Result feed(const char* data, std::size_t len, std::size_t& consumed) noexcept;
  // The peer closed the connection: a response whose body runs until close is now complete.
  bool completes_at_eof() const noexcept { return state_ == State::body_until_close; }
  // True once any byte of the current response has been parsed.
  bool started() const noexcept { return started_; }

  int status() const noexcept { return status_; }
  // Whether the connection may carry another request after this response.
  bool keep_alive() const noexcept;
  std::uint64_t content_length() const noexcept { return content_length_; }

 private:
  enum class State : std::uint8_t {
    version, status_code, status_end, reason, line_lf,
    header_start, name, value_ows, value, value_lf, headers_lf,
    body, body_until_close,
    chunk_size, chunk_ext, chunk_size_lf, chunk_data, chunk_data_cr, chunk_data_lf,
    trailer_start, trailer_line, trailer_lf, trailers_lf,
    done,
  };
  // Headers whose values matter; names are matched incrementally against this table.
  enum class Header : std::uint8_t { other, content_length, connection, transfer_encoding };

  Result headers_done() noexcept;
  void name_char(char c) noexcept;
  void token_char(char c) noexcept;
  void token_end() noexcept;

  State state_ = State::version;
  Header header_ = Header::other;
  bool head_ = false;
  bool started_ = false;
  bool http10_ = false;
  bool has_length_ = false;
  bool conn_close_ = false;
  bool conn_keep_alive_ = false;
  bool chunked_ = false;
  bool te_present_ = false;
  bool until_close_ = false;      // no length: the body runs until the server closes
  bool value_digits_ = false;
  std::uint8_t pos_ = 0;          // characters matched in the version / status / name / token
  std::uint8_t candidates_ = 0;   // bitmask of header names or tokens still matching
  std::uint8_t last_token_ = 0;   // token recognised last in the current value (bit, 0 = none)
  std::uint16_t status_ = 0;
  std::uint64_t content_length_ = 0;
  std::uint64_t remaining_ = 0;   // body or chunk bytes still to skip
  std::uint64_t value_num_ = 0;   // Content-Length or chunk size being accumulated
};

}  // namespace cmbench::loadgen
