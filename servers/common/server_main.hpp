// What every server's main() shares: the command line of docs/architecture.md §3, binding, the ready line.
#pragma once

#include <CLI/CLI.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "connection_deadline.hpp"
#include "unique_fd.hpp"

namespace cmbench {

struct ServerOptions {
  std::string host = "127.0.0.1";
  std::uint16_t port = 8080;
  int backlog = 4096;
  Timeouts timeouts;                // --idle-timeout 75s, --header-timeout 60s
  std::size_t max_clients = 16384;  // --max-clients: open connections (per worker) beyond get 503
  int workers = 0;                  // --workers, for models that take it (ServerSpec::workers)
};

// A model's --workers flag: absent, a fixed default, or the CPUs this process may run on
// (sched_getaffinity), so that the CPU set the harness gives a server decides its size.
struct WorkersFlag {
  enum class Default { None, Fixed, Cpus } kind = Default::None;
  int fixed = 0;
  std::string what;  // help text: "threads in the pool"
};

struct ServerSpec {
  std::string model;        // "epoll": names the binary (server-epoll) and prefixes messages
  std::string description;  // one line for --help
  bool nonblocking_listener = true;
  bool reuse_port = false;  // SO_REUSEPORT on the listener, so the model can bind more (reuseport)
  WorkersFlag workers;
  // Optional: why this kernel cannot run the model (empty when it can), asked after binding
  // and before the ready line; a reason makes the server exit 3 with it (docs/architecture.md §3).
  std::function<std::string()> unavailable;
  // Adds the model's own flags to the parser (optional).
  std::function<void(CLI::App&)> add_flags;
  // Runs the model until a stop signal; returns the process exit status.
  std::function<int(UniqueFd listener, const ServerOptions&)> serve;
};

// Parses flags (bad input: one-line reason + usage on stderr, exit 2), binds, prints
// "listening on HOST:PORT" on stdout, logs the model on stderr, then runs spec.serve.
int run_server(const ServerSpec& spec, int argc, char** argv);

// "server-<model>: message" on stderr: errors name the model that printed them.
void log_error(const std::string& model, const std::string& message);

// docs/architecture.md §3 durations: a number (fractions allowed) with us, ms, s or m; a bare number is
// seconds. Nothing for anything else (negative, empty, unknown unit, trailing junk).
std::optional<Clock::duration> parse_duration(std::string_view text);

// The CPUs this process may run on (sched_getaffinity), at least 1.
int allowed_cpus();

}  // namespace cmbench
