/* sync_pthread: the pthread synchronisation objects with their exact libc
 * return values, and stress with exact counts (run with 4 workers, so green
 * threads contend across OS threads as well as within one):
 *  - mutex normal (stress), recursive (depth, EPERM for a non-owner),
 *    errorcheck (EDEADLK on relock, EPERM on foreign unlock), trylock EBUSY,
 *    timedlock ETIMEDOUT after about the timeout;
 *  - condvar producer/consumer over a bounded ring (exact sum and count),
 *    timedwait ETIMEDOUT, broadcast waking every waiter;
 *  - semaphores: trywait EAGAIN, timedwait ETIMEDOUT, cross-thread post/wait;
 *  - rwlock: concurrent readers, trywrlock/tryrdlock EBUSY, writers keeping an
 *    invariant readers verify;
 *  - barrier: exactly one PTHREAD_BARRIER_SERIAL_THREAD per round;
 *  - spinlock stress;
 *  - objects initialised by libc rather than pthread_*_init (the _NP static
 *    initialisers, a sem_open semaphore);
 *  - bad timeouts on free objects: where glibc checks the clock and the
 *    timespec (before trying: rwlock, sem, condvar; mutexes take a free lock
 *    whatever the timespec says, but check the clock first). */
#define _GNU_SOURCE
#include "check.h"

#include <pthread.h>
#include <fcntl.h>
#include <semaphore.h>
#include <stdint.h>
#include <unistd.h>

#define NT 8

static void run_threads(int n, void* (*fn)(void*)) {
  pthread_t t[64];
  for (int i = 0; i < n; i++) CHECK_RC(pthread_create(&t[i], NULL, fn, (void*)(intptr_t)i), 0);
  for (int i = 0; i < n; i++) CHECK_RC(pthread_join(t[i], NULL), 0);
}

/* ---- mutexes ---- */
static pthread_mutex_t m_normal = PTHREAD_MUTEX_INITIALIZER;
static long counter;
#define MUTEX_ITERS 20000

static void* mutex_stress(void* a) {
  (void)a;
  for (int i = 0; i < MUTEX_ITERS; i++) {
    pthread_mutex_lock(&m_normal);
    long v = counter;
    if ((i & 255) == 0) sched_yield(); /* hold it across a switch now and then */
    counter = v + 1;
    pthread_mutex_unlock(&m_normal);
  }
  return NULL;
}

static pthread_mutex_t m_held;
static pthread_mutex_t m_rec, m_err;
static sem_t held_go, held_done;

/* Holds m_held until told to let go; the main thread probes it meanwhile. */
static void* holder(void* a) {
  (void)a;
  pthread_mutex_lock(&m_held);
  sem_post(&held_done);
  sem_wait(&held_go);
  pthread_mutex_unlock(&m_held);
  return NULL;
}

static void* foreign_unlock(void* a) {
  (void)a;
  CHECK_RC(pthread_mutex_unlock(&m_err), EPERM);
  CHECK_RC(pthread_mutex_unlock(&m_rec), EPERM);
  CHECK_RC(pthread_mutex_trylock(&m_rec), EBUSY);
  return NULL;
}

