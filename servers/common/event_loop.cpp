#include "event_loop.hpp"

#include <sys/socket.h>

#include <cerrno>
#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstring>
#include <deque>
#include <list>
#include <memory>
#include <unordered_map>

#include "connection_deadline.hpp"
#include "http_session.hpp"
#include "net.hpp"
#include "server_main.hpp"
#include "signals.hpp"

namespace cmbench::ev {
namespace {

constexpr int kAcceptBatch = 64;           // accepts per wake-up, so clients cannot starve the loop
constexpr int kWritesPerEvent = 16;        // sendmsg calls per event: big bodies share the loop
constexpr auto kAcceptPause = std::chrono::milliseconds(100);  // back-off when out of fds
// The loop wakes at least this often even when idle: a bounded wait keeps shutdown prompt even
// where a signal cannot interrupt the wait (e.g. under ThreadSanitizer).
constexpr auto kMaxWait = std::chrono::milliseconds(1000);

struct Connection;

// Connections under one kind of deadline, the one that expires first at the front. Every
// deadline of a kind has the same duration and is set at the current time, so appending keeps
// the queue sorted: the loop needs no heap and no timer system call per connection, only a look
// at the front (redis and nginx keep keep-alive timeouts the same way). A connection is in
// exactly one queue (idle, header, or none = no deadline) and moves between them with an O(1)
// splice: unlike a deque of (fd, deadline) entries checked lazily, a keep-alive connection
// answering thousands of requests per idle period does not leave an entry behind per request.
using DeadlineQueue = std::list<Connection*>;

// Per-connection state: a small struct; the session holds heap memory only mid-request.
struct Connection {
  UniqueFd fd;
  http::HttpSession session;
  ConnectionDeadline deadline;  // idle or header deadline (docs/architecture.md §3), from the session's phase
  DeadlineQueue* queue = nullptr;  // the queue this connection is in, and where in it
  DeadlineQueue::iterator queued;
  int mask = kReadable;    // what the backend watches for this fd now
  bool turn_queued = false;  // in turns_due_: owed a turn on the loop's next pass
  std::uint64_t serial = 0;  // this connection's number (an fd number is reused after a close)
  bool draining = false;   // final response sent: discard input until the peer closes
  std::size_t drained = 0;
  Clock::time_point linger_until{};
};

class EventLoop {
 public:
  EventLoop(const std::string& model, UniqueFd listener, Backend& backend,
            const ServerOptions& options, const LoopHooks& hooks)
      : model_(model), listener_(std::move(listener)), backend_(backend), options_(options),
        hooks_(hooks) {}

  int run() {
    if (hooks_.stop_fd < 0) {
      SignalPipe::watch(SIGTERM);
      SignalPipe::watch(SIGINT);
    }
    const int stop_fd = hooks_.stop_fd >= 0 ? hooks_.stop_fd : SignalPipe::fd();
    if (!backend_.add(listener_.get(), kReadable) || !backend_.add(stop_fd, kReadable) ||
        (hooks_.offloader && !backend_.add(hooks_.offloader->wake_fd(), kReadable))) {
      log_error(model_, "cannot watch the listening socket");
      return 1;
    }
    std::vector<Ready> ready;
    while (true) {
      if (!backend_.wait(wait_timeout_ms(), ready)) {
        log_error(model_, std::string("wait: ") + std::strerror(errno));
        return 1;
      }
      resume_accepting_if_due();
      close_expired_lingerers();
      expire_deadlines(idle_);
      expire_deadlines(header_);
      // The turns owed from before this wait run after the connections it found ready: a
      // pipelining client's next turn waits behind the others, never ahead of them.
      std::swap(turns_due_, turns_now_);
      for (const Ready& event : ready) {
        if (event.fd == stop_fd) {
          // connections close as conns_ is destroyed
          if (hooks_.stop_fd >= 0 || SignalPipe::drain_stop()) return 0;
        } else if (hooks_.offloader && event.fd == hooks_.offloader->wake_fd()) {
          resume_offloaded();
        } else if (event.fd == listener_.get()) {
          if (!accept_paused_) accept_clients();
        } else if (auto it = conns_.find(event.fd); it != conns_.end()) {
          handle(it->second, event.mask);
        }
      }
      run_waiting_turns();
    }
  }

 private:
  int wait_timeout_ms() const {
    if (!turns_due_.empty()) return 0;  // connections with requests already read: no sleeping
    auto until = Clock::now() + kMaxWait;
    if (accept_paused_) until = std::min(until, resume_at_);
    if (!lingering_.empty()) until = std::min(until, lingering_.front().second);
    for (const DeadlineQueue* q : {&idle_, &header_}) {
      if (!q->empty()) until = std::min(until, q->front()->deadline.at());
    }
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(until - Clock::now());
    return left.count() > 0 ? static_cast<int>(left.count()) : 0;
  }

