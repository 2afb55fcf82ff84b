// io/fd_mode.hpp: what green I/O (io.cpp) and coroutine I/O
// (interop/src/co_io.cpp) share: whether a would-block result goes back to the
// caller as EAGAIN, and deadlines for plain-thread callers.
#pragma once

#include "detail/sys.hpp"

#include <fcntl.h>
#include <sys/stat.h>

#include <greenring/detail/park.hpp>

#include <poll.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdint>

namespace greenring::detail {

// Offset meaning "the file position" (read/write rather than pread/pwrite).
inline constexpr std::uint64_t kFilePos = static_cast<std::uint64_t>(-1);

// Would libc have returned EAGAIN here? True for O_NONBLOCK fds except
// regular files and directories, where the flag has no effect. Asked only on
// the slow path (after a non-blocking attempt said EAGAIN): the fd's flags are
// shared with dups and other processes, so they are not cached.
inline bool user_nonblocking(int fd) noexcept {
  int fl = sys::fcntl(fd, F_GETFL);
  if (fl < 0 || !(fl & O_NONBLOCK)) return false;
  struct stat st;
  return !(sys::fstat(fd, &st) == 0 && (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)));
}

// A deadline on a plain (non-worker) thread: wait with poll(2) before the
// blocking syscall. Returns 1 when ready, -ETIMEDOUT, or -errno.
inline ssize_t plain_wait(int fd, short events, time_point until) noexcept {
  if (until == time_point::max()) return 1;
  for (;;) {
    auto now = std::chrono::steady_clock::now();
    long long ms = until <= now ? 0
                   : std::chrono::duration_cast<std::chrono::milliseconds>(until - now).count() + 1;
    pollfd pfd{fd, events, 0};
    int r = sys::poll(&pfd, 1, static_cast<int>(std::min<long long>(ms, INT_MAX)));
    if (r > 0) return 1;
    if (r == 0) return -ETIMEDOUT;
    if (r != -EINTR) return r;
  }
}

}  // namespace greenring::detail