static void test_mutexes(void) {
  run_threads(NT, mutex_stress);
  printf("mutex stress count: %ld\n", counter);
  CHECK(counter == (long)NT * MUTEX_ITERS);

  pthread_mutexattr_t a;
  pthread_mutexattr_init(&a);
  pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
  CHECK_RC(pthread_mutex_init(&m_rec, &a), 0);
  pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ERRORCHECK);
  CHECK_RC(pthread_mutex_init(&m_err, &a), 0);
  pthread_mutexattr_destroy(&a);
  CHECK_RC(pthread_mutex_init(&m_held, NULL), 0);

  CHECK_RC(pthread_mutex_lock(&m_rec), 0);
  CHECK_RC(pthread_mutex_lock(&m_rec), 0);
  CHECK_RC(pthread_mutex_trylock(&m_rec), 0);
  CHECK_RC(pthread_mutex_lock(&m_err), 0);
  CHECK_RC(pthread_mutex_lock(&m_err), EDEADLK);
  CHECK_RC(pthread_mutex_trylock(&m_err), EBUSY);
  pthread_t t;
  CHECK_RC(pthread_create(&t, NULL, foreign_unlock, NULL), 0);
  CHECK_RC(pthread_join(t, NULL), 0);
  for (int i = 0; i < 3; i++) CHECK_RC(pthread_mutex_unlock(&m_rec), 0);
  CHECK_RC(pthread_mutex_unlock(&m_rec), EPERM);
  CHECK_RC(pthread_mutex_unlock(&m_err), 0);
  CHECK_RC(pthread_mutex_unlock(&m_err), EPERM);
  printf("recursive depth 3 and errorcheck EDEADLK/EPERM: checked\n");

  sem_init(&held_go, 0, 0);
  sem_init(&held_done, 0, 0);
  CHECK_RC(pthread_create(&t, NULL, holder, NULL), 0);
  sem_wait(&held_done);
  CHECK_RC(pthread_mutex_trylock(&m_held), EBUSY);
  struct timespec dl = deadline_ms(150);
  double t0 = now_s();
  CHECK_RC(pthread_mutex_timedlock(&m_held, &dl), ETIMEDOUT);
  double waited = now_s() - t0;
  printf("timedlock ETIMEDOUT after >=140ms: %s\n", yes(waited >= 0.14));
  CHECK(waited >= 0.14 && waited < 5);
  sem_post(&held_go);
  dl = deadline_ms(10000);
  CHECK_RC(pthread_mutex_timedlock(&m_held, &dl), 0); /* released by holder: succeeds */
  CHECK_RC(pthread_mutex_unlock(&m_held), 0);
  CHECK_RC(pthread_join(t, NULL), 0);
  CHECK_RC(pthread_mutex_destroy(&m_held), 0);
  CHECK_RC(pthread_mutex_destroy(&m_rec), 0);
  CHECK_RC(pthread_mutex_destroy(&m_err), 0);
}

/* ---- condition variables ---- */
#define RING 16
#define PRODUCERS 4
#define CONSUMERS 4
#define ITEMS 5000
static pthread_mutex_t q_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t q_not_empty = PTHREAD_COND_INITIALIZER;
static pthread_cond_t q_not_full = PTHREAD_COND_INITIALIZER;
static long ring[RING];
static int q_head, q_count, producers_left = PRODUCERS;
static long consumed_sum, consumed_n;

static void* producer(void* a) {
  long id = (intptr_t)a;
  for (long i = 1; i <= ITEMS; i++) {
    pthread_mutex_lock(&q_lock);
    while (q_count == RING) pthread_cond_wait(&q_not_full, &q_lock);
    ring[(q_head + q_count++) % RING] = id * 1000000 + i;
    pthread_cond_signal(&q_not_empty);
    pthread_mutex_unlock(&q_lock);
  }
  pthread_mutex_lock(&q_lock);
  if (--producers_left == 0) pthread_cond_broadcast(&q_not_empty);
  pthread_mutex_unlock(&q_lock);
  return NULL;
}

static void* consumer(void* a) {
  (void)a;
  long sum = 0, n = 0;
  pthread_mutex_lock(&q_lock);
  for (;;) {
    while (q_count == 0 && producers_left > 0) pthread_cond_wait(&q_not_empty, &q_lock);
    if (q_count == 0) break;
    sum += ring[q_head];
    q_head = (q_head + 1) % RING;
    q_count--;
    n++;
    pthread_cond_signal(&q_not_full);
  }
  consumed_sum += sum;
  consumed_n += n;
  pthread_mutex_unlock(&q_lock);
  return NULL;
}

static pthread_cond_t bc_cond = PTHREAD_COND_INITIALIZER;
static int bc_waiting, bc_go, bc_woken;

static void* bc_waiter(void* a) {
  (void)a;
  pthread_mutex_lock(&q_lock);
  bc_waiting++;
  pthread_cond_broadcast(&q_not_full); /* tell main one more is waiting */
  while (!bc_go) pthread_cond_wait(&bc_cond, &q_lock);
  bc_woken++;
  pthread_mutex_unlock(&q_lock);
  return NULL;
}

