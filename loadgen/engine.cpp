// Worker: connection state machines, pacing and accounting (see engine.hpp for the model).
//
// Accounting rules, so that every request is counted exactly once:
//  - a complete response is a success (2xx), a status error (other codes) or, when it took
//    longer than --timeout from its send, a timeout; its latency is recorded in every case;
//  - when a connection breaks, each request outstanding on it fails once, with the kind that
//    describes what happened to it (the one being parsed may be a parse error, the others read);
//  - a timed-out request is recorded with latency >= its age (a lower bound), like an
//    incomplete one, so that stalls stay visible in the percentiles;
//  - open loop requests that are due but not yet written are queued, not failed, unless the
//    connection cannot be re-established (then each fails once as a connect error).
#include "engine.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/timerfd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <system_error>

#include "clock.hpp"

namespace cmbench::loadgen {
namespace {

constexpr std::size_t kReadBuffer = 64 * 1024;
constexpr int kMaxEvents = 512;
// Connects in progress per worker during set-up: enough to be quick, few enough not to overflow
// a slow server's accept queue (a dropped SYN costs a 1 s retransmit).
constexpr std::size_t kSetupWindow = 256;
constexpr std::int64_t kMinBackoff = 1 * kNsPerMs;
constexpr std::int64_t kMaxBackoff = 100 * kNsPerMs;
// Open-loop pacing polls (epoll_wait with a zero timeout) instead of sleeping when the next
// request falls due this soon. On a virtual machine, arming a timer and waking from idle each
// leave the guest: measured here, a sleeping generator spent 37 us of CPU per request at
// 10k req/s and saturated its core at 40k, so it could not offer half of what one server core
// serves. Polling keeps the core awake; the time spent in empty polls (poll_idle_ns_) is
// not counted as the generator being busy, nor in the CPU it reports (cpu_s).
constexpr std::int64_t kPollWindow = 500 * kNsPerUs;

enum Tag : std::uint64_t { tag_timer = 0, tag_active = 1, tag_idle = 2 };
std::uint64_t tag(Tag kind, std::size_t index) { return (static_cast<std::uint64_t>(index) << 2) | kind; }

[[noreturn]] void throw_errno(const char* what) { throw std::system_error(errno, std::generic_category(), what); }

// This thread's time on a CPU plus its time runnable but waiting for one (ns), from
// /proc/thread-self/schedstat ("run_ns wait_ns timeslices"); -1 if unavailable.
std::int64_t busy_ns() {
  std::FILE* f = std::fopen("/proc/thread-self/schedstat", "re");
  if (!f) return -1;
  long long run = 0, wait = 0;
  const int n = std::fscanf(f, "%lld %lld", &run, &wait);
  std::fclose(f);
  return n == 2 ? run + wait : -1;
}

int socket_error(int fd) {
  int err = 0;
  socklen_t len = sizeof err;
  if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return errno;
  return err != 0 ? err : ECONNREFUSED;
}

// Opens a non-blocking TCP socket towards the target and starts connecting; registers it
// edge-triggered for reading and writing, once for its whole life. Returns -1 with errno set.
int open_socket(const Target& t, int epfd, std::uint64_t data) {
  const int fd = ::socket(t.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&t.addr), t.addr_len) != 0 && errno != EINPROGRESS) {
    const int err = errno;
    ::close(fd);
    errno = err;
    return -1;
  }
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
  ev.data.u64 = data;
  if (::epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
    const int err = errno;
    ::close(fd);
    errno = err;
    return -1;
  }
  return fd;
}

// Explains the first connect failure of each kind once; later ones are only counted.
void note_connect_error(int err, const Target& t) {
  static std::atomic<unsigned> printed{0};
  const unsigned cls = err == EADDRNOTAVAIL ? 1u : (err == EMFILE || err == ENFILE) ? 2u : 4u;
  if (printed.fetch_or(cls) & cls) return;
  if (cls == 1u) {
    std::fprintf(stderr,
                 "loadgen: connect to %s: no local port left (EADDRNOTAVAIL): every ephemeral port "
                 "(net.ipv4.ip_local_port_range) is in use or in TIME_WAIT; further failures are "
                 "counted as connect errors\n",
                 t.host_header.c_str());
  } else if (cls == 2u) {
    std::fprintf(stderr, "loadgen: out of file descriptors (%s): raise ulimit -n\n", std::strerror(err));
  } else {
    std::fprintf(stderr, "loadgen: connect to %s: %s (further connect errors are only counted)\n",
                 t.host_header.c_str(), std::strerror(err));
  }
}

