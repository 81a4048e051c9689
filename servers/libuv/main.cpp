// server-libuv: one thread running libuv's loop, the engine under Node.js and uvloop.
//
// libuv owns the sockets, the epoll set, the timers and the signals; we own one Connection per
// client (a uv_tcp_t, a uv_timer_t for its deadline, one write request and the shared HTTP
// session) and react in callbacks. uv_listen accepts; uv_read_start reads through an
// allocation callback that hands out the loop's one 16 KiB scratch buffer (the bytes go into
// the session before the callback returns, so an idle connection holds no read buffer);
// responses go out with uv_try_write, and whatever the socket does not take at once with
// uv_write, whose buffers point into the session (no copy) until its callback. Reading is
// started only while the session wants bytes, so a client that does not read its responses
// is not read either. Deadlines (idle, header, lingering close 1 s absolute) run on the
// connection's uv_timer_t: libuv keeps timers in a heap inside the loop, no system call each.
// Pipelined requests beyond one turn wait for the next loop iteration's check phase
// (uv_prepare_t/uv_check_t around the poll), after the other clients' I/O.
// SIGTERM/SIGINT arrive through uv_signal_t; shutdown uv_close()s every handle and runs the
// loop until all are gone. Limits: one thread, so a blocking handler (/sleep) stalls every
// client; out of fds, libuv accepts and closes the waiting connections (its "EMFILE trick")
// instead of leaving them in the backlog.
#include <uv.h>

#include <chrono>
#include <csignal>
#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

#include "connection_deadline.hpp"
#include "http_session.hpp"
#include "server_main.hpp"
#include "signals.hpp"

namespace {

using namespace cmbench;

struct Server;

struct Connection {
  Server* server = nullptr;
  uv_tcp_t tcp{};
  uv_timer_t timer{};        // the current deadline (ConnectionDeadline) or the linger limit
  uv_write_t write_req{};
  uv_shutdown_t shutdown_req{};
  http::HttpSession session;
  ConnectionDeadline deadline;
  std::size_t in_flight = 0;  // bytes handed to the pending uv_write
  std::size_t drained = 0;    // bytes discarded during lingering close
  bool counted = false;       // holds a --max-clients place (a rejected client does not)
  bool reading = false;
  bool writing = false;       // a uv_write is pending: the session must not change meanwhile
  bool lingering = false;
  bool closing = false;
  bool turn_queued = false;   // owed a Process turn (in Server::turns_due or turns_now)
  int open_handles = 2;       // tcp + timer: freed when both close callbacks have run
};

struct Server {
  uv_loop_t loop{};
  uv_tcp_t listener{};
  uv_signal_t sigterm{}, sigint{};
  // Fairness: a turn owed during one loop iteration runs in the check phase of the next one,
  // after that iteration's poll has served everyone else who was ready. The prepare handle
  // (just before the poll) picks the owed turns, the check handle (just after) runs them, and
  // the idle handle, active while turns are owed, keeps that poll from blocking.
  uv_prepare_t before_poll{};
  uv_check_t after_poll{};
  uv_idle_t no_block{};
  std::vector<Connection*> turns_due;       // owed a turn (queued this iteration)
  std::vector<Connection*> turns_now;       // to run after this iteration's poll
  std::unordered_set<Connection*> connections;  // every live one, for shutdown
  std::size_t open = 0;                     // counted connections
  ServerOptions options;
  std::unique_ptr<char[]> scratch = std::make_unique<char[]>(http::kReadSize);
  unsigned long accept_errors = 0;
};

void proceed(Connection* c);

void maybe_free(Connection* c) {
  if (c->open_handles == 0 && !c->turn_queued) delete c;
}

void on_handle_closed(uv_handle_t* handle) {
  auto* c = static_cast<Connection*>(handle->data);
  --c->open_handles;
  maybe_free(c);
}

// Pending write and shutdown requests are cancelled by uv_close (their callbacks see
// UV_ECANCELED); the Connection lives until both handles' close callbacks have run.
void close_connection(Connection* c) {
  if (c->closing) return;
  c->closing = true;
  c->server->connections.erase(c);
  if (c->counted) --c->server->open;
  uv_close(reinterpret_cast<uv_handle_t*>(&c->tcp), on_handle_closed);
  uv_close(reinterpret_cast<uv_handle_t*>(&c->timer), on_handle_closed);
}

void on_alloc(uv_handle_t* handle, std::size_t, uv_buf_t* buf) {
  auto* c = static_cast<Connection*>(handle->data);
  *buf = uv_buf_init(c->server->scratch.get(), static_cast<unsigned>(http::kReadSize));
}

void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
  auto* c = static_cast<Connection*>(stream->data);
  if (nread == 0) return;  // EAGAIN
  if (nread < 0) return close_connection(c);  // UV_EOF or an error
  if (c->lingering) {
    c->drained += static_cast<std::size_t>(nread);
    if (c->drained >= http::kDrainLimit) close_connection(c);
    return;
  }
  c->session.on_bytes({buf->base, static_cast<std::size_t>(nread)});
  proceed(c);
}

