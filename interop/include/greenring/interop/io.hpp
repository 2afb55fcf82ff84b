// greenring/interop/io.hpp: coroutine-native I/O and timers on the worker's
// own io_uring (or epoll), for coroutines that never touch a green thread.
//
// Naming: namespace greenring::co mirrors greenring::io (blocking, for green
// threads) call for call - same libc signatures plus a deadline, same results -
// but every function returns an awaitable:
//
//   ssize_t n = co_await greenring::co::read(fd, buf, len);
//
// greenring::io::read would have collided (same name and arguments, different
// return type), and io::async_read would hide that the two families differ
// only in how they wait. One namespace per way of waiting keeps
// `using namespace greenring::co;` safe inside coroutine code.
//
//   read write recv send accept accept4 connect poll    -> libc results
//   sleep_until sleep_for yield                         -> void
//
// # Results and errors (as greenring::io)
// The count, or -1 with errno set on the coroutine's own worker thread; partial
// reads, 0 at EOF; a blocking stream write/send transfers everything unless an
// error, the deadline or cancellation stops it after partial progress (then the
// partial count). EAGAIN at once on an fd the program made O_NONBLOCK.
// ETIMEDOUT: the deadline passed before anything was transferred (poll: 0).
// Cancellation: when the awaiting coroutine's chain is cancelled, the kernel
// operation is cancelled, its completion awaited (the buffer is never written
// after the coroutine resumes) and greenring::cancelled is thrown - unless data
// had been transferred, which is returned; the cancellation is then delivered
// at the next greenring awaitable.
//
// # Cost and where things run
// Fast path first, as greenring::io: one non-blocking syscall (preadv2/pwritev2
// with RWF_NOWAIT, MSG_DONTWAIT for sockets) in await_ready, so a ready read
// costs one syscall and no suspension. Otherwise an io_op is started on the
// calling worker's driver with a completion callback that only posts a work
// item; the coroutine is resumed by the worker's coroutine runner. io_uring
// runs the operation itself; under epoll the op is a readiness poll and the
// runner retries the syscall (as greenring::io's readiness loop does).
// The epoll caveats of greenring::io apply: accept on a blocking listener
// shared with other workers may block the worker if it loses the race;
// regular files are read with the blocking syscall, on the runner.
// Called on a plain thread (a coroutine resumed by hand outside greenring)
// each operation is the plain blocking syscall.
//
// Not covered: greenring::io::close(fd) ends green threads' waits on fd, not
// coroutines' (a coroutine op on a closed fd waits on under io_uring): cancel
// the coroutine, or shutdown(2) the socket, before closing an fd it waits on.
#pragma once

#include <greenring/cancel.hpp>
#include <greenring/interop/detail/loop.hpp>
#include <greenring/interop/task.hpp>

#include <sys/socket.h>
#include <sys/types.h>

#include <chrono>
#include <coroutine>
#include <cstddef>
#include <cstdint>

namespace greenring::detail::coro {

enum class io_kind : std::uint8_t { read, write, recv, send, accept, connect, poll };

inline constexpr std::size_t kIoSlowSize = 320;

struct io_request {
  io_kind kind = io_kind::read;
  int fd = -1;
  void* buf = nullptr;
  std::size_t len = 0;
  int flags = 0;
  short events = 0;
  sockaddr* addr = nullptr;
  socklen_t* addrlen = nullptr;
  socklen_t caddrlen = 0;
  time_point until = time_point::max();

  ssize_t result = 0;         // >= 0, or -errno
  std::size_t progress = 0;   // bytes written so far (write/send)
  cancel_scope* scope = nullptr;
  bool early_cancel = false;  // the chain was cancelled before we suspended
  bool cancel_fired = false;
  bool timed_out = false;
  bool connecting = false;    // epoll: a non-blocking connect is in progress
};

// In-flight state of a suspended operation (an io_op and its bookkeeping).
struct alignas(16) io_slow_storage {
  unsigned char bytes[kIoSlowSize];
};

bool io_try(io_request& r) noexcept;
bool io_suspend(io_request& r, io_slow_storage& slow, std::coroutine_handle<> h, cancel_scope* scope);
ssize_t io_finish(io_request& r);

struct sleep_state {
  time_point until = time_point::max();
  cancel_scope* scope = nullptr;
  bool early_cancel = false;
  bool cancelled = false;
  timer_node timer;
  resume_item ri;
  cancel_slot slot;
};

bool sleep_suspend(sleep_state& s, std::coroutine_handle<> h, cancel_scope* scope);
void sleep_finish(sleep_state& s);

bool yield_suspend(resume_item& ri, std::coroutine_handle<> h);

}  // namespace greenring::detail::coro

