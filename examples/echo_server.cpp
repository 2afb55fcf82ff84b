// echo_server: a TCP echo server on greenring's linked API, one green thread
// per connection, written exactly as a thread-per-connection server would be:
// blocking accept, read and write, no callbacks, no event loop in sight.
//
//   echo_server [--port P] [--workers N]            serve until killed
//   echo_server --demo [--connections C] [--seconds S] [--size B] [--workers N]
//        start the server on a loopback port, drive it with C concurrent
//        client green threads (a second runtime in the same process) doing
//        request/response round trips of B bytes for S seconds, verify every
//        byte, and print what was measured.
#include "example_util.hpp"

#include <greenring/greenring.hpp>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace gr = greenring;
using namespace std::chrono;

namespace {

// Echo until the peer closes. Each green thread blocks only itself.
void serve_connection(int fd) {
  char buf[16384];
  for (;;) {
    ssize_t n = gr::io::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    if (gr::io::write(fd, buf, static_cast<size_t>(n)) != n) break;
  }
  gr::io::close(fd);
}

void accept_loop(int lfd) {
  for (;;) {
    int c = gr::io::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) {
      if (errno == EMFILE || errno == ENFILE) {
        gr::this_fiber::sleep_for(milliseconds(10));
        continue;
      }
      break;  // listener closed (EBADF) or cancelled
    }
    int one = 1;
    ::setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    gr::spawn(serve_connection, c).detach();
  }
}

long peak_rss_kib() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

struct client_stats {
  long round_trips = 0;
  long bytes = 0;
  long errors = 0;
  std::vector<uint32_t> lat_us;  // sampled
};

client_stats run_client(uint16_t port, size_t size, steady_clock::time_point until, unsigned seed) {
  client_stats st;
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a = example::loopback(port);
  if (gr::io::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ++st.errors;
    gr::io::close(fd);
    return st;
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  std::vector<char> out(size), in(size);
  unsigned x = seed;
  while (steady_clock::now() < until) {
    for (auto& c : out) c = static_cast<char>(x = x * 1103515245u + 12345u);
    auto t0 = steady_clock::now();
    if (gr::io::write(fd, out.data(), size) != static_cast<ssize_t>(size)) {
      ++st.errors;
      break;
    }
    size_t got = 0;
    while (got < size) {
      ssize_t n = gr::io::read(fd, in.data() + got, size - got);
      if (n <= 0) break;
      got += static_cast<size_t>(n);
    }
    if (got != size || std::memcmp(in.data(), out.data(), size) != 0) {
      ++st.errors;
      break;
    }
    auto us = duration_cast<microseconds>(steady_clock::now() - t0).count();
    if ((st.round_trips & 7) == 0) st.lat_us.push_back(static_cast<uint32_t>(us));
    ++st.round_trips;
    st.bytes += static_cast<long>(size);
  }
  gr::io::close(fd);
  return st;
}

int demo(unsigned connections, double seconds, size_t size, unsigned workers) {
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur < 2 * connections + 64) {
    connections = static_cast<unsigned>((rl.rlim_cur - 64) / 2);
    std::printf("note: RLIMIT_NOFILE %llu caps the demo at %u connections\n",
                static_cast<unsigned long long>(rl.rlim_cur), connections);
  }
  gr::options so;
  so.workers = workers;
  gr::runtime server(so);
  int lfd = example::listen_on(0, 4096);
  uint16_t port = example::port_of(lfd);
  auto acceptor = gr::spawn(accept_loop, lfd);

  gr::options co;
  co.workers = 1;
  gr::runtime clients(co);
  auto until = steady_clock::now() + duration_cast<steady_clock::duration>(duration<double>(seconds));
  auto t0 = steady_clock::now();
  auto driver = gr::spawn_on(0, [&] {
    std::vector<gr::join_handle<client_stats>> hs;
    hs.reserve(connections);
    for (unsigned i = 0; i < connections; ++i) hs.push_back(gr::spawn(run_client, port, size, until, i + 1));
    std::vector<client_stats> all;
    for (auto& h : hs) all.push_back(h.join());
    return all;
  });
  auto all = driver.join();
  double elapsed = duration<double>(steady_clock::now() - t0).count();

  long rts = 0, bytes = 0, errors = 0;
  std::vector<uint32_t> lat;
  for (auto& s : all) {
    rts += s.round_trips;
    bytes += s.bytes;
    errors += s.errors;
    lat.insert(lat.end(), s.lat_us.begin(), s.lat_us.end());
  }
  std::sort(lat.begin(), lat.end());
  auto pct = [&](double p) { return lat.empty() ? 0u : lat[std::min(lat.size() - 1, size_t(p * lat.size()))]; };
  std::printf("greenring echo demo: backend=%s (%s) server_workers=%u client_workers=1\n", server.backend_name(),
              server.backend_features().c_str(), server.workers());
  std::printf("  connections      %u (one green thread each, both sides)\n", connections);
  std::printf("  payload          %zu bytes per round trip, every byte verified\n", size);
  std::printf("  duration         %.2f s\n", elapsed);
  std::printf("  round trips      %ld (%.0f/s)\n", rts, rts / elapsed);
  std::printf("  throughput       %.1f MiB/s each way\n", bytes / elapsed / (1 << 20));
  std::printf("  latency us       p50 %u  p99 %u  max %u\n", pct(0.50), pct(0.99), lat.empty() ? 0 : lat.back());
  std::printf("  errors           %ld\n", errors);
  std::printf("  peak RSS         %.1f MiB (server + clients, one process)\n", peak_rss_kib() / 1024.0);
  gr::io::close(lfd);  // ends the acceptor with EBADF
  acceptor.join();
  return errors == 0 && rts > 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  bool demo_mode = false;
  unsigned connections = 1000, workers = 0;
  double seconds = 3;
  size_t size = 64;
  uint16_t port = 7777;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "echo_server: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--demo") demo_mode = true;
    else if (a == "--connections") connections = static_cast<unsigned>(std::atoi(next()));
    else if (a == "--seconds") seconds = std::atof(next());
    else if (a == "--size") size = static_cast<size_t>(std::atol(next()));
    else if (a == "--workers") workers = static_cast<unsigned>(std::atoi(next()));
    else if (a == "--port") port = static_cast<uint16_t>(std::atoi(next()));
    else {
      std::fprintf(stderr,
                   "usage: echo_server [--port P] [--workers N]\n"
                   "       echo_server --demo [--connections C] [--seconds S] [--size B] [--workers N]\n");
      return 2;
    }
  }
  if (demo_mode) return demo(connections, seconds, size ? size : 1, workers ? workers : 1);
  gr::options o;
  o.workers = workers;
  gr::runtime rt(o);
  int lfd = example::listen_on(port, 4096);
  std::printf("echo_server: listening on 127.0.0.1:%u (%s, %u workers)\n", example::port_of(lfd), rt.backend_name(),
              rt.workers());
  std::fflush(stdout);
  gr::spawn(accept_loop, lfd).join();
  return 0;
}