Config idle_config(const Config& cfg) {
  Config c = cfg;
  c.method = "GET";
  c.body_size = 0;
  c.close = false;
  return c;
}

}  // namespace

struct Worker::Conn {
  enum class St : std::uint8_t { down, connecting, open, draining };
  Fd fd;
  St st = St::down;
  bool retrying = false;
  std::uint32_t index = 0;
  std::uint32_t gen = 0;          // bumped on every close: detects a connection replaced mid-event
  std::uint64_t global = 0;       // g in the schedule formula
  ResponseParser parser;
  // Request sequence numbers on this connection: [done, sent) are in flight, [sent, due) are
  // queued (open loop only).
  std::uint64_t due = 0, sent = 0, done = 0;
  std::size_t write_off = 0, write_len = 0;  // the batch being written
  std::unique_ptr<std::int64_t[]> send_ts;   // send time of request m at [m % depth]
  // Open loop, at [m % depth]: when request m was ready (due and its connection free), and when
  // the slot it uses became free for request m + depth, both on the time line of a generator
  // that is never late: ready = max(intended, free), free = ready + service. A late generator
  // therefore never makes later requests look as if they waited for the server.
  std::unique_ptr<std::int64_t[]> ready_ts;
  std::unique_ptr<std::int64_t[]> free_ts;
  std::int64_t connect_ts = 0;
  std::int64_t drain_since = 0;
  std::int64_t retry_at = 0;
  std::int64_t backoff = 0;
};

struct Worker::IdleConn {
  enum class St : std::uint8_t { waiting, connecting, requesting, held, failed, closed };
  Fd fd;
  St st = St::waiting;
  std::uint32_t index = 0;
  ResponseParser parser;
};

Plan::Plan(const Config& config)
    : cfg(config), request(build_request(config)), idle_request(build_request(idle_config(config))),
      head(config.method == "HEAD") {
  batch.reserve(request.size() * static_cast<std::size_t>(config.pipeline));
  for (int i = 0; i < config.pipeline; ++i) batch += request;
}

