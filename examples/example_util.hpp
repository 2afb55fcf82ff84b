// example_util.hpp: the socket and command-line plumbing the examples share
// (loopback addresses, a loopback listener, --port/--workers/--demo), kept
// out of the example files so that they show only their use of greenring.
// Header-only, plain POSIX calls.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace example {

inline sockaddr_in loopback(uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

// A listening TCP socket on 127.0.0.1:port (0: a free port). An example
// cannot do anything without it, so failure ends the program.
inline int listen_on(uint16_t port, int backlog = 1024) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a = loopback(port);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, backlog) != 0) {
    std::perror((std::string(program_invocation_short_name) + ": bind/listen").c_str());
    std::exit(1);
  }
  return fd;
}

inline uint16_t port_of(int fd) {
  sockaddr_in a{};
  socklen_t l = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &l);
  return ntohs(a.sin_port);
}

// The interop examples' command line: `[--port P] [--workers N]` to serve,
// `--demo` plus the demo's own integer options (name, where to store) to run
// the demo. Anything else prints the usage (`demo_usage` names the demo's
// options) and returns false.
struct command_line {
  bool demo = false;
  uint16_t port = 0;
  unsigned workers = 0;
};

inline bool parse_command_line(int argc, char** argv, command_line& cl,
                               std::initializer_list<std::pair<std::string_view, int*>> demo_options,
                               const char* demo_usage) {
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    auto next = [&] { return i + 1 < argc ? std::atoi(argv[++i]) : 0; };
    int* demo_option = nullptr;
    for (auto& [name, value] : demo_options)
      if (a == name) demo_option = value;
    if (a == "--demo") cl.demo = true;
    else if (a == "--port") cl.port = static_cast<uint16_t>(next());
    else if (a == "--workers") cl.workers = static_cast<unsigned>(next());
    else if (demo_option) *demo_option = next();
    else {
      std::fprintf(stderr, "usage: %s [--port P] [--workers N] | --demo %s\n", argv[0], demo_usage);
      return false;
    }
  }
  return true;
}

}  // namespace example
