/* gai_threads: 100 threads resolve the same set of names and addresses with
 * getaddrinfo / getnameinfo / gethostbyname_r (hosts-file names read from
 * /etc/hosts at run time, localhost, numeric forms, services, bad flags) and
 * print every answer field by field. Plain, glibc answers; under the shim,
 * greenring's c-ares path does: the outputs must be identical. Each thread's
 * answers must also equal thread 0's (no cross-talk between concurrent
 * lookups). */
#define _GNU_SOURCE
#include "check.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <pthread.h>
#include <sys/socket.h>

#define THREADS 100
#define OUT 16384

static const char* names[32];
static int nnames;

static void append(char* out, size_t* len, const char* fmt, ...) __attribute__((format(printf, 3, 4)));
#include <stdarg.h>
static void append(char* out, size_t* len, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(out + *len, OUT - *len, fmt, ap);
  va_end(ap);
  if (n > 0) *len += (size_t)n < OUT - *len ? (size_t)n : OUT - *len - 1;
}

static void gai(char* out, size_t* len, const char* host, const char* serv, int family, int socktype, int flags) {
  struct addrinfo h, *res = NULL;
  memset(&h, 0, sizeof h);
  h.ai_family = family;
  h.ai_socktype = socktype;
  h.ai_flags = flags;
  int rc = getaddrinfo(host, serv, &h, &res);
  append(out, len, "gai(%s,%s,%d,%d,%#x) = %d\n", host ? host : "-", serv ? serv : "-", family, socktype, flags, rc);
  for (struct addrinfo* a = res; a; a = a->ai_next) {
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (a->ai_family == AF_INET) {
      struct sockaddr_in* s = (struct sockaddr_in*)a->ai_addr;
      inet_ntop(AF_INET, &s->sin_addr, ip, sizeof ip);
      port = ntohs(s->sin_port);
    } else if (a->ai_family == AF_INET6) {
      struct sockaddr_in6* s = (struct sockaddr_in6*)a->ai_addr;
      inet_ntop(AF_INET6, &s->sin6_addr, ip, sizeof ip);
      port = ntohs(s->sin6_port);
    }
    append(out, len, "  %d %d %d %s %d len=%u canon=%s\n", a->ai_family, a->ai_socktype, a->ai_protocol, ip, port,
           (unsigned)a->ai_addrlen, a->ai_canonname ? a->ai_canonname : "-");
  }
  if (res) freeaddrinfo(res);
}

static void* resolve_all(void* arg) {
  char* out = arg;
  size_t len = 0;
  /* Not AF_INET6 for hosts-file names: with no IPv6 line glibc moves on to DNS,
   * whose answer depends on the machine's network, not on the shim. */
  static const int fams[] = {AF_UNSPEC, AF_INET};
  for (int i = 0; i < nnames; i++)
    for (int f = 0; f < 2; f++) {
      gai(out, &len, names[i], NULL, fams[f], SOCK_STREAM, AI_CANONNAME);
      gai(out, &len, names[i], "80", fams[f], 0, 0);
    }
  gai(out, &len, "127.0.0.1", "http", AF_UNSPEC, SOCK_STREAM, AI_NUMERICHOST);
  gai(out, &len, "::1", "443", AF_INET6, SOCK_DGRAM, AI_NUMERICHOST | AI_NUMERICSERV);
  gai(out, &len, "localhost", "no-such-service-xyz", AF_UNSPEC, SOCK_STREAM, 0);
  gai(out, &len, NULL, "8080", AF_INET, SOCK_STREAM, AI_PASSIVE);
  gai(out, &len, NULL, NULL, AF_UNSPEC, 0, 0);
  gai(out, &len, "localhost", NULL, AF_UNSPEC, 0, 0x10000);
  gai(out, &len, "not a host", NULL, AF_UNSPEC, 0, AI_NUMERICHOST);
  struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(22)};
  inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
  char host[NI_MAXHOST], serv[NI_MAXSERV];
  int rc = getnameinfo((struct sockaddr*)&sin, sizeof sin, host, sizeof host, serv, sizeof serv, 0);
  append(out, &len, "gni = %d %s %s\n", rc, rc ? "-" : host, rc ? "-" : serv);
  rc = getnameinfo((struct sockaddr*)&sin, sizeof sin, host, sizeof host, serv, sizeof serv, NI_NUMERICHOST | NI_NUMERICSERV);
  append(out, &len, "gni numeric = %d %s %s\n", rc, host, serv);
  struct hostent he, *hp = NULL;
  char buf[4096];
  int herr = 0;
  rc = gethostbyname_r("localhost", &he, buf, sizeof buf, &hp, &herr);
  append(out, &len, "ghbn_r = %d %s", rc, hp ? hp->h_name : "-");
  if (hp)
    for (char** a = hp->h_addr_list; *a; a++) {
      char ip[INET6_ADDRSTRLEN];
      inet_ntop(hp->h_addrtype, *a, ip, sizeof ip);
      append(out, &len, " %s", ip);
    }
  append(out, &len, "\n");
  return NULL;
}

int main(void) {
  static char store[32][256];
  names[nnames++] = "localhost";
  FILE* f = fopen("/etc/hosts", "r");
  char line[512];
  while (f && fgets(line, sizeof line, f) && nnames < 24) {
    char* p = strchr(line, '#');
    if (p) *p = 0;
    char* tok = strtok(line, " \t\n");
    if (!tok) continue;
    while ((tok = strtok(NULL, " \t\n")) && nnames < 24) {
      int dup = 0;
      for (int i = 0; i < nnames; i++) dup |= strcmp(names[i], tok) == 0;
      if (!dup) {
        snprintf(store[nnames], sizeof store[0], "%s", tok);
        names[nnames] = store[nnames];
        nnames++;
      }
    }
  }
  if (f) fclose(f);
  static char outs[THREADS][OUT];
  pthread_t t[THREADS];
  for (int i = 0; i < THREADS; i++) CHECK_RC(pthread_create(&t[i], NULL, resolve_all, outs[i]), 0);
  for (int i = 0; i < THREADS; i++) CHECK_RC(pthread_join(t[i], NULL), 0);
  int same = 1;
  for (int i = 1; i < THREADS; i++) same &= strcmp(outs[0], outs[i]) == 0;
  fputs(outs[0], stdout);
  printf("all %d threads agree: %s\n", THREADS, yes(same));
  CHECK(same);
  return finish("gai_threads");
}
