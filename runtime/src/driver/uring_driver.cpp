// driver/uring_driver.cpp: the io_uring implementation of driver.hpp.
//
// One ring per worker, created on the worker's own thread so that
// IORING_SETUP_SINGLE_ISSUER names the right task. Set-up tries, in order:
// SINGLE_ISSUER|DEFER_TASKRUN (6.1+: completions are only posted when this
// thread enters the kernel, which we do anyway, saving task-work IPIs),
// COOP_TASKRUN (5.19+), then no flags; each first with TASKRUN_FLAG, which
// makes the kernel raise IORING_SQ_TASKRUN in the shared SQ flags when
// completions are waiting for us to enter. With it, a scheduler pass enters
// the kernel only when there is something to submit or to collect; without
// it, completion-only entries are rate-limited (driver.hpp, kPollInterval).
//
// Cross-thread wake-up is an eventfd with a read always armed in the ring.
// IORING_OP_MSG_RING was rejected: only a thread that owns a ring can send
// one, and greenring is woken from plain OS threads too (joins from main,
// foreign threads completing awaitables); both cost one syscall for the waker.
//
// user_data is the io_op*; 0 marks completions nobody waits for (cancel
// requests), and &wake_op_ the eventfd read.
#include "detail/sys.hpp"
#include "driver/driver.hpp"

#include <liburing.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <utility>
#include <system_error>

namespace greenring::detail {
namespace {

class uring_driver final : public driver {
 public:
  explicit uring_driver(unsigned entries) {
    const unsigned tries[] = {
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_TASKRUN_FLAG |
            IORING_SETUP_SUBMIT_ALL,
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SUBMIT_ALL,
        IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG | IORING_SETUP_SUBMIT_ALL,
        IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SUBMIT_ALL,
        0,
    };
    int err = 0;
    for (unsigned f : tries) {
      io_uring_params p{};
      p.flags = f | IORING_SETUP_CQSIZE;
      p.cq_entries = entries * 4;
      err = io_uring_queue_init_params(entries, &ring_, &p);
      if (err == 0) {
        flags_ = f;
        feat_ = p.features;
        break;
      }
      if (err != -EINVAL) break;  // EPERM/ENOSYS/ENOMEM: no point in other flags
    }
    if (err) throw std::system_error(-err, std::generic_category(), "greenring: io_uring_queue_init");
    probe_ops();
    efd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (efd_ < 0) {
      int e = errno;
      io_uring_queue_exit(&ring_);
      throw std::system_error(e, std::generic_category(), "greenring: eventfd");
    }
    arm_wake();
  }

  ~uring_driver() override {
    io_uring_queue_exit(&ring_);
    sys::close(efd_);
  }

  const char* name() const noexcept override { return "io_uring"; }

  std::string features() const override {
    std::string s;
    if (flags_ & IORING_SETUP_SINGLE_ISSUER) s += "single_issuer ";
    if (flags_ & IORING_SETUP_DEFER_TASKRUN) s += "defer_taskrun ";
    if (flags_ & IORING_SETUP_COOP_TASKRUN) s += "coop_taskrun ";
    if (flags_ & IORING_SETUP_TASKRUN_FLAG) s += "taskrun_flag ";
    if (feat_ & IORING_FEAT_EXT_ARG) s += "ext_arg ";
    if (feat_ & IORING_FEAT_FAST_POLL) s += "fast_poll ";
    if (feat_ & IORING_FEAT_NODROP) s += "nodrop ";
    int missing = 0;
    for (int k = 0; k <= static_cast<int>(op_kind::statx); ++k) missing += !native_[k];
    if (missing) s += "missing_ops=" + std::to_string(missing) + " ";
    if (!s.empty()) s.pop_back();
    return s;
  }

  bool native(op_kind k) const noexcept override { return native_[static_cast<int>(k)]; }

  void start(io_op* op) noexcept override {
    io_uring_sqe* sqe = sqe_();
    switch (op->kind) {
      case op_kind::poll: io_uring_prep_poll_add(sqe, op->fd, static_cast<unsigned>(op->events)); break;
      case op_kind::read: io_uring_prep_read(sqe, op->fd, op->buf, static_cast<unsigned>(op->len), op->off); break;
      case op_kind::write: io_uring_prep_write(sqe, op->fd, op->buf, static_cast<unsigned>(op->len), op->off); break;
      case op_kind::readv: io_uring_prep_readv(sqe, op->fd, op->iov, static_cast<unsigned>(op->iovcnt), op->off); break;
      case op_kind::writev: io_uring_prep_writev(sqe, op->fd, op->iov, static_cast<unsigned>(op->iovcnt), op->off); break;
      case op_kind::recv: io_uring_prep_recv(sqe, op->fd, op->buf, op->len, op->flags); break;
      case op_kind::send: io_uring_prep_send(sqe, op->fd, op->buf, op->len, op->flags); break;
      case op_kind::recvmsg: io_uring_prep_recvmsg(sqe, op->fd, op->msg, static_cast<unsigned>(op->flags)); break;
      case op_kind::sendmsg: io_uring_prep_sendmsg(sqe, op->fd, op->msg, static_cast<unsigned>(op->flags)); break;
      case op_kind::accept: io_uring_prep_accept(sqe, op->fd, op->addr, op->addrlenp, op->flags); break;
      case op_kind::connect: io_uring_prep_connect(sqe, op->fd, op->addr, op->addrlen); break;
      case op_kind::openat: io_uring_prep_openat(sqe, op->fd, op->path, op->flags, op->mode); break;
      case op_kind::close: io_uring_prep_close(sqe, op->fd); break;
      case op_kind::fsync: io_uring_prep_fsync(sqe, op->fd, static_cast<unsigned>(op->flags)); break;
      case op_kind::statx: io_uring_prep_statx(sqe, op->fd, op->path, op->flags, op->mode, op->stx); break;
    }
    io_uring_sqe_set_data(sqe, op);
    ++inflight_;
  }

