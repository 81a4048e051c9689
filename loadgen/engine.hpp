// The load-generating engine: one Worker per -t thread, each with its own epoll loop, its share
// of the -c active connections and of the --idle connections, and its own statistics.
//
// Closed loop: every connection keeps --pipeline requests in flight; a response is answered by
// the next request from the read handler itself (no epoll_ctl per request: sockets are
// registered once, edge-triggered, for reading and writing).
// Open loop (-R, wrk2's method): connection g of C has the fixed schedule
//   intended(g, m) = start + (g + m * C) / R,   m = 0, 1, 2, ...
// so the connections' schedules interleave into one evenly spaced stream at rate R. A request
// whose time has come waits on its connection while earlier ones are unanswered (queued, never
// dropped); latency is measured from its intended time, service time from its actual send, and
// the lag between the two goes into its own histogram. Pacing uses an absolute CLOCK_MONOTONIC
// timerfd with 1 ns timer slack, so there is no millisecond rounding.
//
// The lag is measured from when a request was due *and* its connection free, so waiting for a
// server that has not answered the request before it is the separate wait histogram, never the
// generator's lateness (docs/architecture.md §4). "Free" is taken on the time line of an on-time
// generator (the previous request's ready time plus its service time), so a generator that was
// late once is not excused for the requests that queued behind its own lateness.
//
// Requests belong to the measured window by their origin: the intended time (open loop) or the
// actual send (closed loop, or the connect in --close mode). When the window ends nothing more
// is sent, and the requests in flight are drained: their responses are read and recorded with
// their true latency, for at most --timeout (plus a scan), by which time each has been answered
// or timed out. What is left then (open-loop requests still queued, or anything after a stop)
// is counted "incomplete" and recorded with a lower bound of its latency (age + the fastest
// round trip seen), so a stall at the end cannot vanish from the histogram -- and no request cut
// short by the window's end is recorded with a latency shorter than a round trip.
#pragma once

#include <sys/epoll.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "unique_fd.hpp"  // the RAII fd the servers use
#include "options.hpp"
#include "response_parser.hpp"
#include "stats.hpp"

namespace cmbench::loadgen {

using Fd = cmbench::UniqueFd;  // closing an fd also removes it from every epoll set (never dup()ed)

// Read-only state shared by all workers.
struct Plan {
  explicit Plan(const Config& config);
  const Config& cfg;
  std::string request;       // one request, serialised once
  std::string batch;         // request repeated --pipeline times, for one write per refill
  std::string idle_request;  // the single GET each idle connection sends
  bool head = false;         // HEAD responses carry no body
  std::atomic<bool> stop{false};  // SIGINT/SIGTERM: end the run early and report it
};

// The run's time line, the same for every worker (CLOCK_MONOTONIC ns).
struct Timeline {
  std::int64_t start = 0;          // schedule origin (warm-up begins)
  std::int64_t measure_start = 0;  // start + warm-up
  std::int64_t end = 0;            // measure_start + duration
};

struct IdleReport {
  std::uint64_t wanted = 0;
  std::uint64_t held = 0;             // answered and held open when the run began
  std::uint64_t failed = 0;           // could not be opened or answered during set-up
  std::uint64_t closed_by_server = 0; // closed by the server during the run
};

class Worker {
 public:
  // Worker `index` of cfg.threads; creates its epoll and timer descriptors (throws
  // std::system_error if the kernel refuses).
  Worker(Plan& plan, int index);
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;
  ~Worker();

  // Opens this worker's idle connections (each answered once) and active connections; returns
  // when all have settled or set-up stops making progress.
  void setup();
  // Runs the load until tl.end (or a stop request), then accounts for unfinished requests.
  void run(const Timeline& tl);

  const Stats& stats() const noexcept { return stats_; }
  const IdleReport& idle_report() const noexcept { return idle_report_; }
  std::int64_t ended_at() const noexcept { return end_; }
  // Share of the run (warm-up, window and drain) this thread was on a CPU or runnable and
  // waiting for one (/proc/thread-self/schedstat); near 1 means it always had work and never
  // slept: the generator, not the server, set the pace. -1 when the kernel does not say.
  double busy_share() const noexcept { return busy_share_; }
  // Seconds of the run spent polling with nothing due (open-loop pacing, kPollWindow).
  double poll_idle_s() const noexcept { return static_cast<double>(poll_idle_ns_) / 1e9; }

