/* fork_child: fork() from a threaded program, and threads in the child.
 *
 * The parent has worker threads parked on a condition variable and sleeping
 * when it forks (under the shim: green threads queued in the parking lot and
 * on timers, which must neither run in the child nor swallow its wake-ups).
 * The child, whose only thread is the one that forked, then:
 *  - keeps that thread's pthread_self() and thread-specific values;
 *  - creates 200 threads that sleep 100 ms at once (with --os-threads, the
 *    shim-only check: few OS threads meanwhile, i.e. the child has a runtime
 *    of its own and its threads are green threads);
 *  - runs a mutex/condvar counter among 8 threads and itself, exact counts,
 *    using the same condvar the parent's threads were parked on;
 *  - streams 1 MiB through a pipe between two threads, checksummed;
 *  - forks again from one of those threads (a grandchild that does the same
 *    on a smaller scale) and waits for it.
 * The fork is done twice: from main and from a created thread, whose return
 * ends the child (its last thread) with status 0. The parent checks its own
 * threads still work afterwards. Last, daemon() (glibc forks inside it, out
 * of a preload's reach): the daemon runs 50 threads and reports through a
 * pipe. */
#define _GNU_SOURCE
#include "check.h"

#include <dirent.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int go, counter;
static pthread_key_t key;
static int report_os;

/* io_uring instances this process holds a descriptor of. Under the shim the
 * child's are its own runtime's (one per worker); the parent's, which it
 * inherited, must have been closed. */
static int uring_fds(void) {
  DIR* d = opendir("/proc/self/fd");
  int n = 0;
  struct dirent* e;
  char path[300], target[256];
  while (d && (e = readdir(d))) {
    snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
    ssize_t len = readlink(path, target, sizeof target - 1);
    if (len <= 0) continue;
    target[len] = 0;
    if (strstr(target, "io_uring")) n++;
  }
  if (d) closedir(d);
  return n;
}

/* ---- the parent's threads: parked on cv or sleeping at fork time ---- */

static void* parked(void* arg) {
  (void)arg;
  CHECK_RC(pthread_mutex_lock(&mu), 0);
  while (!go) CHECK_RC(pthread_cond_wait(&cv, &mu), 0);
  counter++;
  CHECK_RC(pthread_mutex_unlock(&mu), 0);
  return NULL;
}

static void* sleeping(void* arg) {
  (void)arg;
  usleep(300000);
  __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED);
  return NULL;
}

/* ---- what the child does ---- */

static int sleepers_done;
static void* child_sleeper(void* arg) {
  (void)arg;
  usleep(100000);
  __atomic_add_fetch(&sleepers_done, 1, __ATOMIC_RELAXED);
  return NULL;
}

enum { ROUNDS = 2000, NCOUNT = 8 };
static void* child_counter(void* arg) {
  (void)arg;
  for (int i = 0; i < ROUNDS; i++) {
    CHECK_RC(pthread_mutex_lock(&mu), 0);
    counter++;
    if (counter % 97 == 0) CHECK_RC(pthread_cond_broadcast(&cv), 0);
    CHECK_RC(pthread_mutex_unlock(&mu), 0);
  }
  return NULL;
}

static int pipefd[2];
enum { STREAM = 1 << 20 };
static void* producer(void* arg) {
  (void)arg;
  unsigned char buf[4096];
  for (size_t sent = 0; sent < STREAM; sent += sizeof buf) {
    for (size_t i = 0; i < sizeof buf; i++) buf[i] = (unsigned char)((sent + i) * 31 + 7);
    size_t off = 0;
    while (off < sizeof buf) {
      ssize_t n = write(pipefd[1], buf + off, sizeof buf - off);
      CHECK(n > 0);
      if (n <= 0) return NULL;
      off += (size_t)n;
    }
  }
  close(pipefd[1]);
  return NULL;
}

static int stream_ok(void) {
  CHECK(pipe(pipefd) == 0);
  pthread_t p;
  CHECK_RC(pthread_create(&p, NULL, producer, NULL), 0);
  unsigned char buf[3000];
  size_t got = 0, bad = 0;
  for (;;) {
    ssize_t n = read(pipefd[0], buf, sizeof buf);
    if (n <= 0) break;
    for (ssize_t i = 0; i < n; i++)
      if (buf[i] != (unsigned char)((got + (size_t)i) * 31 + 7)) bad++;
    got += (size_t)n;
  }
  close(pipefd[0]);
  CHECK_RC(pthread_join(p, NULL), 0);
  return got == STREAM && bad == 0;
}

static int run_child_work(int depth, int sleepers);

