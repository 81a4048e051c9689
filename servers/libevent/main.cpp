// server-libevent: one thread running a libevent event_base, with bufferevents.
//
// libevent picks the best readiness mechanism it has (epoll here; printed at start) and hides
// it behind callbacks: evconnlistener accepts, and each connection is a bufferevent that reads
// into its own input evbuffer and writes from an output evbuffer. We feed the input to the
// shared HTTP session and move its responses into the output buffer: heads and echo bodies are
// copied, /bytes filler is added by reference to one shared block (no copy). Moving stops at
// kOutputHighWater and resumes when libevent reports the output drained, so output stays
// bounded. Each connection has one evtimer for its deadline (docs/architecture.md §3: idle, header, then
// the absolute lingering close; bufferevent read timeouts would restart on every read, so a
// trickling client could stretch them). libevent keeps timers in one min-heap and sleeps in
// epoll_wait until the earliest: no timer system call per connection. The server counts its
// connections for --max-clients. Callbacks run on the one thread, so a blocking handler
// stalls every client.
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <memory>
#include <unordered_map>

#include "connection_deadline.hpp"
#include "http_session.hpp"
#include "net.hpp"
#include "server_main.hpp"
#include "signals.hpp"

namespace {

using namespace cmbench;

// Owners for libevent's C objects, so nothing leaks on any path.
struct BaseFree { void operator()(event_base* p) const { event_base_free(p); } };
struct EventFree { void operator()(event* p) const { event_free(p); } };
struct ListenerFree { void operator()(evconnlistener* p) const { evconnlistener_free(p); } };
struct BevFree { void operator()(bufferevent* p) const { bufferevent_free(p); } };

struct Server;

struct Connection {
  Server* server = nullptr;
  std::unique_ptr<bufferevent, BevFree> bev;
  std::unique_ptr<event, EventFree> next_turn;  // a 0 s timer when pipelined requests wait
  std::unique_ptr<event, EventFree> timer;      // the connection's deadline
  http::HttpSession http;
  ConnectionDeadline deadline;
  Clock::time_point timer_at{};  // when `timer` fires, if pending
  bool finishing = false;    // final response queued: close once it is flushed
  bool shut_down = false;    // our FIN is sent: draining input until the peer closes
  bool peer_closed = false;  // EOF seen while output was still queued
  std::size_t drained = 0;
};

void on_read(bufferevent* bev, void* arg);
void on_write(bufferevent* bev, void* arg);
void on_event(bufferevent* bev, short what, void* arg);

// What the callbacks share: the live connections (freed at shutdown too) and the accept back-off.
struct Server {
  std::unordered_map<Connection*, std::unique_ptr<Connection>> connections;
  evconnlistener* listener = nullptr;
  event* backoff_timer = nullptr;
  const ServerOptions* options = nullptr;
};

// Frees the connection and its bufferevent, which closes the socket.
void close_connection(Connection* c) { c->server->connections.erase(c); }

void arm_timer(Connection* c, Clock::time_point at) {
  const auto left = std::max(Clock::duration::zero(), at - Clock::now());
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(left).count();
  const timeval tv{static_cast<time_t>(us / 1000000), static_cast<suseconds_t>(us % 1000000)};
  evtimer_add(c->timer.get(), &tv);  // re-adding a pending timer moves it
  c->timer_at = at;
}

// The deadline from what the connection is doing: output still in libevent's buffer counts as
// busy (a slow reader has no deadline), otherwise the session's phase decides. The timer stays
// at the earliest deadline; when it fires, on_timer looks again (deadlines mostly move later,
// so most requests change nothing in the heap).
void track_deadline(Connection* c) {
  if (c->shut_down) return;
  const bool output_queued = evbuffer_get_length(bufferevent_get_output(c->bev.get())) > 0;
  const http::Phase phase = output_queued ? http::Phase::Busy : c->http.phase();
  if (!c->deadline.update(phase, c->server->options->timeouts, Clock::now())) return;
  const auto at = c->deadline.at();
  if (at == Clock::time_point::max()) return;
  if (evtimer_pending(c->timer.get(), nullptr) && c->timer_at <= at) return;
  arm_timer(c, at);
}

// Moves queued responses into the output evbuffer (bounded), then decides what to wait for.
void proceed(Connection* c) {
  evbuffer* out = bufferevent_get_output(c->bev.get());
  const auto block = http::filler_block();
  while (c->http.next() == http::Want::Write && evbuffer_get_length(out) < http::kOutputHighWater) {
    iovec iov[64];
    const int n = c->http.gather(iov, 64);
    std::size_t moved = 0;
    for (int i = 0; i < n; ++i) {
      const auto* p = static_cast<const char*>(iov[i].iov_base);
      const bool is_filler = p >= block.data() && p < block.data() + block.size();
      if (is_filler) {
        evbuffer_add_reference(out, p, iov[i].iov_len, nullptr, nullptr);  // no copy
      } else {
        evbuffer_add(out, p, iov[i].iov_len);
      }
      moved += iov[i].iov_len;
    }
    c->http.on_written(moved);
  }
  if (c->http.next() == http::Want::Finish) c->finishing = true;
  // More pipelined requests are already here: run the next turn once the callbacks that are
  // ready meanwhile have run, so one client cannot hold the loop (HttpSession bounds a turn).
  // A 0 s timer, not event_active: an event made active from a callback runs in the same
  // pass of the active queue, before libevent polls the sockets again; an expired timer is
  // activated after the next poll, behind the connections that poll found ready.
  if (c->http.next() == http::Want::Process) {
    const timeval now{0, 0};
    evtimer_add(c->next_turn.get(), &now);
  }
  const bool output_empty = evbuffer_get_length(out) == 0;
  if ((c->finishing || c->peer_closed) && output_empty && !c->shut_down) {
    if (c->peer_closed) return close_connection(c);
    ::shutdown(bufferevent_getfd(c->bev.get()), SHUT_WR);  // lingering close, for 1 s at most
    c->shut_down = true;
    arm_timer(c, Clock::now() + kLingerTime);  // absolute: reads do not move it
  }
  track_deadline(c);
  // Read while the session wants input (or while draining); otherwise let output drain first.
  if (c->shut_down || c->http.next() == http::Want::Read) {
    bufferevent_enable(c->bev.get(), EV_READ);
  } else {
    bufferevent_disable(c->bev.get(), EV_READ);
  }
}

void on_read(bufferevent* bev, void* arg) {
  auto* c = static_cast<Connection*>(arg);
  evbuffer* in = bufferevent_get_input(bev);
  if (c->shut_down || c->finishing) {
    c->drained += evbuffer_get_length(in);
    evbuffer_drain(in, evbuffer_get_length(in));
    if (c->drained >= http::kDrainLimit) return close_connection(c);
    return;
  }
  // Hand every chunk of the input buffer to the session without flattening it first.
  evbuffer_iovec chunks[8];
  while (evbuffer_get_length(in) > 0) {
    const int n = evbuffer_peek(in, -1, nullptr, chunks, 8);
    std::size_t used = 0;
    for (int i = 0; i < n && i < 8; ++i) {
      c->http.on_bytes({static_cast<const char*>(chunks[i].iov_base), chunks[i].iov_len});
      used += chunks[i].iov_len;
    }
    evbuffer_drain(in, used);
  }
  proceed(c);
}

void on_write(bufferevent*, void* arg) { proceed(static_cast<Connection*>(arg)); }

void on_next_turn(evutil_socket_t, short, void* arg) {
  auto* c = static_cast<Connection*>(arg);
  c->http.process();
  proceed(c);
}

// The connection's deadline timer: lingering close over, idle (close silently), header (408,
// then the usual finish), or not due yet (the deadline moved later: wait again).
void on_timer(evutil_socket_t, short, void* arg) {
  auto* c = static_cast<Connection*>(arg);
  if (c->shut_down) return close_connection(c);
  if (!c->deadline.due(Clock::now())) {
    if (c->deadline.at() != Clock::time_point::max()) arm_timer(c, c->deadline.at());
    return;
  }
  if (c->deadline.expire(c->http) == Expiry::Close) return close_connection(c);
  proceed(c);  // the 408 is queued: write it, then lingering close
}

void on_event(bufferevent* bev, short what, void* arg) {
  auto* c = static_cast<Connection*>(arg);
  const bool output_pending = evbuffer_get_length(bufferevent_get_output(bev)) > 0 ||
                              c->http.next() == http::Want::Write;
  if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR) && output_pending && !c->shut_down) {
    c->peer_closed = true;  // a half-closed client still gets its responses
    return;
  }
  close_connection(c);
}