static void test_condvars(void) {
  pthread_t t[PRODUCERS + CONSUMERS];
  for (int i = 0; i < CONSUMERS; i++) CHECK_RC(pthread_create(&t[i], NULL, consumer, NULL), 0);
  for (int i = 0; i < PRODUCERS; i++)
    CHECK_RC(pthread_create(&t[CONSUMERS + i], NULL, producer, (void*)(intptr_t)(i + 1)), 0);
  for (int i = 0; i < PRODUCERS + CONSUMERS; i++) CHECK_RC(pthread_join(t[i], NULL), 0);
  long want = 0;
  for (long p = 1; p <= PRODUCERS; p++) want += p * 1000000L * ITEMS + (long)ITEMS * (ITEMS + 1) / 2;
  printf("condvar items: %ld sum matches: %s\n", consumed_n, yes(consumed_sum == want));
  CHECK(consumed_n == (long)PRODUCERS * ITEMS && consumed_sum == want);

  pthread_mutex_lock(&q_lock);
  struct timespec dl = deadline_ms(120);
  double t0 = now_s();
  int rc;
  do rc = pthread_cond_timedwait(&bc_cond, &q_lock, &dl); while (rc == 0); /* spurious */
  double waited = now_s() - t0;
  pthread_mutex_unlock(&q_lock);
  CHECK_RC(rc, ETIMEDOUT);
  printf("cond_timedwait ETIMEDOUT after >=110ms: %s\n", yes(rc == ETIMEDOUT && waited >= 0.11));
  CHECK(waited >= 0.11 && waited < 5);

  enum { W = 16 };
  pthread_t w[W];
  for (int i = 0; i < W; i++) CHECK_RC(pthread_create(&w[i], NULL, bc_waiter, NULL), 0);
  pthread_mutex_lock(&q_lock);
  while (bc_waiting < W) pthread_cond_wait(&q_not_full, &q_lock);
  bc_go = 1;
  pthread_cond_broadcast(&bc_cond);
  pthread_mutex_unlock(&q_lock);
  for (int i = 0; i < W; i++) CHECK_RC(pthread_join(w[i], NULL), 0);
  printf("broadcast woke: %d of %d\n", bc_woken, W);
  CHECK(bc_woken == W);
}

/* ---- semaphores ---- */
static sem_t sem_items, sem_done;
#define SEM_ITERS 1000

static void* sem_taker(void* a) {
  (void)a;
  for (int i = 0; i < SEM_ITERS; i++) {
    while (sem_wait(&sem_items) != 0) CHECK(errno == EINTR);
  }
  sem_post(&sem_done);
  return NULL;
}

static void test_semaphores(void) {
  sem_t s;
  CHECK(sem_init(&s, 0, 0) == 0);
  CHECK_ERR(sem_trywait(&s), EAGAIN);
  struct timespec dl = deadline_ms(100);
  double t0 = now_s();
  CHECK_ERR(sem_timedwait(&s, &dl), ETIMEDOUT);
  double waited = now_s() - t0;
  printf("sem_trywait EAGAIN, sem_timedwait ETIMEDOUT after >=90ms: %s\n", yes(waited >= 0.09));
  CHECK(waited >= 0.09 && waited < 5);
  CHECK(sem_post(&s) == 0);
  int v = -1;
  CHECK(sem_getvalue(&s, &v) == 0 && v == 1);
  CHECK(sem_trywait(&s) == 0);
  sem_destroy(&s);

  sem_init(&sem_items, 0, 0);
  sem_init(&sem_done, 0, 0);
  pthread_t t[NT];
  for (int i = 0; i < NT; i++) CHECK_RC(pthread_create(&t[i], NULL, sem_taker, NULL), 0);
  for (int i = 0; i < NT * SEM_ITERS; i++) sem_post(&sem_items);
  for (int i = 0; i < NT; i++) sem_wait(&sem_done);
  for (int i = 0; i < NT; i++) CHECK_RC(pthread_join(t[i], NULL), 0);
  CHECK(sem_getvalue(&sem_items, &v) == 0);
  printf("semaphore posts consumed: %d, left: %d\n", NT * SEM_ITERS, v);
  CHECK(v == 0);
}

/* ---- rwlock ---- */
static pthread_rwlock_t rw = PTHREAD_RWLOCK_INITIALIZER;
static long rw_a, rw_b, rw_bad, rw_reads;
#define RW_ITERS 5000

static void* rw_writer(void* a) {
  (void)a;
  for (int i = 0; i < RW_ITERS; i++) {
    pthread_rwlock_wrlock(&rw);
    rw_a++;
    if ((i & 127) == 0) sched_yield();
    rw_b++;
    pthread_rwlock_unlock(&rw);
  }
  return NULL;
}

static void* rw_reader(void* a) {
  (void)a;
  long bad = 0, n = 0;
  for (int i = 0; i < RW_ITERS; i++) {
    pthread_rwlock_rdlock(&rw);
    if (rw_a != rw_b) bad++;
    n++;
    pthread_rwlock_unlock(&rw);
  }
  __atomic_add_fetch(&rw_bad, bad, __ATOMIC_RELAXED);
  __atomic_add_fetch(&rw_reads, n, __ATOMIC_RELAXED);
  return NULL;
}

