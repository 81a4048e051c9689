#include "blocking_connection.hpp"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>

#include "http_session.hpp"
#include "signals.hpp"

namespace cmbench {

namespace {

// Lingering close: after our last response we stop sending and read (and discard) what the
// client still sends, so closing does not reset the connection under an unread response. The
// deadline is absolute: a client trickling a byte now and then cannot stretch it.
void finish(int fd, BlockingIo& io) {
  ::shutdown(fd, SHUT_WR);
  const auto deadline = Clock::now() + kLingerTime;
  char sink[4096];
  std::size_t drained = 0;
  while (drained < http::kDrainLimit) {
    const ssize_t n = ::recv(fd, sink, sizeof sink, 0);
    if (n > 0) {
      drained += static_cast<std::size_t>(n);
    } else if (n == 0 || (errno != EAGAIN && errno != EINTR) || !io.wait(fd, POLLIN, deadline)) {
      return;
    }
  }
}

}  // namespace

bool PollIo::wait(int fd, short events, Clock::time_point deadline) {
  while (true) {
    int timeout_ms = -1;
    if (deadline != Clock::time_point::max()) {
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) return false;
      timeout_ms = static_cast<int>(std::min<long long>(left.count(), 1 << 30));
    }
    pollfd p{fd, events, 0};
    const int n = ::poll(&p, 1, timeout_ms);
    if (n > 0) return true;
    if (n < 0 && errno != EINTR) return true;  // let the next call report the error
  }
}

std::size_t serve_blocking(int fd, const Timeouts& timeouts, BlockingIo& io) {
  http::HttpSession session;
  ConnectionDeadline deadline;
  char buffer[http::kReadSize];
  iovec iov[64];
  while (true) {
    deadline.update(session, timeouts, Clock::now());
    switch (session.next()) {
      case http::Want::Read: {
        const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
        if (n > 0) {
          session.on_bytes({buffer, static_cast<std::size_t>(n)});
        } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
          return session.requests();  // peer closed or failed: done
        } else if (!io.wait(fd, POLLIN, deadline.at())) {
          if (deadline.expire(session) == Expiry::Close) return session.requests();
        }
        break;
      }
      case http::Want::Write: {
        msghdr msg{};
        msg.msg_iov = iov;
        msg.msg_iovlen = static_cast<std::size_t>(session.gather(iov, 64));
        const ssize_t n = ::sendmsg(fd, &msg, MSG_NOSIGNAL);
        if (n >= 0) {
          session.on_written(static_cast<std::size_t>(n));
        } else if (errno != EAGAIN && errno != EINTR) {
          return session.requests();
        } else {
          io.wait(fd, POLLOUT, Clock::time_point::max());  // a slow reader: no deadline (§3)
        }
        break;
      }
      case http::Want::Process:
        io.yield();
        session.process();
        break;
      case http::Want::Finish:
        finish(fd, io);
        return session.requests();
    }
  }
}

Wake wait_for_client(int listen_fd, bool back_off) {
  pollfd watch[2] = {{SignalPipe::fd(), POLLIN, 0}, {listen_fd, POLLIN, 0}};
  const int n = ::poll(watch, back_off ? 1 : 2, back_off ? 100 : -1);
  if (n < 0) return Wake::Other;  // EINTR
  if ((watch[0].revents & POLLIN) && SignalPipe::drain_stop()) return Wake::Stop;
  return (watch[1].revents & POLLIN) ? Wake::Listener : Wake::Other;
}

}  // namespace cmbench
