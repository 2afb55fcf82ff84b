/* sockopt_timeo: SO_RCVTIMEO / SO_SNDTIMEO as the kernel applies them to
 * blocking sockets: recv, read and accept return -1/EAGAIN after about the
 * timeout; data arriving before it is returned normally; a send into a full
 * buffer returns -1/EAGAIN after the timeout (or the partial count it
 * managed); getsockopt reads the values back; a zero timeout means forever.
 * 50 threads timing out at once take about one timeout, not fifty. */
#define _GNU_SOURCE
#include "check.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static void set_timeo(int fd, int opt, long ms) {
  struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
  CHECK(setsockopt(fd, SOL_SOCKET, opt, &tv, sizeof tv) == 0);
}

static int within(double waited, double lo, double hi) { return waited >= lo && waited < hi; }

static void* write_later(void* arg) {
  int fd = (int)(intptr_t)arg;
  usleep(50 * 1000);
  CHECK(write(fd, "D", 1) == 1);
  return NULL;
}

static int pair[50][2];

static void* timeout_thread(void* arg) {
  int i = (int)(intptr_t)arg;
  char c;
  set_timeo(pair[i][0], SO_RCVTIMEO, 200);
  CHECK_ERR(recv(pair[i][0], &c, 1, 0), EAGAIN);
  return NULL;
}

int main(void) {
  int sv[2];
  char buf[64];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
  set_timeo(sv[0], SO_RCVTIMEO, 200);
  struct timeval got = {0, 0};
  socklen_t len = sizeof got;
  CHECK(getsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &got, &len) == 0);
  printf("SO_RCVTIMEO read back: %ld.%06ld\n", (long)got.tv_sec, (long)got.tv_usec);

  double t0 = now_s();
  CHECK_ERR(recv(sv[0], buf, sizeof buf, 0), EAGAIN);
  double w = now_s() - t0;
  printf("recv timed out after 180ms..3s: %s\n", yes(within(w, 0.18, 3)));
  CHECK(within(w, 0.18, 3));
  t0 = now_s();
  CHECK_ERR(read(sv[0], buf, sizeof buf), EAGAIN);
  w = now_s() - t0;
  printf("read timed out after 180ms..3s: %s\n", yes(within(w, 0.18, 3)));
  CHECK(within(w, 0.18, 3));

  set_timeo(sv[0], SO_RCVTIMEO, 2000);
  pthread_t t;
  CHECK_RC(pthread_create(&t, NULL, write_later, (void*)(intptr_t)sv[1]), 0);
  t0 = now_s();
  ssize_t n = recv(sv[0], buf, sizeof buf, 0);
  w = now_s() - t0;
  printf("data before the timeout: %zd byte(s), early: %s\n", n, yes(w < 1.5));
  CHECK(n == 1 && buf[0] == 'D' && w < 1.5);
  CHECK_RC(pthread_join(t, NULL), 0);

  set_timeo(sv[0], SO_RCVTIMEO, 0); /* forever again */
  CHECK_RC(pthread_create(&t, NULL, write_later, (void*)(intptr_t)sv[1]), 0);
  CHECK(recv(sv[0], buf, sizeof buf, 0) == 1);
  CHECK_RC(pthread_join(t, NULL), 0);
  printf("zero timeout blocks until data: yes\n");

  /* SO_SNDTIMEO: fill the peer's buffer until a send times out. */
  int small = 4096;
  setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
  set_timeo(sv[1], SO_SNDTIMEO, 200);
  static char chunk[65536];
  long sent = 0;
  int timed_out = 0;
  for (int i = 0; i < 10000 && !timed_out; i++) {
    t0 = now_s();
    n = send(sv[1], chunk, sizeof chunk, MSG_NOSIGNAL);
    w = now_s() - t0;
    if (n < 0) {
      CHECK(errno == EAGAIN);
      timed_out = 1;
      printf("send timed out with EAGAIN after 180ms..3s: %s\n", yes(within(w, 0.18, 3)));
      CHECK(within(w, 0.18, 3));
    } else {
      sent += n;
    }
  }
  printf("send buffer filled before timing out: %s\n", yes(timed_out && sent > 0));
  CHECK(timed_out && sent > 0);
  long drained = 0;
  set_timeo(sv[0], SO_RCVTIMEO, 100);
  while ((n = recv(sv[0], chunk, sizeof chunk, 0)) > 0) drained += n;
  printf("drained == sent: %s\n", yes(drained == sent));
  CHECK(drained == sent);
  close(sv[0]);
  close(sv[1]);

  /* accept on a listener with SO_RCVTIMEO */
  int l = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  CHECK(bind(l, (struct sockaddr*)&a, sizeof a) == 0 && listen(l, 4) == 0);
  set_timeo(l, SO_RCVTIMEO, 200);
  t0 = now_s();
  CHECK_ERR(accept(l, NULL, NULL), EAGAIN);
  w = now_s() - t0;
  printf("accept timed out after 180ms..3s: %s\n", yes(within(w, 0.18, 3)));
  CHECK(within(w, 0.18, 3));
  close(l);

  /* 50 concurrent 200 ms timeouts */
  for (int i = 0; i < 50; i++) CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, pair[i]) == 0);
  pthread_t ts[50];
  t0 = now_s();
  for (int i = 0; i < 50; i++) CHECK_RC(pthread_create(&ts[i], NULL, timeout_thread, (void*)(intptr_t)i), 0);
  for (int i = 0; i < 50; i++) CHECK_RC(pthread_join(ts[i], NULL), 0);
  w = now_s() - t0;
  printf("50 concurrent recv timeouts within 180ms..2s: %s\n", yes(within(w, 0.18, 2)));
  CHECK(within(w, 0.18, 2));
  for (int i = 0; i < 50; i++) close(pair[i][0]), close(pair[i][1]);
  return finish("sockopt_timeo");
}
