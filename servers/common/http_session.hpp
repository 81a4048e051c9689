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

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "http_parser.hpp"
#include "http_response.hpp"

namespace cmbench::http {

inline constexpr std::size_t kReadSize = 16 * 1024;           // every model reads 16 KiB at most
inline constexpr std::size_t kOutputHighWater = 256 * 1024;   // pause parsing above this
inline constexpr std::size_t kDrainLimit = 4 * 1024 * 1024;   // lingering close reads at most this
// Fairness: one turn of a connection (one on_bytes or process call) runs at most this many
// requests. A single 16 KiB read can hold hundreds of pipelined requests; answering all of
// them before anyone else would let one client freeze an event loop for their sum (40
// pipelined /cpu/50000 = 2 s). Eight keeps a 16-deep pipeline of GET / at two turns (the cost
// of a turn is one pass of the loop, no system call) and bounds what one client makes the
// others wait to eight handlers.
inline constexpr int kRequestsPerTurn = 8;
// A turn also ends once its handlers have run this long (checked between requests): eight
// cheap requests take microseconds and are never cut, while expensive ones (/cpu/50000) go one
// per turn, so another client waits at most about one handler, not eight, even on a loaded
// machine where eight 50 ms handlers take a second of wall time.
inline constexpr auto kTurnBudget = std::chrono::milliseconds(5);

enum class Want {
  Read,     // nothing to send: wait for more request bytes
  Write,    // responses are queued: write them
  Process,  // complete requests wait in the input: call process() on the connection's next turn
            // (no socket wait: the bytes are already here; an event loop lets others go first)
  Finish,   // the last response is sent: shut down our side, drain the peer, close
};

// Which deadline of docs/architecture.md §3 a connection is under (see connection_deadline.hpp).
enum class Phase {
  Idle,  // no request in progress: new, or keep-alive after a response (--idle-timeout)
  Head,  // a request's head has begun but is not complete (--header-timeout, then 408)
  Busy,  // a body is arriving, a handler runs, responses are being written: no deadline
};

// A complete request copied out of the session's input, so that its handler can run on another
// thread after the input buffer has moved on (server-offload).
struct DeferredRequest {
  Method method = Method::Other;
  std::string method_text, target, body;
  int version_minor = 1;
  bool keep_alive = true;
  explicit DeferredRequest(const Request& r)
      : method(r.method), method_text(r.method_text), target(r.target), body(r.body),
        version_minor(r.version_minor), keep_alive(r.keep_alive) {}
  // A view for respond(), valid while this object lives.
  Request view() const {
    Request r;
    r.method = method;
    r.method_text = method_text;
    r.target = target;
    r.version_minor = version_minor;
    r.keep_alive = keep_alive;
    r.content_length = body.size();
    r.body = body;
    return r;
  }
};

// Which requests a model runs elsewhere instead of inside on_bytes/process (nullptr: none).
using DeferPredicate = bool (*)(const Request&);

class HttpSession {
 public:
  // Bytes read from the peer. Runs the handlers of the complete requests they finish, at most
  // kRequestsPerTurn of them (fewer once kTurnBudget is spent); the rest wait for process()
  // (next() says Process).
  void on_bytes(std::string_view data);
  // The connection's next turn: runs up to kRequestsPerTurn more of the waiting requests.
  void process();

  // Fills up to `max` iovecs with unsent response bytes; returns how many it filled.
  int gather(iovec* iov, int max) const;
  // `n` bytes of what gather() offered were written.
  void on_written(std::size_t n);

  Want next() const noexcept;
  Phase phase() const noexcept;
  bool has_output() const noexcept { return out_index_ < out_.size(); }
  std::size_t output_bytes() const noexcept { return out_bytes_; }

  // Queue a final response without a request (503 when the model cannot take the client, 408
  // when a head was not complete in time). Unparsed input is dropped: only draining follows.
  void reject(int status);

  // Deferred handlers (server-offload). With defer_if(pred), a complete request for which pred
  // is true is not answered here: the session keeps a copy (take_deferred(), once), parses
  // nothing after it, and waits for resume(response), which queues that response in its place
  // and lets the requests behind it go on (next() says Process). Order is kept: responses
  // before it are written meanwhile, requests after it wait in the input. While waiting(), a
  // model must not read (next() says Read once nothing is left to write, only because no other
  // value fits: the input would grow without bound) and no deadline applies (phase() is Busy).
  void defer_if(DeferPredicate pred) noexcept { defer_ = pred; }
  bool waiting() const noexcept { return waiting_; }
  std::unique_ptr<DeferredRequest> take_deferred() noexcept { return std::move(deferred_); }
  void resume(Response response);

  // Requests answered on this connection (tests and counters).
  std::size_t requests() const noexcept { return requests_; }
  // Bytes the parser has examined on this connection (RequestParser::work(); tests).
  std::size_t parser_work() const noexcept { return parser_.work(); }

 private:
  // Parses and answers requests from `input` (the caller's buffer or pending_) for one turn;
  // returns the bytes consumed.
  std::size_t parse_turn(std::string_view input);
  void parse_pending();
  void enqueue(Response r);
  bool paused() const noexcept {
    return closing_ || waiting_ || out_bytes_ >= kOutputHighWater;
  }

  RequestParser parser_;
  std::string pending_;               // unconsumed input, starting at the current request
  std::vector<Response> out_;         // responses not yet fully written, in request order
  std::size_t out_index_ = 0;         // first response with unsent bytes
  std::size_t out_offset_ = 0;        // bytes of out_[out_index_] already sent
  std::size_t out_bytes_ = 0;         // unsent bytes in total
  std::size_t requests_ = 0;
  bool closing_ = false;              // a response that ends the connection is queued
  bool backlog_ = false;              // pending_ may hold complete requests (turn or output bound)
  bool waiting_ = false;              // a deferred request's response is awaited (resume())
  DeferPredicate defer_ = nullptr;
  std::unique_ptr<DeferredRequest> deferred_;  // the waiting request, until take_deferred()
};

}  // namespace cmbench::http