void set_reading(Connection* c, bool on) {
  if (on == c->reading) return;
  auto* stream = reinterpret_cast<uv_stream_t*>(&c->tcp);
  if (on ? uv_read_start(stream, on_alloc, on_read) == 0 : uv_read_stop(stream) == 0)
    c->reading = on;
}

void on_deadline(uv_timer_t* timer) {
  auto* c = static_cast<Connection*>(timer->data);
  if (c->lingering) return close_connection(c);  // lingering close ends at its deadline
  const auto now = Clock::now();
  if (!c->deadline.due(now)) {  // libuv's clock is in whole ms: came a little early
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(c->deadline.at() - now);
    uv_timer_start(timer, on_deadline, static_cast<std::uint64_t>(left.count()), 0);
    return;
  }
  if (c->deadline.expire(c->session) == Expiry::Close) return close_connection(c);
  proceed(c);  // the 408 is queued
}

// Re-arms the connection's timer when its deadline changed (libuv's timer heap: no syscall).
void update_deadline(Connection* c) {
  const auto now = Clock::now();
  if (!c->deadline.update(c->session, c->server->options.timeouts, now)) return;
  if (c->deadline.at() == Clock::time_point::max()) {
    uv_timer_stop(&c->timer);
  } else {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(c->deadline.at() - now);
    uv_timer_start(&c->timer, on_deadline, static_cast<std::uint64_t>(left.count()), 0);
  }
}

void on_written(uv_write_t* req, int status) {
  auto* c = static_cast<Connection*>(req->data);
  c->writing = false;
  if (c->closing) return;
  if (status < 0) return close_connection(c);
  c->session.on_written(c->in_flight);
  proceed(c);
}

void on_shutdown(uv_shutdown_t* req, int status) {
  auto* c = static_cast<Connection*>(req->data);
  if (status < 0 && !c->closing) close_connection(c);
}

void on_before_poll(uv_prepare_t* prepare) {
  auto* s = static_cast<Server*>(prepare->data);
  s->turns_now.swap(s->turns_due);
}

void on_after_poll(uv_check_t* check) {
  auto* s = static_cast<Server*>(check->data);
  std::vector<Connection*> now;
  now.swap(s->turns_now);
  for (Connection* c : now) {
    c->turn_queued = false;
    if (c->closing) {
      maybe_free(c);
      continue;
    }
    if (c->session.next() == http::Want::Process) c->session.process();
    proceed(c);
  }
  if (s->turns_due.empty()) uv_idle_stop(&s->no_block);
}

void on_no_block(uv_idle_t*) {}

// After every change to the session: write what it has, then read, take a turn, or linger.
void proceed(Connection* c) {
  if (c->closing || c->lingering || c->writing) return;
  auto* stream = reinterpret_cast<uv_stream_t*>(&c->tcp);
  // The session may have gone Idle -> Busy -> Idle since the last look (a request answered
  // within this call): note the Busy phase first, so the idle deadline restarts after it.
  update_deadline(c);
  while (c->session.next() == http::Want::Write) {
    iovec iov[64];
    uv_buf_t bufs[64];
    const int n = c->session.gather(iov, 64);
    std::size_t total = 0;
    for (int i = 0; i < n; ++i) {
      bufs[i] = uv_buf_init(static_cast<char*>(iov[i].iov_base), static_cast<unsigned>(iov[i].iov_len));
      total += iov[i].iov_len;
    }
    // Usually the whole response fits in the socket at once: no request, no callback.
    const int sent = uv_try_write(stream, bufs, static_cast<unsigned>(n));
    if (sent > 0) {
      c->session.on_written(static_cast<std::size_t>(sent));
      continue;
    }
    if (sent != UV_EAGAIN) return close_connection(c);
    // The socket is full: libuv writes the rest as it drains and calls on_written.
    if (uv_write(&c->write_req, stream, bufs, static_cast<unsigned>(n), on_written) != 0)
      return close_connection(c);
    c->writing = true;
    c->in_flight = total;
    set_reading(c, false);
    return;
  }
  update_deadline(c);
  switch (c->session.next()) {
    case http::Want::Read:
      set_reading(c, true);
      break;
    case http::Want::Process:
      // Fairness: the rest of the pipeline waits for the next pass, after the others' I/O.
      set_reading(c, false);
      if (!c->turn_queued) {
        c->turn_queued = true;
        c->server->turns_due.push_back(c);
        uv_idle_start(&c->server->no_block, on_no_block);  // no-op when already active
      }
      break;
    case http::Want::Finish:
      // Lingering close: FIN after the last response, discard input for at most 1 s in total.
      c->lingering = true;
      uv_timer_start(&c->timer, on_deadline, std::chrono::milliseconds(kLingerTime).count(), 0);
      if (uv_shutdown(&c->shutdown_req, stream, on_shutdown) != 0) return close_connection(c);
      set_reading(c, true);
      break;
    case http::Want::Write:
      break;  // not reached: the loop above wrote or queued it
  }
}

