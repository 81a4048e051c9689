// server-threadpool: a fixed pool of threads sharing one epoll set (EPOLLONESHOT) — the
// multi-threaded reactor of memcached's and Java NIO's worker pools.
//
// Who owns what: `--workers N` threads (default 16) all wait in epoll_wait on one epoll set.
// Every connection is registered with EPOLLONESHOT, so when it becomes ready exactly one
// thread is woken for it and the kernel reports it to nobody else until that thread re-arms it
// (EPOLL_CTL_MOD) at the end of its turn. A turn is one read, the session's bounded run of
// requests (HttpSession::kRequestsPerTurn) and writes until EAGAIN. Connections are not
// pinned: any free thread takes the next ready one, so 16 threads serve 10000 connections, and
// a handler that blocks (/sleep) ties up one thread while the other 15 go on serving.
// Each thread takes one event per epoll_wait: a thread holding a batch would make the others
// in its batch wait behind a blocking handler.
// Sharing, and why it is safe: the connection table (id -> Connection) is under one mutex;
// epoll's data carries the connection's id, never a pointer, so an event that arrives for a
// connection already closed finds nothing. A connection is served only by the thread that
// claimed its turn (a flag under the connection's own mutex); only that thread changes its
// state or closes it, and the fd itself is closed when the last reference goes, so the number
// cannot be reused while some thread still holds the connection. Deadlines (docs/architecture.md §3: idle,
// header, lingering close) live in one min-heap, an entry per connection (a new one only when
// its deadline moves earlier; one that moved later is re-queued when it comes due), run by
// a timer thread that claims a due connection like any turn (or, if a turn is in progress,
// asks that thread to expire it at the end of its turn). --max-clients bounds the table.
// SIGTERM: the main thread writes an eventfd every thread sees, joins the pool, and leaves a
// thread still sleeping in a handler at the deadline to end with the process (everything it
// uses is shared-owned, so nothing is freed under it).
// Limits: N blocking handlers at once stall the pool (the (N+1)th waits); every turn costs an
// epoll_wait and an epoll_ctl, and the threads contend for the table lock at accept and close.
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include <poll.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <queue>
#include <stdexcept>
#include <thread>
#include <unordered_map>
#include <vector>

#include "connection_deadline.hpp"
#include "crew.hpp"
#include "http_session.hpp"
#include "net.hpp"
#include "server_main.hpp"
#include "signals.hpp"

namespace {

using namespace cmbench;
using namespace std::chrono_literals;

constexpr std::uint64_t kListenerId = 0;  // epoll data of the listening socket
constexpr std::uint64_t kStopId = 1;      // ... of the stop eventfd; connections count from 2
constexpr int kAcceptBatch = 64;          // accepts per turn of the listener
constexpr auto kAcceptPause = 100ms;      // back-off when out of fds
constexpr auto kStopGrace = 1200ms;       // docs/architecture.md §3: exit within 2 s, with room to spare
constexpr Clock::time_point kNever = Clock::time_point::max();

struct Connection {
  Connection(std::uint64_t id_, UniqueFd fd_) : id(id_), fd(std::move(fd_)) {}
  const std::uint64_t id;
  const UniqueFd fd;  // closed with the last reference: no thread can see its number reused

  // The hand-off between threads, under `mutex`.
  std::mutex mutex;
  bool in_turn = false;       // a thread is serving it; the state below belongs to that thread
  bool expire_asked = false;  // the timer found it due during a turn: that turn expires it
  bool closed = false;        // out of the table: stale events and timers leave it alone
  Clock::time_point due = kNever;        // its deadline, as published at the end of each turn
  Clock::time_point queued_at = kNever;  // its current entry in the deadline heap (kNever: none)

  // Owned by the thread in the turn.
  http::HttpSession session;
  ConnectionDeadline deadline;
  bool draining = false;  // final response sent: discard input until the peer closes
  std::size_t drained = 0;
  Clock::time_point linger_until{};

  Clock::time_point current_deadline() const { return draining ? linger_until : deadline.at(); }
};
using ConnectionPtr = std::shared_ptr<Connection>;

class ThreadPoolServer {
  using Entry = std::pair<Clock::time_point, std::uint64_t>;  // (deadline, connection id)

