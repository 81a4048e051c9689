// server-fibers: green threads (gevent's model): one OS thread, a stackful fiber per
// connection, and a hub that parks fibers on their fds in epoll.
//
// Every connection runs serve_blocking() (common/blocking_connection.cpp), the very function
// a thread of server-threads runs, written as blocking code: recv, handle, send, repeat. Only
// its wait is swapped: server-threads passes PollIo (poll(2) blocks the thread), we pass
// HubIo, whose wait() records "this fiber waits for this fd until this deadline" in the hub
// and switches to the hub's stack; the hub resumes the fiber when epoll reports the fd ready
// or the deadline passes. That is gevent's monkey-patching made visible: the connection code
// cannot tell, the socket calls yield instead of blocking.
//
// Who owns what: the hub (the main stack) owns the epoll set (common/epoll_backend.hpp), the
// listener, a table of which fiber waits on which fd, a timer queue of their deadlines, and
// every Green (socket + fiber). Each fiber has its own stack: 64 KiB from
// protected_fixedsize_stack, i.e. mmap'd with a PROT_NONE guard page below it, so an overflow
// faults at once instead of corrupting a neighbour. Why 64 KiB: serve_blocking keeps its
// 16 KiB read buffer and 1 KiB of iovecs on the stack, lingering close a 4 KiB sink, and the
// handlers and libc calls (printf in an error path) need a few KiB more; 64 KiB leaves about
// 3x headroom while reserving an eighth of a thread's 8 MiB. Only touched pages cost memory
// (the buffer's first pages, the frames): that, not the reservation, is the per-connection
// price the idle experiment measures. mmap per connection (not a pool) returns a stack to the
// kernel when its client leaves. Sanitizers see the switches: ASan through
// __sanitizer_start/finish_switch_fiber, TSan through __tsan_switch_to_fiber (Boost 1.74's
// fcontext does neither itself).
//
// Limits: one OS thread, so a handler that blocks (/sleep) or spins (/cpu) stalls every fiber,
// as in gevent when a C library call blocks. SIGTERM: the hub stops accepting, shuts every
// socket down and resumes each fiber once; its blocking calls then fail or see EOF, so every
// fiber returns from serve_blocking through its own destructors (RAII), and its stack is
// unmapped. A fiber that did not end by then is unwound by Boost's fiber destructor.
#include <poll.h>
#include <sys/socket.h>

#include <boost/context/fiber.hpp>
#include <boost/context/protected_fixedsize_stack.hpp>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <deque>
#include <list>
#include <map>
#include <memory>
#include <new>
#include <vector>

#include "blocking_connection.hpp"
#include "epoll_backend.hpp"
#include "net.hpp"
#include "server_main.hpp"
#include "signals.hpp"

// GCC says which sanitizer is on with __SANITIZE_*__, clang with __has_feature.
#if defined(__SANITIZE_ADDRESS__)
#define CMBENCH_FIBERS_ASAN 1
#endif
#if defined(__SANITIZE_THREAD__)
#define CMBENCH_FIBERS_TSAN 1
#endif
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CMBENCH_FIBERS_ASAN 1
#endif
#if __has_feature(thread_sanitizer)
#define CMBENCH_FIBERS_TSAN 1
#endif
#endif
#if defined(CMBENCH_FIBERS_ASAN)
#include <sanitizer/common_interface_defs.h>
#endif
#if defined(CMBENCH_FIBERS_TSAN)
#include <sanitizer/tsan_interface.h>
#endif

namespace {

using namespace cmbench;
namespace ctx = boost::context;

#if defined(CMBENCH_FIBERS_ASAN) || defined(CMBENCH_FIBERS_TSAN)
constexpr std::size_t kStackSize = 256 * 1024;  // instrumented frames are several times larger
#else
constexpr std::size_t kStackSize = 64 * 1024;
#endif
constexpr int kAcceptBatch = 64;                               // accepts per wake-up
constexpr auto kAcceptPause = std::chrono::milliseconds(100);  // back-off when out of fds
constexpr auto kMaxWait = std::chrono::seconds(1);  // the hub wakes at least this often

// One connection: its socket and its green thread. Members are destroyed in reverse order:
// a fiber still suspended is unwound before its socket closes.
struct Green {
  UniqueFd fd;
  ctx::fiber context;  // the suspended fiber (empty while it runs, and once it has ended)
  ctx::fiber hub;      // inside the fiber: the suspended hub to switch back to
  // While parked: what it waits for.
  int wait_fd = -1;
  bool ready = false;
  bool timed = false;
  std::multimap<Clock::time_point, Green*>::iterator timer{};
  std::list<std::unique_ptr<Green>>::iterator self{};
  // The fiber's stack, for the sanitizers.
  const void* stack_bottom = nullptr;
  std::size_t stack_size = 0;
  void* asan_fake_stack = nullptr;
  void* tsan_fiber = nullptr;
};

// protected_fixedsize_stack that also tells the Green where its stack is (sanitizers need it).
class GuardedStack {
 public:
  explicit GuardedStack(Green& g) : green_(&g) {}
  ctx::stack_context allocate() {
    ctx::stack_context sc = inner_.allocate();  // mmap + guard page; throws std::bad_alloc
    green_->stack_bottom = static_cast<char*>(sc.sp) - sc.size;
    green_->stack_size = sc.size;
    return sc;
  }
  void deallocate(ctx::stack_context& sc) noexcept { inner_.deallocate(sc); }

