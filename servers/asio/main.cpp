// server-asio: one thread running a Boost.Asio io_context; every step is an async callback.
//
// Shaped like Asio's own example/cpp11 echo and http servers: an acceptor that re-arms
// async_accept, and a Session object per connection kept alive by the shared_ptr that each
// pending operation's handler holds (shared_from_this). Asio hides the readiness mechanism
// (epoll here) behind completion handlers: we ask "read some bytes, then call me", never
// "tell me when readable". Idiomatically each session owns its own 16 KiB read buffer, which
// an idle connection keeps: the report shows what that costs against the hand-written loops.
// Handlers run on the one thread, so a blocking handler stalls every client.
#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange unincluded

#include <boost/asio.hpp>

#include <array>
#include <csignal>
#include <memory>
#include <sys/socket.h>
#include <vector>

#include "http_session.hpp"
#include "server_main.hpp"
#include "signals.hpp"

namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using boost::system::error_code;
using namespace cmbench;

class Session : public std::enable_shared_from_this<Session> {
 public:
  explicit Session(tcp::socket socket)
      : socket_(std::move(socket)), linger_(socket_.get_executor()) {}

  void start() { proceed(); }

 private:
  // The session says what it wants next; each branch starts one async operation.
  void proceed() {
    switch (http_.next()) {
      case http::Want::Read: return do_read();
      case http::Want::Write: return do_write();
      case http::Want::Process: return do_process();
      case http::Want::Finish: return finish();
    }
  }

  // More pipelined requests are already here: run the next turn after the handlers that are
  // queued meanwhile (post), so one client cannot hold the loop (HttpSession bounds a turn).
  void do_process() {
    asio::post(socket_.get_executor(), [self = shared_from_this()] {
      self->http_.process();
      self->proceed();
    });
  }

  void do_read() {
    socket_.async_read_some(asio::buffer(buffer_),
                            [self = shared_from_this()](error_code ec, std::size_t n) {
                              if (ec) return;  // closed or failed: dropping `self` closes
                              self->http_.on_bytes({self->buffer_.data(), n});
                              self->proceed();
                            });
  }

  void do_write() {
    iovec iov[64];
    const int n = http_.gather(iov, 64);
    out_.clear();
    for (int i = 0; i < n; ++i) out_.emplace_back(iov[i].iov_base, iov[i].iov_len);
    asio::async_write(socket_, out_, [self = shared_from_this()](error_code ec, std::size_t written) {
      if (ec) return;
      self->http_.on_written(written);
      self->proceed();
    });
  }

  // Lingering close: no more sending, read and discard until the peer closes, for at most a
  // second (the timer then closes the socket, which cancels the pending read).
  void finish() {
    error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_send, ignored);
    linger_.expires_after(std::chrono::seconds(1));
    linger_.async_wait([self = shared_from_this()](error_code ec) {
      error_code ignored_close;
      if (!ec) self->socket_.close(ignored_close);
    });
    drain();
  }
  void drain() {
    socket_.async_read_some(asio::buffer(buffer_),
                            [self = shared_from_this()](error_code ec, std::size_t n) {
                              self->drained_ += n;
                              if (!ec && self->drained_ < http::kDrainLimit) return self->drain();
                              self->linger_.cancel();  // done: let the session go
                            });
  }

  tcp::socket socket_;
  asio::steady_timer linger_;
  std::array<char, http::kReadSize> buffer_;
  http::HttpSession http_;
  std::vector<asio::const_buffer> out_;  // the gathered output, alive until the write completes
  std::size_t drained_ = 0;
};

class Server {
 public:
  Server(asio::io_context& io, UniqueFd listener) : acceptor_(io), backoff_(io) {
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    ::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&addr), &len);
    acceptor_.assign(addr.ss_family == AF_INET6 ? tcp::v6() : tcp::v4(), listener.release());
    accept();
  }

  void stop() {
    error_code ignored;
    acceptor_.close(ignored);
    backoff_.cancel();
  }

 private:
  void accept() {
    acceptor_.async_accept([this](error_code ec, tcp::socket socket) {
      if (ec == asio::error::operation_aborted) return;  // stopped
      if (ec == asio::error::no_descriptors || ec == asio::error::no_buffer_space ||
          ec == asio::error::no_memory) {
        // Out of fds: accepting again at once would spin; retry in 100 ms (clients wait in
        // the backlog meanwhile).
        backoff_.expires_after(std::chrono::milliseconds(100));
        backoff_.async_wait([this](error_code wait_ec) {
          if (!wait_ec) accept();
        });
        return;
      }
      if (!ec) {
        error_code ignored;
        socket.set_option(tcp::no_delay(true), ignored);
        std::make_shared<Session>(std::move(socket))->start();
      }
      accept();
    });
  }

  tcp::acceptor acceptor_;
  asio::steady_timer backoff_;
};

}  // namespace

int main(int argc, char** argv) {
  ServerSpec spec;
  spec.model = "asio";
  spec.description = "one thread, Boost.Asio io_context with async callbacks";
  spec.serve = [](UniqueFd listener, const ServerOptions&) {
    ::signal(SIGPIPE, SIG_IGN);
    asio::io_context io(1);  // concurrency hint 1: a single thread runs every handler
    Server server(io, std::move(listener));
    asio::signal_set signals(io, SIGINT, SIGTERM);
    unblock_stop_signals();  // the signal_set now catches them
    signals.async_wait([&](error_code, int) {
      server.stop();
      io.stop();  // pending sessions are destroyed with io, closing their sockets
    });
    io.run();
    return 0;
  };
  return run_server(spec, argc, argv);
}
