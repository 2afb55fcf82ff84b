/* pthread_cleanup: cleanup handlers pushed with pthread_cleanup_push in C run,
 * in LIFO order, when the thread leaves through pthread_exit (three calls
 * deep) or through deferred cancellation at a cancellation point (a read on
 * an empty pipe), and join reports 43 / PTHREAD_CANCELED; pthread_cleanup_pop(1)
 * runs one on the spot. Built as plain C (glibc's setjmp-based cleanup
 * buffers, no unwind tables needed) and again with -fexceptions (the unwinder
 * runs them), since a shim may honour one form and not the other. */
#define _GNU_SOURCE
#include "check.h"

#include <pthread.h>
#include <stdint.h>
#include <unistd.h>

static char order[64];
static int order_len;
static pthread_mutex_t order_lock = PTHREAD_MUTEX_INITIALIZER;

static void note(void* tag) {
  pthread_mutex_lock(&order_lock);
  if (order_len < (int)sizeof order - 1) order[order_len++] = (char)(intptr_t)tag;
  pthread_mutex_unlock(&order_lock);
}

static void exit_level0(void) { pthread_exit((void*)(intptr_t)43); }
static void exit_level1(void) { note((void*)(intptr_t)'x'), exit_level0(); }

static void* exit_thread(void* a) {
  (void)a;
  pthread_cleanup_push(note, (void*)(intptr_t)'A');
  pthread_cleanup_push(note, (void*)(intptr_t)'B');
  pthread_cleanup_push(note, (void*)(intptr_t)'P');
  pthread_cleanup_pop(1); /* runs 'P' now */
  exit_level1();
  pthread_cleanup_pop(0);
  pthread_cleanup_pop(0);
  return (void*)(intptr_t)7; /* not reached */
}

static int cancel_pipe[2];
static void* cancel_thread(void* a) {
  (void)a;
  char c;
  pthread_cleanup_push(note, (void*)(intptr_t)'C');
  pthread_cleanup_push(note, (void*)(intptr_t)'D');
  note((void*)(intptr_t)'r');
  ssize_t n = read(cancel_pipe[0], &c, 1); /* a cancellation point; nothing ever arrives */
  note((void*)(intptr_t)(n == 1 ? '!' : '?'));
  pthread_cleanup_pop(0);
  pthread_cleanup_pop(0);
  return NULL;
}

int main(void) {
  pthread_t t;
  void* r = NULL;
  CHECK_RC(pthread_create(&t, NULL, exit_thread, NULL), 0);
  CHECK_RC(pthread_join(t, &r), 0);
  printf("pthread_exit: value %ld, handlers ran: '%s'\n", (long)(intptr_t)r, order);
  CHECK((intptr_t)r == 43 && strcmp(order, "PxBA") == 0);

  order_len = 0;
  memset(order, 0, sizeof order);
  CHECK(pipe(cancel_pipe) == 0);
  CHECK_RC(pthread_create(&t, NULL, cancel_thread, NULL), 0);
  for (int i = 0; i < 5000; i++) { /* until it is inside read() (note 'r' taken) */
    pthread_mutex_lock(&order_lock);
    int in = order_len > 0;
    pthread_mutex_unlock(&order_lock);
    if (in) break;
    usleep(1000);
  }
  usleep(50 * 1000);
  CHECK_RC(pthread_cancel(t), 0);
  CHECK_RC(pthread_join(t, &r), 0);
  printf("cancelled in read: PTHREAD_CANCELED: %s, handlers ran: '%s'\n", yes(r == PTHREAD_CANCELED), order);
  CHECK(r == PTHREAD_CANCELED && strcmp(order, "rDC") == 0);
  return finish("pthread_cleanup");
}
