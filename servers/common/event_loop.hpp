// One event loop for every readiness mechanism, after redis's ae: the loop and the connection
// state machine live here, once; select, poll and epoll each supply a small Backend with the
// same four functions. Reading a backend answers "how do we hide select/epoll behind a library
// function?"; reading run_event_loop() answers "what does a single-threaded server do all day?".
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "http_session.hpp"
#include "unique_fd.hpp"

namespace cmbench {
struct ServerOptions;
}

namespace cmbench::ev {

enum : int { kNone = 0, kReadable = 1, kWritable = 2 };

struct Ready {
  int fd;
  int mask;  // kReadable | kWritable; errors and hang-ups are reported as both
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string_view name() const = 0;
  // Starts watching fd. False when the mechanism cannot watch it (select: fd >= FD_SETSIZE).
  virtual bool add(int fd, int mask) = 0;
  virtual void modify(int fd, int mask) = 0;
  virtual void remove(int fd) = 0;
  // Blocks until something is ready or timeout_ms passes (-1: no limit); fills `ready`.
  // Returns false on an unrecoverable error (errno set); EINTR is not one.
  virtual bool wait(int timeout_ms, std::vector<Ready>& ready) = 0;
};

// Handlers that block, run off the loop (server-offload): the loop hands such a request to the
// offloader (HttpSession::defer_if / take_deferred), stops watching that connection, and goes on
// serving the others; when wake_fd() is readable it collects the responses and resumes each
// connection where it stopped (HttpSession::resume).
// Which connection a deferred request came from: fd numbers are reused once a connection
// closes, so the loop also numbers its connections.
struct OffloadTicket {
  int fd;
  std::uint64_t connection;
};

class Offloader {
 public:
  virtual ~Offloader() = default;
  virtual http::DeferPredicate blocking() const = 0;  // which requests leave the loop
  virtual int wake_fd() const = 0;                     // readable while responses wait
  virtual void submit(OffloadTicket from, std::unique_ptr<http::DeferredRequest> request) = 0;
  // Moves every finished (ticket, response) into `done`.
  virtual void collect(std::vector<std::pair<OffloadTicket, http::Response>>& done) = 0;
};

// What the production models add to the loop; the defaults are the single-threaded server.
struct LoopHooks {
  // >= 0: the loop stops when this fd is readable, instead of on SIGTERM/SIGINT itself. It never
  // reads it, so one eventfd written once stops every loop that shares it (server-reuseport).
  int stop_fd = -1;
  Offloader* offloader = nullptr;  // server-offload
};

// Serves every connection on the calling thread until SIGTERM or SIGINT, with the deadlines
// and the client cap of `options` (docs/architecture.md §3). Returns the exit status.
int run_event_loop(const std::string& model, UniqueFd listener, Backend& backend,
                   const ServerOptions& options, const LoopHooks& hooks = {});

}  // namespace cmbench::ev