static void* rw_probe(void* a) {
  (void)a;
  /* main holds a read lock: another reader gets in, a writer does not */
  CHECK_RC(pthread_rwlock_tryrdlock(&rw), 0);
  CHECK_RC(pthread_rwlock_trywrlock(&rw), EBUSY);
  CHECK_RC(pthread_rwlock_unlock(&rw), 0);
  return NULL;
}

static void test_rwlock(void) {
  pthread_t t;
  CHECK_RC(pthread_rwlock_rdlock(&rw), 0);
  CHECK_RC(pthread_create(&t, NULL, rw_probe, NULL), 0);
  CHECK_RC(pthread_join(t, NULL), 0);
  CHECK_RC(pthread_rwlock_unlock(&rw), 0);
  CHECK_RC(pthread_rwlock_wrlock(&rw), 0);
  CHECK_RC(pthread_rwlock_tryrdlock(&rw), EBUSY);
  struct timespec dl = deadline_ms(50);
  CHECK_RC(pthread_rwlock_timedwrlock(&rw, &dl), EDEADLK); /* glibc: own write lock */
  CHECK_RC(pthread_rwlock_unlock(&rw), 0);

  pthread_t ts[NT];
  for (int i = 0; i < NT; i++) CHECK_RC(pthread_create(&ts[i], NULL, i < 2 ? rw_writer : rw_reader, NULL), 0);
  for (int i = 0; i < NT; i++) CHECK_RC(pthread_join(ts[i], NULL), 0);
  printf("rwlock writes: %ld reads: %ld torn reads: %ld\n", rw_a, rw_reads, rw_bad);
  CHECK(rw_a == 2L * RW_ITERS && rw_b == rw_a && rw_bad == 0 && rw_reads == (NT - 2L) * RW_ITERS);
}

/* ---- barrier ---- */
#define ROUNDS 200
static pthread_barrier_t bar;
static int serial_count, round_errors;
static int arrivals[ROUNDS];

static void* bar_thread(void* a) {
  (void)a;
  for (int r = 0; r < ROUNDS; r++) {
    __atomic_add_fetch(&arrivals[r], 1, __ATOMIC_RELAXED);
    int rc = pthread_barrier_wait(&bar);
    if (rc == PTHREAD_BARRIER_SERIAL_THREAD)
      __atomic_add_fetch(&serial_count, 1, __ATOMIC_RELAXED);
    else if (rc != 0)
      __atomic_add_fetch(&round_errors, 1, __ATOMIC_RELAXED);
    /* nobody passes round r before all NT arrived at it */
    if (__atomic_load_n(&arrivals[r], __ATOMIC_RELAXED) != NT)
      __atomic_add_fetch(&round_errors, 1, __ATOMIC_RELAXED);
  }
  return NULL;
}

static void test_barrier(void) {
  CHECK_RC(pthread_barrier_init(&bar, NULL, NT), 0);
  run_threads(NT, bar_thread);
  CHECK_RC(pthread_barrier_destroy(&bar), 0);
  printf("barrier rounds: %d serial threads: %d early passes: %d\n", ROUNDS, serial_count, round_errors);
  CHECK(serial_count == ROUNDS && round_errors == 0);
}

/* ---- spinlock ---- */
static pthread_spinlock_t spin;
static long spin_counter;
#define SPIN_ITERS 50000

static void* spin_thread(void* a) {
  (void)a;
  for (int i = 0; i < SPIN_ITERS; i++) {
    pthread_spin_lock(&spin);
    spin_counter++;
    pthread_spin_unlock(&spin);
  }
  return NULL;
}

static void test_spinlock(void) {
  CHECK_RC(pthread_spin_init(&spin, PTHREAD_PROCESS_PRIVATE), 0);
  CHECK_RC(pthread_spin_lock(&spin), 0);
  CHECK_RC(pthread_spin_trylock(&spin), EBUSY);
  CHECK_RC(pthread_spin_unlock(&spin), 0);
  run_threads(NT, spin_thread);
  CHECK_RC(pthread_spin_destroy(&spin), 0);
  printf("spinlock count: %ld\n", spin_counter);
  CHECK(spin_counter == (long)NT * SPIN_ITERS);
}

/* Objects libc initialised, not pthread_*_init: the _NP static initialisers
 * and a named semaphore from sem_open, used from two threads. */
