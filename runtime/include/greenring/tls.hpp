// greenring/tls.hpp: TLS on OpenSSL 3 for green threads.
//
// A tls::stream runs OpenSSL over a connected socket whose reads and writes
// go through greenring::io, so a handshake, read or write suspends only the
// calling green thread (on a plain thread it blocks, like greenring::io).
// The header is opaque: users need no OpenSSL headers; native_handle()
// returns the SSL_CTX* / SSL* for what this API does not cover.
//
// Error scheme (one rule everywhere):
// - handshakes, shutdown() and the plain read()/write() throw tls::error, a
//   std::system_error whose code() is a tls::errc (TLS-level failures) or a
//   std::errc (transport: timed_out for a deadline, connection_reset, ...),
//   and whose what() carries OpenSSL's reason strings (ERR_error_string_n) and,
//   for certificate failures, the verify result string;
// - the read()/write() overloads taking std::error_code& never throw
//   tls::error: they set the code and keep the message in last_error();
// - cancellation of the green thread always throws greenring::cancelled, as
//   greenring::io does.
// - write() writes everything; if an error or the deadline stops it after
//   some bytes went out it returns the partial count (the error is reported by
//   the next call), like greenring::io::write.
// After a failed handshake or write, or a fatal TLS error, the stream is
// broken: every later call reports the same error. A read that hit its
// deadline (or was cancelled) leaves the stream usable: read again.
//
// Threads: a context may be shared by any number of streams on any threads.
// A stream is used by one green thread (or OS thread) at a time.
#pragma once

#include <greenring/cancel.hpp>

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

struct ssl_st;
struct ssl_ctx_st;

namespace greenring::tls {

enum class errc {
  protocol = 1,                   // a TLS protocol or library failure (SSL_ERROR_SSL)
  certificate_verify_failed = 2,  // the peer's certificate chain or name was rejected
  unexpected_eof = 3,             // the peer closed the connection without close_notify
  bad_config = 4,                 // a context setting could not be applied (file, key, ALPN list)
};
const std::error_category& category() noexcept;
inline std::error_code make_error_code(errc e) noexcept { return {static_cast<int>(e), category()}; }

class error : public std::system_error {
 public:
  error(std::error_code ec, const std::string& what, long verify_result = 0)
      : std::system_error(ec, what), verify_result_(verify_result) {}
  // X509_V_OK (0), or the X509_V_ERR_* code when certificate verification failed.
  long verify_result() const noexcept { return verify_result_; }

 private:
  long verify_result_;
};

enum class role { client, server };

// An SSL_CTX. Copies share it (reference counted). Defaults: TLS 1.2 minimum;
// clients verify the peer against the system CA store
// (SSL_CTX_set_default_verify_paths); servers do not ask for client
// certificates; session resumption on (servers: OpenSSL's session cache and
// tickets; clients: the context remembers the last session per host and peer
// address and offers it on the next connect).
// Setters throw tls::error (errc::bad_config) with OpenSSL's reason.
class context {
 public:
  explicit context(role r);

  role side() const noexcept;
  // Clients: verify the server (default true). false is an explicit opt-out:
  // any certificate and any name are then accepted. Servers: true requires a
  // client certificate that verifies against the loaded CAs.
  void set_verify(bool on);
  void load_verify_file(const std::string& ca_pem_file);
  void load_verify_dir(const std::string& ca_dir);
  // Servers (or clients presenting a certificate): PEM chain, leaf first; the
  // private key must match it.
  void use_certificate_chain_file(const std::string& pem_file);
  void use_private_key_file(const std::string& pem_file);
  // Client: the protocols offered, in order. Server: the protocols accepted,
  // in preference order; a client offering none of them gets no ALPN.
  void set_alpn(const std::vector<std::string>& protocols);
  // Accept a peer closing without close_notify as a clean EOF (read() returns
  // 0) instead of errc::unexpected_eof. Off by default (truncation attacks).
  void set_ignore_unexpected_eof(bool on);
  void set_session_resumption(bool on);

  ssl_ctx_st* native_handle() const noexcept;

  struct impl;  // opaque; public only so the implementation's callbacks can name it

 private:
  friend class stream;
  std::shared_ptr<impl> p_;
};

enum class fd_ownership {
  borrowed,  // the caller keeps the fd and closes it after the stream is gone
  owned,     // the stream closes it with greenring::io::close on destruction
};

class stream {
 public:
  // fd: a connected stream socket. Blocking or not as the program likes:
  // greenring::io honours O_NONBLOCK, so a non-blocking fd makes reads fail
  // with EAGAIN (reported as a transport error) — use blocking sockets.
  stream(const context& ctx, int fd, fd_ownership own = fd_ownership::borrowed);
  stream(stream&&) noexcept;
  stream& operator=(stream&&) noexcept;
  ~stream();  // no close_notify (that can block): call shutdown() first

  // Client handshake: SNI = host, and the certificate must match host (DNS
  // name, or IP address when host is a literal) unless verification is off.
  void connect(std::string_view host, deadline until = no_deadline);
  // Server handshake.
  void accept(deadline until = no_deadline);

  // Up to n bytes (n > 0); 0 when the peer closed cleanly (close_notify).
  std::size_t read(void* buf, std::size_t n, deadline until = no_deadline);
  std::size_t read(void* buf, std::size_t n, std::error_code& ec, deadline until = no_deadline);
  // Everything, or a partial count (see the error scheme above).
  std::size_t write(const void* buf, std::size_t n, deadline until = no_deadline);
  std::size_t write(const void* buf, std::size_t n, std::error_code& ec, deadline until = no_deadline);
  // Sends close_notify (does not wait for the peer's).
  void shutdown(deadline until = no_deadline);

  std::string alpn() const;                      // "" when none was negotiated
  bool session_reused() const;
  std::string peer_certificate_subject() const;  // RFC 2253, "" when the peer sent none
  std::string protocol_version() const;          // "TLSv1.3", ...
  const std::string& last_error() const noexcept;  // message of the last failure
  int fd() const noexcept;
  ssl_st* native_handle() const noexcept;

  struct impl;  // opaque; see context::impl

 private:
  std::unique_ptr<impl> p_;
};

}  // namespace greenring::tls

template <>
struct std::is_error_code_enum<greenring::tls::errc> : std::true_type {};
