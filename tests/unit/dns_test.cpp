// dns_test: greenring::dns against a real dnsmasq and against glibc itself.
//  - DnsServer.*: A, AAAA, CNAME (+AI_CANONNAME), NXDOMAIN, PTR, a server that
//    never answers (resolver timeout and deadline), cancellation, 1,000
//    concurrent lookups on one worker, plain-thread callers.
//  - DnsParity.*: libc_compat vs glibc field by field on /etc/hosts names,
//    numeric hosts, bad hints, getnameinfo, gethostbyname_r/2_r/addr_r; lists
//    freed by glibc's own freeaddrinfo.
//  - DnsFallback.*: GREENRING_DNS_FORCE_FALLBACK=1 gives glibc's answers from
//    helper threads while the worker keeps running other green threads.
// dnsmasq missing is the only reason to skip.
#include "dns/lookup.hpp"
#include "helpers/dnsmasq.hpp"
#include "helpers/test_util.hpp"

#include <greenring/dns.hpp>

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <deque>
#include <thread>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace gr = greenring;
namespace dns = greenring::dns;
using gr_test::kDnsmasq;
using gr_test::opts;
using gr_test::scoped_env;
using gr_test::stopwatch;
using gr_test::unique_fd;
using namespace std::chrono_literals;

namespace {

// A bound UDP socket on 127.0.0.1 (never read: a server that never answers).
unique_fd udp_socket(int& port) {
  unique_fd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) return {};
  socklen_t len = sizeof sa;
  ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&sa), &len);
  port = ntohs(sa.sin_port);
  return fd;
}

class dnsmasq {
 public:
  bool start() {
    if (::access(kDnsmasq, X_OK) != 0) return false;
    for (int attempt = 0; attempt < 5 && pid_ <= 0; ++attempt) {
      {
        unique_fd probe = udp_socket(port_);  // a free port; released just before dnsmasq binds it
      }
      pid_t pid = gr_test::spawn_dnsmasq(
          port_, {"--host-record=a.test,10.1.2.3", "--host-record=six.test,fd00::5",
                  "--host-record=both.test,10.1.2.4,fd00::6", "--cname=alias.test,a.test",
                  "--address=/wild.test/10.9.9.9"});
      if (pid < 0) return false;
      for (int i = 0; i < 50; ++i) {
        if (gr_test::dnsmasq_answers(port_, 200)) {
          pid_ = pid;
          return true;
        }
        int st;
        if (::waitpid(pid, &st, WNOHANG) == pid) break;  // exited (port taken?): retry
      }
      if (pid_ <= 0) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, nullptr, 0);
      }
    }
    return pid_ > 0;
  }
  ~dnsmasq() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  int port() const { return port_; }

 private:
  pid_t pid_ = -1;
  int port_ = 0;
};

dnsmasq* g_server = nullptr;

// Faults in the top 32 KiB of the calling green thread's stack.
[[gnu::noinline]] void touch_stack() {
  volatile char pad[32 * 1024];
  for (std::size_t i = 0; i < sizeof pad; i += 1024) pad[i] = 0;
}

std::string addr_text(const sockaddr_storage& ss) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET)
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in&>(ss).sin_addr, buf, sizeof buf);
  else
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6&>(ss).sin6_addr, buf, sizeof buf);
  return buf;
}

class DnsServer : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto* s = new dnsmasq;
    if (s->start()) g_server = s;
    else delete s;
  }
  static void TearDownTestSuite() {
    delete g_server;
    g_server = nullptr;
  }
  void SetUp() override {
    if (!g_server) GTEST_SKIP() << "dnsmasq (" << kDnsmasq << ", Debian dnsmasq-base) is not installed or did not start";
    servers_.emplace("GREENRING_DNS_SERVERS", "127.0.0.1:" + std::to_string(g_server->port()));
  }
  std::optional<scoped_env> servers_;
};

// A server that never answers, as the only one the resolver asks, with
// c-ares's timeout and attempts from `res_options`.
struct silent_server {
  explicit silent_server(const char* res_options)
      : fd(udp_socket(port)),
        servers("GREENRING_DNS_SERVERS", "127.0.0.1:" + std::to_string(port)),
        res_opts("RES_OPTIONS", res_options) {}
  int port = 0;
  unique_fd fd;
  scoped_env servers, res_opts;
};

// A lookup of a.test while only the silent server is asked: EAI_AGAIN.
void expect_unanswered(gr::deadline until = gr::no_deadline) {
  try {
    dns::resolve("a.test", "", dns::hints{0, AF_INET, 0, 0}, until);
    ADD_FAILURE() << "a silent server answered";
  } catch (const dns::error& e) {
    EXPECT_EQ(e.eai(), EAI_AGAIN);
  }
}

// Runs `call` on a green thread of worker 0 while another green thread there
// counts its turns; returns how many it had during the call (none: the call
// blocked the worker). `call` sees the count as it grows.
template <class Call>
int turns_of_a_neighbour_during(Call call) {
  std::atomic<bool> in_flight{false}, done{false};
  std::atomic<int> seen_while_in_flight{0};
  auto counter = gr::spawn_on(0, [&] {
    while (!done) {
      if (in_flight) ++seen_while_in_flight;
      gr::this_fiber::yield();
    }
  });
  gr::spawn_on(0, [&] {
    in_flight = true;
    call(std::as_const(seen_while_in_flight));
    in_flight = false;
    done = true;
  }).join();
  counter.join();
  return seen_while_in_flight.load();
}

std::vector<std::string> resolve_texts(const char* host, int family, int flags = 0) {
  dns::hints h;
  h.family = family;
  h.flags = flags;
  h.socktype = SOCK_STREAM;
  std::vector<std::string> out;
  for (auto& e : dns::resolve(host, "", h)) out.push_back(addr_text(e.addr));
  return out;
}

}  // namespace