 public:
  ThreadPoolServer(UniqueFd listener, const ServerOptions& options)
      : listener_(std::move(listener)), options_(options), epfd_(::epoll_create1(EPOLL_CLOEXEC)),
        stop_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
    if (!epfd_ || !stop_) throw std::runtime_error(std::string("epoll/eventfd: ") + std::strerror(errno));
    // The stop fd is level-triggered and never read: once written, every epoll_wait sees it.
    if (!ctl(EPOLL_CTL_ADD, stop_.get(), EPOLLIN, kStopId) ||
        !ctl(EPOLL_CTL_ADD, listener_.get(), EPOLLIN | EPOLLONESHOT, kListenerId))
      throw std::runtime_error(std::string("epoll_ctl: ") + std::strerror(errno));
  }

  // One pool thread: wait for one ready connection, serve one turn, re-arm it; repeat.
  void worker() {
    std::vector<char> scratch(http::kReadSize);  // this thread's read buffer
    while (!stopping_.load(std::memory_order_relaxed)) {
      epoll_event e{};
      const int n = ::epoll_wait(epfd_.get(), &e, 1, -1);
      if (n < 0 && errno != EINTR) {
        log_error("threadpool", std::string("epoll_wait: ") + std::strerror(errno));
        return;
      }
      if (n <= 0) continue;
      if (e.data.u64 == kStopId) return;
      if (e.data.u64 == kListenerId) {
        accept_clients();
        continue;
      }
      if (ConnectionPtr c = claim(e.data.u64)) {
        serve_turn(*c, e.events, scratch.data());
        release(c);
      }
    }
  }

  // The deadline thread: sleeps until the earliest deadline (or the end of an accept pause)
  // and expires what is due.
  void timer() {
    std::unique_lock lock(timers_mutex_);
    while (!timers_stopping_) {
      auto until = std::min(accept_resume_, heap_.empty() ? kNever : heap_.top().first);
      if (until == kNever) {
        timers_changed_.wait(lock);
      } else {
        timers_changed_.wait_until(lock, until);
      }
      const auto now = Clock::now();
      if (accept_resume_ <= now) {
        accept_resume_ = kNever;
        ctl(EPOLL_CTL_MOD, listener_.get(), EPOLLIN | EPOLLONESHOT, kListenerId);
      }
      std::vector<Entry> due;
      while (!heap_.empty() && heap_.top().first <= now) {
        due.push_back(heap_.top());
        heap_.pop();
      }
      lock.unlock();
      for (const auto& [at, id] : due) expire(id, at, now);
      lock.lock();
    }
  }

  // Wakes every thread: the pool through the eventfd, the timer through its condition.
  void stop() {
    stopping_ = true;
    const std::uint64_t one = 1;
    [[maybe_unused]] const auto n = ::write(stop_.get(), &one, sizeof one);
    std::lock_guard lock(timers_mutex_);
    timers_stopping_ = true;
    timers_changed_.notify_all();
  }

 private:
  bool ctl(int op, int fd, std::uint32_t events, std::uint64_t id) {
    epoll_event e{};
    e.events = events;
    e.data.u64 = id;
    return ::epoll_ctl(epfd_.get(), op, fd, &e) == 0;
  }

  // The listener is one-shot too: one thread accepts a batch, then re-arms it.
  void accept_clients() {
    for (int i = 0; i < kAcceptBatch; ++i) {
      AcceptResult r = accept_client(listener_.get(), true);
      if (r.status == AcceptStatus::WouldBlock) break;
      if (r.status == AcceptStatus::Failed) continue;
      if (r.status == AcceptStatus::FdLimit) {
        // Out of descriptors: the listener stays unarmed for a moment (the timer re-arms it)
        // rather than waking a thread again at once; clients wait in the backlog.
        if (fd_limit_hits_.fetch_add(1) % 100 == 0)
          log_error("threadpool", std::string("accept: ") + std::strerror(r.error) +
                                      "; pausing accepts for 100 ms");
        std::lock_guard lock(timers_mutex_);
        accept_resume_ = Clock::now() + kAcceptPause;
        timers_changed_.notify_all();
        return;
      }
      // Only the thread holding the listener's turn adds connections, so the count cannot
      // grow between this check and the insert below.
      bool full;
      {
        std::lock_guard lock(table_mutex_);
        full = table_.size() >= options_.max_clients;
      }
      if (full) {
        reject_connection(std::move(r.fd), 503);
        continue;
      }
      auto c = std::make_shared<Connection>(next_id_++, std::move(r.fd));
      // Nobody else can see it before it is in the table: set its first (idle) deadline now.
      c->deadline.update(c->session, options_.timeouts, Clock::now());
      c->due = c->deadline.at();
      c->queued_at = c->due;
      {
        std::lock_guard lock(table_mutex_);
        table_.emplace(c->id, c);
      }
      push_deadline(c->due, c->id);
      if (!ctl(EPOLL_CTL_ADD, c->fd.get(), EPOLLIN | EPOLLONESHOT, c->id)) {
        std::lock_guard lock(table_mutex_);
        table_.erase(c->id);  // the timer's entry will find nothing
      }
    }
    ctl(EPOLL_CTL_MOD, listener_.get(), EPOLLIN | EPOLLONESHOT, kListenerId);
  }

