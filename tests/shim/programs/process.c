/* process: fork, exec, waitpid, system, popen and posix_spawn with the exit
 * statuses libc reports, including what a shim must get right around fork —
 * the child of a threaded parent creating threads and sockets of its own
 * (without exec, and again after exec of this program), waitpid(WNOHANG)
 * returning 0 for a live child, and a thread blocked in waitpid while other
 * threads keep making progress. */
#define _GNU_SOURCE
#include "check.h"

#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

/* ---- work a child does: 4 threads, each echoing 100 messages over a socketpair ---- */
static void* echo_peer(void* arg) {
  int fd = (int)(intptr_t)arg;
  int v;
  while (read(fd, &v, sizeof v) == sizeof v) {
    v++;
    if (write(fd, &v, sizeof v) != sizeof v) break;
  }
  close(fd);
  return NULL;
}

static void* echo_client(void* arg) {
  int ok = 0;
  int sv[2];
  (void)arg;
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) return (void*)(intptr_t)0;
  pthread_t t;
  if (pthread_create(&t, NULL, echo_peer, (void*)(intptr_t)sv[1]) != 0) return (void*)(intptr_t)0;
  for (int i = 0; i < 100; i++) {
    int v = i, back = -1;
    if (write(sv[0], &v, sizeof v) != sizeof v || read(sv[0], &back, sizeof back) != sizeof back) break;
    if (back == i + 1) ok++;
  }
  close(sv[0]);
  pthread_join(t, NULL);
  return (void*)(intptr_t)ok;
}

/* Returns the number of verified echoes (400 when all is well). */
static int child_work(void) {
  pthread_t t[4];
  int total = 0;
  for (int i = 0; i < 4; i++)
    if (pthread_create(&t[i], NULL, echo_client, NULL) != 0) return -1;
  for (int i = 0; i < 4; i++) {
    void* r;
    pthread_join(t[i], &r);
    total += (int)(intptr_t)r;
  }
  return total;
}

/* ---- a thread blocked in waitpid must not stop the others ---- */
static volatile int waiter_done;
static int waited_status;

static void* waiter(void* arg) {
  pid_t pid = (pid_t)(intptr_t)arg;
  pid_t r;
  while ((r = waitpid(pid, &waited_status, 0)) < 0 && errno == EINTR) {
  }
  CHECK(r == pid);
  __atomic_store_n(&waiter_done, 1, __ATOMIC_SEQ_CST);
  return NULL;
}

static void* pong(void* arg) {
  int* fds = arg; /* fds[0] read, fds[1] write */
  char c;
  while (read(fds[0], &c, 1) == 1)
    if (write(fds[1], &c, 1) != 1) break;
  return NULL;
}

static int exit_code(int st) { return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0); }

