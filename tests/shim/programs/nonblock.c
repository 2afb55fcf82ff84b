/* nonblock: what a program that asked for O_NONBLOCK must see — EAGAIN at
 * once, never a suspension: read on an empty pipe, write on a full one (after
 * the partial count), accept with nothing pending, recv with no data, set by
 * fcntl(F_SETFL), ioctl(FIONBIO), pipe2, SOCK_NONBLOCK, accept4 and per call
 * with MSG_DONTWAIT. Also that the flags the program reads back with F_GETFL
 * are exactly its own (a shim that makes fds non-blocking underneath must not
 * show it), that clearing O_NONBLOCK makes calls block again, and
 * non-blocking connect: EINPROGRESS, poll for POLLOUT, SO_ERROR 0 (and
 * ECONNREFUSED for a closed port), then a repeated connect as Linux answers it
 * (0 once, then EISCONN). */
#define _GNU_SOURCE
#include "check.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

static int nonblocking(int fd) { return (fcntl(fd, F_GETFL) & O_NONBLOCK) != 0; }

/* Runs call and checks it fails with EAGAIN in well under 50 ms. */
#define CHECK_EAGAIN_NOW(call)                \
  do {                                        \
    double t0_ = now_s();                     \
    CHECK_ERR(call, EAGAIN);                  \
    CHECK(now_s() - t0_ < 0.05);              \
  } while (0)

static void* write_later(void* arg) {
  int fd = (int)(intptr_t)arg;
  usleep(50 * 1000);
  CHECK(write(fd, "L", 1) == 1);
  return NULL;
}

static void test_pipes(void) {
  int p[2];
  char buf[256];
  CHECK(pipe(p) == 0);
  printf("fresh pipe nonblocking: %s\n", yes(nonblocking(p[0])));
  CHECK(fcntl(p[0], F_SETFL, fcntl(p[0], F_GETFL) | O_NONBLOCK) == 0);
  CHECK(fcntl(p[1], F_SETFL, fcntl(p[1], F_GETFL) | O_NONBLOCK) == 0);
  printf("after F_SETFL nonblocking: %s\n", yes(nonblocking(p[0]) && nonblocking(p[1])));
  CHECK_EAGAIN_NOW(read(p[0], buf, sizeof buf));

  int cap = fcntl(p[1], F_GETPIPE_SZ);
  static char big[1 << 20];
  ssize_t n = write(p[1], big, sizeof big);
  printf("write 1 MiB to empty pipe: partial == capacity: %s\n", yes(n == cap));
  CHECK(n == cap);
  CHECK_EAGAIN_NOW(write(p[1], big, 1));
  long drained = 0;
  while ((n = read(p[0], big, sizeof big)) > 0) drained += n;
  CHECK(n == -1 && errno == EAGAIN);
  printf("drained == capacity: %s\n", yes(drained == cap));

  /* Back to blocking: the read now waits for another thread's write. */
  CHECK(fcntl(p[0], F_SETFL, fcntl(p[0], F_GETFL) & ~O_NONBLOCK) == 0);
  printf("after clearing O_NONBLOCK nonblocking: %s\n", yes(nonblocking(p[0])));
  pthread_t t;
  CHECK_RC(pthread_create(&t, NULL, write_later, (void*)(intptr_t)p[1]), 0);
  n = read(p[0], buf, sizeof buf);
  printf("blocking read after clear: %zd '%c'\n", n, n == 1 ? buf[0] : '?');
  CHECK(n == 1 && buf[0] == 'L');
  CHECK_RC(pthread_join(t, NULL), 0);
  close(p[0]);
  close(p[1]);

  CHECK(pipe2(p, O_NONBLOCK | O_CLOEXEC) == 0);
  printf("pipe2(O_NONBLOCK) nonblocking: %s cloexec: %s\n", yes(nonblocking(p[0]) && nonblocking(p[1])),
         yes(fcntl(p[0], F_GETFD) & FD_CLOEXEC));
  CHECK_EAGAIN_NOW(read(p[0], buf, sizeof buf));
  int on = 0;
  CHECK(ioctl(p[0], FIONBIO, &on) == 0);
  printf("FIONBIO 0 on pipe nonblocking: %s\n", yes(nonblocking(p[0])));
  on = 1;
  CHECK(ioctl(p[0], FIONBIO, &on) == 0);
  CHECK_EAGAIN_NOW(read(p[0], buf, sizeof buf));
  close(p[0]);
  close(p[1]);
}

static int listener(struct sockaddr_in* addr, int type_flags) {
  int l = socket(AF_INET, SOCK_STREAM | type_flags, 0);
  CHECK(l >= 0);
  int one = 1;
  setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  memset(addr, 0, sizeof *addr);
  addr->sin_family = AF_INET;
  addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  CHECK(bind(l, (struct sockaddr*)addr, sizeof *addr) == 0);
  socklen_t len = sizeof *addr;
  CHECK(getsockname(l, (struct sockaddr*)addr, &len) == 0);
  CHECK(listen(l, 16) == 0);
  return l;
}

