#include "blocking_connection.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <cerrno>

#include "http_session.hpp"
#include "signals.hpp"

namespace cmbench {

namespace {

// Lingering close: after our last response we stop sending and read (and discard) what the
// client still sends, so closing does not reset the connection under an unread response.
void finish(int fd) {
  ::shutdown(fd, SHUT_WR);
  const timeval one_second{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &one_second, sizeof one_second);
  char sink[4096];
  std::size_t drained = 0;
  while (drained < http::kDrainLimit) {
    const ssize_t n = ::recv(fd, sink, sizeof sink, 0);
    if (n <= 0) return;
    drained += static_cast<std::size_t>(n);
  }
}

}  // namespace

std::size_t serve_blocking(int fd) {
  http::HttpSession session;
  char buffer[http::kReadSize];
  iovec iov[64];
  while (true) {
    switch (session.next()) {
      case http::Want::Read: {
        const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return session.requests();  // peer closed or failed: done
        session.on_bytes({buffer, static_cast<std::size_t>(n)});
        break;
      }
      case http::Want::Write: {
        msghdr msg{};
        msg.msg_iov = iov;
        msg.msg_iovlen = static_cast<std::size_t>(session.gather(iov, 64));
        const ssize_t n = ::sendmsg(fd, &msg, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return session.requests();
        session.on_written(static_cast<std::size_t>(n));
        break;
      }
      case http::Want::Finish:
        finish(fd);
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
