// greenring/io.hpp: green I/O. Each function has the libc signature plus an
// optional deadline, and libc's results: the count or -1 with errno, partial
// transfers, 0 at EOF.
//
// On a green thread, a call that would block suspends only the calling green
// thread while the worker's driver (io_uring, or epoll) waits. When the data is
// already there the call is one direct non-blocking syscall (the fast path).
// On a plain OS thread each function is the plain blocking syscall.
//
// Blocking semantics follow the fd: an fd with O_NONBLOCK set by the program
// gets EAGAIN at once, as from libc; a blocking stream write transfers
// everything unless an error, the deadline or cancellation stops it after
// partial progress, in which case the partial count is returned.
//
// Errors beyond libc's:
// - ETIMEDOUT: the deadline passed before anything was transferred.
// - EBADF: another green thread closed the fd through greenring::io::close
//   while this call waited on it (the wait ends at once; Linux itself would
//   leave a blocked read() waiting).
// Cancellation: when the green thread's cancellation is requested while it
// waits here, the kernel operation is cancelled, its completion awaited (so the
// buffer is never written after return), and greenring::cancelled is thrown —
// unless the operation had already transferred data, which is then returned and
// the cancellation is delivered at the next suspension.
#pragma once

#include <greenring/cancel.hpp>

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <cstddef>

namespace greenring::io {

ssize_t read(int fd, void* buf, size_t n, deadline until = no_deadline);
ssize_t write(int fd, const void* buf, size_t n, deadline until = no_deadline);
ssize_t readv(int fd, const iovec* iov, int iovcnt, deadline until = no_deadline);
ssize_t writev(int fd, const iovec* iov, int iovcnt, deadline until = no_deadline);
ssize_t pread(int fd, void* buf, size_t n, off_t off, deadline until = no_deadline);
ssize_t pwrite(int fd, const void* buf, size_t n, off_t off, deadline until = no_deadline);
ssize_t preadv(int fd, const iovec* iov, int iovcnt, off_t off, deadline until = no_deadline);
ssize_t pwritev(int fd, const iovec* iov, int iovcnt, off_t off, deadline until = no_deadline);

ssize_t recv(int fd, void* buf, size_t n, int flags, deadline until = no_deadline);
ssize_t send(int fd, const void* buf, size_t n, int flags, deadline until = no_deadline);
ssize_t recvmsg(int fd, msghdr* msg, int flags, deadline until = no_deadline);
ssize_t sendmsg(int fd, const msghdr* msg, int flags, deadline until = no_deadline);

int accept(int fd, sockaddr* addr, socklen_t* addrlen, deadline until = no_deadline);
int accept4(int fd, sockaddr* addr, socklen_t* addrlen, int flags, deadline until = no_deadline);
// A blocking socket's connect waits for the handshake; a non-blocking one
// returns -1/EINPROGRESS as from libc.
int connect(int fd, const sockaddr* addr, socklen_t addrlen, deadline until = no_deadline);

// Waits until fd has any of `events` (POLLIN, POLLOUT, ...). Returns the
// revents (> 0), 0 when the deadline passed, or -1 with errno.
int poll(int fd, short events, deadline until = no_deadline);

int openat(int dirfd, const char* path, int flags, mode_t mode = 0);
int open(const char* path, int flags, mode_t mode = 0);
// Wakes every green thread waiting on fd (they fail with EBADF), then closes it.
int close(int fd);
int fsync(int fd);
int fdatasync(int fd);
int statx(int dirfd, const char* path, int flags, unsigned mask, struct statx* out);

}  // namespace greenring::io
