/* pthread_misc: the parts of the pthread API around thread identity and
 * lifetime, with exact counts: pthread_key destructors run once per thread
 * exit that left a non-NULL value (and again when a destructor re-sets it),
 * pthread_once runs its routine once among 16 racing threads, pthread_self
 * in a thread equals the handle pthread_create gave out, join returns the
 * value from return and from pthread_exit three calls deep (cleanup
 * handlers: pthread_cleanup.c), joining oneself is EDEADLK, detached threads
 * complete, a thread uses 1 MiB of stack when its attr asked for 2 MiB (and pthread_getattr_np says
 * so), and finally main itself calls pthread_exit while a detached thread is
 * still running: the process lives on until that thread calls exit(). */
#define _GNU_SOURCE
#include "check.h"

#include <pthread.h>
#include <semaphore.h>
#include <stdint.h>
#include <unistd.h>

static pthread_key_t key;
static int destructor_calls, resets_done;

static void destructor(void* v) {
  __atomic_add_fetch(&destructor_calls, 1, __ATOMIC_RELAXED);
  intptr_t tag = (intptr_t)v;
  if (tag == 2 && __atomic_add_fetch(&resets_done, 1, __ATOMIC_RELAXED) <= 4)
    pthread_setspecific(key, (void*)(intptr_t)3); /* one more round for this thread */
}

static void* key_thread(void* arg) {
  intptr_t mode = (intptr_t)arg; /* 0: leave NULL, 1: set, 2: set and re-set in destructor */
  CHECK(pthread_getspecific(key) == NULL);
  if (mode == 0) {
    pthread_setspecific(key, (void*)(intptr_t)1);
    pthread_setspecific(key, NULL);
  } else {
    pthread_setspecific(key, (void*)mode);
    CHECK(pthread_getspecific(key) == (void*)mode);
  }
  return NULL;
}

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int once_runs, once_seen_bad;
static void once_init(void) {
  usleep(20 * 1000); /* let the others pile up on the once */
  __atomic_add_fetch(&once_runs, 1, __ATOMIC_SEQ_CST);
}
static void* once_thread(void* a) {
  (void)a;
  CHECK_RC(pthread_once(&once, once_init), 0);
  if (__atomic_load_n(&once_runs, __ATOMIC_SEQ_CST) != 1) __atomic_add_fetch(&once_seen_bad, 1, __ATOMIC_RELAXED);
  return NULL;
}

static pthread_t seen_self[8];
static void* self_thread(void* a) {
  seen_self[(intptr_t)a] = pthread_self();
  CHECK_RC(pthread_join(pthread_self(), NULL), EDEADLK);
  return (void*)((intptr_t)a + 100);
}

static volatile int frames;
static void exit_level0(void) { pthread_exit((void*)(intptr_t)43); }
static void exit_level1(void) { frames++, exit_level0(); }
static void exit_level2(void) { frames++, exit_level1(); }
static void* exit_thread(void* a) {
  (void)a;
  exit_level2();
  return (void*)(intptr_t)7; /* not reached */
}

static sem_t detached_done;
static void* detached_thread(void* a) {
  (void)a;
  usleep(1000);
  sem_post(&detached_done);
  return NULL;
}

static size_t reported_stack;
static void* big_stack_thread(void* a) {
  (void)a;
  volatile char big[1024 * 1024];
  long want = 0, sum = 0;
  for (size_t i = 0; i < sizeof big; i += 512) big[i] = (char)(i / 512 % 100 + 1), want += i / 512 % 100 + 1;
  for (size_t i = 0; i < sizeof big; i += 512) sum += big[i];
  pthread_attr_t attr;
  if (pthread_getattr_np(pthread_self(), &attr) == 0) {
    pthread_attr_getstacksize(&attr, &reported_stack);
    pthread_attr_destroy(&attr);
  }
  return (void*)(intptr_t)(sum == want);
}

static sem_t main_gone;
static void* survivor(void* a) {
  (void)a;
  sem_wait(&main_gone);
  usleep(100 * 1000); /* main has surely reached pthread_exit by now */
  printf("detached thread ran on after main's pthread_exit: yes\n");
  exit(finish("pthread_misc"));
}