  // Lingering closes end when the peer closes, or after kLingerTime: a client that never
  // closes must not hold a descriptor forever. Deadlines are queued in the order they start.
  void close_expired_lingerers() {
    const auto now = Clock::now();
    while (!lingering_.empty() && lingering_.front().second <= now) {
      const auto [fd, deadline] = lingering_.front();
      lingering_.pop_front();
      // The fd may have been closed and reused since: only close the one that was queued.
      if (auto it = conns_.find(fd); it != conns_.end() && it->second.draining &&
                                     it->second.linger_until == deadline) {
        close(it->second);
      }
    }
  }

  // Idle connections are closed silently; a head not complete in time is answered 408 and the
  // connection finishes (lingering close).
  void expire_deadlines(DeadlineQueue& queue) {
    const auto now = Clock::now();
    while (!queue.empty() && queue.front()->deadline.due(now)) {
      Connection& c = *queue.front();
      move_to(c, &untimed_);
      if (c.deadline.expire(c.session) == Expiry::Close) {
        close(c);
      } else {
        after_turn(c);  // write the 408, then lingering close
      }
    }
  }

  // After any change to a session: derive its deadline and, when it is new, move the
  // connection to the back of that deadline's queue.
  void track_deadline(Connection& c) {
    if (c.draining || !c.deadline.update(c.session, options_.timeouts, Clock::now())) return;
    switch (c.deadline.phase()) {
      case http::Phase::Idle: return move_to(c, &idle_);
      case http::Phase::Head: return move_to(c, &header_);
      case http::Phase::Busy: return move_to(c, &untimed_);
    }
  }

  void move_to(Connection& c, DeadlineQueue* queue) {
    if (c.queue == nullptr) {
      c.queued = queue->insert(queue->end(), &c);
    } else {
      queue->splice(queue->end(), *c.queue, c.queued);  // iterators stay valid: no allocation
    }
    c.queue = queue;
  }

  void accept_clients() {
    for (int i = 0; i < kAcceptBatch; ++i) {
      AcceptResult r = accept_client(listener_.get(), true);
      if (r.status == AcceptStatus::WouldBlock) return;
      if (r.status == AcceptStatus::Failed) continue;
      if (r.status == AcceptStatus::FdLimit) {
        // Out of descriptors: the listener stays readable, so accepting again at once would
        // spin. Stop watching it for a moment (as nginx does); clients wait in the backlog.
        if (fd_limit_hits_++ % 100 == 0)
          log_error(model_, std::string("accept: ") + std::strerror(r.error) +
                                "; pausing accepts for 100 ms");
        backend_.remove(listener_.get());
        accept_paused_ = true;
        resume_at_ = Clock::now() + kAcceptPause;
        return;
      }
      // --max-clients (docs/architecture.md §3, nginx's worker_connections): past the cap, a 503 and a
      // close, so one flood cannot take every descriptor of the loop. Connections in
      // lingering close still count: they hold an fd, for at most kLingerTime.
      if (conns_.size() >= options_.max_clients) {
        reject_connection(std::move(r.fd), 503);
        continue;
      }
      const int fd = r.fd.get();
      if (!backend_.add(fd, kReadable)) {
        reject_connection(std::move(r.fd), 503);  // e.g. select: fd >= FD_SETSIZE
        continue;
      }
      Connection& c = conns_.try_emplace(fd).first->second;
      c.fd = std::move(r.fd);
      c.serial = ++accepted_;
      if (hooks_.offloader) c.session.defer_if(hooks_.offloader->blocking());
      track_deadline(c);  // a new connection is idle until its first byte
    }
  }

  void resume_accepting_if_due() {
    if (accept_paused_ && Clock::now() >= resume_at_) {
      accept_paused_ = !backend_.add(listener_.get(), kReadable);
    }
  }

  // One readiness event for one connection: read or write as its session wants, then tell the
  // backend what to wait for next.
  void handle(Connection& c, int mask) {
    if (c.draining) {
      if (!drain(c)) close(c);
      return;
    }
    if ((mask & kReadable) && !c.session.waiting() && c.session.next() == http::Want::Read) {
      const ssize_t n = ::recv(c.fd.get(), scratch_, sizeof scratch_, 0);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) return close(c);
      if (n > 0) c.session.on_bytes({scratch_, static_cast<std::size_t>(n)});
    }
    after_turn(c);
  }

  // Fairness: a connection whose input still holds complete requests gets its next turn on the
  // loop's next pass, after every connection that was ready meanwhile (HttpSession bounds a turn).
  // Turns queued while these run go to turns_due_: the pass after the next wait.
  void run_waiting_turns() {
    for (const int fd : turns_now_) {
      auto it = conns_.find(fd);
      if (it == conns_.end()) continue;
      it->second.turn_queued = false;
      if (it->second.session.next() != http::Want::Process) continue;
      it->second.session.process();
      after_turn(it->second);
    }
    turns_now_.clear();
  }

