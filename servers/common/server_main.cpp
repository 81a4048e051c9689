#include "server_main.hpp"

#include <cstdio>
#include <exception>
#include <iostream>

#include "net.hpp"
#include "signals.hpp"

namespace cmbench {

void log_error(const std::string& model, const std::string& message) {
  std::fprintf(stderr, "server-%s: %s\n", model.c_str(), message.c_str());
}

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
  if (spec.add_flags) spec.add_flags(app);

  const std::string usage = "usage: server-" + spec.model +
                            " [--host 127.0.0.1] [--port 8080] [--backlog 4096] (--help for more)";
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
    listener = listen_tcp(options.host, options.port, options.backlog, spec.nonblocking_listener);
  } catch (const std::exception& e) {
    log_error(spec.model, e.what());
    std::fprintf(stderr, "%s\n", usage.c_str());
    return 2;
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
