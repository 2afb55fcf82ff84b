/* stale_fd: an fd number whose last read blocked is closed behind libc's
 * back (syscall(SYS_close), as glibc's own fclose does) and reused by a
 * non-blocking timerfd / inotify fd: reads on the new fd must fail with
 * EAGAIN at once, as from libc (under the shim, no state kept for the old fd
 * may make the new one wait). */
#define _GNU_SOURCE
#include "check.h"

#include <pthread.h>
#include <stdint.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <unistd.h>

static int sv[2];

static void* writer(void* a) {
  (void)a;
  usleep(30000); /* the reader is blocked by now */
  CHECK(write(sv[1], "x", 1) == 1);
  return NULL;
}

static int blocked_then_closed(void) {
  CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
  for (int round = 0; round < 2; round++) {
    pthread_t t;
    CHECK_RC(pthread_create(&t, NULL, writer, NULL), 0);
    char c;
    CHECK(read(sv[0], &c, 1) == 1); /* waits: the last read of sv[0] blocked */
    CHECK_RC(pthread_join(t, NULL), 0);
  }
  int n = sv[0];
  syscall(SYS_close, sv[0]);
  close(sv[1]);
  return n;
}

int main(void) {
  int old = blocked_then_closed();
  int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
  printf("timerfd reuses the number: %s\n", yes(tfd == old));
  uint64_t v;
  errno = 0;
  ssize_t r = read(tfd, &v, sizeof v);
  printf("timerfd read: %zd %s\n", r, r < 0 && errno == EAGAIN ? "EAGAIN" : strerror(errno));
  syscall(SYS_close, tfd);

  old = blocked_then_closed();
  int ifd = inotify_init1(IN_NONBLOCK);
  printf("inotify reuses the number: %s\n", yes(ifd == old));
  char buf[4096];
  errno = 0;
  r = read(ifd, buf, sizeof buf);
  printf("inotify read: %zd %s\n", r, r < 0 && errno == EAGAIN ? "EAGAIN" : strerror(errno));
  close(ifd);
  return finish("stale_fd");
}
