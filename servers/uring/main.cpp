// server-uring: one thread, io_uring completions (liburing): the proactor model.
//
// epoll is a reactor: it says "this socket is readable now", and the loop then makes the recv
// and send system calls itself. io_uring is a proactor: the loop queues the operations
// themselves (accept, recv, send) in a ring shared with the kernel, and later reaps their
// *results* from a completion ring. One io_uring_enter both submits the batch and waits, so a
// request costs no readiness step and, under load, less than one system call.
//
// Choices, for this kernel and liburing 2.3:
// - multishot accept: one submission keeps accepting (IORING_CQE_F_MORE) until it fails;
// - a provided-buffer ring (io_uring_register_buf_ring): a recv names no buffer, the kernel
//   picks one from a shared pool of kPoolBuffers × 16 KiB when data arrives, and the loop gives
//   it back after handing the bytes to the session. An idle connection therefore holds no read
//   buffer — only its small struct, as in the hand-written loops;
// - one recv or one sendmsg in flight per connection, submitted only when the session wants it
//   (single-shot recv, not multishot: a connection that is writing or waiting for its next turn
//   must not be read, or a non-reading pipeliner could make us buffer without bound).
// Deadlines (idle, header, lingering close) live in the loop as FIFO queues — every deadline of
// a kind has the same length — and bound the wait for completions; no timer per connection.
// The kernel needs multishot accept and buffer rings (Linux 5.19); without io_uring (old
// kernel, io_uring_disabled, seccomp) the server exits 3 with the reason. Handlers run on the
// loop thread: a blocking handler stalls every client, as in every single-threaded loop.
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>

#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <deque>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "connection_deadline.hpp"
#include "http_session.hpp"
#include "net.hpp"
#include "server_main.hpp"
#include "signals.hpp"

namespace {

using namespace cmbench;

constexpr unsigned kRingEntries = 4096;    // submission queue slots (the completion ring is 2×)
constexpr unsigned kPoolBuffers = 256;     // provided read buffers, shared by all connections
constexpr unsigned short kBufferGroup = 0;
constexpr int kIovecs = 16;                // iovecs per sendmsg (kept per connection)
constexpr auto kAcceptPause = std::chrono::milliseconds(100);  // back-off when out of fds

// What a completion is for: the low 3 bits of its user_data; the rest is a connection id.
enum Op : std::uint64_t { kAccept = 1, kRecv = 2, kSend = 3, kSignal = 4 };
std::uint64_t tag(std::uint64_t id, Op op) { return id << 3 | op; }

struct Connection {
  std::uint64_t id = 0;
  UniqueFd fd;
  http::HttpSession session;
  ConnectionDeadline deadline;
  bool in_flight = false;       // a recv or sendmsg is queued in the kernel
  bool turn_queued = false;     // owed a turn on the loop's next pass (Want::Process)
  bool draining = false;        // final response sent: discard input until the peer closes
  std::size_t drained = 0;
  Clock::time_point linger_until{};
  msghdr msg{};                 // the sendmsg in flight and its iovecs: the kernel reads them
  iovec iov[kIovecs]{};
};

// The provided-buffer pool: a page-aligned ring of buffer descriptors shared with the kernel,
// and the buffers themselves.
class BufferPool {
 public:
  // False when the kernel cannot register a buffer ring (errno-style code in `error`).
  bool init(io_uring& ring, int& error) {
    const std::size_t ring_bytes = kPoolBuffers * sizeof(io_uring_buf);
    void* mem = ::mmap(nullptr, ring_bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE,
                       -1, 0);
    if (mem == MAP_FAILED) {
      error = errno;
      return false;
    }
    ring_ = static_cast<io_uring_buf_ring*>(mem);
    ring_bytes_ = ring_bytes;
    io_uring_buf_reg reg{};
    reg.ring_addr = reinterpret_cast<std::uint64_t>(ring_);
    reg.ring_entries = kPoolBuffers;
    reg.bgid = kBufferGroup;
    if (const int rc = io_uring_register_buf_ring(&ring, &reg, 0); rc < 0) {
      error = -rc;
      return false;
    }
    io_uring_buf_ring_init(ring_);
    storage_ = std::make_unique<char[]>(std::size_t{kPoolBuffers} * http::kReadSize);
    for (unsigned short bid = 0; bid < kPoolBuffers; ++bid) give_back(bid);
    return true;
  }
  ~BufferPool() {
    if (ring_ != nullptr) ::munmap(ring_, ring_bytes_);
  }

