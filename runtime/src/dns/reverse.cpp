// dns/reverse.cpp: getnameinfo with glibc 2.36's semantics
// (inet/getnameinfo.c): flag and family checks in glibc's order, the host
// from the hosts: sources (files, then a c-ares PTR query), the service from
// /etc/services, EAI_OVERFLOW for short buffers, the IPv6 scope suffix.
// NI_NOFQDN strips the domain of gethostname() (glibc also asks the resolver
// for its own name when the hostname has no dot; see docs/dns.md).
#include "dns/lookup.hpp"

#include <arpa/inet.h>
#include <net/if.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

namespace greenring::detail::dns {
namespace {

int checked_copy(char* dst, socklen_t len, const char* src) {
  std::size_t n = std::strlen(src);
  if (n + 1 > len) return EAI_OVERFLOW;
  std::memcpy(dst, src, n + 1);
  return 0;
}

std::string own_domain() {
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0) return {};
  const char* dot = std::strchr(host, '.');
  return dot ? std::string(dot + 1) : std::string();
}

int host_inet(const sockaddr* sa, char* host, socklen_t hostlen, int flags, time_point until) {
  address a;
  a.family = sa->sa_family;
  const sockaddr_in6* s6 = nullptr;
  if (a.family == AF_INET6) {
    s6 = reinterpret_cast<const sockaddr_in6*>(sa);
    std::memcpy(a.bytes, &s6->sin6_addr, 16);
  } else {
    std::memcpy(a.bytes, &reinterpret_cast<const sockaddr_in*>(sa)->sin_addr, 4);
  }
  if (!(flags & NI_NUMERICHOST)) {
    host_answer ans;
    int herr = lookup_addr(a, until, ans);
    if (herr == TRY_AGAIN) return EAI_AGAIN;  // glibc: even without NI_NAMEREQD
    if (herr == NETDB_SUCCESS && !ans.canon.empty()) {
      std::string name = ans.canon;
      if (flags & NI_NOFQDN) {
        std::string dom = own_domain();
        auto pos = dom.empty() ? std::string::npos : name.find(dom);
        if (pos != std::string::npos && pos > 0 && name[pos - 1] == '.') name.resize(pos - 1);
      }
      return checked_copy(host, hostlen, name.c_str());
    }
    if (flags & NI_NAMEREQD) return EAI_NONAME;
  }
  char buf[INET6_ADDRSTRLEN + IF_NAMESIZE + 2];
  if (!inet_ntop(a.family, a.bytes, buf, sizeof buf)) return EAI_SYSTEM;
  if (s6 && s6->sin6_scope_id != 0) {
    char scope[IF_NAMESIZE + 12];
    char ifname[IF_NAMESIZE];
    const in6_addr& v = s6->sin6_addr;
    if ((IN6_IS_ADDR_LINKLOCAL(&v) || IN6_IS_ADDR_MC_LINKLOCAL(&v)) &&
        if_indextoname(s6->sin6_scope_id, ifname))
      std::snprintf(scope, sizeof scope, "%%%s", ifname);
    else
      std::snprintf(scope, sizeof scope, "%%%u", s6->sin6_scope_id);
    std::strcat(buf, scope);
  }
  return checked_copy(host, hostlen, buf);
}

int serv_inet(int port, char* serv, socklen_t servlen, int flags) {
  if (!(flags & NI_NUMERICSERV)) {
    servent se{};
    servent* res = nullptr;
    char buf[1024];
    if (getservbyport_r(port, (flags & NI_DGRAM) ? "udp" : "tcp", &se, buf, sizeof buf, &res) == 0 && res)
      return checked_copy(serv, servlen, res->s_name);
  }
  char num[16];
  std::snprintf(num, sizeof num, "%d", ntohs(static_cast<std::uint16_t>(port)));
  return checked_copy(serv, servlen, num);
}

}  // namespace

int getnameinfo(const sockaddr* sa, socklen_t addrlen, char* host, socklen_t hostlen, char* serv,
                socklen_t servlen, int flags, time_point until) {
  if (flags & ~(NI_NUMERICHOST | NI_NUMERICSERV | NI_NOFQDN | NI_NAMEREQD | NI_DGRAM | NI_IDN | 0x40 |
                0x80 /* DEPRECATED_NI_IDN_* */))
    return EAI_BADFLAGS;
  if (!sa || addrlen < sizeof(sa_family_t)) return EAI_FAMILY;
  if ((flags & NI_NAMEREQD) && !host && !serv) return EAI_NONAME;
  switch (sa->sa_family) {
    case AF_LOCAL:
      if (addrlen < offsetof(sockaddr_un, sun_path)) return EAI_FAMILY;
      break;
    case AF_INET:
      if (addrlen < sizeof(sockaddr_in)) return EAI_FAMILY;
      break;
    case AF_INET6:
      if (addrlen < sizeof(sockaddr_in6)) return EAI_FAMILY;
      break;
    default: return EAI_FAMILY;
  }
  if (host && hostlen > 0) {
    int rc;
    if (sa->sa_family == AF_LOCAL) {
      utsname u{};
      rc = (!(flags & NI_NUMERICHOST) && uname(&u) == 0) ? checked_copy(host, hostlen, u.nodename)
                                                         : checked_copy(host, hostlen, "localhost");
    } else {
      rc = host_inet(sa, host, hostlen, flags, until);
    }
    if (rc) return rc;
  }
  if (serv && servlen > 0) {
    int rc;
    if (sa->sa_family == AF_LOCAL)
      rc = checked_copy(serv, servlen, reinterpret_cast<const sockaddr_un*>(sa)->sun_path);
    else
      rc = serv_inet(reinterpret_cast<const sockaddr_in*>(sa)->sin_port, serv, servlen, flags);
    if (rc) return rc;
  }
  return 0;
}

}  // namespace greenring::detail::dns
