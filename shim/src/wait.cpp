// shim/src/wait.cpp: readiness waits and sleeps.
//
// Symbols owned here:
//   poll ppoll __poll_chk __ppoll_chk select pselect epoll_wait epoll_pwait epoll_pwait2
//   sleep usleep nanosleep clock_nanosleep
//
// Readiness: the answer is always libc's own call with a zero timeout — the
// kernel computes revents, fd_set bits, EBADF, EINVAL, the remaining time —
// and only the waiting in between is greenring's: one driver poll op per fd
// (detail::wait_any), or, for epoll_wait, one on the epoll fd itself. So the
// results are exactly the kernel's; only who waits changes.
// Signal masks given to ppoll/pselect/epoll_pwait are not applied on green
// threads (the mask is per OS thread, shared by the worker): docs/compat.md.
#include "shim.hpp"

#include <greenring/spawn.hpp>

#include "io/wait_any.hpp"

#include <poll.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <unistd.h>

#include <climits>
#include <vector>

extern "C" [[noreturn]] void __chk_fail(void);

namespace greenring::shim {
namespace {

bool passed(time_point until) noexcept { return until != time_point::max() && steady::now() >= until; }

int wait_or_throw(const pollfd* fds, nfds_t n, time_point until) {
  int r = detail::wait_any(fds, n, until);
  if (r == -ECANCELED) detail::throw_cancelled();
  return r;
}

int g_poll(pollfd* fds, nfds_t n, time_point until) {
  for (;;) {
    int r = GR_REAL(poll)(fds, n, 0);
    if (r != 0 || passed(until)) return r;
    int w = wait_or_throw(fds, n, until);
    if (w < 0) return fail(-w);
    if (w == 0) return GR_REAL(poll)(fds, n, 0);  // deadline: one last look
  }
}

int g_select(int nfds, fd_set* r, fd_set* w, fd_set* e, time_point until, timeval* tv_out) {
  if (nfds < 0 || nfds > FD_SETSIZE) return fail(EINVAL);
  fd_set r0, w0, e0;
  if (r) r0 = *r;
  if (w) w0 = *w;
  if (e) e0 = *e;
  std::vector<pollfd> pf;
  for (int fd = 0; fd < nfds; ++fd) {
    short ev = 0;
    if (r && FD_ISSET(fd, &r0)) ev |= POLLIN;
    if (w && FD_ISSET(fd, &w0)) ev |= POLLOUT;
    if (e && FD_ISSET(fd, &e0)) ev |= POLLPRI;
    if (ev) pf.push_back({fd, ev, 0});
  }
  for (;;) {
    if (r) *r = r0;
    if (w) *w = w0;
    if (e) *e = e0;
    timeval zero{0, 0};
    int n = GR_REAL(select)(nfds, r, w, e, &zero);
    bool last = passed(until);
    if (n != 0 || last) {
      if (tv_out) {
        auto left = until == time_point::max() ? steady::duration::zero()
                                               : std::max(steady::duration::zero(), until - steady::now());
        auto us = std::chrono::duration_cast<std::chrono::microseconds>(left).count();
        tv_out->tv_sec = static_cast<time_t>(us / 1000000);
        tv_out->tv_usec = static_cast<suseconds_t>(us % 1000000);
      }
      return n;
    }
    int wr = wait_or_throw(pf.data(), pf.size(), until);
    if (wr < 0) return fail(-wr);
  }
}

int g_epoll_wait(int epfd, epoll_event* ev, int max, time_point until) {
  for (;;) {
    int r = GR_REAL(epoll_wait)(epfd, ev, max, 0);
    if (r != 0 || passed(until)) return r;
    pollfd p{epfd, POLLIN, 0};
    int w = wait_or_throw(&p, 1, until);
    if (w < 0) return fail(-w);
    if (w == 0) return GR_REAL(epoll_wait)(epfd, ev, max, 0);
  }
}

int g_sleep_until(time_point until) {
  greenring::this_fiber::sleep_until(until);
  return 0;
}

}  // namespace
}  // namespace greenring::shim

using namespace greenring::shim;

GR_EXPORT int poll(pollfd* fds, nfds_t n, int timeout) {
  if (!green() || timeout == 0) return GR_REAL(poll)(fds, n, timeout);
  return g_poll(fds, n, deadline_from_ms(timeout));
}

GR_EXPORT int __poll_chk(pollfd* fds, nfds_t n, int timeout, size_t fdslen) {
  if (fdslen / sizeof(*fds) < n) __chk_fail();
  return poll(fds, n, timeout);
}

