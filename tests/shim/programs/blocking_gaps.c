/* blocking_gaps: blocking calls a thread makes while another thread of the
 * same process must go on running, where the shim had gaps when this was
 * written (reported with the test; see docs/compat.md). Each case runs in a
 * child process (this program exec'd with the case's name, so under the shim
 * it is shimmed too) that the parent kills after 5 s; the parent prints
 * "ok" or "HANG"/"FAILED" per case, so one gap does not hide the others:
 *  - dup_timeout:  SO_RCVTIMEO set on a socket after dup(): recv on the dup
 *                  still times out (the option belongs to the socket, not the fd);
 *  - scm_timeout:  a socket received through SCM_RIGHTS keeps the sender's
 *                  SO_RCVTIMEO;
 *  - sigwait:      a thread waiting in sigwait() while main runs, then signals it;
 *  - flock:        a thread blocked in flock(LOCK_EX) on a file main holds locked. */
#define _GNU_SOURCE
#include "check.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

static int expect_eagain_after_timeout(int fd) {
  char c;
  double t0 = now_s();
  ssize_t n = recv(fd, &c, 1, 0);
  double w = now_s() - t0;
  return n == -1 && errno == EAGAIN && w >= 0.18 && w < 5;
}

static void set_rcvtimeo(int fd, long ms) {
  struct timeval tv = {0, ms * 1000};
  CHECK(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == 0);
}

static int case_dup_timeout(void) {
  int sv[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
  int d = dup(sv[0]);
  set_rcvtimeo(sv[0], 200); /* after the dup: the dup shares the socket */
  return expect_eagain_after_timeout(d);
}

static int case_scm_timeout(void) {
  int carrier[2], inner[2];
  char c = 'x';
  CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, carrier) == 0 && socketpair(AF_UNIX, SOCK_STREAM, 0, inner) == 0);
  set_rcvtimeo(inner[0], 200);
  union {
    char buf[CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
  } u;
  memset(&u, 0, sizeof u);
  struct iovec iov = {&c, 1};
  struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf};
  struct cmsghdr* h = CMSG_FIRSTHDR(&m);
  h->cmsg_level = SOL_SOCKET;
  h->cmsg_type = SCM_RIGHTS;
  h->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(h), &inner[0], sizeof(int));
  CHECK(sendmsg(carrier[0], &m, 0) == 1);
  close(inner[0]);
  m.msg_controllen = sizeof u.buf;
  CHECK(recvmsg(carrier[1], &m, 0) == 1);
  int got = -1;
  if (CMSG_FIRSTHDR(&m)) memcpy(&got, CMSG_DATA(CMSG_FIRSTHDR(&m)), sizeof got);
  return got >= 0 && expect_eagain_after_timeout(got);
}

static sigset_t usr1;
static int sig_seen;
static void* sigwait_thread(void* a) {
  (void)a;
  int sig = 0;
  if (sigwait(&usr1, &sig) == 0) sig_seen = sig;
  return NULL;
}

static int case_sigwait(void) {
  sigemptyset(&usr1);
  sigaddset(&usr1, SIGUSR1);
  CHECK_RC(pthread_sigmask(SIG_BLOCK, &usr1, NULL), 0);
  pthread_t t;
  CHECK_RC(pthread_create(&t, NULL, sigwait_thread, NULL), 0);
  usleep(100 * 1000); /* main must get here while the thread waits */
  CHECK(kill(getpid(), SIGUSR1) == 0);
  CHECK_RC(pthread_join(t, NULL), 0);
  return sig_seen == SIGUSR1;
}

static char lock_path[256];
static int second_got_lock;
static void* flock_thread(void* a) {
  (void)a;
  int fd = open(lock_path, O_RDWR);
  if (fd >= 0 && flock(fd, LOCK_EX) == 0) second_got_lock = 1;
  if (fd >= 0) close(fd);
  return NULL;
}

static int case_flock(void) {
  const char* dir = getenv("TMPDIR");
  snprintf(lock_path, sizeof lock_path, "%s/blocking_gaps.%d", dir && *dir ? dir : "/tmp", (int)getpid());
  int fd = open(lock_path, O_RDWR | O_CREAT, 0600);
  CHECK(fd >= 0 && flock(fd, LOCK_EX) == 0);
  pthread_t t;
  CHECK_RC(pthread_create(&t, NULL, flock_thread, NULL), 0);
  usleep(100 * 1000); /* main must get here while the thread waits */
  int early = second_got_lock;
  CHECK(flock(fd, LOCK_UN) == 0);
  CHECK_RC(pthread_join(t, NULL), 0);
  close(fd);
  unlink(lock_path);
  return !early && second_got_lock;
}

static const struct {
  const char* name;
  int (*fn)(void);
} cases[] = {
    {"dup_timeout", case_dup_timeout},
    {"scm_timeout", case_scm_timeout},
    {"sigwait", case_sigwait},
    {"flock", case_flock},
};
enum { NCASES = sizeof cases / sizeof cases[0] };

int main(int argc, char** argv) {
  if (argc == 2) {
    for (int i = 0; i < NCASES; i++)
      if (strcmp(argv[1], cases[i].name) == 0) return cases[i].fn() && check_failures == 0 ? 0 : 1;
    return 2;
  }
  for (int i = 0; i < NCASES; i++) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
      execl("/proc/self/exe", argv[0], cases[i].name, (char*)NULL);
      _exit(127);
    }
    CHECK(pid > 0);
    int st = 0, done = 0;
    for (double t0 = now_s(); now_s() - t0 < 5 && !done;) {
      pid_t r = waitpid(pid, &st, WNOHANG);
      if (r == pid) done = 1;
      else usleep(10 * 1000);
    }
    if (!done) {
      kill(pid, SIGKILL);
      waitpid(pid, &st, 0);
    }
    const char* verdict = !done ? "HANG (killed after 5 s)" : WIFEXITED(st) && WEXITSTATUS(st) == 0 ? "ok" : "FAILED";
    printf("%s: %s\n", cases[i].name, verdict);
    CHECK(done && WIFEXITED(st) && WEXITSTATUS(st) == 0);
  }
  return finish("blocking_gaps");
}
