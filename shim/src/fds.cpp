// shim/src/fds.cpp: descriptor I/O.
//
// Symbols owned here:
//   read write readv writev pread pread64 pwrite pwrite64 preadv preadv64
//   pwritev pwritev64 preadv2 pwritev2 preadv64v2 pwritev64v2
//   __read_chk __pread_chk __pread64_chk
//   open open64 openat openat64 creat creat64 __open_2 __open64_2 __openat_2 __openat64_2
//   close dup dup2 dup3 fcntl fcntl64 fsync fdatasync sendfile sendfile64 flock
//   pipe pipe2 eventfd epoll_create epoll_create1 timerfd_create signalfd inotify_init
//   inotify_init1 ioctl (only to forget cached per-fd state)
//
// On a green thread each call is greenring::io's (libc results, suspension
// instead of blocking, regular files through io_uring), with SO_RCVTIMEO /
// SO_SNDTIMEO as deadlines that end in EAGAIN like the kernel's. O_NONBLOCK is
// not cached: greenring asks the kernel (F_GETFL) on the slow path only, so
// fcntl(F_SETFL) and ioctl(FIONBIO) need no interception to be honoured.
// preadv2/pwritev2 with flags other than 0 go to libc as they are.
#include "shim.hpp"

#include "io/wait_any.hpp"

#include <greenring/io.hpp>
#include <greenring/spawn.hpp>

#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cstdarg>

extern "C" [[noreturn]] void __chk_fail(void);
extern "C" [[noreturn]] void __fortify_fail(const char*);

namespace greenring::shim {
namespace {

// A deadline that came from SO_RCVTIMEO/SO_SNDTIMEO ends like the kernel's: EAGAIN.
template <class T>
T timeout_is_eagain(T r, time_point d) noexcept {
  if (r < 0 && errno == ETIMEDOUT && d != time_point::max()) errno = EAGAIN;
  return r;
}

ssize_t g_read(int fd, void* buf, size_t n) {
  time_point d = recv_deadline(fd);
  return timeout_is_eagain(greenring::io::read(fd, buf, n, d), d);
}
ssize_t g_write(int fd, const void* buf, size_t n) {
  time_point d = send_deadline(fd);
  return timeout_is_eagain(greenring::io::write(fd, buf, n, d), d);
}

bool needs_mode(int flags) noexcept { return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE; }

int g_openat(int dirfd, const char* path, int flags, mode_t mode) {
  int fd = greenring::io::openat(dirfd, path, flags, mode);
  if (fd >= 0) fd_forget(fd);
  return fd;
}

// sendfile to a blocking socket would block the worker once the socket buffer
// fills: wait for POLLOUT first, then send no more than the buffer has room for.
ssize_t g_sendfile(int out, int in, off_t* off, size_t count) {
  for (;;) {
    int fl = GR_REAL(fcntl)(out, F_GETFL);
    if (fl < 0) return -1;
    if (fl & O_NONBLOCK) return GR_REAL(sendfile)(out, in, off, count);
    size_t chunk = count;
    int sndbuf = 0, queued = 0;
    socklen_t len = sizeof sndbuf;
    if (::getsockopt(out, SOL_SOCKET, SO_SNDBUF, &sndbuf, &len) == 0 && ioctl(out, TIOCOUTQ, &queued) == 0) {
      size_t room = sndbuf > queued ? static_cast<size_t>(sndbuf - queued) : 0;
      if (room == 0) {
        time_point d = send_deadline(out);
        int pr = greenring::io::poll(out, POLLOUT, d);
        if (pr == 0) return fail<ssize_t>(EAGAIN);
        if (pr < 0) return -1;
        continue;
      }
      chunk = std::min(chunk, room);
    } else {
      // Not a socket (a pipe or a file): wait until writable, then one call.
      time_point d = send_deadline(out);
      int pr = greenring::io::poll(out, POLLOUT, d);
      if (pr == 0) return fail<ssize_t>(EAGAIN);
      if (pr < 0) return -1;
    }
    return GR_REAL(sendfile)(out, in, off, chunk);
  }
}

}  // namespace
}  // namespace greenring::shim

