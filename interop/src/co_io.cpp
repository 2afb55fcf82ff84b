// interop/src/co_io.cpp: greenring::co - coroutine-native I/O, sleeps and
// yield on the worker's driver and the loop's timer heap.
//
// # Shape of every I/O call (the coroutine twin of runtime/src/io/io.cpp)
//  1. await_ready: not on a green thread -> the plain blocking syscall. Else one
//     non-blocking attempt (RWF_NOWAIT / MSG_DONTWAIT); a result, or EAGAIN on
//     an fd the program made O_NONBLOCK, ends it without suspending.
//  2. await_suspend: an io_op is built in the awaitable's slow storage (which
//     lives in the coroutine frame, so its address is stable while the kernel
//     owns the buffers) with on_complete set, and started on the worker's
//     driver. io_uring runs the operation itself; epoll gets a readiness poll.
//     A deadline is a timer on the loop's heap; the chain's cancel_scope gets a
//     cancel_slot. Both only ask the driver to cancel the op.
//  3. on_complete (dispatcher, inside the driver's reap): posts the op's
//     work_item to the loop. Nothing else: it must not park or resume.
//  4. step (runner): settles the op - for epoll, retries the syscall and
//     re-arms the poll on EAGAIN; for a stream write, continues after a partial
//     transfer - then unregisters the timer and the slot and resumes the
//     coroutine with drive().
//  5. await_resume: the libc convention; throws greenring::cancelled when the
//     op was cancelled by the chain's cancellation and transferred nothing.
//
// # Lifetimes (tokio's op.rs rule, as in io.cpp)
// The coroutine is resumed only from step(), i.e. after the op's completion
// arrived: a cancelled or timed-out op is cancelled in the kernel and its
// completion awaited, so the buffer is never written after the coroutine runs
// on. A completion that carries data wins over the reason the wait was cut.
#include <greenring/interop/io.hpp>

#include "detail/sys.hpp"
#include "interop_internal.hpp"
#include "io/fd_mode.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <new>
#include <thread>

