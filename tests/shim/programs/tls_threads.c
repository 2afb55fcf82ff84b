/* tls_threads: a plain C OpenSSL program (libssl + pthreads, no greenring):
 * a thread-per-connection TLS echo server and 200 client threads in one
 * process, blocking sockets, OpenSSL's own socket BIO. Each client verifies
 * the server certificate (CA = the self-signed cert, host "localhost"),
 * echoes 8 rounds of 4 KiB of its own pattern and checks every byte.
 *   tls_threads CERT KEY */
#define _GNU_SOURCE
#include "check.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/socket.h>
#include <unistd.h>

#define CLIENTS 200
#define ROUNDS 8
#define CHUNK 4096

static SSL_CTX* server_ctx;
static SSL_CTX* client_ctx;
static int port;
static long ok_clients, echoed;

static void* serve(void* arg) {
  int fd = (int)(intptr_t)arg;
  SSL* s = SSL_new(server_ctx);
  SSL_set_fd(s, fd);
  if (SSL_accept(s) == 1) {
    char buf[CHUNK];
    int n;
    while ((n = SSL_read(s, buf, sizeof buf)) > 0)
      if (SSL_write(s, buf, n) != n) break;
    SSL_shutdown(s);
  }
  SSL_free(s);
  close(fd);
  return NULL;
}

static void* acceptor(void* arg) {
  int lfd = (int)(intptr_t)arg;
  for (int i = 0; i < CLIENTS; i++) {
    int c = accept(lfd, NULL, NULL);
    if (c < 0) break;
    pthread_t t;
    if (pthread_create(&t, NULL, serve, (void*)(intptr_t)c) == 0) pthread_detach(t);
  }
  return NULL;
}

static int read_exact(SSL* s, char* p, int n) {
  int got = 0;
  while (got < n) {
    int r = SSL_read(s, p + got, n - got);
    if (r <= 0) return -1;
    got += r;
  }
  return got;
}

static void* client(void* arg) {
  int id = (int)(intptr_t)arg;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  if (connect(fd, (struct sockaddr*)&a, sizeof a) != 0) return close(fd), NULL;
  SSL* s = SSL_new(client_ctx);
  SSL_set_fd(s, fd);
  SSL_set_tlsext_host_name(s, "localhost");
  SSL_set1_host(s, "localhost");
  int good = SSL_connect(s) == 1 && SSL_get_verify_result(s) == X509_V_OK;
  char out[CHUNK], in[CHUNK];
  long bytes = 0;
  for (int r = 0; good && r < ROUNDS; r++) {
    for (int i = 0; i < CHUNK; i++) out[i] = (char)((id * 131 + r * 17 + i) & 0xff);
    good = SSL_write(s, out, CHUNK) == CHUNK && read_exact(s, in, CHUNK) == CHUNK && memcmp(in, out, CHUNK) == 0;
    bytes += good ? CHUNK : 0;
  }
  if (good) SSL_shutdown(s);
  SSL_free(s);
  close(fd);
  if (good) __atomic_add_fetch(&ok_clients, 1, __ATOMIC_RELAXED);
  __atomic_add_fetch(&echoed, bytes, __ATOMIC_RELAXED);
  return NULL;
}

int main(int argc, char** argv) {
  if (argc < 3) return fprintf(stderr, "usage: tls_threads CERT KEY\n"), 2;
  server_ctx = SSL_CTX_new(TLS_server_method());
  client_ctx = SSL_CTX_new(TLS_client_method());
  CHECK(SSL_CTX_use_certificate_chain_file(server_ctx, argv[1]) == 1);
  CHECK(SSL_CTX_use_PrivateKey_file(server_ctx, argv[2], SSL_FILETYPE_PEM) == 1);
  CHECK(SSL_CTX_load_verify_locations(client_ctx, argv[1], NULL) == 1);
  SSL_CTX_set_verify(client_ctx, SSL_VERIFY_PEER, NULL);
  int lfd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET};
  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  socklen_t al = sizeof a;
  CHECK(bind(lfd, (struct sockaddr*)&a, sizeof a) == 0 && listen(lfd, 1024) == 0);
  CHECK(getsockname(lfd, (struct sockaddr*)&a, &al) == 0);
  port = ntohs(a.sin_port);
  pthread_t acc, t[CLIENTS];
  CHECK_RC(pthread_create(&acc, NULL, acceptor, (void*)(intptr_t)lfd), 0);
  for (int i = 0; i < CLIENTS; i++) CHECK_RC(pthread_create(&t[i], NULL, client, (void*)(intptr_t)i), 0);
  for (int i = 0; i < CLIENTS; i++) CHECK_RC(pthread_join(t[i], NULL), 0);
  CHECK_RC(pthread_join(acc, NULL), 0);
  printf("clients ok: %ld/%d, bytes echoed and checked: %ld\n", ok_clients, CLIENTS, echoed);
  CHECK(ok_clients == CLIENTS && echoed == (long)CLIENTS * ROUNDS * CHUNK);
  return finish("tls_threads");
}