 private:
  struct Conn;
  struct IdleConn;
  enum class Phase : std::uint8_t { setup, run, drain, done };

  // Active connections.
  void start_connect(Conn& c, std::int64_t now);
  void on_connect_failed(Conn& c, std::int64_t now, int err);
  void on_connected(Conn& c, std::int64_t now);
  void on_conn_event(Conn& c, std::uint32_t events);
  void on_readable(Conn& c, std::uint32_t events);
  bool process(Conn& c, const char* data, std::size_t n, std::int64_t now);
  void on_response(Conn& c, std::int64_t now);
  void on_eof(Conn& c, std::int64_t now);
  void pump(Conn& c, std::int64_t now);
  void flush_write(Conn& c, std::int64_t now);
  void fail_outstanding(Conn& c, std::int64_t now, Err first, Err rest);
  void close_conn(Conn& c);
  void after_close(Conn& c, std::int64_t now);
  void schedule_retry(Conn& c, std::int64_t now);
  void account_send(Conn& c, std::uint64_t m, std::int64_t now);
  void mark_free(Conn& c, std::int64_t now) noexcept;

  // Idle connections.
  void start_idle(IdleConn& ic);
  void on_idle_event(IdleConn& ic, std::uint32_t events);
  void idle_settled(IdleConn& ic, bool held);

  // Time keeping.
  void on_timers(std::int64_t now);
  void scan(std::int64_t now);
  bool arm_timer(std::int64_t deadline);
  std::int64_t next_deadline() const noexcept;
  std::int64_t intended(const Conn& c, std::uint64_t m) const noexcept;
  std::int64_t origin(const Conn& c, std::uint64_t m) const noexcept;
  bool in_window(std::int64_t t) const noexcept { return t >= mstart_ && t < end_; }
  std::size_t second_of(std::int64_t now) const noexcept;
  void count_error(Err kind, std::int64_t origin, std::int64_t now);
  void dispatch(const epoll_event& ev);
  void begin_drain(std::int64_t now, bool stopped);
  bool drained() const noexcept;
  bool may_start(std::int64_t now) const noexcept;
  void finish(std::int64_t now);

  Plan& plan_;
  const Config& cfg_;
  bool open_loop_;
  bool churn_;
  std::size_t depth_;   // --pipeline: requests in flight per connection
  Fd ep_;
  Fd timer_;
  std::vector<Conn> conns_;
  std::vector<IdleConn> idle_;
  std::unique_ptr<char[]> rbuf_;  // one scratch read buffer for every connection
  Stats stats_;
  IdleReport idle_report_;
  Phase phase_ = Phase::setup;

  std::int64_t start_ = 0, mstart_ = 0, end_ = 0;
  std::int64_t drain_until_ = 0;   // the drain after end_ stops here at the latest
  std::int64_t min_service_ns_ = -1;  // fastest response seen (-1: none yet)
  double busy_share_ = -1;
  std::int64_t poll_idle_ns_ = 0;
  std::int64_t armed_ = -1;
  std::int64_t scan_interval_ = 0;
  std::int64_t next_scan_ = 0;
  long double period_ns_ = 0;      // 1e9 / rate: spacing of the interleaved schedule
  std::uint64_t total_conns_ = 0;  // C of the schedule formula
  std::size_t cursor_conn_ = 0;    // open loop: next connection whose request falls due...
  std::uint64_t cursor_seq_ = 0;   // ...and that request's sequence number on it
  std::int64_t next_due_ = 0;
  std::vector<std::uint32_t> retry_;  // connections waiting out a connect back-off
  std::size_t idle_next_ = 0;         // set-up: next idle connection to open
  std::size_t idle_pending_ = 0;      // set-up: idle connections opened but not yet settled
  std::int64_t progress_at_ = 0;      // set-up: last time a connection settled
};

}  // namespace cmbench::loadgen