namespace greenring::detail::coro {

namespace {

// Every syscall goes through the runtime's sys:: (the kernel directly, result
// or -errno): under the LD_PRELOAD shim, libc's wrappers would be interposed.


short wait_events(const io_request& r) noexcept {
  switch (r.kind) {
    case io_kind::read:
    case io_kind::recv:
    case io_kind::accept: return POLLIN;
    case io_kind::write:
    case io_kind::send:
    case io_kind::connect: return POLLOUT;
    case io_kind::poll: return r.events;
  }
  return POLLIN;
}

char* cursor(const io_request& r) noexcept { return static_cast<char*>(r.buf) + r.progress; }
std::size_t left(const io_request& r) noexcept { return r.len - r.progress; }

// One non-blocking attempt. Returns -EAGAIN when it would block; -EOPNOTSUPP
// when read/write have no per-call non-blocking form on this fd.
ssize_t attempt(const io_request& r) noexcept {
  switch (r.kind) {
    case io_kind::read: {
      iovec iov{r.buf, r.len};
      return sys::preadv2(r.fd, &iov, 1, -1, RWF_NOWAIT);
    }
    case io_kind::write: {
      iovec iov{cursor(r), left(r)};
      return sys::pwritev2(r.fd, &iov, 1, -1, RWF_NOWAIT);
    }
    case io_kind::recv: return sys::recv(r.fd, r.buf, r.len, r.flags | MSG_DONTWAIT);
    case io_kind::send: return sys::send(r.fd, cursor(r), left(r), r.flags | MSG_DONTWAIT);
    case io_kind::accept: return sys::accept4(r.fd, r.addr, r.addrlen, r.flags);
    case io_kind::connect: return sys::connect(r.fd, r.addr, r.caddrlen);
    case io_kind::poll: {
      pollfd pfd{r.fd, r.events, 0};
      int n = sys::poll(&pfd, 1, 0);
      if (n < 0) return n;
      return n == 0 ? -EAGAIN : pfd.revents;
    }
  }
  return -EINVAL;
}

// The blocking syscall (plain threads; fds that cannot be polled under epoll).
ssize_t blocking(const io_request& r) noexcept {
  switch (r.kind) {
    case io_kind::read: return sys::read(r.fd, r.buf, r.len);
    case io_kind::write: return sys::write(r.fd, cursor(r), left(r));
    case io_kind::recv: return sys::recv(r.fd, r.buf, r.len, r.flags);
    case io_kind::send: return sys::send(r.fd, cursor(r), left(r), r.flags);
    case io_kind::accept: return sys::accept4(r.fd, r.addr, r.addrlen, r.flags);
    case io_kind::connect: return sys::connect(r.fd, r.addr, r.caddrlen);
    case io_kind::poll: {
      pollfd pfd{r.fd, r.events, 0};
      int n;
      do n = sys::poll(&pfd, 1, -1);
      while (n == -EINTR);
      return n < 0 ? n : pfd.revents;
    }
  }
  return -EINVAL;
}

bool is_write(io_kind k) noexcept { return k == io_kind::write || k == io_kind::send; }

// In-flight state, constructed in the awaitable's io_slow_storage while suspended.
struct io_slow {
  io_op op;
  work_item item;
  timer_node timer;
  cancel_slot slot;
  std::coroutine_handle<> h;
  loop* l = nullptr;
  io_request* req = nullptr;
};
static_assert(sizeof(io_slow) <= kIoSlowSize, "raise kIoSlowSize");
static_assert(alignof(io_slow) <= 16);
static_assert(std::is_trivially_destructible_v<io_slow>);

void on_complete(io_op* op) noexcept {
  auto* s = static_cast<io_slow*>(op->user);
  s->l->post(&s->item);
}

op_kind native_kind(io_kind k) noexcept {
  switch (k) {
    case io_kind::read: return op_kind::read;
    case io_kind::write: return op_kind::write;
    case io_kind::recv: return op_kind::recv;
    case io_kind::send: return op_kind::send;
    case io_kind::accept: return op_kind::accept;
    case io_kind::connect: return op_kind::connect;
    case io_kind::poll: return op_kind::poll;
  }
  return op_kind::poll;
}

void start_op(io_slow* s) noexcept {
  io_request& r = *s->req;
  io_op& op = s->op;
  op = io_op{};
  op.fd = r.fd;
  op.on_complete = &on_complete;
  op.user = s;
  bool native = r.kind != io_kind::poll && s->l->drv().native(native_kind(r.kind)) &&
                !(r.kind == io_kind::connect && r.connecting);
  if (!native) {
    op.kind = op_kind::poll;
    op.events = wait_events(r);
  } else {
    switch (r.kind) {
      case io_kind::read:
        op.kind = op_kind::read;
        op.buf = r.buf;
        op.len = r.len;
        op.off = kFilePos;
        break;
      case io_kind::write:
        op.kind = op_kind::write;
        op.buf = cursor(r);
        op.len = left(r);
        op.off = kFilePos;
        break;
      case io_kind::recv:
        op.kind = op_kind::recv;
        op.buf = r.buf;
        op.len = r.len;
        op.flags = r.flags;
        break;
      case io_kind::send:
        op.kind = op_kind::send;
        op.buf = cursor(r);
        op.len = left(r);
        op.flags = r.flags;
        break;
      case io_kind::accept:
        op.kind = op_kind::accept;
        op.addr = r.addr;
        op.addrlenp = r.addrlen;
        op.flags = r.flags;
        break;
      case io_kind::connect:
        op.kind = op_kind::connect;
        op.addr = r.addr;
        op.addrlen = r.caddrlen;
        break;
      case io_kind::poll: break;
    }
  }
  s->l->drv().start(&op);
}

void resume(io_slow* s) noexcept {
  io_request& r = *s->req;
  if (s->timer.armed()) s->l->remove_timer(&s->timer);
  if (r.scope) r.scope->detach(&s->slot);
  loop& l = *s->l;
  auto h = s->h;
  l.pending_done();
  drive(h);
}

// Runner: the op completed.
void step(work_item* it) noexcept {
  auto* s = static_cast<io_slow*>(it->ctx);
  io_request& r = *s->req;
  io_op& op = s->op;
  bool cut = r.cancel_fired || r.timed_out;
  bool readiness = op.kind == op_kind::poll && r.kind != io_kind::poll;
  ssize_t res = op.res;
  if (readiness) {
    if (res == -EPERM) {
      res = blocking(r);  // a regular file under epoll: cannot be polled
    } else if (res >= 0) {
      if (r.kind == io_kind::connect) {
        int err = 0;
        socklen_t el = sizeof err;
        int g = sys::getsockopt(r.fd, SOL_SOCKET, SO_ERROR, &err, &el);
        res = g < 0 ? g : -err;
      } else {
        res = attempt(r);
        if (res == -EOPNOTSUPP) res = blocking(r);  // ready, so this does not wait
        if (res == -EAGAIN) {
          if (!cut) {
            start_op(s);
            return;
          }
          res = -ECANCELED;
        }
      }
    }
  }
  if (is_write(r.kind)) {
    if (res > 0) {
      r.progress += static_cast<std::size_t>(res);
      if (r.progress < r.len && !cut) {
        start_op(s);
        return;
      }
    }
    if (res >= 0 || r.progress > 0) res = static_cast<ssize_t>(r.progress);
  }
  r.result = res;
  resume(s);
}

// Runner (timer heap): the deadline passed.
void on_deadline(work_item* it) noexcept {
  auto* s = static_cast<io_slow*>(it->ctx);
  s->req->timed_out = true;
  if (!s->op.done) s->l->drv().cancel(&s->op);
}

// Owner thread: the chain was cancelled.
void on_cancel(cancel_slot* sl) noexcept {
  auto* s = static_cast<io_slow*>(sl->ctx);
  s->req->cancel_fired = true;
  if (!s->op.done) s->l->drv().cancel(&s->op);
}

}  // namespace

bool io_try(io_request& r) noexcept {
  if (!current_worker() || !current_gt()) {
    ssize_t w = plain_wait(r.fd, wait_events(r), r.until);
    if (w < 0) {
      r.result = r.kind == io_kind::poll && w == -ETIMEDOUT ? 0 : w;
    } else {
      r.result = blocking(r);
      if (is_write(r.kind) && r.result >= 0) r.progress = static_cast<std::size_t>(r.result);
    }
    return true;
  }
  if (r.kind == io_kind::accept || r.kind == io_kind::connect) {
    if (user_nonblocking(r.fd)) {
      r.result = attempt(r);
      return true;
    }
    if (r.kind == io_kind::connect && !current_worker()->drv().native(op_kind::connect)) {
      // epoll: start the connect non-blocking (nobody else uses the socket
      // while it connects), restore the flags, then wait for writability.
      int fl = sys::fcntl(r.fd, F_GETFL);
      if (fl < 0) {
        r.result = fl;
        return true;
      }
      sys::fcntl(r.fd, F_SETFL, fl | O_NONBLOCK);
      ssize_t c = attempt(r);
      sys::fcntl(r.fd, F_SETFL, fl);
      if (c != -EINPROGRESS) {
        r.result = c;
        return true;
      }
      r.connecting = true;
    }
    return false;
  }
  if ((r.kind == io_kind::recv || r.kind == io_kind::send) && (r.flags & MSG_DONTWAIT)) {
    r.result = attempt(r);
    if (r.kind == io_kind::send && r.result > 0) r.progress = static_cast<std::size_t>(r.result);
    return true;
  }
  ssize_t a = attempt(r);
  if (a == -EOPNOTSUPP) return false;  // no per-call non-blocking form: the driver does it all
  if (r.kind == io_kind::poll) {
    if (a == -EAGAIN) return false;
    r.result = a;
    return true;
  }
  if (is_write(r.kind)) {
    if (a > 0) r.progress = static_cast<std::size_t>(a);
    if (r.progress == r.len || (a < 0 && a != -EAGAIN)) {
      r.result = a < 0 ? a : static_cast<ssize_t>(r.progress);
      return true;
    }
  } else if (a != -EAGAIN) {
    r.result = a;
    return true;
  }
  if (user_nonblocking(r.fd)) {
    r.result = r.progress > 0 ? static_cast<ssize_t>(r.progress) : -EAGAIN;
    return true;
  }
  return false;
}

bool io_suspend(io_request& r, io_slow_storage& slow, std::coroutine_handle<> h, cancel_scope* scope) {
  r.scope = scope;
  if (scope && scope->requested()) {
    r.early_cancel = true;
    return false;
  }
  loop& l = current_loop();
  auto* s = new (slow.bytes) io_slow();
  s->h = h;
  s->l = &l;
  s->req = &r;
  s->item.fn = &step;
  s->item.ctx = s;
  l.pending_add();
  start_op(s);
  if (r.until != time_point::max()) {
    s->timer.when = r.until;
    s->timer.item.fn = &on_deadline;
    s->timer.item.ctx = s;
    l.add_timer(&s->timer);
  }
  if (scope) {
    s->slot.fn = &on_cancel;
    s->slot.ctx = s;
    scope->attach(&s->slot);
  }
  return true;
}

ssize_t io_finish(io_request& r) {
  if (r.early_cancel) {
    r.scope->consume();
    throw greenring::cancelled();
  }
  ssize_t res = r.result;
  if ((res == -ECANCELED || res == -EINTR) && (r.cancel_fired || r.timed_out)) {
    if (r.cancel_fired && r.scope && r.scope->consume()) throw greenring::cancelled();
    if (r.timed_out) res = r.kind == io_kind::poll ? 0 : -ETIMEDOUT;
  }
  if (res < 0) {
    errno = static_cast<int>(-res);
    return -1;
  }
  return res;
}

// ---- sleep and yield -----------------------------------------------------------------

namespace {

void sleep_fired(work_item* it) noexcept {  // runner, timer heap
  auto* s = static_cast<sleep_state*>(it->ctx);
  if (s->scope) s->scope->detach(&s->slot);
  loop& l = *s->ri.owner;
  auto h = s->ri.h;
  l.pending_done();
  drive(h);
}

void sleep_cancelled(cancel_slot* sl) noexcept {  // owner thread
  auto* s = static_cast<sleep_state*>(sl->ctx);
  s->cancelled = true;
  s->ri.owner->remove_timer(&s->timer);
  s->ri.owner->post(&s->ri);  // resumes (and pending_done) from the runner
}

}  // namespace

bool sleep_suspend(sleep_state& s, std::coroutine_handle<> h, cancel_scope* scope) {
  s.scope = scope;
  if (scope && scope->requested()) {
    s.early_cancel = true;
    return false;
  }
  if (!current_gt()) {  // plain thread: a plain sleep
    std::this_thread::sleep_until(s.until);
    return false;
  }
  if (s.until <= clock::now()) return false;
  loop& l = current_loop();
  s.ri.h = h;
  s.ri.owner = &l;
  l.pending_add();
  s.timer.when = s.until;
  s.timer.item.fn = &sleep_fired;
  s.timer.item.ctx = &s;
  l.add_timer(&s.timer);
  if (scope) {
    s.slot.fn = &sleep_cancelled;
    s.slot.ctx = &s;
    scope->attach(&s.slot);
  }
  return true;
}

void sleep_finish(sleep_state& s) {
  if (s.early_cancel || (s.cancelled && s.scope && s.scope->requested())) {
    s.scope->consume();
    throw greenring::cancelled();
  }
}

bool yield_suspend(resume_item& ri, std::coroutine_handle<> h) {
  if (!current_gt()) return false;
  loop& l = current_loop();
  ri.h = h;
  ri.owner = &l;
  l.pending_add();
  l.post(&ri);
  return true;
}

}  // namespace greenring::detail::coro

