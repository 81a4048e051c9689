#include "net.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "http_response.hpp"

namespace cmbench {

UniqueFd listen_tcp(const std::string& host, std::uint16_t port, int backlog, bool nonblocking,
                    bool reuse_port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string service = std::to_string(port);
  if (int rc = getaddrinfo(host.c_str(), service.c_str(), &hints, &found); rc != 0)
    throw std::runtime_error("bad --host '" + host + "': " + gai_strerror(rc));
  const auto* ai = found;
  UniqueFd fd(::socket(ai->ai_family,
                       ai->ai_socktype | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0), 0));
  std::string error;
  if (!fd) {
    error = std::string("socket: ") + std::strerror(errno);
  } else {
    const int one = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (reuse_port && ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0)
      error = std::string("SO_REUSEPORT: ") + std::strerror(errno);
    else if (::bind(fd.get(), ai->ai_addr, ai->ai_addrlen) != 0)
      error = "cannot bind " + host + ":" + service + ": " + std::strerror(errno);
    else if (::listen(fd.get(), backlog) != 0)
      error = std::string("listen: ") + std::strerror(errno);
  }
  freeaddrinfo(found);
  if (!error.empty()) throw std::runtime_error(error);
  return fd;
}

std::string local_endpoint(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "?";
  char ip[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
    ::inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
    return "[" + std::string(ip) + "]:" + std::to_string(ntohs(a->sin6_port));
  }
  const auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
  ::inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
  return std::string(ip) + ":" + std::to_string(ntohs(a->sin_port));
}

AcceptResult accept_client(int listen_fd, bool nonblocking) {
  const int flags = SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0);
  const int fd = ::accept4(listen_fd, nullptr, nullptr, flags);
  if (fd < 0) {
    const int err = errno;
    switch (err) {
      case EAGAIN:
      case EINTR:
        return {AcceptStatus::WouldBlock, UniqueFd(), err};
      case EMFILE:
      case ENFILE:
      case ENOBUFS:
      case ENOMEM:
        return {AcceptStatus::FdLimit, UniqueFd(), err};
      default:
        return {AcceptStatus::Failed, UniqueFd(), err};
    }
  }
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return {AcceptStatus::Accepted, UniqueFd(fd), 0};
}

void reject_connection(UniqueFd fd, int status) {
  const auto response = http::respond_error(status);
  const std::string bytes = response.head + response.body;
  // A fresh socket's send buffer holds these few bytes; a failure just means the peer left.
  (void)::send(fd.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  ::shutdown(fd.get(), SHUT_WR);
  char sink[4096];
  while (::recv(fd.get(), sink, sizeof sink, MSG_DONTWAIT) > 0) {
  }
}

}  // namespace cmbench
