// dns/channel.hpp: a c-ares channel and the loop that drives it (internal).
//
// # One channel per worker
// c-ares 1.18 channels are not thread-safe, and green threads never migrate,
// so each worker owns one channel (thread_local, created on first use) and
// only that worker's thread ever touches it. A plain OS thread that resolves
// gets its own blocking channel, kept per thread (source.cpp), driven by ppoll
// in wait(). Both read GREENRING_DNS_SERVERS and RES_OPTIONS when created.
//
// # Who drives the sockets
// A per-worker *pump* green thread, spawned when a query is issued and no
// pump runs, exits when no query is outstanding. Each pass:
//   1. starts one driver poll op per socket c-ares asked to watch (its
//      socket-state callback keeps `watch_`),
//   2. parks until one completes, a new query kicks it, or ares_timeout()'s
//      next retransmission is due,
//   3. cancels the other poll ops and waits for their completions (they live
//      in this frame: tokio's op.rs rule, as in io.cpp),
//   4. hands every ready fd to ares_process_fd, then ares_process_fd(BAD, BAD)
//      for timeouts.
// Steps 3-4 never overlap an op in flight, so c-ares may close and reuse fds
// freely inside ares_process_fd. Resolvers only park on their own query.
//
// # Rejected designs
// 1. Each resolver polls the channel's sockets itself: 1,000 concurrent
//    lookups share one UDP socket, so every answer would wake all of them.
// 2. A long-lived pump per worker: it would show up in live_green_threads()
//    and hold runtime shutdown; spawning one per burst costs ~1 us.
// 3. ares_process()/select: blocks the worker.
// 4. Queueing the queries of one scheduler pass and sending them with one
//    sendmmsg: without flow control a burst of 1,000 overflows the server's
//    receive buffer (dnsmasq reads one datagram per loop) and the lost ones
//    wait for c-ares's retransmission; one sendmsg per query paces itself.
//
// # Abandoning a query (deadline, cancellation)
// c-ares 1.18 cannot cancel one query (ares_cancel cancels all). The query
// object is handed to c-ares's callback, which frees it when the answer or the
// c-ares timeout comes; the pump keeps running until then.
#pragma once

#include "worker/worker.hpp"

#include <ares.h>

#include <netinet/in.h>
#include <sys/uio.h>

#include <cstdint>
#include <string>
#include <vector>

namespace greenring::detail::dns {

// One address as c-ares or /etc/hosts gave it.
struct address {
  int family = 0;            // AF_INET or AF_INET6
  unsigned char bytes[16]{};  // 4 or 16 used
  std::uint32_t scope = 0;    // sin6_scope_id
};

class channel;

// One outstanding c-ares request. Owned by the waiting resolver until it
// stops waiting early; then `abandoned` is set and the c-ares callback frees it.
struct query {
  channel* ch = nullptr;
  bool done = false;
  bool abandoned = false;
  int status = ARES_SUCCESS;
  parker* waiter = nullptr;
  // ares_getaddrinfo: addresses in c-ares's order, the canonical name (end of
  // the CNAME chain, else the name asked) and the aliases on the way.
  std::vector<address> addrs;
  std::string canon;
  std::vector<std::string> aliases;
  // ares_gethostbyaddr: the name.
  std::string name;
};

class channel {
 public:
  // The calling worker's channel (created on first use), or nullptr off a worker.
  static channel* for_this_worker();
  // green: driven by a pump on the current worker; else by wait() with ppoll.
  explicit channel(bool green);
  ~channel();
  channel(const channel&) = delete;
  channel& operator=(const channel&) = delete;

  // ares_init status; anything but ARES_SUCCESS leaves the channel unusable.
  int init_status() const noexcept { return init_status_; }

  // Start a lookup; the result lands in q when q.done.
  void getaddrinfo(query& q, const char* name, int family);
  void gethostbyaddr(query& q, const address& a);

  // Waits for q.done. Returns signalled, timeout (until passed) or cancelled
  // (green only). On timeout/cancelled the caller must abandon q (release()).
  wake wait(query& q, time_point until);
  // Hands q to c-ares's callback (it frees q when done).
  static void release(query* q) noexcept;


 private:
  struct watch {
    int fd;
    bool read;
    bool write;
  };

  void issued();
  void pump() noexcept;
  wake wait_blocking(query& q, time_point until);
  time_point next_timeout();
  void process(int fd, short revents);

  static void on_sock_state(void* data, ares_socket_t fd, int readable, int writable);
  static void on_addrinfo(void* arg, int status, int timeouts, ares_addrinfo* res);
  static void on_host(void* arg, int status, int timeouts, hostent* h);
  static void finish(query* q, int status) noexcept;

  ares_channel ch_ = nullptr;
  int init_status_ = ARES_ENOTINITIALIZED;
  bool green_;
  std::vector<watch> watch_;
  std::size_t pending_ = 0;  // c-ares callbacks not yet run
  bool pump_running_ = false;
  parker* pump_parker_ = nullptr;
};

// resolv.conf `options timeout:N attempts:N`, then RES_OPTIONS, else glibc's
// defaults (5 s, 2): c-ares's own defaults (5 s, 4 tries) would wait 75 s on a
// dead server where glibc waits 10 s.
struct resolver_timing {
  int timeout_ms;
  int tries;
};
resolver_timing read_timing();

// A small configuration file read whole with raw syscalls (no libc call the
// LD_PRELOAD shim would see); empty when it cannot be opened, and then
// *exists (when given) is false.
std::string read_small_file(const char* path, bool* exists = nullptr);

}  // namespace greenring::detail::dns
