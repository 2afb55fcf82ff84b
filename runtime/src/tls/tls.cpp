// tls/tls.cpp: greenring::tls::context and stream over OpenSSL 3.
//
// Owns the SSL_CTX/SSL settings, the translation of SSL_* results into the
// one error scheme of tls.hpp, and the client session cache. The transport
// (the green BIO) and the per-green-thread error queue are in bio.cpp.
//
// # One SSL_* call
//  1. begin_call: clear the OS thread's error queue, arm the deadline.
//  2. The SSL_* function; its BIO may suspend the green thread any number of
//     times (bio.cpp keeps the error queue ours across those suspensions).
//  3. On failure, fail(): SSL_get_error, then drain the queue into the
//     message (ERR_error_string_n per entry, plus the X509 verify result
//     string for certificate failures), so nothing is left in the queue for
//     the next green thread; a fatal outcome makes the stream broken; an
//     exception caught in the BIO (cancellation) is rethrown here, after
//     OpenSSL's frames are gone.
//
// # Client session resumption
// OpenSSL's client side keeps no cache of its own: the program must hand the
// session to SSL_set_session. The context keeps the newest resumable session
// per (host, peer address), filled from the new-session callback, which under
// TLS 1.3 fires when tickets arrive after the handshake (inside a read). The
// server side uses OpenSSL's internal cache and stateless tickets.
#include "tls/tls_internal.hpp"

#include <greenring/io.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>

#include <cstring>
#include <stdexcept>
#include <utility>

