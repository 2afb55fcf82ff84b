// bench/micro/bench_util.hpp: what the socket micro-benchmarks (micro_io,
// interop_bench) share: ending the run on a failed call, and an AF_UNIX
// socketpair to pass bytes over. Header-only.
#pragma once

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace bench {

// A failed call leaves nothing worth measuring: report it and stop the run.
[[noreturn]] inline void die(const char* what) {
  std::fprintf(stderr, "%s: %s: %s\n", program_invocation_short_name, what, std::strerror(errno));
  std::abort();
}

struct socket_pair {
  int fd[2] = {-1, -1};
  socket_pair() {
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fd) != 0) die("socketpair");
  }
  ~socket_pair() {
    ::close(fd[0]);
    ::close(fd[1]);
  }
  socket_pair(const socket_pair&) = delete;
  socket_pair& operator=(const socket_pair&) = delete;
};

}  // namespace bench
