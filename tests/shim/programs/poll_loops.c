/* poll_loops: poll, ppoll, select, pselect and epoll with the results libc
 * gives: a zero timeout and an expiring timeout both return 0 (the latter
 * after about the timeout), several ready fds are all reported with the
 * right revents/fd_set bits, POLLHUP on a pipe whose writer closed, POLLNVAL
 * for a closed fd, select's EBADF, epoll edge-triggered and one-shot
 * semantics, and a wait that is ended by another thread's write. Then three
 * event loops (poll, select, epoll), each serving 32 socketpairs whose peers
 * are client threads doing 50 request/reply rounds, with exact counts. */
#define _GNU_SOURCE
#include "check.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

static void* write_later(void* arg) {
  int fd = (int)(intptr_t)arg;
  struct timespec ts = {0, 50 * 1000 * 1000};
  nanosleep(&ts, NULL);
  CHECK(write(fd, "w", 1) == 1);
  return NULL;
}

static void drain(int fd) {
  char buf[64];
  CHECK(read(fd, buf, sizeof buf) > 0);
}

static void test_poll(void) {
  int p[3][2];
  for (int i = 0; i < 3; i++) CHECK(pipe(p[i]) == 0);
  struct pollfd fds[3];
  for (int i = 0; i < 3; i++) fds[i] = (struct pollfd){.fd = p[i][0], .events = POLLIN};

  CHECK(poll(fds, 3, 0) == 0);
  double t0 = now_s();
  int rc = poll(fds, 3, 100);
  double waited = now_s() - t0;
  printf("poll timeout: rc=%d after >=90ms: %s\n", rc, yes(waited >= 0.09));
  CHECK(rc == 0 && waited >= 0.09 && waited < 5);

  CHECK(write(p[0][1], "a", 1) == 1);
  CHECK(write(p[2][1], "c", 1) == 1);
  rc = poll(fds, 3, -1);
  printf("poll two ready: rc=%d revents=%d,%d,%d\n", rc, fds[0].revents, fds[1].revents, fds[2].revents);
  CHECK(rc == 2 && fds[0].revents == POLLIN && fds[1].revents == 0 && fds[2].revents == POLLIN);
  drain(p[0][0]);
  drain(p[2][0]);

  pthread_t t;
  CHECK_RC(pthread_create(&t, NULL, write_later, (void*)(intptr_t)p[1][1]), 0);
  rc = poll(fds, 3, 10000);
  printf("poll woken by another thread: rc=%d fd1 ready: %s\n", rc, yes(fds[1].revents == POLLIN));
  CHECK(rc == 1 && fds[1].revents == POLLIN);
  CHECK_RC(pthread_join(t, NULL), 0);
  drain(p[1][0]);

  close(p[0][1]);
  int closed = p[2][0];
  close(closed);
  fds[2].fd = closed; /* now a closed fd */
  rc = poll(fds, 3, 1000);
  printf("poll hup+nval: rc=%d revents=%d,%d,%d\n", rc, fds[0].revents, fds[1].revents, fds[2].revents);
  CHECK(rc == 2 && fds[0].revents == POLLHUP && fds[1].revents == 0 && fds[2].revents == POLLNVAL);

  /* negative fds are ignored; POLLOUT on a pipe writer */
  struct pollfd w[2] = {{.fd = -1, .events = POLLIN}, {.fd = p[1][1], .events = POLLOUT}};
  rc = poll(w, 2, 0);
  CHECK(rc == 1 && w[0].revents == 0 && w[1].revents == POLLOUT);

  struct timespec ts = {0, 80 * 1000 * 1000};
  sigset_t none;
  sigemptyset(&none);
  fds[0].fd = p[1][0];
  t0 = now_s();
  rc = ppoll(fds, 1, &ts, &none);
  waited = now_s() - t0;
  printf("ppoll timeout: rc=%d after >=70ms: %s\n", rc, yes(waited >= 0.07));
  CHECK(rc == 0 && waited >= 0.07 && waited < 5);
  close(p[0][0]);
  close(p[1][0]);
  close(p[1][1]);
  close(p[2][1]);
}