  void cancel(io_op* op) noexcept override {
    io_uring_sqe* sqe = sqe_();
    io_uring_prep_cancel64(sqe, reinterpret_cast<std::uintptr_t>(op), 0);
    io_uring_sqe_set_data64(sqe, 0);
  }

  int poll(bool eager) noexcept override {
    unsigned kf = IO_URING_READ_ONCE(*ring_.sq.kflags);
    bool enter = io_uring_sq_ready(&ring_) > 0 || (kf & IORING_SQ_CQ_OVERFLOW);
    if (!enter && inflight_ > 0 && !io_uring_cq_ready(&ring_)) {
      if (flags_ & IORING_SETUP_TASKRUN_FLAG)
        enter = kf & IORING_SQ_TASKRUN;  // the kernel tells us: no guessing
      else if (flags_ & (IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_COOP_TASKRUN))
        enter = poll_due(eager);  // completions need a kernel entry to appear
    }
    if (enter) io_uring_submit_and_get_events(&ring_);
    return reap();
  }

  void wait(const timespec* ts) noexcept override {
    if (io_uring_cq_ready(&ring_) == 0) {
      io_uring_cqe* cqe = nullptr;
      __kernel_timespec kts{};
      __kernel_timespec* tsp = nullptr;
      if (ts) {
        kts.tv_sec = ts->tv_sec;
        kts.tv_nsec = ts->tv_nsec;
        tsp = &kts;
      }
      // -ETIME (timeout) and -EINTR (signal) just mean: return to the scheduler.
      io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, tsp, nullptr);
    }
    reap();
  }

  void wake() noexcept override {
    std::uint64_t one = 1;
    sys::write(efd_, &one, sizeof one);
  }

  std::size_t inflight() const noexcept override { return inflight_; }

  void abandon() noexcept override {
    sys::close(ring_.ring_fd);
    sys::close(efd_);
  }

 private:
  // Which opcodes this kernel has (IORING_REGISTER_PROBE, 5.6+). An op the
  // kernel lacks is done by readiness + syscall instead.
  void probe_ops() noexcept {
    static constexpr std::pair<op_kind, int> map[] = {
        {op_kind::poll, IORING_OP_POLL_ADD}, {op_kind::read, IORING_OP_READ},
        {op_kind::write, IORING_OP_WRITE},   {op_kind::readv, IORING_OP_READV},
        {op_kind::writev, IORING_OP_WRITEV}, {op_kind::recv, IORING_OP_RECV},
        {op_kind::send, IORING_OP_SEND},     {op_kind::recvmsg, IORING_OP_RECVMSG},
        {op_kind::sendmsg, IORING_OP_SENDMSG}, {op_kind::accept, IORING_OP_ACCEPT},
        {op_kind::connect, IORING_OP_CONNECT}, {op_kind::openat, IORING_OP_OPENAT},
        {op_kind::close, IORING_OP_CLOSE},   {op_kind::fsync, IORING_OP_FSYNC},
        {op_kind::statx, IORING_OP_STATX},
    };
    io_uring_probe* pr = io_uring_get_probe_ring(&ring_);
    for (auto [k, opcode] : map)
      native_[static_cast<int>(k)] = k == op_kind::poll || (pr && io_uring_opcode_supported(pr, opcode));
    if (pr) io_uring_free_probe(pr);
  }

  io_uring_sqe* sqe_() noexcept {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    while (!sqe) {  // SQ full: flush what is queued, then there is room
      io_uring_submit(&ring_);
      sqe = io_uring_get_sqe(&ring_);
    }
    return sqe;
  }

  void arm_wake() noexcept {
    io_uring_sqe* sqe = sqe_();
    io_uring_prep_read(sqe, efd_, &wake_buf_, sizeof wake_buf_, 0);
    io_uring_sqe_set_data(sqe, &wake_op_);
  }

  int reap() noexcept {
    int n = 0;
    unsigned head;
    io_uring_cqe* cqe;
    io_uring_for_each_cqe(&ring_, head, cqe) {
      ++n;
      void* data = io_uring_cqe_get_data(cqe);
      if (data == nullptr) continue;
      if (data == &wake_op_) {
        arm_wake();
        continue;
      }
      --inflight_;
      complete(static_cast<io_op*>(data), cqe->res);
    }
    io_uring_cq_advance(&ring_, static_cast<unsigned>(n));
    return n;
  }

  io_uring ring_{};
  unsigned flags_ = 0;
  unsigned feat_ = 0;
  int efd_ = -1;
  std::uint64_t wake_buf_ = 0;
  io_op wake_op_{};
  std::size_t inflight_ = 0;
  bool native_[16] = {};
};

}  // namespace

std::unique_ptr<driver> make_uring_driver(unsigned entries) {
  return std::make_unique<uring_driver>(entries);
}

}  // namespace greenring::detail