using namespace greenring::shim;

GR_EXPORT ssize_t read(int fd, void* buf, size_t n) {
  if (!green()) return GR_REAL(read)(fd, buf, n);
  return g_read(fd, buf, n);
}

GR_EXPORT ssize_t __read_chk(int fd, void* buf, size_t n, size_t buflen) {
  if (n > buflen) __chk_fail();
  return read(fd, buf, n);
}

GR_EXPORT ssize_t write(int fd, const void* buf, size_t n) {
  if (!green()) return GR_REAL(write)(fd, buf, n);
  return g_write(fd, buf, n);
}

GR_EXPORT ssize_t readv(int fd, const iovec* iov, int cnt) {
  if (!green()) return GR_REAL(readv)(fd, iov, cnt);
  time_point d = recv_deadline(fd);
  return timeout_is_eagain(greenring::io::readv(fd, iov, cnt, d), d);
}

GR_EXPORT ssize_t writev(int fd, const iovec* iov, int cnt) {
  if (!green()) return GR_REAL(writev)(fd, iov, cnt);
  time_point d = send_deadline(fd);
  return timeout_is_eagain(greenring::io::writev(fd, iov, cnt, d), d);
}

GR_EXPORT ssize_t pread(int fd, void* buf, size_t n, off_t off) {
  if (!green()) return GR_REAL(pread)(fd, buf, n, off);
  return greenring::io::pread(fd, buf, n, off);
}
GR_EXPORT ssize_t pread64(int fd, void* buf, size_t n, off_t off) { return pread(fd, buf, n, off); }
GR_EXPORT ssize_t __pread_chk(int fd, void* buf, size_t n, off_t off, size_t buflen) {
  if (n > buflen) __chk_fail();
  return pread(fd, buf, n, off);
}
GR_EXPORT ssize_t __pread64_chk(int fd, void* buf, size_t n, off_t off, size_t buflen) {
  if (n > buflen) __chk_fail();
  return pread(fd, buf, n, off);
}

GR_EXPORT ssize_t pwrite(int fd, const void* buf, size_t n, off_t off) {
  if (!green()) return GR_REAL(pwrite)(fd, buf, n, off);
  return greenring::io::pwrite(fd, buf, n, off);
}
GR_EXPORT ssize_t pwrite64(int fd, const void* buf, size_t n, off_t off) { return pwrite(fd, buf, n, off); }

GR_EXPORT ssize_t preadv(int fd, const iovec* iov, int cnt, off_t off) {
  if (!green()) return GR_REAL(preadv)(fd, iov, cnt, off);
  return greenring::io::preadv(fd, iov, cnt, off);
}
GR_EXPORT ssize_t preadv64(int fd, const iovec* iov, int cnt, off_t off) { return preadv(fd, iov, cnt, off); }

GR_EXPORT ssize_t pwritev(int fd, const iovec* iov, int cnt, off_t off) {
  if (!green()) return GR_REAL(pwritev)(fd, iov, cnt, off);
  return greenring::io::pwritev(fd, iov, cnt, off);
}
GR_EXPORT ssize_t pwritev64(int fd, const iovec* iov, int cnt, off_t off) { return pwritev(fd, iov, cnt, off); }

GR_EXPORT ssize_t preadv2(int fd, const iovec* iov, int cnt, off_t off, int flags) {
  if (!green() || flags != 0) return GR_REAL(preadv2)(fd, iov, cnt, off, flags);
  if (off == -1) return readv(fd, iov, cnt);
  return greenring::io::preadv(fd, iov, cnt, off);
}
GR_EXPORT ssize_t preadv64v2(int fd, const iovec* iov, int cnt, off_t off, int flags) {
  return preadv2(fd, iov, cnt, off, flags);
}

