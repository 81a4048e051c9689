// server-epoll: one thread, non-blocking sockets, readiness from epoll(7).
//
// The event loop and connection state machine are shared (common/event_loop.cpp); this file is
// only the epoll backend, after redis's ae_epoll.c. The interest set lives in the kernel
// (epoll_ctl changes it once per change, not per wait), and epoll_wait returns only the ready
// fds: cost grows with activity, not with the number of idle connections. Level-triggered, so
// the loop may read once per wake-up and come back later without losing readiness.
#include <sys/epoll.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "event_loop.hpp"
#include "server_main.hpp"

namespace {

using namespace cmbench;

constexpr int kMaxEvents = 1024;  // ready fds taken per epoll_wait; the rest wait for the next

std::uint32_t to_epoll_events(int mask) {
  return ((mask & ev::kReadable) ? EPOLLIN : 0u) | ((mask & ev::kWritable) ? EPOLLOUT : 0u);
}

class EpollBackend final : public ev::Backend {
 public:
  EpollBackend() : epfd_(::epoll_create1(EPOLL_CLOEXEC)), events_(kMaxEvents) {
    if (!epfd_) throw std::runtime_error(std::string("epoll_create1: ") + std::strerror(errno));
  }
  std::string_view name() const override { return "epoll"; }

  bool add(int fd, int mask) override { return ctl(EPOLL_CTL_ADD, fd, mask); }
  void modify(int fd, int mask) override { ctl(EPOLL_CTL_MOD, fd, mask); }
  void remove(int fd) override { ctl(EPOLL_CTL_DEL, fd, ev::kNone); }

  bool wait(int timeout_ms, std::vector<ev::Ready>& ready) override {
    ready.clear();
    const int n = ::epoll_wait(epfd_.get(), events_.data(), kMaxEvents, timeout_ms);
    if (n < 0) return errno == EINTR;
    // Only the ready fds come back: no scan over idle connections.
    for (int i = 0; i < n; ++i) {
      const epoll_event& e = events_[static_cast<std::size_t>(i)];
      int mask = ev::kNone;
      if (e.events & (EPOLLIN | EPOLLERR | EPOLLHUP)) mask |= ev::kReadable;
      if (e.events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) mask |= ev::kWritable;
      ready.push_back({e.data.fd, mask});
    }
    return true;
  }

 private:
  bool ctl(int op, int fd, int mask) {
    epoll_event e{};
    e.events = to_epoll_events(mask);
    e.data.fd = fd;
    return ::epoll_ctl(epfd_.get(), op, fd, &e) == 0;
  }

  UniqueFd epfd_;
  std::vector<epoll_event> events_;
};

}  // namespace

int main(int argc, char** argv) {
  ServerSpec spec;
  spec.model = "epoll";
  spec.description = "one thread, non-blocking sockets, epoll(7) readiness (level-triggered)";
  spec.serve = [](UniqueFd listener, const ServerOptions& options) {
    EpollBackend backend;
    return ev::run_event_loop("epoll", std::move(listener), backend, options);
  };
  return run_server(spec, argc, argv);
}
