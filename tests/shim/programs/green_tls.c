/* green_tls: thread-local "current context" variables, kept the way an
 * interpreter keeps its own (Perl >= 5.36: PL_current_context). Each thread
 * stores its context in an exported __thread variable, blocks many times
 * (nanosleep, a contended mutex, a condition variable) and checks after each
 * block that the value is still its own. Under the shim, green threads share
 * their worker's TLS; the test names these variables in GREENRING_GREEN_TLS
 * so each green thread keeps its own copy. Also: a new thread starts from the
 * variable's initial value, not its creator's, and main keeps what a
 * constructor stored there. Built with -rdynamic so dlsym finds the names. */
#define _GNU_SOURCE
#include "check.h"

#include <pthread.h>
#include <stdint.h>

__thread void* gr_test_ctx;          /* registered, pointer-sized, image 0 */
__thread int gr_test_small = 0x5eed; /* registered as gr_test_small:4 */

enum { THREADS = 64, ROUNDS = 30 };

static int ctor_marker;
static int slots[THREADS];
static int initial_wrong, lost;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int generation;

__attribute__((constructor)) static void set_main_context(void) { gr_test_ctx = &ctor_marker; }

static void nap(long usec) {
  struct timespec ts = {0, usec * 1000};
  nanosleep(&ts, NULL);
}

static void* run(void* arg) {
  int i = (int)(intptr_t)arg;
  if (gr_test_ctx != NULL || gr_test_small != 0x5eed) __atomic_add_fetch(&initial_wrong, 1, __ATOMIC_RELAXED);
  gr_test_ctx = &slots[i];
  gr_test_small = i * 7;
  for (int r = 0; r < ROUNDS; r++) {
    switch (r % 3) {
      case 0:
        nap(200);
        break;
      case 1: /* held across a sleep: the others queue on it */
        CHECK_RC(pthread_mutex_lock(&mu), 0);
        nap(50);
        CHECK_RC(pthread_mutex_unlock(&mu), 0);
        break;
      case 2: { /* wait for the next generation, bumped by main */
        CHECK_RC(pthread_mutex_lock(&mu), 0);
        int g = generation;
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 2 * 1000 * 1000;
        if (until.tv_nsec >= 1000000000) until.tv_sec++, until.tv_nsec -= 1000000000;
        while (generation == g && pthread_cond_timedwait(&cv, &mu, &until) == 0) {
        }
        CHECK_RC(pthread_mutex_unlock(&mu), 0);
        break;
      }
    }
    if (gr_test_ctx != &slots[i] || gr_test_small != i * 7) __atomic_add_fetch(&lost, 1, __ATOMIC_RELAXED);
  }
  return NULL;
}

int main(void) {
  printf("main keeps the constructor's value: %s\n", gr_test_ctx == &ctor_marker ? "yes" : "no");
  gr_test_small = 1; /* the creator's value: new threads must not start from it */
  pthread_t t[THREADS];
  for (int i = 0; i < THREADS; i++) CHECK_RC(pthread_create(&t[i], NULL, run, (void*)(intptr_t)i), 0);
  for (int k = 0; k < 20; k++) {
    nap(1000);
    CHECK_RC(pthread_mutex_lock(&mu), 0);
    generation++;
    CHECK_RC(pthread_cond_broadcast(&cv), 0);
    CHECK_RC(pthread_mutex_unlock(&mu), 0);
  }
  for (int i = 0; i < THREADS; i++) CHECK_RC(pthread_join(t[i], NULL), 0);
  printf("threads %d, started with the initial values: %s, lost their context: %d times\n", THREADS,
         initial_wrong ? "no" : "yes", lost);
  printf("main still has its own: %s\n", gr_test_ctx == &ctor_marker && gr_test_small == 1 ? "yes" : "no");
  return check_failures ? 1 : 0;
}
