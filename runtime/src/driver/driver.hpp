// driver/driver.hpp: the contract between a worker and the kernel interface
// that does its waiting.
//
// A driver belongs to one worker and, except for wake(), is only ever touched
// from that worker's OS thread. Two implementations, one file each:
//   uring_driver.cpp  io_uring: every op_kind natively; submissions queue in
//                     the SQ and are flushed once per scheduler pass or when
//                     the worker goes idle (never one io_uring_enter per op).
//   epoll_driver.cpp  epoll + non-blocking syscalls: only op_kind::poll; the
//                     I/O layer retries the syscall on readiness.
// probe.cpp picks one: GREENRING_BACKEND, then io_uring if a ring can be set
// up (it fails with EPERM under seccomp or io_uring_disabled, ENOSYS on old
// kernels), else epoll.
//
// Methods and whether they block:
//   start(op)   never blocks. The op completes later, inside poll() or wait():
//               op->res is set (>= 0 result or -errno), op->done becomes true
//               and op->waiter (if any) is unparked.
//   cancel(op)  never blocks. Asks for early completion; the completion still
//               arrives (with -ECANCELED, or the op's real result if it had
//               already finished: the caller must honour that result, so no
//               data is ever lost). Until then the op's buffers stay owned by
//               the kernel: the caller waits for op->done before returning.
//   poll(eager) never blocks: flushes queued submissions, reaps completions.
//               Entering the kernel only to look for completions (nothing to
//               submit) costs a syscall; unless `eager`, a driver does that at
//               most once per kPollInterval, so a worker whose green threads
//               stay runnable checks for I/O every ~20 us, not every pass.
//   wait(ts)    flushes and blocks until a completion, a wake() or ts passes.
//   wake()      any thread: makes a blocked or the next wait() return.
#pragma once

#include <greenring/detail/park.hpp>

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

namespace greenring {
enum class backend;
}

namespace greenring::detail {

enum class op_kind : std::uint8_t {
  poll,  // wait for op.events on fd; res = revents
  read, write, readv, writev, recv, send, recvmsg, sendmsg,
  accept, connect, openat, close, fsync, statx,
};

// One in-flight kernel operation. Lives in the waiting green thread's frame;
// Lifecycle: built -> started (kernel owns buf/iov/msg/addr) -> done (res valid,
// caller owns everything again). Never destroyed while started and not done.
struct io_op {
  op_kind kind = op_kind::poll;
  int fd = -1;
  short events = 0;                 // poll
  int flags = 0;                    // recv/send/accept4/openat/statx/fsync flags
  void* buf = nullptr;              // read/write/recv/send
  std::size_t len = 0;
  std::uint64_t off = 0;            // read/write offset; (uint64_t)-1 = file position
  const iovec* iov = nullptr;       // readv/writev
  int iovcnt = 0;
  msghdr* msg = nullptr;            // recvmsg/sendmsg
  sockaddr* addr = nullptr;         // accept (out) / connect (in)
  socklen_t* addrlenp = nullptr;    // accept
  socklen_t addrlen = 0;            // connect
  const char* path = nullptr;       // openat/statx
  unsigned mode = 0;                // openat mode / statx mask
  struct statx* stx = nullptr;

  int res = 0;
  bool done = false;
  parker* waiter = nullptr;
  // Instead of unparking `waiter`, completion may call this (on the owning
  // worker's thread, from the dispatcher's poll: it must not block or park).
  // Used by coroutine-native I/O, which has no green thread to wake.
  void (*on_complete)(io_op*) = nullptr;
  void* user = nullptr;

  io_op* prev = nullptr;            // driver-private links (epoll waiter lists)
  io_op* next = nullptr;
};

class driver {
 public:
  virtual ~driver() = default;
  virtual const char* name() const noexcept = 0;
  // Kernel features in use, for stats and logs (e.g. "single_issuer defer_taskrun").
  virtual std::string features() const = 0;
  // Whether start() runs this kind of op itself. op_kind::poll always is;
  // for the others the I/O layer waits for readiness and retries the syscall.
  virtual bool native(op_kind k) const noexcept = 0;
  virtual void start(io_op* op) noexcept = 0;
  virtual void cancel(io_op* op) noexcept = 0;
  virtual int poll(bool eager = false) noexcept = 0;
  virtual void wait(const timespec* timeout) noexcept = 0;
  virtual void wake() noexcept = 0;
  // Ops started and not yet completed (the wake mechanism's own are not counted).
  virtual std::size_t inflight() const noexcept = 0;
  // In the child of a fork: closes this process's descriptors of the ring or
  // epoll instance and the eventfd, which it shares with the parent, without
  // submitting, reaping or unmapping anything. No other method may be called
  // afterwards; the object is leaked.
  virtual void abandon() noexcept = 0;

 protected:
  static constexpr std::chrono::microseconds kPollInterval{20};

  // Rate limit for completion-only kernel entries.
  bool poll_due(bool eager) noexcept {
    if (eager) return true;
    auto now = std::chrono::steady_clock::now();
    if (now - last_poll_ < kPollInterval) return false;
    last_poll_ = now;
    return true;
  }

  static void complete(io_op* op, int res) noexcept {
    op->res = res;
    op->done = true;
    if (op->on_complete) op->on_complete(op);
    else if (op->waiter) op->waiter->unpark(wake::signalled);
  }

 private:
  std::chrono::steady_clock::time_point last_poll_{};
};

// Throw std::system_error carrying the errno of the failed setup call.
std::unique_ptr<driver> make_uring_driver(unsigned entries);
std::unique_ptr<driver> make_epoll_driver();

// Resolves backend::automatic (and GREENRING_BACKEND) to uring or epoll by
// probing; `why` receives a one-line reason when io_uring was not chosen.
backend choose_backend(backend requested, unsigned entries, std::string& why);

}  // namespace greenring::detail