Worker::Worker(Plan& plan, int index)
    : plan_(plan), cfg_(plan.cfg), open_loop_(plan.cfg.open_loop()), churn_(plan.cfg.close),
      depth_(static_cast<std::size_t>(plan.cfg.pipeline)), rbuf_(new char[kReadBuffer]),
      stats_(static_cast<std::size_t>(std::max<std::int64_t>(1, (plan.cfg.duration_ns + kNsPerSec - 1) / kNsPerSec))) {
  ep_.reset(::epoll_create1(EPOLL_CLOEXEC));
  if (!ep_) throw_errno("epoll_create1");
  timer_.reset(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
  if (!timer_) throw_errno("timerfd_create");
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = tag(tag_timer, 0);
  if (::epoll_ctl(ep_.get(), EPOLL_CTL_ADD, timer_.get(), &ev) != 0) throw_errno("epoll_ctl");

  const auto threads = static_cast<std::size_t>(cfg_.threads);
  const auto i = static_cast<std::size_t>(index);
  const auto share = [&](std::size_t total) { return total / threads + (i < total % threads ? 1 : 0); };
  conns_.resize(share(static_cast<std::size_t>(cfg_.connections)));
  for (std::size_t j = 0; j < conns_.size(); ++j) {
    conns_[j].index = static_cast<std::uint32_t>(j);
    // Round-robin numbering keeps each worker's share of the schedule evenly spread in time.
    conns_[j].global = j * threads + i;
    conns_[j].send_ts = std::make_unique<std::int64_t[]>(depth_);
    conns_[j].ready_ts = std::make_unique<std::int64_t[]>(depth_);
    conns_[j].free_ts = std::make_unique<std::int64_t[]>(depth_);
  }
  idle_.resize(share(static_cast<std::size_t>(cfg_.idle)));
  for (std::size_t j = 0; j < idle_.size(); ++j) idle_[j].index = static_cast<std::uint32_t>(j);

  total_conns_ = static_cast<std::uint64_t>(cfg_.connections);
  if (open_loop_) period_ns_ = 1e9L / static_cast<long double>(cfg_.rate);
  scan_interval_ = std::clamp<std::int64_t>(cfg_.timeout_ns / 20, kNsPerMs, 50 * kNsPerMs);
}

Worker::~Worker() = default;

// ---------------------------------------------------------------------------------------------
// Set-up and the run loop

void Worker::setup() {
  phase_ = Phase::setup;
  progress_at_ = mono_ns();
  idle_report_.wanted = idle_.size();
  // Active connections first (with --close each request opens its own), then the idle ones,
  // at most kSetupWindow connects in progress at a time.
  std::size_t active_next = churn_ ? conns_.size() : 0;
  // Set-up ends when everything settled or nothing settled for a while (a server that never
  // answers must not hang us).
  const std::int64_t stall = std::max<std::int64_t>(cfg_.timeout_ns, 2 * kNsPerSec);
  epoll_event events[kMaxEvents];
  for (;;) {
    auto connecting = static_cast<std::size_t>(std::count_if(
        conns_.begin(), conns_.end(), [](const Conn& c) { return c.st == Conn::St::connecting; }));
    while (connecting + idle_pending_ < kSetupWindow && active_next < conns_.size()) {
      start_connect(conns_[active_next++], mono_ns());
      ++connecting;
    }
    while (connecting + idle_pending_ < kSetupWindow && idle_next_ < idle_.size()) start_idle(idle_[idle_next_++]);
    if (connecting == 0 && idle_pending_ == 0 && active_next >= conns_.size() && idle_next_ >= idle_.size()) break;
    const std::int64_t now = mono_ns();
    if (now - progress_at_ > stall || plan_.stop.load(std::memory_order_relaxed)) break;
    const int wait_ms = static_cast<int>((progress_at_ + stall - now) / kNsPerMs) + 1;
    const int n = ::epoll_wait(ep_.get(), events, kMaxEvents, std::min(wait_ms, 100));
    if (n < 0 && errno != EINTR) throw_errno("epoll_wait");
    for (int k = 0; k < n; ++k) dispatch(events[k]);
  }
  for (const IdleConn& ic : idle_) {
    if (ic.st == IdleConn::St::held) ++idle_report_.held;
    else ++idle_report_.failed;
  }
}

void Worker::run(const Timeline& tl) {
  start_ = tl.start;
  mstart_ = tl.measure_start;
  end_ = tl.end;
  phase_ = Phase::run;
  // Timer slack defaults to 50 us; pacing wants the wake-up when asked for.
  ::prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);

  const std::int64_t busy0 = busy_ns();
  std::int64_t now = mono_ns();
  const std::int64_t run0 = now;
  if (open_loop_ && !conns_.empty()) {
    cursor_conn_ = 0;
    cursor_seq_ = 0;
    next_due_ = intended(conns_[0], 0);
  }
  for (Conn& c : conns_) {
    if (c.st == Conn::St::open) {
      pump(c, now);
    } else if (c.st == Conn::St::down && (!open_loop_ || !churn_)) {
      start_connect(c, now);  // keep-alive connections that failed in set-up; closed-loop churn
    }
  }
  next_scan_ = now + scan_interval_;

  epoll_event events[kMaxEvents];
  for (;;) {
    now = mono_ns();
    const bool stopped = plan_.stop.load(std::memory_order_relaxed);
    if (stopped && now < end_) end_ = now;  // report what ran
    if (phase_ == Phase::run && now >= end_) begin_drain(now, stopped);
    if (phase_ == Phase::drain && (stopped || now >= drain_until_ || drained())) break;
    on_timers(now);
    // The timer wakes us for the next deadline (should the kernel refuse to arm it, poll every
    // millisecond); a deadline nearer than kPollWindow is polled for.
    const std::int64_t deadline = next_deadline();
    const bool polling = open_loop_ && phase_ == Phase::run && deadline - now < kPollWindow;
    const int wait_ms = polling ? 0 : arm_timer(deadline) ? -1 : 1;
    const int n = ::epoll_wait(ep_.get(), events, kMaxEvents, wait_ms);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_errno("epoll_wait");
    }
    if (polling && n == 0) poll_idle_ns_ += mono_ns() - now;
    for (int k = 0; k < n; ++k) dispatch(events[k]);
  }
  const std::int64_t busy1 = busy_ns();
  if (busy0 >= 0 && busy1 >= busy0 && now > run0) {
    busy_share_ = static_cast<double>(std::max<std::int64_t>(0, busy1 - busy0 - poll_idle_ns_)) /
                  static_cast<double>(now - run0);
  }
  finish(now);
  phase_ = Phase::done;
}