namespace greenring::co {

// The awaitable of every I/O call. Not copyable or movable: co_await it where
// it is made (its in-flight state must not move while the kernel owns it).
class io_awaitable {
 public:
  using greenring_native_awaitable = void;
  explicit io_awaitable(const detail::coro::io_request& r) noexcept : r_(r) {}
  io_awaitable(const io_awaitable&) = delete;
  io_awaitable& operator=(const io_awaitable&) = delete;

  bool await_ready() noexcept { return detail::coro::io_try(r_); }
  template <class P>
  bool await_suspend(std::coroutine_handle<P> h) {
    return detail::coro::io_suspend(r_, slow_, h, detail::coro::scope_of(h));
  }
  ssize_t await_resume() { return detail::coro::io_finish(r_); }

 private:
  detail::coro::io_request r_;
  detail::coro::io_slow_storage slow_;
};

// Same as the int-returning calls of greenring::io: the awaitable yields ssize_t.
io_awaitable read(int fd, void* buf, std::size_t n, deadline until = no_deadline) noexcept;
io_awaitable write(int fd, const void* buf, std::size_t n, deadline until = no_deadline) noexcept;
io_awaitable recv(int fd, void* buf, std::size_t n, int flags, deadline until = no_deadline) noexcept;
io_awaitable send(int fd, const void* buf, std::size_t n, int flags, deadline until = no_deadline) noexcept;
io_awaitable accept(int fd, sockaddr* addr, socklen_t* addrlen, deadline until = no_deadline) noexcept;
io_awaitable accept4(int fd, sockaddr* addr, socklen_t* addrlen, int flags,
                     deadline until = no_deadline) noexcept;
// A blocking socket's connect waits for the handshake; a non-blocking one
// yields -1/EINPROGRESS as from libc.
io_awaitable connect(int fd, const sockaddr* addr, socklen_t addrlen, deadline until = no_deadline) noexcept;
// Yields the revents (> 0), 0 when the deadline passed, or -1 with errno.
io_awaitable poll(int fd, short events, deadline until = no_deadline) noexcept;

class sleep_awaitable {
 public:
  using greenring_native_awaitable = void;
  explicit sleep_awaitable(deadline until) noexcept { s_.until = until; }
  sleep_awaitable(const sleep_awaitable&) = delete;
  sleep_awaitable& operator=(const sleep_awaitable&) = delete;

  bool await_ready() const noexcept { return false; }
  template <class P>
  bool await_suspend(std::coroutine_handle<P> h) {
    return detail::coro::sleep_suspend(s_, h, detail::coro::scope_of(h));
  }
  void await_resume() { detail::coro::sleep_finish(s_); }

 private:
  detail::coro::sleep_state s_;
};

// Suspends the coroutine (not the green thread, not the worker) until `until`.
// A cancellation point: throws greenring::cancelled when cancelled, including
// when the deadline has already passed (then it does not suspend).
inline sleep_awaitable sleep_until(deadline until) noexcept { return sleep_awaitable(until); }
template <class Rep, class Period>
sleep_awaitable sleep_for(std::chrono::duration<Rep, Period> d) noexcept {
  return sleep_awaitable(after(std::chrono::duration_cast<clock::duration>(d)));
}

// Lets the worker's other coroutines, green threads and the driver run, then
// resumes. Not a cancellation point.
class yield_awaitable {
 public:
  using greenring_native_awaitable = void;
  bool await_ready() const noexcept { return false; }
  bool await_suspend(std::coroutine_handle<> h) { return detail::coro::yield_suspend(ri_, h); }
  void await_resume() const noexcept {}

 private:
  detail::coro::resume_item ri_;
};
inline yield_awaitable yield() noexcept { return {}; }

}  // namespace greenring::co
