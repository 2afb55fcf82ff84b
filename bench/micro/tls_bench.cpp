// bench/micro/tls_bench.cpp: concurrent TLS handshakes per second, green
// threads on one worker vs the same work on OS threads with blocking sockets.
//
// One server for every variant: a greenring TLS server (tls::stream::accept,
// one green thread per connection) on its own 1-worker runtime, certificate
// ECDSA P-256 (made with the openssl CLI at start-up) so the handshake is not
// dominated by RSA. Every handshake is a full one: resumption is off on both
// ends; clients verify the chain against the test CA and the host name.
// TLS 1.3 (the default) on both sides.
//
//   handshakes/greenring_one_worker/N   N green threads on one client worker,
//       each: socket, io::connect, tls::stream::connect("localhost"),
//       shutdown (close_notify), close. One iteration = N handshakes.
//   handshakes/os_threads_blocking/N    N persistent OS threads released by a
//       barrier, each: socket, ::connect, SSL_set_fd + SSL_connect on the
//       blocking fd, SSL_shutdown, close — plain OpenSSL, same client
//       settings (CA, SSL_set1_host, SNI).
//   handshakes/os_threads_blocking_one_cpu/N   the same, every client thread
//       pinned to CPU 0: the green variant's client side has one worker, so
//       this is the like-for-like CPU budget (the unpinned threads may use
//       every CPU).
// items_per_second = handshakes per second. All figures are real time; for
// the green variant the loop runs on the client worker, so its CPU column is
// the client worker's CPU time.
#include "helpers/tls_util.hpp"

#include <benchmark/benchmark.h>

#include <greenring/greenring.hpp>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <pthread.h>
#include <sched.h>

#include <barrier>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

namespace gr = greenring;
namespace tls = greenring::tls;

namespace {

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "tls_bench: %s: %s\n", what, std::strerror(errno));
  ERR_print_errors_fp(stderr);
  std::abort();
}

gr::options n_workers(unsigned n) {
  gr::options o;
  o.workers = n;
  return o;
}

// The shared server: PKI, listener, and a 1-worker runtime accepting forever
// (its destructor at exit cancels the acceptor).
struct server {
  gr_test::test_pki pki;
  unsigned short port = 0;
  int lfd = -1;
  std::unique_ptr<tls::context> ctx;
  std::unique_ptr<gr::runtime> rt;

  server() {
    if (!pki.ok) die("openssl CLI could not make the test certificates");
    lfd = gr_test::tcp_listen(port, 4096);
    if (lfd < 0) die("listen");
    ctx = std::make_unique<tls::context>(tls::role::server);
    ctx->use_certificate_chain_file(pki.cert);
    ctx->use_private_key_file(pki.key);
    ctx->set_session_resumption(false);
    rt = std::make_unique<gr::runtime>(n_workers(1));
    gr::spawn([this] {
      for (;;) {
        int fd = gr::io::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd < 0) continue;
        gr::spawn([this, fd] {
          try {
            tls::stream s(*ctx, fd, tls::fd_ownership::owned);
            s.accept(gr::after(std::chrono::seconds(30)));
            char buf[64];
            std::error_code ec;
            while (s.read(buf, sizeof buf, ec, gr::after(std::chrono::seconds(30))) > 0) {
            }
          } catch (const tls::error&) {
          }
        }).detach();
      }
    }).detach();
  }
};

// Created on first use, destroyed at the end of main: a runtime must not be
// torn down by static destructors (Boost.Fiber's thread-locals of the main
// thread may already be gone by then).
std::unique_ptr<server> g_server;
server& srv() {
  if (!g_server) g_server = std::make_unique<server>();
  return *g_server;
}

int tcp_socket_connected(bool green) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) die("socket");
  sockaddr_in a = gr_test::loopback(srv().port);
  int r = green ? gr::io::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a)
                : ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  if (r != 0) die("connect");
  return fd;
}

void green_handshakes(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  server& s = srv();
  tls::context cctx(tls::role::client);
  cctx.load_verify_file(s.pki.ca);
  cctx.set_session_resumption(false);
  gr::runtime rt(n_workers(1));
  gr::spawn([&] {
    std::vector<gr::join_handle<void>> hs;
    hs.reserve(static_cast<std::size_t>(n));
    for (auto _ : state) {
      hs.clear();
      for (int i = 0; i < n; ++i)
        hs.push_back(gr::spawn([&] {
          tls::stream c(cctx, tcp_socket_connected(true), tls::fd_ownership::owned);
          c.connect("localhost");
          c.shutdown();
        }));
      for (auto& h : hs) h.join();
    }
  }).join();
  state.SetItemsProcessed(state.iterations() * n);
}

void os_thread_handshakes(benchmark::State& state, bool one_cpu) {
  const int n = static_cast<int>(state.range(0));
  server& s = srv();
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (!ctx || SSL_CTX_load_verify_file(ctx, s.pki.ca.c_str()) != 1) die("client SSL_CTX");
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  bool stop = false;
  std::barrier start(n + 1), done(n + 1);
  std::vector<std::thread> ts;
  for (int i = 0; i < n; ++i)
    ts.emplace_back([&] {
      if (one_cpu) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(0, &set);
        if (pthread_setaffinity_np(pthread_self(), sizeof set, &set) != 0) die("pthread_setaffinity_np");
      }
      for (;;) {
        start.arrive_and_wait();
        if (stop) return;
        int fd = tcp_socket_connected(false);
        SSL* ssl = SSL_new(ctx);
        if (!ssl || SSL_set_fd(ssl, fd) != 1 || SSL_set_tlsext_host_name(ssl, "localhost") != 1 ||
            SSL_set1_host(ssl, "localhost") != 1 || SSL_connect(ssl) != 1)
          die("SSL_connect");
        SSL_shutdown(ssl);
        SSL_free(ssl);
        ::close(fd);
        done.arrive_and_wait();
      }
    });
  for (auto _ : state) {
    start.arrive_and_wait();
    done.arrive_and_wait();
  }
  stop = true;
  start.arrive_and_wait();
  for (auto& t : ts) t.join();
  SSL_CTX_free(ctx);
  state.SetItemsProcessed(state.iterations() * n);
}

}  // namespace

BENCHMARK(green_handshakes)->Name("handshakes/greenring_one_worker")->Arg(16)->Arg(128)->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(os_thread_handshakes, any_cpu, false)->Name("handshakes/os_threads_blocking")->Arg(16)->Arg(128)
    ->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(os_thread_handshakes, one_cpu, true)->Name("handshakes/os_threads_blocking_one_cpu")->Arg(16)
    ->Arg(128)->UseRealTime()->Unit(benchmark::kMillisecond);

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  g_server.reset();
  return 0;
}