TEST_F(DnsServer, ARecordAaaaRecordAndBoth) {
  gr::runtime rt(opts(1));
  gr::spawn([] {
    EXPECT_EQ(resolve_texts("a.test", AF_INET), std::vector<std::string>{"10.1.2.3"});
    EXPECT_EQ(resolve_texts("six.test", AF_INET6), std::vector<std::string>{"fd00::5"});
    EXPECT_EQ(resolve_texts("six.test", AF_UNSPEC), std::vector<std::string>{"fd00::5"});
    auto both = resolve_texts("both.test", AF_UNSPEC);
    std::sort(both.begin(), both.end());
    EXPECT_EQ(both, (std::vector<std::string>{"10.1.2.4", "fd00::6"}));
    // AI_V4MAPPED: a name with only A records, asked for AF_INET6.
    EXPECT_EQ(resolve_texts("a.test", AF_INET6, AI_V4MAPPED), std::vector<std::string>{"::ffff:10.1.2.3"});
    // AI_V4MAPPED without AI_ALL: native IPv6 wins; with AI_ALL: both.
    EXPECT_EQ(resolve_texts("both.test", AF_INET6, AI_V4MAPPED), std::vector<std::string>{"fd00::6"});
    auto all = resolve_texts("both.test", AF_INET6, AI_V4MAPPED | AI_ALL);
    std::sort(all.begin(), all.end());
    EXPECT_EQ(all, (std::vector<std::string>{"::ffff:10.1.2.4", "fd00::6"}));
    // A name with only AAAA, asked for AF_INET: exists, no data.
    try {
      dns::resolve("six.test", "", dns::hints{0, AF_INET, SOCK_STREAM, 0});
      ADD_FAILURE() << "six.test has no A record";
    } catch (const dns::error& e) {
      EXPECT_EQ(e.eai(), EAI_NODATA) << e.code().message();
    }
  }).join();
}

TEST_F(DnsServer, CnameGivesCanonicalName) {
  gr::runtime rt(opts(1));
  gr::spawn([] {
    dns::hints h{AI_CANONNAME, AF_INET, SOCK_STREAM, 0};
    auto v = dns::resolve("alias.test", "443", h);
    ASSERT_EQ(v.size(), 1u);
    EXPECT_EQ(v[0].canonname, "a.test");
    EXPECT_EQ(addr_text(v[0].addr), "10.1.2.3");
    EXPECT_EQ(ntohs(reinterpret_cast<sockaddr_in&>(v[0].addr).sin_port), 443);
    EXPECT_EQ(v[0].protocol, IPPROTO_TCP);
    // The libc face: one malloc'd list, canonname on the first node, freed by glibc.
    addrinfo hints{};
    hints.ai_flags = AI_CANONNAME;
    hints.ai_family = AF_INET;
    addrinfo* res = nullptr;
    ASSERT_EQ(dns::libc_compat::getaddrinfo("alias.test", "http", &hints, &res), 0);
    ASSERT_NE(res, nullptr);
    EXPECT_STREQ(res->ai_canonname, "a.test");
    int n = 0;
    for (addrinfo* ai = res; ai; ai = ai->ai_next, ++n) {
      if (n > 0) {
        EXPECT_EQ(ai->ai_canonname, nullptr);
      }
      EXPECT_EQ(ai->ai_socktype, SOCK_STREAM);  // /etc/services lists http/tcp only
      EXPECT_EQ(ntohs(reinterpret_cast<sockaddr_in*>(ai->ai_addr)->sin_port), 80);
    }
    EXPECT_GE(n, 1);
    ::freeaddrinfo(res);
  }).join();
}

TEST_F(DnsServer, NxdomainIsEaiNoname) {
  gr::runtime rt(opts(1));
  gr::spawn([] {
    try {
      dns::resolve("nope.test", "", dns::hints{0, AF_INET, 0, 0});
      ADD_FAILURE() << "nope.test resolved";
    } catch (const dns::error& e) {
      EXPECT_EQ(e.eai(), EAI_NONAME);
      EXPECT_EQ(e.code().category(), dns::category());
      EXPECT_EQ(e.code().message(), gai_strerror(EAI_NONAME));
    }
    addrinfo* res = nullptr;
    EXPECT_EQ(dns::libc_compat::getaddrinfo("nope.test", nullptr, nullptr, &res), EAI_NONAME);
  }).join();
}

TEST_F(DnsServer, ReverseLookup) {
  gr::runtime rt(opts(1));
  gr::spawn([] {
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(53);
    inet_pton(AF_INET, "10.1.2.3", &sa.sin_addr);
    auto ni = dns::reverse(reinterpret_cast<sockaddr*>(&sa), sizeof sa, NI_DGRAM);
    EXPECT_EQ(ni.host, "a.test");
    EXPECT_EQ(ni.service, "domain");
    hostent h{}, *r = nullptr;
    char buf[512];
    int herr = -1;
    EXPECT_EQ(dns::libc_compat::gethostbyaddr_r(&sa.sin_addr, 4, AF_INET, &h, buf, sizeof buf, &r, &herr), 0);
    ASSERT_EQ(r, &h);
    EXPECT_STREQ(h.h_name, "a.test");
    // No PTR: numeric unless NI_NAMEREQD.
    inet_pton(AF_INET, "10.77.0.1", &sa.sin_addr);
    EXPECT_EQ(dns::reverse(reinterpret_cast<sockaddr*>(&sa), sizeof sa, NI_NUMERICSERV).host, "10.77.0.1");
    try {
      dns::reverse(reinterpret_cast<sockaddr*>(&sa), sizeof sa, NI_NAMEREQD);
      ADD_FAILURE() << "NI_NAMEREQD without a name succeeded";
    } catch (const dns::error& e) {
      EXPECT_EQ(e.eai(), EAI_NONAME);
    }
  }).join();
}