namespace greenring::tls {
namespace {

class category_impl : public std::error_category {
 public:
  const char* name() const noexcept override { return "greenring.tls"; }
  std::string message(int c) const override {
    switch (static_cast<errc>(c)) {
      case errc::protocol: return "TLS protocol error";
      case errc::certificate_verify_failed: return "certificate verify failed";
      case errc::unexpected_eof: return "peer closed the connection without close_notify";
      case errc::bad_config: return "TLS configuration error";
    }
    return "unknown TLS error";
  }
};

// All entries in the OS thread's error queue, oldest first, "; "-separated;
// the queue is left empty.
std::string drain_errors(unsigned long* first_code = nullptr) {
  std::string out;
  const char* data = nullptr;
  int flags = 0;
  while (unsigned long e = ERR_get_error_all(nullptr, nullptr, nullptr, &data, &flags)) {
    if (first_code && !*first_code) *first_code = e;
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
    if (data && (flags & ERR_TXT_STRING) && *data) {
      out += " (";
      out += data;
      out += ")";
    }
  }
  return out;
}

[[noreturn]] void config_error(const std::string& what) {
  std::string msg = "tls: " + what;
  std::string q = drain_errors();
  if (!q.empty()) msg += ": " + q;
  throw error(errc::bad_config, msg);
}

void check(int ok, const char* what) {
  if (ok != 1) config_error(what);
}

std::vector<unsigned char> alpn_wire(const std::vector<std::string>& protos) {
  std::vector<unsigned char> w;
  for (const auto& p : protos) {
    if (p.empty() || p.size() > 255) config_error("ALPN protocol names must be 1..255 bytes");
    w.push_back(static_cast<unsigned char>(p.size()));
    w.insert(w.end(), p.begin(), p.end());
  }
  return w;
}

int alpn_select(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in, unsigned inlen,
                void* arg) {
  auto* c = static_cast<context::impl*>(arg);
  if (c->alpn_wire.empty()) return SSL_TLSEXT_ERR_NOACK;
  unsigned char* sel = nullptr;
  int r = SSL_select_next_proto(&sel, outlen, c->alpn_wire.data(), static_cast<unsigned>(c->alpn_wire.size()), in,
                                inlen);
  if (r != OPENSSL_NPN_NEGOTIATED) return SSL_TLSEXT_ERR_NOACK;
  *out = sel;
  return SSL_TLSEXT_ERR_OK;
}

int new_session(SSL* ssl, SSL_SESSION* sess) {
  auto* s = static_cast<stream::impl*>(SSL_get_app_data(ssl));
  if (!s || s->session_key.empty() || !SSL_SESSION_is_resumable(sess)) return 0;
  std::lock_guard<std::mutex> g(s->ctx->mu);
  SSL_SESSION*& slot = s->ctx->sessions[s->session_key];
  if (slot) SSL_SESSION_free(slot);
  slot = sess;
  return 1;  // we keep the reference OpenSSL passed
}

std::string peer_address(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "?";
  char host[INET6_ADDRSTRLEN] = "?";
  unsigned port = 0;
  if (ss.ss_family == AF_INET) {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    ::inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
    port = ntohs(a->sin_port);
  } else if (ss.ss_family == AF_INET6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    ::inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
    port = ntohs(a->sin6_port);
  }
  return std::string(host) + ":" + std::to_string(port);
}

bool is_ip_literal(const std::string& h) {
  unsigned char buf[sizeof(in6_addr)];
  return ::inet_pton(AF_INET, h.c_str(), buf) == 1 || ::inet_pton(AF_INET6, h.c_str(), buf) == 1;
}

// Step 3 of "One SSL_* call". `retryable`: a deadline or cancellation leaves
// the SSL usable (reads only).
std::error_code fail(stream::impl& s, int ret, const char* op, bool retryable) {
  int e = SSL_get_error(s.ssl, ret);
  unsigned long first = 0;
  std::string queue = drain_errors(&first);
  std::error_code ec;
  long vr = 0;
  bool fatal = true;
  switch (e) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:  // only our BIO's retry flag (deadline, cancellation) gets here
      fatal = !retryable;
      ec = std::error_code(s.io_errno ? s.io_errno : ETIMEDOUT, std::generic_category());
      break;
    case SSL_ERROR_SYSCALL:
      ec = s.io_errno ? std::error_code(s.io_errno, std::generic_category()) : make_error_code(errc::unexpected_eof);
      break;
    case SSL_ERROR_ZERO_RETURN:
      ec = make_error_code(errc::unexpected_eof);
      break;
    default:
      if (ERR_GET_LIB(first) == ERR_LIB_SSL && ERR_GET_REASON(first) == SSL_R_CERTIFICATE_VERIFY_FAILED) {
        ec = make_error_code(errc::certificate_verify_failed);
        vr = SSL_get_verify_result(s.ssl);
      } else if (ERR_GET_LIB(first) == ERR_LIB_SSL && ERR_GET_REASON(first) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
        ec = make_error_code(errc::unexpected_eof);
      } else {
        ec = make_error_code(errc::protocol);
      }
  }
  // what() of the exception is this plus ": " + ec.message() (std::system_error adds it).
  std::string msg = std::string("tls ") + op;
  if (!queue.empty()) msg += ": " + queue;
  if (vr != X509_V_OK) msg += std::string(" (verify result: ") + X509_verify_cert_error_string(vr) + ")";
  s.last_what = msg;
  s.last_error = msg + ": " + ec.message();
  if (fatal) {
    s.broken = ec;
    s.broken_verify = vr;
  }
  if (s.pending) std::rethrow_exception(std::exchange(s.pending, nullptr));
  return ec;
}

[[noreturn]] void throw_last(const stream::impl& s, std::error_code ec, long vr) {
  throw error(ec, s.last_what, vr);
}

}  // namespace

const std::error_category& category() noexcept {
  static const category_impl c;
  return c;
}

// ---- context --------------------------------------------------------------------

context::impl::~impl() {
  for (auto& kv : sessions) SSL_SESSION_free(kv.second);
  SSL_CTX_free(ctx);
}

context::context(role r) : p_(std::make_shared<impl>()) {
  p_->side = r;
  p_->ctx = SSL_CTX_new(r == role::client ? TLS_client_method() : TLS_server_method());
  if (!p_->ctx) config_error("SSL_CTX_new");
  SSL_CTX* c = p_->ctx;
  check(SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION), "SSL_CTX_set_min_proto_version");
  check(SSL_CTX_set_default_verify_paths(c), "SSL_CTX_set_default_verify_paths");
  SSL_CTX_set_mode(c, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  SSL_CTX_set_read_ahead(c, 1);  // one recv per buffer-full, not two per record
  if (r == role::client) {
    SSL_CTX_set_verify(c, SSL_VERIFY_PEER, nullptr);
    SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(c, new_session);
  } else {
    SSL_CTX_set_verify(c, SSL_VERIFY_NONE, nullptr);
    SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_SERVER);
    static const unsigned char sid[] = "greenring";
    check(SSL_CTX_set_session_id_context(c, sid, sizeof sid - 1), "SSL_CTX_set_session_id_context");
    SSL_CTX_set_alpn_select_cb(c, alpn_select, p_.get());
  }
}