void on_connection(uv_stream_t* listener, int status) {
  auto* s = static_cast<Server*>(listener->data);
  if (status < 0) {
    if (s->accept_errors++ % 100 == 0) log_error("libuv", std::string("accept: ") + uv_strerror(status));
    return;
  }
  auto* c = new Connection;
  c->server = s;
  uv_tcp_init(&s->loop, &c->tcp);
  uv_timer_init(&s->loop, &c->timer);
  c->tcp.data = c->timer.data = c->write_req.data = c->shutdown_req.data = c;
  s->connections.insert(c);
  if (uv_accept(listener, reinterpret_cast<uv_stream_t*>(&c->tcp)) != 0) return close_connection(c);
  uv_tcp_nodelay(&c->tcp, 1);
  if (s->open >= s->options.max_clients) {
    c->session.reject(503);  // past --max-clients: 503, then the usual lingering close
  } else {
    c->counted = true;
    ++s->open;
  }
  proceed(c);
}

// Stop: close the listener, the signal watchers, the idle handle and every connection; the
// loop then has nothing left and uv_run returns.
void on_signal(uv_signal_t* handle, int) {
  auto* s = static_cast<Server*>(handle->data);
  if (uv_is_closing(reinterpret_cast<uv_handle_t*>(&s->listener))) return;
  uv_close(reinterpret_cast<uv_handle_t*>(&s->listener), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&s->sigterm), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&s->sigint), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&s->before_poll), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&s->after_poll), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&s->no_block), nullptr);
  // The check handle will not run again: owed turns are void, so their close callbacks free them.
  for (auto* list : {&s->turns_due, &s->turns_now}) {
    for (Connection* c : *list) c->turn_queued = false;
    list->clear();
  }
  const std::vector<Connection*> all(s->connections.begin(), s->connections.end());
  for (Connection* c : all) close_connection(c);
}

int serve(UniqueFd listener, const ServerOptions& options) {
  std::signal(SIGPIPE, SIG_IGN);  // a vanished peer is an EPIPE from write, not a fatal signal
  auto s = std::make_unique<Server>();
  s->options = options;
  if (int rc = uv_loop_init(&s->loop); rc != 0) {
    log_error("libuv", std::string("uv_loop_init: ") + uv_strerror(rc));
    return 1;
  }
  uv_tcp_init(&s->loop, &s->listener);
  uv_signal_init(&s->loop, &s->sigterm);
  uv_signal_init(&s->loop, &s->sigint);
  uv_prepare_init(&s->loop, &s->before_poll);
  uv_check_init(&s->loop, &s->after_poll);
  uv_idle_init(&s->loop, &s->no_block);
  s->listener.data = s->sigterm.data = s->sigint.data = s.get();
  s->before_poll.data = s->after_poll.data = s->no_block.data = s.get();
  uv_prepare_start(&s->before_poll, on_before_poll);
  uv_check_start(&s->after_poll, on_after_poll);
  int rc = uv_tcp_open(&s->listener, listener.get());
  if (rc == 0) listener.release();  // libuv owns and closes it now
  if (rc == 0) rc = uv_listen(reinterpret_cast<uv_stream_t*>(&s->listener), options.backlog, on_connection);
  if (rc == 0) rc = uv_signal_start(&s->sigterm, on_signal, SIGTERM);
  if (rc == 0) rc = uv_signal_start(&s->sigint, on_signal, SIGINT);
  int status = 0;
  if (rc != 0) {
    log_error("libuv", std::string("cannot listen: ") + uv_strerror(rc));
    on_signal(&s->sigterm, SIGTERM);  // close what was opened
    status = 1;
  }
  unblock_stop_signals();  // libuv's handlers are in place (see signals.hpp)
  uv_run(&s->loop, UV_RUN_DEFAULT);
  uv_loop_close(&s->loop);
  return status;
}

}  // namespace

int main(int argc, char** argv) {
  ServerSpec spec;
  spec.model = "libuv";
  spec.description = std::string("libuv ") + uv_version_string() +
                     " loop: uv_tcp_t, uv_read_start, uv_write, uv_timer_t deadlines";
  spec.serve = serve;
  return run_server(spec, argc, argv);
}