TEST_F(DnsServer, PlainThreadUsesABlockingChannel) {
  // No green thread at all: a private channel driven by ppoll.
  EXPECT_EQ(resolve_texts("a.test", AF_INET), std::vector<std::string>{"10.1.2.3"});
  addrinfo* res = nullptr;
  addrinfo hints{};
  hints.ai_family = AF_INET6;
  ASSERT_EQ(dns::libc_compat::getaddrinfo("six.test", "53", &hints, &res), 0);
  sockaddr_storage ss{};
  std::memcpy(&ss, res->ai_addr, res->ai_addrlen);
  EXPECT_EQ(addr_text(ss), "fd00::5");
  ::freeaddrinfo(res);
}

TEST_F(DnsServer, SilentServerTimesOutWithinResolverTimeout) {
  silent_server silent("timeout:1 attempts:1");
  ASSERT_TRUE(silent.fd);
  gr::runtime rt(opts(1));
  gr::spawn([] {
    stopwatch sw;
    expect_unanswered();
    // One try of 1 s: not before it, and well before c-ares's own defaults (75 s).
    EXPECT_GE(sw.elapsed_ms(), 900);
    EXPECT_LT(sw.elapsed_ms(), 4000);
  }).join();
}

TEST_F(DnsServer, DeadlineCutsTheWaitShort) {
  silent_server silent("timeout:5 attempts:2");
  gr::runtime rt(opts(1));
  gr::spawn([] {
    for (int i = 0; i < 2; ++i) {  // the second finds the first's abandoned query still in c-ares
      stopwatch sw;
      expect_unanswered(gr::after(200ms));
      EXPECT_GE(sw.elapsed_ms(), 190);
      EXPECT_LT(sw.elapsed_ms(), 2000);
    }
  }).join();
  // Plain thread: the same deadline on a blocking channel.
  stopwatch sw;
  EXPECT_THROW(dns::resolve("a.test", "", dns::hints{0, AF_INET, 0, 0}, gr::after(200ms)), dns::error);
  EXPECT_LT(sw.elapsed_ms(), 2000);
}

TEST_F(DnsServer, CancellationAbandonsTheQuery) {
  silent_server silent("timeout:5 attempts:2");
  gr::runtime rt(opts(1));
  std::atomic<int> started{0};
  auto h = gr::spawn([&] {
    started = 1;
    dns::resolve("a.test", "", dns::hints{0, AF_INET, 0, 0});
    return 1;
  });
  while (started.load() == 0) std::this_thread::yield();
  EXPECT_FALSE(h.wait_for(50ms));  // parked in resolve: nothing answers
  stopwatch sw;
  h.cancel();
  EXPECT_THROW(h.join(), gr::cancelled);
  EXPECT_LT(sw.elapsed_ms(), 1000);
  // The worker's channel still serves: the abandoned query just lingers in c-ares.
  auto again = gr::spawn([] {
    try {
      dns::resolve("a.test", "", dns::hints{0, AF_INET, 0, 0}, gr::after(100ms));
    } catch (const dns::error& e) {
      return e.eai();
    }
    return 0;
  });
  EXPECT_EQ(again.join(), EAI_AGAIN);
  // The runtime is destroyed with both queries still inside c-ares (ASan checks the teardown).
}

TEST_F(DnsServer, ThousandConcurrentLookupsOnOneWorker) {
  gr::runtime rt(opts(1));
  constexpr int kSeq = 50;
  constexpr int kConcurrent = 1000;
  // Baseline: one round trip, measured here, sequentially, on the same worker.
  auto seq_ns = gr::spawn([] {
    dns::resolve("a.test", "", dns::hints{0, AF_INET, SOCK_STREAM, 0});  // warm the channel
    stopwatch sw;
    for (int i = 0; i < kSeq; ++i) dns::resolve("a.test", "", dns::hints{0, AF_INET, SOCK_STREAM, 0});
    return std::chrono::duration_cast<std::chrono::nanoseconds>(sw.elapsed()).count() / kSeq;
  }).join();
  // All green threads are started first and held at a gate, so the clock
  // measures the lookups, not 1,000 spawns.
  std::atomic<int> ok{0}, waiting{0}, finished{0}, in_flight{0}, max_in_flight{0};
  std::atomic<long long> last_done_ns{0};
  gr::event gate, release;
  std::vector<gr::join_handle<void>> hs;
  hs.reserve(kConcurrent);
  auto t0 = std::make_shared<std::atomic<std::chrono::steady_clock::time_point::rep>>(0);
  for (int i = 0; i < kConcurrent; ++i) {
    hs.push_back(gr::spawn_on(0, [&, t0] {
      touch_stack();  // first-touch page faults of a fresh stack are spawn cost, not lookup cost
      ++waiting;
      gate.wait();
      int now = ++in_flight;
      int m = max_in_flight.load();
      while (now > m && !max_in_flight.compare_exchange_weak(m, now)) {}
      try {
        auto v = dns::resolve("a.test", "", dns::hints{0, AF_INET, SOCK_STREAM, 0});
        if (v.size() == 1 && addr_text(v[0].addr) == "10.1.2.3") ++ok;
      } catch (const dns::error& e) {
        ADD_FAILURE() << e.code().message();
      }
      --in_flight;
      long long d = std::chrono::steady_clock::now().time_since_epoch().count() - t0->load();
      long long prev = last_done_ns.load();
      while (d > prev && !last_done_ns.compare_exchange_weak(prev, d)) {}
      ++finished;
      release.wait();  // no green thread exits (and unmaps its stack) inside the measured window
    }));
  }
  while (waiting.load() < kConcurrent) std::this_thread::yield();
  t0->store(std::chrono::steady_clock::now().time_since_epoch().count());
  gate.set();
  while (finished.load() < kConcurrent) std::this_thread::yield();
  release.set();
  for (auto& h : hs) h.join();
  long long total_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                           std::chrono::steady_clock::duration(last_done_ns.load()))
                           .count();
  EXPECT_EQ(ok.load(), kConcurrent);
  // They really overlapped (one worker: only parking lets more than one be inside resolve).
  EXPECT_GT(max_in_flight.load(), kConcurrent / 2);
  // Loopback round trips are tens of microseconds, about what dnsmasq spends
  // on each query: here the server's throughput bounds a burst, not the round
  // trip (DnsDelayServer measures that). What this asserts is no loss: not one
  // lookup waited for a retransmission (c-ares's first one is 5 s away).
  std::printf("[ dns ] sequential round trip %lld us; %d concurrent lookups %lld us (%.1f round trips)\n",
              static_cast<long long>(seq_ns / 1000), kConcurrent, total_ns / 1000,
              static_cast<double>(total_ns) / static_cast<double>(seq_ns));
  EXPECT_LT(total_ns, 2 * 1000 * seq_ns + 2'000'000'000LL);
}

