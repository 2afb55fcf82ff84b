// dns/api.cpp: the linked C++ face of the resolver (greenring/dns.hpp):
// values instead of malloc'd lists, dns::error instead of return codes, and a
// deadline. Same engine as libc_compat, so both give the same answers.
#include "dns/lookup.hpp"

#include <netdb.h>

#include <cstring>

namespace greenring::dns {
namespace {

class eai_category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "greenring.dns"; }
  std::string message(int ev) const override { return ::gai_strerror(ev); }
};

}  // namespace

const std::error_category& category() noexcept {
  static const eai_category c;
  return c;
}

error::error(int eai, int sys_errno)
    : std::system_error(make_error_code_eai(eai), "greenring: name resolution failed"), errno_(sys_errno) {}

std::vector<entry> resolve(std::string_view host, std::string_view service, const hints& h, deadline until) {
  std::string hs(host), ss(service);
  addrinfo req{};
  req.ai_flags = h.flags;
  req.ai_family = h.family;
  req.ai_socktype = h.socktype;
  req.ai_protocol = h.protocol;
  const char* node = host.empty() ? nullptr : hs.c_str();
  const char* serv = service.empty() ? nullptr : ss.c_str();
  std::vector<entry> out;
  int rc = detail::dns::use_glibc() ? detail::dns::kNeedsGlibc
                                    : detail::dns::getaddrinfo(node, serv, &req, until, out);
  if (rc == detail::dns::kNeedsGlibc) {
    addrinfo* res = nullptr;
    rc = libc_compat::getaddrinfo(node, serv, &req, &res);
    if (rc == 0) {
      for (addrinfo* ai = res; ai; ai = ai->ai_next) {
        entry e;
        e.family = ai->ai_family;
        e.socktype = ai->ai_socktype;
        e.protocol = ai->ai_protocol;
        e.addrlen = std::min<socklen_t>(ai->ai_addrlen, sizeof e.addr);
        std::memcpy(&e.addr, ai->ai_addr, e.addrlen);
        if (ai->ai_canonname) e.canonname = ai->ai_canonname;
        out.push_back(std::move(e));
      }
      detail::dns::glibc().freeaddrinfo(res);
    }
  }
  if (rc != 0) throw error(rc, rc == EAI_SYSTEM ? errno : 0);
  return out;
}

name_info reverse(const sockaddr* sa, socklen_t salen, int flags, deadline until) {
  char host[NI_MAXHOST];
  char serv[NI_MAXSERV];
  int rc = detail::dns::use_glibc()
               ? libc_compat::getnameinfo(sa, salen, host, sizeof host, serv, sizeof serv, flags)
               : detail::dns::getnameinfo(sa, salen, host, sizeof host, serv, sizeof serv, flags, until);
  if (rc != 0) throw error(rc, rc == EAI_SYSTEM ? errno : 0);
  return {host, serv};
}

}  // namespace greenring::dns
