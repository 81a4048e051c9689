// server-asio-coro: one thread running a Boost.Asio io_context; every connection is a C++20
// coroutine.
//
// The same service, sessions and connection manager as server-asio, written as straight-line
// code: where server-asio passes a completion handler ("read some bytes, then call me") and
// continues in it, this file writes `co_await socket_.async_read_some(..., use_awaitable)` and
// continues on the next line (Asio's example/cpp20/coroutines servers). co_spawn starts a
// coroutine per connection; its frame holds what the handlers' captures held, and the session
// stays alive through the shared_ptr the spawned function keeps. The deadline (idle, header,
// then the absolute lingering close) is a second coroutine per session, the watchdog, waiting
// on the session's steady_timer: Asio keeps timers in its own queue and arms one kernel timer
// for the earliest. Idiomatically each session owns its own 16 KiB read buffer, which an idle
// connection keeps, plus its coroutine frames. Everything runs on the one thread, so a blocking
// handler stalls every client.
#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange unincluded

#include <boost/asio.hpp>

#include <array>
#include <csignal>
#include <memory>
#include <set>
#include <sys/socket.h>
#include <vector>

#include "connection_deadline.hpp"
#include "http_session.hpp"
#include "net.hpp"
#include "server_main.hpp"
#include "signals.hpp"

namespace {

namespace asio = boost::asio;
using asio::awaitable;
using asio::redirect_error;
using asio::use_awaitable;
using asio::ip::tcp;
using boost::system::error_code;
using namespace cmbench;

class Session;
using SessionPtr = std::shared_ptr<Session>;

// The live sessions (Asio's http example's connection_manager): starting one adds it, a
// session that ends removes itself, and stop_all closes every socket at shutdown.
class ConnectionManager {
 public:
  void start(const SessionPtr& s);
  void stop(const SessionPtr& s);
  void stop_all();
  std::size_t size() const noexcept { return sessions_.size(); }

 private:
  std::set<SessionPtr> sessions_;
};

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, ConnectionManager& manager, const Timeouts& timeouts)
      : socket_(std::move(socket)), timer_(socket_.get_executor()), manager_(manager),
        timeouts_(timeouts) {}

  // Two coroutines per connection: the request loop and its watchdog. Each keeps the
  // session alive (the lambda's `self`) until it returns.
  void start() {
    track_deadline();  // the first deadline (idle) is set before the watchdog arms for it
    const auto executor = socket_.get_executor();
    asio::co_spawn(executor, [self = shared_from_this()] { return self->serve(); }, asio::detached);
    asio::co_spawn(executor, [self = shared_from_this()] { return self->watchdog(); }, asio::detached);
  }

  // Closes the socket and the timer: both coroutines then resume with operation_aborted,
  // return, and drop their references, which frees the session.
  void stop() {
    stopped_ = true;
    error_code ignored;
    socket_.close(ignored);
    timer_.cancel();
  }

 private:
  // The connection's whole life, top to bottom: the session says what it wants next and the
  // loop waits for exactly that.
  awaitable<void> serve() {
    while (!stopped_) {
      track_deadline();
      error_code ec;
      switch (http_.next()) {
        case http::Want::Read: {
          const std::size_t n = co_await socket_.async_read_some(
              asio::buffer(buffer_), redirect_error(use_awaitable, ec));
          if (stopped_) co_return;
          if (ec == asio::error::operation_aborted && timed_out_) {
            timed_out_ = false;  // cancelled by the watchdog for the 408: write it next
            break;
          }
          if (ec) co_return end();  // closed or failed
          http_.on_bytes({buffer_.data(), n});
          break;
        }
        case http::Want::Write: {
          iovec iov[64];
          const int n = http_.gather(iov, 64);
          out_.clear();
          for (int i = 0; i < n; ++i) out_.emplace_back(iov[i].iov_base, iov[i].iov_len);
          const std::size_t written =
              co_await asio::async_write(socket_, out_, redirect_error(use_awaitable, ec));
          if (stopped_) co_return;
          if (ec) co_return end();
          http_.on_written(written);
          break;
        }
        case http::Want::Process:
          // More pipelined requests are already here: let the handlers that are queued
          // meanwhile run first (post), so one client cannot hold the loop.
          co_await asio::post(socket_.get_executor(), use_awaitable);
          if (stopped_) co_return;
          http_.process();
          break;
        case http::Want::Finish:
          co_return co_await linger();
      }
    }
  }

  // Lingering close: no more sending, read and discard until the peer closes, for at most a
  // second from now however the peer trickles (the watchdog then ends the session).
  awaitable<void> linger() {
    draining_ = true;
    error_code ec;
    socket_.shutdown(tcp::socket::shutdown_send, ec);
    timer_.expires_at(Clock::now() + kLingerTime);  // wakes the watchdog for the new deadline
    std::size_t drained = 0;
    while (!ec && drained < http::kDrainLimit) {
      drained += co_await socket_.async_read_some(asio::buffer(buffer_),
                                                  redirect_error(use_awaitable, ec));
      if (stopped_) co_return;
    }
    end();  // the peer closed (or sent too much): done
  }

  // docs/architecture.md §3 deadlines. The timer stays armed at the earliest deadline this session has had;
  // an earlier one re-arms it (waking the watchdog), a later one waits for the watchdog to
  // find the old one not yet due.
  void track_deadline() {
    if (draining_ || !deadline_.update(http_, timeouts_, Clock::now())) return;
    if (deadline_.at() < timer_.expiry()) timer_.expires_at(deadline_.at());
  }

  awaitable<void> watchdog() {
    timer_.expires_at(deadline_.at());
    while (!stopped_) {
      error_code ec;
      co_await timer_.async_wait(redirect_error(use_awaitable, ec));
      if (stopped_) co_return;
      const auto now = Clock::now();
      if (timer_.expiry() > now) continue;  // re-armed meanwhile: wait for the new expiry
      if (draining_) co_return end();       // the lingering close's absolute deadline
      if (!deadline_.due(now)) {
        timer_.expires_at(deadline_.at());
        continue;
      }
      if (deadline_.expire(http_) == Expiry::Close) co_return end();  // idle: close silently
      // Header timeout: a 408 is queued. Cancelling the pending read makes serve() write it
      // (then lingering close, whose deadline re-arms this timer).
      timed_out_ = true;
      socket_.cancel(ec);
      timer_.expires_at(Clock::time_point::max());
    }
  }

  // The connection is over: the manager forgets it and closes it.
  void end() { manager_.stop(shared_from_this()); }

  tcp::socket socket_;
  asio::steady_timer timer_;
  ConnectionManager& manager_;
  const Timeouts& timeouts_;
  ConnectionDeadline deadline_;
  std::array<char, http::kReadSize> buffer_;
  http::HttpSession http_;
  std::vector<asio::const_buffer> out_;  // the gathered output, alive until the write completes
  bool timed_out_ = false;  // the header deadline passed: the cancelled read must write the 408
  bool draining_ = false;
  bool stopped_ = false;
};