  // The turn of the connection `id` is ours, unless it is gone or another thread has it (then
  // this event is dropped: that thread re-arms the fd when it is done, and a level-triggered
  // condition is reported again).
  ConnectionPtr claim(std::uint64_t id) {
    ConnectionPtr c;
    {
      std::lock_guard lock(table_mutex_);
      auto it = table_.find(id);
      if (it == table_.end()) return nullptr;
      c = it->second;
    }
    std::lock_guard lock(c->mutex);
    if (c->in_turn || c->closed) return nullptr;
    c->in_turn = true;
    return c;
  }

  // One turn: a read (or the next batch of waiting requests), then writes until EAGAIN.
  void serve_turn(Connection& c, std::uint32_t events, char* scratch) {
    if (c.draining) {
      if (!drain(c, scratch)) close(c);
      return;
    }
    if ((events & (EPOLLIN | EPOLLERR | EPOLLHUP)) && c.session.next() == http::Want::Read) {
      const ssize_t n = ::recv(c.fd.get(), scratch, http::kReadSize, 0);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) return close(c);
      if (n > 0) c.session.on_bytes({scratch, static_cast<std::size_t>(n)});
    } else if (c.session.next() == http::Want::Process) {
      c.session.process();
    }
    // The session changed: note its phase now, so that the one after writing (idle again)
    // counts as a change and restarts the idle deadline.
    c.deadline.update(c.session, options_.timeouts, Clock::now());
    after_turn(c);
  }

  // Writes what the session has, starts lingering close after a final response, and derives
  // the connection's deadline.
  void after_turn(Connection& c) {
    iovec iov[64];
    while (c.session.next() == http::Want::Write) {
      msghdr msg{};
      msg.msg_iov = iov;
      msg.msg_iovlen = static_cast<std::size_t>(c.session.gather(iov, 64));
      const ssize_t n = ::sendmsg(c.fd.get(), &msg, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) break;  // the rest when the socket is writable again
      if (n < 0) return close(c);
      c.session.on_written(static_cast<std::size_t>(n));
    }
    const auto now = Clock::now();
    if (c.session.next() == http::Want::Finish && !c.draining) {
      ::shutdown(c.fd.get(), SHUT_WR);
      c.draining = true;
      c.linger_until = now + kLingerTime;  // absolute: a trickling peer cannot extend it
    }
    c.deadline.update(c.session, options_.timeouts, now);
  }

  // Lingering close: read and discard until the peer closes. False when it is time to close.
  bool drain(Connection& c, char* scratch) {
    const ssize_t n = ::recv(c.fd.get(), scratch, http::kReadSize, 0);
    if (n < 0) return errno == EAGAIN || errno == EINTR;
    c.drained += static_cast<std::size_t>(n);
    return n > 0 && c.drained < http::kDrainLimit;
  }

  // Only the thread in the turn closes: out of the table and the epoll set; the fd itself
  // closes when the last reference to the connection goes.
  void close(Connection& c) {
    {
      std::lock_guard lock(table_mutex_);
      table_.erase(c.id);
    }
    ctl(EPOLL_CTL_DEL, c.fd.get(), 0, c.id);
    std::lock_guard lock(c.mutex);
    c.closed = true;
  }

  // The end of a turn: run an expiry the timer asked for, publish the deadline, give the turn
  // up and re-arm the fd for what the session wants next. Giving up the turn and re-arming
  // happen under the connection's mutex, so an event that fires at once finds it free.
  void release(const ConnectionPtr& c) {
    while (true) {
      std::unique_lock lock(c->mutex);
      if (c->closed) {
        c->in_turn = false;
        return;
      }
      if (c->expire_asked) {
        c->expire_asked = false;
        lock.unlock();
        expire_in_turn(*c);
        continue;
      }
      c->due = c->current_deadline();
      // A deadline later than the queued entry waits for that entry to come due (then it is
      // queued again); only an earlier one needs an entry now. So a busy keep-alive connection
      // costs no heap operation per request, and has at most a few entries.
      const auto due = c->due;  // for the push below, made after the mutex is released
      const bool push = due < c->queued_at;
      if (push) c->queued_at = due;
      c->in_turn = false;
      std::uint32_t events = EPOLLIN;
      if (!c->draining) {
        const http::Want want = c->session.next();
        // Process: complete requests wait in the input. Writability is reported at once, so
        // the next turn comes round through epoll, behind the connections already ready.
        if (want == http::Want::Write || want == http::Want::Process) events = EPOLLOUT;
        if (want == http::Want::Process) events |= EPOLLIN;
      }
      ctl(EPOLL_CTL_MOD, c->fd.get(), events | EPOLLONESHOT, c->id);
      lock.unlock();
      if (push) push_deadline(due, c->id);
      return;
    }
  }

  void push_deadline(Clock::time_point at, std::uint64_t id) {
    std::lock_guard lock(timers_mutex_);
    if (heap_.empty() || at < heap_.top().first) timers_changed_.notify_all();
    heap_.emplace(at, id);
  }

  // A heap entry came due. An entry that is not the connection's current one is stale (an
  // earlier deadline replaced it). The deadline may have moved later since (a request came):
  // then it is queued again at its current deadline; if it has none, it leaves the heap.
  void expire(std::uint64_t id, Clock::time_point at, Clock::time_point now) {
    ConnectionPtr c;
    {
      std::lock_guard lock(table_mutex_);
      auto it = table_.find(id);
      if (it == table_.end()) return;
      c = it->second;
    }
    std::unique_lock lock(c->mutex);
    if (c->closed || at != c->queued_at) return;
    c->queued_at = kNever;
    if (c->in_turn) {  // that thread publishes a new deadline, or expires it, when it is done
      c->expire_asked = true;
      return;
    }
    if (c->due > now) {
      const auto again = c->queued_at = c->due;
      lock.unlock();
      if (again != kNever) push_deadline(again, id);
      return;
    }
    c->in_turn = true;
    lock.unlock();
    expire_in_turn(*c);
    release(c);
  }

  // In the turn: the deadline passed (checked again, a request may have come meanwhile).
  void expire_in_turn(Connection& c) {
    if (Clock::now() < c.current_deadline()) return;
    if (c.draining) return close(c);  // lingering close ends at its absolute deadline
    if (c.deadline.expire(c.session) == Expiry::Close) return close(c);  // idle: silently
    after_turn(c);  // header deadline: the 408 is queued; write it and finish
  }

  const UniqueFd listener_;
  const ServerOptions& options_;
  const UniqueFd epfd_, stop_;
  std::atomic<bool> stopping_{false};
  std::atomic<std::uint64_t> next_id_{2};
  std::atomic<unsigned long> fd_limit_hits_{0};

  std::mutex table_mutex_;
  std::unordered_map<std::uint64_t, ConnectionPtr> table_;

  std::mutex timers_mutex_;  // guards the heap, accept_resume_, timers_stopping_
  std::condition_variable timers_changed_;
  std::priority_queue<Entry, std::vector<Entry>, std::greater<>> heap_;
  Clock::time_point accept_resume_ = kNever;
  bool timers_stopping_ = false;
};

