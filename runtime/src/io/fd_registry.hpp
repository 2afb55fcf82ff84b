// io/fd_registry.hpp: which green threads wait on which fd (internal).
//
// greenring::io::close(fd) must end every wait on fd, on any worker, before
// the number can be reused: io_uring holds its own file reference, so closing
// the fd alone would leave an in-flight read waiting forever. Each slow-path
// wait registers {fd, parker} here for its duration; close unparks them with
// wake::closed under the bucket lock (the parker protocol's "structure lock").
// The fast path never touches it.
#pragma once

#include <greenring/detail/park.hpp>

namespace greenring::detail {

struct fd_wait {
  int fd = -1;
  parker* p = nullptr;
  fd_wait* prev = nullptr;
  fd_wait* next = nullptr;
};

void fd_wait_add(fd_wait& w) noexcept;
void fd_wait_remove(fd_wait& w) noexcept;
// Unparks every waiter on fd with wake::closed; returns how many.
std::size_t fd_wait_close(int fd) noexcept;
// In the child of a fork: the waiters were the parent's other threads.
void fd_registry_after_fork() noexcept;

}  // namespace greenring::detail
