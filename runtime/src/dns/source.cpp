// dns/source.cpp: one name (or address) through the hosts: sources in
// nsswitch order, as glibc's NSS loop does with the default actions: the first
// source that finds something ends the walk; NOTFOUND and UNAVAIL go on.
// The DNS source is a c-ares query on the calling worker's channel, or on the
// calling plain OS thread's own blocking channel (channel.hpp).
#include "dns/lookup.hpp"

#include <cstdlib>
#include <cstring>
#include <memory>

namespace greenring::detail::dns {
namespace {

bool files_name(const char* name, int family, host_answer& out) {
  bool found = false;
  for (auto& l : read_hosts()) {
    if (family != AF_UNSPEC && l.a.family != family) continue;
    bool match = false;
    for (auto& n : l.names) match = match || same_name(n, name);
    if (!match) continue;
    if (!found) out.canon = l.names[0];
    found = true;
    out.addrs.push_back(l.a);
    // glibc's "multi" merging: the names of every matching line become aliases.
    for (auto& n : l.names) {
      if (same_name(n, out.canon.c_str())) continue;
      bool dup = false;
      for (auto& a : out.aliases) dup = dup || same_name(a, n.c_str());
      if (!dup) out.aliases.push_back(n);
    }
  }
  return found;
}

bool files_addr(const address& a, host_answer& out) {
  std::size_t len = a.family == AF_INET ? 4 : 16;
  for (auto& l : read_hosts()) {
    if (l.a.family != a.family || std::memcmp(l.a.bytes, a.bytes, len) != 0) continue;
    out.canon = l.names[0];
    out.aliases.assign(l.names.begin() + 1, l.names.end());
    out.addrs.push_back(l.a);
    return true;  // nss_files gethostbyaddr: the first matching line only
  }
  return false;
}

// A plain OS thread's channel: kept per thread, driven by ppoll in wait().
// Rebuilt when GREENRING_DNS_SERVERS or RES_OPTIONS changed since it was made.
channel* blocking_channel() {
  struct cached {
    std::unique_ptr<channel> ch;
    std::string servers, options;
  };
  thread_local cached c;
  const char* sv = std::getenv("GREENRING_DNS_SERVERS");
  const char* op = std::getenv("RES_OPTIONS");
  std::string servers = sv ? sv : "", options = op ? op : "";
  if (!c.ch || c.servers != servers || c.options != options) {
    c.ch = std::make_unique<channel>(false);
    c.servers = std::move(servers);
    c.options = std::move(options);
  }
  return c.ch.get();
}

template <class Start>
int run_query(time_point until, host_answer& out, Start start) {
  channel* ch = channel::for_this_worker();
  if (!ch) ch = blocking_channel();
  if (ch->init_status() != ARES_SUCCESS) return ch->init_status();
  auto q = std::make_unique<query>();
  start(*ch, *q);
  wake why = ch->wait(*q, until);
  if (!q->done) {
    channel::release(q.release());
    if (why == wake::cancelled) throw_cancelled();
    return ARES_ETIMEOUT;
  }
  out.addrs = std::move(q->addrs);
  out.canon = q->canon.empty() ? std::move(q->name) : std::move(q->canon);
  out.aliases = std::move(q->aliases);
  return q->status;
}

}  // namespace

int herrno_from_ares(int status) noexcept {
  switch (status) {
    case ARES_SUCCESS: return NETDB_SUCCESS;
    case ARES_ENOTFOUND:
    case ARES_ENONAME:
    case ARES_EBADNAME: return HOST_NOT_FOUND;
    case ARES_ENODATA: return NO_DATA;
    case ARES_ETIMEOUT:
    case ARES_ECONNREFUSED:
    case ARES_ESERVFAIL:
    case ARES_EREFUSED:
    case ARES_ECANCELLED:
    case ARES_EDESTRUCTION:
    case ARES_EFILE:  // no resolv.conf servers usable: glibc also answers TRY_AGAIN
      return TRY_AGAIN;
    default: return NO_RECOVERY;
  }
}

int ares_lookup_name(const char* name, int family, time_point until, host_answer& out) {
  int st = run_query(until, out, [&](channel& ch, query& q) { ch.getaddrinfo(q, name, family); });
  if (st == ARES_SUCCESS && out.addrs.empty()) return NO_DATA;
  return herrno_from_ares(st);
}

int ares_lookup_addr(const address& a, time_point until, host_answer& out) {
  int st = run_query(until, out, [&](channel& ch, query& q) { ch.gethostbyaddr(q, a); });
  if (st == ARES_SUCCESS) out.addrs.push_back(a);
  return herrno_from_ares(st);
}

int lookup_name(const char* name, int files_family, int dns_family, time_point until, host_answer& out) {
  int last = HOST_NOT_FOUND;
  for (source s : hosts_config().sources) {
    host_answer a;
    if (s == source::files) {
      if (files_name(name, files_family, a)) {
        out = std::move(a);
        return NETDB_SUCCESS;
      }
    } else {
      int r = ares_lookup_name(name, dns_family, until, a);
      if (r == NETDB_SUCCESS) {
        out = std::move(a);
        return r;
      }
      last = r;
    }
  }
  return last;
}

int lookup_addr(const address& a, time_point until, host_answer& out) {
  int last = HOST_NOT_FOUND;
  for (source s : hosts_config().sources) {
    host_answer ans;
    if (s == source::files) {
      if (files_addr(a, ans)) {
        out = std::move(ans);
        return NETDB_SUCCESS;
      }
    } else {
      int r = ares_lookup_addr(a, until, ans);
      if (r == NETDB_SUCCESS) {
        out = std::move(ans);
        return r;
      }
      last = r;
    }
  }
  return last;
}

}  // namespace greenring::detail::dns
