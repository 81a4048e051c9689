// Socket helpers shared by every model: the listening socket and one accept() that reports
// resource limits as values, so each model can back off instead of spinning or dying.
#pragma once

#include <cstdint>
#include <string>

#include "unique_fd.hpp"

namespace cmbench {

// Binds and listens on host:port (numeric IPv4 or IPv6; port 0 = ephemeral), SO_REUSEADDR,
// non-blocking if asked. `reuse_port` sets SO_REUSEPORT before bind, so further sockets may bind
// the same address and the kernel spreads new connections over them (server-reuseport).
// Throws std::runtime_error with a one-line reason.
UniqueFd listen_tcp(const std::string& host, std::uint16_t port, int backlog, bool nonblocking,
                    bool reuse_port = false);

// "HOST:PORT" of a bound socket, IPv6 in brackets.
std::string local_endpoint(int fd);

enum class AcceptStatus {
  Accepted,    // fd is the new connection (TCP_NODELAY set)
  WouldBlock,  // nothing pending (non-blocking listener) or interrupted
  FdLimit,     // EMFILE/ENFILE/ENOBUFS/ENOMEM: back off before trying again
  Failed,      // the peer went away before we took it (ECONNABORTED...): just try the next
};

struct AcceptResult {
  AcceptStatus status;
  UniqueFd fd;
  int error = 0;
};

// accept4() with CLOEXEC (and NONBLOCK when `nonblocking`), then TCP_NODELAY on the new socket.
AcceptResult accept_client(int listen_fd, bool nonblocking);

// Sends a final error response (e.g. 503) on a socket we will not serve, then closes it
// gently: our FIN goes out before the close, so the client reads the response, not a reset.
void reject_connection(UniqueFd fd, int status);

}  // namespace cmbench