static pthread_mutex_t np_rec = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;
static pthread_mutex_t np_err = PTHREAD_ERRORCHECK_MUTEX_INITIALIZER_NP;
static sem_t* named;
static void* named_poster(void* a) {
  (void)a;
  usleep(20 * 1000);
  CHECK(sem_post(named) == 0);
  return NULL;
}

static void test_libc_initialised(void) {
  CHECK_RC(pthread_mutex_lock(&np_rec), 0);
  CHECK_RC(pthread_mutex_lock(&np_rec), 0);
  CHECK_RC(pthread_mutex_unlock(&np_rec), 0);
  CHECK_RC(pthread_mutex_unlock(&np_rec), 0);
  CHECK_RC(pthread_mutex_lock(&np_err), 0);
  CHECK_RC(pthread_mutex_lock(&np_err), EDEADLK);
  CHECK_RC(pthread_mutex_unlock(&np_err), 0);
  char name[64];
  snprintf(name, sizeof name, "/sync_pthread.%d", (int)getpid());
  named = sem_open(name, O_CREAT | O_EXCL, 0600, 2);
  CHECK(named != SEM_FAILED);
  if (named == SEM_FAILED) return;
  sem_unlink(name);
  CHECK(sem_trywait(named) == 0 && sem_trywait(named) == 0);
  CHECK_ERR(sem_trywait(named), EAGAIN);
  pthread_t t;
  CHECK_RC(pthread_create(&t, NULL, named_poster, NULL), 0);
  CHECK(sem_wait(named) == 0);
  CHECK_RC(pthread_join(t, NULL), 0);
  int v = -1;
  CHECK(sem_getvalue(named, &v) == 0 && v == 0);
  sem_close(named);
  printf("_NP static mutex initialisers and sem_open semaphore: checked\n");
}

/* The values printed are compared with libc's, so no expectation is written
 * here: whatever glibc answers is right. */
static void test_bad_timeouts(void) {
  struct timespec bad = {0, -1}, big = {0, 1000000000}, ok = {0, 0};
  pthread_rwlock_t rw = PTHREAD_RWLOCK_INITIALIZER;
  int rc;
#define RW_TRY(call)                           \
  rc = (call);                                 \
  printf("%s: %d\n", #call, rc);               \
  if (rc == 0) pthread_rwlock_unlock(&rw);
  RW_TRY(pthread_rwlock_timedrdlock(&rw, &bad));
  RW_TRY(pthread_rwlock_timedwrlock(&rw, &big));
  RW_TRY(pthread_rwlock_clockrdlock(&rw, CLOCK_PROCESS_CPUTIME_ID, &ok));
  RW_TRY(pthread_rwlock_clockwrlock(&rw, CLOCK_MONOTONIC, &bad));
  RW_TRY(pthread_rwlock_clockwrlock(&rw, CLOCK_MONOTONIC, &ok));
#undef RW_TRY
  sem_t s;
#define SEM_TRY(call)                                               \
  CHECK(sem_init(&s, 0, 1) == 0);                                   \
  errno = 0;                                                        \
  rc = (call);                                                      \
  printf("%s: %d errno %d\n", #call, rc, rc == 0 ? 0 : errno);
  SEM_TRY(sem_timedwait(&s, &bad));
  SEM_TRY(sem_clockwait(&s, 12345, &ok));
  SEM_TRY(sem_clockwait(&s, CLOCK_MONOTONIC, &big));
  SEM_TRY(sem_timedwait(&s, &ok));
#undef SEM_TRY
  pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
  rc = pthread_mutex_timedlock(&m, &bad);
  printf("pthread_mutex_timedlock(free, bad timespec): %d\n", rc);
  if (rc == 0) pthread_mutex_unlock(&m);
  rc = pthread_mutex_clocklock(&m, 12345, &ok);
  printf("pthread_mutex_clocklock(free, bad clock): %d\n", rc);
  if (rc == 0) pthread_mutex_unlock(&m);
  pthread_cond_t c = PTHREAD_COND_INITIALIZER;
  CHECK_RC(pthread_mutex_lock(&m), 0);
  printf("pthread_cond_timedwait(bad timespec): %d\n", pthread_cond_timedwait(&c, &m, &bad));
  printf("pthread_cond_clockwait(bad clock): %d\n", pthread_cond_clockwait(&c, &m, 12345, &ok));
  CHECK_RC(pthread_mutex_unlock(&m), 0);
}

int main(void) {
  test_bad_timeouts();
  test_libc_initialised();
  test_mutexes();
  test_condvars();
  test_semaphores();
  test_rwlock();
  test_barrier();
  test_spinlock();
  return finish("sync_pthread");
}