namespace {

// A DNS server with a real round trip: answers every A query with 10.1.2.3
// exactly `delay` after it arrived. Single socket, one OS thread.
class delay_server {
 public:
  explicit delay_server(std::chrono::milliseconds delay) : delay_(delay) {
    fd_ = udp_socket(port_);
    int big = 8 << 20;
    ::setsockopt(fd_.get(), SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    thread_ = std::thread([this] { run(); });
  }
  ~delay_server() {
    stop_ = true;
    thread_.join();
  }
  int port() const { return port_; }
  int answered() const { return answered_; }

 private:
  struct pending {
    std::chrono::steady_clock::time_point due;
    sockaddr_in to;
    std::vector<unsigned char> reply;
  };
  void run() {
    std::deque<pending> q;
    while (!stop_) {
      int wait_ms = 5;
      if (!q.empty()) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(q.front().due - std::chrono::steady_clock::now());
        wait_ms = static_cast<int>(std::clamp<long long>(left.count(), 0, 5));
      }
      pollfd pfd{fd_.get(), POLLIN, 0};
      if (::poll(&pfd, 1, wait_ms) == 1) {
        for (;;) {
          unsigned char buf[512];
          sockaddr_in from{};
          socklen_t fl = sizeof from;
          ssize_t n = ::recvfrom(fd_.get(), buf, sizeof buf, MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&from), &fl);
          if (n < 12) break;
          std::vector<unsigned char> r(buf, buf + n);
          r[2] = 0x81;  // QR, RD
          r[3] = 0x80;  // RA, NOERROR
          r[7] = 1;     // ANCOUNT
          const unsigned char an[] = {0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 1, 2, 3};
          r.insert(r.end(), an, an + sizeof an);
          q.push_back({std::chrono::steady_clock::now() + delay_, from, std::move(r)});
        }
      }
      auto now = std::chrono::steady_clock::now();
      while (!q.empty() && q.front().due <= now) {
        auto& p = q.front();
        ::sendto(fd_.get(), p.reply.data(), p.reply.size(), 0, reinterpret_cast<sockaddr*>(&p.to), sizeof p.to);
        ++answered_;
        q.pop_front();
      }
    }
  }
  std::chrono::milliseconds delay_;
  unique_fd fd_;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> answered_{0};
  std::thread thread_;
};

}  // namespace

// The property: 1,000 lookups from green threads on one worker finish
// in about one server round trip. The server holds every answer for 50 ms, so
// the round trip is known and large against local costs.
TEST(DnsDelayServer, ThousandConcurrentLookupsTakeAboutOneRoundTrip) {
  constexpr auto kDelay = 50ms;
  constexpr int kConcurrent = 1000;
  delay_server srv(kDelay);
  scoped_env servers("GREENRING_DNS_SERVERS", "127.0.0.1:" + std::to_string(srv.port()));
  gr::runtime rt(opts(1));
  // Sequential baseline, same worker, same server.
  auto rtt = gr::spawn([] {
    stopwatch sw;
    for (int i = 0; i < 3; ++i) dns::resolve("x.test", "", dns::hints{0, AF_INET, SOCK_STREAM, 0});
    return sw.elapsed() / 3;
  }).join();
  EXPECT_GE(rtt, kDelay);
  std::atomic<int> ok{0}, started{0};
  gr::event gate;
  std::vector<gr::join_handle<void>> hs;
  for (int i = 0; i < kConcurrent; ++i) {
    hs.push_back(gr::spawn_on(0, [&, i] {
      ++started;
      gate.wait();
      try {
        auto v = dns::resolve("n" + std::to_string(i) + ".test", "", dns::hints{0, AF_INET, SOCK_STREAM, 0});
        if (v.size() == 1 && addr_text(v[0].addr) == "10.1.2.3") ++ok;
      } catch (const dns::error& e) {
        ADD_FAILURE() << e.code().message();
      }
    }));
  }
  while (started.load() < kConcurrent) std::this_thread::yield();
  stopwatch sw;
  gate.set();
  for (auto& h : hs) h.join();
  auto total = sw.elapsed();
  EXPECT_EQ(ok.load(), kConcurrent);
  EXPECT_EQ(srv.answered(), kConcurrent + 3);
  std::printf("[ dns ] round trip %lld ms; %d concurrent lookups %lld ms (%.2f round trips; sequential: %d)\n",
              static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(rtt).count()),
              kConcurrent, static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(total).count()),
              std::chrono::duration<double>(total) / std::chrono::duration<double>(rtt), kConcurrent);
  // ~3 round trips unloaded, ~7 under ASan on a loaded 2-vCPU host; the bound
  // leaves room for that and still demands 25x better than sequential (1,000).
  EXPECT_LT(total, 40 * rtt);
}

