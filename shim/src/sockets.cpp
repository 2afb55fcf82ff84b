// shim/src/sockets.cpp: socket calls.
//
// Symbols owned here:
//   socket socketpair accept accept4 connect recv recvfrom recvmsg recvmmsg
//   send sendto sendmsg sendmmsg setsockopt __recv_chk __recvfrom_chk
//
// On a green thread: greenring::io's calls (suspend, don't block), deadlines
// from SO_RCVTIMEO/SO_SNDTIMEO ending in EAGAIN (a timed-out blocking connect
// in EINPROGRESS), as the kernel does. setsockopt reaches the kernel in every
// case — getsockopt reads the values back from there — and records the two
// timeouts for green calls. shutdown, getsockopt, bind, listen are not
// intercepted: they never block.
#include "shim.hpp"

#include <greenring/io.hpp>

#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>

extern "C" [[noreturn]] void __chk_fail(void);

namespace greenring::shim {
namespace {

template <class T>
T timeout_is(T r, time_point d, int e) noexcept {
  if (r < 0 && errno == ETIMEDOUT && d != time_point::max()) errno = e;
  return r;
}

// recvmmsg/sendmmsg: the batch call with MSG_DONTWAIT, waiting for readiness in between.
int g_mmsg(bool out, int fd, mmsghdr* v, unsigned n, int flags, const timespec* tmo) {
  time_point d = out ? send_deadline(fd) : recv_deadline(fd);
  if (tmo) {
    if (!valid_timespec(tmo)) return fail(EINVAL);
    d = std::min(d, deadline_from_rel(*tmo));
  }
  unsigned done = 0;
  for (;;) {
    int r = out ? GR_REAL(sendmmsg)(fd, v + done, n - done, flags | MSG_DONTWAIT)
                : GR_REAL(recvmmsg)(fd, v + done, n - done, flags | MSG_DONTWAIT, nullptr);
    if (r > 0) {
      done += static_cast<unsigned>(r);
      // A blocking recvmmsg keeps waiting until vlen messages unless MSG_WAITFORONE.
      if (out || done == n || (flags & MSG_WAITFORONE) || (flags & MSG_DONTWAIT)) return static_cast<int>(done);
      continue;
    }
    if (r < 0 && errno != EAGAIN) return done ? static_cast<int>(done) : -1;
    if (flags & MSG_DONTWAIT) return done ? static_cast<int>(done) : -1;
    int pr = greenring::io::poll(fd, out ? POLLOUT : POLLIN, d);
    if (pr < 0) return done ? static_cast<int>(done) : -1;
    if (pr == 0) return done ? static_cast<int>(done) : fail(EAGAIN);
    // Non-blocking socket (set by the program): the first EAGAIN was its answer.
    int fl = GR_REAL(fcntl)(fd, F_GETFL);
    if (fl >= 0 && (fl & O_NONBLOCK) && done == 0 && r < 0) return fail(EAGAIN);
  }
}

}  // namespace
}  // namespace greenring::shim

using namespace greenring::shim;

GR_EXPORT int socket(int domain, int type, int proto) {
  int fd = GR_REAL(socket)(domain, type, proto);
  if (fd >= 0 && enabled()) fd_forget(fd);
  return fd;
}

GR_EXPORT int socketpair(int domain, int type, int proto, int sv[2]) {
  int r = GR_REAL(socketpair)(domain, type, proto, sv);
  if (r == 0 && enabled()) {
    fd_forget(sv[0]);
    fd_forget(sv[1]);
  }
  return r;
}

GR_EXPORT int setsockopt(int fd, int level, int name, const void* val, socklen_t len) {
  int r = GR_REAL(setsockopt)(fd, level, name, val, len);
  if (r == 0 && enabled() && level == SOL_SOCKET && (name == SO_RCVTIMEO || name == SO_SNDTIMEO) &&
      len >= sizeof(timeval)) {
    if (auto* s = fd_state(fd)) {
      auto* tv = static_cast<const timeval*>(val);
      std::uint64_t us = static_cast<std::uint64_t>(tv->tv_sec) * 1000000u + static_cast<std::uint64_t>(tv->tv_usec);
      (name == SO_RCVTIMEO ? s->rcv_us : s->snd_us).store(us, std::memory_order_relaxed);
    }
  }
  return r;
}

GR_EXPORT int accept(int fd, sockaddr* addr, socklen_t* len) {
  if (!green()) return GR_REAL(accept)(fd, addr, len);
  time_point d = recv_deadline(fd);
  int r = timeout_is(greenring::io::accept(fd, addr, len, d), d, EAGAIN);
  if (r >= 0) fd_forget(r);
  return r;
}