role context::side() const noexcept { return p_->side; }

void context::set_verify(bool on) {
  int mode = SSL_VERIFY_NONE;
  if (on) mode = p_->side == role::client ? SSL_VERIFY_PEER : SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
  SSL_CTX_set_verify(p_->ctx, mode, nullptr);
}

void context::load_verify_file(const std::string& f) {
  check(SSL_CTX_load_verify_file(p_->ctx, f.c_str()), ("load_verify_file " + f).c_str());
}

void context::load_verify_dir(const std::string& d) {
  check(SSL_CTX_load_verify_dir(p_->ctx, d.c_str()), ("load_verify_dir " + d).c_str());
}

void context::use_certificate_chain_file(const std::string& f) {
  check(SSL_CTX_use_certificate_chain_file(p_->ctx, f.c_str()), ("use_certificate_chain_file " + f).c_str());
}

void context::use_private_key_file(const std::string& f) {
  check(SSL_CTX_use_PrivateKey_file(p_->ctx, f.c_str(), SSL_FILETYPE_PEM), ("use_private_key_file " + f).c_str());
  check(SSL_CTX_check_private_key(p_->ctx), "the private key does not match the certificate");
}

void context::set_alpn(const std::vector<std::string>& protos) {
  auto w = alpn_wire(protos);
  if (p_->side == role::client) {
    // SSL_CTX_set_alpn_protos returns 0 on success.
    if (SSL_CTX_set_alpn_protos(p_->ctx, w.data(), static_cast<unsigned>(w.size())) != 0)
      config_error("SSL_CTX_set_alpn_protos");
  } else {
    p_->alpn_wire = std::move(w);  // set before the context is shared with streams
  }
}

