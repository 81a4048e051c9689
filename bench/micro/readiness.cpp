// The cost of one readiness wait with 1 ready fd among N watched ones.
//
// Like libevent's test/bench.c, with socketpairs: N watched fds, one of which has an unread
// byte, so every wait returns at once with exactly one ready fd. What is left is the
// mechanism's own cost per wake-up, including what a loop must do to find the ready fd: select
// copies its fd_set in and out and the loop scans the bits; poll copies N pollfds and the loop
// scans their revents; epoll keeps the interest set in the kernel and hands back only the ready
// fd. Both ends of every pair are watched (an end is readable only when its peer wrote to it),
// so N watched fds cost N descriptors, and they are the low, contiguous fds select can take.
#include <benchmark/benchmark.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "unique_fd.hpp"

namespace {

using cmbench::UniqueFd;

class SocketPairs {
 public:
  explicit SocketPairs(int n) {
    const auto want = static_cast<std::size_t>(n);
    ends_.reserve(want + 1);
    while (ends_.size() < want) {
      int sv[2];
      if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) {
        error_ = std::string("socketpair: ") + std::strerror(errno) + " after " +
                 std::to_string(ends_.size()) + " fds (raise ulimit -n)";
        return;
      }
      ends_.emplace_back(sv[0]);
      ends_.emplace_back(sv[1]);
    }
    if (n > 0) {
      // The ready fd is the last watched one; its peer (pair partner) writes one byte to it.
      const std::size_t ready = want - 1;
      const std::size_t peer = ready ^ 1U;
      const char byte = 'x';
      if (::write(ends_[peer].get(), &byte, 1) != 1) error_ = "write to the ready pair failed";
    }
    watched_ = n;
  }
  bool ok() const noexcept { return error_.empty(); }
  const std::string& error() const noexcept { return error_; }
  // The first n ends: with an odd n the last pair's second end is open but not watched.
  std::vector<int> watched() const {
    std::vector<int> fds;
    for (int i = 0; i < watched_; ++i) fds.push_back(ends_[static_cast<std::size_t>(i)].get());
    return fds;
  }

 private:
  std::vector<UniqueFd> ends_;
  int watched_ = 0;
  std::string error_;
};

void finish(benchmark::State& state) {
  state.SetItemsProcessed(state.iterations());
  state.counters["nfds"] = static_cast<double>(state.range(0));
}

void WaitSelect(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  SocketPairs pairs(n);
  if (!pairs.ok()) return state.SkipWithError(pairs.error().c_str());
  const std::vector<int> watched = pairs.watched();
  int max_fd = -1;
  for (int fd : watched) max_fd = fd > max_fd ? fd : max_fd;
  if (max_fd >= FD_SETSIZE) return state.SkipWithError("watched fds reach FD_SETSIZE");
  fd_set master;
  FD_ZERO(&master);
  for (int fd : watched) FD_SET(fd, &master);
  for (auto _ : state) {
    fd_set readable = master;  // select overwrites its argument: every loop copies the set
    timeval zero{0, 0};
    const int ready = ::select(max_fd + 1, &readable, nullptr, nullptr, &zero);
    int found = -1;
    for (int fd = 0; fd <= max_fd; ++fd) {  // and scans it for the ready bits
      if (FD_ISSET(fd, &readable)) found = fd;
    }
    if (ready != 1 || found < 0) return state.SkipWithError("select did not report one ready fd");
    benchmark::DoNotOptimize(found);
  }
  finish(state);
}

void WaitPoll(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  SocketPairs pairs(n);
  if (!pairs.ok()) return state.SkipWithError(pairs.error().c_str());
  std::vector<pollfd> fds;
  for (int fd : pairs.watched()) fds.push_back({fd, POLLIN, 0});
  for (auto _ : state) {
    const int ready = ::poll(fds.data(), fds.size(), 0);
    int found = -1;
    for (const auto& p : fds) {  // the loop scans every entry's revents
      if (p.revents != 0) found = p.fd;
    }
    if (ready != 1 || found < 0) return state.SkipWithError("poll did not report one ready fd");
    benchmark::DoNotOptimize(found);
  }
  finish(state);
}

void WaitEpoll(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  SocketPairs pairs(n);
  if (!pairs.ok()) return state.SkipWithError(pairs.error().c_str());
  UniqueFd ep(::epoll_create1(EPOLL_CLOEXEC));
  if (!ep) return state.SkipWithError("epoll_create1 failed");
  for (int fd : pairs.watched()) {
    epoll_event ev{};
    ev.events = EPOLLIN;  // level-triggered: the unread byte keeps it ready
    ev.data.fd = fd;
    if (::epoll_ctl(ep.get(), EPOLL_CTL_ADD, fd, &ev) != 0) {
      return state.SkipWithError("epoll_ctl failed");
    }
  }
  std::array<epoll_event, 64> events{};
  for (auto _ : state) {
    const int ready = ::epoll_wait(ep.get(), events.data(), static_cast<int>(events.size()), 0);
    if (ready != 1) return state.SkipWithError("epoll_wait did not report one ready fd");
    const int fd = events[0].data.fd;  // packed struct: copy before taking a reference
    benchmark::DoNotOptimize(fd);
  }
  finish(state);
}

// select cannot watch an fd >= FD_SETSIZE (1024): with stdio and the benchmark's own files
// open, 1000 watched fds is as far as it goes.
BENCHMARK(WaitSelect)->Name("wait/select")->Arg(1)->Arg(10)->Arg(100)->Arg(1000);
BENCHMARK(WaitPoll)->Name("wait/poll")->Arg(1)->Arg(10)->Arg(100)->Arg(1000)->Arg(10000);
BENCHMARK(WaitEpoll)->Name("wait/epoll")->Arg(1)->Arg(10)->Arg(100)->Arg(1000)->Arg(10000);

}  // namespace
