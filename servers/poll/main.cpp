// server-poll: one thread, non-blocking sockets, readiness from poll(2).
//
// The event loop and connection state machine are shared (common/event_loop.cpp); this file is
// only the poll backend. poll takes an array of {fd, events} instead of select's bit sets, so
// there is no FD_SETSIZE limit, but like select every call hands the whole array to the kernel
// and every wake-up scans all of it: cost grows with the number of connections, idle or not.
#include <poll.h>

#include <cerrno>
#include <unordered_map>

#include "event_loop.hpp"
#include "server_main.hpp"

namespace {

using namespace cmbench;

short to_poll_events(int mask) {
  return static_cast<short>(((mask & ev::kReadable) ? POLLIN : 0) |
                            ((mask & ev::kWritable) ? POLLOUT : 0));
}

class PollBackend final : public ev::Backend {
 public:
  std::string_view name() const override { return "poll"; }

  bool add(int fd, int mask) override {
    index_[fd] = pollfds_.size();
    pollfds_.push_back({fd, to_poll_events(mask), 0});
    return true;
  }
  void modify(int fd, int mask) override {
    if (auto it = index_.find(fd); it != index_.end()) pollfds_[it->second].events = to_poll_events(mask);
  }
  void remove(int fd) override {
    auto it = index_.find(fd);
    if (it == index_.end()) return;
    // Keep the array dense: move the last entry into the hole.
    const std::size_t hole = it->second;
    index_.erase(it);
    if (hole != pollfds_.size() - 1) {
      pollfds_[hole] = pollfds_.back();
      index_[pollfds_[hole].fd] = hole;
    }
    pollfds_.pop_back();
  }

  bool wait(int timeout_ms, std::vector<ev::Ready>& ready) override {
    ready.clear();
    const int n = ::poll(pollfds_.data(), pollfds_.size(), timeout_ms);
    if (n < 0) return errno == EINTR;
    // The kernel marked revents in place: walk the whole array to find them.
    for (const pollfd& p : pollfds_) {
      if (p.revents == 0) continue;
      int mask = ev::kNone;
      if (p.revents & (POLLIN | POLLERR | POLLHUP | POLLNVAL)) mask |= ev::kReadable;
      if (p.revents & (POLLOUT | POLLERR | POLLHUP | POLLNVAL)) mask |= ev::kWritable;
      ready.push_back({p.fd, mask});
    }
    return true;
  }

 private:
  std::vector<pollfd> pollfds_;                  // the array handed to poll(), dense
  std::unordered_map<int, std::size_t> index_;   // fd -> its slot in pollfds_
};

}  // namespace

int main(int argc, char** argv) {
  ServerSpec spec;
  spec.model = "poll";
  spec.description = "one thread, non-blocking sockets, poll(2) readiness";
  spec.serve = [](UniqueFd listener, const ServerOptions& options) {
    PollBackend backend;
    return ev::run_event_loop("poll", std::move(listener), backend, options);
  };
  return run_server(spec, argc, argv);
}
