// bench/micro/dns_bench.cpp: lookups per second through a local dnsmasq, on
// one worker, next to the same number of OS threads.
//
//   dns/green_threads/N   N green threads on ONE worker (options.workers = 1),
//                         each doing one greenring::dns::resolve per iteration
//                         round; one iteration = N lookups (spawn+join of the N
//                         green threads included: ~1 us each, beside ~100 us
//                         of lookup).
//   dns/os_threads/N      N OS threads (Google Benchmark ->Threads(N)), each
//                         calling greenring::dns::resolve on a plain thread:
//                         its own blocking c-ares channel, ppoll in the thread.
//                         (glibc's getaddrinfo cannot be pointed at a server
//                         on a non-53 port without a private resolv.conf.)
// Both ask dnsmasq for "a.test" (A only); items_per_second is lookups/s.
// The benchmark starts dnsmasq itself (/usr/sbin/dnsmasq, Debian dnsmasq-base)
// on a free loopback port and exits with an error if it cannot.
#include "helpers/dnsmasq.hpp"

#include <benchmark/benchmark.h>

#include <greenring/dns.hpp>
#include <greenring/greenring.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

namespace dns = greenring::dns;

pid_t g_dnsmasq = -1;

int free_udp_port() {
  int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
  socklen_t len = sizeof sa;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
  ::close(fd);
  return ntohs(sa.sin_port);
}

bool start_dnsmasq() {
  int port = free_udp_port();
  g_dnsmasq = gr_test::spawn_dnsmasq(port, {"--host-record=a.test,10.1.2.3"});
  if (g_dnsmasq < 0) return false;
  ::setenv("GREENRING_DNS_SERVERS", ("127.0.0.1:" + std::to_string(port)).c_str(), 1);
  for (int i = 0; i < 50; ++i)
    if (gr_test::dnsmasq_answers(port, 100)) return true;
  return false;
}

const dns::hints kHints{0, AF_INET, SOCK_STREAM, 0};

void green_threads(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  greenring::options o;
  o.workers = 1;
  greenring::runtime rt(o);
  greenring::spawn_on(0, [&] {
    std::vector<greenring::join_handle<void>> hs(n);
    for (auto _ : state) {
      for (int i = 0; i < n; ++i)
        hs[i] = greenring::spawn_on(0, [] { benchmark::DoNotOptimize(dns::resolve("a.test", "", kHints)); });
      for (auto& h : hs) h.join();
    }
    state.SetItemsProcessed(state.iterations() * n);
  }).join();
}

void os_threads(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(dns::resolve("a.test", "", kHints));
  state.SetItemsProcessed(state.iterations());
}

BENCHMARK(green_threads)->Name("dns/green_threads")->Arg(16)->Arg(64)->UseRealTime()->MinTime(0.5);
BENCHMARK(os_threads)->Name("dns/os_threads")->Threads(16)->Threads(64)->UseRealTime()->MinTime(0.5);

}  // namespace

int main(int argc, char** argv) {
  if (!start_dnsmasq()) {
    std::fprintf(stderr, "dns_bench: could not start /usr/sbin/dnsmasq (Debian dnsmasq-base)\n");
    if (g_dnsmasq > 0) ::kill(g_dnsmasq, SIGKILL);
    return 1;
  }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  ::kill(g_dnsmasq, SIGTERM);
  ::waitpid(g_dnsmasq, nullptr, 0);
  return 0;
}
