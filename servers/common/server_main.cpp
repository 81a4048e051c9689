#include "server_main.hpp"

#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>

#include <charconv>
#include <cmath>
#include <cstdio>
#include <exception>
#include <iostream>

#include "net.hpp"
#include "signals.hpp"

namespace cmbench {

void log_error(const std::string& model, const std::string& message) {
  std::fprintf(stderr, "server-%s: %s\n", model.c_str(), message.c_str());
}

std::optional<Clock::duration> parse_duration(std::string_view text) {
  double value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value,
                                         std::chars_format::fixed);
  if (ec != std::errc() || !std::isfinite(value) || value < 0) return std::nullopt;
  const std::string_view unit(end, static_cast<std::size_t>(text.data() + text.size() - end));
  double micros_per_unit = 0;
  if (unit.empty() || unit == "s") {
    micros_per_unit = 1e6;
  } else if (unit == "ms") {
    micros_per_unit = 1e3;
  } else if (unit == "us") {
    micros_per_unit = 1;
  } else if (unit == "m") {
    micros_per_unit = 60e6;
  } else {
    return std::nullopt;
  }
  const double micros = value * micros_per_unit;
  if (micros > 1e15) return std::nullopt;  // ~31 years: beyond that the clock would overflow
  return std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double, std::micro>(micros));
}

int allowed_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof set, &set) != 0) return 1;
  const int n = CPU_COUNT(&set);
  return n > 0 ? n : 1;
}

namespace {

// A duration flag: parsed by parse_duration, so "--idle-timeout 1.5s" and "--idle-timeout 200ms"
// both work and "--idle-timeout 5x" is a one-line error.
void add_duration(CLI::App& app, const std::string& name, Clock::duration& target,
                  const std::string& help) {
  app.add_option_function<std::string>(
         name,
         [&target, name](const std::string& text) {
           const auto d = parse_duration(text);
           if (!d) throw CLI::ValidationError(name, "want a duration such as 75s, 500ms, 2m: '" + text + "'");
           target = *d;
         },
         help)
      ->type_name("DURATION");
}

// The port a bound socket got (for --port 0).
std::uint16_t bound_port(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return 0;
  return ntohs(ss.ss_family == AF_INET6 ? reinterpret_cast<const sockaddr_in6*>(&ss)->sin6_port
                                        : reinterpret_cast<const sockaddr_in*>(&ss)->sin_port);
}

}  // namespace

int run_server(const ServerSpec& spec, int argc, char** argv) {
  ServerOptions options;
  CLI::App app(spec.description, "server-" + spec.model);
  app.add_option("--host", options.host, "address to bind (numeric IPv4 or IPv6)")
      ->capture_default_str();
  app.add_option("--port", options.port, "TCP port; 0 picks a free one")
      ->capture_default_str()
      ->check(CLI::Range(0, 65535));
  app.add_option("--backlog", options.backlog, "listen() backlog")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  add_duration(app, "--idle-timeout", options.timeouts.idle,
               "close a connection with no request in progress after this long (default 75s)");
  add_duration(app, "--header-timeout", options.timeouts.header,
               "answer 408 when a request head is not complete this long after its first byte "
               "(default 60s)");
  app.add_option("--max-clients", options.max_clients,
                 "open connections beyond this get 503 and a close (per worker)")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 24));
  if (spec.workers.kind != WorkersFlag::Default::None) {
    options.workers =
        spec.workers.kind == WorkersFlag::Default::Fixed ? spec.workers.fixed : allowed_cpus();
    app.add_option("--workers", options.workers,
                   spec.workers.what + (spec.workers.kind == WorkersFlag::Default::Cpus
                                            ? " (default: the CPUs this process may run on)"
                                            : ""))
        ->capture_default_str()
        ->check(CLI::Range(1, 4096));
  }
  if (spec.add_flags) spec.add_flags(app);

  const std::string usage = "usage: server-" + spec.model +
                            " [--host 127.0.0.1] [--port 8080] [--backlog 4096] [--idle-timeout 75s]"
                            " [--header-timeout 60s] [--max-clients 16384] (--help for more)";
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::cout << app.help();
    return 0;
  } catch (const CLI::ParseError& e) {
    log_error(spec.model, e.what());
    std::fprintf(stderr, "%s\n", usage.c_str());
    return 2;
  }

  block_stop_signals();  // until the model's handler is in place (see signals.hpp)
  UniqueFd listener;
  try {
    if (spec.reuse_port) {
      // SO_REUSEPORT lets any socket of this user that sets it join the port, so a second
      // server would share it silently instead of failing with "port in use". A plain bind
      // first proves the port free (and picks it, for --port 0); the shared listener follows.
      const UniqueFd probe = listen_tcp(options.host, options.port, 1, true);
      options.port = bound_port(probe.get());
    }
    listener = listen_tcp(options.host, options.port, options.backlog, spec.nonblocking_listener,
                          spec.reuse_port);
  } catch (const std::exception& e) {
    log_error(spec.model, e.what());
    std::fprintf(stderr, "%s\n", usage.c_str());
    return 2;
  }
  if (spec.unavailable) {
    if (const std::string reason = spec.unavailable(); !reason.empty()) {
      log_error(spec.model, reason);
      return 3;
    }
  }
  std::fprintf(stderr, "server-%s: %s\n", spec.model.c_str(), spec.description.c_str());
  std::printf("listening on %s\n", local_endpoint(listener.get()).c_str());
  std::fflush(stdout);
  try {
    return spec.serve(std::move(listener), options);
  } catch (const std::exception& e) {  // start-up failures of the model itself (e.g. epoll_create)
    log_error(spec.model, e.what());
    return 1;
  }
}

}  // namespace cmbench