int main(void) {
  pthread_t t[32];
  CHECK_RC(pthread_key_create(&key, destructor), 0);
  for (int i = 0; i < 24; i++) CHECK_RC(pthread_create(&t[i], NULL, key_thread, (void*)(intptr_t)(i % 3)), 0);
  for (int i = 0; i < 24; i++) CHECK_RC(pthread_join(t[i], NULL), 0);
  /* 8 set-once threads: 1 call each; 8 re-setting threads: 2 calls for the first 4 */
  printf("key destructor calls: %d\n", destructor_calls);
  CHECK(destructor_calls == 8 + 8 + 4);
  CHECK(pthread_getspecific(key) == NULL);
  CHECK_RC(pthread_key_delete(key), 0);

  for (int i = 0; i < 16; i++) CHECK_RC(pthread_create(&t[i], NULL, once_thread, NULL), 0);
  for (int i = 0; i < 16; i++) CHECK_RC(pthread_join(t[i], NULL), 0);
  printf("pthread_once runs: %d, callers that saw it unfinished: %d\n", once_runs, once_seen_bad);
  CHECK(once_runs == 1 && once_seen_bad == 0);

  int same = 0, differs_from_main = 0, joined_ok = 0;
  for (int i = 0; i < 8; i++) CHECK_RC(pthread_create(&t[i], NULL, self_thread, (void*)(intptr_t)i), 0);
  for (int i = 0; i < 8; i++) {
    void* r = NULL;
    CHECK_RC(pthread_join(t[i], &r), 0);
    joined_ok += (intptr_t)r == i + 100;
    same += pthread_equal(t[i], seen_self[i]) != 0;
    differs_from_main += !pthread_equal(pthread_self(), seen_self[i]);
  }
  printf("pthread_self == create's handle: %d/8, != main: %d/8, join values: %d/8\n", same, differs_from_main,
         joined_ok);
  CHECK(same == 8 && differs_from_main == 8 && joined_ok == 8);
  CHECK_RC(pthread_join(pthread_self(), NULL), EDEADLK);

  void* r = NULL;
  CHECK_RC(pthread_create(&t[0], NULL, exit_thread, NULL), 0);
  CHECK_RC(pthread_join(t[0], &r), 0);
  printf("pthread_exit from depth 3: value %ld\n", (long)(intptr_t)r);
  CHECK((intptr_t)r == 43);

  sem_init(&detached_done, 0, 0);
  for (int i = 0; i < 16; i++) {
    CHECK_RC(pthread_create(&t[i], NULL, detached_thread, NULL), 0);
    CHECK_RC(pthread_detach(t[i]), 0);
  }
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  for (int i = 0; i < 16; i++) CHECK_RC(pthread_create(&t[i], &attr, detached_thread, NULL), 0);
  pthread_attr_destroy(&attr);
  for (int i = 0; i < 32; i++) sem_wait(&detached_done);
  printf("detached threads completed: 32\n");

  pthread_attr_init(&attr);
  CHECK_RC(pthread_attr_setstacksize(&attr, 2 * 1024 * 1024), 0);
  size_t asked = 0;
  pthread_attr_getstacksize(&attr, &asked);
  CHECK_RC(pthread_create(&t[0], &attr, big_stack_thread, NULL), 0);
  pthread_attr_destroy(&attr);
  CHECK_RC(pthread_join(t[0], &r), 0);
  printf("1 MiB used on a 2 MiB stack: %s, getattr_np stack >= 2 MiB: %s\n", yes((intptr_t)r == 1),
         yes(reported_stack >= asked));
  CHECK((intptr_t)r == 1 && asked == 2 * 1024 * 1024 && reported_stack >= asked);

  sem_init(&main_gone, 0, 0);
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  CHECK_RC(pthread_create(&t[0], &attr, survivor, NULL), 0);
  pthread_attr_destroy(&attr);
  printf("main calls pthread_exit\n");
  fflush(stdout);
  sem_post(&main_gone);
  pthread_exit(NULL);
}
