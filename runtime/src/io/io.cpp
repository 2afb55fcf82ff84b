// io/io.cpp: green I/O — libc signatures, libc results, suspension instead of
// blocking.
//
// # Shape of every call
//  1. Not on a worker: the plain syscall (a deadline, if any, is a poll()
//     first).
//  2. Fast path: one non-blocking attempt on the fd as it is. Reads and writes
//     use preadv2/pwritev2 with RWF_NOWAIT and sockets MSG_DONTWAIT, which
//     work on blocking fds without touching their flags (the flags are shared
//     with every dup and with other processes). When data is there this is the
//     whole cost: one syscall, ~1/3 of a ready read through io_uring here.
//  3. EAGAIN on an fd the program made O_NONBLOCK: returned, as libc would.
//  4. Slow path: the worker's driver carries the wait. io_uring runs the
//     operation itself (one CQE carries the data, no second syscall); epoll
//     waits for readiness and the attempt is repeated.
//
// # Lifetimes (tokio's op.rs rule)
// An io_op lives in this frame. If the wait ends early (deadline,
// cancellation, close) the op is cancelled and we wait, uncancellably, for its
// completion before returning: the kernel never writes into a buffer the
// caller has got back. A completion that carries a result wins over the
// reason the wait ended, so nothing read or written is lost.
//
// # Blocking stream writes
// Loop until everything is written, as the kernel does for a blocking socket
// or pipe; if an error, the deadline or cancellation stops it after partial
// progress, the partial count is returned and the condition shows up on the
// next call.
#include "detail/sys.hpp"
#include "io/fd_mode.hpp"
#include "io/fd_registry.hpp"
#include "worker/worker.hpp"

#include <greenring/io.hpp>

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <vector>