TEST_F(DnsServer, LookupParksOnlyTheGreenThread) {
  gr::runtime rt(opts(1));
  int turns = turns_of_a_neighbour_during([](const std::atomic<int>&) {
    auto v = dns::resolve("a.test", "", dns::hints{0, AF_INET, SOCK_STREAM, 0});
    EXPECT_EQ(v.size(), 1u);
  });
  EXPECT_GT(turns, 0);
}

// ---- parity with glibc -------------------------------------------------------

namespace {

struct gai_result {
  int rc = 0;
  std::vector<std::tuple<int, int, int, std::string, std::string>> nodes;  // family, type, proto, addr bytes, canon
};

gai_result summarize(int rc, addrinfo* res) {
  gai_result r;
  r.rc = rc;
  for (addrinfo* ai = res; rc == 0 && ai; ai = ai->ai_next)
    r.nodes.emplace_back(ai->ai_family, ai->ai_socktype, ai->ai_protocol,
                         std::string(reinterpret_cast<char*>(ai->ai_addr), ai->ai_addrlen),
                         ai->ai_canonname ? ai->ai_canonname : "(null)");
  return r;
}

std::string describe(const gai_result& r) {
  std::ostringstream o;
  o << "rc=" << r.rc;
  for (auto& [f, t, p, a, c] : r.nodes) {
    sockaddr_storage ss{};
    std::memcpy(&ss, a.data(), std::min(a.size(), sizeof ss));
    o << " [" << f << "/" << t << "/" << p << " " << addr_text(ss) << " port "
      << ntohs(reinterpret_cast<sockaddr_in&>(ss).sin_port) << " " << c << "]";
  }
  return o.str();
}

gai_result glibc_gai(const char* node, const char* service, const addrinfo* hints) {
  addrinfo* res = nullptr;
  int rc = ::getaddrinfo(node, service, hints, &res);
  auto r = summarize(rc, res);
  if (rc == 0) ::freeaddrinfo(res);
  return r;
}

// Ours, on a green thread; the list is freed by glibc's freeaddrinfo.
gai_result ours_gai(const char* node, const char* service, const addrinfo* hints) {
  return gr::spawn([=] {
    addrinfo* res = nullptr;
    int rc = dns::libc_compat::getaddrinfo(node, service, hints, &res);
    auto r = summarize(rc, res);
    if (rc == 0) ::freeaddrinfo(res);
    return r;
  }).join();
}

// The names of /etc/hosts (read now), with the families each has there.
std::vector<std::pair<std::string, std::pair<bool, bool>>> hosts_names() {
  std::vector<std::pair<std::string, std::pair<bool, bool>>> out;
  std::ifstream f("/etc/hosts");
  std::string line;
  auto add = [&](const std::string& n, bool v6) {
    for (auto& [name, fam] : out)
      if (name == n) {
        (v6 ? fam.second : fam.first) = true;
        return;
      }
    out.push_back({n, {!v6, v6}});
  };
  while (std::getline(f, line)) {
    if (auto h = line.find('#'); h != std::string::npos) line.resize(h);
    std::istringstream ls(line);
    std::string addr, name;
    if (!(ls >> addr)) continue;
    bool v6 = addr.find(':') != std::string::npos;
    while (ls >> name) add(name, v6);
  }
  return out;
}

struct ParityEnv : ::testing::Test {
  void SetUp() override {
    if (!dns::libc_compat::must_fall_back()) return;
    GTEST_SKIP() << "/etc/nsswitch.conf hosts: names sources beyond files/dns: libc_compat is glibc itself here";
  }
};

}  // namespace

using DnsParity = ParityEnv;

TEST_F(DnsParity, HostsFileNamesMatchGlibc) {
  scoped_env no_fb("GREENRING_DNS_FORCE_FALLBACK", std::nullopt);
  gr::runtime rt(opts(1));
  auto names = hosts_names();
  ASSERT_FALSE(names.empty());
  int compared = 0;
  for (auto& [name, fam] : names) {
    for (int family : {AF_UNSPEC, AF_INET, AF_INET6}) {
      for (int flags : {0, AI_CANONNAME, AI_V4MAPPED, AI_V4MAPPED | AI_ALL | AI_CANONNAME, AI_ADDRCONFIG}) {
        // Only questions /etc/hosts answers: anything else would reach the real DNS.
        bool answered = family == AF_UNSPEC ? true
                        : family == AF_INET ? fam.first
                                            : fam.second || (fam.first && (flags & AI_V4MAPPED));
        if (!answered) continue;
        if ((flags & AI_ADDRCONFIG) && family == AF_INET6) continue;  // may narrow to nothing the file has
        for (int socktype : {0, int{SOCK_STREAM}, int{SOCK_DGRAM}}) {
          for (const char* service : {static_cast<const char*>(nullptr), "80", "domain"}) {
            addrinfo h{};
            h.ai_family = family;
            h.ai_flags = flags;
            h.ai_socktype = socktype;
            auto want = glibc_gai(name.c_str(), service, &h);
            auto got = ours_gai(name.c_str(), service, &h);
            EXPECT_EQ(got.rc, want.rc) << name << " " << family << " " << flags << " " << socktype << " "
                                       << (service ? service : "-");
            EXPECT_EQ(got.nodes, want.nodes) << name << " fam " << family << " flags " << flags << " type "
                                             << socktype << " svc " << (service ? service : "-") << "\n ours:  "
                                             << describe(got) << "\n glibc: " << describe(want);
            ++compared;
          }
        }
      }
    }
  }
  EXPECT_GT(compared, 50);
}

