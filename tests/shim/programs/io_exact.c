/* io_exact: byte-level libc exactness of the fd calls a shim reroutes —
 * partial transfers and EOF on pipes, socketpairs and files (read, write,
 * readv, writev, pread, pwrite, recv), offsets that pread/pwrite leave alone,
 * O_APPEND, EBADF on closed and wrong-direction fds, EINVAL/ESPIPE cases,
 * dup/dup2/dup3 (lowest fd, shared offsets, atomic replacement, CLOEXEC),
 * pipe2 flags, eventfd counter and semaphore modes (and a blocked eventfd read
 * woken by another thread), sendfile with and without an offset, EPIPE, and
 * socketpair shutdown semantics, shutdown() ending another thread's blocked
 * accept/recv. Lengths are run-time values so the
 * -D_FORTIFY_SOURCE build goes through __read_chk, __pread_chk, __recv_chk. */
#define _GNU_SOURCE
#include "check.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

static volatile size_t big_len = 100; /* defeats constant folding of lengths */
static volatile int bad_iovcnt = -1;

static void test_pipe_socketpair(void) {
  int p[2];
  char buf[100];
  size_t len = big_len;
  CHECK(pipe(p) == 0);
  CHECK(write(p[1], "0123456789", 10) == 10);
  ssize_t n = read(p[0], buf, len);
  printf("pipe read asks %zu gets: %zd\n", len, n);
  CHECK(n == 10 && memcmp(buf, "0123456789", 10) == 0);
  CHECK(read(p[0], buf, 0) == 0);

  struct iovec wv[3] = {{"abc", 3}, {"", 0}, {"defgh", 5}};
  CHECK(writev(p[1], wv, 3) == 8);
  char a[4], b[100];
  struct iovec rv[2] = {{a, sizeof a}, {b, sizeof b}};
  n = readv(p[0], rv, 2);
  printf("readv of 8 into 4+100: %zd, second gets '%.4s'\n", n, b);
  CHECK(n == 8 && memcmp(a, "abcd", 4) == 0 && memcmp(b, "efgh", 4) == 0);
  CHECK_ERR(readv(p[0], rv, bad_iovcnt), EINVAL);
  CHECK_ERR(pread(p[0], buf, len, 0), ESPIPE);
  CHECK_ERR(lseek(p[0], 0, SEEK_SET), ESPIPE);
  CHECK_ERR(read(p[1], buf, len), EBADF);
  CHECK_ERR(write(p[0], "x", 1), EBADF);

  CHECK(write(p[1], "tail", 4) == 4);
  close(p[1]);
  CHECK(read(p[0], buf, len) == 4);
  CHECK(read(p[0], buf, len) == 0);
  printf("pipe EOF after writer closed: 0\n");
  close(p[0]);
  CHECK_ERR(read(p[0], buf, len), EBADF);
  CHECK_ERR(write(p[0], buf, 1), EBADF);
  CHECK_ERR(close(p[0]), EBADF);
  printf("closed fd: read/write/close EBADF\n");

  CHECK(pipe(p) == 0);
  close(p[0]);
  CHECK_ERR(write(p[1], "x", 1), EPIPE);
  printf("write with no reader: EPIPE\n");
  close(p[1]);

  int sv[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
  CHECK(send(sv[0], "hello", 5, 0) == 5);
  n = recv(sv[1], buf, len, 0);
  CHECK(n == 5);
  CHECK(send(sv[0], "abcdef", 6, 0) == 6);
  n = recv(sv[1], buf, len > 3 ? 3 : len, 0);
  CHECK(n == 3 && memcmp(buf, "abc", 3) == 0);
  n = recv(sv[1], buf, len, MSG_PEEK);
  CHECK(n == 3 && memcmp(buf, "def", 3) == 0);
  n = recv(sv[1], buf, len, 0);
  printf("socketpair partial/peek: %zd '%.3s'\n", n, buf);
  CHECK(shutdown(sv[0], SHUT_WR) == 0);
  CHECK(recv(sv[1], buf, len, 0) == 0);
  CHECK_ERR(send(sv[0], "x", 1, MSG_NOSIGNAL), EPIPE);
  CHECK(send(sv[1], "back", 4, 0) == 4); /* the other direction still works */
  CHECK(recv(sv[0], buf, len, 0) == 4);
  CHECK(shutdown(sv[0], SHUT_RD) == 0);
  CHECK(recv(sv[0], buf, len, 0) == 0);
  CHECK_ERR(shutdown(sv[0], 42), EINVAL);
  printf("shutdown: peer EOF, EPIPE on write, reverse direction open, SHUT_RD EOF\n");
  close(sv[0]);
  close(sv[1]);
  int f = open("/dev/null", O_RDONLY);
  CHECK_ERR(shutdown(f, SHUT_RDWR), ENOTSOCK);
  close(f);
}

static int tmpfile_fd(char* path) {
  const char* dir = getenv("TMPDIR");
  snprintf(path, 256, "%s/io_exact.XXXXXX", dir && *dir ? dir : "/tmp");
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  return fd;
}

static void test_files(void) {
  char path[256], buf[100];
  size_t len = big_len;
  int fd = tmpfile_fd(path);
  CHECK(write(fd, "0123456789", 10) == 10);
  CHECK(pwrite(fd, "XY", 2, 20) == 2); /* a hole from 10 to 20 */
  CHECK(lseek(fd, 0, SEEK_CUR) == 10);
  struct stat st;
  CHECK(fstat(fd, &st) == 0 && st.st_size == 22);
  ssize_t n = pread(fd, buf, len, 5);
  printf("file pread from 5 asks %zu gets: %zd, hole reads zeros: %s\n", len, n,
         yes(n == 17 && buf[6] == 0 && buf[14] == 0 && buf[15] == 'X'));
  CHECK(n == 17);
  CHECK(pread(fd, buf, len, 22) == 0);
  CHECK(pread(fd, buf, len, 1000) == 0);
  CHECK_ERR(pread(fd, buf, len, -1), EINVAL);
  CHECK(lseek(fd, 0, SEEK_CUR) == 10);
  CHECK_ERR(lseek(fd, 0, 99), EINVAL);
  CHECK(lseek(fd, 18, SEEK_SET) == 18);
  n = read(fd, buf, len);
  CHECK(n == 4);
  CHECK(read(fd, buf, len) == 0);
  printf("file read to EOF: 4 then 0\n");

  char x1[3], x2[50];
  struct iovec rv[2] = {{x1, sizeof x1}, {x2, sizeof x2}};
  n = preadv(fd, rv, 2, 8);
  CHECK(n == 14 && x1[0] == '8' && x2[0] == 0);
  struct iovec wv[2] = {{"pq", 2}, {"rs", 2}};
  CHECK(pwritev(fd, wv, 2, 0) == 4);
  CHECK(pread(fd, buf, 5, 0) == 5 && memcmp(buf, "pqrs4", 5) == 0);

  /* dup shares the offset; dup2 replaces atomically; dup3 needs distinct fds */
  int d = dup(fd);
  CHECK(d > fd);
  CHECK(lseek(fd, 2, SEEK_SET) == 2);
  CHECK(lseek(d, 0, SEEK_CUR) == 2);
  int other = open("/dev/null", O_RDONLY);
  CHECK(dup2(fd, other) == other);
  CHECK(lseek(other, 0, SEEK_CUR) == 2);
  CHECK(dup2(fd, fd) == fd);
  CHECK_ERR(dup3(fd, fd, 0), EINVAL);
  CHECK_ERR(dup3(fd, other, 12345), EINVAL);
  CHECK(dup3(fd, other, O_CLOEXEC) == other);
  CHECK((fcntl(other, F_GETFD) & FD_CLOEXEC) && !(fcntl(d, F_GETFD) & FD_CLOEXEC));
  CHECK_ERR(dup2(fd, -1), EBADF);
  CHECK_ERR(dup(-1), EBADF);
  int lowest = dup(fd);
  close(lowest);
  CHECK(dup(fd) == lowest); /* the lowest free number again */
  close(lowest);
  printf("dup/dup2/dup3: shared offset, atomic replace, EINVAL, CLOEXEC: checked\n");
  close(d);
  close(other);

  int ap = open(path, O_WRONLY | O_APPEND);
  CHECK(ap >= 0);
  CHECK(lseek(ap, 0, SEEK_SET) == 0);
  CHECK(write(ap, "END", 3) == 3);
  CHECK(fstat(fd, &st) == 0 && st.st_size == 25);
  CHECK(pread(fd, buf, 3, 22) == 3 && memcmp(buf, "END", 3) == 0);
  printf("O_APPEND write lands at the end: yes\n");
  close(ap);

  /* sendfile to a socketpair, with and without an offset */
  int sv[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
  off_t off = 20;
  n = sendfile(sv[0], fd, &off, 100);
  CHECK(n == 5 && off == 25);
  CHECK(lseek(fd, 0, SEEK_CUR) == 2);
  n = sendfile(sv[0], fd, NULL, 3);
  CHECK(n == 3 && lseek(fd, 0, SEEK_CUR) == 5);
  n = recv(sv[1], buf, len, MSG_WAITALL | MSG_DONTWAIT);
  printf("sendfile bytes: %zd '%.8s'\n", n, buf);
  CHECK(n == 8 && memcmp(buf, "XYENDrs4", 8) == 0);
  CHECK_ERR(sendfile(sv[0], -1, NULL, 3), EBADF);
  close(sv[0]);
  close(sv[1]);
  close(fd);
  unlink(path);
  CHECK_ERR(open(path, O_RDONLY), ENOENT);

  int p[2];
  CHECK_ERR(pipe2(p, 0x7fff0000), EINVAL);
  CHECK(pipe2(p, O_CLOEXEC) == 0);
  CHECK((fcntl(p[0], F_GETFD) & FD_CLOEXEC) && (fcntl(p[1], F_GETFD) & FD_CLOEXEC));
  printf("pipe2: bad flags EINVAL, O_CLOEXEC on both ends\n");
  close(p[0]);
  close(p[1]);
}

static void* post_later(void* arg) {
  int fd = (int)(intptr_t)arg;
  usleep(50 * 1000);
  uint64_t v = 42;
  CHECK(write(fd, &v, sizeof v) == sizeof v);
  return NULL;
}

static void test_eventfd(void) {
  int e = eventfd(0, 0);
  uint64_t v = 3;
  CHECK(write(e, &v, sizeof v) == 8);
  v = 4;
  CHECK(write(e, &v, sizeof v) == 8);
  CHECK(read(e, &v, sizeof v) == 8);
  printf("eventfd counter: %llu\n", (unsigned long long)v);
  CHECK(v == 7);
  uint32_t small;
  CHECK_ERR(read(e, &small, sizeof small), EINVAL);
  v = UINT64_MAX;
  CHECK_ERR(write(e, &v, sizeof v), EINVAL);
  pthread_t t;
  CHECK_RC(pthread_create(&t, NULL, post_later, (void*)(intptr_t)e), 0);
  CHECK(read(e, &v, sizeof v) == 8);
  printf("blocked eventfd read woken: %llu\n", (unsigned long long)v);
  CHECK(v == 42);
  CHECK_RC(pthread_join(t, NULL), 0);
  close(e);

  e = eventfd(2, EFD_SEMAPHORE | EFD_NONBLOCK);
  int ones = 0;
  while (read(e, &v, sizeof v) == 8 && v == 1) ones++;
  CHECK(errno == EAGAIN);
  printf("eventfd semaphore reads of 1: %d then EAGAIN\n", ones);
  CHECK(ones == 2);
  close(e);
}

/* shutdown() from another thread ends a blocked accept (EINVAL) and a
 * blocked recv (0): the classic way to stop a server thread. */
static int sd_listener, sd_pair[2];
static void* blocked_accept(void* a) {
  (void)a;
  CHECK_ERR(accept(sd_listener, NULL, NULL), EINVAL);
  return NULL;
}
static void* blocked_recv(void* a) {
  (void)a;
  char c;
  CHECK(recv(sd_pair[0], &c, 1, 0) == 0);
  return NULL;
}

static void test_shutdown_wakes(void) {
  sd_listener = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  CHECK(bind(sd_listener, (struct sockaddr*)&sa, sizeof sa) == 0 && listen(sd_listener, 4) == 0);
  CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sd_pair) == 0);
  pthread_t a, r;
  CHECK_RC(pthread_create(&a, NULL, blocked_accept, NULL), 0);
  CHECK_RC(pthread_create(&r, NULL, blocked_recv, NULL), 0);
  usleep(100 * 1000);
  CHECK(shutdown(sd_listener, SHUT_RDWR) == 0);
  CHECK(shutdown(sd_pair[0], SHUT_RD) == 0);
  CHECK_RC(pthread_join(a, NULL), 0);
  CHECK_RC(pthread_join(r, NULL), 0);
  printf("shutdown from another thread: blocked accept EINVAL, blocked recv 0\n");
  close(sd_listener), close(sd_pair[0]), close(sd_pair[1]);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  test_shutdown_wakes();
  test_pipe_socketpair();
  test_files();
  test_eventfd();
  return finish("io_exact");
}