namespace greenring::detail {
namespace {

// Starts op, parks, and settles the op however the wait ended. `eager`
// flushes the submission at once: io_uring attempts the op inline, so an op
// with no user-space non-blocking form (accept on a blocking listener) that
// can complete now does so without waiting for the scheduler pass.
ssize_t run_op(worker& w, io_op& op, time_point until, wake& why, bool eager = false) noexcept {
  parker p;
  op.waiter = &p;
  fd_wait reg;
  reg.fd = op.fd;
  reg.p = &p;
  fd_wait_add(reg);
  w.drv().start(&op);
  if (eager) w.drv().poll(true);
  why = park(p, until, true);
  fd_wait_remove(reg);
  if (!op.done) {
    w.drv().cancel(&op);
    while (!op.done) {
      parker p2;
      op.waiter = &p2;
      park(p2, time_point::max(), false);
    }
  }
  if (why == wake::signalled || why == wake::none) return op.res;
  if (op.res != -ECANCELED && op.res != -EINTR) return op.res;  // finished anyway: honour it
  switch (why) {
    case wake::timeout: return -ETIMEDOUT;
    case wake::closed: return -EBADF;
    default: return -ECANCELED;
  }
}

ssize_t wait_ready(worker& w, int fd, short events, time_point until, wake& why) noexcept {
  io_op op;
  op.kind = op_kind::poll;
  op.fd = fd;
  op.events = events;
  return run_op(w, op, until, why);
}

// The readiness loop of the epoll driver (and of io_uring for ops it does not
// run natively): wait, retry the non-blocking attempt, until it is not EAGAIN.
// `blocking` is used for fds that cannot be polled (regular files under epoll).
template <class Attempt, class Blocking>
ssize_t readiness_loop(worker& w, int fd, short events, time_point until, wake& why, Attempt attempt,
                       Blocking blocking) {
  for (;;) {
    ssize_t r = wait_ready(w, fd, events, until, why);
    if (r == -EPERM) return blocking();
    if (r < 0) return r;
    r = attempt();
    if (r != -EAGAIN) return r;
  }
}

// ---- the "it blocked last time" hint ---------------------------------------------
// A keep-alive server reads a request, answers, and reads again before the
// next request exists: the non-blocking attempt then only costs a syscall and
// the O_NONBLOCK check (fcntl) a second one, ~1 us each here. So when the
// last read of a blocking fd had to wait, the next one goes straight to
// io_uring, which attempts the read itself at submission and arms a poll only
// if nothing is there. The hint is dropped when a read fills the caller's
// buffer (more data is probably queued: the fast path wins again), when the
// fd is closed, and by the shim when the program changes O_NONBLOCK.
constexpr int kHintFds = 1 << 20;
std::atomic<std::uint8_t> g_blocked_hint[kHintFds];
// Only where every change of O_NONBLOCK is seen (the shim intercepts fcntl and
// ioctl and drops the hint): io_uring arms a poll for an O_NONBLOCK socket
// instead of failing with EAGAIN, so a flag set behind our back would turn a
// non-blocking read into a wait.
std::atomic<bool> g_hints_enabled{false};

inline bool blocked_before(int fd) noexcept {
  return fd >= 0 && fd < kHintFds && g_hints_enabled.load(std::memory_order_relaxed) &&
         g_blocked_hint[fd].load(std::memory_order_relaxed) != 0;
}
inline void note_blocked(int fd, bool b) noexcept {
  if (fd >= 0 && fd < kHintFds && (g_blocked_hint[fd].load(std::memory_order_relaxed) != 0) != b)
    g_blocked_hint[fd].store(b ? 1 : 0, std::memory_order_relaxed);
}

// One read's (read/readv/recv) use of the hint. `skip`: go straight to the
// ring without the non-blocking attempt.
struct read_hint {
  int fd;
  bool skip;
  read_hint(int fd_, bool eligible) noexcept : fd(fd_), skip(eligible && blocked_before(fd_)) {}
  // The non-blocking attempt found nothing to read. False: the fd is the
  // program's O_NONBLOCK one, so the answer is EAGAIN, as from libc.
  bool first_wait() const noexcept {
    if (user_nonblocking(fd)) return false;
    note_blocked(fd, true);
    return true;
  }
  // The ring's result of a read that skipped the attempt: a full buffer (more
  // is probably queued) or EAGAIN (io_uring honoured an O_NONBLOCK set since)
  // drops the hint.
  void after_ring(ssize_t res, std::size_t want) const noexcept {
    if (skip && (res == -EAGAIN || (res > 0 && static_cast<std::size_t>(res) == want))) note_blocked(fd, false);
  }
};

// The ring op for a vectored transfer: the single-buffer opcode when there is
// one buffer (cheaper in the kernel, and supported on older ones).
io_op vec_op(op_kind one, op_kind many, int fd, std::uint64_t off, const iovec* iov, int cnt) noexcept {
  io_op op;
  op.fd = fd;
  op.off = off;
  if (cnt == 1) {
    op.kind = one;
    op.buf = iov[0].iov_base;
    op.len = iov[0].iov_len;
  } else {
    op.kind = many;
    op.iov = iov;
    op.iovcnt = cnt;
  }
  return op;
}

std::size_t total_len(const iovec* iov, int cnt) noexcept {
  std::size_t n = 0;
  for (int i = 0; i < cnt; ++i) n += iov[i].iov_len;
  return n;
}

// ---- reads -------------------------------------------------------------------

ssize_t nowait_readv(int fd, const iovec* iov, int cnt, std::uint64_t off) noexcept {
  return sys::preadv2(fd, iov, cnt, off == kFilePos ? -1 : static_cast<off_t>(off), RWF_NOWAIT);
}

ssize_t plain_readv(int fd, const iovec* iov, int cnt, std::uint64_t off) noexcept {
  return off == kFilePos ? sys::readv(fd, iov, cnt) : sys::preadv(fd, iov, cnt, static_cast<off_t>(off));
}

ssize_t g_readv(int fd, const iovec* iov, int cnt, std::uint64_t off, time_point until, wake& why) {
  worker* w = current_worker();
  if (!w) {
    ssize_t r = plain_wait(fd, POLLIN, until);
    return r < 0 ? r : plain_readv(fd, iov, cnt, off);
  }
  bool native = w->drv().native(cnt == 1 ? op_kind::read : op_kind::readv);
  read_hint hint(fd, native && off == kFilePos);
  ssize_t r = hint.skip ? -EAGAIN : nowait_readv(fd, iov, cnt, off);
  bool nowait_ok = r != -EOPNOTSUPP;
  if (nowait_ok && r != -EAGAIN) return r;
  // No RWF_NOWAIT for this file (inotify, some devices): an O_NONBLOCK fd is
  // then read directly, which cannot block; io_uring would wait instead.
  if (!nowait_ok && user_nonblocking(fd)) return plain_readv(fd, iov, cnt, off);
  if (!hint.skip && r == -EAGAIN && !hint.first_wait()) return -EAGAIN;
  if (native) {
    io_op op = vec_op(op_kind::read, op_kind::readv, fd, off, iov, cnt);
    ssize_t res = run_op(*w, op, until, why);
    hint.after_ring(res, total_len(iov, cnt));
    return res;
  }
  return readiness_loop(
      *w, fd, POLLIN, until, why,
      [&] { return nowait_ok ? nowait_readv(fd, iov, cnt, off) : plain_readv(fd, iov, cnt, off); },
      [&] { return plain_readv(fd, iov, cnt, off); });
}

// ---- writes ------------------------------------------------------------------

// Drops the first n bytes from a copy of an iovec array.
void advance(std::vector<iovec>& v, std::size_t& first, std::size_t n) {
  while (n > 0 && first < v.size()) {
    if (n >= v[first].iov_len) {
      n -= v[first].iov_len;
      ++first;
    } else {
      v[first].iov_base = static_cast<char*>(v[first].iov_base) + n;
      v[first].iov_len -= n;
      n = 0;
    }
  }
  while (first < v.size() && v[first].iov_len == 0) ++first;
}

ssize_t nowait_writev(int fd, const iovec* iov, int cnt, std::uint64_t off) noexcept {
  return sys::pwritev2(fd, iov, cnt, off == kFilePos ? -1 : static_cast<off_t>(off), RWF_NOWAIT);
}

ssize_t plain_writev(int fd, const iovec* iov, int cnt, std::uint64_t off) noexcept {
  return off == kFilePos ? sys::writev(fd, iov, cnt) : sys::pwritev(fd, iov, cnt, static_cast<off_t>(off));
}

ssize_t g_writev(int fd, const iovec* iov_in, int cnt, std::uint64_t off, time_point until, wake& why) {
  worker* w = current_worker();
  if (!w) {
    ssize_t r = plain_wait(fd, POLLOUT, until);
    return r < 0 ? r : plain_writev(fd, iov_in, cnt, off);
  }
  std::size_t want = total_len(iov_in, cnt);
  ssize_t r;
  if (cnt == 1 && off == kFilePos && want > 0 && blocked_before(fd) && w->drv().native(op_kind::write)) {
    // The fd's reads block (request/response traffic): the answer goes out
    // through the ring too, in the same batched enter as every other green
    // thread's I/O, instead of a syscall of its own (~1 us on these VMs,
    // against one extra switch). A short write continues below.
    io_op op;
    op.kind = op_kind::write;
    op.fd = fd;
    op.off = kFilePos;
    op.buf = iov_in[0].iov_base;
    op.len = want;
    r = run_op(*w, op, until, why);
    if (r == -EAGAIN) {  // O_NONBLOCK set since: as libc
      note_blocked(fd, false);
      return r;
    }
    if (r < 0 || r == static_cast<ssize_t>(want) || (why != wake::signalled && why != wake::none)) return r;
  } else {
    r = nowait_writev(fd, iov_in, cnt, off);
    if (r == static_cast<ssize_t>(want) || (r < 0 && r != -EAGAIN && r != -EOPNOTSUPP)) return r;
  }
  bool nowait_ok = r != -EOPNOTSUPP;
  if (!nowait_ok && user_nonblocking(fd)) return plain_writev(fd, iov_in, cnt, off);  // cannot block
  if (nowait_ok && r <= 0 && user_nonblocking(fd)) return r;  // EAGAIN, as from libc
  if (nowait_ok && r > 0 && user_nonblocking(fd)) return r;   // a partial count, as from libc
  std::vector<iovec> v(iov_in, iov_in + cnt);
  std::size_t first = 0;
  std::size_t total = r > 0 ? static_cast<std::size_t>(r) : 0;
  advance(v, first, total);
  auto pos = [&] { return off == kFilePos ? kFilePos : off + total; };
  while (total < want) {
    auto* iov = v.data() + first;
    int n = static_cast<int>(v.size() - first);
    if (w->drv().native(n == 1 ? op_kind::write : op_kind::writev)) {
      io_op op = vec_op(op_kind::write, op_kind::writev, fd, pos(), iov, n);
      r = run_op(*w, op, until, why);
    } else {
      r = readiness_loop(
          *w, fd, POLLOUT, until, why,
          [&] { return nowait_ok ? nowait_writev(fd, iov, n, pos()) : plain_writev(fd, iov, n, pos()); },
          [&] { return plain_writev(fd, iov, n, pos()); });
    }
    if (r <= 0) return total > 0 ? static_cast<ssize_t>(total) : (r == 0 ? 0 : r);
    total += static_cast<std::size_t>(r);
    advance(v, first, static_cast<std::size_t>(r));
    if (why != wake::signalled && why != wake::none) break;  // cut short: report progress
  }
  return static_cast<ssize_t>(total);
}

// ---- sockets -------------------------------------------------------------------

ssize_t g_recv(int fd, void* buf, std::size_t n, int flags, time_point until, wake& why) {
  worker* w = current_worker();
  if (!w || (flags & MSG_DONTWAIT)) {
    if (!(flags & MSG_DONTWAIT)) {
      ssize_t r = plain_wait(fd, POLLIN, until);
      if (r < 0) return r;
    }
    return sys::recv(fd, buf, n, flags);
  }
  std::size_t total = 0;
  bool waitall = (flags & MSG_WAITALL) && n > 0;
  int f = flags & ~MSG_WAITALL;
  for (;;) {
    char* p = static_cast<char*>(buf) + total;
    std::size_t left = n - total;
    bool native = w->drv().native(op_kind::recv);
    read_hint hint(fd, native && total == 0);
    ssize_t r = hint.skip ? -EAGAIN : sys::recv(fd, p, left, f | MSG_DONTWAIT);
    if (r == -EAGAIN) {
      if (!hint.skip && total == 0 && !hint.first_wait()) return -EAGAIN;
      if (native) {
        io_op op;
        op.kind = op_kind::recv;
        op.fd = fd;
        op.buf = p;
        op.len = left;
        op.flags = f;
        r = run_op(*w, op, until, why);
        hint.after_ring(r, left);  // an EAGAIN (O_NONBLOCK set since) is returned below, as libc
      } else {
        r = readiness_loop(*w, fd, POLLIN, until, why,
                           [&] { return sys::recv(fd, p, left, f | MSG_DONTWAIT); },
                           [&] { return sys::recv(fd, p, left, f); });
      }
    }
    if (r < 0) return total > 0 ? static_cast<ssize_t>(total) : r;
    total += static_cast<std::size_t>(r);
    if (!waitall || r == 0 || total == n || (why != wake::signalled && why != wake::none))
      return static_cast<ssize_t>(total);
  }
}

ssize_t g_send(int fd, const void* buf, std::size_t n, int flags, time_point until, wake& why) {
  worker* w = current_worker();
  if (!w || (flags & MSG_DONTWAIT)) {
    if (!(flags & MSG_DONTWAIT)) {
      ssize_t r = plain_wait(fd, POLLOUT, until);
      if (r < 0) return r;
    }
    return sys::send(fd, buf, n, flags);
  }
  std::size_t total = 0;
  bool checked_nonblocking = false;
  for (;;) {
    const char* p = static_cast<const char*>(buf) + total;
    std::size_t left = n - total;
    ssize_t r = sys::send(fd, p, left, flags | MSG_DONTWAIT);
    if (r >= 0) {
      total += static_cast<std::size_t>(r);
      if (total == n) return static_cast<ssize_t>(total);
    } else if (r != -EAGAIN) {
      return total > 0 ? static_cast<ssize_t>(total) : r;
    }
    if (!checked_nonblocking) {
      checked_nonblocking = true;
      if (user_nonblocking(fd)) return total > 0 ? static_cast<ssize_t>(total) : -EAGAIN;
    }
    p = static_cast<const char*>(buf) + total;
    left = n - total;
    if (w->drv().native(op_kind::send)) {
      io_op op;
      op.kind = op_kind::send;
      op.fd = fd;
      op.buf = const_cast<char*>(p);
      op.len = left;
      op.flags = flags;
      r = run_op(*w, op, until, why);
    } else {
      r = wait_ready(*w, fd, POLLOUT, until, why);
      if (r > 0) continue;  // ready: the loop's attempt sends
    }
    if (r < 0) return total > 0 ? static_cast<ssize_t>(total) : r;
    total += static_cast<std::size_t>(r);
    if (total == n || (why != wake::signalled && why != wake::none)) return static_cast<ssize_t>(total);
  }
}

ssize_t g_msg(bool out, int fd, msghdr* msg, int flags, time_point until, wake& why) {
  worker* w = current_worker();
  auto attempt = [&](int f) {
    return out ? sys::sendmsg(fd, msg, f) : sys::recvmsg(fd, msg, f);
  };
  short ev = out ? POLLOUT : POLLIN;
  if (!w || (flags & MSG_DONTWAIT)) {
    if (!(flags & MSG_DONTWAIT)) {
      ssize_t r = plain_wait(fd, ev, until);
      if (r < 0) return r;
    }
    return attempt(flags);
  }
  ssize_t r = attempt(flags | MSG_DONTWAIT);
  if (r != -EAGAIN) return r;  // a partial sendmsg is returned as is (see docs: datagram-style)
  if (user_nonblocking(fd)) return -EAGAIN;
  if (w->drv().native(out ? op_kind::sendmsg : op_kind::recvmsg)) {
    io_op op;
    op.kind = out ? op_kind::sendmsg : op_kind::recvmsg;
    op.fd = fd;
    op.msg = msg;
    op.flags = flags;
    return run_op(*w, op, until, why);
  }
  return readiness_loop(*w, fd, ev, until, why, [&] { return attempt(flags | MSG_DONTWAIT); },
                        [&] { return attempt(flags); });
}

ssize_t g_accept(int fd, sockaddr* addr, socklen_t* len, int flags, time_point until, wake& why) {
  worker* w = current_worker();
  if (!w || user_nonblocking(fd)) {
    if (w == nullptr) {
      ssize_t r = plain_wait(fd, POLLIN, until);
      if (r < 0) return r;
    }
    return sys::accept4(fd, addr, len, flags);
  }
  if (w->drv().native(op_kind::accept)) {
    io_op op;
    op.kind = op_kind::accept;
    op.fd = fd;
    op.addr = addr;
    op.addrlenp = len;
    op.flags = flags;
    return run_op(*w, op, until, why, true);
  }
  // epoll: no per-call non-blocking accept exists for a blocking listener, so
  // wait for readiness and accept; see docs/design.md for the race this has
  // with acceptors on other workers.
  ssize_t r = wait_ready(*w, fd, POLLIN, until, why);
  if (r < 0) return r;
  return sys::accept4(fd, addr, len, flags);
}

ssize_t g_connect(int fd, const sockaddr* addr, socklen_t len, time_point until, wake& why) {
  worker* w = current_worker();
  if (!w || user_nonblocking(fd)) return sys::connect(fd, addr, len);
  if (w->drv().native(op_kind::connect)) {
    io_op op;
    op.kind = op_kind::connect;
    op.fd = fd;
    op.addr = const_cast<sockaddr*>(addr);
    op.addrlen = len;
    return run_op(*w, op, until, why);
  }
  // epoll: start the connect non-blocking (the socket is not shared with
  // anyone while it connects), restore the flags, wait for writability.
  int fl = sys::fcntl(fd, F_GETFL);
  if (fl < 0) return fl;
  sys::fcntl(fd, F_SETFL, fl | O_NONBLOCK);
  ssize_t r = sys::connect(fd, addr, len);
  sys::fcntl(fd, F_SETFL, fl);
  if (r != -EINPROGRESS) return r;
  r = wait_ready(*w, fd, POLLOUT, until, why);
  if (r < 0) return r;
  int err = 0;
  socklen_t el = sizeof err;
  if (int e = sys::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el); e < 0) return e;
  return err ? -err : 0;
}

// ---- files ------------------------------------------------------------------------

// Ops with no readiness notion: io_uring runs them asynchronously; under epoll
// they are the plain syscall on the worker.
template <class Plain, class Fill>
ssize_t file_op(Plain plain, Fill fill) {
  worker* w = current_worker();
  io_op op;
  fill(op);
  if (!w || !w->drv().native(op.kind)) return plain();
  // Deadline-free and uncancellable once started: an open or fsync must not
  // be abandoned half-way (the fd would leak, the data's fate be unknown).
  parker p;
  op.waiter = &p;
  w->drv().start(&op);
  while (!op.done) {
    park(p, time_point::max(), false);
    if (!op.done) p.reason = wake::none;
  }
  return op.res;
}

// Converts an internal result to libc's convention, throwing on cancellation.
template <class T>
T finish(ssize_t r, wake why) {
  if (r >= 0) return static_cast<T>(r);
  if (r == -ECANCELED && why == wake::cancelled) throw_cancelled();
  errno = static_cast<int>(-r);
  return static_cast<T>(-1);
}

}  // namespace
}  // namespace greenring::detail