 private:
  ctx::protected_fixedsize_stack inner_{kStackSize};
  Green* green_;
};

class Hub {
 public:
  Hub(int listen_fd, const ServerOptions& options) : listen_fd_(listen_fd), options_(options) {
#if defined(CMBENCH_FIBERS_TSAN)
    tsan_hub_ = __tsan_get_current_fiber();
#endif
  }
  Hub(const Hub&) = delete;

  int run();

  // Called on a fiber, through HubIo: park until fd is ready (true) or the deadline (false).
  bool park(Green& g, int fd, int mask, Clock::time_point deadline) {
    if (stopping_) return true;  // shutting down: the socket is shut, the call will fail
    if (static_cast<std::size_t>(fd) >= slots_.size()) slots_.resize(fd + 1u);
    Slot& s = slots_[static_cast<std::size_t>(fd)];
    if (!s.added) {
      if (!backend_.add(fd, mask)) {
        // Cannot watch it (epoll out of memory): end this connection, not the server. Its
        // next call on the shut socket fails, so serve_blocking returns instead of retrying.
        ::shutdown(fd, SHUT_RDWR);
        return true;
      }
      s.added = true;
    } else if (s.watched != mask) {
      backend_.modify(fd, mask);
    }
    s.watched = mask;
    s.waiter = &g;
    g.wait_fd = fd;
    if (deadline != Clock::time_point::max()) {
      g.timed = true;
      g.timer = timers_.emplace(deadline, &g);  // a tree node: no system call per timer
    }
    switch_to_hub(g);
    return g.ready;
  }
  // Called on a fiber between two turns of pipelined requests: it runs again after the next
  // wait, behind every fiber whose I/O that wait reports.
  void yield(Green& g) {
    if (stopping_) return;
    yielded_.push_back(&g);
    switch_to_hub(g);
  }

 private:
  struct Slot {
    Green* waiter = nullptr;
    int watched = ev::kNone;
    bool added = false;
  };

  void accept_clients();
  void spawn(UniqueFd fd);
  ctx::fiber run_fiber(Green& g, ctx::fiber&& hub);
  void resume(Green& g);
  void switch_to_hub(Green& g);
  void shut_down();

  // Takes a parked fiber out of the fd table and the timer queue.
  void unpark(Green& g, bool ready) {
    if (g.wait_fd >= 0) slots_[static_cast<std::size_t>(g.wait_fd)].waiter = nullptr;
    g.wait_fd = -1;
    if (g.timed) timers_.erase(g.timer);
    g.timed = false;
    g.ready = ready;
  }
  void wake(Green& g, bool ready) {
    unpark(g, ready);
    ready_.push_back(&g);
  }

  // Before a socket closes: no interest left in epoll, no table entry for a reused number.
  void forget(int fd) {
    if (static_cast<std::size_t>(fd) >= slots_.size()) return;
    if (slots_[static_cast<std::size_t>(fd)].added) backend_.remove(fd);
    slots_[static_cast<std::size_t>(fd)] = Slot{};
  }

  int wait_timeout_ms() const {
    if (!ready_.empty() || !yielded_.empty()) return 0;
    auto until = Clock::now() + kMaxWait;
    if (accept_paused_) until = std::min(until, resume_accept_at_);
    if (!timers_.empty()) until = std::min(until, timers_.begin()->first);
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(until - Clock::now()).count();
    return left > 0 ? static_cast<int>(left) : 0;
  }

