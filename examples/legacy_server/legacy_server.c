/* legacy_server: an ordinary thread-per-connection HTTP/1.1 server, written
 * the way countless C servers are: blocking accept/read/write, one pthread per
 * connection. It is the program greenring's LD_PRELOAD shim exists for, so it
 * deliberately knows nothing of greenring: C11 + pthreads + libc, no greenring
 * header, not linked with it. Run it plain and it uses OS threads; run it as
 * `greenring run -- legacy_server ...` and the same binary's threads become
 * green threads.
 *
 *   legacy_server [--port P] [--host ADDR] [--backend HOST:PORT] [--pool N] [--stack-kib K]
 *
 *   --port P      listen port; 0 (default) picks an ephemeral one. The server
 *                 prints "listening on <port>" on stdout (flushed) once it
 *                 accepts, so scripts can read the port.
 *   --host ADDR   bind address (default 127.0.0.1).
 *   --backend H:P the latency case: before answering each request, one round
 *                 trip (send "req\n", read one line) over a persistent blocking
 *                 TCP connection to H:P, opened per client connection on its
 *                 first request. bench/macro/backend answers each line after a
 *                 fixed delay, so the server holds one blocked thread per
 *                 waiting client: the case thread-per-connection pays for.
 *   --pool N      the thread-pool variant: N worker threads take accepted
 *                 connections from a queue (pthread mutex + condvar) and each
 *                 serves its connection until the client closes it. This is
 *                 the classic bounded pool; with keep-alive clients its
 *                 throughput is N / (backend latency) and connections beyond N
 *                 wait in the queue. It is here as the other answer to "too
 *                 many threads", so the benchmark can show what it costs.
 *   --stack-kib K thread stack size (default 256 KiB). Many real servers lower
 *                 glibc's 8 MiB default (ulimit -s) to something like this so
 *                 thousands of threads fit in the address space and in
 *                 vm.max_map_count; it changes no behaviour here.
 *
 * Protocol (hello_http.h): every request gets "hello\n" with a correct
 * Content-Length; pipelined requests are answered in order, with one write per
 * batch of requests already in the buffer; "Connection: close" (or HTTP/1.0
 * without keep-alive) closes after the response; EOF closes.
 *
 * Error handling is what a careful small server does: EINTR retried, SIGPIPE
 * ignored, accept's EMFILE/ENFILE back off 10 ms instead of spinning, a failed
 * pthread_create drops that one connection. */
#define _GNU_SOURCE
#include "hello_http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static struct sockaddr_storage backend_addr;
static socklen_t backend_addrlen; /* 0: no backend */
static size_t stack_bytes = 256 * 1024;

