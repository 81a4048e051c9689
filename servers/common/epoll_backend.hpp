// The epoll readiness backend (docs/architecture.md §7), after redis's ae_epoll.c: the four functions of
// ev::Backend over epoll(7). server-epoll runs the shared event loop on it; the coroutine
// runtime (servers/coro) and the green-thread hub (servers/fibers) park their waiters on it.
//
// The interest set lives in the kernel (epoll_ctl changes it once per change, not per wait), and
// epoll_wait returns only the ready fds: cost grows with activity, not with the number of idle
// connections. Level-triggered, so a caller may read once per wake-up and come back later
// without losing readiness.
//
// `exclusive_fd` (server-prefork): that one fd (the listening socket every worker process
// shares) is added with EPOLLEXCLUSIVE, so a new connection wakes one waiting worker instead of
// all of them (the thundering herd). The event loop only ever adds and removes the listener,
// never modifies it, which is what EPOLLEXCLUSIVE allows.
#pragma once

#include <sys/epoll.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "event_loop.hpp"
#include "unique_fd.hpp"

namespace cmbench::ev {

class EpollBackend final : public Backend {
 public:
  static constexpr int kMaxEvents = 1024;  // ready fds taken per epoll_wait; the rest wait

  explicit EpollBackend(int exclusive_fd = -1)
      : epfd_(::epoll_create1(EPOLL_CLOEXEC)), events_(kMaxEvents), exclusive_fd_(exclusive_fd) {
    if (!epfd_) throw std::runtime_error(std::string("epoll_create1: ") + std::strerror(errno));
  }
  std::string_view name() const override { return "epoll"; }

  bool add(int fd, int mask) override { return ctl(EPOLL_CTL_ADD, fd, mask); }
  void modify(int fd, int mask) override { ctl(EPOLL_CTL_MOD, fd, mask); }
  void remove(int fd) override { ctl(EPOLL_CTL_DEL, fd, kNone); }

  bool wait(int timeout_ms, std::vector<Ready>& ready) override {
    ready.clear();
    const int n = ::epoll_wait(epfd_.get(), events_.data(), kMaxEvents, timeout_ms);
    if (n < 0) return errno == EINTR;
    // Only the ready fds come back: no scan over idle connections.
    for (int i = 0; i < n; ++i) {
      const epoll_event& e = events_[static_cast<std::size_t>(i)];
      int mask = kNone;
      if (e.events & (EPOLLIN | EPOLLERR | EPOLLHUP)) mask |= kReadable;
      if (e.events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) mask |= kWritable;
      ready.push_back({e.data.fd, mask});
    }
    return true;
  }

 private:
  bool ctl(int op, int fd, int mask) {
    epoll_event e{};
    e.events = ((mask & kReadable) ? EPOLLIN : 0u) | ((mask & kWritable) ? EPOLLOUT : 0u);
    if (op == EPOLL_CTL_ADD && fd == exclusive_fd_) e.events |= EPOLLEXCLUSIVE;
    e.data.fd = fd;
    return ::epoll_ctl(epfd_.get(), op, fd, &e) == 0;
  }

  UniqueFd epfd_;
  std::vector<epoll_event> events_;
  int exclusive_fd_;
};

}  // namespace cmbench::ev
