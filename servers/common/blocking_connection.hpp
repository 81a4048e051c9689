// Serving one connection with blocking-style calls: the whole life of a client in the
// process-per-connection, thread-per-connection and green-thread models. read → handle →
// write, until done.
//
// The code reads as blocking, but the socket is non-blocking and every call that would block
// goes through BlockingIo::wait(), with the connection's deadline (docs/architecture.md §3: idle, header,
// lingering close). A thread or process of its own waits in poll(2) (PollIo); a green thread
// parks in its hub instead (servers/fibers) — gevent's monkey-patching idea, made visible: the
// connection code below is the same for both, only the wait differs. Trying the call first
// and waiting only on EAGAIN is what Apache's blocking MPMs do.
#pragma once

#include <cstddef>

#include "connection_deadline.hpp"

namespace cmbench {

class BlockingIo {
 public:
  virtual ~BlockingIo() = default;
  // Waits until fd is ready for `events` (POLLIN or POLLOUT), an error or hang-up, or until
  // `deadline` (Clock::time_point::max(): no limit). True when ready, false when the deadline
  // passed.
  virtual bool wait(int fd, short events, Clock::time_point deadline) = 0;
  // Between two turns of pipelined requests: a green thread lets the others run first.
  virtual void yield() {}
};

// The wait of a thread or process that owns its connection: poll(2) on the one fd.
class PollIo final : public BlockingIo {
 public:
  bool wait(int fd, short events, Clock::time_point deadline) override;
};

// Serves requests on the non-blocking socket `fd` until the peer closes, an I/O error, a
// deadline, or a final response (then lingering close, at most kLingerTime). The caller owns
// and closes fd. Returns the number of requests answered.
std::size_t serve_blocking(int fd, const Timeouts& timeouts, BlockingIo& io);

enum class Wake { Stop, Listener, Other };

// The accept loop's wait: blocks until the listener is readable or a signal arrives (Stop for
// SIGTERM/SIGINT, Other for anything else, e.g. SIGCHLD). With `back_off` (we just ran out of
// fds) it ignores the listener for 100 ms instead of spinning on a failing accept().
Wake wait_for_client(int listen_fd, bool back_off);

}  // namespace cmbench