GR_EXPORT ssize_t pwritev2(int fd, const iovec* iov, int cnt, off_t off, int flags) {
  if (!green() || flags != 0) return GR_REAL(pwritev2)(fd, iov, cnt, off, flags);
  if (off == -1) return writev(fd, iov, cnt);
  return greenring::io::pwritev(fd, iov, cnt, off);
}
GR_EXPORT ssize_t pwritev64v2(int fd, const iovec* iov, int cnt, off_t off, int flags) {
  return pwritev2(fd, iov, cnt, off, flags);
}

// ---- open ----------------------------------------------------------------------------------

// open's third argument exists only with O_CREAT or O_TMPFILE, as glibc reads
// it. A macro: va_start belongs to the variadic function itself.
#define GR_OPEN_MODE(flags)                               \
  ({                                                      \
    mode_t mode_ = 0;                                     \
    if (needs_mode(flags)) {                              \
      va_list ap;                                         \
      va_start(ap, flags);                                \
      mode_ = static_cast<mode_t>(va_arg(ap, int));       \
      va_end(ap);                                         \
    }                                                     \
    mode_;                                                \
  })

// The 64-bit names are the same functions on LP64 (glibc aliases them too).
#define GR_ALIAS(target) __attribute__((alias(#target)))

GR_EXPORT int openat(int dirfd, const char* path, int flags, ...) {
  mode_t mode = GR_OPEN_MODE(flags);
  if (!green()) return GR_REAL(openat)(dirfd, path, flags, mode);
  return g_openat(dirfd, path, flags, mode);
}
GR_EXPORT int openat64(int dirfd, const char* path, int flags, ...) GR_ALIAS(openat);

GR_EXPORT int open(const char* path, int flags, ...) {
  mode_t mode = GR_OPEN_MODE(flags);
  if (!green()) return GR_REAL(open)(path, flags, mode);
  return g_openat(AT_FDCWD, path, flags, mode);
}
GR_EXPORT int open64(const char* path, int flags, ...) GR_ALIAS(open);

GR_EXPORT int creat(const char* path, mode_t mode) { return open(path, O_CREAT | O_WRONLY | O_TRUNC, mode); }
GR_EXPORT int creat64(const char* path, mode_t mode) GR_ALIAS(creat);

GR_EXPORT int __open_2(const char* path, int flags) {
  if (needs_mode(flags)) __fortify_fail("invalid open call: O_CREAT or O_TMPFILE without mode");
  return open(path, flags);
}
GR_EXPORT int __open64_2(const char* path, int flags) GR_ALIAS(__open_2);
GR_EXPORT int __openat_2(int dirfd, const char* path, int flags) {
  if (needs_mode(flags)) __fortify_fail("invalid openat call: O_CREAT or O_TMPFILE without mode");
  return openat(dirfd, path, flags);
}
GR_EXPORT int __openat64_2(int dirfd, const char* path, int flags) GR_ALIAS(__openat_2);

// ---- close and dup: keep the per-fd table in step ----------------------------------------------

GR_EXPORT int close(int fd) {
  if (!enabled()) return GR_REAL(close)(fd);
  fd_forget(fd);
  // Any caller: a green thread waiting on fd (on any worker) is woken with EBADF.
  return greenring::io::close(fd);
}

// A new fd number: whatever was cached for a previous fd with that number goes.
static int new_fd(int r) noexcept {
  if (r >= 0 && enabled()) fd_forget(r);
  return r;
}

GR_EXPORT int dup(int fd) { return new_fd(GR_REAL(dup)(fd)); }
GR_EXPORT int dup2(int fd, int to) { return fd == to ? GR_REAL(dup2)(fd, to) : new_fd(GR_REAL(dup2)(fd, to)); }
GR_EXPORT int dup3(int fd, int to, int flags) { return new_fd(GR_REAL(dup3)(fd, to, flags)); }