static void test_select(void) {
  int a[2], b[2];
  CHECK(pipe(a) == 0 && pipe(b) == 0);
  int maxfd = (a[0] > b[0] ? a[0] : b[0]) + 1;
  fd_set r;
  FD_ZERO(&r);
  FD_SET(a[0], &r);
  FD_SET(b[0], &r);
  struct timeval tv = {0, 0};
  CHECK(select(maxfd, &r, NULL, NULL, &tv) == 0);
  CHECK(!FD_ISSET(a[0], &r) && !FD_ISSET(b[0], &r));

  FD_SET(a[0], &r);
  FD_SET(b[0], &r);
  tv = (struct timeval){0, 100 * 1000};
  double t0 = now_s();
  int rc = select(maxfd, &r, NULL, NULL, &tv);
  double waited = now_s() - t0;
  printf("select timeout: rc=%d after >=90ms: %s timeval left 0: %s\n", rc, yes(waited >= 0.09),
         yes(tv.tv_sec == 0 && tv.tv_usec == 0));
  CHECK(rc == 0 && waited >= 0.09 && waited < 5 && tv.tv_sec == 0 && tv.tv_usec == 0);

  CHECK(write(a[1], "x", 1) == 1 && write(b[1], "y", 1) == 1);
  FD_ZERO(&r);
  FD_SET(a[0], &r);
  FD_SET(b[0], &r);
  fd_set w;
  FD_ZERO(&w);
  FD_SET(a[1], &w);
  rc = select(a[1] > maxfd - 1 ? a[1] + 1 : maxfd, &r, &w, NULL, NULL);
  printf("select three ready: rc=%d r:%d%d w:%d\n", rc, FD_ISSET(a[0], &r) ? 1 : 0, FD_ISSET(b[0], &r) ? 1 : 0,
         FD_ISSET(a[1], &w) ? 1 : 0);
  CHECK(rc == 3 && FD_ISSET(a[0], &r) && FD_ISSET(b[0], &r) && FD_ISSET(a[1], &w));
  drain(a[0]);
  drain(b[0]);

  pthread_t t;
  CHECK_RC(pthread_create(&t, NULL, write_later, (void*)(intptr_t)b[1]), 0);
  FD_ZERO(&r);
  FD_SET(a[0], &r);
  FD_SET(b[0], &r);
  rc = select(maxfd, &r, NULL, NULL, NULL);
  printf("select woken by another thread: rc=%d b ready: %s\n", rc, yes(FD_ISSET(b[0], &r) && !FD_ISSET(a[0], &r)));
  CHECK(rc == 1 && FD_ISSET(b[0], &r));
  CHECK_RC(pthread_join(t, NULL), 0);
  drain(b[0]);

  struct timespec ts = {0, 50 * 1000 * 1000};
  FD_ZERO(&r);
  FD_SET(a[0], &r);
  CHECK(pselect(a[0] + 1, &r, NULL, NULL, &ts, NULL) == 0);

  int closed = b[0];
  close(closed);
  FD_ZERO(&r);
  FD_SET(closed, &r);
  tv = (struct timeval){1, 0};
  CHECK_ERR(select(closed + 1, &r, NULL, NULL, &tv), EBADF);
  printf("select on closed fd: EBADF\n");
  close(a[0]);
  close(a[1]);
  close(b[1]);
}

