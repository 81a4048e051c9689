// server-fork: one process per connection, blocking sockets (the classic inetd/Apache-prefork
// shape without the pre-).
//
// The parent only accepts and forks; each child serves one client with the plain blocking loop
// (common/blocking_connection.cpp) and exits. Isolation is total — a crash or a blocking
// handler affects one client — and so is the cost: a fork per connection (page tables copied,
// copy-on-write faults later) and a process per live client. The parent reaps children on
// SIGCHLD (no zombies), and on SIGTERM terminates them before exiting; each child also asks
// the kernel to kill it if the parent dies first. Live children are counted: past
// --max-clients a connection gets 503 instead of a process, so a connection flood cannot use
// up the machine's pid_max. A failed fork costs that one client a 503. Deadlines (idle, header,
// lingering close) are serve_blocking's.
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <thread>
#include <unordered_set>

#include "blocking_connection.hpp"
#include "net.hpp"
#include "server_main.hpp"
#include "signals.hpp"

namespace {

using namespace cmbench;

// The live children; a child leaves the set when it is reaped.
class Children {
 public:
  void add(pid_t pid) { pids_.insert(pid); }
  std::size_t size() const noexcept { return pids_.size(); }
  // Collects every child that has exited, without blocking.
  void reap() {
    pid_t pid;
    int status;
    while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) pids_.erase(pid);
  }
  // SIGTERM to all, a grace period, then SIGKILL for stragglers: none is left behind.
  void terminate_all() {
    for (pid_t pid : pids_) ::kill(pid, SIGTERM);
    for (int i = 0; i < 100 && !pids_.empty(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      reap();
    }
    for (pid_t pid : pids_) ::kill(pid, SIGKILL);
    while (!pids_.empty()) {
      const pid_t pid = ::waitpid(-1, nullptr, 0);
      if (pid < 0 && errno == ECHILD) break;
      if (pid > 0) pids_.erase(pid);
    }
  }

 private:
  std::unordered_set<pid_t> pids_;
};

// In the child: serve one client, then end the process (never return into the accept loop).
[[noreturn]] void run_child(UniqueFd listener, UniqueFd client, pid_t parent,
                            const Timeouts& timeouts) {
  SignalPipe::reset_in_child();            // default SIGTERM: the parent can end us
  ::prctl(PR_SET_PDEATHSIG, SIGTERM);      // and so does the parent's death
  if (::getppid() != parent) ::_exit(0);   // it died before prctl took effect
  listener.reset();                        // only the parent accepts
  PollIo io;
  serve_blocking(client.get(), timeouts, io);
  client.reset();
  ::_exit(0);
}

int serve(UniqueFd listener, const ServerOptions& options) {
  SignalPipe::watch(SIGTERM);
  SignalPipe::watch(SIGINT);
  SignalPipe::watch(SIGCHLD);
  const pid_t self = ::getpid();
  Children children;
  bool back_off = false;
  while (true) {
    const Wake wake = wait_for_client(listener.get(), back_off);
    back_off = false;
    children.reap();  // any wake-up may carry a SIGCHLD
    if (wake == Wake::Stop) break;
    if (wake != Wake::Listener) continue;

    AcceptResult r = accept_client(listener.get(), true);  // serve_blocking waits in poll()
    if (r.status == AcceptStatus::FdLimit) back_off = true;
    if (r.status != AcceptStatus::Accepted) continue;
    if (children.size() >= options.max_clients) {
      reject_connection(std::move(r.fd), 503);  // --max-clients: no process past the cap
      continue;
    }

    const pid_t pid = ::fork();
    if (pid == 0) run_child(std::move(listener), std::move(r.fd), self, options.timeouts);
    if (pid < 0) {
      log_error("fork", std::string("fork: ") + std::strerror(errno));
      reject_connection(std::move(r.fd), 503);
      continue;
    }
    children.add(pid);  // the parent's copy of the client socket closes here
  }
  listener.reset();
  children.terminate_all();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  ServerSpec spec;
  spec.model = "fork";
  spec.description = "one process per connection (fork), blocking sockets";
  spec.serve = serve;
  return run_server(spec, argc, argv);
}