namespace greenring::io {

using namespace greenring::detail;

ssize_t read(int fd, void* buf, size_t n, deadline until) {
  wake why = wake::none;
  iovec iov{buf, n};
  ssize_t r = g_readv(fd, &iov, 1, kFilePos, until, why);  // before finish() reads `why`
  return finish<ssize_t>(r, why);
}

ssize_t readv(int fd, const iovec* iov, int iovcnt, deadline until) {
  wake why = wake::none;
  ssize_t r = g_readv(fd, iov, iovcnt, kFilePos, until, why);  // before finish() reads `why`
  return finish<ssize_t>(r, why);
}

ssize_t pread(int fd, void* buf, size_t n, off_t off, deadline until) {
  iovec iov{buf, n};
  return preadv(fd, &iov, 1, off, until);
}

ssize_t preadv(int fd, const iovec* iov, int iovcnt, off_t off, deadline until) {
  if (off < 0) {
    errno = EINVAL;
    return -1;
  }
  wake why = wake::none;
  ssize_t r = g_readv(fd, iov, iovcnt, static_cast<std::uint64_t>(off), until, why);  // before finish() reads `why`
  return finish<ssize_t>(r, why);
}

ssize_t pwritev(int fd, const iovec* iov, int iovcnt, off_t off, deadline until) {
  if (off < 0) {
    errno = EINVAL;
    return -1;
  }
  wake why = wake::none;
  ssize_t r = g_writev(fd, iov, iovcnt, static_cast<std::uint64_t>(off), until, why);  // before finish() reads `why`
  return finish<ssize_t>(r, why);
}

ssize_t write(int fd, const void* buf, size_t n, deadline until) {
  wake why = wake::none;
  iovec iov{const_cast<void*>(buf), n};
  ssize_t r = g_writev(fd, &iov, 1, kFilePos, until, why);  // before finish() reads `why`
  return finish<ssize_t>(r, why);
}

ssize_t writev(int fd, const iovec* iov, int iovcnt, deadline until) {
  wake why = wake::none;
  ssize_t r = g_writev(fd, iov, iovcnt, kFilePos, until, why);  // before finish() reads `why`
  return finish<ssize_t>(r, why);
}

ssize_t pwrite(int fd, const void* buf, size_t n, off_t off, deadline until) {
  iovec iov{const_cast<void*>(buf), n};
  return pwritev(fd, &iov, 1, off, until);
}

ssize_t recv(int fd, void* buf, size_t n, int flags, deadline until) {
  wake why = wake::none;
  ssize_t r = g_recv(fd, buf, n, flags, until, why);  // before finish() reads `why`
  return finish<ssize_t>(r, why);
}

ssize_t send(int fd, const void* buf, size_t n, int flags, deadline until) {
  wake why = wake::none;
  ssize_t r = g_send(fd, buf, n, flags, until, why);  // before finish() reads `why`
  return finish<ssize_t>(r, why);
}

ssize_t recvmsg(int fd, msghdr* msg, int flags, deadline until) {
  wake why = wake::none;
  ssize_t r = g_msg(false, fd, msg, flags, until, why);  // before finish() reads `why`
  return finish<ssize_t>(r, why);
}

ssize_t sendmsg(int fd, const msghdr* msg, int flags, deadline until) {
  wake why = wake::none;
  ssize_t r = g_msg(true, fd, const_cast<msghdr*>(msg), flags, until, why);  // before finish() reads `why`
  return finish<ssize_t>(r, why);
}

int accept4(int fd, sockaddr* addr, socklen_t* addrlen, int flags, deadline until) {
  wake why = wake::none;
  ssize_t r = g_accept(fd, addr, addrlen, flags, until, why);  // before finish() reads `why`
  return finish<int>(r, why);
}

int accept(int fd, sockaddr* addr, socklen_t* addrlen, deadline until) {
  return accept4(fd, addr, addrlen, 0, until);
}

int connect(int fd, const sockaddr* addr, socklen_t addrlen, deadline until) {
  wake why = wake::none;
  ssize_t r = g_connect(fd, addr, addrlen, until, why);  // before finish() reads `why`
  return finish<int>(r, why);
}

int poll(int fd, short events, deadline until) {
  pollfd pfd{fd, events, 0};
  int r = sys::poll(&pfd, 1, 0);
  if (r != 0) return r < 0 ? finish<int>(r, wake::none) : pfd.revents;
  worker* w = current_worker();
  if (!w) {
    ssize_t pr = plain_wait(fd, events, until);
    if (pr == -ETIMEDOUT) return 0;
    if (pr < 0) {
      errno = static_cast<int>(-pr);
      return -1;
    }
    r = sys::poll(&pfd, 1, 0);
    return r < 0 ? finish<int>(r, wake::none) : pfd.revents;
  }
  wake why = wake::none;
  ssize_t res = wait_ready(*w, fd, events, until, why);
  if (res == -ETIMEDOUT) return 0;
  if (res == -EPERM) return events & (POLLIN | POLLOUT | POLLRDNORM | POLLWRNORM);  // regular file under epoll
  return finish<int>(res, why);
}

int openat(int dirfd, const char* path, int flags, mode_t mode) {
  ssize_t r = file_op([&] { return sys::openat(dirfd, path, flags, mode); },
                      [&](io_op& op) {
                        op.kind = op_kind::openat;
                        op.fd = dirfd;
                        op.path = path;
                        op.flags = flags;
                        op.mode = mode;
                      });
  return finish<int>(r, wake::none);
}

int open(const char* path, int flags, mode_t mode) { return openat(AT_FDCWD, path, flags, mode); }

int close(int fd) {
  note_blocked(fd, false);
  fd_wait_close(fd);
  return finish<int>(sys::close(fd), wake::none);
}

int fsync(int fd) {
  ssize_t r = file_op([&] { return sys::fsync(fd); },
                      [&](io_op& op) {
                        op.kind = op_kind::fsync;
                        op.fd = fd;
                      });
  return finish<int>(r, wake::none);
}

int fdatasync(int fd) {
  ssize_t r = file_op([&] { return sys::fdatasync(fd); },
                      [&](io_op& op) {
                        op.kind = op_kind::fsync;
                        op.fd = fd;
                        op.flags = 1;  // IORING_FSYNC_DATASYNC
                      });
  return finish<int>(r, wake::none);
}

int statx(int dirfd, const char* path, int flags, unsigned mask, struct statx* out) {
  ssize_t r = file_op([&] { return sys::statx(dirfd, path, flags, mask, out); },
                      [&](io_op& op) {
                        op.kind = op_kind::statx;
                        op.fd = dirfd;
                        op.path = path;
                        op.flags = flags;
                        op.mode = mask;
                        op.stx = out;
                      });
  return finish<int>(r, wake::none);
}

}  // namespace greenring::io

