#include "signals.hpp"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <unistd.h>

#include <cerrno>

namespace cmbench {
namespace {

int g_pipe[2] = {-1, -1};
sigset_t g_watched;

extern "C" void on_signal(int signo) {
  const int saved = errno;
  const unsigned char byte = static_cast<unsigned char>(signo);
  [[maybe_unused]] auto n = ::write(g_pipe[1], &byte, 1);  // full pipe: a wake-up is pending anyway
  errno = saved;
}

}  // namespace

void SignalPipe::watch(int signo) {
  if (g_pipe[0] < 0) {
    if (::pipe2(g_pipe, O_NONBLOCK | O_CLOEXEC) != 0) return;
    sigemptyset(&g_watched);
    ::signal(SIGPIPE, SIG_IGN);
  }
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  ::sigaction(signo, &sa, nullptr);
  sigaddset(&g_watched, signo);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, signo);
  ::pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
}

int SignalPipe::fd() { return g_pipe[0]; }

bool SignalPipe::drain_stop() {
  bool stop = false;
  unsigned char buf[64];
  ssize_t n;
  while ((n = ::read(g_pipe[0], buf, sizeof buf)) > 0) {
    for (ssize_t i = 0; i < n; ++i) stop = stop || buf[i] == SIGTERM || buf[i] == SIGINT;
  }
  return stop;
}

int SignalPipe::wait_for_stop() {
  watch(SIGTERM);
  watch(SIGINT);
  while (true) {
    pollfd p{fd(), POLLIN, 0};
    if (::poll(&p, 1, -1) < 0 && errno != EINTR) return errno;
    if (drain_stop()) return 0;
  }
}

void SignalPipe::reset_in_child() {
  for (int signo = 1; signo < NSIG; ++signo) {
    if (g_pipe[0] >= 0 && sigismember(&g_watched, signo) == 1) ::signal(signo, SIG_DFL);
  }
  for (int& fd : g_pipe) {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
}

namespace {
sigset_t stop_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  return set;
}
}  // namespace

void block_stop_signals() {
  const sigset_t set = stop_signals();
  ::pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

void unblock_stop_signals() {
  const sigset_t set = stop_signals();
  ::pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
}

}  // namespace cmbench
