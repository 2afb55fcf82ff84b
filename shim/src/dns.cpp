// shim/src/dns.cpp: name resolution.
//
// Symbols owned here:
//   getaddrinfo getnameinfo gethostbyname gethostbyname2 gethostbyname_r
//   gethostbyname2_r gethostbyaddr gethostbyaddr_r
//
// glibc's resolver opens its sockets and waits inside libc, where no
// interposition reaches: a green thread calling it would hold its worker for
// the whole lookup. On green threads these go to greenring::dns (c-ares on the
// worker's loop, /etc/hosts and nsswitch rules as glibc's; glibc itself on a
// helper thread when nsswitch.conf names sources c-ares cannot serve):
// docs/dns.md lists every difference. Results keep glibc's layout, so glibc's
// freeaddrinfo and gai_strerror (not intercepted) serve them unchanged.
// gethostbyname/gethostbyname2/gethostbyaddr return one process-wide static
// result, as glibc's do (not thread-safe by specification either).
#include "shim.hpp"

#include <greenring/dns.hpp>

#include <netdb.h>

#include <cstdlib>
#include <mutex>

namespace greenring::shim {
namespace {

struct static_host {
  hostent h{};
  char* buf = nullptr;
  std::size_t len = 0;
};
static_host g_host;
std::mutex g_host_lk;

// Runs a *_r function into the growing process-wide buffer, as glibc does.
template <class Call>
hostent* into_static(Call call) {
  std::lock_guard<std::mutex> g(g_host_lk);
  if (!g_host.buf) {
    g_host.len = 1024;
    g_host.buf = static_cast<char*>(std::malloc(g_host.len));
    if (!g_host.buf) return h_errno = NETDB_INTERNAL, errno = ENOMEM, nullptr;
  }
  for (;;) {
    hostent* result = nullptr;
    int herr = 0;
    int r = call(&g_host.h, g_host.buf, g_host.len, &result, &herr);
    if (r == ERANGE && g_host.len < (std::size_t(1) << 20)) {
      char* nb = static_cast<char*>(std::realloc(g_host.buf, g_host.len * 2));
      if (!nb) return h_errno = NETDB_INTERNAL, errno = ENOMEM, nullptr;
      g_host.buf = nb;
      g_host.len *= 2;
      continue;
    }
    if (!result) h_errno = herr;
    return result;
  }
}

}  // namespace
}  // namespace greenring::shim

using namespace greenring::shim;
namespace compat = greenring::dns::libc_compat;

GR_EXPORT int getaddrinfo(const char* node, const char* service, const addrinfo* hints, addrinfo** res) {
  if (!green()) return GR_REAL(getaddrinfo)(node, service, hints, res);
  return compat::getaddrinfo(node, service, hints, res);
}

GR_EXPORT int getnameinfo(const sockaddr* sa, socklen_t salen, char* host, socklen_t hostlen, char* serv,
                          socklen_t servlen, int flags) {
  if (!green()) return GR_REAL(getnameinfo)(sa, salen, host, hostlen, serv, servlen, flags);
  return compat::getnameinfo(sa, salen, host, hostlen, serv, servlen, flags);
}

GR_EXPORT int gethostbyname_r(const char* name, hostent* ret, char* buf, size_t buflen, hostent** result,
                              int* h_errnop) {
  if (!green()) return GR_REAL(gethostbyname_r)(name, ret, buf, buflen, result, h_errnop);
  return compat::gethostbyname_r(name, ret, buf, buflen, result, h_errnop);
}

GR_EXPORT int gethostbyname2_r(const char* name, int af, hostent* ret, char* buf, size_t buflen, hostent** result,
                               int* h_errnop) {
  if (!green()) return GR_REAL(gethostbyname2_r)(name, af, ret, buf, buflen, result, h_errnop);
  return compat::gethostbyname2_r(name, af, ret, buf, buflen, result, h_errnop);
}

GR_EXPORT int gethostbyaddr_r(const void* addr, socklen_t len, int type, hostent* ret, char* buf, size_t buflen,
                              hostent** result, int* h_errnop) {
  if (!green()) return GR_REAL(gethostbyaddr_r)(addr, len, type, ret, buf, buflen, result, h_errnop);
  return compat::gethostbyaddr_r(addr, len, type, ret, buf, buflen, result, h_errnop);
}

GR_EXPORT hostent* gethostbyname(const char* name) {
  if (!green()) return GR_REAL(gethostbyname)(name);
  return into_static([&](hostent* h, char* b, size_t l, hostent** r, int* e) {
    return compat::gethostbyname_r(name, h, b, l, r, e);
  });
}

GR_EXPORT hostent* gethostbyname2(const char* name, int af) {
  if (!green()) return GR_REAL(gethostbyname2)(name, af);
  return into_static([&](hostent* h, char* b, size_t l, hostent** r, int* e) {
    return compat::gethostbyname2_r(name, af, h, b, l, r, e);
  });
}

GR_EXPORT hostent* gethostbyaddr(const void* addr, socklen_t len, int type) {
  if (!green()) return GR_REAL(gethostbyaddr)(addr, len, type);
  return into_static([&](hostent* h, char* b, size_t l, hostent** r, int* e) {
    return compat::gethostbyaddr_r(addr, len, type, h, b, l, r, e);
  });
}
