// driver/epoll_driver.cpp: the epoll fallback implementation of driver.hpp.
//
// Only op_kind::poll is native: the I/O layer does the syscall itself with a
// non-blocking attempt and waits for readiness here in between. Each worker
// has its own epoll instance; an fd waited on from several workers is simply
// registered in each of them.
//
// Per fd: a list of waiting ops and the interest currently armed. Interest is
// armed EPOLLONESHOT, so a ready fd reports once and is re-armed only while
// someone still waits: no wake-up storms from level-triggered fds nobody reads.
// A waiter whose events match is completed; the rest stay queued and re-armed.
//
// Regular files cannot be polled (EPERM): such a poll completes at once with
// -EPERM and the I/O layer does the blocking syscall on the worker — the one
// place where this fallback stalls a worker, documented in docs/design.md.
#include "detail/sys.hpp"
#include "driver/driver.hpp"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>
#include <vector>

namespace greenring::detail {
namespace {

class epoll_driver final : public driver {
 public:
  epoll_driver() {
    epfd_ = epoll_create1(EPOLL_CLOEXEC);
    if (epfd_ < 0) throw std::system_error(errno, std::generic_category(), "greenring: epoll_create1");
    efd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (efd_ < 0) {
      int e = errno;
      sys::close(epfd_);
      throw std::system_error(e, std::generic_category(), "greenring: eventfd");
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = -1;  // marks the wake eventfd
    epoll_ctl(epfd_, EPOLL_CTL_ADD, efd_, &ev);
  }

  ~epoll_driver() override {
    sys::close(efd_);
    sys::close(epfd_);
  }

  const char* name() const noexcept override { return "epoll"; }
  std::string features() const override { return "oneshot"; }
  bool native(op_kind k) const noexcept override { return k == op_kind::poll; }

  void start(io_op* op) noexcept override {
    if (op->kind != op_kind::poll || op->fd < 0) {
      complete(op, op->fd < 0 ? -EBADF : -EOPNOTSUPP);
      return;
    }
    auto fd = static_cast<std::size_t>(op->fd);
    if (fd >= fds_.size()) fds_.resize(fd + 64);
    fdstate& s = fds_[fd];
    op->prev = s.tail;
    op->next = nullptr;
    if (s.tail) s.tail->next = op; else s.head = op;
    s.tail = op;
    ++inflight_;
    int err = rearm(op->fd, s);
    if (err) {
      unlink(s, op);
      // EPERM: a regular file or directory; the I/O layer does the syscall itself.
      complete(op, -err);
    }
  }

  void cancel(io_op* op) noexcept override {
    if (op->done) return;
    fdstate& s = fds_[static_cast<std::size_t>(op->fd)];
    unlink(s, op);
    // Synchronous: the caller's own wait already ended, so unparking it is a
    // no-op; an on_complete callback still hears about it.
    complete(op, -ECANCELED);
  }

  int poll(bool eager) noexcept override {
    // Nothing registered: nothing to find (wake-ups need no draining while
    // the worker runs; the state word carries them).
    if (inflight_ == 0 || !poll_due(eager)) return 0;
    return run(0);
  }

  void wait(const timespec* ts) noexcept override {
    if (!ts) {
      run(-1);
      return;
    }
    long long ms = ts->tv_sec * 1000LL + (ts->tv_nsec + 999999) / 1000000;
    run(static_cast<int>(ms > 1000000 ? 1000000 : ms));
  }

  void wake() noexcept override {
    std::uint64_t one = 1;
    sys::write(efd_, &one, sizeof one);
  }

  std::size_t inflight() const noexcept override { return inflight_; }

  void abandon() noexcept override {
    sys::close(epfd_);
    sys::close(efd_);
  }

 private:
  struct fdstate {
    io_op* head = nullptr;
    io_op* tail = nullptr;
    bool registered = false;
  };

  void unlink(fdstate& s, io_op* op) noexcept {
    if (op->prev) op->prev->next = op->next; else s.head = op->next;
    if (op->next) op->next->prev = op->prev; else s.tail = op->prev;
    op->prev = op->next = nullptr;
    --inflight_;
  }

  // Arms the union of the waiters' interest; returns 0 or an errno.
  int rearm(int fd, fdstate& s) noexcept {
    std::uint32_t want = 0;
    for (io_op* o = s.head; o; o = o->next) want |= static_cast<std::uint32_t>(o->events);
    if (!want) return 0;
    epoll_event ev{};
    ev.events = want | EPOLLONESHOT;
    ev.data.fd = fd;
    int op = s.registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    if (epoll_ctl(epfd_, op, fd, &ev) == 0) {
      s.registered = true;
      return 0;
    }
    // The fd number may have been closed and reused since we registered it
    // (the kernel drops the registration on the last close): retry the other op.
    if (errno == ENOENT || errno == EEXIST) {
      op = op == EPOLL_CTL_MOD ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
      if (epoll_ctl(epfd_, op, fd, &ev) == 0) {
        s.registered = true;
        return 0;
      }
    }
    return errno;
  }

  int run(int timeout_ms) noexcept {
    epoll_event evs[128];
    int n = sys::epoll_wait(epfd_, evs, 128, timeout_ms);
    int completed = 0;
    for (int i = 0; i < n; ++i) {
      int fd = evs[i].data.fd;
      if (fd < 0) {
        std::uint64_t v;
        sys::read(efd_, &v, sizeof v);
        continue;
      }
      auto revents = static_cast<short>(evs[i].events);
      fdstate& s = fds_[static_cast<std::size_t>(fd)];
      for (io_op* o = s.head; o;) {
        io_op* next = o->next;
        short hit = static_cast<short>(revents & (o->events | POLLERR | POLLHUP | POLLNVAL));
        if (hit) {
          unlink(s, o);
          complete(o, hit);
          ++completed;
        }
        o = next;
      }
      if (s.head) rearm(fd, s);
    }
    return completed;
  }

  int epfd_ = -1;
  int efd_ = -1;
  std::vector<fdstate> fds_;
  std::size_t inflight_ = 0;
};

}  // namespace

std::unique_ptr<driver> make_epoll_driver() { return std::make_unique<epoll_driver>(); }

}  // namespace greenring::detail