// The window is over: send nothing more, but read the answers to the requests in flight.
// Open loop: every request whose intended time lies in the window is due now; those still
// queued are not sent (sending them would credit an overloaded server with requests it served
// after the window) and end as incomplete.
void Worker::begin_drain(std::int64_t now, bool stopped) {
  phase_ = Phase::drain;
  // Every request in flight is answered or timed out (scan) within --timeout of its send.
  drain_until_ = stopped ? now : end_ + cfg_.timeout_ns + 2 * scan_interval_;
  if (!open_loop_ || conns_.empty()) return;
  while (next_due_ < end_) {
    ++conns_[cursor_conn_].due;
    if (++cursor_conn_ == conns_.size()) {
      cursor_conn_ = 0;
      ++cursor_seq_;
    }
    next_due_ = intended(conns_[cursor_conn_], cursor_seq_);
  }
}

// True when no request sent is still waiting for its outcome.
bool Worker::drained() const noexcept {
  return std::all_of(conns_.begin(), conns_.end(), [](const Conn& c) { return c.done >= c.sent; });
}

// May a new request start now? Only inside the run: nothing is sent in the drain.
bool Worker::may_start(std::int64_t now) const noexcept { return phase_ == Phase::run && now < end_; }

void Worker::dispatch(const epoll_event& ev) {
  const std::size_t index = static_cast<std::size_t>(ev.data.u64 >> 2);
  switch (ev.data.u64 & 3) {
    case tag_timer: {
      std::uint64_t expirations;
      if (::read(timer_.get(), &expirations, sizeof expirations) > 0) armed_ = -1;
      break;
    }
    case tag_active:
      on_conn_event(conns_[index], ev.events);
      break;
    default:
      on_idle_event(idle_[index], ev.events);
      break;
  }
}

void Worker::on_timers(std::int64_t now) {
  if (open_loop_) {
    while (next_due_ <= now && next_due_ < end_) {
      Conn& c = conns_[cursor_conn_];
      ++c.due;
      if (c.st == Conn::St::open) pump(c, now);
      else if (c.st == Conn::St::down && !c.retrying) start_connect(c, now);
      if (++cursor_conn_ == conns_.size()) {
        cursor_conn_ = 0;
        ++cursor_seq_;
      }
      next_due_ = intended(conns_[cursor_conn_], cursor_seq_);
    }
  }
  if (now >= next_scan_) {
    scan(now);
    next_scan_ = now + scan_interval_;
  }
  for (std::size_t k = 0; k < retry_.size();) {
    Conn& c = conns_[retry_[k]];
    if (c.retry_at <= now) {
      retry_[k] = retry_.back();
      retry_.pop_back();
      c.retrying = false;
      if (c.st == Conn::St::down && may_start(now)) start_connect(c, now);
    } else {
      ++k;
    }
  }
}

// Timeouts: the oldest outstanding request of each connection, connects, and drains.
void Worker::scan(std::int64_t now) {
  for (Conn& c : conns_) {
    switch (c.st) {
      case Conn::St::connecting:
        if (now - c.connect_ts > cfg_.timeout_ns) {
          close_conn(c);
          if (churn_) {
            fail_outstanding(c, now, Err::timeout, Err::timeout);
            after_close(c, now);
          } else {
            on_connect_failed(c, now, ETIMEDOUT);
          }
        }
        break;
      case Conn::St::open:
        if (c.done < c.sent && now - c.send_ts[c.done % depth_] > cfg_.timeout_ns) {
          fail_outstanding(c, now, Err::timeout, Err::timeout);
          close_conn(c);
          after_close(c, now);
        }
        break;
      case Conn::St::draining:
        if (now - c.drain_since > cfg_.timeout_ns) {
          close_conn(c);
          after_close(c, now);
        }
        break;
      case Conn::St::down:
        break;
    }
  }
}

