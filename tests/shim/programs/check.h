/* check.h: the one helper the shim test programs share. The programs are
 * ordinary pthread + libc code (never linked with greenring) whose stdout must
 * be byte-identical plain and under the LD_PRELOAD shim, so a failed check
 * reports on stderr (shown by the harness on failure) and the program exits
 * non-zero; stdout carries only deterministic facts. */
#ifndef SHIM_PROGRAMS_CHECK_H
#define SHIM_PROGRAMS_CHECK_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int check_failures;

#define CHECK(cond)                                                                          \
  do {                                                                                       \
    if (!(cond)) {                                                                           \
      fprintf(stderr, "%s:%d: CHECK failed: %s (errno=%d %s)\n", __FILE__, __LINE__, #cond, \
              errno, strerror(errno));                                                       \
      __atomic_add_fetch(&check_failures, 1, __ATOMIC_RELAXED);                              \
    }                                                                                        \
  } while (0)

/* A call expected to fail with exactly this errno. */
#define CHECK_ERR(call, err)                                                                  \
  do {                                                                                        \
    errno = 0;                                                                                \
    long check_rc_ = (long)(call);                                                            \
    int check_errno_ = errno;                                                                 \
    if (check_rc_ != -1 || check_errno_ != (err)) {                                           \
      fprintf(stderr, "%s:%d: %s: rc=%ld errno=%d (%s), want -1/%s\n", __FILE__, __LINE__,    \
              #call, check_rc_, check_errno_, strerror(check_errno_), #err);                  \
      __atomic_add_fetch(&check_failures, 1, __ATOMIC_RELAXED);                               \
    }                                                                                         \
  } while (0)

/* pthread-style calls return the error number instead of setting errno. */
#define CHECK_RC(call, want)                                                                  \
  do {                                                                                        \
    int check_rc_ = (call);                                                                   \
    if (check_rc_ != (want)) {                                                                \
      fprintf(stderr, "%s:%d: %s returned %d (%s), want %s\n", __FILE__, __LINE__, #call,     \
              check_rc_, strerror(check_rc_), #want);                                         \
      __atomic_add_fetch(&check_failures, 1, __ATOMIC_RELAXED);                               \
    }                                                                                         \
  } while (0)

static inline double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Absolute CLOCK_REALTIME deadline ms from now (pthread_*timed*, sem_timedwait). */
static inline struct timespec deadline_ms(long ms) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += ms / 1000;
  ts.tv_nsec += (ms % 1000) * 1000000L;
  if (ts.tv_nsec >= 1000000000L) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000L;
  }
  return ts;
}

static inline const char* yes(int b) { return b ? "yes" : "no"; }

/* The kernel's count of this process's threads (/proc/self/status): the
 * shim-only checks that threads really are green threads. */
static inline int os_threads(void) {
  FILE* f = fopen("/proc/self/status", "r");
  char line[256];
  int n = -1;
  while (f && fgets(line, sizeof line, f))
    if (sscanf(line, "Threads: %d", &n) == 1) break;
  if (f) fclose(f);
  return n;
}

/* Prints the verdict line and returns main's exit status. */
static inline int finish(const char* name) {
  int f = __atomic_load_n(&check_failures, __ATOMIC_RELAXED);
  printf("%s: %s\n", name, f ? "FAILED" : "ok");
  fflush(stdout);
  return f ? 1 : 0;
}

#endif
