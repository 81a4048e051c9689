// server-coro: our own C++20 coroutine runtime over the epoll backend: asyncio in miniature.
//
// The lecture asks how to hide epoll inside a library function. This file answers it in two
// halves. The runtime (Task, Scheduler) owns the only epoll set (common/epoll_backend.hpp), a
// table of which coroutine waits on which fd, and a timer queue; `co_await loop.readable(fd,
// deadline)` parks the calling coroutine there and returns to the scheduler, which resumes it
// when epoll reports the fd ready (true) or its deadline passes (false). The server half is
// then written as if it blocked: serve_connection() is serve_blocking()
// (common/blocking_connection.cpp) line for line, with each wait a co_await. That is asyncio's
// and Tornado's design: one thread, one selector, a ready queue, callbacks hidden in resumptions.
//
// Who owns what: the scheduler owns every task from spawn() to its end (frames are destroyed
// when they finish, or all at once when the scheduler is destroyed on SIGTERM, which closes
// their sockets); each connection task owns its socket, session and deadline (a frame of a
// few hundred bytes: the 16 KiB read buffer is the scheduler's one scratch buffer, used only
// between two awaits). Limits: one thread, so a handler that blocks (/sleep) or spins (/cpu)
// stalls every client, as in any event loop; there is no await-a-task (each handler is a
// top-level task, like asyncio.create_task), no threads, no cancellation other than shutdown.
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <coroutine>
#include <csignal>
#include <cstring>
#include <deque>
#include <exception>
#include <list>
#include <map>
#include <memory>
#include <utility>
#include <vector>

#include "connection_deadline.hpp"
#include "epoll_backend.hpp"
#include "http_session.hpp"
#include "net.hpp"
#include "server_main.hpp"
#include "signals.hpp"

namespace {

using namespace cmbench;

// ================================ the runtime ================================================

// A coroutine owned by the Scheduler. It starts suspended (spawn() queues it) and stops at its
// final suspension point, where the scheduler destroys it. Tasks are never awaited by other
// tasks, so no continuation machinery is needed.
class Task {
 public:
  struct promise_type;
  using Handle = std::coroutine_handle<promise_type>;
  struct promise_type {
    Task get_return_object() { return Task(Handle::from_promise(*this)); }
    std::suspend_always initial_suspend() noexcept { return {}; }
    std::suspend_always final_suspend() noexcept { return {}; }
    void return_void() noexcept {}
    // An exception ends this task only (the scheduler logs it): errors stay per connection.
    void unhandled_exception() noexcept { error = std::current_exception(); }
    std::exception_ptr error;
    std::list<Handle>::iterator self;  // this task's place in the scheduler's list
  };
  Task(Task&& other) noexcept : handle_(std::exchange(other.handle_, {})) {}
  Task(const Task&) = delete;
  ~Task() {
    if (handle_) handle_.destroy();
  }
  Handle release() noexcept { return std::exchange(handle_, {}); }

 private:
  explicit Task(Handle h) : handle_(h) {}
  Handle handle_;
};

class Scheduler;

// What `co_await loop.readable(...)` evaluates to: lives in the suspended coroutine's frame
// while it waits, linked into the scheduler's fd table and timer queue.
struct Waiter {
  Scheduler& loop;
  int fd;                    // -1: a pure timer (sleep_until)
  int mask;                  // ev::kReadable or ev::kWritable
  Clock::time_point deadline;
  Task::Handle task{};
  bool ready = false;        // woken by the fd (true) or by the deadline / a failed watch (false)
  bool timed = false;
  std::multimap<Clock::time_point, Waiter*>::iterator timer{};

  bool await_ready() const noexcept { return false; }
  bool await_suspend(Task::Handle h);  // false (do not suspend) when the fd cannot be watched
  bool await_resume() const noexcept { return ready; }
};

class Scheduler {
 public:
  explicit Scheduler(ev::Backend& backend) : backend_(backend) {}
  Scheduler(const Scheduler&) = delete;
  // Destroying a suspended frame runs its destructors: every connection closes its socket.
  ~Scheduler() {
    while (!tasks_.empty()) {
      const Task::Handle h = tasks_.front();
      tasks_.pop_front();
      h.destroy();
    }
  }