void on_accept(evconnlistener* listener, evutil_socket_t fd, sockaddr*, int, void* arg) {
  auto* server = static_cast<Server*>(arg);
  if (server->connections.size() >= server->options->max_clients) {
    reject_connection(UniqueFd(fd), 503);  // --max-clients: a 503 and a close past the cap
    return;
  }
  event_base* base = evconnlistener_get_base(listener);
  bufferevent* bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
  if (bev == nullptr) {
    evutil_closesocket(fd);
    return;
  }
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  auto owned = std::make_unique<Connection>();
  Connection* c = owned.get();
  c->server = server;
  c->bev.reset(bev);
  c->next_turn.reset(evtimer_new(base, on_next_turn, c));
  c->timer.reset(evtimer_new(base, on_timer, c));
  if (!c->next_turn || !c->timer) return;  // out of memory: `owned` frees the connection and its socket
  server->connections.emplace(c, std::move(owned));
  bufferevent_set_max_single_read(bev, http::kReadSize);  // same read size as the other models
  bufferevent_setcb(bev, on_read, on_write, on_event, c);
  bufferevent_enable(bev, EV_READ | EV_WRITE);
  track_deadline(c);  // idle until its first byte
}

// Out of fds: libevent would report the same error on every loop; pause accepting for 100 ms.
void on_accept_error(evconnlistener* listener, void* arg) {
  const int err = EVUTIL_SOCKET_ERROR();
  auto* server = static_cast<Server*>(arg);
  if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
    evconnlistener_disable(listener);
    const timeval pause{0, 100000};
    evtimer_add(server->backoff_timer, &pause);
  }
}