GR_EXPORT int accept4(int fd, sockaddr* addr, socklen_t* len, int flags) {
  if (!green()) return GR_REAL(accept4)(fd, addr, len, flags);
  time_point d = recv_deadline(fd);
  int r = timeout_is(greenring::io::accept4(fd, addr, len, flags, d), d, EAGAIN);
  if (r >= 0) fd_forget(r);
  return r;
}

GR_EXPORT int connect(int fd, const sockaddr* addr, socklen_t len) {
  if (!green()) return GR_REAL(connect)(fd, addr, len);
  time_point d = send_deadline(fd);
  return timeout_is(greenring::io::connect(fd, addr, len, d), d, EINPROGRESS);
}

GR_EXPORT ssize_t recv(int fd, void* buf, size_t n, int flags) {
  if (!green()) return GR_REAL(recv)(fd, buf, n, flags);
  time_point d = recv_deadline(fd);
  return timeout_is(greenring::io::recv(fd, buf, n, flags, d), d, EAGAIN);
}

GR_EXPORT ssize_t __recv_chk(int fd, void* buf, size_t n, size_t buflen, int flags) {
  if (n > buflen) __chk_fail();
  return recv(fd, buf, n, flags);
}

GR_EXPORT ssize_t recvfrom(int fd, void* buf, size_t n, int flags, sockaddr* addr, socklen_t* alen) {
  if (!green()) return GR_REAL(recvfrom)(fd, buf, n, flags, addr, alen);
  if (!addr) return recv(fd, buf, n, flags);
  iovec iov{buf, n};
  msghdr m{};
  m.msg_name = addr;
  m.msg_namelen = alen ? *alen : 0;
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  time_point d = recv_deadline(fd);
  ssize_t r = timeout_is(greenring::io::recvmsg(fd, &m, flags, d), d, EAGAIN);
  if (r >= 0 && alen) *alen = m.msg_namelen;
  return r;
}

GR_EXPORT ssize_t __recvfrom_chk(int fd, void* buf, size_t n, size_t buflen, int flags, sockaddr* addr,
                                 socklen_t* alen) {
  if (n > buflen) __chk_fail();
  return recvfrom(fd, buf, n, flags, addr, alen);
}

GR_EXPORT ssize_t recvmsg(int fd, msghdr* m, int flags) {
  if (!green()) return GR_REAL(recvmsg)(fd, m, flags);
  time_point d = recv_deadline(fd);
  return timeout_is(greenring::io::recvmsg(fd, m, flags, d), d, EAGAIN);
}

GR_EXPORT int recvmmsg(int fd, mmsghdr* v, unsigned n, int flags, timespec* tmo) {
  if (!green()) return GR_REAL(recvmmsg)(fd, v, n, flags, tmo);
  return g_mmsg(false, fd, v, n, flags, tmo);
}

GR_EXPORT ssize_t send(int fd, const void* buf, size_t n, int flags) {
  if (!green()) return GR_REAL(send)(fd, buf, n, flags);
  time_point d = send_deadline(fd);
  return timeout_is(greenring::io::send(fd, buf, n, flags, d), d, EAGAIN);
}

GR_EXPORT ssize_t sendto(int fd, const void* buf, size_t n, int flags, const sockaddr* addr, socklen_t alen) {
  if (!green()) return GR_REAL(sendto)(fd, buf, n, flags, addr, alen);
  if (!addr) return send(fd, buf, n, flags);
  iovec iov{const_cast<void*>(buf), n};
  msghdr m{};
  m.msg_name = const_cast<sockaddr*>(addr);
  m.msg_namelen = alen;
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  time_point d = send_deadline(fd);
  return timeout_is(greenring::io::sendmsg(fd, &m, flags, d), d, EAGAIN);
}

GR_EXPORT ssize_t sendmsg(int fd, const msghdr* m, int flags) {
  if (!green()) return GR_REAL(sendmsg)(fd, m, flags);
  time_point d = send_deadline(fd);
  return timeout_is(greenring::io::sendmsg(fd, m, flags, d), d, EAGAIN);
}

GR_EXPORT int sendmmsg(int fd, mmsghdr* v, unsigned n, int flags) {
  if (!green()) return GR_REAL(sendmmsg)(fd, v, n, flags);
  return g_mmsg(true, fd, v, n, flags, nullptr);
}