static int write_all(int fd, const char* p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

static int connect_backend(void) {
  int fd = socket(backend_addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  while (connect(fd, (struct sockaddr*)&backend_addr, backend_addrlen) != 0) {
    if (errno == EINTR) continue; /* a simple server retries; see connect(2) on EINTR + EALREADY */
    close(fd);
    return -1;
  }
  return fd;
}

/* One request/response round trip to the backend: "req\n" out, one line back. */
static int backend_round_trip(int bfd) {
  if (write_all(bfd, "req\n", 4) != 0) return -1;
  char line[64];
  size_t got = 0;
  for (;;) {
    ssize_t r = read(bfd, line + got, sizeof line - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    got += (size_t)r;
    if (memchr(line, '\n', got) != NULL) return 0; /* one request in flight: nothing follows it */
    if (got == sizeof line) return -1;
  }
}

/* Serves one client connection until EOF, error or Connection: close. */
static void serve(int fd) {
  char in[HELLO_MAX_REQUEST];
  char out[8192];
  size_t len = 0;
  int bfd = -1, done = 0;
  while (!done) {
    ssize_t r = read(fd, in + len, sizeof in - len);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    len += (size_t)r;

    size_t off = 0, outlen = 0;
    for (;;) {
      size_t used = 0;
      int close_after = 0;
      enum hello_parse p = hello_parse_request(in + off, len - off, &used, &close_after);
      if (p == HELLO_INCOMPLETE) break;
      const char* resp = hello_response_bad;
      size_t rlen = sizeof hello_response_bad - 1;
      if (p == HELLO_REQUEST) {
        if (backend_addrlen != 0) {
          if (bfd < 0) bfd = connect_backend();
          if (bfd < 0 || backend_round_trip(bfd) != 0) {
            done = 1;
            break;
          }
        }
        off += used;
        resp = close_after ? hello_response_close : hello_response_keepalive;
        rlen = close_after ? sizeof hello_response_close - 1 : sizeof hello_response_keepalive - 1;
      }
      if (outlen + rlen > sizeof out) {
        if (write_all(fd, out, outlen) != 0) {
          done = 1;
          break;
        }
        outlen = 0;
      }
      memcpy(out + outlen, resp, rlen);
      outlen += rlen;
      if (p == HELLO_BAD || close_after) {
        done = 1;
        break;
      }
    }
    if (outlen > 0 && write_all(fd, out, outlen) != 0) done = 1;
    memmove(in, in + off, len - off);
    len -= off;
  }
  if (bfd >= 0) close(bfd);
  close(fd);
}

/* ---- thread per connection ---- */

static void* connection_thread(void* arg) {
  serve((int)(intptr_t)arg);
  return NULL;
}

/* ---- the --pool variant: a queue of accepted fds ---- */

static pthread_mutex_t queue_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t queue_nonempty = PTHREAD_COND_INITIALIZER;
static int* queue_fds;
static size_t queue_cap, queue_head, queue_count;

static void queue_push(int fd) {
  pthread_mutex_lock(&queue_lock);
  if (queue_count == queue_cap) {
    size_t ncap = queue_cap ? queue_cap * 2 : 1024;
    int* n = malloc(ncap * sizeof *n);
    if (n == NULL) {
      pthread_mutex_unlock(&queue_lock);
      close(fd);
      return;
    }
    for (size_t i = 0; i < queue_count; ++i) n[i] = queue_fds[(queue_head + i) % queue_cap];
    free(queue_fds);
    queue_fds = n;
    queue_cap = ncap;
    queue_head = 0;
  }
  queue_fds[(queue_head + queue_count) % queue_cap] = fd;
  ++queue_count;
  pthread_cond_signal(&queue_nonempty);
  pthread_mutex_unlock(&queue_lock);
}

static void* pool_worker(void* arg) {
  (void)arg;
  for (;;) {
    pthread_mutex_lock(&queue_lock);
    while (queue_count == 0) pthread_cond_wait(&queue_nonempty, &queue_lock);
    int fd = queue_fds[queue_head];
    queue_head = (queue_head + 1) % queue_cap;
    --queue_count;
    pthread_mutex_unlock(&queue_lock);
    serve(fd);
  }
  return NULL;
}

static int start_thread(void* (*fn)(void*), void* arg) {
  pthread_attr_t a;
  pthread_attr_init(&a);
  pthread_attr_setstacksize(&a, stack_bytes);
  pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
  pthread_t t;
  int rc = pthread_create(&t, &a, fn, arg);
  pthread_attr_destroy(&a);
  return rc;
}

static void usage(void) {
  fprintf(stderr,
          "usage: legacy_server [--port P] [--host ADDR] [--backend HOST:PORT] [--pool N] [--stack-kib K]\n");
  exit(2);
}

static void resolve_backend(const char* spec) {
  const char* colon = strrchr(spec, ':');
  if (colon == NULL || colon == spec) usage();
  char host[256];
  size_t hl = (size_t)(colon - spec);
  if (hl >= sizeof host) usage();
  memcpy(host, spec, hl);
  host[hl] = '\0';
  struct addrinfo hints, *res = NULL;
  memset(&hints, 0, sizeof hints);
  hints.ai_socktype = SOCK_STREAM;
  int rc = getaddrinfo(host, colon + 1, &hints, &res);
  if (rc != 0) {
    fprintf(stderr, "legacy_server: backend %s: %s\n", spec, gai_strerror(rc));
    exit(1);
  }
  memcpy(&backend_addr, res->ai_addr, res->ai_addrlen);
  backend_addrlen = res->ai_addrlen;
  freeaddrinfo(res);
}

int main(int argc, char** argv) {
  int port = 0, pool = 0;
  const char* host = "127.0.0.1";
  for (int i = 1; i < argc; ++i) {
    if (i + 1 >= argc) usage();
    if (strcmp(argv[i], "--port") == 0) port = atoi(argv[++i]);
    else if (strcmp(argv[i], "--host") == 0) host = argv[++i];
    else if (strcmp(argv[i], "--backend") == 0) resolve_backend(argv[++i]);
    else if (strcmp(argv[i], "--pool") == 0) pool = atoi(argv[++i]);
    else if (strcmp(argv[i], "--stack-kib") == 0) stack_bytes = (size_t)atol(argv[++i]) * 1024;
    else usage();
  }
  if (port < 0 || port > 65535 || pool < 0 || stack_bytes < 16384) usage();
  signal(SIGPIPE, SIG_IGN);

  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((unsigned short)port);
  if (inet_pton(AF_INET, host, &a.sin_addr) != 1) usage();
  if (bind(lfd, (struct sockaddr*)&a, sizeof a) != 0 || listen(lfd, SOMAXCONN) != 0) {
    perror("legacy_server: bind/listen");
    return 1;
  }
  socklen_t al = sizeof a;
  getsockname(lfd, (struct sockaddr*)&a, &al);

  for (int i = 0; i < pool; ++i) {
    if (start_thread(pool_worker, NULL) != 0) {
      fprintf(stderr, "legacy_server: cannot start pool thread %d\n", i);
      return 1;
    }
  }
  printf("listening on %d\n", ntohs(a.sin_port));
  fflush(stdout);

  int warned = 0;
  for (;;) {
    int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
        continue;
      }
      if (errno == EBADF || errno == EINVAL || errno == ENOTSOCK || errno == EFAULT) {
        perror("legacy_server: accept");
        return 1;
      }
      continue; /* EINTR, ECONNABORTED, and the network errors accept(2) says to treat like EAGAIN */
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (pool > 0) {
      queue_push(fd);
    } else if (start_thread(connection_thread, (void*)(intptr_t)fd) != 0) {
      if (!warned) fprintf(stderr, "legacy_server: pthread_create failed; dropping connections\n");
      warned = 1;
      close(fd);
    }
  }
}