void on_backoff_done(evutil_socket_t, short, void* arg) {
  evconnlistener_enable(static_cast<Server*>(arg)->listener);
}

void on_stop_signal(evutil_socket_t, short, void* arg) {
  event_base_loopbreak(static_cast<event_base*>(arg));
}

int serve(UniqueFd listen_fd, const ServerOptions& options) {
  ::signal(SIGPIPE, SIG_IGN);
  std::unique_ptr<event_base, BaseFree> base(event_base_new());
  if (!base) {
    log_error("libevent", "event_base_new failed");
    return 1;
  }
  std::fprintf(stderr, "server-libevent: libevent %s, backend %s\n", event_get_version(),
               event_base_get_method(base.get()));

  Server server;
  server.options = &options;
  // backlog 0: the socket is already listening with the backlog from the command line.
  std::unique_ptr<evconnlistener, ListenerFree> listener(evconnlistener_new(
      base.get(), on_accept, &server, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0,
      listen_fd.get()));
  if (!listener) {
    log_error("libevent", "evconnlistener_new failed");
    return 1;
  }
  listen_fd.release();  // the evconnlistener owns it now
  std::unique_ptr<event, EventFree> timer(evtimer_new(base.get(), on_backoff_done, &server));
  server.listener = listener.get();
  server.backoff_timer = timer.get();
  evconnlistener_set_error_cb(listener.get(), on_accept_error);

  std::unique_ptr<event, EventFree> sigterm(evsignal_new(base.get(), SIGTERM, on_stop_signal, base.get()));
  std::unique_ptr<event, EventFree> sigint(evsignal_new(base.get(), SIGINT, on_stop_signal, base.get()));
  evsignal_add(sigterm.get(), nullptr);
  evsignal_add(sigint.get(), nullptr);
  unblock_stop_signals();  // the evsignals now catch them

  event_base_dispatch(base.get());
  // Shutdown: every live connection is freed (its socket closed) before the base goes.
  server.connections.clear();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  ServerSpec spec;
  spec.model = "libevent";
  spec.description = "one thread, libevent event_base with bufferevents";
  spec.serve = serve;
  return run_server(spec, argc, argv);
}