  void spawn(Task task) {
    const Task::Handle h = task.release();
    h.promise().self = tasks_.insert(tasks_.end(), h);
    ready_.push_back(h);
  }
  void stop() noexcept { stopping_ = true; }

  // The awaitables: true when the fd is ready, false when the deadline passed.
  Waiter readable(int fd, Clock::time_point deadline = Clock::time_point::max()) {
    return {*this, fd, ev::kReadable, deadline};
  }
  Waiter writable(int fd, Clock::time_point deadline = Clock::time_point::max()) {
    return {*this, fd, ev::kWritable, deadline};
  }
  Waiter sleep_until(Clock::time_point t) { return {*this, -1, ev::kNone, t}; }
  // Fairness: runs again after the next wait, behind every task whose I/O that wait reports.
  auto yield() {
    struct Yield {
      Scheduler& loop;
      bool await_ready() const noexcept { return false; }
      void await_suspend(Task::Handle h) { loop.yielded_.push_back(h); }
      void await_resume() const noexcept {}
    };
    return Yield{*this};
  }

  // The one read buffer of the thread: valid until the caller's next co_await.
  char* scratch() noexcept { return scratch_.get(); }

  // Registers a waiter: fd table (+ epoll interest, changed only when it differs) and timer.
  bool park(Waiter& w) {
    if (w.fd >= 0) {
      if (static_cast<std::size_t>(w.fd) >= slots_.size()) slots_.resize(w.fd + 1u);
      Slot& s = slots_[static_cast<std::size_t>(w.fd)];
      if (!s.added) {
        if (!backend_.add(w.fd, w.mask)) return false;
        s.added = true;
      } else if (s.watched != w.mask) {
        backend_.modify(w.fd, w.mask);
      }
      s.watched = w.mask;
      s.waiter = &w;
    }
    if (w.deadline != Clock::time_point::max()) {
      w.timed = true;
      w.timer = timers_.emplace(w.deadline, &w);  // a tree node: no system call per timer
    }
    return true;
  }

  // Before an fd is closed: no stale interest, no waiter pointer into a dead frame.
  void forget(int fd) {
    if (fd < 0 || static_cast<std::size_t>(fd) >= slots_.size()) return;
    Slot& s = slots_[static_cast<std::size_t>(fd)];
    if (s.waiter && s.waiter->timed) timers_.erase(s.waiter->timer);
    if (s.added) backend_.remove(fd);
    s = Slot{};
  }

  // asyncio's _run_once, repeated: run the ready tasks, wait for I/O (not at all when tasks are
  // ready, else until the next timer), queue the tasks whose fd or deadline came. Returns the
  // exit status.
  int run() {
    std::vector<ev::Ready> events;
    while (!stopping_) {
      run_ready();
      if (stopping_) break;
      if (!backend_.wait(wait_timeout_ms(), events)) {
        log_error("coro", std::string("epoll_wait: ") + std::strerror(errno));
        return 1;
      }
      for (const ev::Ready& e : events) on_ready(e);
      const auto now = Clock::now();
      while (!timers_.empty() && timers_.begin()->first <= now) wake(*timers_.begin()->second, false);
      ready_.insert(ready_.end(), yielded_.begin(), yielded_.end());
      yielded_.clear();
    }
    return 0;
  }

 private:
  struct Slot {
    Waiter* waiter = nullptr;  // the coroutine parked on this fd, if any
    int watched = ev::kNone;   // the interest epoll holds for it
    bool added = false;
  };

  // Only the tasks ready when the pass began (a task woken meanwhile waits for the next pass).
  void run_ready() {
    for (std::size_t n = ready_.size(); n > 0 && !stopping_; --n) {
      const Task::Handle h = ready_.front();
      ready_.pop_front();
      h.resume();
      if (h.done()) finish(h);
    }
  }

