/* sleepers: 1,000 threads each sleeping 100 ms (nanosleep, usleep and
 * clock_nanosleep, relative and absolute) finish in well under a second. Under
 * the shim on one worker that is only true if a sleep suspends just its green
 * thread; a sleep that blocked the worker would take 100 s. Each thread also
 * checks it slept at least the 100 ms it asked for. */
#define _GNU_SOURCE
#include "check.h"

#include <pthread.h>
#include <stdint.h>
#include <unistd.h>

#define THREADS 1000
static int short_sleeps;

static void* sleeper(void* arg) {
  int i = (int)(intptr_t)arg;
  double t0 = now_s();
  switch (i % 4) {
    case 0: {
      struct timespec ts = {0, 100 * 1000 * 1000}, rem;
      while (nanosleep(&ts, &rem) != 0 && errno == EINTR) ts = rem;
      break;
    }
    case 1:
      CHECK(usleep(100 * 1000) == 0);
      break;
    case 2: {
      struct timespec ts = {0, 100 * 1000 * 1000};
      CHECK_RC(clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL), 0);
      break;
    }
    default: {
      struct timespec ts;
      clock_gettime(CLOCK_MONOTONIC, &ts);
      ts.tv_nsec += 100 * 1000 * 1000;
      if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
      CHECK_RC(clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL), 0);
      break;
    }
  }
  if (now_s() - t0 < 0.099) __atomic_add_fetch(&short_sleeps, 1, __ATOMIC_RELAXED);
  return NULL;
}

int main(int argc, char** argv) {
  /* --os-threads (the shim-only check): also report whether the 1,000
   * threads are really green, i.e. the process has few OS threads while they
   * sleep; without it the test could pass with the shim not loaded at all. */
  int report_os = argc > 1 && strcmp(argv[1], "--os-threads") == 0;
  static pthread_t t[THREADS];
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 64 * 1024);
  double t0 = now_s();
  int started = 0;
  for (int i = 0; i < THREADS; i++) {
    int rc = pthread_create(&t[i], &attr, sleeper, (void*)(intptr_t)i);
    CHECK_RC(rc, 0);
    if (rc == 0) started++;
  }
  int os = os_threads();
  for (int i = 0; i < started; i++) CHECK_RC(pthread_join(t[i], NULL), 0);
  double elapsed = now_s() - t0;
  pthread_attr_destroy(&attr);
  printf("threads: %d\n", started);
  printf("each slept >= 100ms: %s\n", yes(short_sleeps == 0));
  printf("concurrent: %s\n", yes(elapsed < 1.0));
  if (report_os) printf("os threads while sleeping < 100: %s\n", yes(os > 0 && os < 100));
  CHECK(started == THREADS && short_sleeps == 0 && elapsed < 1.0);
  if (elapsed >= 1.0) fprintf(stderr, "sleepers: elapsed %.3f s\n", elapsed);
  return finish("sleepers");
}
