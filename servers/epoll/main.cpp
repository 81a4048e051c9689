// server-epoll: one thread, non-blocking sockets, readiness from epoll(7).
//
// The event loop and connection state machine are shared (common/event_loop.cpp); the model is
// the epoll backend, after redis's ae_epoll.c, in common/epoll_backend.hpp (the coroutine and
// green-thread models park on the same backend). The interest set lives in the kernel
// (epoll_ctl changes it once per change, not per wait), and epoll_wait returns only the ready
// fds: cost grows with activity, not with the number of idle connections. Level-triggered, so
// the loop may read once per wake-up and come back later without losing readiness.
#include "epoll_backend.hpp"
#include "event_loop.hpp"
#include "server_main.hpp"

int main(int argc, char** argv) {
  using namespace cmbench;
  ServerSpec spec;
  spec.model = "epoll";
  spec.description = "one thread, non-blocking sockets, epoll(7) readiness (level-triggered)";
  spec.serve = [](UniqueFd listener, const ServerOptions& options) {
    ev::EpollBackend backend;
    return ev::run_event_loop("epoll", std::move(listener), backend, options);
  };
  return run_server(spec, argc, argv);
}
