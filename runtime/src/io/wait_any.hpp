// io/wait_any.hpp: wait for readiness on many fds at once, for the shim's
// poll/select/epoll_wait. Declared apart from io.hpp because it is not public
// API: the shim computes the exact result with a zero-timeout poll(2)/select(2)
// afterwards, so this only has to say "something may be ready now".
#pragma once

#include <greenring/detail/park.hpp>

#include <poll.h>

namespace greenring::detail {

// On a green thread: suspends until one of fds (fd < 0 entries ignored) is
// ready for its events (or has POLLERR/POLLHUP), or `until`. One driver poll
// op per fd, all sharing one parker; the rest are cancelled and awaited before
// returning (no op outlives the call). Returns 1 when something completed,
// 0 at the deadline, -ECANCELED when the green thread's cancellation is
// pending, -ENOMEM. Not for plain threads (returns -EPERM).
int wait_any(const pollfd* fds, nfds_t n, time_point until) noexcept;

// Drops io.cpp's "the last read of fd blocked" hint: the shim calls it when
// the program changes the fd's O_NONBLOCK (fcntl F_SETFL, ioctl FIONBIO).
void forget_blocked_hint(int fd) noexcept;
// Turns the hint on: only for a process where every O_NONBLOCK change goes
// through forget_blocked_hint (the shim); off by default.
void enable_blocked_hints(bool on) noexcept;

}  // namespace greenring::detail
