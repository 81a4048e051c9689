// Signals as readable bytes: the handler only writes the signal number into a pipe, so event
// loops wait on the pipe like on any socket and blocking loops poll() it beside accept().
// This avoids both races (a signal between "check flag" and "block") and work in handlers.
#pragma once

#include <csignal>

namespace cmbench {

class SignalPipe {
 public:
  // Routes `signo` into the pipe (creating it on first use). Also ignores SIGPIPE: a peer
  // that vanished is reported by send() as EPIPE, never by killing the server.
  static void watch(int signo);
  // The read end (non-blocking). Each byte read is one delivered signal number.
  static int fd();
  // Reads every pending byte; returns true if SIGTERM or SIGINT was among them.
  static bool drain_stop();
  // Watches SIGTERM and SIGINT and blocks until one arrives: the main thread of a model whose
  // loops run on other threads. Returns 0, or the errno of a failed poll() (it stops waiting).
  static int wait_for_stop();
  // In a forked child: default dispositions back and the pipe closed.
  static void reset_in_child();
};

// SIGTERM and SIGINT are blocked from before the ready line until the model has installed its
// handler (SignalPipe::watch, Asio's signal_set, libevent's evsignal): a signal sent the moment
// "listening on" appears then waits for the handler instead of killing the process.
void block_stop_signals();
void unblock_stop_signals();

}  // namespace cmbench
