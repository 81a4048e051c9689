// What a process-per-connection or thread-per-connection server pays per connection before
// it reads a byte: fork + exit + wait, and thread create + join. The harness pins this binary
// to the server CPU, so parent and child share one core as they do in the servers.
#include <benchmark/benchmark.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <thread>

namespace {

void ForkWait(benchmark::State& state) {
  for (auto _ : state) {
    const pid_t pid = ::fork();
    if (pid == 0) ::_exit(0);  // the child does nothing: this is the bare cost of a process
    if (pid < 0) return state.SkipWithError("fork failed");
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
  }
  state.SetItemsProcessed(state.iterations());
}

void ThreadCreateJoin(benchmark::State& state) {
  for (auto _ : state) {
    std::thread t([] {});
    t.join();
  }
  state.SetItemsProcessed(state.iterations());
}

// Real time: most of the cost is in the kernel and in the other task, not in this thread's CPU.
BENCHMARK(ForkWait)->Name("spawn/fork_wait")->UseRealTime();
BENCHMARK(ThreadCreateJoin)->Name("spawn/thread_create_join")->UseRealTime();

}  // namespace
