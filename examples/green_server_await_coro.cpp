// green_server_await_coro: a thread-per-connection server on green threads
// whose handler calls a *coroutine* library through greenring::await_.
//
// Three pieces, one process, one greenring runtime:
//   1. quote_lib: a client library written with C++20 coroutines, in the style
//      of an async SDK: every call is a greenring::task. It asks two replicas of
//      an upstream service at once (when_any: the first answer wins, the slower
//      request is cancelled), bounds the whole call with with_timeout, and does
//      its socket I/O with greenring::co::connect/write/read on the worker's
//      io_uring - no green thread of its own.
//   2. The upstream replicas it talks to: coroutines too (co::accept/read/write,
//      one co_spawn'ed coroutine per connection), one of them deliberately slow.
//   3. The front end: a line-oriented TCP server written as blocking code, one
//      green thread per connection (greenring::io::accept/read/write). For each
//      request line it calls `greenring::await_(quote_lib::quote(...))`: only
//      that green thread waits; the worker keeps running everything else.
//
//   green_server_await_coro [--port P] [--workers N]     serve until killed
//   green_server_await_coro --demo [--connections C] [--lines L] [--workers N]
//        start everything on loopback ports, run C client connections sending
//        L request lines each, check every answer, print what was measured.
#include "example_util.hpp"

#include <greenring/greenring.hpp>
#include <greenring/interop/interop.hpp>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <variant>
#include <vector>

namespace gr = greenring;
using namespace std::chrono_literals;

namespace {

std::string expected_quote(const std::string& symbol) {
  std::string up = symbol;
  for (char& c : up) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return up + "=" + std::to_string(symbol.size() * 10 + 7);
}

// ---- 1. the coroutine library ---------------------------------------------------------------

namespace quote_lib {

// One request to one replica: connect, send "symbol\n", read "answer\n".
gr::task<std::string> ask(uint16_t port, std::string symbol) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct closer {
    int fd;
    ~closer() { ::close(fd); }
  } guard{fd};
  sockaddr_in a = example::loopback(port);
  if (co_await gr::co::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
    throw std::runtime_error("quote_lib: connect failed");
  std::string line = symbol + "\n";
  co_await gr::co::write(fd, line.data(), line.size());
  std::string resp;
  char buf[128];
  while (resp.find('\n') == std::string::npos) {
    ssize_t n = co_await gr::co::read(fd, buf, sizeof buf);
    if (n <= 0) throw std::runtime_error("quote_lib: upstream closed");
    resp.append(buf, static_cast<std::size_t>(n));
  }
  co_return resp.substr(0, resp.find('\n'));
}

// The public call: both replicas at once, first answer wins, 2 s overall.
gr::task<std::string> quote(uint16_t replica_a, uint16_t replica_b, std::string symbol) {
  auto first = co_await gr::with_timeout(gr::when_any(ask(replica_a, symbol), ask(replica_b, symbol)), 2s);
  co_return std::visit([](std::string& answer) { return std::move(answer); }, first);
}

}  // namespace quote_lib

// ---- 2. the upstream replicas (coroutines) ---------------------------------------------------

gr::task<void> replica_conn(int fd, std::chrono::milliseconds delay) {
  std::string req;
  char buf[128];
  while (req.find('\n') == std::string::npos) {
    ssize_t n = co_await gr::co::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    req.append(buf, static_cast<std::size_t>(n));
  }
  if (req.find('\n') != std::string::npos) {
    if (delay.count() > 0) co_await gr::co::sleep_for(delay);
    std::string out = expected_quote(req.substr(0, req.find('\n'))) + "\n";
    co_await gr::co::write(fd, out.data(), out.size());
  }
  ::close(fd);
}

gr::task<void> replica(int lfd, std::chrono::milliseconds delay) {
  for (;;) {
    int c = static_cast<int>(co_await gr::co::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC));
    if (c < 0) co_return;
    gr::co_spawn(replica_conn(c, delay)).detach();
  }
}

// ---- 3. the green-thread front end: blocking code -----------------------------------------------

void serve_connection(int fd, uint16_t ra, uint16_t rb) {
  std::string pending;
  char buf[512];
  for (;;) {
    ssize_t n = gr::io::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    pending.append(buf, static_cast<std::size_t>(n));
    for (std::size_t nl; (nl = pending.find('\n')) != std::string::npos;) {
      std::string symbol = pending.substr(0, nl);
      pending.erase(0, nl + 1);
      std::string answer;
      try {
        // Synchronous call into the coroutine library: parks this green thread only.
        answer = gr::await_(quote_lib::quote(ra, rb, symbol));
      } catch (const std::exception& e) {
        answer = std::string("error: ") + e.what();
      }
      answer += "\n";
      if (gr::io::write(fd, answer.data(), answer.size()) != static_cast<ssize_t>(answer.size())) break;
    }
  }
  gr::io::close(fd);
}

void front_end(int lfd, uint16_t ra, uint16_t rb) {
  for (;;) {
    int c = gr::io::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) return;
    gr::spawn(serve_connection, c, ra, rb).detach();
  }
}

}  // namespace

int main(int argc, char** argv) {
  example::command_line cl{.port = 7070};
  int connections = 32, lines = 50;
  if (!example::parse_command_line(argc, argv, cl, {{"--connections", &connections}, {"--lines", &lines}},
                                   "[--connections C] [--lines L]"))
    return 2;
  gr::options o;
  o.workers = cl.workers;
  gr::runtime rt(o);

  int fa = example::listen_on(0), fb = example::listen_on(0);
  int ff = example::listen_on(cl.demo ? 0 : cl.port);
  uint16_t ra = example::port_of(fa), rb = example::port_of(fb), front = example::port_of(ff);
  gr::co_spawn(replica(fa, 0ms)).detach();
  gr::co_spawn(replica(fb, 3ms)).detach();  // the slow replica: usually loses when_any
  gr::spawn(front_end, ff, ra, rb).detach();
  std::printf("green_server_await_coro: %s, %u workers; line server on 127.0.0.1:%u (replicas :%u, :%u)\n",
              rt.backend_name(), rt.workers(), front, ra, rb);
  if (!cl.demo) {
    gr::event never;
    never.wait();
  }

  std::atomic<int> good{0}, bad{0};
  auto t0 = std::chrono::steady_clock::now();
  std::vector<gr::join_handle<void>> clients;
  for (int c = 0; c < connections; ++c)
    clients.push_back(gr::spawn([&, c] {
      int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_in a = example::loopback(front);
      if (gr::io::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        bad += lines;
        gr::io::close(fd);
        return;
      }
      std::string pending;
      char buf[512];
      for (int l = 0; l < lines; ++l) {
        std::string sym = "sym" + std::to_string(c) + "x" + std::to_string(l);
        std::string req = sym + "\n";
        gr::io::write(fd, req.data(), req.size());
        while (pending.find('\n') == std::string::npos) {
          ssize_t n = gr::io::read(fd, buf, sizeof buf);
          if (n <= 0) break;
          pending.append(buf, static_cast<std::size_t>(n));
        }
        auto nl = pending.find('\n');
        if (nl == std::string::npos) {
          bad++;
          break;
        }
        (pending.substr(0, nl) == expected_quote(sym) ? good : bad)++;
        pending.erase(0, nl + 1);
      }
      gr::io::close(fd);
    }));
  for (auto& c : clients) c.join();
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  int total = connections * lines;
  std::printf("demo: %d connections x %d lines: %d ok, %d wrong, %.0f requests/s\n", connections, lines,
              good.load(), bad.load(), total / s);
  return bad.load() == 0 && good.load() == total ? 0 : 1;
}