int main(int argc, char** argv) {
  if (argc > 1 && strcmp(argv[1], "child-threads") == 0) {
    int n = child_work();
    printf("exec'd child echoed: %d\n", n);
    return n == 400 ? 0 : 1;
  }
  int st;
  fflush(stdout);

  pid_t pid = fork();
  if (pid == 0) _exit(7);
  CHECK(pid > 0);
  CHECK(waitpid(pid, &st, 0) == pid);
  printf("fork child exit status: %d\n", exit_code(st));

  pid = fork();
  if (pid == 0) {
    raise(SIGTERM);
    _exit(0);
  }
  CHECK(waitpid(pid, &st, 0) == pid);
  printf("child killed by signal: %s (%s)\n", yes(WIFSIGNALED(st)), WIFSIGNALED(st) ? strsignal(WTERMSIG(st)) : "-");

  /* Threads exist in the parent when it forks; the child starts its own. */
  pthread_t bg;
  CHECK_RC(pthread_create(&bg, NULL, echo_client, NULL), 0);
  fflush(stdout);
  pid = fork();
  if (pid == 0) {
    int n = child_work();
    printf("forked child echoed: %d\n", n);
    fflush(stdout);
    _exit(n == 400 ? 0 : 1);
  }
  CHECK(waitpid(pid, &st, 0) == pid);
  printf("forked threaded child status: %d\n", exit_code(st));
  void* r;
  CHECK_RC(pthread_join(bg, &r), 0);
  CHECK((intptr_t)r == 100);

  fflush(stdout);
  pid = fork();
  if (pid == 0) {
    execl("/proc/self/exe", argv[0], "child-threads", (char*)NULL);
    _exit(127);
  }
  CHECK(waitpid(pid, &st, 0) == pid);
  printf("exec'd child status: %d\n", exit_code(st));

  pid = fork();
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", "exit 3", (char*)NULL);
    _exit(127);
  }
  CHECK(waitpid(pid, &st, 0) == pid);
  printf("sh -c 'exit 3' status: %d\n", exit_code(st));

  /* WNOHANG on a live child, then a blocking waitpid in a thread while the
   * main thread ping-pongs with another thread. */
  int gate[2];
  CHECK(pipe(gate) == 0);
  fflush(stdout);
  pid = fork();
  if (pid == 0) {
    char c;
    close(gate[1]);
    ssize_t n = read(gate[0], &c, 1);
    usleep(200 * 1000);
    _exit(n == 1 ? 9 : 1);
  }
  close(gate[0]);
  CHECK(waitpid(pid, &st, WNOHANG) == 0);
  printf("waitpid WNOHANG on live child: 0\n");
  pthread_t w, p;
  CHECK_RC(pthread_create(&w, NULL, waiter, (void*)(intptr_t)pid), 0);
  int to_pong[2], from_pong[2];
  CHECK(pipe(to_pong) == 0 && pipe(from_pong) == 0);
  int pong_fds[2] = {to_pong[0], from_pong[1]};
  CHECK_RC(pthread_create(&p, NULL, pong, pong_fds), 0);
  CHECK(write(gate[1], "g", 1) == 1);
  long rounds = 0;
  while (!__atomic_load_n(&waiter_done, __ATOMIC_SEQ_CST)) {
    char c = 'p';
    CHECK(write(to_pong[1], &c, 1) == 1 && read(from_pong[0], &c, 1) == 1);
    rounds++;
  }
  CHECK_RC(pthread_join(w, NULL), 0);
  printf("waitpid in a thread: status %d, others progressed meanwhile: %s\n", exit_code(waited_status),
         yes(rounds > 10));
  CHECK(exit_code(waited_status) == 9 && rounds > 10);
  close(to_pong[1]);
  CHECK_RC(pthread_join(p, NULL), 0);
  close(gate[1]), close(to_pong[0]), close(from_pong[0]), close(from_pong[1]);

  fflush(stdout);
  st = system("echo from system; exit 5");
  printf("system status: %d\n", exit_code(st));
  CHECK(exit_code(st) == 5);

  FILE* f = popen("echo hello; echo world; exit 2", "r");
  CHECK(f != NULL);
  char line[64];
  int lines = 0;
  while (f && fgets(line, sizeof line, f)) {
    printf("popen read: %s", line);
    lines++;
  }
  st = f ? pclose(f) : -1;
  printf("popen lines: %d pclose status: %d\n", lines, exit_code(st));
  CHECK(lines == 2 && exit_code(st) == 2);

  fflush(stdout);
  f = popen("tr a-z A-Z", "w");
  CHECK(f != NULL);
  if (f) {
    fputs("written through popen\n", f);
    st = pclose(f);
    CHECK(exit_code(st) == 0);
  }

  char* sargv[] = {"sh", "-c", "exit 4", NULL};
  CHECK_RC(posix_spawn(&pid, "/bin/sh", NULL, NULL, sargv, environ), 0);
  CHECK(waitpid(pid, &st, 0) == pid);
  printf("posix_spawn status: %d\n", exit_code(st));
  CHECK(exit_code(st) == 4);

  CHECK_ERR(waitpid(-1, &st, WNOHANG), ECHILD);
  printf("no children left: ECHILD\n");
  return finish("process");
}
