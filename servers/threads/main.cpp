// server-threads: one thread per connection, blocking sockets.
//
// The main thread only accepts; each client gets its own thread that runs the plain blocking
// loop (common/blocking_connection.cpp: recv, handle, send, repeat), so a handler that blocks
// stalls only its own client. The price is a thread per connection: a stack (8 MiB reserved,
// tens of KiB touched) plus kernel scheduling state, and a thread creation per new client.
// Threads are detached but tracked: a registry of the live connections bounds them
// (--max-clients: past it a client gets 503, not a thread, so a flood cannot reach the
// machine's threads-max) and lets SIGTERM wake the blocked ones. Shutdown then waits up to a
// second for the threads to end; one still inside a handler (a /sleep) after that ends with
// the process, within the 2 s of docs/architecture.md §3. That is safe because a thread touches only what it owns, the
// registry (shared ownership, so it outlives main) and constant data. Deadlines (idle, header,
// lingering close) are serve_blocking's. Thread creation failure costs that one client a 503.
#include <sys/socket.h>

#include <chrono>
#include <condition_variable>
#include <csignal>
#include <memory>
#include <mutex>
#include <system_error>
#include <thread>
#include <unordered_set>

#include "blocking_connection.hpp"
#include "net.hpp"
#include "server_main.hpp"
#include "signals.hpp"

namespace {

using namespace cmbench;

// The sockets of running connection threads: one per thread, so its size is the number of
// connection threads, and shutdown can interrupt their waits. Shared with the threads (which
// may outlive the accept loop), hence held by shared_ptr.
class LiveConnections {
 public:
  // Registers fd unless `cap` threads are already running.
  bool try_add(int fd, std::size_t cap) {
    std::lock_guard lock(mutex_);
    if (fds_.size() >= cap) return false;
    fds_.insert(fd);
    return true;
  }
  // A thread calls this before closing fd, so a listed number is never someone else's socket.
  void remove(int fd) {
    std::lock_guard lock(mutex_);
    fds_.erase(fd);
    if (fds_.empty()) empty_.notify_all();
  }
  // Wakes every thread waiting for its socket (poll reports the hang-up, recv returns 0) and
  // waits until all have ended or `patience` has passed; returns how many are still running
  // (inside a handler, which no socket call can interrupt).
  std::size_t shut_down_all(std::chrono::milliseconds patience) {
    std::unique_lock lock(mutex_);
    for (int fd : fds_) ::shutdown(fd, SHUT_RDWR);
    empty_.wait_for(lock, patience, [this] { return fds_.empty(); });
    return fds_.size();
  }

 private:
  std::mutex mutex_;
  std::condition_variable empty_;
  std::unordered_set<int> fds_;
};

int serve(UniqueFd listener, const ServerOptions& options) {
  SignalPipe::watch(SIGTERM);
  SignalPipe::watch(SIGINT);
  auto live = std::make_shared<LiveConnections>();
  bool back_off = false;
  while (true) {
    const Wake wake = wait_for_client(listener.get(), back_off);
    back_off = false;
    if (wake == Wake::Stop) break;
    if (wake != Wake::Listener) continue;

    AcceptResult r = accept_client(listener.get(), true);  // serve_blocking waits in poll()
    if (r.status == AcceptStatus::FdLimit) back_off = true;
    if (r.status != AcceptStatus::Accepted) continue;

    const int fd = r.fd.get();
    if (!live->try_add(fd, options.max_clients)) {
      reject_connection(std::move(r.fd), 503);  // --max-clients: no thread past the cap
      continue;
    }
    try {
      std::thread([live, fd, timeouts = options.timeouts] {
        UniqueFd client(fd);  // closed after remove(), at the end of this scope
        PollIo io;
        serve_blocking(fd, timeouts, io);
        live->remove(fd);
      }).detach();
      r.fd.release();  // the thread owns it now
    } catch (const std::system_error& e) {
      live->remove(fd);
      log_error("threads", std::string("cannot start a thread: ") + e.what());
      reject_connection(std::move(r.fd), 503);
    }
  }
  listener.reset();  // stop accepting first
  // 1 s for the threads to end, well within the 2 s of docs/architecture.md §3; the rest end with the process.
  if (const std::size_t left = live->shut_down_all(std::chrono::milliseconds(1000)); left > 0)
    log_error("threads", std::to_string(left) + " connection thread(s) still in a handler at "
                                                "exit; they end with the process");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  ServerSpec spec;
  spec.model = "threads";
  spec.description = "one thread per connection, blocking sockets";
  spec.serve = serve;
  return run_server(spec, argc, argv);
}
