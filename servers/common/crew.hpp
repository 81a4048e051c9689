// A crew of threads that say when they have finished, so that a stopping server can wait a
// grace period, join the threads that finished and leave one still asleep in a handler
// (/sleep/N: a stand-in for a blocking library call nobody can interrupt) to end with the
// process. threadpool, reuseport and offload stop their threads this way.
//
// Why detach instead of join: docs/architecture.md §3 asks a server to exit within 2 s of
// SIGTERM, and a handler may sleep longer. A detached thread must not touch what main() frees:
// each thread holds its own share of whatever it uses (the models pass a shared_ptr), and the
// crew's bookkeeping is shared-owned too.
#pragma once

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

namespace cmbench {

class Crew {
 public:
  Crew() = default;
  Crew(const Crew&) = delete;
  Crew& operator=(const Crew&) = delete;
  // A crew that was never finished() lets its threads run on, detached.
  ~Crew() { finish(std::chrono::milliseconds::zero()); }

  // Runs body() on a new thread, which marks itself finished when body returns.
  template <class Body>
  void spawn(Body body) {
    const std::size_t index = threads_.size();
    {
      std::lock_guard lock(books_->mutex);
      books_->finished.push_back(false);
    }
    threads_.emplace_back([books = books_, index, body = std::move(body)]() mutable {
      body();
      std::lock_guard lock(books->mutex);
      books->finished[index] = true;
      books->changed.notify_all();
    });
  }

  // Waits up to `grace` for every thread to finish, joins those that did and detaches the
  // rest. Returns how many were left running.
  std::size_t finish(std::chrono::milliseconds grace) {
    std::unique_lock lock(books_->mutex);
    books_->changed.wait_for(lock, grace, [&] {
      return std::all_of(books_->finished.begin(), books_->finished.end(), [](bool f) { return f; });
    });
    const std::vector<bool> finished = books_->finished;
    lock.unlock();
    std::size_t left = 0;
    for (std::size_t i = 0; i < threads_.size(); ++i) {
      if (!threads_[i].joinable()) continue;
      if (finished[i]) {
        threads_[i].join();
      } else {
        threads_[i].detach();
        ++left;
      }
    }
    return left;
  }

 private:
  struct Books {
    std::mutex mutex;
    std::condition_variable changed;
    std::vector<bool> finished;  // per thread, under mutex
  };
  std::shared_ptr<Books> books_ = std::make_shared<Books>();
  std::vector<std::thread> threads_;
};

}  // namespace cmbench