bool Worker::arm_timer(std::int64_t deadline) {
  if (deadline == armed_) return true;
  itimerspec its{};
  its.it_value.tv_sec = static_cast<time_t>(deadline / kNsPerSec);
  its.it_value.tv_nsec = static_cast<long>(deadline % kNsPerSec);
  if (::timerfd_settime(timer_.get(), TFD_TIMER_ABSTIME, &its, nullptr) != 0) return false;
  armed_ = deadline;
  return true;
}

std::int64_t Worker::next_deadline() const noexcept {
  std::int64_t d = std::min(phase_ == Phase::drain ? drain_until_ : end_, next_scan_);
  if (open_loop_ && next_due_ < end_) d = std::min(d, next_due_);
  for (const std::uint32_t k : retry_) d = std::min(d, conns_[k].retry_at);
  return d;
}

std::int64_t Worker::intended(const Conn& c, std::uint64_t m) const noexcept {
  const long double slot = static_cast<long double>(c.global + m * total_conns_);
  return start_ + static_cast<std::int64_t>(std::llround(slot * period_ns_));
}

std::int64_t Worker::origin(const Conn& c, std::uint64_t m) const noexcept {
  return open_loop_ ? intended(c, m) : c.send_ts[m % depth_];
}

std::size_t Worker::second_of(std::int64_t now) const noexcept {
  const std::int64_t s = (now - mstart_) / kNsPerSec;
  return static_cast<std::size_t>(std::clamp<std::int64_t>(s, 0, static_cast<std::int64_t>(stats_.timeline.size()) - 1));
}

void Worker::count_error(Err kind, std::int64_t org, std::int64_t now) {
  if (!in_window(org)) return;
  ++stats_.errors[static_cast<std::size_t>(kind)];
  ++stats_.timeline[second_of(now)].errors;
}

// The drain is over: every request of the window still without an outcome is incomplete. Only
// open-loop requests still queued (never sent) are left after a full drain; a stop (SIGINT)
// cuts the drain short and leaves requests in flight too. Each is recorded with a lower bound
// of its latency: its age now, plus -- as it had yet to make a round trip -- the fastest
// service time of this worker, so that no incomplete request passes for a fast response (an
// age alone can be a few microseconds for a request due just before the end). Service, wait
// and lag are unknown for it and not recorded.
void Worker::finish(std::int64_t now) {
  const std::int64_t round_trip = min_service_ns_ < 0 ? 0 : min_service_ns_;
  for (Conn& c : conns_) {
    const std::uint64_t last = open_loop_ ? c.due : c.sent;
    for (std::uint64_t m = c.done; m < last; ++m) {
      const std::int64_t org = origin(c, m);
      if (!in_window(org)) continue;
      ++stats_.incomplete;
      Stats::record_ns(stats_.latency, now - org + round_trip);
    }
    c.done = last;
    close_conn(c);
  }
  for (IdleConn& ic : idle_) ic.fd.reset();
}

// ---------------------------------------------------------------------------------------------
// Active connections

void Worker::start_connect(Conn& c, std::int64_t now) {
  c.connect_ts = now;
  if (churn_ && phase_ == Phase::run) {
    // --close: the request begins with its connection, so its clock starts now.
    account_send(c, c.sent, now);
    ++c.sent;
  }
  const int fd = open_socket(cfg_.target, ep_.get(), tag(tag_active, c.index));
  if (fd < 0) {
    on_connect_failed(c, now, errno);
    return;
  }
  c.fd.reset(fd);
  c.st = Conn::St::connecting;
}

void Worker::on_connect_failed(Conn& c, std::int64_t now, int err) {
  close_conn(c);
  mark_free(c, now);
  note_connect_error(err, cfg_.target);
  if (phase_ == Phase::setup) {
    progress_at_ = now;
    return;
  }
  if (phase_ == Phase::done) return;
  if (churn_) {
    fail_outstanding(c, now, Err::connect, Err::connect);
  } else if (open_loop_) {
    // The queued requests had nowhere to go.
    for (std::uint64_t m = c.sent; m < c.due; ++m) count_error(Err::connect, intended(c, m), now);
    c.sent = c.done = c.due;
  } else {
    count_error(Err::connect, now, now);  // the request this connection would have sent
  }
  // Closed loop backs off (a refused port must not spin a core); open loop retries when its
  // next request falls due, which paces it already.
  if (!open_loop_) schedule_retry(c, now);
}

