// tls/bio.cpp: the BIO that lets OpenSSL block a green thread, and the
// hand-off that keeps OpenSSL's per-OS-thread error queue per green thread.
//
// # Why a custom BIO, not a non-blocking socket driven by WANT_READ/WANT_WRITE
// The BIO's read and write are greenring::io::recv/send with the stream's
// deadline: when no data is there the green thread suspends *inside* the
// SSL_* call and OpenSSL only ever sees a blocking transport. Rejected: set
// O_NONBLOCK and turn SSL_ERROR_WANT_* into io::poll waits, because
//  1. O_NONBLOCK lives in the open file description, shared with every dup of
//     the fd and with whoever passed it to us (a borrowed fd), and
//     greenring::io itself gives such an fd libc's EAGAIN semantics;
//  2. under io_uring a readiness wait followed by a recv costs an extra
//     syscall per read, while io::recv's slow path is one native recv whose
//     completion carries the data (under epoll io::recv does the readiness
//     loop itself, so the BIO is correct on both drivers);
//  3. the WANT_* protocol needs each SSL_write retried with the same buffer
//     and turns every handshake step into a re-entry loop; blocking
//     semantics keep the stream code a straight line.
// The price is that a green thread can be suspended in the middle of
// libssl, which is what the error-queue hand-off below is for.
//
// # Deadlines and cancellation inside OpenSSL
// io::recv/send return ETIMEDOUT or throw greenring::cancelled. An exception
// must not unwind through libssl's C frames (it would leave the SSL object
// half-updated and skip its cleanup), so the BIO catches it, stores it in the
// stream and returns -1; the stream rethrows it once the SSL_* call has
// returned. A read cut short by the deadline or cancellation also sets the
// BIO's retry flag: OpenSSL then reports SSL_ERROR_WANT_READ and keeps its
// record state, so the read can simply be called again later. Writes and
// handshakes are not retryable (a half-written record cannot be resumed with a
// different buffer), so there the stream becomes broken.
//
// # The error queue
// OpenSSL keeps its error queue in OS-thread-local storage. Green threads on
// one worker share it, and a green thread can suspend inside an SSL_* call
// between OpenSSL pushing an error and the caller reading it (a fatal alert
// is pushed, then written to the socket; the write may block). Meanwhile
// another green thread's SSL_* call would see that entry (SSL_get_error peeks
// the queue and would report SSL_ERROR_SSL for its own harmless return) or
// wipe it (SSL_do_handshake starts with ERR_clear_error()). So:
//  1. every SSL_* call starts with ERR_clear_error() (begin_call): what is in
//     the queue then belongs to nobody still waiting for it;
//  2. before the BIO lets its green thread suspend it moves the queue's
//     entries into the stream (ERR_get_error_all: code, file, line, function
//     and text data, all copied: the strings belong to the queue slot) — the
//     queue is then empty for whoever runs next;
//  3. when it resumes it clears the queue (entries left there by other code
//     that ran meanwhile are not ours) and pushes the saved entries back in
//     their order (ERR_new, ERR_set_debug, ERR_set_error).
// After the call the stream drains the queue into its error message, so no
// entry outlives the call that made it. Lost in the round trip: ERR marks
// (ERR_set_mark) set before the suspension. Nothing is done on a plain OS
// thread, where no other green thread can run in between.
#include "tls/tls_internal.hpp"

#include <greenring/io.hpp>
#include <greenring/spawn.hpp>

#include <openssl/bio.h>
#include <openssl/err.h>

#include <cerrno>
#include <climits>

namespace greenring::tls {
namespace {

void stash_errors(stream::impl& s) {
  for (;;) {
    const char* file = nullptr;
    const char* func = nullptr;
    const char* data = nullptr;
    int line = 0;
    int flags = 0;
    unsigned long e = ERR_get_error_all(&file, &line, &func, &data, &flags);
    if (e == 0) return;
    s.stash.push_back({e, file ? file : "", line, func ? func : "", (data && (flags & ERR_TXT_STRING)) ? data : ""});
  }
}

void restore_errors(stream::impl& s) {
  ERR_clear_error();
  for (const auto& x : s.stash) {
    ERR_new();
    ERR_set_debug(x.file.c_str(), x.line, x.func.c_str());
    if (x.data.empty())
      ERR_set_error(ERR_GET_LIB(x.code), ERR_GET_REASON(x.code), nullptr);
    else
      ERR_set_error(ERR_GET_LIB(x.code), ERR_GET_REASON(x.code), "%s", x.data.c_str());
  }
  s.stash.clear();
}

stream::impl& state(BIO* b) { return *static_cast<stream::impl*>(BIO_get_data(b)); }

// Runs one transport call with the error queue handed off around it. io
// returns -1/errno or throws cancelled; the result is -errno or the count.
template <class Op>
long transport(stream::impl& s, Op op) {
  bool green = this_fiber::is_green_thread();
  if (green) stash_errors(s);
  long r;
  try {
    r = op();
    if (r < 0) r = -errno;
  } catch (...) {
    s.pending = std::current_exception();
    r = -ECANCELED;
  }
  if (green) restore_errors(s);
  return r;
}

int bio_read(BIO* b, char* buf, int len) {
  auto& s = state(b);
  BIO_clear_retry_flags(b);
  if (len <= 0) return 0;
  long r = transport(s, [&] { return io::recv(s.fd, buf, static_cast<size_t>(len), 0, s.until); });
  if (r >= 0) return static_cast<int>(r);
  s.io_errno = static_cast<int>(-r);
  if (s.io_errno == ETIMEDOUT || s.io_errno == ECANCELED) BIO_set_retry_read(b);
  return -1;
}

int bio_write(BIO* b, const char* buf, int len) {
  auto& s = state(b);
  BIO_clear_retry_flags(b);
  if (len <= 0) return 0;
  long r = transport(s, [&] { return io::send(s.fd, buf, static_cast<size_t>(len), MSG_NOSIGNAL, s.until); });
  if (r > 0) return static_cast<int>(r);
  s.io_errno = r == 0 ? EPIPE : static_cast<int>(-r);
  return -1;
}

long bio_ctrl(BIO*, int cmd, long, void*) {
  // FLUSH is called after each handshake flight; the writes already went out.
  return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

BIO_METHOD* make_method() {
  BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "greenring green socket");
  if (!m || BIO_meth_set_read(m, bio_read) != 1 || BIO_meth_set_write(m, bio_write) != 1 ||
      BIO_meth_set_ctrl(m, bio_ctrl) != 1)
    return nullptr;
  return m;
}

}  // namespace

BIO* new_green_bio(stream::impl* s) {
  static BIO_METHOD* method = make_method();  // lives for the process, like OpenSSL's own
  if (!method) return nullptr;
  BIO* b = BIO_new(method);
  if (!b) return nullptr;
  BIO_set_data(b, s);
  BIO_set_init(b, 1);
  return b;
}

void begin_call(stream::impl& s, deadline until) noexcept {
  ERR_clear_error();
  s.until = until;
  s.io_errno = 0;
  s.pending = nullptr;
  s.stash.clear();
}

}  // namespace greenring::tls