void context::set_ignore_unexpected_eof(bool on) {
  if (on)
    SSL_CTX_set_options(p_->ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
  else
    SSL_CTX_clear_options(p_->ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
}

void context::set_session_resumption(bool on) {
  p_->resume = on;
  if (p_->side == role::server) {
    SSL_CTX_set_session_cache_mode(p_->ctx, on ? SSL_SESS_CACHE_SERVER : SSL_SESS_CACHE_OFF);
    if (on)
      SSL_CTX_clear_options(p_->ctx, SSL_OP_NO_TICKET);
    else
      SSL_CTX_set_options(p_->ctx, SSL_OP_NO_TICKET);
  }
}

ssl_ctx_st* context::native_handle() const noexcept { return p_->ctx; }

// ---- stream ---------------------------------------------------------------------

stream::impl::~impl() {
  if (ssl) SSL_free(ssl);  // frees the BIO; sends nothing
  if (own == fd_ownership::owned && fd >= 0) io::close(fd);
}

stream::stream(const context& ctx, int fd, fd_ownership own) : p_(std::make_unique<impl>()) {
  p_->ctx = ctx.p_;
  p_->fd = fd;
  p_->own = own;
  p_->server = ctx.p_->side == role::server;
  ERR_clear_error();
  p_->ssl = SSL_new(ctx.p_->ctx);
  if (!p_->ssl) config_error("SSL_new");
  SSL_set_app_data(p_->ssl, p_.get());
  BIO* b = new_green_bio(p_.get());
  if (!b) config_error("BIO_new");
  SSL_set_bio(p_->ssl, b, b);  // one reference, consumed by the SSL
}

stream::stream(stream&&) noexcept = default;
stream& stream::operator=(stream&&) noexcept = default;
stream::~stream() = default;

void stream::connect(std::string_view host_sv, deadline until) {
  impl& s = *p_;
  if (s.server) throw std::logic_error("greenring::tls::stream::connect on a server context");
  if (s.broken) throw_last(s, s.broken, s.broken_verify);
  std::string host(host_sv);
  ERR_clear_error();
  if (!is_ip_literal(host) && !host.empty() && SSL_set_tlsext_host_name(s.ssl, host.c_str()) != 1)
    config_error("SNI host name " + host);
  if (SSL_get_verify_mode(s.ssl) != SSL_VERIFY_NONE && SSL_set1_host(s.ssl, host.c_str()) != 1)
    config_error("host name check " + host);
  if (s.ctx->resume) {
    s.session_key = host + "|" + peer_address(s.fd);
    std::lock_guard<std::mutex> g(s.ctx->mu);
    auto it = s.ctx->sessions.find(s.session_key);
    if (it != s.ctx->sessions.end()) SSL_set_session(s.ssl, it->second);  // takes its own reference
  }
  begin_call(s, until);
  int r = SSL_connect(s.ssl);
  if (r != 1) {
    auto ec = fail(s, r, "handshake", false);
    throw_last(s, ec, s.broken_verify);
  }
}

void stream::accept(deadline until) {
  impl& s = *p_;
  if (!s.server) throw std::logic_error("greenring::tls::stream::accept on a client context");
  if (s.broken) throw_last(s, s.broken, s.broken_verify);
  begin_call(s, until);
  int r = SSL_accept(s.ssl);
  if (r != 1) {
    auto ec = fail(s, r, "handshake", false);
    throw_last(s, ec, s.broken_verify);
  }
}

std::size_t stream::read(void* buf, std::size_t n, std::error_code& ec, deadline until) {
  impl& s = *p_;
  ec.clear();
  if (s.broken) {
    ec = s.broken;
    return 0;
  }
  if (n == 0) return 0;
  begin_call(s, until);
  std::size_t got = 0;
  int r = SSL_read_ex(s.ssl, buf, n, &got);
  if (r == 1) return got;
  if (SSL_get_error(s.ssl, r) == SSL_ERROR_ZERO_RETURN) {
    ERR_clear_error();
    return 0;  // close_notify: clean end of stream
  }
  ec = fail(s, r, "read", true);
  return 0;
}

std::size_t stream::read(void* buf, std::size_t n, deadline until) {
  std::error_code ec;
  std::size_t got = read(buf, n, ec, until);
  if (ec) throw_last(*p_, ec, p_->broken_verify);
  return got;
}

std::size_t stream::write(const void* buf, std::size_t n, std::error_code& ec, deadline until) {
  impl& s = *p_;
  ec.clear();
  if (s.broken) {
    ec = s.broken;
    return 0;
  }
  const char* p = static_cast<const char*>(buf);
  std::size_t total = 0;
  while (total < n) {
    begin_call(s, until);
    std::size_t w = 0;
    int r = SSL_write_ex(s.ssl, p + total, n - total, &w);
    if (r != 1) {
      ec = fail(s, r, "write", false);
      return total;
    }
    total += w;
  }
  return total;
}

std::size_t stream::write(const void* buf, std::size_t n, deadline until) {
  std::error_code ec;
  std::size_t w = write(buf, n, ec, until);
  if (ec && w == 0) throw_last(*p_, ec, p_->broken_verify);
  return w;  // a partial count: the stream is broken and the next call reports why
}

void stream::shutdown(deadline until) {
  impl& s = *p_;
  if (s.broken) return;  // nothing sensible can be sent on a failed connection
  begin_call(s, until);
  int r = SSL_shutdown(s.ssl);
  if (r < 0) {
    auto ec = fail(s, r, "shutdown", false);
    throw_last(s, ec, s.broken_verify);
  }
}

std::string stream::alpn() const {
  const unsigned char* d = nullptr;
  unsigned len = 0;
  SSL_get0_alpn_selected(p_->ssl, &d, &len);
  return d ? std::string(reinterpret_cast<const char*>(d), len) : std::string();
}

bool stream::session_reused() const { return SSL_session_reused(p_->ssl) == 1; }

std::string stream::peer_certificate_subject() const {
  X509* cert = SSL_get0_peer_certificate(p_->ssl);
  if (!cert) return {};
  BIO* mem = BIO_new(BIO_s_mem());
  if (!mem) return {};
  X509_NAME_print_ex(mem, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253);
  char* data = nullptr;
  long len = BIO_get_mem_data(mem, &data);
  std::string out(data, static_cast<std::size_t>(len > 0 ? len : 0));
  BIO_free(mem);
  return out;
}

std::string stream::protocol_version() const { return SSL_get_version(p_->ssl); }
const std::string& stream::last_error() const noexcept { return p_->last_error; }
int stream::fd() const noexcept { return p_->fd; }
ssl_st* stream::native_handle() const noexcept { return p_->ssl; }

}  // namespace greenring::tls
