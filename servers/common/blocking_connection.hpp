// Serving one connection with blocking calls: the whole life of a client in the
// process-per-connection and thread-per-connection models. read → handle → write, until done.
#pragma once

#include <cstddef>

namespace cmbench {

// Serves requests on the blocking socket `fd` until the peer closes, an I/O error, or a final
// response. The caller owns and closes fd. Returns the number of requests answered.
std::size_t serve_blocking(int fd);

enum class Wake { Stop, Listener, Other };

// The accept loop's wait: blocks until the listener is readable or a signal arrives (Stop for
// SIGTERM/SIGINT, Other for anything else, e.g. SIGCHLD). With `back_off` (we just ran out of
// fds) it ignores the listener for 100 ms instead of spinning on a failing accept().
Wake wait_for_client(int listen_fd, bool back_off);

}  // namespace cmbench