// What the threads share with main(): held by shared_ptr, so a thread left in a handler at
// the deadline keeps it alive until the process ends.
struct Shared {
  Shared(UniqueFd listener, const ServerOptions& o) : options(o), server(std::move(listener), options) {}
  const ServerOptions options;
  ThreadPoolServer server;
};

int serve(UniqueFd listener, const ServerOptions& options) {
  auto shared = std::make_shared<Shared>(std::move(listener), options);
  // Started while the stop signals are blocked (run_server): the threads inherit that mask, so
  // only the main thread takes SIGTERM, through the pipe.
  Crew crew;
  for (int i = 0; i < options.workers; ++i) crew.spawn([shared] { shared->server.worker(); });
  crew.spawn([shared] { shared->server.timer(); });
  if (const int err = SignalPipe::wait_for_stop(); err != 0) {
    log_error("threadpool", std::string("poll: ") + std::strerror(err));
  }
  shared->server.stop();
  crew.finish(kStopGrace);  // a thread asleep in a handler is left to end with the process
  return 0;  // with every thread joined, `shared` goes here and closes every connection
}

}  // namespace

int main(int argc, char** argv) {
  ServerSpec spec;
  spec.model = "threadpool";
  spec.description = "a fixed pool of threads sharing one epoll set (EPOLLONESHOT)";
  spec.workers = {WorkersFlag::Default::Fixed, 16, "threads in the pool"};
  spec.serve = serve;
  return run_server(spec, argc, argv);
}
