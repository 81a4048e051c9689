// What every server's main() shares: the command line of DESIGN.md §3, binding, the ready line.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <functional>
#include <string>

#include "unique_fd.hpp"

namespace cmbench {

struct ServerOptions {
  std::string host = "127.0.0.1";
  std::uint16_t port = 8080;
  int backlog = 4096;
  bool nonblocking = true;  // set by the model before binding: event loops want it
};

struct ServerSpec {
  std::string model;        // "epoll": names the binary (server-epoll) and prefixes messages
  std::string description;  // one line for --help
  bool nonblocking_listener = true;
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

}  // namespace cmbench
