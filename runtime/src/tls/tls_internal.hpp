// tls/tls_internal.hpp: the state shared by the TLS context/stream code
// (tls.cpp) and the green BIO with its error-queue hand-off (bio.cpp).
#pragma once

#include <greenring/tls.hpp>

#include <openssl/ssl.h>

#include <exception>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace greenring::tls {

struct context::impl {
  SSL_CTX* ctx = nullptr;
  role side = role::client;
  bool resume = true;
  std::vector<unsigned char> alpn_wire;  // server: accepted protocols, wire format

  // Client session cache: last resumable session per "host|peer address".
  // Touched from OpenSSL's new-session callback (inside SSL_connect/SSL_read)
  // and from connect(), on any worker; never held across a suspension.
  std::mutex mu;
  std::unordered_map<std::string, SSL_SESSION*> sessions;

  ~impl();
};

// One OpenSSL error-queue entry, taken out of the OS thread's queue while its
// green thread is suspended (see bio.cpp).
struct saved_error {
  // Copies: OpenSSL 3 duplicates file and function names into the queue
  // entry and frees them when the slot is reused, so the pointers
  // ERR_get_error_all hands out die with the entry.
  unsigned long code;
  std::string file;
  int line;
  std::string func;
  std::string data;  // ERR_TXT_STRING data
};

// Fields and who touches them: everything belongs to the one green thread that
// is using the stream; the BIO callbacks run on that green thread, inside its
// SSL_* call.
struct stream::impl {
  std::shared_ptr<context::impl> ctx;
  SSL* ssl = nullptr;
  int fd = -1;
  fd_ownership own = fd_ownership::borrowed;
  bool server = false;

  // Per SSL_* call, set before it by stream code, read and written by the BIO.
  deadline until = no_deadline;
  int io_errno = 0;            // errno of the transport failure the BIO reported
  std::exception_ptr pending;  // greenring::cancelled (or other) caught in the BIO
  std::vector<saved_error> stash;

  // Sticky failure: after a fatal error every call reports it again.
  std::error_code broken;
  long broken_verify = 0;
  std::string last_error;  // what() of the last failure
  std::string last_what;   // the same without the error_code's message
  std::string session_key;  // client: key into ctx->sessions

  ~impl();
};

// bio.cpp
BIO* new_green_bio(stream::impl* s);
// Starts an SSL_* call: clears the OS thread's error queue (stale entries from
// code that ran on this thread before) and resets the per-call BIO state.
void begin_call(stream::impl& s, deadline until) noexcept;

}  // namespace greenring::tls