void ConnectionManager::start(const SessionPtr& s) {
  sessions_.insert(s);
  s->start();
}

void ConnectionManager::stop(const SessionPtr& s) {
  if (sessions_.erase(s) > 0) s->stop();
}

void ConnectionManager::stop_all() {
  for (const auto& s : sessions_) s->stop();
  sessions_.clear();
}

class Server {
 public:
  Server(asio::io_context& io, UniqueFd listener, const ServerOptions& options)
      : acceptor_(io), backoff_(io), options_(options) {
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    ::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&addr), &len);
    acceptor_.assign(addr.ss_family == AF_INET6 ? tcp::v6() : tcp::v4(), listener.release());
    asio::co_spawn(io, accept(), asio::detached);
  }

  // SIGTERM: stop accepting and close every connection; io.run() then returns once the
  // aborted coroutines have finished.
  void stop() {
    error_code ignored;
    acceptor_.close(ignored);
    backoff_.cancel();
    manager_.stop_all();
  }

 private:
  awaitable<void> accept() {
    while (true) {
      error_code ec;
      tcp::socket socket = co_await acceptor_.async_accept(redirect_error(use_awaitable, ec));
      if (ec == asio::error::operation_aborted) co_return;  // stopped
      if (ec == asio::error::no_descriptors || ec == asio::error::no_buffer_space ||
          ec == asio::error::no_memory) {
        // Out of fds: accepting again at once would spin; retry in 100 ms (clients wait in
        // the backlog meanwhile).
        backoff_.expires_after(std::chrono::milliseconds(100));
        co_await backoff_.async_wait(redirect_error(use_awaitable, ec));
        if (ec) co_return;
        continue;
      }
      if (!ec && manager_.size() >= options_.max_clients) {
        // --max-clients: a 503 and a close for the connection past the cap.
        error_code ignored;
        reject_connection(UniqueFd(socket.release(ignored)), 503);
      } else if (!ec) {
        error_code ignored;
        socket.set_option(tcp::no_delay(true), ignored);
        manager_.start(std::make_shared<Session>(std::move(socket), manager_, options_.timeouts));
      }
    }
  }

  tcp::acceptor acceptor_;
  asio::steady_timer backoff_;
  const ServerOptions& options_;
  ConnectionManager manager_;
};

}  // namespace

int main(int argc, char** argv) {
  ServerSpec spec;
  spec.model = "asio-coro";
  spec.description = "one thread, Boost.Asio io_context with C++20 coroutines (co_spawn, co_await)";
  spec.serve = [](UniqueFd listener, const ServerOptions& options) {
    ::signal(SIGPIPE, SIG_IGN);
    asio::io_context io(1);  // concurrency hint 1: a single thread runs every coroutine
    Server server(io, std::move(listener), options);
    asio::signal_set signals(io, SIGINT, SIGTERM);
    unblock_stop_signals();  // the signal_set now catches them
    signals.async_wait([&](error_code ec, int) {
      if (!ec) server.stop();
    });
    io.run();
    return 0;
  };
  return run_server(spec, argc, argv);
}
