// coro_http_legacy_client: a coroutine HTTP server whose handler calls a legacy
// *synchronous* client library through greenring::async_.
//
// Three pieces, one process, one greenring runtime:
//   1. legacy_kv: a blocking key-value client library, written the way such
//      libraries are - socket, connect, write, read-until-newline, close - with
//      no idea that coroutines exist. Its blocking calls are greenring's green
//      I/O (under the LD_PRELOAD shim they could be plain libc calls).
//   2. A key-value backend it talks to: a thread-per-connection server on green
//      threads (blocking accept/read/write).
//   3. The front end: an HTTP/1.0 server written with C++20 coroutines
//      (greenring::co::accept/read/write, one co_spawn'ed coroutine per
//      connection). GET /kv/<key> calls the legacy library through
//      `co_await greenring::async_(legacy_kv::get, ...)`: the blocking call
//      tree runs on its own green thread while the coroutine is suspended, and
//      the coroutine resumes on its worker with the result.
//
//   coro_http_legacy_client [--port P] [--workers N]     serve until killed
//   coro_http_legacy_client --demo [--requests N] [--concurrency C] [--workers N]
//        start everything on loopback ports, send N requests from C client
//        green threads, check every response body, print what was measured.
#include "example_util.hpp"

#include <greenring/greenring.hpp>
#include <greenring/interop/interop.hpp>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace gr = greenring;

namespace {

// ---- 1. the legacy synchronous client library ----------------------------------------

namespace legacy_kv {

// Returns the value stored under `key` at 127.0.0.1:port, or throws.
std::string get(uint16_t port, std::string key) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error("legacy_kv: socket");
  sockaddr_in a = example::loopback(port);
  if (gr::io::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    gr::io::close(fd);
    throw std::runtime_error("legacy_kv: connect");
  }
  std::string req = "GET " + key + "\n";
  std::string resp;
  if (gr::io::write(fd, req.data(), req.size()) == static_cast<ssize_t>(req.size())) {
    char buf[256];
    while (resp.find('\n') == std::string::npos) {
      ssize_t n = gr::io::read(fd, buf, sizeof buf);
      if (n <= 0) break;
      resp.append(buf, static_cast<std::size_t>(n));
    }
  }
  gr::io::close(fd);
  auto nl = resp.find('\n');
  if (nl == std::string::npos) throw std::runtime_error("legacy_kv: short response");
  return resp.substr(0, nl);
}

}  // namespace legacy_kv

// ---- 2. the backend: green threads, blocking calls -----------------------------------------

std::string value_of(const std::string& key) { return "value-of-" + key; }

void kv_backend(int lfd) {
  for (;;) {
    int c = gr::io::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) return;
    gr::spawn([c] {
      std::string line;
      char buf[256];
      while (line.find('\n') == std::string::npos) {
        ssize_t n = gr::io::read(c, buf, sizeof buf);
        if (n <= 0) break;
        line.append(buf, static_cast<std::size_t>(n));
      }
      if (line.rfind("GET ", 0) == 0 && line.find('\n') != std::string::npos) {
        std::string v = value_of(line.substr(4, line.find('\n') - 4)) + "\n";
        gr::io::write(c, v.data(), v.size());
      }
      gr::io::close(c);
    }).detach();
  }
}

// ---- 3. the coroutine HTTP front end ------------------------------------------------------

gr::task<void> write_all(int fd, const std::string& s) {
  co_await gr::co::write(fd, s.data(), s.size());
}

gr::task<void> handle_http(int fd, uint16_t kv_port) {
  std::string req;
  char buf[1024];
  while (req.find("\r\n\r\n") == std::string::npos && req.size() < 8192) {
    ssize_t n = co_await gr::co::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    req.append(buf, static_cast<std::size_t>(n));
  }
  std::string status = "404 Not Found", body = "not found\n";
  if (req.rfind("GET /kv/", 0) == 0) {
    std::string key = req.substr(8, req.find(' ', 8) - 8);
    try {
      // The whole blocking call tree runs on a new green thread; this
      // coroutine is suspended meanwhile and resumes here on its own worker.
      body = co_await gr::async_(legacy_kv::get, kv_port, key) + "\n";
      status = "200 OK";
    } catch (const std::exception& e) {
      status = "502 Bad Gateway";
      body = std::string(e.what()) + "\n";
    }
  }
  co_await write_all(fd, "HTTP/1.0 " + status + "\r\nContent-Length: " + std::to_string(body.size()) +
                             "\r\nConnection: close\r\n\r\n" + body);
  ::close(fd);
}

gr::task<void> http_server(int lfd, uint16_t kv_port) {
  for (;;) {
    int c = static_cast<int>(co_await gr::co::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC));
    if (c < 0) co_return;
    gr::co_spawn(handle_http(c, kv_port)).detach();  // one coroutine per connection
  }
}

// ---- demo load: plain blocking HTTP clients on green threads -----------------------------------

std::string http_get(uint16_t port, const std::string& path) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a = example::loopback(port);
  std::string resp;
  if (gr::io::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
    std::string req = "GET " + path + " HTTP/1.0\r\n\r\n";
    gr::io::write(fd, req.data(), req.size());
    char buf[1024];
    for (ssize_t n; (n = gr::io::read(fd, buf, sizeof buf)) > 0;) resp.append(buf, static_cast<std::size_t>(n));
  }
  gr::io::close(fd);
  auto p = resp.find("\r\n\r\n");
  return p == std::string::npos ? "" : resp.substr(p + 4);
}

}  // namespace

int main(int argc, char** argv) {
  example::command_line cl{.port = 8080};
  int requests = 2000, concurrency = 64;
  if (!example::parse_command_line(argc, argv, cl, {{"--requests", &requests}, {"--concurrency", &concurrency}},
                                   "[--requests N] [--concurrency C]"))
    return 2;
  gr::options o;
  o.workers = cl.workers;
  gr::runtime rt(o);

  int kv_fd = example::listen_on(0);
  int http_fd = example::listen_on(cl.demo ? 0 : cl.port);
  uint16_t kv_port = example::port_of(kv_fd), http_port = example::port_of(http_fd);
  gr::spawn(kv_backend, kv_fd).detach();
  gr::co_spawn(http_server(http_fd, kv_port)).detach();
  std::printf("coro_http_legacy_client: %s, %u workers; HTTP on 127.0.0.1:%u, kv backend on :%u\n",
              rt.backend_name(), rt.workers(), http_port, kv_port);
  if (!cl.demo) {
    gr::event never;
    never.wait();
  }

  std::atomic<int> next{0}, good{0}, bad{0};
  auto t0 = std::chrono::steady_clock::now();
  std::vector<gr::join_handle<void>> clients;
  for (int c = 0; c < concurrency; ++c)
    clients.push_back(gr::spawn([&] {
      for (int i; (i = next++) < requests;) {
        std::string key = "k" + std::to_string(i);
        (http_get(http_port, "/kv/" + key) == value_of(key) + "\n" ? good : bad)++;
      }
    }));
  for (auto& c : clients) c.join();
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("demo: %d requests (%d concurrent): %d ok, %d wrong, %.0f req/s\n", requests, concurrency,
              good.load(), bad.load(), requests / s);
  ::shutdown(http_fd, SHUT_RDWR);
  ::shutdown(kv_fd, SHUT_RDWR);
  return bad.load() == 0 && good.load() == requests ? 0 : 1;
}
