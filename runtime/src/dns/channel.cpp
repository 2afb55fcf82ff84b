// dns/channel.cpp: c-ares channels driven by the worker's driver (design in
// channel.hpp). c-ares gets socket functions made of raw syscalls, so under
// the LD_PRELOAD shim its sockets never pass through interposed libc.
#include "dns/channel.hpp"

#include "detail/sys.hpp"

#include <greenring/spawn.hpp>

#include <fcntl.h>
#include <netdb.h>
#include <sys/syscall.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <sys/socket.h>

namespace greenring::detail::dns {
namespace {

constexpr int kUdpRcvbuf = 1 << 20;  // capped by net.core.rmem_max

// ---- socket functions: raw syscalls, the result or -1 with errno --------------

long set_errno(long r) noexcept {
  if (r < 0) {
    errno = static_cast<int>(-r);
    return -1;
  }
  return r;
}

ares_socket_t s_socket(int domain, int type, int protocol, void*) {
  // c-ares skips its own fcntl/setsockopt for user sockets: ask for
  // non-blocking and close-on-exec at creation.
  long r = sys::raw(SYS_socket, domain, type | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol);
  if (r < 0) return set_errno(r), ARES_SOCKET_BAD;
  if (type == SOCK_DGRAM) {
    // Every query of a worker shares this socket: a burst of answers must not
    // overflow the default ~208 KiB (each datagram costs ~1 KiB of skb there).
    int sz = kUdpRcvbuf;
    sys::raw(SYS_setsockopt, r, SOL_SOCKET, SO_RCVBUF, sys::L(&sz), sizeof sz);
  }
  return static_cast<ares_socket_t>(r);
}
int s_close(ares_socket_t fd, void*) {
  return static_cast<int>(set_errno(sys::close(fd)));
}
int s_connect(ares_socket_t fd, const sockaddr* sa, ares_socklen_t len, void*) {
  return static_cast<int>(set_errno(sys::connect(fd, sa, len)));
}
ares_ssize_t s_recvfrom(ares_socket_t fd, void* buf, size_t n, int flags, sockaddr* from, ares_socklen_t* fromlen,
                        void*) {
  return set_errno(sys::raw(SYS_recvfrom, fd, sys::L(buf), sys::L(n), flags, sys::L(from), sys::L(fromlen)));
}
ares_ssize_t s_sendv(ares_socket_t fd, const iovec* iov, int cnt, void*) {
  msghdr m{};
  m.msg_iov = const_cast<iovec*>(iov);
  m.msg_iovlen = static_cast<size_t>(cnt);
  return set_errno(sys::sendmsg(fd, &m, MSG_NOSIGNAL));  // a reset TCP server must not SIGPIPE us
}

const ares_socket_functions kSocketFunctions = {s_socket, s_close, s_connect, s_recvfrom, s_sendv};

void library_init() {
  static std::once_flag once;
  std::call_once(once, [] { ares_library_init(ARES_LIB_INIT_ALL); });
}

// Whitespace-separated `timeout:N` / `attempts:N` tokens, glibc's caps applied.
void parse_options(const char* s, resolver_timing& t) {
  while (s && *s) {
    while (*s == ' ' || *s == '\t' || *s == '\n') ++s;
    const char* e = s;
    while (*e && *e != ' ' && *e != '\t' && *e != '\n') ++e;
    std::string tok(s, e);
    if (tok.rfind("timeout:", 0) == 0) {
      int v = std::atoi(tok.c_str() + 8);
      t.timeout_ms = std::clamp(v, 1, 30) * 1000;  // RES_MAXRETRANS
    } else if (tok.rfind("attempts:", 0) == 0) {
      int v = std::atoi(tok.c_str() + 9);
      t.tries = std::clamp(v, 1, 5);  // RES_MAXRETRY
    }
    s = e;
  }
}

thread_local std::unique_ptr<channel> tl_channel;

}  // namespace

std::string read_small_file(const char* path, bool* exists) {
  std::string out;
  int fd = sys::openat(AT_FDCWD, path, O_RDONLY | O_CLOEXEC, 0);
  if (exists) *exists = fd >= 0;
  if (fd < 0) return out;
  // Read straight into the string: no large buffer on a small green-thread stack.
  std::size_t len = 0;
  for (;;) {
    if (out.size() - len < 4096) out.resize(len + 8192);
    ssize_t n = sys::read(fd, out.data() + len, out.size() - len);
    if (n <= 0) break;
    len += static_cast<std::size_t>(n);
  }
  out.resize(len);
  sys::close(fd);
  return out;
}

resolver_timing read_timing() {
  resolver_timing t{5000, 2};
  std::string conf = read_small_file("/etc/resolv.conf");
  std::size_t pos = 0;
  while (pos < conf.size()) {
    std::size_t nl = conf.find('\n', pos);
    if (nl == std::string::npos) nl = conf.size();
    std::string line = conf.substr(pos, nl - pos);
    if (line.rfind("options", 0) == 0 && line.size() > 7 && (line[7] == ' ' || line[7] == '\t'))
      parse_options(line.c_str() + 7, t);
    pos = nl + 1;
  }
  parse_options(std::getenv("RES_OPTIONS"), t);
  return t;
}

channel* channel::for_this_worker() {
  if (!current_worker()) return nullptr;
  if (!tl_channel) tl_channel = std::make_unique<channel>(true);
  return tl_channel.get();
}

channel::channel(bool green) : green_(green) {
  library_init();
  resolver_timing t = read_timing();
  ares_options o{};
  o.sock_state_cb = &channel::on_sock_state;
  o.sock_state_cb_data = this;
  o.lookups = const_cast<char*>("b");  // /etc/hosts is ours (resolve.cpp): glibc's parsing and merging
  o.timeout = t.timeout_ms;
  o.tries = t.tries;
  int mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_LOOKUPS | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES;
  init_status_ = ares_init_options(&ch_, &o, mask);
  if (init_status_ != ARES_SUCCESS) {
    ch_ = nullptr;
    return;
  }
  ares_set_socket_functions(ch_, &kSocketFunctions, this);
  if (const char* servers = std::getenv("GREENRING_DNS_SERVERS"); servers && *servers) {
    int r = ares_set_servers_ports_csv(ch_, servers);
    if (r != ARES_SUCCESS) {
      ares_destroy(ch_);
      ch_ = nullptr;
      init_status_ = r;
    }
  }
}

channel::~channel() {
  if (ch_) ares_destroy(ch_);  // runs the callbacks of abandoned queries (ARES_EDESTRUCTION): they free them
}

void channel::on_sock_state(void* data, ares_socket_t fd, int readable, int writable) {
  auto* self = static_cast<channel*>(data);
  auto it = std::find_if(self->watch_.begin(), self->watch_.end(), [&](const watch& w) { return w.fd == fd; });
  if (!readable && !writable) {
    if (it != self->watch_.end()) self->watch_.erase(it);
    return;
  }
  if (it == self->watch_.end()) self->watch_.push_back({fd, readable != 0, writable != 0});
  else {
    it->read = readable != 0;
    it->write = writable != 0;
  }
}

void channel::finish(query* q, int status) noexcept {
  q->ch->pending_--;
  if (q->abandoned) {
    delete q;
    return;
  }
  q->status = status;
  q->done = true;
  if (q->waiter) q->waiter->unpark(wake::signalled);
}

void channel::on_addrinfo(void* arg, int status, int, ares_addrinfo* res) {
  auto* q = static_cast<query*>(arg);
  if (!q->abandoned && status == ARES_SUCCESS && res) {
    for (ares_addrinfo_node* n = res->nodes; n; n = n->ai_next) {
      address a;
      a.family = n->ai_family;
      if (n->ai_family == AF_INET) {
        std::memcpy(a.bytes, &reinterpret_cast<sockaddr_in*>(n->ai_addr)->sin_addr, 4);
      } else if (n->ai_family == AF_INET6) {
        auto* s6 = reinterpret_cast<sockaddr_in6*>(n->ai_addr);
        std::memcpy(a.bytes, &s6->sin6_addr, 16);
        a.scope = s6->sin6_scope_id;
      } else {
        continue;
      }
      q->addrs.push_back(a);
    }
    // The chain alias -> name -> ... ends at the canonical name; c-ares lists
    // each CNAME once, in answer order.
    for (ares_addrinfo_cname* c = res->cnames; c; c = c->next) {
      if (c->alias) q->aliases.emplace_back(c->alias);
      if (c->name) q->canon = c->name;
    }
    if (q->canon.empty() && res->name) q->canon = res->name;
  }
  if (res) ares_freeaddrinfo(res);
  finish(q, status);
}

void channel::on_host(void* arg, int status, int, hostent* h) {
  auto* q = static_cast<query*>(arg);
  if (!q->abandoned && status == ARES_SUCCESS && h) {
    if (h->h_name) q->name = h->h_name;
    for (char** a = h->h_aliases; a && *a; ++a) q->aliases.emplace_back(*a);
  }
  finish(q, status);
}

void channel::getaddrinfo(query& q, const char* name, int family) {
  q.ch = this;
  ares_addrinfo_hints h{};
  h.ai_family = family;
  // NOSORT: c-ares's RFC 6724 sort calls libc socket()/connect(); resolve.cpp
  // sorts with raw syscalls and glibc's tables instead.
  h.ai_flags = ARES_AI_NOSORT | ARES_AI_CANONNAME;
  pending_++;
  ares_getaddrinfo(ch_, name, nullptr, &h, &channel::on_addrinfo, &q);
  issued();
}

void channel::gethostbyaddr(query& q, const address& a) {
  q.ch = this;
  pending_++;
  ares_gethostbyaddr(ch_, a.bytes, a.family == AF_INET ? 4 : 16, a.family, &channel::on_host, &q);
  issued();
}

void channel::release(query* q) noexcept {
  if (q->done) delete q;
  else {
    q->abandoned = true;
    q->waiter = nullptr;
  }
}

// A new query may have opened a socket or brought a retransmission closer:
// the pump must look again.
void channel::issued() {
  if (!green_ || pending_ == 0) return;
  if (pump_parker_) {
    pump_parker_->unpark(wake::signalled);
  } else if (!pump_running_) {
    pump_running_ = true;
    try {
      spawn_on(static_cast<unsigned>(this_fiber::worker_index()), [this] { pump(); }).detach();
    } catch (...) {
      pump_running_ = false;  // wait() drives inline when no pump could start
    }
  }
}

time_point channel::next_timeout() {
  timeval tv{};
  if (!ares_timeout(ch_, nullptr, &tv)) return time_point::max();
  return std::chrono::steady_clock::now() + std::chrono::seconds(tv.tv_sec) + std::chrono::microseconds(tv.tv_usec);
}

void channel::process(int fd, short revents) {
  bool rd = revents & (POLLIN | POLLERR | POLLHUP);
  bool wr = revents & (POLLOUT | POLLERR | POLLHUP);
  ares_process_fd(ch_, rd ? fd : ARES_SOCKET_BAD, wr ? fd : ARES_SOCKET_BAD);
}

void channel::pump() noexcept {
  worker* w = current_worker();
  std::vector<io_op> ops;
  while (pending_ > 0) {
    ops.assign(watch_.size(), io_op{});
    parker p;
    for (std::size_t i = 0; i < ops.size(); ++i) {
      ops[i].kind = op_kind::poll;
      ops[i].fd = watch_[i].fd;
      ops[i].events = static_cast<short>((watch_[i].read ? POLLIN : 0) | (watch_[i].write ? POLLOUT : 0));
      ops[i].waiter = &p;
      w->drv().start(&ops[i]);
    }
    pump_parker_ = &p;
    wake why = park(p, next_timeout(), true);
    pump_parker_ = nullptr;
    for (auto& op : ops)
      if (!op.done) w->drv().cancel(&op);
    for (auto& op : ops) {
      while (!op.done) {
        parker p2;
        op.waiter = &p2;
        park(p2, time_point::max(), false);
      }
    }
    if (why == wake::cancelled) {
      // Runtime shutdown (nothing else cancels the pump): fail every query so
      // no resolver waits on a channel nobody drives.
      ares_cancel(ch_);
      break;
    }
    for (auto& op : ops)
      if (op.res > 0) process(op.fd, static_cast<short>(op.res));
    ares_process_fd(ch_, ARES_SOCKET_BAD, ARES_SOCKET_BAD);  // retransmissions and timeouts
  }
  pump_running_ = false;
}

wake channel::wait_blocking(query& q, time_point until) {
  std::vector<pollfd> pfds;
  while (!q.done) {
    auto now = std::chrono::steady_clock::now();
    if (now >= until) return wake::timeout;
    time_point t = std::min(until, next_timeout());
    long long ms = t == time_point::max()
                       ? -1
                       : std::chrono::duration_cast<std::chrono::milliseconds>(t - now).count() + 1;
    pfds.clear();
    for (auto& wt : watch_)
      pfds.push_back({wt.fd, static_cast<short>((wt.read ? POLLIN : 0) | (wt.write ? POLLOUT : 0)), 0});
    int r = sys::poll(pfds.data(), pfds.size(), static_cast<int>(std::min<long long>(ms, 1 << 30)));
    if (r < 0 && r != -EINTR) return wake::timeout;  // cannot happen with valid fds; do not spin
    for (auto& pf : pfds)
      if (pf.revents) process(pf.fd, pf.revents);
    ares_process_fd(ch_, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
  }
  return wake::signalled;
}

wake channel::wait(query& q, time_point until) {
  if (!green_ || !pump_running_) {
    if (!green_) return wait_blocking(q, until);
    // Green, no pump running: start one. Only if that fails (no stack could
    // be mapped) does this green thread drive the channel itself with ppoll,
    // blocking its worker for the lookup rather than failing it.
    issued();
    if (!pump_running_) return wait_blocking(q, until);
  }
  while (!q.done) {
    parker p;
    q.waiter = &p;
    wake why = park(p, until, true);
    q.waiter = nullptr;
    if (q.done) return wake::signalled;
    if (why == wake::timeout || why == wake::cancelled) return why;
  }
  return wake::signalled;
}

}  // namespace greenring::detail::dns