void Worker::schedule_retry(Conn& c, std::int64_t now) {
  c.backoff = c.backoff == 0 ? kMinBackoff : std::min(c.backoff * 2, kMaxBackoff);
  c.retry_at = now + c.backoff;
  if (!c.retrying) {
    c.retrying = true;
    retry_.push_back(c.index);
  }
}

void Worker::on_connected(Conn& c, std::int64_t now) {
  c.st = Conn::St::open;
  c.backoff = 0;
  c.parser.start(plan_.head);
  mark_free(c, now);  // until now, due requests waited for the connection, not for us
  if (phase_ == Phase::setup) {
    progress_at_ = now;
    return;
  }
  // In the drain too: a --close request of the window whose connect completes after the end
  // still goes out (it was counted as sent at its connect).
  if (phase_ == Phase::done) return;
  if (churn_) {
    if (c.done < c.sent) {
      c.write_off = 0;
      c.write_len = plan_.request.size();
      flush_write(c, now);
    }
    return;
  }
  pump(c, now);
}

void Worker::on_conn_event(Conn& c, std::uint32_t events) {
  if (c.st == Conn::St::down) return;
  const std::uint32_t gen = c.gen;
  if (c.st == Conn::St::connecting) {
    const std::int64_t now = mono_ns();
    if (events & (EPOLLERR | EPOLLHUP)) {
      on_connect_failed(c, now, socket_error(c.fd.get()));
      return;
    }
    if (!(events & EPOLLOUT)) return;
    on_connected(c, now);
    // Edge-triggered: a close that came with the connect must be read now or never.
    if (c.gen != gen || !(events & (EPOLLIN | EPOLLRDHUP))) return;
    on_readable(c, events);
    return;
  }
  if ((events & EPOLLOUT) && c.write_len != 0) {
    flush_write(c, mono_ns());
    if (c.gen != gen) return;
  }
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) on_readable(c, events);
}

