// One connection's protocol state, shared by every model: bytes in, responses out.
//
// A model reads from its socket however it likes and hands the bytes to on_bytes(); the
// session parses every complete request (pipelined ones too), runs each handler and queues its
// response. The model then writes what gather() offers and reports it with on_written(). What
// the connection wants next is a value (next()), so blocking loops, event loops, Asio and
// libevent all drive the same state machine.
//
// Memory: an idle keep-alive connection holds no heap memory here. Unconsumed input is kept
// only while a request is incomplete (at most one head + 1 MiB body); parsing pauses while
// more than kOutputHighWater bytes of responses wait to be written, so a client that pipelines
// without reading cannot make the server buffer without bound.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "http_parser.hpp"
#include "http_response.hpp"

namespace cmbench::http {

inline constexpr std::size_t kReadSize = 16 * 1024;           // every model reads 16 KiB at most
inline constexpr std::size_t kOutputHighWater = 256 * 1024;   // pause parsing above this
inline constexpr std::size_t kDrainLimit = 4 * 1024 * 1024;   // lingering close reads at most this

enum class Want {
  Read,    // nothing to send: wait for more request bytes
  Write,   // responses are queued: write them
  Finish,  // the last response is sent: shut down our side, drain the peer, close
};

class HttpSession {
 public:
  // Bytes read from the peer. Runs the handlers of every complete request they finish.
  void on_bytes(std::string_view data);

  // Fills up to `max` iovecs with unsent response bytes; returns how many it filled.
  int gather(iovec* iov, int max) const;
  // `n` bytes of what gather() offered were written.
  void on_written(std::size_t n);

  Want next() const noexcept;
  bool has_output() const noexcept { return out_index_ < out_.size(); }
  std::size_t output_bytes() const noexcept { return out_bytes_; }

  // Queue a final response without a request (e.g. 503 when the model cannot take the client).
  void reject(int status);

  // Requests answered on this connection (tests and counters).
  std::size_t requests() const noexcept { return requests_; }

 private:
  void parse_available();
  void enqueue(Response r);
  bool paused() const noexcept { return closing_ || out_bytes_ >= kOutputHighWater; }

  RequestParser parser_;
  std::string pending_;               // unconsumed input, starting at the current request
  std::vector<Response> out_;         // responses not yet fully written, in request order
  std::size_t out_index_ = 0;         // first response with unsent bytes
  std::size_t out_offset_ = 0;        // bytes of out_[out_index_] already sent
  std::size_t out_bytes_ = 0;         // unsent bytes in total
  std::size_t requests_ = 0;
  bool closing_ = false;              // a response that ends the connection is queued
};

}  // namespace cmbench::http
