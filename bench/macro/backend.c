/* macro_backend: the slow upstream for the latency case of bench/run_macro.sh.
 * Every line a client sends is answered with "ok\n" a fixed delay later
 * (default 50 ms). legacy_server --backend keeps one persistent connection to
 * it per client connection, so at 5,000 wrk connections this process holds
 * 5,000 connections with up to 5,000 answers pending.
 *
 * Shape: one thread, epoll, one timerfd. Because the delay is the same for
 * every request, requests become due in the order they arrive, so a FIFO is
 * already sorted by deadline: push at the tail (O(1)), pop due entries at the
 * head (O(1) each), and keep the timerfd armed at the head's deadline. That is
 * the degenerate, exact case of a timer wheel; no heap is needed.
 *
 * Cost control, since this process shares the CPUs with the server under
 * test: answers that fall due in the same timer tick are coalesced per
 * connection into one write, and reads drain a connection's whole buffer per
 * readiness event. A connection closed while answers are pending is recognised
 * by a generation number (fds are reused), and its answers are dropped. A
 * client that stops reading gets its answers buffered (pending count) and
 * flushed on EPOLLOUT.
 *
 *   macro_backend [--port P] [--delay-ms D]      prints "listening on <port>" */
#define _GNU_SOURCE
#include "common.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

struct conn {
  uint32_t gen;     /* bumped on close; queue entries carry the gen they were made for */
  uint32_t due;     /* answers due now, not yet (fully) written */
  uint32_t skip;    /* bytes of the first due answer already written */
  int open;
  int dirty;        /* on the dirty list this tick */
  int want_out;     /* EPOLLOUT armed */
};

struct entry {
  uint64_t deadline_ns;
  int fd;
  uint32_t gen;
};

static struct conn* conns;
static size_t nconns;
static struct entry* q;
static size_t qcap, qhead, qcount;
static int* dirty;
static size_t ndirty;
static int ep, tfd;
static uint64_t delay_ns = 50ull * 1000 * 1000;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void arm(uint64_t deadline_ns) {
  struct itimerspec its;
  memset(&its, 0, sizeof its);
  its.it_value.tv_sec = (time_t)(deadline_ns / 1000000000ull);
  its.it_value.tv_nsec = (long)(deadline_ns % 1000000000ull);
  timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);
}

static void push(int fd, uint64_t deadline) {
  if (qcount == qcap) {
    size_t ncap = qcap ? qcap * 2 : 4096;
    struct entry* n = malloc(ncap * sizeof *n);
    if (n == NULL) abort();
    for (size_t i = 0; i < qcount; ++i) n[i] = q[(qhead + i) % qcap];
    free(q);
    q = n;
    qcap = ncap;
    qhead = 0;
  }
  q[(qhead + qcount) % qcap] = (struct entry){deadline, fd, conns[fd].gen};
  if (qcount++ == 0) arm(deadline);
}

static void close_conn(int fd) {
  conns[fd].open = 0;
  conns[fd].gen++;
  conns[fd].due = 0;
  conns[fd].skip = 0;
  close(fd); /* also removes it from the epoll set */
}

/* Writes as many of fd's due answers as the socket takes. */
static void flush(int fd) {
  static const char oks[] = "ok\nok\nok\nok\nok\nok\nok\nok\nok\nok\nok\nok\nok\nok\nok\nok\n";
  struct conn* c = &conns[fd];
  while (c->due > 0) {
    uint32_t n = c->due < 16 ? c->due : 16;
    size_t len = 3 * (size_t)n - c->skip;
    ssize_t w = write(fd, oks + c->skip, len);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && errno == EAGAIN) break;
    if (w <= 0) {
      close_conn(fd);
      return;
    }
    /* Count whole answers; a split one leaves its written prefix in skip. */
    size_t done = (size_t)w + c->skip;
    c->due -= (uint32_t)(done / 3);
    c->skip = (uint32_t)(done % 3);
  }
  int want = c->due > 0;
  if (want != c->want_out) {
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | (want ? EPOLLOUT : 0u), .data.fd = fd};
    epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
    c->want_out = want;
  }
}

static void on_timer(void) {
  uint64_t expirations;
  if (read(tfd, &expirations, sizeof expirations) < 0 && errno != EAGAIN) return;
  uint64_t now = now_ns();
  while (qcount > 0 && q[qhead].deadline_ns <= now) {
    struct entry e = q[qhead];
    qhead = (qhead + 1) % qcap;
    --qcount;
    struct conn* c = &conns[e.fd];
    if (!c->open || c->gen != e.gen) continue;
    c->due++;
    if (!c->dirty) {
      c->dirty = 1;
      dirty[ndirty++] = e.fd;
    }
  }
  for (size_t i = 0; i < ndirty; ++i) {
    int fd = dirty[i];
    conns[fd].dirty = 0;
    if (conns[fd].open && !conns[fd].want_out) flush(fd);
  }
  ndirty = 0;
  if (qcount > 0) arm(q[qhead].deadline_ns);
}

static void on_readable(int fd) {
  char buf[16384];
  for (;;) {
    ssize_t r = read(fd, buf, sizeof buf);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && errno == EAGAIN) return;
    if (r <= 0) {
      close_conn(fd);
      return;
    }
    uint64_t deadline = now_ns() + delay_ns;
    for (ssize_t i = 0; i < r; ++i)
      if (buf[i] == '\n') push(fd, deadline);
    if ((size_t)r < sizeof buf) return;
  }
}

int main(int argc, char** argv) {
  int port = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--port") == 0) port = atoi(argv[i + 1]);
    else if (strcmp(argv[i], "--delay-ms") == 0) delay_ns = (uint64_t)atol(argv[i + 1]) * 1000000ull;
    else {
      fprintf(stderr, "usage: macro_backend [--port P] [--delay-ms D]\n");
      return 2;
    }
  }
  nconns = prepare_process();
  conns = calloc(nconns, sizeof *conns);
  dirty = malloc(nconns * sizeof *dirty);
  if (conns == NULL || dirty == NULL) return 1;

  int lfd = listen_tcp("127.0.0.1", port, SOCK_NONBLOCK, &port);
  if (lfd < 0) {
    perror("macro_backend: bind/listen");
    return 1;
  }

  ep = epoll_create1(EPOLL_CLOEXEC);
  tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
  epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
  ev.data.fd = tfd;
  epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &ev);

  printf("listening on %d\n", port);
  fflush(stdout);

  struct epoll_event evs[512];
  for (;;) {
    int n = epoll_wait(ep, evs, 512, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      perror("macro_backend: epoll_wait");
      return 1;
    }
    for (int i = 0; i < n; ++i) {
      int fd = evs[i].data.fd;
      if (fd == tfd) {
        on_timer();
      } else if (fd == lfd) {
        for (;;) {
          int c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (c < 0) break; /* EAGAIN, or EMFILE: the listen queue holds it until a close */
          if ((size_t)c >= nconns) {
            close(c);
            continue;
          }
          int one = 1;
          setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          conns[c].open = 1;
          conns[c].due = 0;
          conns[c].want_out = 0;
          struct epoll_event cev = {.events = EPOLLIN | EPOLLRDHUP, .data.fd = c};
          epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
        }
      } else if (conns[fd].open) {
        if (evs[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) on_readable(fd);
        if (conns[fd].open && (evs[i].events & EPOLLOUT)) flush(fd);
      }
    }
  }
}