TEST_F(DnsParity, NumericHostsServicesAndBadHintsMatchGlibc) {
  scoped_env no_fb("GREENRING_DNS_FORCE_FALLBACK", std::nullopt);
  gr::runtime rt(opts(1));
  struct c {
    const char* node;
    const char* service;
    int flags, family, socktype, protocol;
    bool null_hints = false;
  };
  const c cases[] = {
      {"127.0.0.1", "80", 0, AF_UNSPEC, 0, 0},
      {"127.0.0.1", "http", 0, AF_UNSPEC, 0, 0},
      {"127.0.0.1", "domain", 0, AF_UNSPEC, 0, 0},
      {"127.0.0.1", "domain", 0, AF_UNSPEC, SOCK_DGRAM, 0},
      {"127.0.0.1", "53", 0, AF_UNSPEC, 0, IPPROTO_UDP},
      {"127.0.0.1", "53", 0, AF_UNSPEC, SOCK_RAW, 0},
      {"127.0.0.1", nullptr, 0, AF_UNSPEC, SOCK_RAW, 0},
      {"127.0.0.1", nullptr, 0, AF_UNSPEC, SOCK_RAW, 17},
      {"127.0.0.1", "53", 0, AF_UNSPEC, SOCK_SEQPACKET, 0},
      {"127.0.0.1", "http", 0, AF_UNSPEC, 0, IPPROTO_SCTP},
      {"10.0.0.1", "65535", AI_CANONNAME, AF_INET, SOCK_STREAM, 0},
      {"10.0.0.1", "65536", 0, AF_INET, SOCK_STREAM, 0},
      {"127.1", "22", AI_CANONNAME, AF_UNSPEC, 0, 0},
      {"0x7f.1", "22", 0, AF_UNSPEC, 0, 0},
      {"1.2.3.4 ", "22", AI_NUMERICHOST, AF_UNSPEC, 0, 0},
      {"1.2.3.4", nullptr, AI_V4MAPPED, AF_INET6, 0, 0},
      {"1.2.3.4", nullptr, 0, AF_INET6, 0, 0},
      {"::ffff:1.2.3.4", "ssh", 0, AF_INET, 0, 0},
      {"::1", "ssh", AI_CANONNAME, AF_UNSPEC, SOCK_STREAM, 0},
      {"::1", "ssh", 0, AF_INET, SOCK_STREAM, 0},
      {"fe80::1%1", "80", 0, AF_INET6, SOCK_STREAM, 0},
      {"fe80::1%lo", "80", 0, AF_INET6, SOCK_STREAM, 0},
      {"fe80::1%nosuchif", "80", 0, AF_INET6, SOCK_STREAM, 0},
      {"not-numeric.invalid", "80", AI_NUMERICHOST, AF_UNSPEC, 0, 0},
      {nullptr, "80", 0, AF_UNSPEC, SOCK_STREAM, 0},
      {nullptr, "80", AI_PASSIVE, AF_UNSPEC, SOCK_STREAM, 0},
      {nullptr, "80", AI_PASSIVE, AF_INET, SOCK_STREAM, 0},
      {nullptr, "80", 0, AF_INET6, 0, 0},
      {"*", "80", 0, AF_INET, 0, 0},
      {"127.0.0.1", "*", 0, AF_INET, 0, 0},
      {"127.0.0.1", "", 0, AF_INET, 0, 0},
      {nullptr, nullptr, 0, AF_UNSPEC, 0, 0},
      {"*", "*", 0, AF_UNSPEC, 0, 0},
      {nullptr, "80", AI_CANONNAME, AF_UNSPEC, 0, 0},
      {"127.0.0.1", "80", 0x10000, AF_UNSPEC, 0, 0},
      {"127.0.0.1", "80", 0, 12345, 0, 0},
      {"127.0.0.1", "80", 0, AF_UNSPEC, 999, 0},
      {"127.0.0.1", "80", 0, AF_UNSPEC, 0, 999},
      {"127.0.0.1", "nosuchservice", 0, AF_UNSPEC, 0, 0},
      {"127.0.0.1", "http", AI_NUMERICSERV, AF_UNSPEC, 0, 0},
      {"127.0.0.1", "-1", 0, AF_UNSPEC, 0, 0},
      {"127.0.0.1", "80", AI_ADDRCONFIG, AF_UNSPEC, 0, 0},
      {"::1", "80", AI_ADDRCONFIG, AF_INET6, 0, 0},
      {"127.0.0.1", "80", 0, AF_UNSPEC, 0, 0, true},
  };
  for (const auto& k : cases) {
    addrinfo h{};
    h.ai_flags = k.flags;
    h.ai_family = k.family;
    h.ai_socktype = k.socktype;
    h.ai_protocol = k.protocol;
    const addrinfo* hp = k.null_hints ? nullptr : &h;
    auto want = glibc_gai(k.node, k.service, hp);
    auto got = ours_gai(k.node, k.service, hp);
    std::string what = std::string(k.node ? k.node : "NULL") + " / " + (k.service ? k.service : "NULL") +
                       " flags " + std::to_string(k.flags) + " fam " + std::to_string(k.family) + " type " +
                       std::to_string(k.socktype) + " proto " + std::to_string(k.protocol);
    EXPECT_EQ(got.rc, want.rc) << what;
    EXPECT_EQ(got.nodes, want.nodes) << what << "\n ours:  " << describe(got) << "\n glibc: " << describe(want);
  }
}

