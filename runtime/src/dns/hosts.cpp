// dns/hosts.cpp: /etc/hosts and the hosts: line of /etc/nsswitch.conf.
//
// Why not c-ares's own hosts lookup: glibc's nss_files merges every matching
// line of both families in file order and takes the canonical name from the
// first; c-ares 1.18 differs in both (and cannot report which source
// answered). Parsing follows nss_files: '#' starts a comment, the address is
// tried as IPv6 then IPv4 with inet_pton, names compare case-insensitively.
// The file is read with raw syscalls and cached per thread; a change (inode,
// size, mtime) is noticed within kHostsRecheck (glibc re-reads it every call).
#include "dns/lookup.hpp"

#include "detail/sys.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <strings.h>

#include <sys/stat.h>

#include <cctype>
#include <cstring>

namespace greenring::detail::dns {
namespace {

constexpr std::chrono::seconds kHostsRecheck{1};

template <class F>
void for_each_line(const std::string& text, F f) {
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) nl = text.size();
    std::string line = text.substr(pos, nl - pos);
    if (auto h = line.find('#'); h != std::string::npos) line.resize(h);
    std::vector<std::string> fields;
    std::size_t i = 0;
    while (i < line.size()) {
      while (i < line.size() && std::isspace(static_cast<unsigned char>(line[i]))) ++i;
      std::size_t j = i;
      while (j < line.size() && !std::isspace(static_cast<unsigned char>(line[j]))) ++j;
      if (j > i) fields.push_back(line.substr(i, j - i));
      i = j;
    }
    if (!fields.empty()) f(fields);
    pos = nl + 1;
  }
}

nss_hosts parse_nsswitch() {
  nss_hosts cfg;
  bool exists = false;
  std::string text = read_small_file("/etc/nsswitch.conf", &exists);
  bool found = false;
  for_each_line(text, [&](std::vector<std::string>& f) {
    if (found || f[0].rfind("hosts:", 0) != 0) return;
    found = true;
    // "hosts:files dns" has the first source glued to the key.
    std::vector<std::string> toks;
    if (f[0].size() > 6) toks.push_back(f[0].substr(6));
    toks.insert(toks.end(), f.begin() + 1, f.end());
    for (auto& t : toks) {
      if (t == "files") cfg.sources.push_back(source::files);
      else if (t == "dns") cfg.sources.push_back(source::dns);
      else cfg.servable = false;  // another NSS module, or a [STATUS=action] we do not model
    }
  });
  if (!found) {
    // glibc's built-in default for a missing file or line: "dns [!UNAVAIL=return] files".
    cfg.sources = {source::dns, source::files};
  }
  return cfg;
}

}  // namespace

bool same_name(const std::string& a, const char* b) noexcept { return ::strcasecmp(a.c_str(), b) == 0; }

static std::vector<hosts_line> parse_hosts() {
  std::vector<hosts_line> out;
  bool exists = false;
  std::string text = read_small_file("/etc/hosts", &exists);
  for_each_line(text, [&](std::vector<std::string>& f) {
    if (f.size() < 2) return;
    hosts_line l;
    std::string addr = f[0];
    // nss_files accepts a scope on IPv6 entries ("fe80::1%eth0"): the zone is ignored there too.
    if (auto pct = addr.find('%'); pct != std::string::npos) addr.resize(pct);
    if (inet_pton(AF_INET6, addr.c_str(), l.a.bytes) > 0) l.a.family = AF_INET6;
    else if (inet_pton(AF_INET, addr.c_str(), l.a.bytes) > 0) l.a.family = AF_INET;
    else return;  // not an address: glibc skips the line
    l.names.assign(f.begin() + 1, f.end());
    out.push_back(std::move(l));
  });
  return out;
}

const std::vector<hosts_line>& read_hosts() {
  // Per thread (no lock): the parsed file, revalidated by statx at most once
  // per kHostsRecheck. glibc re-reads the file on every call; four syscalls per
  // lookup were most of the cost of a burst of lookups under gVisor.
  struct cache {
    std::vector<hosts_line> lines;
    std::uint64_t ino = 0, size = 0;
    std::int64_t mtime_s = -1;
    std::uint32_t mtime_ns = 0;
    time_point checked{};
    bool valid = false;
  };
  thread_local cache c;
  auto now = std::chrono::steady_clock::now();
  if (c.valid && now - c.checked < kHostsRecheck) return c.lines;
  struct statx st{};
  int r = sys::statx(AT_FDCWD, "/etc/hosts", 0, STATX_INO | STATX_SIZE | STATX_MTIME, &st);
  bool same = r == 0 && c.valid && st.stx_ino == c.ino && st.stx_size == c.size &&
              st.stx_mtime.tv_sec == c.mtime_s && st.stx_mtime.tv_nsec == c.mtime_ns;
  if (!same) {
    c.lines = parse_hosts();
    c.valid = r == 0;
    c.ino = st.stx_ino;
    c.size = st.stx_size;
    c.mtime_s = st.stx_mtime.tv_sec;
    c.mtime_ns = st.stx_mtime.tv_nsec;
  }
  c.checked = now;
  return c.lines;
}

const nss_hosts& hosts_config() {
  static const nss_hosts cfg = parse_nsswitch();
  return cfg;
}

}  // namespace greenring::detail::dns