static void test_sockets(void) {
  struct sockaddr_in addr;
  char buf[64];
  int l = listener(&addr, 0);
  printf("fresh socket nonblocking: %s\n", yes(nonblocking(l)));
  int on = 1;
  CHECK(ioctl(l, FIONBIO, &on) == 0);
  printf("after FIONBIO nonblocking: %s\n", yes(nonblocking(l)));
  CHECK_EAGAIN_NOW(accept(l, NULL, NULL));
  CHECK_EAGAIN_NOW(accept4(l, NULL, NULL, SOCK_CLOEXEC));

  /* non-blocking connect to a listener */
  int c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  printf("SOCK_NONBLOCK socket nonblocking: %s\n", yes(nonblocking(c)));
  errno = 0;
  int rc = connect(c, (struct sockaddr*)&addr, sizeof addr);
  printf("nonblocking connect: 0 or EINPROGRESS: %s\n", yes(rc == 0 || errno == EINPROGRESS));
  CHECK(rc == 0 || errno == EINPROGRESS);
  struct pollfd pfd = {.fd = c, .events = POLLOUT};
  CHECK(poll(&pfd, 1, 5000) == 1);
  int err = -1;
  socklen_t elen = sizeof err;
  CHECK(getsockopt(c, SOL_SOCKET, SO_ERROR, &err, &elen) == 0);
  printf("poll POLLOUT: %s SO_ERROR: %d\n", yes(pfd.revents & POLLOUT), err);
  CHECK(err == 0);
  /* Linux reports a completed in-progress connect once more as success. */
  errno = 0;
  int rc2 = connect(c, (struct sockaddr*)&addr, sizeof addr);
  printf("connect again: %s\n", rc2 == 0 ? "0" : errno == EISCONN ? "EISCONN" : strerror(errno));
  CHECK_ERR(connect(c, (struct sockaddr*)&addr, sizeof addr), EISCONN);

  pfd = (struct pollfd){.fd = l, .events = POLLIN};
  CHECK(poll(&pfd, 1, 5000) == 1);
  int s = accept4(l, NULL, NULL, SOCK_NONBLOCK);
  CHECK(s >= 0);
  printf("accept4(SOCK_NONBLOCK) nonblocking: %s\n", yes(nonblocking(s)));
  CHECK_EAGAIN_NOW(recv(s, buf, sizeof buf, 0));
  CHECK_EAGAIN_NOW(read(s, buf, sizeof buf));
  CHECK(send(c, "ping", 4, 0) == 4);
  pfd = (struct pollfd){.fd = s, .events = POLLIN};
  CHECK(poll(&pfd, 1, 5000) == 1);
  CHECK(recv(s, buf, sizeof buf, 0) == 4 && memcmp(buf, "ping", 4) == 0);
  close(s);

  /* A second connection accepted with plain accept: O_NONBLOCK not inherited. */
  int c2 = socket(AF_INET, SOCK_STREAM, 0);
  printf("plain socket nonblocking: %s\n", yes(nonblocking(c2)));
  CHECK(connect(c2, (struct sockaddr*)&addr, sizeof addr) == 0);
  pfd = (struct pollfd){.fd = l, .events = POLLIN};
  CHECK(poll(&pfd, 1, 5000) == 1);
  s = accept(l, NULL, NULL);
  CHECK(s >= 0);
  printf("plain accept from nonblocking listener nonblocking: %s\n", yes(nonblocking(s)));
  CHECK_EAGAIN_NOW(recv(s, buf, sizeof buf, MSG_DONTWAIT));
  printf("MSG_DONTWAIT on blocking socket: EAGAIN\n");
  /* the socket itself stays blocking: this recv waits for the peer's write */
  pthread_t t;
  CHECK_RC(pthread_create(&t, NULL, write_later, (void*)(intptr_t)c2), 0);
  CHECK(recv(s, buf, sizeof buf, 0) == 1 && buf[0] == 'L');
  CHECK_RC(pthread_join(t, NULL), 0);
  close(s);
  close(c2);
  close(c);

  /* non-blocking connect to a closed port: ECONNREFUSED via SO_ERROR */
  close(l);
  c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  errno = 0;
  rc = connect(c, (struct sockaddr*)&addr, sizeof addr);
  int first = errno;
  err = 0;
  if (rc == -1 && first == EINPROGRESS) {
    pfd = (struct pollfd){.fd = c, .events = POLLOUT};
    CHECK(poll(&pfd, 1, 5000) == 1);
    CHECK(pfd.revents & (POLLERR | POLLHUP));
    elen = sizeof err;
    CHECK(getsockopt(c, SOL_SOCKET, SO_ERROR, &err, &elen) == 0);
  } else {
    err = first;
  }
  printf("nonblocking connect to closed port: ECONNREFUSED: %s\n", yes(err == ECONNREFUSED));
  CHECK(err == ECONNREFUSED);
  close(c);
}

int main(void) {
  test_pipes();
  test_sockets();
  return finish("nonblock");
}