static void test_epoll(void) {
  int ep = epoll_create1(EPOLL_CLOEXEC);
  CHECK(ep >= 0);
  int a[2], b[2], c[2];
  CHECK(pipe(a) == 0 && pipe(b) == 0 && socketpair(AF_UNIX, SOCK_STREAM, 0, c) == 0);
  struct epoll_event ev = {.events = EPOLLIN, .data.u32 = 1};
  CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, a[0], &ev) == 0);
  ev = (struct epoll_event){.events = EPOLLIN | EPOLLET, .data.u32 = 2};
  CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, b[0], &ev) == 0);
  ev = (struct epoll_event){.events = EPOLLIN | EPOLLONESHOT, .data.u32 = 3};
  CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, c[0], &ev) == 0);
  CHECK_ERR(epoll_ctl(ep, EPOLL_CTL_ADD, a[0], &ev), EEXIST);

  struct epoll_event out[8];
  CHECK(epoll_wait(ep, out, 8, 0) == 0);
  double t0 = now_s();
  int rc = epoll_wait(ep, out, 8, 100);
  double waited = now_s() - t0;
  printf("epoll_wait timeout: rc=%d after >=90ms: %s\n", rc, yes(waited >= 0.09));
  CHECK(rc == 0 && waited >= 0.09 && waited < 5);

  CHECK(write(a[1], "a", 1) == 1 && write(b[1], "b", 1) == 1 && write(c[1], "c", 1) == 1);
  rc = epoll_wait(ep, out, 8, 1000);
  unsigned mask = 0;
  for (int i = 0; i < rc; i++) mask |= 1u << out[i].data.u32;
  printf("epoll three ready: rc=%d ids=0x%x\n", rc, mask);
  CHECK(rc == 3 && mask == 0xe);

  /* level-triggered a reports again; edge b and one-shot c do not */
  rc = epoll_wait(ep, out, 8, 50);
  printf("epoll again (LT only): rc=%d id=%u\n", rc, rc == 1 ? out[0].data.u32 : 0);
  CHECK(rc == 1 && out[0].data.u32 == 1);
  drain(a[0]);
  CHECK(write(b[1], "b", 1) == 1); /* new edge */
  rc = epoll_wait(ep, out, 8, 1000);
  CHECK(rc == 1 && out[0].data.u32 == 2);
  ev = (struct epoll_event){.events = EPOLLIN | EPOLLONESHOT, .data.u32 = 3};
  CHECK(epoll_ctl(ep, EPOLL_CTL_MOD, c[0], &ev) == 0); /* re-arm: data still pending */
  rc = epoll_wait(ep, out, 8, 1000);
  printf("epoll edge and re-armed one-shot: %s\n", yes(rc == 1 && out[0].data.u32 == 3));
  CHECK(rc == 1 && out[0].data.u32 == 3);
  drain(b[0]);
  drain(c[0]);

  pthread_t t;
  CHECK_RC(pthread_create(&t, NULL, write_later, (void*)(intptr_t)a[1]), 0);
  rc = epoll_wait(ep, out, 8, -1);
  printf("epoll_wait woken by another thread: rc=%d id=%u\n", rc, rc == 1 ? out[0].data.u32 : 0);
  CHECK(rc == 1 && out[0].data.u32 == 1);
  CHECK_RC(pthread_join(t, NULL), 0);
  drain(a[0]);

  close(c[1]);
  ev = (struct epoll_event){.events = EPOLLIN | EPOLLRDHUP, .data.u32 = 3};
  CHECK(epoll_ctl(ep, EPOLL_CTL_MOD, c[0], &ev) == 0);
  sigset_t none;
  sigemptyset(&none);
  rc = epoll_pwait(ep, out, 8, 1000, &none);
  CHECK(rc == 1 && out[0].data.u32 == 3 && (out[0].events & (EPOLLRDHUP | EPOLLHUP)));
  printf("epoll_pwait peer closed: %s\n", yes(rc == 1 && (out[0].events & EPOLLRDHUP)));
  CHECK(epoll_ctl(ep, EPOLL_CTL_DEL, c[0], NULL) == 0);
  CHECK_ERR(epoll_ctl(ep, EPOLL_CTL_DEL, c[0], NULL), ENOENT);
  close(ep);
  close(a[0]), close(a[1]), close(b[0]), close(b[1]), close(c[0]);
}

/* ---- loops: one server thread multiplexes NPAIRS socketpairs ---- */
#define NPAIRS 32
#define ROUNDS 50
enum kind { K_POLL, K_SELECT, K_EPOLL };
static int srv_end[NPAIRS], cli_end[NPAIRS];

