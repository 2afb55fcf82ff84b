// greenring/detail/parking_lot.hpp: futex-style waiting keyed by address, for
// green threads and OS threads alike.
//
// The LD_PRELOAD shim implements pthread mutexes, condition variables,
// rwlocks, barriers, semaphores and raw futex(2) waits on this: a green thread
// that would sleep in the kernel on a futex word parks here instead, so only
// it waits, not its worker. A plain OS thread waits in the kernel as before.
//
// # Protocol (what makes a wake-up impossible to lose)
// futex_wait(addr, expected): under the bucket lock for addr, compare *addr
// with expected; if equal, queue and park. futex_wake(addr, n): under the same
// bucket lock, unpark up to n green waiters on addr; if fewer than n were
// found, also FUTEX_WAKE the kernel for OS-thread waiters. A waker that changed
// *addr before calling futex_wake therefore either finds the waiter queued, or
// the waiter saw the new value and never queued — exactly FUTEX_WAIT's
// guarantee, extended to parked green threads.
//
// Green waiters only hear wakes that go through futex_wake (the shim routes
// every interposed path there); a wake issued by a raw syscall that bypasses
// it reaches kernel waiters only.
#pragma once

#include <greenring/detail/park.hpp>

#include <cstdint>

namespace greenring::detail {

// Returns 0 when woken, -EAGAIN when *addr != expected, -ETIMEDOUT, or
// -ECANCELED when `cancellable` and the green thread's cancellation is pending.
// On a plain OS thread: FUTEX_WAIT (private) in the kernel, EINTR retried.
int futex_wait(const std::uint32_t* addr, std::uint32_t expected, time_point until, bool cancellable) noexcept;

// Wakes up to n waiters (green and kernel); returns how many green waiters
// were woken plus what the kernel reported.
int futex_wake(const std::uint32_t* addr, int n) noexcept;

// In the child of a fork (after_fork_child): every queued waiter belonged to
// a thread that does not exist there, and a bucket lock may have been held by
// one. Empties every bucket and unlocks it.
void parking_lot_after_fork() noexcept;

}  // namespace greenring::detail