TEST_F(DnsParity, GetnameinfoMatchesGlibc) {
  scoped_env no_fb("GREENRING_DNS_FORCE_FALLBACK", std::nullopt);
  gr::runtime rt(opts(1));
  sockaddr_in v4{};
  v4.sin_family = AF_INET;
  v4.sin_port = htons(53);
  inet_pton(AF_INET, "127.0.0.1", &v4.sin_addr);
  sockaddr_in6 v6{};
  v6.sin6_family = AF_INET6;
  v6.sin6_port = htons(8080);
  inet_pton(AF_INET6, "fe80::1", &v6.sin6_addr);
  v6.sin6_scope_id = 1;
  struct c {
    const sockaddr* sa;
    socklen_t len;
    socklen_t hostlen, servlen;
    int flags;
  };
  auto* s4 = reinterpret_cast<const sockaddr*>(&v4);
  auto* s6 = reinterpret_cast<const sockaddr*>(&v6);
  const c cases[] = {
      {s4, sizeof v4, NI_MAXHOST, NI_MAXSERV, 0},
      {s4, sizeof v4, NI_MAXHOST, NI_MAXSERV, NI_DGRAM},
      {s4, sizeof v4, NI_MAXHOST, NI_MAXSERV, NI_NUMERICSERV | NI_NAMEREQD},
      {s4, sizeof v4, NI_MAXHOST, NI_MAXSERV, NI_NUMERICHOST},
      {s4, sizeof v4, NI_MAXHOST, NI_MAXSERV, NI_NOFQDN},
      {s4, sizeof v4, 3, NI_MAXSERV, 0},
      {s4, sizeof v4, NI_MAXHOST, 3, 0},
      {s4, sizeof v4, 0, NI_MAXSERV, 0},
      {s4, sizeof v4, NI_MAXHOST, 0, 0},
      {s4, sizeof v4 - 1, NI_MAXHOST, NI_MAXSERV, 0},
      {s4, sizeof v4, NI_MAXHOST, NI_MAXSERV, 0x10000},
      {s6, sizeof v6, NI_MAXHOST, NI_MAXSERV, NI_NUMERICHOST},
      {s6, sizeof v6, NI_MAXHOST, NI_MAXSERV, NI_NUMERICHOST | NI_NUMERICSERV},
      {s6, sizeof v6, 4, NI_MAXSERV, NI_NUMERICHOST},
  };
  for (const auto& k : cases) {
    char h1[NI_MAXHOST] = "x", s1[NI_MAXSERV] = "x", h2[NI_MAXHOST] = "x", s2[NI_MAXSERV] = "x";
    int want = ::getnameinfo(k.sa, k.len, h1, k.hostlen, s1, k.servlen, k.flags);
    int got = gr::spawn([&] {
      return dns::libc_compat::getnameinfo(k.sa, k.len, h2, k.hostlen, s2, k.servlen, k.flags);
    }).join();
    std::string what = "family " + std::to_string(k.sa->sa_family) + " flags " + std::to_string(k.flags) +
                       " hostlen " + std::to_string(k.hostlen) + " servlen " + std::to_string(k.servlen);
    EXPECT_EQ(got, want) << what;
    if (want == 0) {
      if (k.hostlen) {
        EXPECT_STREQ(h2, h1) << what;
      }
      if (k.servlen) {
        EXPECT_STREQ(s2, s1) << what;
      }
    }
  }
}

namespace {

struct hostent_summary {
  int rc = 0, herr = 0;
  bool found = false;
  std::string name;
  std::vector<std::string> aliases, addrs;
  int type = 0, length = 0;
  bool operator==(const hostent_summary&) const = default;
};

std::string describe(const hostent_summary& s) {
  std::ostringstream o;
  o << "rc=" << s.rc << " herr=" << s.herr << " found=" << s.found << " name=" << s.name << " type=" << s.type
    << " len=" << s.length << " aliases=";
  for (auto& a : s.aliases) o << a << ",";
  o << " addrs=" << s.addrs.size();
  return o.str();
}

// fn(args..., ret, buf, buflen, result, h_errnop): a gethostby*_r, glibc's or ours.
template <class Fn, class... Args>
hostent_summary call_r(std::size_t buflen, Fn fn, Args... args) {
  hostent h{}, *r = nullptr;
  std::vector<char> buf(buflen);
  int herr = 0;
  hostent_summary s;
  s.rc = fn(args..., &h, buf.data(), buf.size(), &r, &herr);
  s.found = r != nullptr;
  if (r) {
    s.name = r->h_name;
    for (char** a = r->h_aliases; *a; ++a) s.aliases.emplace_back(*a);
    for (char** a = r->h_addr_list; *a; ++a) s.addrs.emplace_back(*a, static_cast<std::size_t>(r->h_length));
    s.type = r->h_addrtype;
    s.length = r->h_length;
  } else {
    s.herr = herr;
  }
  return s;
}

// {want, got}: glibc's call here, ours on a green thread, same arguments.
template <class Glibc, class Ours, class... Args>
std::pair<hostent_summary, hostent_summary> glibc_and_ours_r(Glibc glibc, Ours ours, std::size_t buflen,
                                                             Args... args) {
  auto want = call_r(buflen, glibc, args...);
  auto got = gr::spawn([&] { return call_r(buflen, ours, args...); }).join();
  return {want, got};
}

}  // namespace