namespace greenring::detail {

void forget_blocked_hint(int fd) noexcept { note_blocked(fd, false); }
void enable_blocked_hints(bool on) noexcept { g_hints_enabled.store(on, std::memory_order_relaxed); }

int wait_any(const pollfd* fds, nfds_t n, time_point until) noexcept {
  worker* w = current_worker();
  if (!w || !current_gt()) return -EPERM;
  constexpr nfds_t kInline = 8;
  io_op inline_ops[kInline];
  std::vector<io_op> heap;
  io_op* ops = inline_ops;
  if (n > kInline) {
    try {
      heap.resize(n);
    } catch (...) {
      return -ENOMEM;
    }
    ops = heap.data();
  }
  parker p;

  for (nfds_t i = 0; i < n; ++i) {
    if (fds[i].fd < 0) continue;
    io_op& op = ops[i];
    op.kind = op_kind::poll;
    op.fd = fds[i].fd;
    op.events = static_cast<short>(fds[i].events | POLLERR | POLLHUP);
    op.waiter = &p;
    w->drv().start(&op);

  }
  wake why = park(p, until, true);  // nothing started: a plain sleep to the deadline
  bool any = false;
  for (nfds_t i = 0; i < n; ++i) {
    if (fds[i].fd < 0) continue;
    if (ops[i].done) {
      any = any || ops[i].res > 0;
      continue;
    }
    w->drv().cancel(&ops[i]);
  }
  for (nfds_t i = 0; i < n; ++i) {
    if (fds[i].fd < 0) continue;
    while (!ops[i].done) {
      parker p2;
      ops[i].waiter = &p2;
      park(p2, time_point::max(), false);
    }
    any = any || ops[i].res > 0 || (ops[i].res < 0 && ops[i].res != -ECANCELED);
  }
  if (any || why == wake::signalled) return 1;
  if (why == wake::cancelled) return -ECANCELED;
  return 0;
}

}  // namespace greenring::detail
