/* tpc_server: a thread-per-connection TCP server on 127.0.0.1 serving 2,000
 * concurrent clients, the clients being threads of the same program. Every
 * client connects and does its first exchange, then all 2,000 wait on one
 * barrier so the connections and their handlers are live at the same time (the
 * server counts the peak of live handlers), then each does 4 more exchanges. A request carries a deterministic
 * pseudo-random payload (1..4096 bytes) and its FNV-1a checksum; the server
 * verifies it and answers with the payload reversed and the checksum of that.
 * Blocking accept/read/write/send/recv, partial transfers handled as libc
 * permits them. Under the shim this runs on 1 worker: 4,001 green threads. */
#define _GNU_SOURCE
#include "check.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/socket.h>
#include <unistd.h>

#define CLIENTS 2000
#define EXCHANGES 5
#define MAXPAY 4096

static struct sockaddr_in server_addr;
static int listen_fd;
static pthread_barrier_t all_connected;
static pthread_mutex_t stats_lock = PTHREAD_MUTEX_INITIALIZER;
static int live_handlers, peak_handlers, handled_conns;
static long server_bytes;
static long client_bytes;
static int bad_replies;

static uint64_t fnv1a(const unsigned char* p, size_t n) {
  uint64_t h = 1469598103934665603ULL;
  for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ULL;
  return h;
}

static uint32_t xorshift(uint32_t* s) {
  uint32_t x = *s;
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  return *s = x;
}

static int read_full(int fd, void* buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(fd, (char*)buf + got, n - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return r == 0 && got == 0 ? 0 : -1;
    got += (size_t)r;
  }
  return 1;
}

static int write_full(int fd, const void* buf, size_t n) {
  size_t put = 0;
  while (put < n) {
    ssize_t r = send(fd, (const char*)buf + put, n - put, MSG_NOSIGNAL);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    put += (size_t)r;
  }
  return 0;
}

struct hdr {
  uint32_t len;
  uint32_t seq;
  uint64_t sum;
};

static void* handler(void* arg) {
  int fd = (int)(intptr_t)arg;
  unsigned char buf[MAXPAY], out[MAXPAY];
  long bytes = 0;
  pthread_mutex_lock(&stats_lock);
  if (++live_handlers > peak_handlers) peak_handlers = live_handlers;
  pthread_mutex_unlock(&stats_lock);
  for (;;) {
    struct hdr h;
    int r = read_full(fd, &h, sizeof h);
    if (r == 0) break;  /* orderly EOF after the last exchange */
    CHECK(r == 1);
    if (r != 1) break;
    CHECK(h.len >= 1 && h.len <= MAXPAY);
    if (h.len < 1 || h.len > MAXPAY) break;
    CHECK(read_full(fd, buf, h.len) == 1);
    CHECK(fnv1a(buf, h.len) == h.sum);
    for (uint32_t i = 0; i < h.len; i++) out[i] = buf[h.len - 1 - i];
    h.sum = fnv1a(out, h.len);
    CHECK(write_full(fd, &h, sizeof h) == 0);
    CHECK(write_full(fd, out, h.len) == 0);
    bytes += h.len;
  }
  close(fd);
  pthread_mutex_lock(&stats_lock);
  live_handlers--;
  handled_conns++;
  server_bytes += bytes;
  pthread_mutex_unlock(&stats_lock);
  return NULL;
}

static void* acceptor(void* arg) {
  (void)arg;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 256 * 1024);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  for (int i = 0; i < CLIENTS; i++) {
    int fd = accept(listen_fd, NULL, NULL);
    CHECK(fd >= 0);
    if (fd < 0) continue;
    pthread_t t;
    CHECK_RC(pthread_create(&t, &attr, handler, (void*)(intptr_t)fd), 0);
  }
  pthread_attr_destroy(&attr);
  return NULL;
}