  int listen_fd_;
  const ServerOptions& options_;
  ev::EpollBackend backend_;
  std::list<std::unique_ptr<Green>> greens_;         // every live connection
  std::deque<Green*> ready_;                         // fibers to resume, in order
  std::vector<Green*> yielded_;                      // to resume after the next wait
  std::vector<Slot> slots_;                          // by fd, grown on demand
  std::multimap<Clock::time_point, Green*> timers_;  // deadlines of parked fibers
  bool stopping_ = false;
  bool accept_paused_ = false;
  Clock::time_point resume_accept_at_{};
  unsigned long fd_limit_hits_ = 0;
  // The hub's own stack, learnt on the first switch into a fiber (ASan), and its TSan context
  // (used only in sanitizer builds).
  [[maybe_unused]] const void* hub_stack_bottom_ = nullptr;
  [[maybe_unused]] std::size_t hub_stack_size_ = 0;
  [[maybe_unused]] void* asan_hub_fake_stack_ = nullptr;
  [[maybe_unused]] void* tsan_hub_ = nullptr;
};

// The swapped-in wait: where server-threads blocks in poll(2), a fiber parks in the hub.
class HubIo final : public BlockingIo {
 public:
  HubIo(Hub& hub, Green& g) : hub_(hub), green_(g) {}
  bool wait(int fd, short events, Clock::time_point deadline) override {
    return hub_.park(green_, fd, (events & POLLOUT) ? ev::kWritable : ev::kReadable, deadline);
  }
  void yield() override { hub_.yield(green_); }