GR_EXPORT int fcntl(int fd, int cmd, ...) {
  va_list ap;
  va_start(ap, cmd);
  void* arg = va_arg(ap, void*);
  va_end(ap);
  if (green() && (cmd == F_SETLKW || cmd == F_OFD_SETLKW)) {
    // A blocking record lock would hold the worker: poll the non-blocking form
    // with a growing pause (1 to 50 ms). Deadlock detection (EDEADLK) is lost.
    int try_cmd = cmd == F_SETLKW ? F_SETLK : F_OFD_SETLK;
    auto pause = std::chrono::milliseconds(1);
    for (;;) {
      int r = GR_REAL(fcntl)(fd, try_cmd, arg);
      if (r == 0 || (errno != EAGAIN && errno != EACCES)) return r;
      greenring::this_fiber::sleep_for(pause);
      pause = std::min(pause * 2, std::chrono::milliseconds(50));
    }
  }
  int r = GR_REAL(fcntl)(fd, cmd, arg);
  if (r >= 0 && (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC) && enabled()) fd_forget(r);
  if (r >= 0 && cmd == F_SETFL && enabled()) greenring::detail::forget_blocked_hint(fd);
  return r;
}

GR_EXPORT int fcntl64(int fd, int cmd, ...) GR_ALIAS(fcntl);

GR_EXPORT int fsync(int fd) {
  if (!green()) return GR_REAL(fsync)(fd);
  return greenring::io::fsync(fd);
}

GR_EXPORT int fdatasync(int fd) {
  if (!green()) return GR_REAL(fdatasync)(fd);
  return greenring::io::fdatasync(fd);
}

GR_EXPORT ssize_t sendfile(int out, int in, off_t* off, size_t count) {
  if (!green()) return GR_REAL(sendfile)(out, in, off, count);
  return g_sendfile(out, in, off, count);
}
GR_EXPORT ssize_t sendfile64(int out, int in, off_t* off, size_t count) GR_ALIAS(sendfile);

// A blocking flock would hold the worker: poll LOCK_NB with a growing pause.
GR_EXPORT int flock(int fd, int op) {
  if (!green() || (op & LOCK_NB) || (op & ~LOCK_NB) == LOCK_UN) return GR_REAL(flock)(fd, op);
  auto pause = std::chrono::milliseconds(1);
  for (;;) {
    int r = GR_REAL(flock)(fd, op | LOCK_NB);
    if (r == 0 || errno != EWOULDBLOCK) return r;
    greenring::this_fiber::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(50));
  }
}

// New fd numbers (new_fd).
static int new_fds(int r, const int fds[2]) noexcept {
  if (r == 0) new_fd(fds[0]), new_fd(fds[1]);
  return r;
}
GR_EXPORT int pipe(int fds[2]) { return new_fds(GR_REAL(pipe)(fds), fds); }
GR_EXPORT int pipe2(int fds[2], int flags) { return new_fds(GR_REAL(pipe2)(fds, flags), fds); }
GR_EXPORT int eventfd(unsigned init, int flags) { return new_fd(GR_REAL(eventfd)(init, flags)); }
GR_EXPORT int epoll_create(int size) { return new_fd(GR_REAL(epoll_create)(size)); }
GR_EXPORT int epoll_create1(int flags) { return new_fd(GR_REAL(epoll_create1)(flags)); }

// FIONBIO changes O_NONBLOCK like fcntl(F_SETFL): greenring's "last read
// blocked" hint for the fd must go (runtime/src/io/io.cpp).
GR_EXPORT int ioctl(int fd, unsigned long req, ...) {
  va_list ap;
  va_start(ap, req);
  void* arg = va_arg(ap, void*);
  va_end(ap);
  int r = GR_REAL(ioctl)(fd, req, arg);
  if (r == 0 && req == FIONBIO && enabled()) greenring::detail::forget_blocked_hint(fd);
  return r;
}

GR_EXPORT int timerfd_create(int clk, int flags) { return new_fd(GR_REAL(timerfd_create)(clk, flags)); }
GR_EXPORT int signalfd(int fd, const sigset_t* mask, int flags) { return new_fd(GR_REAL(signalfd)(fd, mask, flags)); }
GR_EXPORT int inotify_init() { return new_fd(GR_REAL(inotify_init)()); }
GR_EXPORT int inotify_init1(int flags) { return new_fd(GR_REAL(inotify_init1)(flags)); }