  char* data(unsigned short bid) { return storage_.get() + std::size_t{bid} * http::kReadSize; }
  void give_back(unsigned short bid) {
    io_uring_buf_ring_add(ring_, data(bid), http::kReadSize, bid,
                          io_uring_buf_ring_mask(kPoolBuffers), 0);
    io_uring_buf_ring_advance(ring_, 1);
  }

 private:
  io_uring_buf_ring* ring_ = nullptr;
  std::size_t ring_bytes_ = 0;
  std::unique_ptr<char[]> storage_;
};

// Why this kernel cannot run the model, or "" when it can: a ring, and a buffer ring on it.
std::string io_uring_unavailable() {
  io_uring ring{};
  if (const int rc = io_uring_queue_init(8, &ring, 0); rc < 0)
    return std::string("io_uring unavailable: ") + std::strerror(-rc);
  std::string reason;
  const long page = ::sysconf(_SC_PAGESIZE);
  void* mem = ::mmap(nullptr, static_cast<std::size_t>(page), PROT_READ | PROT_WRITE,
                     MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  if (mem == MAP_FAILED) {
    reason = std::string("mmap: ") + std::strerror(errno);
  } else {
    io_uring_buf_reg reg{};
    reg.ring_addr = reinterpret_cast<std::uint64_t>(mem);
    reg.ring_entries = 1;
    reg.bgid = kBufferGroup;
    if (const int rc = io_uring_register_buf_ring(&ring, &reg, 0); rc < 0)
      reason = std::string("io_uring provided-buffer rings unavailable (needs Linux 5.19): ") +
               std::strerror(-rc);
    ::munmap(mem, static_cast<std::size_t>(page));
  }
  io_uring_queue_exit(&ring);
  return reason;
}

class UringServer {
 public:
  UringServer(UniqueFd listener, const ServerOptions& options)
      : listener_(std::move(listener)), options_(options) {}
  ~UringServer() {
    conns_.clear();  // close every socket before the ring goes
    if (ring_ready_) io_uring_queue_exit(&ring_);
  }

  int run() {
    io_uring_params params{};
    params.flags = IORING_SETUP_CQSIZE;
    params.cq_entries = 2 * kRingEntries;
    if (const int rc = io_uring_queue_init_params(kRingEntries, &ring_, &params); rc < 0) {
      log_error("uring", std::string("io_uring unavailable: ") + std::strerror(-rc));
      return 3;
    }
    ring_ready_ = true;
    int error = 0;
    if (!pool_.init(ring_, error)) {
      log_error("uring", std::string("io_uring provided-buffer rings unavailable (needs Linux "
                                     "5.19): ") + std::strerror(error));
      return 3;
    }
    SignalPipe::watch(SIGTERM);
    SignalPipe::watch(SIGINT);
    watch_signals();
    arm_accept();

    while (!stopping_) {
      __kernel_timespec wait = wait_time();
      io_uring_cqe* cqe = nullptr;
      // Submits what the last pass queued and waits for a completion or the next deadline.
      const int rc = io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &wait, nullptr);
      if (rc < 0 && rc != -ETIME && rc != -EINTR) {
        log_error("uring", std::string("io_uring_enter: ") + std::strerror(-rc));
        return 1;
      }
      unsigned seen = 0;
      unsigned head;
      io_uring_for_each_cqe(&ring_, head, cqe) {
        complete(cqe->user_data, cqe->res, cqe->flags);
        ++seen;
      }
      io_uring_cq_advance(&ring_, seen);
      const auto now = Clock::now();
      expire_deadlines(now);
      if (accept_paused_ && now >= resume_at_) {
        accept_paused_ = false;
        arm_accept();
      }
      run_waiting_turns();
    }
    return 0;
  }

 private:
  // --- submissions ---------------------------------------------------------------------------

  io_uring_sqe* sqe() {
    io_uring_sqe* s = io_uring_get_sqe(&ring_);
    if (s == nullptr) {  // the submission ring is full: hand it to the kernel, then take a slot
      io_uring_submit(&ring_);
      s = io_uring_get_sqe(&ring_);
    }
    return s;
  }

  void arm_accept() {
    io_uring_sqe* s = sqe();
    if (multishot_accept_) {
      io_uring_prep_multishot_accept(s, listener_.get(), nullptr, nullptr, SOCK_CLOEXEC);
    } else {
      io_uring_prep_accept(s, listener_.get(), nullptr, nullptr, SOCK_CLOEXEC);
    }
    io_uring_sqe_set_data64(s, tag(0, kAccept));
  }

  void watch_signals() {
    io_uring_sqe* s = sqe();
    io_uring_prep_poll_add(s, SignalPipe::fd(), POLLIN);
    io_uring_sqe_set_data64(s, tag(0, kSignal));
  }

  void submit_recv(Connection& c) {
    io_uring_sqe* s = sqe();
    io_uring_prep_recv(s, c.fd.get(), nullptr, http::kReadSize, 0);
    s->flags |= IOSQE_BUFFER_SELECT;  // the kernel picks a pool buffer when data arrives
    s->buf_group = kBufferGroup;
    io_uring_sqe_set_data64(s, tag(c.id, kRecv));
    c.in_flight = true;
  }

  void submit_send(Connection& c) {
    c.msg = msghdr{};
    c.msg.msg_iov = c.iov;
    c.msg.msg_iovlen = static_cast<std::size_t>(c.session.gather(c.iov, kIovecs));
    io_uring_sqe* s = sqe();
    io_uring_prep_sendmsg(s, c.fd.get(), &c.msg, MSG_NOSIGNAL);
    io_uring_sqe_set_data64(s, tag(c.id, kSend));
    c.in_flight = true;
  }

  // --- completions ---------------------------------------------------------------------------

  void complete(std::uint64_t data, int res, unsigned flags) {
    const auto op = static_cast<Op>(data & 7);
    if (op == kAccept) return accepted(res, flags);
    if (op == kSignal) {
      if (SignalPipe::drain_stop()) stopping_ = true;
      else watch_signals();
      return;
    }
    auto it = conns_.find(data >> 3);
    if (op == kRecv && (flags & IORING_CQE_F_BUFFER)) {
      const auto bid = static_cast<unsigned short>(flags >> IORING_CQE_BUFFER_SHIFT);
      if (it != conns_.end() && res > 0) received(it->second, pool_.data(bid), res);
      pool_.give_back(bid);  // the bytes are in the session now (or discarded)
      if (it != conns_.end() && res > 0) return proceed(it->second);
    }
    if (it == conns_.end()) return;  // closed meanwhile: a late completion
    Connection& c = it->second;
    c.in_flight = false;
    if (op == kRecv) {
      if (res == -ENOBUFS) return proceed(c);  // the pool was empty for a moment: ask again
      // End of input. A 408 queued by the header deadline (which shut our read side to end
      // this recv) is still written; otherwise the peer is gone.
      if (res == 0 && !c.draining && c.session.next() == http::Want::Write) return proceed(c);
      if (res == 0 || (res < 0 && res != -EAGAIN && res != -EINTR)) return close(c);
    } else if (res < 0) {
      if (res != -EAGAIN && res != -EINTR) return close(c);
    } else {
      c.session.on_written(static_cast<std::size_t>(res));
    }
    proceed(c);
  }

  void received(Connection& c, const char* bytes, int n) {
    c.in_flight = false;
    if (c.draining) {
      c.drained += static_cast<std::size_t>(n);
    } else {
      c.session.on_bytes({bytes, static_cast<std::size_t>(n)});
    }
  }

  void accepted(int res, unsigned flags) {
    if (!(flags & IORING_CQE_F_MORE)) {
      // The multishot accept ended (an error, or the kernel lacks it): re-arm, or pause first.
      if (res == -EINVAL && multishot_accept_) {
        multishot_accept_ = false;
        return arm_accept();
      }
      if (res == -EMFILE || res == -ENFILE || res == -ENOBUFS || res == -ENOMEM) {
        // Out of descriptors: accepting again at once would fail again; clients wait in the
        // backlog meanwhile (as in the other loops).
        if (fd_limit_hits_++ % 100 == 0)
          log_error("uring", std::string("accept: ") + std::strerror(-res) +
                                 "; pausing accepts for 100 ms");
        accept_paused_ = true;
        resume_at_ = Clock::now() + kAcceptPause;
      } else if (!stopping_) {
        arm_accept();
      }
    }
    if (res < 0) return;
    UniqueFd fd(res);
    const int one = 1;
    ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (conns_.size() >= options_.max_clients) return reject_connection(std::move(fd), 503);
    const std::uint64_t id = ++last_id_;
    Connection& c = conns_[id];
    c.id = id;
    c.fd = std::move(fd);
    proceed(c);
  }

  // --- the connection's next step --------------------------------------------------------------

  void proceed(Connection& c) {
    if (c.in_flight) return;
    if (c.draining) {
      if (c.drained >= http::kDrainLimit) return close(c);
      return submit_recv(c);
    }
    const auto now = Clock::now();
    if (c.deadline.update(c.session, options_.timeouts, now)) queue_deadline(c);
    switch (c.session.next()) {
      case http::Want::Read: return submit_recv(c);
      case http::Want::Write: return submit_send(c);
      case http::Want::Process:
        if (!c.turn_queued) {
          c.turn_queued = true;
          turns_due_.push_back(c.id);
        }
        return;
      case http::Want::Finish:
        ::shutdown(c.fd.get(), SHUT_WR);  // lingering close: our FIN, then drain for 1 s at most
        c.draining = true;
        c.linger_until = now + kLingerTime;
        lingering_.push_back({c.id, c.linger_until});
        return submit_recv(c);
    }
  }

  // Fairness: a connection whose input still holds complete requests gets its next turn after
  // the completions that arrived meanwhile (HttpSession bounds a turn).
  void run_waiting_turns() {
    std::swap(turns_due_, turns_now_);
    for (const std::uint64_t id : turns_now_) {
      auto it = conns_.find(id);
      if (it == conns_.end()) continue;
      it->second.turn_queued = false;
      it->second.session.process();
      proceed(it->second);
    }
    turns_now_.clear();
  }

  // --- deadlines ---------------------------------------------------------------------------------

  struct Due {
    std::uint64_t id;
    Clock::time_point at;
  };

  void queue_deadline(const Connection& c) {
    if (c.deadline.phase() == http::Phase::Idle) idle_.push_back({c.id, c.deadline.at()});
    if (c.deadline.phase() == http::Phase::Head) header_.push_back({c.id, c.deadline.at()});
  }

  // Each queue is in deadline order; an entry counts only if it is still its connection's.
  void expire_deadlines(Clock::time_point now) {
    for (auto* queue : {&idle_, &header_}) {
      while (!queue->empty() && queue->front().at <= now) {
        const Due due = queue->front();
        queue->pop_front();
        auto it = conns_.find(due.id);
        if (it == conns_.end() || it->second.draining || it->second.deadline.at() != due.at) continue;
        Connection& c = it->second;
        if (c.deadline.expire(c.session) == Expiry::Close) {
          close(c);
        } else if (!c.in_flight) {
          proceed(c);  // write the 408, then lingering close
        } else {
          // The recv still waits in the kernel; shutting our read side completes it, and its
          // completion writes the 408.
          ::shutdown(c.fd.get(), SHUT_RD);
        }
      }
    }
    while (!lingering_.empty() && lingering_.front().at <= now) {
      const Due due = lingering_.front();
      lingering_.pop_front();
      auto it = conns_.find(due.id);
      if (it != conns_.end() && it->second.linger_until == due.at) close(it->second);
    }
  }

  __kernel_timespec wait_time() const {
    if (!turns_due_.empty()) return {0, 0};  // turns are owed: only collect what is ready
    auto until = Clock::now() + std::chrono::seconds(1);  // bounded: shutdown stays prompt
    for (const auto* queue : {&idle_, &header_, &lingering_})
      if (!queue->empty()) until = std::min(until, queue->front().at);
    if (accept_paused_) until = std::min(until, resume_at_);
    const auto left = std::max(Clock::duration::zero(), until - Clock::now());
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
    return {ns / 1'000'000'000, ns % 1'000'000'000};
  }

  // A recv may still be queued in the kernel for this socket: shutting it down completes that
  // recv (its late completion finds no connection and is ignored), then closing frees the fd.
  void close(Connection& c) {
    if (c.in_flight) ::shutdown(c.fd.get(), SHUT_RDWR);
    conns_.erase(c.id);
  }

  UniqueFd listener_;
  const ServerOptions& options_;
  io_uring ring_{};
  bool ring_ready_ = false;
  BufferPool pool_;
  std::unordered_map<std::uint64_t, Connection> conns_;
  std::uint64_t last_id_ = 0;
  std::deque<Due> idle_, header_, lingering_;
  std::vector<std::uint64_t> turns_due_, turns_now_;
  bool multishot_accept_ = true;
  bool accept_paused_ = false;
  Clock::time_point resume_at_{};
  unsigned long fd_limit_hits_ = 0;
  bool stopping_ = false;
};

}  // namespace

int main(int argc, char** argv) {
  ServerSpec spec;
  spec.model = "uring";
  spec.description = "one thread, io_uring completions (multishot accept, provided buffers)";
  spec.nonblocking_listener = false;  // io_uring waits for it; no EAGAIN to handle
  spec.unavailable = io_uring_unavailable;  // exit 3 with the reason, before the ready line
  spec.serve = [](UniqueFd listener, const ServerOptions& options) {
    UringServer server(std::move(listener), options);
    return server.run();
  };
  return run_server(spec, argc, argv);
}