 private:
  Hub& hub_;
  Green& green_;
};

// ---- switching stacks: hub -> fiber (resume) and fiber -> hub (switch_to_hub) ----------------

void Hub::resume(Green& g) {
#if defined(CMBENCH_FIBERS_ASAN)
  __sanitizer_start_switch_fiber(&asan_hub_fake_stack_, g.stack_bottom, g.stack_size);
#endif
#if defined(CMBENCH_FIBERS_TSAN)
  __tsan_switch_to_fiber(g.tsan_fiber, 0);
#endif
  g.context = std::move(g.context).resume();  // back here when it parks, yields or ends
#if defined(CMBENCH_FIBERS_ASAN)
  __sanitizer_finish_switch_fiber(asan_hub_fake_stack_, nullptr, nullptr);
#endif
  if (!g.context) {  // serve_blocking returned: the fiber is over
#if defined(CMBENCH_FIBERS_TSAN)
    __tsan_destroy_fiber(g.tsan_fiber);
#endif
    forget(g.fd.get());
    greens_.erase(g.self);  // unmaps the stack, closes the socket
  }
}

void Hub::switch_to_hub(Green& g) {
#if defined(CMBENCH_FIBERS_ASAN)
  __sanitizer_start_switch_fiber(&g.asan_fake_stack, hub_stack_bottom_, hub_stack_size_);
#endif
#if defined(CMBENCH_FIBERS_TSAN)
  __tsan_switch_to_fiber(tsan_hub_, 0);
#endif
  g.hub = std::move(g.hub).resume();  // back here when the hub resumes this fiber
#if defined(CMBENCH_FIBERS_ASAN)
  __sanitizer_finish_switch_fiber(g.asan_fake_stack, &hub_stack_bottom_, &hub_stack_size_);
#endif
}

// The body of every fiber: the blocking connection code, on this fiber's stack.
ctx::fiber Hub::run_fiber(Green& g, ctx::fiber&& hub) {
#if defined(CMBENCH_FIBERS_ASAN)
  __sanitizer_finish_switch_fiber(nullptr, &hub_stack_bottom_, &hub_stack_size_);
#endif
  g.hub = std::move(hub);
  {
    HubIo io(*this, g);
    try {
      serve_blocking(g.fd.get(), options_.timeouts, io);
    } catch (const std::exception& e) {  // bad_alloc and the like: this connection only.
      // (Boost's forced_unwind is no std::exception: it passes, as it must.)
      log_error("fibers", std::string("connection failed: ") + e.what());
    }
  }
#if defined(CMBENCH_FIBERS_ASAN)
  __sanitizer_start_switch_fiber(nullptr, hub_stack_bottom_, hub_stack_size_);  // last switch
#endif
#if defined(CMBENCH_FIBERS_TSAN)
  __tsan_switch_to_fiber(tsan_hub_, 0);
#endif
  return std::move(g.hub);
}

void Hub::spawn(UniqueFd fd) {
  auto owned = std::make_unique<Green>();
  Green& g = *owned;
  try {
    g.context = ctx::fiber(std::allocator_arg, GuardedStack(g),
                           [this, &g](ctx::fiber&& hub) { return run_fiber(g, std::move(hub)); });
  } catch (const std::bad_alloc&) {  // no memory for a stack: this client only gets a 503
    log_error("fibers", "cannot allocate a fiber stack");
    reject_connection(std::move(fd), 503);
    return;
  }
  g.fd = std::move(fd);
#if defined(CMBENCH_FIBERS_TSAN)
  g.tsan_fiber = __tsan_create_fiber(0);
#endif
  g.self = greens_.insert(greens_.end(), std::move(owned));
  ready_.push_back(&g);
}

// ---- the hub's loop ------------------------------------------------------------------------

int Hub::run() {
  SignalPipe::watch(SIGTERM);
  SignalPipe::watch(SIGINT);
  if (!backend_.add(listen_fd_, ev::kReadable) || !backend_.add(SignalPipe::fd(), ev::kReadable)) {
    log_error("fibers", "cannot watch the listening socket");
    return 1;
  }
  std::vector<ev::Ready> events;
  while (!stopping_) {
    // Resume the fibers that were ready when this pass began.
    for (std::size_t n = ready_.size(); n > 0; --n) {
      Green* g = ready_.front();
      ready_.pop_front();
      resume(*g);
    }
    if (!backend_.wait(wait_timeout_ms(), events)) {
      log_error("fibers", std::string("epoll_wait: ") + std::strerror(errno));
      return 1;
    }
    if (accept_paused_ && Clock::now() >= resume_accept_at_)
      accept_paused_ = !backend_.add(listen_fd_, ev::kReadable);
    for (const ev::Ready& e : events) {
      if (e.fd == SignalPipe::fd()) {
        if (SignalPipe::drain_stop()) stopping_ = true;
      } else if (e.fd == listen_fd_) {
        if (!accept_paused_) accept_clients();
      } else if (static_cast<std::size_t>(e.fd) < slots_.size()) {
        Slot& s = slots_[static_cast<std::size_t>(e.fd)];
        if (s.waiter) {
          wake(*s.waiter, true);
        } else if (s.added && s.watched != ev::kNone) {
          backend_.modify(e.fd, ev::kNone);  // nobody waits (queued to run): level-triggered
          s.watched = ev::kNone;
        }
      }
    }
    const auto now = Clock::now();
    while (!timers_.empty() && timers_.begin()->first <= now) wake(*timers_.begin()->second, false);
    ready_.insert(ready_.end(), yielded_.begin(), yielded_.end());
    yielded_.clear();
  }
  shut_down();
  return 0;
}

void Hub::accept_clients() {
  for (int i = 0; i < kAcceptBatch; ++i) {
    AcceptResult r = accept_client(listen_fd_, true);
    if (r.status == AcceptStatus::WouldBlock) return;
    if (r.status == AcceptStatus::Failed) continue;
    if (r.status == AcceptStatus::FdLimit) {
      // Out of descriptors: stop watching the listener for 100 ms instead of spinning on it.
      if (fd_limit_hits_++ % 100 == 0)
        log_error("fibers", std::string("accept: ") + std::strerror(r.error) +
                                "; pausing accepts for 100 ms");
      backend_.remove(listen_fd_);
      accept_paused_ = true;
      resume_accept_at_ = Clock::now() + kAcceptPause;
      return;
    }
    if (greens_.size() >= options_.max_clients) {
      reject_connection(std::move(r.fd), 503);  // --max-clients bounds the fibers
      continue;
    }
    spawn(std::move(r.fd));
  }
}

// Every socket is shut down, so each fiber's next recv sees EOF and its next send fails:
// resumed once, it returns from serve_blocking (park() no longer parks while stopping_).
void Hub::shut_down() {
  for (const auto& g : greens_) ::shutdown(g->fd.get(), SHUT_RDWR);
  for (int pass = 0; pass < 3 && !greens_.empty(); ++pass) {
    std::vector<Green*> all;
    for (const auto& g : greens_) all.push_back(g.get());
    for (Green* g : all) {  // resume() erases the ended ones (never one seen later)
      unpark(*g, true);
      resume(*g);
    }
  }
  // Anything left is unwound by ~fiber (Boost's forced_unwind) when greens_ is destroyed.
}

int serve(UniqueFd listener, const ServerOptions& options) {
  auto hub = std::make_unique<Hub>(listener.get(), options);
  return hub->run();
}

}  // namespace

int main(int argc, char** argv) {
  ServerSpec spec;
  spec.model = "fibers";
  spec.description = "green threads: Boost.Context fibers (64 KiB guarded stacks) on an epoll hub, "
                     "running serve_blocking";
  spec.serve = serve;
  return run_server(spec, argc, argv);
}