namespace greenring::co {

using detail::coro::io_kind;
using detail::coro::io_request;

namespace {
io_request make(io_kind k, int fd, deadline until) noexcept {
  io_request r;
  r.kind = k;
  r.fd = fd;
  r.until = until;
  return r;
}
}  // namespace

io_awaitable read(int fd, void* buf, std::size_t n, deadline until) noexcept {
  io_request r = make(io_kind::read, fd, until);
  r.buf = buf;
  r.len = n;
  return io_awaitable(r);
}

io_awaitable write(int fd, const void* buf, std::size_t n, deadline until) noexcept {
  io_request r = make(io_kind::write, fd, until);
  r.buf = const_cast<void*>(buf);
  r.len = n;
  return io_awaitable(r);
}

io_awaitable recv(int fd, void* buf, std::size_t n, int flags, deadline until) noexcept {
  io_request r = make(io_kind::recv, fd, until);
  r.buf = buf;
  r.len = n;
  r.flags = flags;
  return io_awaitable(r);
}

io_awaitable send(int fd, const void* buf, std::size_t n, int flags, deadline until) noexcept {
  io_request r = make(io_kind::send, fd, until);
  r.buf = const_cast<void*>(buf);
  r.len = n;
  r.flags = flags;
  return io_awaitable(r);
}

io_awaitable accept4(int fd, sockaddr* addr, socklen_t* addrlen, int flags, deadline until) noexcept {
  io_request r = make(io_kind::accept, fd, until);
  r.addr = addr;
  r.addrlen = addrlen;
  r.flags = flags;
  return io_awaitable(r);
}

io_awaitable accept(int fd, sockaddr* addr, socklen_t* addrlen, deadline until) noexcept {
  return accept4(fd, addr, addrlen, 0, until);
}

io_awaitable connect(int fd, const sockaddr* addr, socklen_t addrlen, deadline until) noexcept {
  io_request r = make(io_kind::connect, fd, until);
  r.addr = const_cast<sockaddr*>(addr);
  r.caddrlen = addrlen;
  return io_awaitable(r);
}

io_awaitable poll(int fd, short events, deadline until) noexcept {
  io_request r = make(io_kind::poll, fd, until);
  r.events = events;
  return io_awaitable(r);
}

}  // namespace greenring::co
