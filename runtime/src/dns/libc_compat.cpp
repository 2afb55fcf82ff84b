// dns/libc_compat.cpp: glibc's resolver entry points with glibc's exact
// signatures and results, for the LD_PRELOAD shim to forward green callers to.
//
// Memory contracts owed to glibc's own freeing functions:
//   - getaddrinfo: each node is ONE malloc block, the addrinfo followed by its
//     sockaddr (glibc's freeaddrinfo does free(ai->ai_canonname); free(ai));
//     ai_canonname is a separate malloc'd string, on the first node only.
//   - the _r functions: everything lives in the caller's buffer (addresses,
//     then the pointer arrays, then the strings); too small: ERANGE with
//     h_errno NETDB_INTERNAL, as nss_files/nss_dns report it.
// When must_fall_back() the same calls go to glibc on a helper thread
// (fallback.cpp); the helper writes only into buffers it owns, which are
// copied out after the wait, so a caller cancelled mid-call is never written to.
#include "dns/lookup.hpp"

#include <arpa/inet.h>

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>

namespace greenring::dns::libc_compat {
namespace {

using namespace greenring::detail::dns;
using greenring::detail::time_point;

void free_list(addrinfo* ai) {
  while (ai) {
    addrinfo* next = ai->ai_next;
    std::free(ai->ai_canonname);
    std::free(ai);
    ai = next;
  }
}

int to_addrinfo(const std::vector<entry>& v, addrinfo** res) {
  addrinfo* head = nullptr;
  addrinfo** tail = &head;
  for (const auto& e : v) {
    auto* ai = static_cast<addrinfo*>(std::malloc(sizeof(addrinfo) + e.addrlen));
    if (!ai) {
      free_list(head);
      return EAI_MEMORY;
    }
    std::memset(ai, 0, sizeof *ai);
    ai->ai_family = e.family;
    ai->ai_socktype = e.socktype;
    ai->ai_protocol = e.protocol;
    ai->ai_addrlen = e.addrlen;
    ai->ai_addr = reinterpret_cast<sockaddr*>(ai + 1);
    std::memcpy(ai->ai_addr, &e.addr, e.addrlen);
    if (!e.canonname.empty()) {
      ai->ai_canonname = strdup(e.canonname.c_str());
      if (!ai->ai_canonname) {
        std::free(ai);
        free_list(head);
        return EAI_MEMORY;
      }
    }
    *tail = ai;
    tail = &ai->ai_next;
  }
  *res = head;
  return 0;
}

// glibc's getaddrinfo on a helper thread; the result list is glibc's own.
int glibc_getaddrinfo(const char* node, const char* service, const addrinfo* hints, addrinfo** res) {
  struct state {
    std::string node, service;
    bool has_node, has_service, has_hints;
    addrinfo hints{};
    addrinfo* res = nullptr;
    int rc = EAI_SYSTEM;
    int err = 0;
    ~state() {
      if (res) glibc().freeaddrinfo(res);
    }
  };
  auto s = std::make_shared<state>();
  s->has_node = node != nullptr;
  s->has_service = service != nullptr;
  s->has_hints = hints != nullptr;
  if (node) s->node = node;
  if (service) s->service = service;
  if (hints) {
    s->hints.ai_flags = hints->ai_flags;
    s->hints.ai_family = hints->ai_family;
    s->hints.ai_socktype = hints->ai_socktype;
    s->hints.ai_protocol = hints->ai_protocol;
  }
  run_on_helper([s] {
    s->rc = glibc().getaddrinfo(s->has_node ? s->node.c_str() : nullptr,
                                s->has_service ? s->service.c_str() : nullptr, s->has_hints ? &s->hints : nullptr,
                                &s->res);
    s->err = errno;
  });
  if (s->rc == 0) *res = std::exchange(s->res, nullptr);
  if (s->rc == EAI_SYSTEM) errno = s->err;
  return s->rc;
}

// ---- hostent packing ----

struct host_data {
  std::string name;
  std::vector<std::string> aliases;
  int family = AF_INET;
  std::vector<address> addrs;
};

// Lays h out in buf. Returns 0 or ERANGE.
int pack(const host_data& h, hostent* ret, char* buf, std::size_t buflen) {
  std::size_t alen = h.family == AF_INET ? 4 : 16;
  auto base = reinterpret_cast<std::uintptr_t>(buf);
  std::size_t pad = (alignof(char*) - base % alignof(char*)) % alignof(char*);
  std::size_t need = pad + (h.addrs.size() + 1) * sizeof(char*) + (h.aliases.size() + 1) * sizeof(char*) +
                     h.addrs.size() * alen + h.name.size() + 1;
  for (auto& a : h.aliases) need += a.size() + 1;
  if (buflen < need) return ERANGE;
  char** addr_list = reinterpret_cast<char**>(buf + pad);
  char** alias_list = addr_list + h.addrs.size() + 1;
  char* p = reinterpret_cast<char*>(alias_list + h.aliases.size() + 1);
  for (std::size_t i = 0; i < h.addrs.size(); ++i) {
    std::memcpy(p, h.addrs[i].bytes, alen);
    addr_list[i] = p;
    p += alen;
  }
  addr_list[h.addrs.size()] = nullptr;
  ret->h_name = p;
  std::memcpy(p, h.name.c_str(), h.name.size() + 1);
  p += h.name.size() + 1;
  for (std::size_t i = 0; i < h.aliases.size(); ++i) {
    alias_list[i] = p;
    std::memcpy(p, h.aliases[i].c_str(), h.aliases[i].size() + 1);
    p += h.aliases[i].size() + 1;
  }
  alias_list[h.aliases.size()] = nullptr;
  ret->h_aliases = alias_list;
  ret->h_addrtype = h.family;
  ret->h_length = static_cast<int>(alen);
  ret->h_addr_list = addr_list;
  return 0;
}

host_data unpack(const hostent& h) {
  host_data d;
  d.name = h.h_name ? h.h_name : "";
  for (char** a = h.h_aliases; a && *a; ++a) d.aliases.emplace_back(*a);
  d.family = h.h_addrtype;
  for (char** a = h.h_addr_list; a && *a; ++a) {
    address x;
    x.family = h.h_addrtype;
    std::memcpy(x.bytes, *a, h.h_addrtype == AF_INET ? 4 : 16);
    d.addrs.push_back(x);
  }
  return d;
}

// Shared tail of the _r functions: 0 with *result on success; else glibc's
// (return value, h_errno, errno) for not found / try again / too small.
int finish_r(int herr, const host_data* d, hostent* ret, char* buf, std::size_t buflen, hostent** result,
             int* h_errnop) {
  *result = nullptr;
  if (herr == NETDB_SUCCESS) {
    if (pack(*d, ret, buf, buflen) != 0) {
      *h_errnop = NETDB_INTERNAL;
      errno = ERANGE;
      return ERANGE;
    }
    *result = ret;
    *h_errnop = NETDB_SUCCESS;
    return 0;
  }
  *h_errnop = herr;
  if (herr == TRY_AGAIN) {
    errno = EAGAIN;
    return EAGAIN;
  }
  return 0;  // HOST_NOT_FOUND / NO_DATA: success of the call, no result
}

// glibc's helper-thread variant for the _r family: it fills a private buffer
// of the caller's size, which is repacked into the caller's afterwards.
template <class Call>
int glibc_r(Call call, hostent* ret, char* buf, size_t buflen, hostent** result, int* h_errnop) {
  struct state {
    std::vector<char> buf;
    hostent h{};
    hostent* res = nullptr;
    int herr = 0;
    int rc = 0;
    int err = 0;
    host_data data;
  };
  auto s = std::make_shared<state>();
  s->buf.resize(buflen ? buflen : 1);
  run_on_helper([s, call] {
    s->rc = call(&s->h, s->buf.data(), s->buf.size(), &s->res, &s->herr);
    s->err = errno;
    if (s->rc == 0 && s->res) s->data = unpack(s->h);
  });
  *h_errnop = s->herr;
  *result = nullptr;
  if (s->rc != 0 || !s->res) {
    errno = s->err;
    return s->rc;
  }
  return finish_r(NETDB_SUCCESS, &s->data, ret, buf, buflen, result, h_errnop);
}

// glibc's __nss_hostname_digits_dots for the _r functions: numeric names are
// answered without any source. Returns true when it answered (herr set).
bool digits_dots(const char* name, int af, host_data& d, int& herr) {
  // Made only of `ok` characters and not ending in '.': numeric, answered
  // here whether or not it parses (HOST_NOT_FOUND), as glibc does.
  auto numeric = [name](auto ok) {
    const char* cp = name;
    while (*cp && ok(static_cast<unsigned char>(*cp))) ++cp;
    return *cp == '\0' && cp[-1] != '.';
  };
  auto answer = [&](int family) {
    address x;
    x.family = family;
    bool parsed = false;
    if (af == family && family == AF_INET) {
      in_addr a{};
      parsed = inet_aton(name, &a) != 0;
      std::memcpy(x.bytes, &a, 4);
    } else if (af == family) {
      in6_addr a{};
      parsed = inet_pton(AF_INET6, name, &a) > 0;
      std::memcpy(x.bytes, &a, 16);
    }
    herr = parsed ? NETDB_SUCCESS : HOST_NOT_FOUND;
    if (parsed) {
      d.name = name;
      d.family = family;
      d.addrs.push_back(x);
    }
    return true;
  };
  auto c0 = static_cast<unsigned char>(name[0]);
  if (std::isdigit(c0) && numeric([](unsigned char c) { return std::isdigit(c) || c == '.'; }))
    return answer(AF_INET);
  if ((std::isxdigit(c0) || c0 == ':') && std::strchr(name, ':') &&
      numeric([](unsigned char c) { return std::isxdigit(c) || c == ':' || c == '.'; }))
    return answer(AF_INET6);
  return false;
}

int byname(const char* name, int af, hostent* ret, char* buf, size_t buflen, hostent** result, int* h_errnop) {
  if (af != AF_INET && af != AF_INET6) {
    *result = nullptr;
    *h_errnop = NETDB_INTERNAL;
    errno = EAFNOSUPPORT;
    return EAFNOSUPPORT;
  }
  host_data d;
  int herr;
  if (!digits_dots(name, af, d, herr)) {
    host_answer ans;
    herr = lookup_name(name, af, af, time_point::max(), ans);
    if (herr == NETDB_SUCCESS) {
      d.name = ans.canon.empty() ? name : ans.canon;
      d.aliases = ans.aliases;
      d.family = af;
      for (auto& a : ans.addrs)
        if (a.family == af) d.addrs.push_back(a);
      if (d.addrs.empty()) herr = NO_DATA;
    }
  }
  return finish_r(herr, &d, ret, buf, buflen, result, h_errnop);
}

}  // namespace

bool must_fall_back() noexcept { return use_glibc(); }

int getaddrinfo(const char* node, const char* service, const addrinfo* hints, addrinfo** res) {
  if (use_glibc()) return glibc_getaddrinfo(node, service, hints, res);
  std::vector<entry> v;
  int rc = detail::dns::getaddrinfo(node, service, hints, time_point::max(), v);
  if (rc == kNeedsGlibc) return glibc_getaddrinfo(node, service, hints, res);
  if (rc != 0) return rc;
  return to_addrinfo(v, res);
}

int getnameinfo(const sockaddr* sa, socklen_t salen, char* host, socklen_t hostlen, char* serv, socklen_t servlen,
                int flags) {
  if (!use_glibc()) return detail::dns::getnameinfo(sa, salen, host, hostlen, serv, servlen, flags, time_point::max());
  struct state {
    sockaddr_storage sa{};
    socklen_t salen;
    std::vector<char> host, serv;
    bool want_host, want_serv;
    int flags;
    int rc = EAI_SYSTEM;
    int err = 0;
  };
  auto s = std::make_shared<state>();
  s->salen = std::min<socklen_t>(salen, sizeof s->sa);
  if (sa) std::memcpy(&s->sa, sa, s->salen);
  s->want_host = host != nullptr;
  s->want_serv = serv != nullptr;
  s->host.resize(hostlen + 1);
  s->serv.resize(servlen + 1);
  s->flags = flags;
  bool null_sa = sa == nullptr;
  run_on_helper([s, null_sa, hostlen, servlen] {
    s->rc = glibc().getnameinfo(null_sa ? nullptr : reinterpret_cast<sockaddr*>(&s->sa), s->salen,
                                s->want_host ? s->host.data() : nullptr, hostlen,
                                s->want_serv ? s->serv.data() : nullptr, servlen, s->flags);
    s->err = errno;
  });
  if (s->rc == 0) {
    if (host && hostlen) std::memcpy(host, s->host.data(), hostlen);
    if (serv && servlen) std::memcpy(serv, s->serv.data(), servlen);
  } else if (s->rc == EAI_SYSTEM) {
    errno = s->err;
  }
  return s->rc;
}

int gethostbyname_r(const char* name, hostent* ret, char* buf, size_t buflen, hostent** result, int* h_errnop) {
  if (use_glibc()) {
    std::string n = name;
    return glibc_r([n](hostent* h, char* b, size_t l, hostent** r, int* e) {
      return glibc().gethostbyname_r(n.c_str(), h, b, l, r, e);
    }, ret, buf, buflen, result, h_errnop);
  }
  return byname(name, AF_INET, ret, buf, buflen, result, h_errnop);
}

int gethostbyname2_r(const char* name, int af, hostent* ret, char* buf, size_t buflen, hostent** result,
                     int* h_errnop) {
  if (use_glibc()) {
    std::string n = name;
    return glibc_r([n, af](hostent* h, char* b, size_t l, hostent** r, int* e) {
      return glibc().gethostbyname2_r(n.c_str(), af, h, b, l, r, e);
    }, ret, buf, buflen, result, h_errnop);
  }
  return byname(name, af, ret, buf, buflen, result, h_errnop);
}

int gethostbyaddr_r(const void* addr, socklen_t len, int type, hostent* ret, char* buf, size_t buflen,
                    hostent** result, int* h_errnop) {
  if (use_glibc()) {
    std::string a(static_cast<const char*>(addr), len);
    return glibc_r([a, type](hostent* h, char* b, size_t l, hostent** r, int* e) {
      return glibc().gethostbyaddr_r(a.data(), static_cast<socklen_t>(a.size()), type, h, b, l, r, e);
    }, ret, buf, buflen, result, h_errnop);
  }
  *result = nullptr;
  // glibc: the unspecified address is never looked up.
  if (len == sizeof(in6_addr) && std::memcmp(addr, &in6addr_any, sizeof(in6_addr)) == 0) {
    *h_errnop = HOST_NOT_FOUND;
    errno = ENOENT;
    return ENOENT;
  }
  if ((type != AF_INET && type != AF_INET6) || len != (type == AF_INET ? 4u : 16u)) {
    *h_errnop = NETDB_INTERNAL;
    errno = EAFNOSUPPORT;
    return EAFNOSUPPORT;
  }
  address a;
  a.family = type;
  std::memcpy(a.bytes, addr, len);
  host_answer ans;
  int herr = lookup_addr(a, time_point::max(), ans);
  host_data d;
  if (herr == NETDB_SUCCESS) {
    d.name = ans.canon;
    d.aliases = ans.aliases;
    d.family = type;
    d.addrs.push_back(a);
  }
  return finish_r(herr, &d, ret, buf, buflen, result, h_errnop);
}

}  // namespace greenring::dns::libc_compat