  // After the session changed: write what it has, start lingering close, queue its next turn,
  // and tell the backend what to wait for.
  void after_turn(Connection& c) {
    // A blocking request leaves for a worker (server-offload); the responses before it go out.
    if (auto request = c.session.take_deferred(); request && hooks_.offloader)
      hooks_.offloader->submit({c.fd.get(), c.serial}, std::move(request));
    // The session's phase right after reading or processing (Busy while responses wait), so
    // that a request answered within this turn still restarts the idle deadline after it.
    track_deadline(c);
    // Write at once rather than waiting a round for writability: usually it all fits.
    if (c.session.next() == http::Want::Write && !write_some(c)) return close(c);
    if (c.session.next() == http::Want::Finish) {
      move_to(c, &untimed_);  // lingering close has its own absolute deadline
      ::shutdown(c.fd.get(), SHUT_WR);
      c.draining = true;
      c.linger_until = Clock::now() + kLingerTime;
      lingering_.emplace_back(c.fd.get(), c.linger_until);
    }
    if (c.session.next() == http::Want::Process && !c.turn_queued) {
      c.turn_queued = true;
      turns_due_.push_back(c.fd.get());
    }
    track_deadline(c);
    int want = c.session.next() == http::Want::Write ? kWritable : kReadable;
    // Waiting for a worker with nothing to write: not watched at all (input must not be read,
    // and a hang-up reported on every wait would spin the loop) until resume_offloaded().
    if (c.session.waiting() && want == kReadable) want = kNone;
    if (want != c.mask) {
      if (c.mask == kNone) {
        if (!backend_.add(c.fd.get(), want)) return close(c);
      } else if (want == kNone) {
        backend_.remove(c.fd.get());
      } else {
        backend_.modify(c.fd.get(), want);
      }
      c.mask = want;
    }
  }

  // Responses from the offloader's workers: each connection goes on where it stopped (unless
  // it closed meanwhile, e.g. a write error on the responses before the offloaded one).
  void resume_offloaded() {
    offloaded_.clear();
    hooks_.offloader->collect(offloaded_);
    for (auto& [from, response] : offloaded_) {
      auto it = conns_.find(from.fd);
      if (it == conns_.end() || it->second.serial != from.connection ||
          !it->second.session.waiting())
        continue;
      it->second.session.resume(std::move(response));
      after_turn(it->second);
    }
    offloaded_.clear();
  }

  // Writes until the socket buffer is full or the output is gone. False on a send error.
  bool write_some(Connection& c) {
    iovec iov[64];
    for (int i = 0; i < kWritesPerEvent && c.session.next() == http::Want::Write; ++i) {
      msghdr msg{};
      msg.msg_iov = iov;
      msg.msg_iovlen = static_cast<std::size_t>(c.session.gather(iov, 64));
      const ssize_t n = ::sendmsg(c.fd.get(), &msg, MSG_NOSIGNAL);
      if (n < 0) return errno == EAGAIN || errno == EINTR;
      c.session.on_written(static_cast<std::size_t>(n));
    }
    return true;
  }

  // Lingering close: read and discard until the peer closes. False when it is time to close.
  bool drain(Connection& c) {
    const ssize_t n = ::recv(c.fd.get(), scratch_, sizeof scratch_, 0);
    if (n < 0) return errno == EAGAIN || errno == EINTR;
    c.drained += static_cast<std::size_t>(n);
    return n > 0 && c.drained < http::kDrainLimit;
  }

  void close(Connection& c) {
    const int fd = c.fd.get();
    if (c.queue != nullptr) c.queue->erase(c.queued);
    if (c.mask != kNone) backend_.remove(fd);
    conns_.erase(fd);  // the UniqueFd closes it
  }

  const std::string& model_;
  UniqueFd listener_;
  Backend& backend_;
  const ServerOptions& options_;
  const LoopHooks hooks_;
  std::vector<std::pair<OffloadTicket, http::Response>> offloaded_;  // for resume_offloaded()
  std::uint64_t accepted_ = 0;  // connections accepted so far: their serial numbers
  std::unordered_map<int, Connection> conns_;
  // Lingering closes, (fd, deadline) oldest first: a connection enters once, when it finishes.
  std::deque<std::pair<int, Clock::time_point>> lingering_;
  DeadlineQueue idle_;      // --idle-timeout
  DeadlineQueue header_;    // --header-timeout
  DeadlineQueue untimed_;   // busy or lingering: no idle/header deadline
  std::vector<int> turns_due_, turns_now_;  // connections owed a turn on the next pass
  bool accept_paused_ = false;
  Clock::time_point resume_at_{};
  unsigned long fd_limit_hits_ = 0;
  char scratch_[http::kReadSize];  // the one read buffer of the loop
};

}  // namespace

int run_event_loop(const std::string& model, UniqueFd listener, Backend& backend,
                   const ServerOptions& options, const LoopHooks& hooks) {
  // The loop owns a 16 KiB scratch buffer: allocate it once on the heap, not on the stack.
  auto loop = std::make_unique<EventLoop>(model, std::move(listener), backend, options, hooks);
  return loop->run();
}

}  // namespace cmbench::ev
