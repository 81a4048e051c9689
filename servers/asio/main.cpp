// server-asio: one thread running a Boost.Asio io_context; every step is an async callback.
//
// Shaped like Asio's own example/cpp11 http server: an acceptor that re-arms async_accept, a
// Session object per connection kept alive by the shared_ptr that each pending operation's
// handler holds (shared_from_this), and a ConnectionManager that owns the set of live sessions,
// so the client cap (--max-clients) and shutdown (stop_all on SIGTERM) are explicit instead of
// left to the io_context's destructor. Asio hides the readiness mechanism (epoll here) behind
// completion handlers: we ask "read some bytes, then call me", never "tell me when readable".
// Each session has one steady_timer for its deadline (idle, header, then the absolute lingering
// close); Asio keeps timers in its own queue and arms one kernel timer for the earliest, and a
// deadline that only moves later is re-armed when the timer fires, not on every request.
// Idiomatically each session owns its own 16 KiB read buffer, which an idle connection keeps:
// the report shows what that costs against the hand-written loops. Handlers run on the one
// thread, so a blocking handler stalls every client.
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

  void start() { proceed(); }

  // Closes the socket and the timer: every pending handler then completes with
  // operation_aborted and drops its reference, which frees the session.
  void stop() {
    stopped_ = true;
    error_code ignored;
    socket_.close(ignored);
    timer_.cancel();
  }

 private:
  // The session says what it wants next; each branch starts one async operation.
  void proceed() {
    if (stopped_) return;
    track_deadline();
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
      if (self->stopped_) return;
      self->http_.process();
      self->proceed();
    });
  }

  void do_read() {
    socket_.async_read_some(asio::buffer(buffer_),
                            [self = shared_from_this()](error_code ec, std::size_t n) {
                              if (self->stopped_) return;
                              if (ec == asio::error::operation_aborted && self->timed_out_) {
                                self->timed_out_ = false;  // cancelled for the 408: write it
                                return self->proceed();
                              }
                              if (ec) return self->end();  // closed or failed
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
      if (self->stopped_) return;
      if (ec) return self->end();
      self->http_.on_written(written);
      self->proceed();
    });
  }

  // docs/architecture.md §3 deadlines. The timer stays armed at the earliest deadline this session has had;
  // when it fires, the current deadline decides: due (close silently, or 408), later (re-arm),
  // or none (a request is being served or written).
  void track_deadline() {
    if (draining_ || !deadline_.update(http_, timeouts_, Clock::now())) return;
    if (deadline_.at() == Clock::time_point::max()) return;
    if (timer_armed_ && timer_.expiry() <= deadline_.at()) return;  // fires first; re-arms then
    arm(deadline_.at());
  }

  void arm(Clock::time_point at) {
    timer_.expires_at(at);  // cancels a wait armed for later, whose handler then does nothing
    timer_armed_ = true;
    timer_.async_wait([self = shared_from_this()](error_code ec) {
      if (ec == asio::error::operation_aborted || self->stopped_) return;
      self->timer_armed_ = false;
      self->on_timer();
    });
  }

  void on_timer() {
    if (draining_) return end();  // the lingering close's absolute deadline
    if (!deadline_.due(Clock::now())) {
      if (deadline_.at() != Clock::time_point::max()) arm(deadline_.at());
      return;
    }
    if (deadline_.expire(http_) == Expiry::Close) return end();  // idle: close without a word
    // Header timeout: a 408 is queued. The read pending on the socket is cancelled; its
    // handler sees timed_out_ and proceeds to write the 408 (then lingering close).
    timed_out_ = true;
    error_code ignored;
    socket_.cancel(ignored);
  }

  // Lingering close: no more sending, read and discard until the peer closes, for at most a
  // second from now however the peer trickles (the timer then ends the session).
  void finish() {
    draining_ = true;
    error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_send, ignored);
    arm(Clock::now() + kLingerTime);
    drain();
  }
  void drain() {
    socket_.async_read_some(asio::buffer(buffer_),
                            [self = shared_from_this()](error_code ec, std::size_t n) {
                              if (self->stopped_) return;
                              self->drained_ += n;
                              if (!ec && self->drained_ < http::kDrainLimit) return self->drain();
                              self->end();  // the peer closed (or sent too much): done
                            });
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
  std::size_t drained_ = 0;
  bool timer_armed_ = false;
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
    accept();
  }

  // SIGTERM: stop accepting and close every connection; io.run() then returns once the
  // aborted handlers have run.
  void stop() {
    error_code ignored;
    acceptor_.close(ignored);
    backoff_.cancel();
    manager_.stop_all();
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
      if (!ec && manager_.size() >= options_.max_clients) {
        // --max-clients: a 503 and a close for the connection past the cap.
        error_code ignored;
        reject_connection(UniqueFd(socket.release(ignored)), 503);
      } else if (!ec) {
        error_code ignored;
        socket.set_option(tcp::no_delay(true), ignored);
        manager_.start(std::make_shared<Session>(std::move(socket), manager_, options_.timeouts));
      }
      accept();
    });
  }

  tcp::acceptor acceptor_;
  asio::steady_timer backoff_;
  const ServerOptions& options_;
  ConnectionManager manager_;
};

}  // namespace

int main(int argc, char** argv) {
  ServerSpec spec;
  spec.model = "asio";
  spec.description = "one thread, Boost.Asio io_context with async callbacks";
  spec.serve = [](UniqueFd listener, const ServerOptions& options) {
    ::signal(SIGPIPE, SIG_IGN);
    asio::io_context io(1);  // concurrency hint 1: a single thread runs every handler
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