static void* grandchild_forker(void* arg) {
  (void)arg;
  fflush(stdout);
  pid_t g = fork();
  if (g == 0) _exit(run_child_work(2, 20));
  int st = 0;
  CHECK(waitpid(g, &st, 0) == g);
  printf("  grandchild: exited %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
  return NULL;
}

/* Returns the exit status the child should end with. */
static int run_child_work(int depth, int sleepers) {
  const char* pad = depth == 1 ? "  " : "    ";
  sleepers_done = 0;
  pthread_t t[200];
  for (int i = 0; i < sleepers; i++) CHECK_RC(pthread_create(&t[i], NULL, child_sleeper, NULL), 0);
  usleep(30000); /* they are all asleep now */
  int os = os_threads();
  for (int i = 0; i < sleepers; i++) CHECK_RC(pthread_join(t[i], NULL), 0);
  printf("%s%d sleepers done: %d\n", pad, sleepers, sleepers_done);
  if (report_os) {
    printf("%sos threads while sleeping < %d: %s\n", pad, sleepers / 2, yes(os < sleepers / 2));
    const char* w = getenv("GREENRING_WORKERS");
    printf("%sio_uring descriptors only the child's own: %s\n", pad, yes(w && uring_fds() <= atoi(w)));
  }

  CHECK_RC(pthread_mutex_lock(&mu), 0);
  counter = 0;
  CHECK_RC(pthread_mutex_unlock(&mu), 0);
  pthread_t c[NCOUNT];
  for (int i = 0; i < NCOUNT; i++) CHECK_RC(pthread_create(&c[i], NULL, child_counter, NULL), 0);
  child_counter(NULL);
  for (int i = 0; i < NCOUNT; i++) CHECK_RC(pthread_join(c[i], NULL), 0);
  printf("%scounter: %d of %d\n", pad, counter, (NCOUNT + 1) * ROUNDS);
  printf("%s1 MiB through a pipe intact: %s\n", pad, yes(stream_ok()));
  if (depth == 1) {
    pthread_t g;
    CHECK_RC(pthread_create(&g, NULL, grandchild_forker, NULL), 0);
    CHECK_RC(pthread_join(g, NULL), 0);
  }
  fflush(stdout);
  return check_failures ? 1 : 0;
}

/* The forking thread: parent threads are parked/sleeping; fork; the child
 * works, the parent releases its threads and waits for the child. */
static void fork_round(const char* from, int child_returns) {
  go = 0;
  counter = 0;
  pthread_t p[6];
  for (int i = 0; i < 3; i++) CHECK_RC(pthread_create(&p[i], NULL, parked, NULL), 0);
  for (int i = 3; i < 6; i++) CHECK_RC(pthread_create(&p[i], NULL, sleeping, NULL), 0);
  usleep(50000); /* parked on cv, or asleep */
  int mark;
  CHECK_RC(pthread_setspecific(key, &mark), 0);
  pthread_t self = pthread_self();
  printf("fork from %s\n", from);
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    printf("  child: pthread_self kept: %s, key kept: %s\n", yes(pthread_equal(self, pthread_self())),
           yes(pthread_getspecific(key) == &mark));
    int rc = run_child_work(1, 200);
    fflush(stdout);
    if (child_returns) {
      if (rc) _exit(rc);
      return; /* the caller's thread function returns: the child's last thread ends */
    }
    exit(rc);
  }
  CHECK(pid > 0);
  int st = 0;
  CHECK(waitpid(pid, &st, 0) == pid);
  printf("child exited: %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
  CHECK_RC(pthread_mutex_lock(&mu), 0);
  go = 1;
  CHECK_RC(pthread_cond_broadcast(&cv), 0);
  CHECK_RC(pthread_mutex_unlock(&mu), 0);
  for (int i = 0; i < 6; i++) CHECK_RC(pthread_join(p[i], NULL), 0);
  printf("parent's threads finished: %d of 6\n", counter);
}

/* A forked helper calls daemon(1, 1), as a legacy server does at start; the
 * daemon (the helper's child) reports on a pipe this process reads. */
static int daemon_pipe[2];
static void* daemon_sleeper(void* arg) {
  (void)arg;
  usleep(50000);
  __atomic_add_fetch(&sleepers_done, 1, __ATOMIC_RELAXED);
  return NULL;
}

static void daemon_round(void) {
  CHECK(pipe(daemon_pipe) == 0);
  fflush(stdout);
  pid_t helper = fork();
  if (helper == 0) {
    close(daemon_pipe[0]);
    /* A thread first: under the shim the helper then has a runtime of its
     * own, which daemon()'s child must not inherit half-dead. */
    pthread_t first;
    CHECK_RC(pthread_create(&first, NULL, daemon_sleeper, NULL), 0);
    CHECK_RC(pthread_join(first, NULL), 0);
    if (daemon(1, 1) != 0) _exit(3); /* the helper itself _exits(0) in here */
    sleepers_done = 0;
    pthread_t t[50];
    for (int i = 0; i < 50; i++) CHECK_RC(pthread_create(&t[i], NULL, daemon_sleeper, NULL), 0);
    usleep(20000);
    int os = os_threads();
    for (int i = 0; i < 50; i++) CHECK_RC(pthread_join(t[i], NULL), 0);
    char msg[200];
    int n = snprintf(msg, sizeof msg, "daemon: %s session leader, 50 threads done: %d\n", yes(getsid(0) == getpid()),
                     sleepers_done);
    if (report_os) n += snprintf(msg + n, sizeof msg - (size_t)n, "daemon: os threads while sleeping < 25: %s\n", yes(os < 25));
    CHECK(write(daemon_pipe[1], msg, (size_t)n) == n);
    _exit(check_failures ? 1 : 0);
  }
  close(daemon_pipe[1]);
  int st = 0;
  CHECK(waitpid(helper, &st, 0) == helper);
  printf("daemon's parent exited: %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
  char buf[400];
  size_t got = 0;
  ssize_t n;
  while ((n = read(daemon_pipe[0], buf + got, sizeof buf - 1 - got)) > 0) got += (size_t)n;
  buf[got] = 0;
  close(daemon_pipe[0]);
  fputs(buf, stdout);
}

static void* forking_thread(void* arg) {
  (void)arg;
  fork_round("a created thread", 1);
  return NULL;
}

int main(int argc, char** argv) {
  report_os = argc > 1 && strcmp(argv[1], "--os-threads") == 0;
  CHECK_RC(pthread_key_create(&key, NULL), 0);
  fork_round("main", 0);
  pthread_t t;
  CHECK_RC(pthread_create(&t, NULL, forking_thread, NULL), 0);
  CHECK_RC(pthread_join(t, NULL), 0);
  daemon_round();
  return finish("fork_child");
}
