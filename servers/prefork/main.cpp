// server-prefork: nginx's shape — N worker processes forked at start, each running the shared
// epoll event loop over the one listening socket they all inherit.
//
// Who owns what: the parent binds (run_server), forks `--workers` children (default: the CPUs
// this process may run on) and then only supervises: it never accepts. Each worker is a
// complete single-threaded server (common/event_loop.cpp with the epoll backend): it accepts
// from the shared listener, owns the connections it accepted, and applies the deadlines and
// --max-clients to them (so the cap is per worker, like nginx's worker_connections). The
// listener is in every worker's epoll set with EPOLLEXCLUSIVE, so one new connection wakes one
// worker rather than all of them. A worker that dies (a crash, kill -9) costs only its own
// connections: the parent reaps it on SIGCHLD and forks a replacement (after a second if the
// worker died within a second of starting, so a worker that cannot start does not spin the
// parent). On SIGTERM the parent passes SIGTERM to every worker, waits for them, and SIGKILLs
// any still running at the deadline (a handler sleeping in /sleep blocks its worker's loop):
// no child is left behind, and each worker also asks the kernel to kill it if the parent dies.
// Limits: a blocking handler still freezes its whole worker (all its connections), exactly as
// in server-epoll; workers share nothing but the listener, so a busy worker's clients are not
// moved to an idle one. What N workers buy needs N cores: pinned to one CPU, this is epoll.
#include <poll.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <thread>
#include <vector>

#include "epoll_backend.hpp"
#include "event_loop.hpp"
#include "server_main.hpp"
#include "signals.hpp"

namespace {

using namespace cmbench;
using namespace std::chrono_literals;

constexpr auto kStopGrace = 1200ms;    // SIGTERM to SIGKILL: leaves docs/architecture.md §3's 2 s some room
constexpr auto kQuickDeath = 1s;       // a worker that dies this soon after starting ...
constexpr auto kRestartDelay = 1s;     // ... is restarted after this pause

// In the child: one event loop over the inherited listener, then the end of the process (a
// forked worker never returns into the parent's supervision loop).
[[noreturn]] void run_worker(int listen_fd, pid_t parent, const ServerOptions& options) {
  SignalPipe::reset_in_child();  // the parent's pipe and handlers are not ours
  block_stop_signals();          // until the loop watches SIGTERM itself
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != parent) ::_exit(0);  // the parent died before prctl took effect
  int status = 1;
  try {
    ev::EpollBackend backend(listen_fd);  // the shared listener is added EPOLLEXCLUSIVE
    status = ev::run_event_loop("prefork", UniqueFd(listen_fd), backend, options);
  } catch (const std::exception& e) {
    log_error("prefork", std::string("worker: ") + e.what());
  }
  ::_exit(status);
}

// The parent's view of its workers: one slot per worker, a pid while it runs.
class Supervisor {
 public:
  Supervisor(int listen_fd, const ServerOptions& options)
      : listen_fd_(listen_fd), options_(options), slots_(static_cast<std::size_t>(options.workers)) {}

  // Starts every slot that is empty and due.
  void start_due() {
    const auto now = Clock::now();
    for (std::size_t i = 0; i < slots_.size(); ++i) {
      Slot& s = slots_[i];
      if (s.pid != 0 || now < s.restart_at) continue;
      const pid_t pid = ::fork();
      if (pid == 0) run_worker(listen_fd_, parent_, options_);
      if (pid < 0) {
        log_error("prefork", std::string("fork: ") + std::strerror(errno) + "; retrying in 1 s");
        s.restart_at = now + kRestartDelay;
        continue;
      }
      s.pid = pid;
      s.started = now;
    }
  }

  // Collects every worker that exited and schedules its replacement.
  void reap() {
    int status = 0;
    pid_t pid;
    while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) {
      auto it = std::find_if(slots_.begin(), slots_.end(), [pid](const Slot& s) { return s.pid == pid; });
      if (it == slots_.end()) continue;
      it->pid = 0;
      const auto now = Clock::now();
      it->restart_at = now - it->started < kQuickDeath ? now + kRestartDelay : now;
      if (!stopping_) {
        const std::string how = WIFSIGNALED(status)
                                    ? "killed by signal " + std::to_string(WTERMSIG(status))
                                    : "exited with status " + std::to_string(WEXITSTATUS(status));
        log_error("prefork", "worker " + std::to_string(it - slots_.begin()) + " (pid " +
                                 std::to_string(pid) + ") " + how + "; starting a new one");
      }
    }
  }

  // How long the parent may sleep: until the next restart is due, at most a second.
  int wait_ms() const {
    auto until = Clock::now() + 1s;
    for (const Slot& s : slots_)
      if (s.pid == 0) until = std::min(until, s.restart_at);
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(until - Clock::now()).count();
    return left > 0 ? static_cast<int>(left) : 0;
  }

  // SIGTERM to all, a grace period, then SIGKILL for stragglers: none is left behind.
  void stop_all() {
    stopping_ = true;
    for (const Slot& s : slots_)
      if (s.pid != 0) ::kill(s.pid, SIGTERM);
    const auto deadline = Clock::now() + kStopGrace;
    while (running() && Clock::now() < deadline) {
      std::this_thread::sleep_for(10ms);
      reap();
    }
    for (const Slot& s : slots_)
      if (s.pid != 0) ::kill(s.pid, SIGKILL);
    while (running()) {
      const pid_t pid = ::waitpid(-1, nullptr, 0);
      if (pid < 0 && errno == ECHILD) break;
      for (Slot& s : slots_)
        if (s.pid == pid) s.pid = 0;
    }
  }

 private:
  struct Slot {
    pid_t pid = 0;
    Clock::time_point started{}, restart_at{};
  };
  bool running() const {
    return std::any_of(slots_.begin(), slots_.end(), [](const Slot& s) { return s.pid != 0; });
  }

  int listen_fd_;
  const ServerOptions& options_;
  std::vector<Slot> slots_;
  pid_t parent_ = ::getpid();
  bool stopping_ = false;
};

int serve(UniqueFd listener, const ServerOptions& options) {
  SignalPipe::watch(SIGCHLD);  // a worker died: the pipe wakes the parent to replace it
  SignalPipe::watch(SIGTERM);
  SignalPipe::watch(SIGINT);
  Supervisor workers(listener.get(), options);
  while (true) {
    workers.start_due();
    pollfd p{SignalPipe::fd(), POLLIN, 0};
    if (::poll(&p, 1, workers.wait_ms()) < 0 && errno != EINTR) {
      log_error("prefork", std::string("poll: ") + std::strerror(errno));
    }
    const bool stop = SignalPipe::drain_stop();
    workers.reap();
    if (stop) break;
  }
  workers.stop_all();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  ServerSpec spec;
  spec.model = "prefork";
  spec.description =
      "N pre-forked worker processes, one epoll loop each over a shared listener (EPOLLEXCLUSIVE)";
  spec.workers = {WorkersFlag::Default::Cpus, 0, "worker processes"};
  spec.serve = serve;
  return run_server(spec, argc, argv);
}
