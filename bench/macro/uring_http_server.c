/* uring_http_server: the ceiling for bench/run_macro.sh's hello rows. A
 * hand-written single-threaded io_uring HTTP/1.1 keep-alive server that sends
 * exactly legacy_server's bytes (both use examples/legacy_server/hello_http.h)
 * and does the least work a completion-based server can: no threads, no
 * stacks, no readiness step. greenring running legacy_server on one worker
 * does the same I/O plus a green thread per connection; the CPU per request
 * of this program is what that should be compared with.
 *
 *   uring_http_server [--port P] [--host ADDR]     prints "listening on <port>"
 *
 * Shape:
 *  - One ring, SINGLE_ISSUER|DEFER_TASKRUN when the kernel has them (6.1+),
 *    plain otherwise; one io_uring_submit_and_wait per loop iteration.
 *  - Accept is multishot (5.19+) and re-armed whenever a completion arrives
 *    without IORING_CQE_F_MORE; a kernel that rejects it (-EINVAL) gets
 *    single-shot accepts, re-armed after each one.
 *  - Each connection has exactly one operation in flight (a recv, or a send
 *    of every response owed for the requests already parsed), so its state
 *    can be freed as soon as a completion says it is done, and pipelined
 *    requests are answered with one send per batch, in order.
 *  - user_data is the connection pointer; the accept uses 0.
 * What it does not do: registered buffers/files and provided-buffer rings.
 * They would lower the ceiling further, but they are not what a green-thread
 * server could use for a read() into the caller's buffer, so they would make
 * the comparison about API shape, not runtime overhead. */
#define _GNU_SOURCE
#include "common.h"
#include "hello_http.h"

#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct conn {
  int fd;
  int closing;          /* close after the pending send completes */
  size_t inlen;
  size_t outlen, outoff;
  char in[HELLO_MAX_REQUEST];
  char out[8192];
};

static struct io_uring ring;
static int lfd;
static int multishot = 1;

static struct io_uring_sqe* sqe_get(void) {
  struct io_uring_sqe* s;
  while ((s = io_uring_get_sqe(&ring)) == NULL) io_uring_submit(&ring);
  return s;
}

static void arm_accept(void) {
  struct io_uring_sqe* s = sqe_get();
  if (multishot) io_uring_prep_multishot_accept(s, lfd, NULL, NULL, SOCK_CLOEXEC);
  else io_uring_prep_accept(s, lfd, NULL, NULL, SOCK_CLOEXEC);
  io_uring_sqe_set_data64(s, 0);
}

static void arm_recv(struct conn* c) {
  struct io_uring_sqe* s = sqe_get();
  io_uring_prep_recv(s, c->fd, c->in + c->inlen, sizeof c->in - c->inlen, 0);
  io_uring_sqe_set_data(s, c);
}

static void arm_send(struct conn* c) {
  struct io_uring_sqe* s = sqe_get();
  io_uring_prep_send(s, c->fd, c->out + c->outoff, c->outlen - c->outoff, MSG_NOSIGNAL);
  io_uring_sqe_set_data(s, c);
}

static void drop(struct conn* c) {
  close(c->fd);
  free(c);
}

/* Parses what arrived; queues a send of every response owed, or another recv. */
static void on_data(struct conn* c) {
  size_t off = 0;
  c->outlen = c->outoff = 0;
  for (;;) {
    size_t used = 0;
    int close_after = 0;
    enum hello_parse p = hello_parse_request(c->in + off, c->inlen - off, &used, &close_after);
    if (p == HELLO_INCOMPLETE) break;
    const char* resp = hello_response_bad;
    size_t rlen = sizeof hello_response_bad - 1;
    if (p == HELLO_REQUEST) {
      off += used;
      resp = close_after ? hello_response_close : hello_response_keepalive;
      rlen = close_after ? sizeof hello_response_close - 1 : sizeof hello_response_keepalive - 1;
    }
    if (c->outlen + rlen > sizeof c->out) break; /* answer the rest after this send */
    memcpy(c->out + c->outlen, resp, rlen);
    c->outlen += rlen;
    if (p == HELLO_BAD || close_after) {
      c->closing = 1;
      break;
    }
  }
  memmove(c->in, c->in + off, c->inlen - off);
  c->inlen -= off;
  if (c->outlen > 0) arm_send(c);
  else arm_recv(c);
}

int main(int argc, char** argv) {
  int port = 0;
  const char* host = "127.0.0.1";
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--port") == 0) port = atoi(argv[i + 1]);
    else if (strcmp(argv[i], "--host") == 0) host = argv[i + 1];
    else {
      fprintf(stderr, "usage: uring_http_server [--port P] [--host ADDR]\n");
      return 2;
    }
  }
  prepare_process();
  lfd = listen_tcp(host, port, 0, &port);
  if (lfd < 0) {
    perror("uring_http_server: bind/listen");
    return 1;
  }

  struct io_uring_params p;
  memset(&p, 0, sizeof p);
  p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_CQSIZE;
  p.cq_entries = 32768;
  int rc = io_uring_queue_init_params(4096, &ring, &p);
  if (rc == -EINVAL) {
    memset(&p, 0, sizeof p);
    p.flags = IORING_SETUP_CQSIZE;
    p.cq_entries = 32768;
    rc = io_uring_queue_init_params(4096, &ring, &p);
  }
  if (rc != 0) {
    fprintf(stderr, "uring_http_server: io_uring_queue_init: %s\n", strerror(-rc));
    return 1;
  }
  arm_accept();
  printf("listening on %d\n", port);
  fflush(stdout);

  for (;;) {
    rc = io_uring_submit_and_wait(&ring, 1);
    if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) {
      fprintf(stderr, "uring_http_server: io_uring_submit_and_wait: %s\n", strerror(-rc));
      return 1;
    }
    struct io_uring_cqe* cqe;
    unsigned head, seen = 0;
    io_uring_for_each_cqe(&ring, head, cqe) {
      ++seen;
      int res = cqe->res;
      if (cqe->user_data == 0) {
        if (res >= 0) {
          int one = 1;
          setsockopt(res, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          struct conn* c = malloc(sizeof *c);
          if (c == NULL) {
            close(res);
          } else {
            c->fd = res;
            c->closing = 0;
            c->inlen = c->outlen = c->outoff = 0;
            arm_recv(c);
          }
        } else if (res == -EINVAL && multishot) {
          multishot = 0; /* kernel without multishot accept */
        }
        if (!(cqe->flags & IORING_CQE_F_MORE)) arm_accept();
        continue;
      }
      struct conn* c = io_uring_cqe_get_data(cqe);
      if (c->outlen > 0) { /* a send completed */
        if (res <= 0) {
          drop(c);
          continue;
        }
        c->outoff += (size_t)res;
        if (c->outoff < c->outlen) {
          arm_send(c);
        } else if (c->closing) {
          drop(c);
        } else {
          c->outlen = c->outoff = 0;
          on_data(c); /* requests held back by a full out buffer, else a recv */
        }
      } else { /* a recv completed */
        if (res == -EINTR || res == -EAGAIN) {
          arm_recv(c);
          continue;
        }
        if (res <= 0) {
          drop(c);
          continue;
        }
        c->inlen += (size_t)res;
        on_data(c);
      }
    }
    io_uring_cq_advance(&ring, seen);
  }
}