GR_EXPORT int ppoll(pollfd* fds, nfds_t n, const timespec* tmo, const sigset_t* mask) {
  if (!green() || (tmo && tmo->tv_sec == 0 && tmo->tv_nsec == 0)) return GR_REAL(ppoll)(fds, n, tmo, mask);
  if (tmo && !valid_timespec(tmo)) return fail(EINVAL);
  return g_poll(fds, n, tmo ? deadline_from_rel(*tmo) : time_point::max());
}

GR_EXPORT int __ppoll_chk(pollfd* fds, nfds_t n, const timespec* tmo, const sigset_t* mask, size_t fdslen) {
  if (fdslen / sizeof(*fds) < n) __chk_fail();
  return ppoll(fds, n, tmo, mask);
}

GR_EXPORT int select(int nfds, fd_set* r, fd_set* w, fd_set* e, timeval* tv) {
  if (!green() || (tv && tv->tv_sec == 0 && tv->tv_usec == 0)) return GR_REAL(select)(nfds, r, w, e, tv);
  if (tv && (tv->tv_sec < 0 || tv->tv_usec < 0 || tv->tv_usec >= 1000000)) return fail(EINVAL);
  time_point until = tv ? steady::now() + std::chrono::seconds(tv->tv_sec) + std::chrono::microseconds(tv->tv_usec)
                        : time_point::max();
  return g_select(nfds, r, w, e, until, tv);  // Linux writes the time left back into *tv
}

GR_EXPORT int pselect(int nfds, fd_set* r, fd_set* w, fd_set* e, const timespec* ts, const sigset_t* mask) {
  if (!green() || (ts && ts->tv_sec == 0 && ts->tv_nsec == 0)) return GR_REAL(pselect)(nfds, r, w, e, ts, mask);
  if (ts && !valid_timespec(ts)) return fail(EINVAL);
  return g_select(nfds, r, w, e, ts ? deadline_from_rel(*ts) : time_point::max(), nullptr);
}

GR_EXPORT int epoll_wait(int epfd, epoll_event* ev, int max, int timeout) {
  if (!green() || timeout == 0) return GR_REAL(epoll_wait)(epfd, ev, max, timeout);
  if (max <= 0) return fail(EINVAL);
  return g_epoll_wait(epfd, ev, max, deadline_from_ms(timeout));
}

GR_EXPORT int epoll_pwait(int epfd, epoll_event* ev, int max, int timeout, const sigset_t* mask) {
  if (!green() || timeout == 0) return GR_REAL(epoll_pwait)(epfd, ev, max, timeout, mask);
  if (max <= 0) return fail(EINVAL);
  return g_epoll_wait(epfd, ev, max, deadline_from_ms(timeout));
}

GR_EXPORT int epoll_pwait2(int epfd, epoll_event* ev, int max, const timespec* tmo, const sigset_t* mask) {
  if (!green() || (tmo && tmo->tv_sec == 0 && tmo->tv_nsec == 0))
    return GR_REAL(epoll_pwait2)(epfd, ev, max, tmo, mask);
  if (max <= 0) return fail(EINVAL);
  if (tmo && !valid_timespec(tmo)) return fail(EINVAL);
  return g_epoll_wait(epfd, ev, max, tmo ? deadline_from_rel(*tmo) : time_point::max());
}

// ---- sleeps -----------------------------------------------------------------------------------

GR_EXPORT int nanosleep(const timespec* req, timespec* rem) {
  if (!green()) return GR_REAL(nanosleep)(req, rem);
  if (!req || !valid_timespec(req) || req->tv_sec < 0) return fail(EINVAL);
  return g_sleep_until(deadline_from_rel(*req));
}

GR_EXPORT int clock_nanosleep(clockid_t clk, int flags, const timespec* req, timespec* rem) {
  if (!green()) return GR_REAL(clock_nanosleep)(clk, flags, req, rem);
  if (clk != CLOCK_REALTIME && clk != CLOCK_MONOTONIC && clk != CLOCK_BOOTTIME && clk != CLOCK_TAI)
    return GR_REAL(clock_nanosleep)(clk, flags, req, rem);  // CPU-time clocks etc.: libc's answer
  if (!req || !valid_timespec(req)) return EINVAL;
  if (flags & TIMER_ABSTIME) g_sleep_until(deadline_from_abs(clk, *req));
  else if (req->tv_sec >= 0) g_sleep_until(deadline_from_rel(*req));
  return 0;  // clock_nanosleep returns the error number itself, never -1
}

GR_EXPORT unsigned sleep(unsigned s) {
  if (!green()) return GR_REAL(sleep)(s);
  g_sleep_until(steady::now() + std::chrono::seconds(s));
  return 0;
}

GR_EXPORT int usleep(useconds_t us) {
  if (!green()) return GR_REAL(usleep)(us);
  g_sleep_until(steady::now() + std::chrono::microseconds(us));
  return 0;
}