void Worker::on_readable(Conn& c, std::uint32_t events) {
  const std::uint32_t gen = c.gen;
  // With the peer's FIN already reported, this edge will not come again: read up to the EOF.
  const bool peer_closed = (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0;
  std::int64_t now = 0;
  for (;;) {
    const ssize_t n = ::recv(c.fd.get(), rbuf_.get(), kReadBuffer, 0);
    if (n > 0) {
      now = mono_ns();
      // From the window's start through the drain (which reads only the window's responses).
      if (now >= mstart_) stats_.bytes += static_cast<std::uint64_t>(n);
      if (!process(c, rbuf_.get(), static_cast<std::size_t>(n), now)) return;
      // Edge-triggered: a short read emptied the socket, so no extra read to see EAGAIN.
      if (static_cast<std::size_t>(n) < kReadBuffer && !peer_closed) break;
      continue;
    }
    now = mono_ns();
    if (n == 0) {
      on_eof(c, now);
      return;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) break;
    fail_outstanding(c, now, Err::read, Err::read);
    close_conn(c);
    after_close(c, now);
    return;
  }
  if (c.gen == gen && c.st == Conn::St::open) pump(c, now != 0 ? now : mono_ns());
}

// Parses what one read returned. Returns false when the connection was closed meanwhile.
bool Worker::process(Conn& c, const char* data, std::size_t n, std::int64_t now) {
  std::size_t off = 0;
  while (off < n) {
    if (c.st != Conn::St::open || c.done == c.sent) {
      // Bytes nobody asked for: a body longer than its Content-Length, or garbage.
      if (c.done == c.sent) count_error(Err::parse, now, now);
      fail_outstanding(c, now, Err::parse, Err::parse);
      close_conn(c);
      after_close(c, now);
      return false;
    }
    std::size_t used = 0;
    const ResponseParser::Result r = c.parser.feed(data + off, n - off, used);
    off += used;
    if (r == ResponseParser::Result::error) {
      fail_outstanding(c, now, Err::parse, Err::parse);
      close_conn(c);
      after_close(c, now);
      return false;
    }
    if (r == ResponseParser::Result::need_more) break;
    const bool keep_alive = c.parser.keep_alive();
    on_response(c, now);
    if (keep_alive && !churn_) {
      c.parser.start(plan_.head);
      continue;
    }
    // The server closes after this response (or --close asked for one request per connection):
    // requests pipelined behind it will never be answered.
    fail_outstanding(c, now, Err::read, Err::read);
    if (keep_alive) {
      // --close, but the server keeps the connection: we have to close first.
      close_conn(c);
      after_close(c, now);
      return false;
    }
    // Wait for the server's FIN so that TIME_WAIT stays on its side (clean close, no RST).
    c.st = Conn::St::draining;
    c.drain_since = now;
  }
  return true;
}

void Worker::on_response(Conn& c, std::int64_t now) {
  const std::uint64_t m = c.done++;
  const std::int64_t service = now - c.send_ts[m % depth_];
  if (min_service_ns_ < 0 || service < min_service_ns_) min_service_ns_ = service;
  // Request m + depth may go once an on-time generator would have had this answer.
  c.free_ts[m % depth_] = c.ready_ts[m % depth_] + service;
  const std::int64_t org = origin(c, m);
  if (!in_window(org)) return;
  Stats::record_ns(stats_.latency, now - org);
  if (open_loop_) Stats::record_ns(stats_.service, service);
  const int status = c.parser.status();
  if (service > cfg_.timeout_ns) {
    count_error(Err::timeout, org, now);
  } else if (status < 200 || status > 299) {
    count_error(Err::status, org, now);
  } else {
    ++stats_.requests;
    ++stats_.timeline[second_of(now)].requests;
  }
}

void Worker::on_eof(Conn& c, std::int64_t now) {
  if (c.st != Conn::St::draining && c.done < c.sent) {
    if (c.parser.completes_at_eof()) {
      on_response(c, now);  // a body delimited by the close
      fail_outstanding(c, now, Err::read, Err::read);
    } else if (c.parser.started()) {
      fail_outstanding(c, now, Err::parse, Err::read);  // truncated response
    } else {
      fail_outstanding(c, now, Err::read, Err::read);  // closed without an answer
    }
  }
  close_conn(c);
  after_close(c, now);
}

void Worker::pump(Conn& c, std::int64_t now) {
  if (c.st != Conn::St::open || c.write_len != 0 || churn_) return;
  if (!may_start(now)) return;  // nothing new after the window (open loop: only due ones before)
  const std::uint64_t in_flight = c.sent - c.done;
  if (in_flight >= depth_) return;
  std::uint64_t n = depth_ - in_flight;
  if (open_loop_) n = std::min<std::uint64_t>(n, c.due - c.sent);
  if (n == 0) return;
  for (std::uint64_t k = 0; k < n; ++k) account_send(c, c.sent + k, now);
  c.sent += n;
  c.write_off = 0;
  c.write_len = static_cast<std::size_t>(n) * plan_.request.size();
  flush_write(c, now);
}

void Worker::flush_write(Conn& c, std::int64_t now) {
  const char* buf = plan_.batch.data();
  while (c.write_off < c.write_len) {
    const ssize_t w = ::send(c.fd.get(), buf + c.write_off, c.write_len - c.write_off, MSG_NOSIGNAL);
    if (w >= 0) {
      c.write_off += static_cast<std::size_t>(w);
      continue;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return;  // EPOLLOUT (edge) resumes it
    fail_outstanding(c, now, Err::write, Err::write);
    close_conn(c);
    after_close(c, now);
    return;
  }
  c.write_off = c.write_len = 0;
}

void Worker::fail_outstanding(Conn& c, std::int64_t now, Err first, Err rest) {
  for (std::uint64_t m = c.done; m < c.sent; ++m) {
    const std::int64_t org = origin(c, m);
    const Err kind = m == c.done ? first : rest;
    count_error(kind, org, now);
    if (kind == Err::timeout && in_window(org)) {
      Stats::record_ns(stats_.latency, now - org);
      if (open_loop_) Stats::record_ns(stats_.service, now - c.send_ts[m % depth_]);
    }
  }
  c.done = c.sent;
}

void Worker::close_conn(Conn& c) {
  c.fd.reset();
  c.st = Conn::St::down;
  ++c.gen;
  c.write_off = c.write_len = 0;
  c.parser.start(plan_.head);
}

void Worker::after_close(Conn& c, std::int64_t now) {
  if (churn_ && c.sent > 0) {
    // --close: the connection's one request took from its ready time to now (connect, answer,
    // the server's FIN); the next one may go when an on-time generator would be here.
    const std::size_t k = (c.sent - 1) % depth_;
    std::fill_n(c.free_ts.get(), depth_, c.ready_ts[k] + (now - c.send_ts[k]));
  } else {
    mark_free(c, now);
  }
  if (c.retrying || !may_start(now)) return;
  // Keep-alive connections reopen at once so the next request finds them ready; a --close
  // connection opens when it has a request to carry.
  if (!open_loop_ || !churn_ || c.due > c.sent) start_connect(c, now);
}

// Request m leaves now: its send time, and (open loop) where its time since the intended one
// went -- waiting for the connection (wait) or for the generator (lag).
void Worker::account_send(Conn& c, std::uint64_t m, std::int64_t now) {
  const std::size_t k = m % depth_;
  c.send_ts[k] = now;
  const std::int64_t org = origin(c, m);
  // Ready when due and its slot free (closed loop: now, the request is sent as it is due).
  const std::int64_t ready = open_loop_ ? std::clamp(c.free_ts[k], org, now) : now;
  c.ready_ts[k] = ready;
  if (!in_window(org)) return;
  ++stats_.sent;
  if (!open_loop_) return;
  Stats::record_ns(stats_.wait, ready - org);
  Stats::record_ns(stats_.lag, now - ready);
}

void Worker::mark_free(Conn& c, std::int64_t now) noexcept { std::fill_n(c.free_ts.get(), depth_, now); }

// ---------------------------------------------------------------------------------------------
// Idle connections: connect, one request, its response, then silence until the end.

void Worker::start_idle(IdleConn& ic) {
  ++idle_pending_;
  const int fd = open_socket(cfg_.target, ep_.get(), tag(tag_idle, ic.index));
  if (fd < 0) {
    note_connect_error(errno, cfg_.target);
    idle_settled(ic, false);
    return;
  }
  ic.fd.reset(fd);
  ic.st = IdleConn::St::connecting;
  ic.parser.start(false);
}

void Worker::idle_settled(IdleConn& ic, bool held) {
  ic.st = held ? IdleConn::St::held : IdleConn::St::failed;
  if (!held) ic.fd.reset();
  if (phase_ != Phase::setup) return;
  --idle_pending_;  // the set-up loop opens the next ones
  progress_at_ = mono_ns();
}

void Worker::on_idle_event(IdleConn& ic, std::uint32_t events) {
  if (ic.st == IdleConn::St::connecting) {
    if (events & (EPOLLERR | EPOLLHUP)) {
      note_connect_error(socket_error(ic.fd.get()), cfg_.target);
      idle_settled(ic, false);
      return;
    }
    if (!(events & EPOLLOUT)) return;
    const std::string& req = plan_.idle_request;
    const ssize_t w = ::send(ic.fd.get(), req.data(), req.size(), MSG_NOSIGNAL);
    if (w != static_cast<ssize_t>(req.size())) {  // a few hundred bytes fit a fresh socket
      idle_settled(ic, false);
      return;
    }
    ic.st = IdleConn::St::requesting;
  }
  if (ic.st != IdleConn::St::requesting && ic.st != IdleConn::St::held) return;
  if (!(events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))) return;
  for (;;) {
    const ssize_t n = ::recv(ic.fd.get(), rbuf_.get(), kReadBuffer, 0);
    if (n > 0) {
      if (ic.st == IdleConn::St::requesting) {
        std::size_t used = 0;
        const auto r = ic.parser.feed(rbuf_.get(), static_cast<std::size_t>(n), used);
        if (r == ResponseParser::Result::error) {
          idle_settled(ic, false);
          return;
        }
        if (r == ResponseParser::Result::complete) idle_settled(ic, true);
      }
      if (static_cast<std::size_t>(n) < kReadBuffer && !(events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))) return;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    // Closed or reset.
    if (ic.st == IdleConn::St::requesting) {
      idle_settled(ic, false);
    } else {
      ++idle_report_.closed_by_server;
      ic.st = IdleConn::St::closed;
      ic.fd.reset();
    }
    return;
  }
}

}  // namespace cmbench::loadgen
