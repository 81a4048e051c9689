// server-offload: the epoll event loop with a worker pool for the handlers that block — the
// remedy nginx (thread pools), libuv (its thread pool) and asyncio (run_in_executor) use.
//
// Who owns what: one event-loop thread owns every socket and every session (the shared loop of
// common/event_loop.cpp with the epoll backend, so deadlines, --max-clients and fair turns are
// the same as server-epoll's). Requests whose handler blocks or spins (/sleep/US, /cpu/US) are
// not run on the loop: the session hands out a copy of the request (HttpSession::defer_if), the
// loop passes it to this pool and stops watching that connection, and one of `--workers`
// threads (default 4) runs the handler and queues the response; an eventfd wakes the loop,
// which puts the response in its place and lets the connection go on. Every other request is
// served inline, as in server-epoll. Order is kept per connection: requests pipelined behind an
// offloaded one wait in its input until the answer is back. The workers touch only their job
// and the pool's two queues (under one mutex), never a socket or a session.
// Limits: N workers run N blocking handlers at once; the (N+1)th waits in the queue, so a
// flood of /sleep requests delays the other /sleep requests, not the fast ones. Which routes
// leave the loop is decided by the route (a real server must know which calls block). On
// SIGTERM the loop stops at once; a worker still sleeping at the deadline ends with the process.
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <vector>

#include "crew.hpp"
#include "epoll_backend.hpp"
#include "event_loop.hpp"
#include "server_main.hpp"

namespace {

using namespace cmbench;

constexpr auto kStopGrace = std::chrono::milliseconds(1200);  // docs/architecture.md §3: exit within 2 s, with room

// The handlers that block the thread they run on (docs/architecture.md §2): a stand-in for a blocking library
// call, and a CPU-bound one.
bool blocks(const http::Request& r) {
  if (r.method != http::Method::Get && r.method != http::Method::Head) return false;
  const auto path = r.target.substr(0, r.target.find('?'));
  return path.starts_with("/sleep/") || path.starts_with("/cpu/");
}

class WorkerPool final : public ev::Offloader {
 public:
  explicit WorkerPool(int workers) : shared_(std::make_shared<Shared>()) {
    for (int i = 0; i < workers; ++i) crew_.spawn([s = shared_] { work(s); });
  }
  ~WorkerPool() override { stop(); }
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  http::DeferPredicate blocking() const override { return blocks; }
  int wake_fd() const override { return shared_->wake.get(); }

  void submit(ev::OffloadTicket from, std::unique_ptr<http::DeferredRequest> request) override {
    {
      std::lock_guard lock(shared_->mutex);
      shared_->jobs.push_back({from, std::move(request)});
    }
    shared_->work_ready.notify_one();
  }

  void collect(std::vector<std::pair<ev::OffloadTicket, http::Response>>& done) override {
    std::uint64_t count;
    [[maybe_unused]] const auto n = ::read(shared_->wake.get(), &count, sizeof count);  // re-arm
    std::lock_guard lock(shared_->mutex);
    std::swap(done, shared_->done);
  }

  // Wakes the idle workers and joins them; a worker still in a handler after kStopGrace is
  // detached and ends with the process (it holds its own reference to the shared state).
  void stop() {
    {
      std::lock_guard lock(shared_->mutex);
      if (shared_->stopping) return;
      shared_->stopping = true;
    }
    shared_->work_ready.notify_all();
    crew_.finish(kStopGrace);
  }

 private:
  struct Job {
    ev::OffloadTicket from;
    std::unique_ptr<http::DeferredRequest> request;
  };
  // Everything the workers touch, shared-owned so no worker can outlive it.
  struct Shared {
    Shared() : wake(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
      if (!wake) throw std::runtime_error(std::string("eventfd: ") + std::strerror(errno));
    }
    const UniqueFd wake;  // a worker writes it after queuing a response: the loop wakes
    std::mutex mutex;     // guards everything below
    std::condition_variable work_ready;
    std::deque<Job> jobs;
    std::vector<std::pair<ev::OffloadTicket, http::Response>> done;
    bool stopping = false;
  };

  static void work(const std::shared_ptr<Shared>& s) {
    std::unique_lock lock(s->mutex);
    while (true) {
      s->work_ready.wait(lock, [&] { return s->stopping || !s->jobs.empty(); });
      if (s->stopping) break;
      Job job = std::move(s->jobs.front());
      s->jobs.pop_front();
      lock.unlock();
      http::Response response = http::respond(job.request->view());  // may sleep or spin
      lock.lock();
      s->done.emplace_back(job.from, std::move(response));
      const std::uint64_t one = 1;
      [[maybe_unused]] const auto n = ::write(s->wake.get(), &one, sizeof one);
    }
  }

  std::shared_ptr<Shared> shared_;
  Crew crew_;  // after shared_: destroyed first, so its threads are joined or detached first
};

int serve(UniqueFd listener, const ServerOptions& options) {
  WorkerPool pool(options.workers);  // workers inherit the blocked stop signals: the loop takes them
  ev::EpollBackend backend;
  const int status = ev::run_event_loop("offload", std::move(listener), backend, options, {-1, &pool});
  pool.stop();
  return status;
}

}  // namespace

int main(int argc, char** argv) {
  ServerSpec spec;
  spec.model = "offload";
  spec.description = "one epoll loop; blocking handlers (/sleep, /cpu) run on a worker pool";
  spec.workers = {WorkersFlag::Default::Fixed, 4, "worker threads for blocking handlers"};
  spec.serve = serve;
  return run_server(spec, argc, argv);
}
