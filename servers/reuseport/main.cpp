// server-reuseport: one epoll event loop per thread, each with its own listening socket bound
// to the same port with SO_REUSEPORT, so the kernel spreads new connections over the loops
// (the shape of modern many-core servers: a reactor per core, nothing shared between them).
//
// Who owns what: run_server binds the first listener (with SO_REUSEPORT set before bind, so
// the others may join it); this file binds `--workers - 1` more on the port that one got and
// starts a thread per listener. Each thread runs the shared event loop (common/event_loop.cpp,
// epoll backend) over its own listener and owns the connections it accepted, with their
// deadlines and --max-clients (per worker, docs/architecture.md §3): no locks, no shared connection state.
// The main thread only waits for SIGTERM/SIGINT and then writes one eventfd that every loop
// watches (and never reads), so all of them stop at once, close their connections and are
// joined; a loop stuck in a sleeping handler past the deadline is left to end with the process
// (what it uses is shared-owned, so nothing it touches is freed under it).
// Limits: the kernel picks the listener by a hash of the connection's addresses, not by load,
// so one loop can hold the busy clients while another idles; a blocking handler freezes its
// loop's connections, as in server-epoll. What N loops buy needs N cores: with one CPU, this
// is epoll with extra threads.
#include <sys/eventfd.h>


#include <cerrno>
#include <csignal>
#include <cstdint>
#include <chrono>
#include <cstring>
#include <exception>
#include <memory>
#include <stdexcept>
#include <vector>

#include "crew.hpp"
#include "epoll_backend.hpp"
#include "event_loop.hpp"
#include "net.hpp"
#include "server_main.hpp"
#include "signals.hpp"

namespace {

using namespace cmbench;

constexpr auto kStopGrace = std::chrono::milliseconds(1200);  // docs/architecture.md §3: exit within 2 s, with room

// What the loop threads share with the main thread. Held by shared_ptr: a thread still in a
// handler at the deadline keeps it alive until the process ends.
struct Shared {
  explicit Shared(const ServerOptions& o) : options(o), stop(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
    if (!stop) throw std::runtime_error(std::string("eventfd: ") + std::strerror(errno));
  }
  const ServerOptions options;
  const UniqueFd stop;  // readable once written: every loop's stop_fd
};

// The port the first listener actually got (it may have been --port 0).
std::uint16_t bound_port(int fd) {
  const std::string endpoint = local_endpoint(fd);
  return static_cast<std::uint16_t>(std::stoi(endpoint.substr(endpoint.rfind(':') + 1)));
}

int serve(UniqueFd first, const ServerOptions& options) {
  // Stop signals stay blocked in the loop threads (they inherit this thread's mask): only the
  // main thread takes them, through the pipe.
  std::vector<UniqueFd> listeners;
  listeners.push_back(std::move(first));
  const std::uint16_t port = bound_port(listeners.front().get());
  for (int i = 1; i < options.workers; ++i) {
    try {
      listeners.push_back(listen_tcp(options.host, port, options.backlog, true, true));
    } catch (const std::exception& e) {
      log_error("reuseport", std::string("listener ") + std::to_string(i) + ": " + e.what());
      return 1;
    }
  }
  auto shared = std::make_shared<Shared>(options);

  Crew crew;
  for (auto& listener : listeners) {
    crew.spawn([shared, fd = std::move(listener)]() mutable {
      try {
        ev::EpollBackend backend;
        ev::run_event_loop("reuseport", std::move(fd), backend, shared->options,
                           {shared->stop.get(), nullptr});
      } catch (const std::exception& e) {  // e.g. epoll_create1 failed: this loop only
        log_error("reuseport", e.what());
      }
    });
  }
  if (const int err = SignalPipe::wait_for_stop(); err != 0) {
    log_error("reuseport", std::string("poll: ") + std::strerror(err));
  }
  const std::uint64_t one = 1;
  [[maybe_unused]] const auto n = ::write(shared->stop.get(), &one, sizeof one);  // stays readable
  crew.finish(kStopGrace);  // a loop still in a handler is left to end with the process
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  ServerSpec spec;
  spec.model = "reuseport";
  spec.description = "N threads, one epoll loop and one SO_REUSEPORT listener each";
  spec.workers = {WorkersFlag::Default::Cpus, 0, "event-loop threads"};
  spec.reuse_port = true;
  spec.serve = serve;
  return run_server(spec, argc, argv);
}
