// detail/sys.hpp: the system calls the runtime makes, issued directly.
//
// Why not libc's wrappers: under LD_PRELOAD the shim interposes read, recv,
// poll, fcntl, close and the rest, and the runtime is linked into the same
// shared object — a call to ::recv from inside the runtime would land in the
// shim's recv and recurse. Calling the kernel directly also gives the
// runtime's preferred convention for free: the result, or -errno.
// (liburing makes its own syscalls; Boost.Fiber on a worker only uses
// spinlocks and sched_yield.)
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <type_traits>

namespace greenring::detail::sys {

#if defined(__x86_64__)
inline long raw(long n, long a1 = 0, long a2 = 0, long a3 = 0, long a4 = 0, long a5 = 0, long a6 = 0) noexcept {
  long ret;
  register long r10 __asm__("r10") = a4;
  register long r8 __asm__("r8") = a5;
  register long r9 __asm__("r9") = a6;
  __asm__ volatile("syscall"
                   : "=a"(ret)
                   : "a"(n), "D"(a1), "S"(a2), "d"(a3), "r"(r10), "r"(r8), "r"(r9)
                   : "rcx", "r11", "memory");
  return ret;
}
#elif defined(__aarch64__)
inline long raw(long n, long a1 = 0, long a2 = 0, long a3 = 0, long a4 = 0, long a5 = 0, long a6 = 0) noexcept {
  register long x8 __asm__("x8") = n;
  register long x0 __asm__("x0") = a1;
  register long x1 __asm__("x1") = a2;
  register long x2 __asm__("x2") = a3;
  register long x3 __asm__("x3") = a4;
  register long x4 __asm__("x4") = a5;
  register long x5 __asm__("x5") = a6;
  __asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5) : "memory");
  return x0;
}
#else
inline long raw(long n, long a1 = 0, long a2 = 0, long a3 = 0, long a4 = 0, long a5 = 0, long a6 = 0) noexcept {
  long r = ::syscall(n, a1, a2, a3, a4, a5, a6);
  return r < 0 ? -errno : r;
}
#endif

template <class T>
inline long L(T v) noexcept {
  if constexpr (std::is_pointer_v<T>) return reinterpret_cast<long>(v);
  else return static_cast<long>(v);
}

inline ssize_t read(int fd, void* b, size_t n) noexcept { return raw(SYS_read, fd, L(b), L(n)); }
inline ssize_t write(int fd, const void* b, size_t n) noexcept { return raw(SYS_write, fd, L(b), L(n)); }
inline ssize_t readv(int fd, const iovec* v, int c) noexcept { return raw(SYS_readv, fd, L(v), c); }
inline ssize_t writev(int fd, const iovec* v, int c) noexcept { return raw(SYS_writev, fd, L(v), c); }
// The kernel takes the offset as two longs; on 64-bit the high half is unused.
inline ssize_t preadv(int fd, const iovec* v, int c, off_t o) noexcept { return raw(SYS_preadv, fd, L(v), c, o, 0); }
inline ssize_t pwritev(int fd, const iovec* v, int c, off_t o) noexcept { return raw(SYS_pwritev, fd, L(v), c, o, 0); }
inline ssize_t preadv2(int fd, const iovec* v, int c, off_t o, int f) noexcept {
  return raw(SYS_preadv2, fd, L(v), c, o, 0, f);
}
inline ssize_t pwritev2(int fd, const iovec* v, int c, off_t o, int f) noexcept {
  return raw(SYS_pwritev2, fd, L(v), c, o, 0, f);
}
inline ssize_t recv(int fd, void* b, size_t n, int f) noexcept { return raw(SYS_recvfrom, fd, L(b), L(n), f, 0, 0); }
inline ssize_t send(int fd, const void* b, size_t n, int f) noexcept { return raw(SYS_sendto, fd, L(b), L(n), f, 0, 0); }
inline ssize_t recvmsg(int fd, msghdr* m, int f) noexcept { return raw(SYS_recvmsg, fd, L(m), f); }
inline ssize_t sendmsg(int fd, const msghdr* m, int f) noexcept { return raw(SYS_sendmsg, fd, L(m), f); }
inline int accept4(int fd, sockaddr* a, socklen_t* l, int f) noexcept {
  return static_cast<int>(raw(SYS_accept4, fd, L(a), L(l), f));
}
inline int connect(int fd, const sockaddr* a, socklen_t l) noexcept {
  return static_cast<int>(raw(SYS_connect, fd, L(a), l));
}
inline int getsockopt(int fd, int lvl, int name, void* v, socklen_t* l) noexcept {
  return static_cast<int>(raw(SYS_getsockopt, fd, lvl, name, L(v), L(l)));
}
inline int fcntl(int fd, int cmd, long arg = 0) noexcept { return static_cast<int>(raw(SYS_fcntl, fd, cmd, arg)); }
inline int fstat(int fd, struct stat* st) noexcept {
  return static_cast<int>(raw(SYS_newfstatat, fd, L(""), L(st), AT_EMPTY_PATH));
}
// timeout_ms < 0: forever.
inline int poll(pollfd* p, nfds_t n, int timeout_ms) noexcept {
  timespec ts{timeout_ms / 1000, (timeout_ms % 1000) * 1000000L};
  return static_cast<int>(raw(SYS_ppoll, L(p), L(n), timeout_ms < 0 ? 0 : L(&ts), 0, 8));
}
inline int epoll_wait(int ep, epoll_event* ev, int max, int timeout_ms) noexcept {
  return static_cast<int>(raw(SYS_epoll_pwait, ep, L(ev), max, timeout_ms, 0, 8));
}
inline int openat(int dir, const char* p, int f, mode_t m) noexcept {
  return static_cast<int>(raw(SYS_openat, dir, L(p), f, m));
}
inline int close(int fd) noexcept { return static_cast<int>(raw(SYS_close, fd)); }
inline int fsync(int fd) noexcept { return static_cast<int>(raw(SYS_fsync, fd)); }
inline int fdatasync(int fd) noexcept { return static_cast<int>(raw(SYS_fdatasync, fd)); }
inline int statx(int dir, const char* p, int f, unsigned mask, struct statx* out) noexcept {
  return static_cast<int>(raw(SYS_statx, dir, L(p), f, mask, L(out)));
}

}  // namespace greenring::detail::sys