static void* client(void* arg) {
  int id = (int)(intptr_t)arg;
  unsigned char buf[MAXPAY], back[MAXPAY];
  uint32_t rng = 2463534242u ^ (uint32_t)(id * 2654435761u);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  CHECK(fd >= 0);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  int rc = connect(fd, (struct sockaddr*)&server_addr, sizeof server_addr);
  CHECK(rc == 0);
  long bytes = 0;
  int bad = 0;
  for (int s = 0; rc == 0 && s < EXCHANGES; s++) {
    if (s == 1) {
      /* After one exchange our handler is surely running; once everyone is
       * here all 2,000 handlers are live at once. */
      int b = pthread_barrier_wait(&all_connected);
      CHECK(b == 0 || b == PTHREAD_BARRIER_SERIAL_THREAD);
    }
    struct hdr h;
    h.len = 1 + xorshift(&rng) % MAXPAY;
    h.seq = (uint32_t)s;
    for (uint32_t i = 0; i < h.len; i++) buf[i] = (unsigned char)xorshift(&rng);
    h.sum = fnv1a(buf, h.len);
    if (write(fd, &h, sizeof h) != (ssize_t)sizeof h || write_full(fd, buf, h.len) != 0) {
      bad++;
      break;
    }
    struct hdr r;
    if (read_full(fd, &r, sizeof r) != 1 || r.len != h.len || r.seq != h.seq ||
        recv(fd, back, r.len, MSG_WAITALL) != (ssize_t)r.len) {
      bad++;
      break;
    }
    for (uint32_t i = 0; i < h.len; i++)
      if (back[i] != buf[h.len - 1 - i]) {
        bad++;
        break;
      }
    if (fnv1a(back, r.len) != r.sum) bad++;
    bytes += h.len;
  }
  shutdown(fd, SHUT_WR);
  char c;
  CHECK(read(fd, &c, 1) == 0); /* the server closes after our EOF */
  close(fd);
  pthread_mutex_lock(&stats_lock);
  client_bytes += bytes;
  bad_replies += bad;
  pthread_mutex_unlock(&stats_lock);
  return NULL;
}

int main(void) {
  listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  CHECK(listen_fd >= 0);
  int one = 1;
  setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  memset(&server_addr, 0, sizeof server_addr);
  server_addr.sin_family = AF_INET;
  server_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  CHECK(bind(listen_fd, (struct sockaddr*)&server_addr, sizeof server_addr) == 0);
  socklen_t len = sizeof server_addr;
  CHECK(getsockname(listen_fd, (struct sockaddr*)&server_addr, &len) == 0);
  CHECK(listen(listen_fd, 4096) == 0);

  CHECK_RC(pthread_barrier_init(&all_connected, NULL, CLIENTS), 0);
  pthread_t acc;
  CHECK_RC(pthread_create(&acc, NULL, acceptor, NULL), 0);

  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 256 * 1024);
  static pthread_t clients[CLIENTS];
  int started = 0;
  for (int i = 0; i < CLIENTS; i++) {
    int rc = pthread_create(&clients[i], &attr, client, (void*)(intptr_t)i);
    CHECK_RC(rc, 0);
    if (rc == 0) started++;
  }
  pthread_attr_destroy(&attr);
  for (int i = 0; i < started; i++) CHECK_RC(pthread_join(clients[i], NULL), 0);
  CHECK_RC(pthread_join(acc, NULL), 0);
  /* Handlers are detached: wait until every one has accounted for itself. */
  for (int spins = 0;; spins++) {
    pthread_mutex_lock(&stats_lock);
    int done = handled_conns;
    pthread_mutex_unlock(&stats_lock);
    if (done == CLIENTS || spins > 20000) break;
    usleep(1000);
  }
  close(listen_fd);
  pthread_barrier_destroy(&all_connected);

  printf("clients: %d\n", started);
  printf("connections handled: %d\n", handled_conns);
  printf("exchanges verified: %s\n", yes(bad_replies == 0));
  printf("client bytes == server bytes: %s\n", yes(client_bytes == server_bytes));
  printf("payload bytes: %ld\n", client_bytes);
  printf("peak concurrent handlers == %d: %s\n", CLIENTS, yes(peak_handlers == CLIENTS));
  CHECK(started == CLIENTS && handled_conns == CLIENTS && bad_replies == 0);
  CHECK(peak_handlers == CLIENTS);
  return finish("tpc_server");
}
