/* common.h: process setup shared by the macro benchmark's own servers
 * (macro_backend, uring_http_server): room for thousands of connections and
 * a listening socket. Not used by legacy_server, which stays a
 * self-contained plain C program. */
#ifndef GREENRING_BENCH_MACRO_COMMON_H
#define GREENRING_BENCH_MACRO_COMMON_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

/* A peer gone mid-send must be an error return, not the end of the
 * process, and the benchmark's thousands of connections need as many
 * descriptors as the hard limit allows. Returns the limit now in force. */
static inline rlim_t prepare_process(void) {
  signal(SIGPIPE, SIG_IGN);
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
  getrlimit(RLIMIT_NOFILE, &rl);
  return rl.rlim_cur;
}

/* A TCP socket listening on host:port (port 0: a free one), SOMAXCONN
 * backlog, `flags` (SOCK_NONBLOCK...) added to its type; its port goes to
 * *bound. -1 with errno set if it cannot be made. */
static inline int listen_tcp(const char* host, int port, int flags, int* bound) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | flags, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((unsigned short)port);
  int err = 0;
  if (inet_pton(AF_INET, host, &a.sin_addr) != 1) err = EINVAL;
  else if (bind(fd, (struct sockaddr*)&a, sizeof a) != 0 || listen(fd, SOMAXCONN) != 0) err = errno;
  if (err != 0) {
    close(fd);
    errno = err;
    return -1;
  }
  socklen_t al = sizeof a;
  getsockname(fd, (struct sockaddr*)&a, &al);
  *bound = ntohs(a.sin_port);
  return fd;
}

#endif
