// server-select: one thread, non-blocking sockets, readiness from select(2).
//
// The event loop and connection state machine are shared (common/event_loop.cpp); this file is
// only the select backend, after redis's ae_select.c. select takes bit sets indexed by fd, so
// every wait copies the sets into the kernel and every wake-up scans fds 0..maxfd: cost grows
// with the highest fd, not with the number of ready ones. An fd >= FD_SETSIZE (1024) cannot be
// put in an fd_set at all (FD_SET would write out of bounds): such a client gets 503 and is
// closed, and the others keep being served.
#include <sys/select.h>

#include <cerrno>
#include <set>

#include "event_loop.hpp"
#include "server_main.hpp"

namespace {

using namespace cmbench;

class SelectBackend final : public ev::Backend {
 public:
  SelectBackend() {
    FD_ZERO(&read_set_);
    FD_ZERO(&write_set_);
  }
  std::string_view name() const override { return "select"; }

  bool add(int fd, int mask) override {
    if (fd < 0 || fd >= FD_SETSIZE) return false;
    fds_.insert(fd);
    modify(fd, mask);
    return true;
  }
  void modify(int fd, int mask) override {
    if (mask & ev::kReadable) FD_SET(fd, &read_set_); else FD_CLR(fd, &read_set_);
    if (mask & ev::kWritable) FD_SET(fd, &write_set_); else FD_CLR(fd, &write_set_);
  }
  void remove(int fd) override {
    if (fds_.erase(fd) == 0) return;
    FD_CLR(fd, &read_set_);
    FD_CLR(fd, &write_set_);
  }

  bool wait(int timeout_ms, std::vector<ev::Ready>& ready) override {
    ready.clear();
    // select overwrites its arguments, so it gets copies of the interest sets every time.
    fd_set readable = read_set_, writable = write_set_;
    timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    const int max_fd = fds_.empty() ? -1 : *fds_.rbegin();
    const int n = ::select(max_fd + 1, &readable, &writable, nullptr, timeout_ms < 0 ? nullptr : &tv);
    if (n < 0) return errno == EINTR;
    // The result is the same bit sets: find the ready fds by testing every watched one.
    for (int fd : fds_) {
      int mask = ev::kNone;
      if (FD_ISSET(fd, &readable)) mask |= ev::kReadable;
      if (FD_ISSET(fd, &writable)) mask |= ev::kWritable;
      if (mask != ev::kNone) ready.push_back({fd, mask});
    }
    return true;
  }

 private:
  fd_set read_set_, write_set_;  // what we want to hear about, kept between calls
  std::set<int> fds_;            // watched fds, ordered: the largest gives select's nfds
};

}  // namespace

int main(int argc, char** argv) {
  ServerSpec spec;
  spec.model = "select";
  spec.description = "one thread, non-blocking sockets, select(2) readiness (fds < FD_SETSIZE)";
  spec.serve = [](UniqueFd listener, const ServerOptions& options) {
    SelectBackend backend;
    return ev::run_event_loop("select", std::move(listener), backend, options);
  };
  return run_server(spec, argc, argv);
}
