// dns/lookup.hpp: the resolver's internal seams (internal).
//
//   hosts.cpp     /etc/hosts (glibc's nss_files rules), nsswitch.conf sources
//   source.cpp    one name through the hosts: sources in order (files, dns)
//   resolve.cpp   getaddrinfo: hints, services, numeric names, RFC 6724 order
//   reverse.cpp   getnameinfo, gethostbyaddr
//   fallback.cpp  glibc's own functions on helper OS threads
//   libc_compat.cpp, api.cpp  the two public faces
//
// Everything here returns glibc's codes (EAI_*, h_errno values) and throws
// only greenring::cancelled (and std::bad_alloc).
#pragma once

#include "dns/channel.hpp"

#include <greenring/dns.hpp>

#include <netdb.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace greenring::detail::dns {

using greenring::dns::entry;

// ---- hosts.cpp ----
struct hosts_line {
  address a;
  std::vector<std::string> names;  // names[0] is the canonical name
};
// /etc/hosts, parsed; valid until the calling thread's next call.
const std::vector<hosts_line>& read_hosts();
enum class source { files, dns };
// The hosts: sources in order; `servable` false when a source or an action
// ([NOTFOUND=return], ...) is one we do not implement.
struct nss_hosts {
  std::vector<source> sources;
  bool servable = true;
};
const nss_hosts& hosts_config();
bool same_name(const std::string& a, const char* b) noexcept;  // ASCII case-insensitive

// ---- source.cpp ----
// What one source answered for a name: every address of both families in the
// source's order (like nss gethostbyname4_r), the canonical name and aliases.
struct host_answer {
  std::vector<address> addrs;
  std::string canon;
  std::vector<std::string> aliases;
};
// files_family: which /etc/hosts lines count (AF_UNSPEC: both, as getaddrinfo's
// gethostbyname4_r; AF_INET: gethostbyname_r's). dns_family: what DNS is asked
// (A, AAAA or both). The first source that answers ends the walk.
// Returns NETDB_SUCCESS, HOST_NOT_FOUND, NO_DATA or TRY_AGAIN.
int lookup_name(const char* name, int files_family, int dns_family, time_point until, host_answer& out);
// Reverse: h_name and aliases of one address. Same return values.
int lookup_addr(const address& a, time_point until, host_answer& out);
// Runs c-ares for one query from the calling context (green or plain thread).
int ares_lookup_name(const char* name, int family, time_point until, host_answer& out);
int ares_lookup_addr(const address& a, time_point until, host_answer& out);
int herrno_from_ares(int status) noexcept;

// ---- resolve.cpp ----
// glibc getaddrinfo's semantics; node/service may be null. Returns 0 or EAI_*;
// kNeedsGlibc when only glibc can answer (AI_IDN with a non-ASCII name).
inline constexpr int kNeedsGlibc = 1;
int getaddrinfo(const char* node, const char* service, const addrinfo* hints, time_point until,
                std::vector<entry>& out);
// RFC 6724 destination order with glibc's default tables (rules 1, 2, 5, 6, 8, 9 for IPv6, 10).
void sort_addresses(std::vector<address>& v);

// ---- reverse.cpp ----
int getnameinfo(const sockaddr* sa, socklen_t salen, char* host, socklen_t hostlen, char* serv,
                socklen_t servlen, int flags, time_point until);

// ---- fallback.cpp ----
// Runs fn on a helper OS thread (lazily started, at most kMaxHelpers) while the
// calling green thread parks; on a plain thread runs fn inline. fn must own
// everything it touches (the caller may be cancelled and leave).
void run_on_helper(std::function<void()> fn);
// glibc's functions, via dlsym(RTLD_NEXT, ...).
struct glibc_fns {
  int (*getaddrinfo)(const char*, const char*, const addrinfo*, addrinfo**);
  void (*freeaddrinfo)(addrinfo*);
  int (*getnameinfo)(const sockaddr*, socklen_t, char*, socklen_t, char*, socklen_t, int);
  int (*gethostbyname_r)(const char*, hostent*, char*, size_t, hostent**, int*);
  int (*gethostbyname2_r)(const char*, int, hostent*, char*, size_t, hostent**, int*);
  int (*gethostbyaddr_r)(const void*, socklen_t, int, hostent*, char*, size_t, hostent**, int*);
};
const glibc_fns& glibc();
bool use_glibc() noexcept;  // libc_compat::must_fall_back()
std::uint64_t fallback_calls() noexcept;  // helper-thread runs so far (tests)
// In the child of a fork: the helper threads are gone; a fresh pool starts
// its own (the old one, possibly locked, is leaked).
void fallback_after_fork() noexcept;

}  // namespace greenring::detail::dns
