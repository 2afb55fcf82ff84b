// dns/resolve.cpp: getaddrinfo with glibc 2.36's semantics, step for step
// (sysdeps/posix/getaddrinfo.c): the same checks in the same order, so the
// same bad input gets the same EAI_* code; the same socktype/protocol table;
// the same numeric-name parsing; the same AI_V4MAPPED/AI_ALL filtering; the
// same RFC 6724 destination sort with glibc's built-in tables.
//
// What it does not reproduce (docs/dns.md): /etc/gai.conf, sort rules 3, 4, 7
// and IPv4 rule 9 (they need netlink address flags and prefix lengths), and
// AI_IDN conversion of non-ASCII names (sent to glibc instead: kNeedsGlibc).
#include "dns/lookup.hpp"

#include "detail/sys.hpp"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <sys/syscall.h>

#include <algorithm>
#include <cctype>
#include <climits>
#include <cstring>

namespace greenring::detail::dns {
namespace {

// glibc's gaih_inet_typeproto, same order: it decides the order of results.
struct typeproto {
  int socktype;
  int protocol;
  bool protoany;   // GAI_PROTO_PROTOANY
  bool noservice;  // GAI_PROTO_NOSERVICE
  bool deflt;      // returned when the hints name neither socktype nor protocol
  const char* name;
};
constexpr typeproto kTypeProto[] = {
    {SOCK_STREAM, IPPROTO_TCP, false, false, true, "tcp"},
    {SOCK_DGRAM, IPPROTO_UDP, false, false, true, "udp"},
    {SOCK_DCCP, IPPROTO_DCCP, false, false, false, "dccp"},
    {SOCK_DGRAM, IPPROTO_UDPLITE, false, false, false, "udplite"},
    {SOCK_STREAM, IPPROTO_SCTP, false, false, false, "sctp"},
    {SOCK_SEQPACKET, IPPROTO_SCTP, false, false, false, "sctp"},
    {SOCK_RAW, 0, true, true, true, "raw"},
};

struct servtuple {
  int socktype;
  int protocol;
  int port;  // network order
};

struct service_arg {
  const char* name;
  int num;  // < 0: look `name` up
};

int serv_lookup(const char* name, const typeproto& tp, const addrinfo& req, std::vector<servtuple>& st) {
  servent se{};
  servent* res = nullptr;
  char buf[1024];
  if (getservbyname_r(name, tp.name, &se, buf, sizeof buf, &res) != 0 || res == nullptr) return EAI_SERVICE;
  st.push_back({tp.socktype, tp.protoany ? req.ai_protocol : tp.protocol, res->s_port});
  return 0;
}

// glibc's get_servtuples.
int servtuples(const service_arg* service, const addrinfo& req, std::vector<servtuple>& st) {
  const typeproto* tp = nullptr;
  if (req.ai_protocol || req.ai_socktype) {
    for (const auto& t : kTypeProto) {
      if ((req.ai_socktype != 0 && req.ai_socktype != t.socktype) ||
          (req.ai_protocol != 0 && !t.protoany && req.ai_protocol != t.protocol))
        continue;
      tp = &t;
      break;
    }
    if (!tp) return req.ai_socktype ? EAI_SOCKTYPE : EAI_SERVICE;
  }
  if (service && tp && tp->noservice) return EAI_SERVICE;
  if (!service || service->num >= 0) {
    int port = service ? htons(static_cast<std::uint16_t>(service->num)) : 0;
    if (tp) {
      st.push_back({tp->socktype, tp->protoany ? req.ai_protocol : tp->protocol, port});
      return 0;
    }
    for (const auto& t : kTypeProto)
      if (t.deflt) st.push_back({t.socktype, t.protocol, port});
    return 0;
  }
  if (tp) return serv_lookup(service->name, *tp, req, st);
  for (const auto& t : kTypeProto) {
    if (t.noservice) continue;
    int rc = serv_lookup(service->name, t, req, st);
    if (rc != 0 && rc != EAI_SERVICE) return rc;
  }
  return st.empty() ? EAI_SERVICE : 0;
}

// glibc's __check_pf as AI_ADDRCONFIG uses it: any IPv4 address but
// 127.0.0.1, any IPv6 address but ::1.
void check_pf(bool& v4, bool& v6) {
  v4 = v6 = false;
  ifaddrs* ifa = nullptr;
  if (getifaddrs(&ifa) != 0) {
    v4 = v6 = true;  // glibc assumes both when netlink fails
    return;
  }
  for (ifaddrs* i = ifa; i; i = i->ifa_next) {
    if (!i->ifa_addr) continue;
    if (i->ifa_addr->sa_family == AF_INET) {
      if (reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr.s_addr != htonl(INADDR_LOOPBACK)) v4 = true;
    } else if (i->ifa_addr->sa_family == AF_INET6) {
      if (!IN6_IS_ADDR_LOOPBACK(&reinterpret_cast<sockaddr_in6*>(i->ifa_addr)->sin6_addr)) v6 = true;
    }
  }
  freeifaddrs(ifa);
}

// inet_aton, but the whole string must be the address (glibc's __inet_aton_exact).
bool aton_exact(const char* s, in_addr* out) {
  for (const char* p = s; *p; ++p)
    if (std::isspace(static_cast<unsigned char>(*p))) return false;
  return inet_aton(s, out) != 0;
}

// glibc's __inet6_scopeid_pton.
bool scope_pton(const in6_addr& a, const char* scope, std::uint32_t& out) {
  if (IN6_IS_ADDR_LINKLOCAL(&a) || IN6_IS_ADDR_MC_NODELOCAL(&a) || IN6_IS_ADDR_MC_LINKLOCAL(&a)) {
    if (unsigned idx = if_nametoindex(scope)) {
      out = idx;
      return true;
    }
  }
  if (*scope) {
    char* end = nullptr;
    unsigned long long n = std::strtoull(scope, &end, 10);
    if (*end == '\0' && n <= UINT32_MAX) {
      out = static_cast<std::uint32_t>(n);
      return true;
    }
  }
  return false;
}

void map_v4(address& a) {
  unsigned char v4[4];
  std::memcpy(v4, a.bytes, 4);
  std::memset(a.bytes, 0, 16);
  a.bytes[10] = a.bytes[11] = 0xff;
  std::memcpy(a.bytes + 12, v4, 4);
  a.family = AF_INET6;
}

// glibc's text_to_binary_address. Returns 0 (parsed, `done`), an EAI code, or
// 0 with !done when the name is not numeric.
int numeric_name(const char* name, const addrinfo& req, address& a, bool& done) {
  done = false;
  in_addr v4{};
  if (aton_exact(name, &v4)) {
    std::memcpy(a.bytes, &v4, 4);
    if (req.ai_family == AF_UNSPEC || req.ai_family == AF_INET) a.family = AF_INET;
    else if (req.ai_family == AF_INET6 && (req.ai_flags & AI_V4MAPPED)) {
      a.family = AF_INET;
      map_v4(a);
    } else {
      return EAI_ADDRFAMILY;
    }
    done = true;
    return 0;
  }
  const char* pct = std::strchr(name, '%');
  std::string host = pct ? std::string(name, pct) : std::string(name);
  in6_addr v6{};
  if (inet_pton(AF_INET6, host.c_str(), &v6) > 0) {
    std::memcpy(a.bytes, &v6, 16);
    if (req.ai_family == AF_UNSPEC || req.ai_family == AF_INET6) a.family = AF_INET6;
    else if (req.ai_family == AF_INET && IN6_IS_ADDR_V4MAPPED(&v6)) {
      std::memmove(a.bytes, a.bytes + 12, 4);
      std::memset(a.bytes + 4, 0, 12);
      a.family = AF_INET;
    } else {
      return EAI_ADDRFAMILY;
    }
    if (pct && !scope_pton(v6, pct + 1, a.scope)) return EAI_NONAME;
    done = true;
    return 0;
  }
  if (req.ai_flags & AI_NUMERICHOST) return EAI_NONAME;
  return 0;
}

// ---- RFC 6724 order (glibc's rfc3484_sort with its default tables) -----------

struct prefix_entry {
  unsigned char prefix[16];
  unsigned bits;
  int val;
};
// glibc's default_labels / default_precedence, in glibc's (first-match) order.
const prefix_entry kLabels[] = {
    {{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, 128, 0},
    {{0x20, 0x02}, 16, 2},
    {{}, 96, 3},
    {{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff}, 96, 4},
    {{0xfe, 0xc0}, 10, 5},
    {{0xfc, 0x00}, 7, 6},
    {{0x20, 0x01, 0, 0}, 32, 7},
    {{}, 0, 1},
};
const prefix_entry kPrecedence[] = {
    {{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, 128, 50},
    {{0x20, 0x02}, 16, 30},
    {{}, 96, 20},
    {{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff}, 96, 10},
    {{}, 0, 40},
};

// The address as IPv6 bytes (IPv4 mapped), as glibc's match_prefix sees it.
void as_v6(const address& a, unsigned char out[16]) {
  if (a.family == AF_INET) {
    std::memset(out, 0, 16);
    out[10] = out[11] = 0xff;
    std::memcpy(out + 12, a.bytes, 4);
  } else {
    std::memcpy(out, a.bytes, 16);
  }
}

template <std::size_t N>
int match_prefix(const address& a, const prefix_entry (&list)[N]) {
  unsigned char v[16];
  as_v6(a, v);
  for (const auto& e : list) {
    unsigned bits = e.bits;
    std::size_t i = 0;
    while (bits >= 8 && e.prefix[i] == v[i]) {
      ++i;
      bits -= 8;
    }
    if (bits < 8) {
      unsigned mask = (0xff00u >> bits) & 0xffu;
      if (bits == 0 || (e.prefix[i] & mask) == (v[i] & mask)) return e.val;
    }
  }
  return list[N - 1].val;
}

// glibc's get_scope: IPv6 by address class, IPv4 by its small scope table.
int get_scope(const address& a) {
  if (a.family == AF_INET6) {
    in6_addr v;
    std::memcpy(&v, a.bytes, 16);
    if (IN6_IS_ADDR_MULTICAST(&v)) return a.bytes[1] & 0xf;
    if (IN6_IS_ADDR_LINKLOCAL(&v) || IN6_IS_ADDR_LOOPBACK(&v)) return 2;
    if (IN6_IS_ADDR_SITELOCAL(&v)) return 5;
    return 14;
  }
  if (a.bytes[0] == 169 && a.bytes[1] == 254) return 2;
  if (a.bytes[0] == 127) return 2;
  return 14;
}

struct sort_item {
  address dst;
  address src;
  bool got_src = false;
  std::size_t index = 0;
};

// The source address the kernel would pick: connect a UDP socket (raw
// syscalls: no interposer) and read it back, as glibc does.
bool source_for(const address& dst, address& src) {
  long fd = sys::raw(SYS_socket, dst.family, SOCK_DGRAM | SOCK_CLOEXEC, IPPROTO_IP);
  if (fd < 0) return false;
  sockaddr_storage ss{};
  socklen_t len;
  if (dst.family == AF_INET) {
    auto* s = reinterpret_cast<sockaddr_in*>(&ss);
    s->sin_family = AF_INET;
    std::memcpy(&s->sin_addr, dst.bytes, 4);
    len = sizeof *s;
  } else {
    auto* s = reinterpret_cast<sockaddr_in6*>(&ss);
    s->sin6_family = AF_INET6;
    std::memcpy(&s->sin6_addr, dst.bytes, 16);
    s->sin6_scope_id = dst.scope;
    len = sizeof *s;
  }
  bool ok = false;
  if (sys::connect(static_cast<int>(fd), reinterpret_cast<sockaddr*>(&ss), len) == 0) {
    sockaddr_storage got{};
    socklen_t gl = sizeof got;
    if (sys::raw(SYS_getsockname, fd, sys::L(&got), sys::L(&gl)) == 0) {
      src.family = got.ss_family;
      if (got.ss_family == AF_INET) std::memcpy(src.bytes, &reinterpret_cast<sockaddr_in*>(&got)->sin_addr, 4);
      else std::memcpy(src.bytes, &reinterpret_cast<sockaddr_in6*>(&got)->sin6_addr, 16);
      ok = true;
    }
  }
  sys::close(static_cast<int>(fd));
  return ok;
}

int highest_bit(std::uint32_t x) { return x ? 32 - __builtin_clz(x) : 0; }

// glibc's rfc3484_sort comparator (returns < 0 when a1 goes first).
int compare(const sort_item& a1, const sort_item& a2) {
  // Rule 1: avoid unusable destinations.
  if (a1.got_src != a2.got_src) return a1.got_src ? -1 : 1;
  int s1 = get_scope(a1.dst), s2 = get_scope(a2.dst);
  if (a1.got_src) {
    // Rule 2: prefer matching scope.
    bool m1 = s1 == get_scope(a1.src), m2 = s2 == get_scope(a2.src);
    if (m1 != m2) return m1 ? -1 : 1;
    // Rule 5: prefer matching label.
    bool l1 = match_prefix(a1.dst, kLabels) == match_prefix(a1.src, kLabels);
    bool l2 = match_prefix(a2.dst, kLabels) == match_prefix(a2.src, kLabels);
    if (l1 != l2) return l1 ? -1 : 1;
  }
  // Rule 6: prefer higher precedence.
  int p1 = match_prefix(a1.dst, kPrecedence), p2 = match_prefix(a2.dst, kPrecedence);
  if (p1 != p2) return p1 > p2 ? -1 : 1;
  // Rule 8: prefer smaller scope.
  if (s1 != s2) return s1 < s2 ? -1 : 1;
  // Rule 9 (IPv6 only here): longest matching prefix with the source.
  if (a1.got_src && a1.dst.family == AF_INET6 && a2.dst.family == AF_INET6 && a1.src.family == AF_INET6 &&
      a2.src.family == AF_INET6) {
    for (int i = 0; i < 4; ++i) {
      std::uint32_t d1, r1, d2, r2;
      std::memcpy(&d1, a1.dst.bytes + 4 * i, 4);
      std::memcpy(&r1, a1.src.bytes + 4 * i, 4);
      std::memcpy(&d2, a2.dst.bytes + 4 * i, 4);
      std::memcpy(&r2, a2.src.bytes + 4 * i, 4);
      if (d1 != r1 || d2 != r2) {
        int b1 = highest_bit(ntohl(d1 ^ r1)), b2 = highest_bit(ntohl(d2 ^ r2));
        if (b1 != b2) return b1 > b2 ? 1 : -1;
        break;
      }
    }
  }
  // Rule 10: keep the order.
  return a1.index < a2.index ? -1 : (a1.index > a2.index ? 1 : 0);
}

}  // namespace

void sort_addresses(std::vector<address>& v) {
  if (v.size() < 2) return;
  std::vector<sort_item> items(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) {
    items[i].dst = v[i];
    items[i].index = i;
    items[i].got_src = source_for(v[i], items[i].src);
  }
  std::stable_sort(items.begin(), items.end(),
                   [](const sort_item& a, const sort_item& b) { return compare(a, b) < 0; });
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = items[i].dst;
}

int getaddrinfo(const char* name, const char* service, const addrinfo* hints_in, time_point until,
                 std::vector<entry>& out) {
  out.clear();
  if (name && name[0] == '*' && name[1] == 0) name = nullptr;
  if (service && service[0] == '*' && service[1] == 0) service = nullptr;
  if (!name && !service) return EAI_NONAME;
  addrinfo req{};
  if (hints_in) {
    req.ai_flags = hints_in->ai_flags;
    req.ai_family = hints_in->ai_family;
    req.ai_socktype = hints_in->ai_socktype;
    req.ai_protocol = hints_in->ai_protocol;
  } else {
    req.ai_flags = AI_V4MAPPED | AI_ADDRCONFIG;  // glibc's default_hints
  }
  if (req.ai_flags & ~(AI_PASSIVE | AI_CANONNAME | AI_NUMERICHOST | AI_ADDRCONFIG | AI_V4MAPPED | AI_IDN |
                       AI_CANONIDN | 0x0100 /* DEPRECATED_AI_IDN */ | AI_NUMERICSERV | AI_ALL))
    return EAI_BADFLAGS;
  if ((req.ai_flags & AI_CANONNAME) && !name) return EAI_BADFLAGS;
  if (req.ai_family != AF_UNSPEC && req.ai_family != AF_INET && req.ai_family != AF_INET6) return EAI_FAMILY;

  if (req.ai_flags & AI_ADDRCONFIG) {
    bool v4, v6;
    check_pf(v4, v6);
    if (req.ai_family == AF_UNSPEC && (v4 || v6)) {
      if (v4 != v6) req.ai_family = v4 ? AF_INET : AF_INET6;
    } else if ((req.ai_family == AF_INET && !v4) || (req.ai_family == AF_INET6 && !v6)) {
      return EAI_NONAME;
    }
  }

  service_arg sarg{};
  const service_arg* psarg = nullptr;
  if (service && service[0]) {
    char* end = nullptr;
    sarg.name = service;
    sarg.num = static_cast<int>(std::strtoul(service, &end, 10));
    if (*end != '\0') {
      if (req.ai_flags & AI_NUMERICSERV) return EAI_NONAME;
      sarg.num = -1;
    }
    psarg = &sarg;
  }
  std::vector<servtuple> st;
  if (int rc = servtuples(psarg, req, st)) return rc;

  std::vector<address> addrs;
  std::string canon;
  if (!name) {
    // glibc: IPv6 first, then IPv4; the loopback or (AI_PASSIVE) the wildcard.
    if (req.ai_family == AF_UNSPEC || req.ai_family == AF_INET6) {
      address a;
      a.family = AF_INET6;
      if (!(req.ai_flags & AI_PASSIVE)) a.bytes[15] = 1;
      addrs.push_back(a);
    }
    if (req.ai_family == AF_UNSPEC || req.ai_family == AF_INET) {
      address a;
      a.family = AF_INET;
      if (!(req.ai_flags & AI_PASSIVE)) {
        std::uint32_t lo = htonl(INADDR_LOOPBACK);
        std::memcpy(a.bytes, &lo, 4);
      }
      addrs.push_back(a);
    }
  } else {
    if (req.ai_flags & AI_IDN)
      for (const char* p = name; *p; ++p)
        if (static_cast<unsigned char>(*p) >= 0x80) return kNeedsGlibc;
    address a;
    bool done = false;
    if (int rc = numeric_name(name, req, a, done)) return rc;
    if (done) {
      addrs.push_back(a);
      canon = name;
    } else {
      bool mapped = req.ai_family == AF_INET6 && (req.ai_flags & AI_V4MAPPED);
      int dns_family = mapped ? AF_UNSPEC : req.ai_family;
      host_answer ans;
      int herr = lookup_name(name, AF_UNSPEC, dns_family, until, ans);
      if (herr == TRY_AGAIN) return EAI_AGAIN;
      if (herr == NO_RECOVERY) return EAI_FAIL;
      if (herr != NETDB_SUCCESS) return herr == NO_DATA ? EAI_NODATA : EAI_NONAME;
      // glibc's filter after gethostbyname4_r: map IPv4 for AI_V4MAPPED, drop other families.
      bool got_v6 = false;
      for (auto& x : ans.addrs) {
        if (x.family == AF_INET && mapped) {
          map_v4(x);
          addrs.push_back(x);
        } else if (req.ai_family == AF_UNSPEC || x.family == req.ai_family) {
          got_v6 = got_v6 || (x.family == AF_INET6 && req.ai_family == AF_INET6);
          addrs.push_back(x);
        }
      }
      if (got_v6 && (req.ai_flags & (AI_V4MAPPED | AI_ALL)) == AI_V4MAPPED) {
        std::erase_if(addrs, [](const address& x) {
          in6_addr v;
          std::memcpy(&v, x.bytes, 16);
          return IN6_IS_ADDR_V4MAPPED(&v);
        });
      }
      if (addrs.empty()) return EAI_NODATA;
      canon = ans.canon.empty() ? name : ans.canon;
    }
  }

  sort_addresses(addrs);
  for (const auto& a : addrs) {
    for (const auto& t : st) {
      entry e;
      e.family = a.family;
      e.socktype = t.socktype;
      e.protocol = t.protocol;
      if (a.family == AF_INET) {
        auto* s = reinterpret_cast<sockaddr_in*>(&e.addr);
        s->sin_family = AF_INET;
        s->sin_port = static_cast<in_port_t>(t.port);
        std::memcpy(&s->sin_addr, a.bytes, 4);
        e.addrlen = sizeof *s;
      } else {
        auto* s = reinterpret_cast<sockaddr_in6*>(&e.addr);
        s->sin6_family = AF_INET6;
        s->sin6_port = static_cast<in_port_t>(t.port);
        std::memcpy(&s->sin6_addr, a.bytes, 16);
        s->sin6_scope_id = a.scope;
        e.addrlen = sizeof *s;
      }
      if (out.empty() && (req.ai_flags & AI_CANONNAME)) e.canonname = canon;
      out.push_back(std::move(e));
    }
  }
  return 0;
}

}  // namespace greenring::detail::dns