  void on_ready(const ev::Ready& e) {
    if (e.fd < 0 || static_cast<std::size_t>(e.fd) >= slots_.size()) return;
    Slot& s = slots_[static_cast<std::size_t>(e.fd)];
    if (s.waiter) {
      wake(*s.waiter, true);
    } else if (s.added && s.watched != ev::kNone) {
      // Level-triggered and nobody waits (the task sleeps or is queued): stop watching, or
      // epoll would report the fd on every pass. The next park re-arms it.
      backend_.modify(e.fd, ev::kNone);
      s.watched = ev::kNone;
    }
  }

  void wake(Waiter& w, bool ready) {
    if (w.fd >= 0) slots_[static_cast<std::size_t>(w.fd)].waiter = nullptr;
    if (w.timed) timers_.erase(w.timer);
    w.timed = false;
    w.ready = ready;
    ready_.push_back(w.task);
  }

  void finish(Task::Handle h) {
    if (h.promise().error) {
      try {
        std::rethrow_exception(h.promise().error);
      } catch (const std::exception& e) {
        log_error("coro", std::string("task failed: ") + e.what());
      } catch (...) {
        log_error("coro", "task failed");
      }
    }
    tasks_.erase(h.promise().self);
    h.destroy();
  }

  int wait_timeout_ms() const {
    if (!ready_.empty() || !yielded_.empty()) return 0;
    auto until = Clock::now() + std::chrono::seconds(1);  // bounded: prompt even if a signal is missed
    if (!timers_.empty()) until = std::min(until, timers_.begin()->first);
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(until - Clock::now()).count();
    return left > 0 ? static_cast<int>(left) : 0;
  }

  ev::Backend& backend_;
  std::list<Task::Handle> tasks_;               // every live task
  std::deque<Task::Handle> ready_;              // runnable now, in order
  std::vector<Task::Handle> yielded_;           // runnable after the next wait (yield())
  std::vector<Slot> slots_;                     // by fd, grown on demand (bounded by ulimit -n)
  std::multimap<Clock::time_point, Waiter*> timers_;  // deadlines of parked waiters, earliest first
  std::unique_ptr<char[]> scratch_ = std::make_unique<char[]>(http::kReadSize);
  bool stopping_ = false;
};

bool Waiter::await_suspend(Task::Handle h) {
  task = h;
  return loop.park(*this);
}

// ================================ the server =================================================

constexpr int kAcceptBatch = 64;                               // accepts per wake-up
constexpr auto kAcceptPause = std::chrono::milliseconds(100);  // back-off when out of fds

// Open connections, for --max-clients; a connection task holds a Slot for its lifetime.
struct Clients {
  std::size_t open = 0;
  struct Slot {
    explicit Slot(Clients& c) : clients(c) { ++clients.open; }
    ~Slot() { --clients.open; }
    Clients& clients;
  };
};

// Unregisters the fd from the scheduler before the socket (a parameter, destroyed later) closes.
struct Watch {
  Scheduler& loop;
  int fd;
  ~Watch() { loop.forget(fd); }
};

enum class Sent { Progress, WouldBlock, Failed };

// A plain function, not a coroutine: its 1 KiB of iovecs lives on the thread's stack for the
// call instead of in every connection's frame.
Sent send_some(int fd, http::HttpSession& session) {
  iovec iov[64];
  msghdr msg{};
  msg.msg_iov = iov;
  msg.msg_iovlen = static_cast<std::size_t>(session.gather(iov, 64));
  const ssize_t n = ::sendmsg(fd, &msg, MSG_NOSIGNAL);
  if (n >= 0) {
    session.on_written(static_cast<std::size_t>(n));
    return Sent::Progress;
  }
  return (errno == EAGAIN || errno == EINTR) ? Sent::WouldBlock : Sent::Failed;
}

// One client, top to bottom: serve_blocking() with co_await where it would block.
Task serve_connection(Scheduler& loop, UniqueFd socket, Timeouts timeouts, Clients& clients) {
  const int fd = socket.get();
  const Clients::Slot slot(clients);
  const Watch watch{loop, fd};
  http::HttpSession session;
  ConnectionDeadline deadline;
  while (true) {
    deadline.update(session, timeouts, Clock::now());
    switch (session.next()) {
      case http::Want::Read: {
        const ssize_t n = ::recv(fd, loop.scratch(), http::kReadSize, 0);
        if (n > 0) {
          session.on_bytes({loop.scratch(), static_cast<std::size_t>(n)});
        } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
          co_return;  // peer closed or failed
        } else if (!co_await loop.readable(fd, deadline.at())) {
          if (deadline.expire(session) == Expiry::Close) co_return;  // idle: silently
        }
        break;
      }
      case http::Want::Write: {
        const Sent sent = send_some(fd, session);
        if (sent == Sent::Failed) co_return;
        if (sent == Sent::WouldBlock && !co_await loop.writable(fd)) co_return;  // no deadline (§3)
        break;
      }
      case http::Want::Process:
        co_await loop.yield();  // fairness: the others ready meanwhile go first
        session.process();
        break;
      case http::Want::Finish: {
        // Lingering close, absolute deadline: discard what the peer still sends for at most 1 s.
        ::shutdown(fd, SHUT_WR);
        const auto until = Clock::now() + kLingerTime;
        for (std::size_t drained = 0; drained < http::kDrainLimit;) {
          const ssize_t n = ::recv(fd, loop.scratch(), http::kReadSize, 0);
          if (n > 0) {
            drained += static_cast<std::size_t>(n);
          } else if (n == 0 || (errno != EAGAIN && errno != EINTR) ||
                     !co_await loop.readable(fd, until)) {
            break;
          }
        }
        co_return;
      }
    }
  }
}