TEST_F(DnsParity, GethostbynameRMatchesGlibc) {
  scoped_env no_fb("GREENRING_DNS_FORCE_FALLBACK", std::nullopt);
  gr::runtime rt(opts(1));
  std::vector<std::string> names = {"localhost", "1.2.3.4", "127.0.0.1"};
  for (auto& [n, fam] : hosts_names())
    if (fam.first) names.push_back(n);
  for (const auto& n : names) {
    for (std::size_t buflen : {std::size_t{1024}, std::size_t{8}}) {
      auto [want, got] =
          glibc_and_ours_r(::gethostbyname_r, dns::libc_compat::gethostbyname_r, buflen, n.c_str());
      EXPECT_EQ(got, want) << n << " buflen " << buflen << "\n ours:  " << describe(got)
                           << "\n glibc: " << describe(want);
      auto [want2, got2] =
          glibc_and_ours_r(::gethostbyname2_r, dns::libc_compat::gethostbyname2_r, buflen, n.c_str(), AF_INET);
      EXPECT_EQ(got2, want2) << n << " (2_r) buflen " << buflen << "\n ours:  " << describe(got2)
                             << "\n glibc: " << describe(want2);
    }
  }
  in_addr lo{};
  inet_pton(AF_INET, "127.0.0.1", &lo);
  auto [want, got] = glibc_and_ours_r(::gethostbyaddr_r, dns::libc_compat::gethostbyaddr_r, 1024, &lo,
                                      socklen_t{sizeof lo}, AF_INET);
  EXPECT_EQ(got, want) << "\n ours:  " << describe(got) << "\n glibc: " << describe(want);
}

// Numeric names are answered before any source (glibc's digits_dots): dotted
// quads (also short forms inet_aton takes), IPv6 literals, and malformed
// all-numeric names (HOST_NOT_FOUND at once), for both families.
TEST_F(DnsParity, NumericNamesMatchGlibcForBothFamilies) {
  scoped_env no_fb("GREENRING_DNS_FORCE_FALLBACK", std::nullopt);
  gr::runtime rt(opts(1));
  for (const char* n : {"1.2.3.4", "1.2.3", "255.255.255.255", "1.2.3.999", "::1", "fe80::1", "::ffff:1.2.3.4",
                        "1:2:3:4:5:6:7:8", ":::", "a::b"}) {
    for (int af : {AF_INET, AF_INET6}) {
      auto [want, got] =
          glibc_and_ours_r(::gethostbyname2_r, dns::libc_compat::gethostbyname2_r, std::size_t{1024}, n, af);
      EXPECT_EQ(got, want) << n << " af " << af << "\n ours:  " << describe(got) << "\n glibc: " << describe(want);
    }
  }
}

// ---- the glibc fallback pool ----------------------------------------------------

TEST(DnsFallback, ForcedFallbackGivesGlibcAnswersWithoutBlockingTheWorker) {
  scoped_env fb("GREENRING_DNS_FORCE_FALLBACK", "1");
  ASSERT_TRUE(dns::libc_compat::must_fall_back());
  gr::runtime rt(opts(1));
  addrinfo h{};
  h.ai_flags = AI_CANONNAME;
  h.ai_socktype = SOCK_STREAM;
  auto want = glibc_gai("localhost", "80", &h);
  auto before = greenring::detail::dns::fallback_calls();
  auto got = gr::spawn_on(0, [&] {
    addrinfo* res = nullptr;
    int rc = dns::libc_compat::getaddrinfo("localhost", "80", &h, &res);
    auto r = summarize(rc, res);
    if (rc == 0) ::freeaddrinfo(res);  // glibc's own list, freed by glibc
    return r;
  }).join();
  EXPECT_EQ(got.rc, want.rc);
  EXPECT_EQ(got.nodes, want.nodes) << "\n ours:  " << describe(got) << "\n glibc: " << describe(want);
  EXPECT_EQ(greenring::detail::dns::fallback_calls(), before + 1);

  // The worker is not blocked while a helper runs the call: the helper's job
  // (the same run_on_helper the glibc calls above go through) returns only
  // once another green thread on the same worker has run and counted. A
  // blocked worker would never run it (the job gives up after 10 s and the
  // count stays 0).
  int turns = turns_of_a_neighbour_during([](const std::atomic<int>& seen_while_in_flight) {
    greenring::detail::dns::run_on_helper([&] {
      auto until = std::chrono::steady_clock::now() + 10s;
      while (seen_while_in_flight.load() < 100 && std::chrono::steady_clock::now() < until)
        std::this_thread::yield();
    });
  });
  EXPECT_GE(turns, 100);

  // The other entry points take the same path and give glibc's answers.
  auto [r_want, r_got] = glibc_and_ours_r(::gethostbyname_r, dns::libc_compat::gethostbyname_r, 1024, "localhost");
  EXPECT_EQ(r_got, r_want) << describe(r_got) << " vs " << describe(r_want);
  sockaddr_in v4{};
  v4.sin_family = AF_INET;
  v4.sin_port = htons(22);
  inet_pton(AF_INET, "127.0.0.1", &v4.sin_addr);
  char h1[NI_MAXHOST], s1[NI_MAXSERV], h2[NI_MAXHOST], s2[NI_MAXSERV];
  ASSERT_EQ(::getnameinfo(reinterpret_cast<sockaddr*>(&v4), sizeof v4, h1, sizeof h1, s1, sizeof s1, 0), 0);
  ASSERT_EQ(gr::spawn([&] {
    return dns::libc_compat::getnameinfo(reinterpret_cast<sockaddr*>(&v4), sizeof v4, h2, sizeof h2, s2, sizeof s2, 0);
  }).join(), 0);
  EXPECT_STREQ(h2, h1);
  EXPECT_STREQ(s2, s1);
  // resolve() honours the fallback too.
  auto v = gr::spawn([] { return dns::resolve("localhost", "", dns::hints{0, AF_INET, SOCK_STREAM, 0}); }).join();
  ASSERT_FALSE(v.empty());
  EXPECT_EQ(addr_text(v[0].addr), "127.0.0.1");
  EXPECT_GT(greenring::detail::dns::fallback_calls(), before + 3);
}
