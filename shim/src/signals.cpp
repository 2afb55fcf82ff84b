// shim/src/signals.cpp: waiting for signals.
//
// Symbols owned here:
//   sigwait sigwaitinfo sigtimedwait
//
// sigwait on a green thread would hold its worker until the signal comes
// (often from another green thread of that worker: a hang). Instead the
// zero-timeout sigtimedwait is polled with a pause growing from 1 to 10 ms.
// Which OS thread a process-directed signal reaches is the kernel's choice:
// the signal must be blocked on every worker that could take it (the mask is
// per OS thread: docs/compat.md).
#include "shim.hpp"

#include <greenring/spawn.hpp>

#include <signal.h>

namespace greenring::shim {
namespace {

int poll_signal(const sigset_t* set, siginfo_t* info, time_point until) {
  auto pause = std::chrono::milliseconds(1);
  timespec zero{0, 0};
  for (;;) {
    int r = GR_REAL(sigtimedwait)(set, info, &zero);
    if (r > 0 || errno != EAGAIN) return r;
    auto now = steady::now();
    if (now >= until) return fail(EAGAIN);
    auto step = std::min<steady::duration>(pause, until - now);
    greenring::this_fiber::sleep_for(step);
    pause = std::min(pause * 2, std::chrono::milliseconds(10));
  }
}

}  // namespace
}  // namespace greenring::shim

using namespace greenring::shim;

GR_EXPORT int sigwait(const sigset_t* set, int* sig) {
  if (!green()) return GR_REAL(sigwait)(set, sig);
  int r = poll_signal(set, nullptr, time_point::max());
  if (r < 0) return errno;
  *sig = r;
  return 0;
}

GR_EXPORT int sigwaitinfo(const sigset_t* set, siginfo_t* info) {
  if (!green()) return GR_REAL(sigwaitinfo)(set, info);
  return poll_signal(set, info, time_point::max());
}

GR_EXPORT int sigtimedwait(const sigset_t* set, siginfo_t* info, const timespec* tmo) {
  if (!green() || (tmo && tmo->tv_sec == 0 && tmo->tv_nsec == 0)) return GR_REAL(sigtimedwait)(set, info, tmo);
  if (tmo && !valid_timespec(tmo)) return fail(EINVAL);
  return poll_signal(set, info, tmo ? deadline_from_rel(*tmo) : time_point::max());
}