// The acceptor is a task like any other: it waits for the listener to be readable.
// (`options` and `clients` outlive every task: they belong to serve() below.)
Task accept_clients(Scheduler& loop, int listen_fd, const ServerOptions& options, Clients& clients) {
  unsigned long fd_limit_hits = 0;
  while (true) {
    co_await loop.readable(listen_fd);
    for (int i = 0; i < kAcceptBatch; ++i) {
      AcceptResult r = accept_client(listen_fd, true);
      if (r.status == AcceptStatus::WouldBlock) break;
      if (r.status == AcceptStatus::Failed) continue;
      if (r.status == AcceptStatus::FdLimit) {
        // Out of descriptors: the listener stays readable, so accepting again at once would
        // spin. Sleep 100 ms (as nginx does); clients wait in the backlog meanwhile.
        if (fd_limit_hits++ % 100 == 0)
          log_error("coro", std::string("accept: ") + std::strerror(r.error) +
                                "; pausing accepts for 100 ms");
        co_await loop.sleep_until(Clock::now() + kAcceptPause);
        break;
      }
      if (clients.open >= options.max_clients) {
        reject_connection(std::move(r.fd), 503);
        continue;
      }
      loop.spawn(serve_connection(loop, std::move(r.fd), options.timeouts, clients));
    }
  }
}

Task stop_on_signal(Scheduler& loop) {
  while (!SignalPipe::drain_stop()) co_await loop.readable(SignalPipe::fd());
  loop.stop();
}

int serve(UniqueFd listener, const ServerOptions& options) {
  SignalPipe::watch(SIGTERM);
  SignalPipe::watch(SIGINT);
  ev::EpollBackend backend;
  Clients clients;
  // Declared last, destroyed first: its tasks' frames still use `clients` and `backend`.
  auto loop = std::make_unique<Scheduler>(backend);
  loop->spawn(stop_on_signal(*loop));
  loop->spawn(accept_clients(*loop, listener.get(), options, clients));
  return loop->run();
}

}  // namespace

int main(int argc, char** argv) {
  ServerSpec spec;
  spec.model = "coro";
  spec.description = "own C++20 coroutine runtime (co_await readable/writable) over epoll";
  spec.serve = serve;
  return run_server(spec, argc, argv);
}