static void* loop_client(void* arg) {
  int i = (int)(intptr_t)arg;
  for (int r = 0; r < ROUNDS; r++) {
    uint32_t v = (uint32_t)(i * 1000 + r), back = 0;
    CHECK(write(cli_end[i], &v, sizeof v) == sizeof v);
    CHECK(read(cli_end[i], &back, sizeof back) == sizeof back);
    CHECK(back == v * 2 + 1);
  }
  shutdown(cli_end[i], SHUT_WR);
  return NULL;
}

/* Answers one request on fd; returns 0 at EOF. */
static int serve_one(int fd, long* served) {
  uint32_t v;
  ssize_t n = read(fd, &v, sizeof v);
  if (n == 0) return 0;
  CHECK(n == sizeof v);
  v = v * 2 + 1;
  CHECK(write(fd, &v, sizeof v) == sizeof v);
  (*served)++;
  return 1;
}

static long run_loop(enum kind k) {
  for (int i = 0; i < NPAIRS; i++) {
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    srv_end[i] = sv[0];
    cli_end[i] = sv[1];
  }
  pthread_t t[NPAIRS];
  for (int i = 0; i < NPAIRS; i++) CHECK_RC(pthread_create(&t[i], NULL, loop_client, (void*)(intptr_t)i), 0);
  long served = 0;
  int open_n = NPAIRS, open[NPAIRS];
  for (int i = 0; i < NPAIRS; i++) open[i] = 1;
  int ep = -1;
  if (k == K_EPOLL) {
    ep = epoll_create1(0);
    for (int i = 0; i < NPAIRS; i++) {
      struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
      CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, srv_end[i], &ev) == 0);
    }
  }
  while (open_n > 0) {
    int ready[NPAIRS], nr = 0;
    if (k == K_POLL) {
      struct pollfd fds[NPAIRS];
      int map[NPAIRS], n = 0;
      for (int i = 0; i < NPAIRS; i++)
        if (open[i]) map[n] = i, fds[n++] = (struct pollfd){.fd = srv_end[i], .events = POLLIN};
      int rc = poll(fds, (nfds_t)n, 10000);
      CHECK(rc > 0);
      if (rc <= 0) break;
      for (int j = 0; j < n; j++)
        if (fds[j].revents) ready[nr++] = map[j];
      CHECK(nr == rc);
    } else if (k == K_SELECT) {
      fd_set r;
      FD_ZERO(&r);
      int maxfd = -1;
      for (int i = 0; i < NPAIRS; i++)
        if (open[i]) {
          FD_SET(srv_end[i], &r);
          if (srv_end[i] > maxfd) maxfd = srv_end[i];
        }
      struct timeval tv = {10, 0};
      int rc = select(maxfd + 1, &r, NULL, NULL, &tv);
      CHECK(rc > 0);
      if (rc <= 0) break;
      for (int i = 0; i < NPAIRS; i++)
        if (open[i] && FD_ISSET(srv_end[i], &r)) ready[nr++] = i;
      CHECK(nr == rc);
    } else {
      struct epoll_event evs[NPAIRS];
      int rc = epoll_wait(ep, evs, NPAIRS, 10000);
      CHECK(rc > 0);
      if (rc <= 0) break;
      for (int j = 0; j < rc; j++) ready[nr++] = (int)evs[j].data.u32;
    }
    for (int j = 0; j < nr; j++) {
      int i = ready[j];
      if (!serve_one(srv_end[i], &served)) {
        if (ep >= 0) epoll_ctl(ep, EPOLL_CTL_DEL, srv_end[i], NULL);
        close(srv_end[i]);
        open[i] = 0;
        open_n--;
      }
    }
  }
  for (int i = 0; i < NPAIRS; i++) {
    CHECK_RC(pthread_join(t[i], NULL), 0);
    close(cli_end[i]);
  }
  if (ep >= 0) close(ep);
  return served;
}

int main(void) {
  test_poll();
  test_select();
  test_epoll();
  static const char* names[] = {"poll", "select", "epoll"};
  for (int k = K_POLL; k <= K_EPOLL; k++) {
    long served = run_loop((enum kind)k);
    printf("%s loop served: %ld\n", names[k], served);
    CHECK(served == (long)NPAIRS * ROUNDS);
  }
  return finish("poll_loops");
}
