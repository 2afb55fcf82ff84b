// greenring/dns.hpp: name resolution that suspends the calling green thread,
// not its worker. DNS goes through c-ares (one channel per worker, its sockets
// waited on by the worker's driver); /etc/hosts and numeric names are served
// in-process. docs/dns.md lists every difference from glibc.
//
// Two faces:
//   - the linked API (resolve, reverse): C++ values, errors as dns::error;
//   - libc_compat: exactly glibc's signatures and results, for the LD_PRELOAD
//     shim to forward green callers to.
//
// Callers: from a green thread a lookup parks that green thread only. From a
// plain OS thread it uses that thread's own c-ares channel (kept per thread)
// and blocks the thread in ppoll (raw syscalls); glibc is never called on that path (except
// when must_fall_back() says so, see below), so results do not depend on who
// asks.
#pragma once

#include <greenring/cancel.hpp>

#include <netdb.h>
#include <sys/socket.h>

#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace greenring::dns {

// The error category of getaddrinfo-style failures. Values are glibc's EAI_*
// codes exactly as <netdb.h> defines them (negative: EAI_NONAME is -2);
// message() is gai_strerror(). EAI_SYSTEM carries no errno of its own: see
// error::sys_errno().
const std::error_category& category() noexcept;
inline std::error_code make_error_code_eai(int eai) noexcept { return {eai, category()}; }

// Thrown by resolve() and reverse(). code().value() is the EAI_* code.
class error : public std::system_error {
 public:
  explicit error(int eai, int sys_errno = 0);
  int eai() const noexcept { return code().value(); }
  int sys_errno() const noexcept { return errno_; }  // with EAI_SYSTEM

 private:
  int errno_;
};

// getaddrinfo's hints: flags AI_*; family AF_UNSPEC/AF_INET/AF_INET6.
struct hints {
  int flags = 0;
  int family = AF_UNSPEC;
  int socktype = 0;
  int protocol = 0;
};

// One result, as one struct addrinfo node would carry it. canonname is set on
// the first entry only, and only with AI_CANONNAME (glibc does the same).
struct entry {
  int family = 0;
  int socktype = 0;
  int protocol = 0;
  sockaddr_storage addr{};
  socklen_t addrlen = 0;
  std::string canonname;
};

// getaddrinfo. host or service may be empty (not both), which means NULL.
// Order: glibc's (RFC 6724 rules 1, 2, 5, 6, 8, 10 with glibc's default
// tables; see docs/dns.md). Throws dns::error; when `until` passes first it
// throws dns::error(EAI_AGAIN) — the same code glibc gives for a resolver
// timeout. Cancellation point: greenring::cancelled if the green thread is
// cancelled while waiting (the c-ares query is abandoned: its answer, if it
// ever comes, is dropped).
std::vector<entry> resolve(std::string_view host, std::string_view service, const hints& h = {},
                           deadline until = no_deadline);

// getnameinfo. flags NI_*. Throws dns::error (EAI_NONAME with NI_NAMEREQD and
// no name, EAI_FAMILY, EAI_BADFLAGS, EAI_AGAIN); cancellation as resolve().
struct name_info {
  std::string host;
  std::string service;
};
name_info reverse(const sockaddr* sa, socklen_t salen, int flags = 0, deadline until = no_deadline);

namespace libc_compat {

// glibc's signatures, return codes and out-parameters. The addrinfo lists are
// freeable by glibc's own freeaddrinfo (each node is one malloc block holding
// the addrinfo and its sockaddr; ai_canonname is malloc'd separately).
// Cancellation of a green caller: greenring::cancelled propagates (the shim
// decides what a C caller sees).
int getaddrinfo(const char* node, const char* service, const struct addrinfo* hints, struct addrinfo** res);
int getnameinfo(const struct sockaddr* sa, socklen_t salen, char* host, socklen_t hostlen, char* serv,
                socklen_t servlen, int flags);
int gethostbyname_r(const char* name, struct hostent* ret, char* buf, size_t buflen, struct hostent** result,
                    int* h_errnop);
int gethostbyname2_r(const char* name, int af, struct hostent* ret, char* buf, size_t buflen,
                     struct hostent** result, int* h_errnop);
int gethostbyaddr_r(const void* addr, socklen_t len, int type, struct hostent* ret, char* buf, size_t buflen,
                    struct hostent** result, int* h_errnop);

// True when /etc/nsswitch.conf's hosts: line names a source other than
// `files` and `dns` (mdns4_minimal, myhostname, resolve, ldap, ...), or when
// GREENRING_DNS_FORCE_FALLBACK=1. Then the functions above run glibc's own
// function (found with dlsym(RTLD_NEXT, ...), so never an interposer) on a
// small pool of helper OS threads while the green caller parks.
// nsswitch.conf is read once per process; the variable at every call (tests
// flip it).
bool must_fall_back() noexcept;

}  // namespace libc_compat
}  // namespace greenring::dns
