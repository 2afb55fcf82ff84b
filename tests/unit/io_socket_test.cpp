// io_socket_test: green socket I/O on both drivers.
//  - TCP loopback echo with 2,000 concurrent connections (one server green
//    thread per accepted connection, 2,000 client green threads, random
//    1 B..256 KiB payloads, byte-for-byte verification, checksums, exact byte
//    totals, nothing lost or duplicated) on 2 workers.
//  - A blocking 8 MiB io::write into a socketpair drained slowly in small
//    chunks returns exactly 8 MiB and the reader gets every byte in order.
//  - O_NONBLOCK fds: EAGAIN at once from io::read, a partial count then EAGAIN
//    from io::write, as from libc.
//  - EOF returns 0 (data pending, and reader already blocked).
//  - io::close on another worker wakes a blocked io::read with EBADF.
//  - io::recv with MSG_WAITALL; io::connect to a closed port -> ECONNREFUSED;
//    io::poll (ready, timeout -> 0, wake-up); readv/writev; sendmsg/recvmsg
//    with SCM_RIGHTS.
//  - Calls from a plain (non-worker) thread, with and without a live runtime,
//    behave like the libc calls.
#include "helpers/test_util.hpp"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

namespace gr = greenring;
using gr_test::opts;
using gr_test::stopwatch;
using gr_test::unique_fd;
using namespace std::chrono_literals;

namespace {

constexpr auto kBound = 10s;  // deadline that turns a lost wake-up into a failure instead of a hang
constexpr int kConns = 2000;
constexpr std::size_t kMaxPayload = 256 * 1024;
constexpr std::size_t kChunk = 64 * 1024;

// A blocking TCP listener on 127.0.0.1, ephemeral port.
unique_fd tcp_listener(sockaddr_in& addr, int backlog) {
  unique_fd l(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!l) return l;
  int one = 1;
  ::setsockopt(l.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  addr = {};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (::bind(l.get(), reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
      ::getsockname(l.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0 || ::listen(l.get(), backlog) != 0)
    l.reset();
  return l;
}

// Collects the first few error messages from any thread.
class error_log {
 public:
  void add(std::string s) {
    count_.fetch_add(1);
    std::lock_guard<std::mutex> g(lk_);
    if (msgs_.size() < 10) msgs_.push_back(std::move(s));
  }
  int count() const { return count_.load(); }
  std::string str() const {
    std::lock_guard<std::mutex> g(lk_);
    std::string out;
    for (auto& m : msgs_) out += "\n  " + m;
    return out;
  }

 private:
  std::atomic<int> count_{0};
  mutable std::mutex lk_;
  std::vector<std::string> msgs_;
};

std::string errstr(const char* what, int id, ssize_t r, int e) {
  return std::string(what) + " #" + std::to_string(id) + ": " + std::to_string(r) + " errno " + std::to_string(e) +
         " (" + std::strerror(e) + ")";
}

}  // namespace

// ---- TCP echo, 2,000 concurrent connections ------------------------------------------

TEST(IoSocket, TcpEchoTwoThousandConcurrentConnections) {
  rlim_t nofile = gr_test::raise_nofile_limit();
  if (nofile < 4200) GTEST_SKIP() << "RLIMIT_NOFILE is " << nofile << " (< 4,200) even after raising it";

  sockaddr_in addr{};
  unique_fd listener = tcp_listener(addr, 4096);
  ASSERT_TRUE(listener) << std::strerror(errno);

  std::vector<std::size_t> sizes(kConns);
  std::mt19937_64 rng(20240601);
  for (auto& s : sizes) s = 1 + static_cast<std::size_t>(rng() % kMaxPayload);
  sizes[0] = 1;  // both ends of the range
  sizes[1] = kMaxPayload;
  std::uint64_t total_payload = 0;
  for (auto s : sizes) total_payload += s;

  struct client_result {
    std::uint64_t received = 0;
    bool content_ok = false;
    bool checksum_ok = false;
  };
  error_log errors;
  std::atomic<int> accepted{0};
  std::atomic<std::uint64_t> server_bytes{0};
  std::atomic<int> arrived{0};
  gr::event all_connected;  // every client holds an open connection before any sends

  gr::runtime rt(opts(2));
  const gr::deadline dl = gr::after(120s);

  // Server: one acceptor, one green thread per connection, echoing until EOF.
  auto server = gr::spawn([&, lfd = listener.get()] {
    std::vector<gr::join_handle<void>> handlers;
    handlers.reserve(kConns);
    for (int i = 0; i < kConns; ++i) {
      int c = gr::io::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC, dl);
      if (c < 0) {
        errors.add(errstr("accept", i, c, errno));
        break;
      }
      accepted.fetch_add(1);
      handlers.push_back(gr::spawn([&, c, i] {
        std::vector<unsigned char> buf(kChunk);
        std::uint64_t echoed = 0;
        for (;;) {
          ssize_t r = gr::io::read(c, buf.data(), buf.size(), dl);
          if (r == 0) break;
          if (r < 0) {
            errors.add(errstr("server read", i, r, errno));
            break;
          }
          ssize_t w = gr::io::write(c, buf.data(), static_cast<std::size_t>(r), dl);
          if (w != r) {
            errors.add(errstr("server write", i, w, errno));
            break;
          }
          echoed += static_cast<std::uint64_t>(r);
        }
        server_bytes.fetch_add(echoed);
        gr::io::close(c);
      }));
    }
    for (auto& h : handlers) h.join();
  });

  // Clients: connect, wait until all are connected, then a writer green thread
  // streams the payload while the client reads the echo and verifies it.
  auto clients = gr::spawn([&] {
    std::vector<gr::join_handle<client_result>> hs;
    hs.reserve(kConns);
    for (int i = 0; i < kConns; ++i)
      hs.push_back(gr::spawn([&, i] {
        client_result res;
        unique_fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        int rc = fd ? gr::io::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr, dl) : -1;
        if (rc != 0) errors.add(errstr("connect", i, rc, errno));
        if (arrived.fetch_add(1) + 1 == kConns) all_connected.set();
        if (!all_connected.wait_until(dl)) errors.add("client " + std::to_string(i) + ": barrier timed out");
        if (rc != 0) return res;
        const std::size_t n = sizes[static_cast<std::size_t>(i)];
        auto writer = gr::spawn([&errors, &dl, fd = fd.get(), n, i] {
          gr_test::byte_stream gen(static_cast<std::uint64_t>(i));
          gr_test::checksum ck;
          std::vector<unsigned char> buf(std::min(n, kChunk));
          std::minstd_rand chunk_rng(static_cast<unsigned>(i) + 7);
          std::size_t sent = 0;
          while (sent < n) {
            std::size_t k = std::min<std::size_t>(n - sent, 1 + chunk_rng() % buf.size());
            gen.fill(buf.data(), k);
            ck.update(buf.data(), k);
            ssize_t w = gr::io::write(fd, buf.data(), k, dl);
            if (w != static_cast<ssize_t>(k)) {
              errors.add(errstr("client write", i, w, errno));
              break;
            }
            sent += k;
          }
          ::shutdown(fd, SHUT_WR);
          return ck;
        });
        gr_test::byte_stream expect(static_cast<std::uint64_t>(i));
        gr_test::checksum ck;
        std::vector<unsigned char> buf(kChunk), want(kChunk);
        bool same = true;
        for (;;) {
          ssize_t r = gr::io::read(fd.get(), buf.data(), buf.size(), dl);
          if (r == 0) break;
          if (r < 0) {
            errors.add(errstr("client read", i, r, errno));
            break;
          }
          auto k = static_cast<std::size_t>(r);
          if (res.received + k > n) {  // more than was sent: duplicated data
            same = false;
            res.received += k;
            continue;
          }
          expect.fill(want.data(), k);
          if (std::memcmp(buf.data(), want.data(), k) != 0) same = false;
          ck.update(buf.data(), k);
          res.received += k;
        }
        gr_test::checksum sent_ck = writer.join();
        res.content_ok = same && res.received == n;
        res.checksum_ok = ck == sent_ck && sent_ck.n == n;
        gr::io::close(fd.release());
        return res;
      }));
    std::vector<client_result> out;
    out.reserve(kConns);
    for (auto& h : hs) out.push_back(h.join());
    return out;
  });

  std::vector<client_result> results = clients.join();
  server.join();
  EXPECT_EQ(errors.count(), 0) << errors.str();
  EXPECT_EQ(accepted.load(), kConns);
  ASSERT_EQ(results.size(), static_cast<std::size_t>(kConns));
  std::uint64_t client_bytes = 0;
  int bad_content = 0, bad_checksum = 0, bad_size = 0;
  for (int i = 0; i < kConns; ++i) {
    auto& r = results[static_cast<std::size_t>(i)];
    client_bytes += r.received;
    bad_content += !r.content_ok;
    bad_checksum += !r.checksum_ok;
    bad_size += r.received != sizes[static_cast<std::size_t>(i)];
  }
  EXPECT_EQ(bad_size, 0);
  EXPECT_EQ(bad_content, 0);
  EXPECT_EQ(bad_checksum, 0);
  EXPECT_EQ(client_bytes, total_payload);
  EXPECT_EQ(server_bytes.load(), total_payload);
  EXPECT_EQ(rt.live_green_threads(), 0u);
}

// ---- blocking writes into a full buffer --------------------------------------------

TEST(IoSocket, BlockingWriteOf8MiBIntoSlowReaderIsComplete) {
  constexpr std::size_t kTotal = 8 << 20;
  auto [a, b] = gr_test::socket_pair();
  ASSERT_TRUE(a && b);
  std::vector<unsigned char> data(kTotal);
  gr_test::byte_stream(42).fill(data.data(), data.size());
  gr::runtime rt(opts(2));
  auto writer = gr::spawn_on(0, [&, fd = a.get()] {
    ssize_t r = gr::io::write(fd, data.data(), data.size(), gr::after(60s));
    return std::pair<ssize_t, int>(r, errno);
  });
  auto reader = gr::spawn_on(1, [&, fd = b.get()] {
    std::vector<unsigned char> got;
    got.reserve(kTotal);
    unsigned char chunk[4096];
    std::minstd_rand rng(3);
    for (int i = 1; got.size() < kTotal; ++i) {
      std::size_t want = 1 + rng() % sizeof chunk;  // small reads, 1..4096 bytes
      ssize_t r = gr::io::read(fd, chunk, want, gr::after(60s));
      if (r <= 0) break;
      got.insert(got.end(), chunk, chunk + r);
      if (i % 64 == 0) gr::this_fiber::sleep_for(1ms); else gr::this_fiber::yield();
    }
    return got;
  });
  auto [w, werr] = writer.join();
  std::vector<unsigned char> got = reader.join();
  EXPECT_EQ(w, static_cast<ssize_t>(kTotal)) << "errno " << werr;
  ASSERT_EQ(got.size(), kTotal);
  EXPECT_TRUE(got == data) << "bytes arrived corrupted or out of order";
}

// ---- O_NONBLOCK fds -----------------------------------------------------------------

TEST(IoSocket, NonBlockingFdGetsEagainAndPartialWrites) {
  auto [a, b] = gr_test::socket_pair();
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(gr_test::set_nonblocking(a.get()));
  std::vector<unsigned char> big(8 << 20, 0x11);
  gr::runtime rt(opts(2));
  gr::spawn([&, fd = a.get()] {
    char buf[16];
    stopwatch sw;
    errno = 0;
    // A deadline far away: if the call waited instead, it would report ETIMEDOUT.
    EXPECT_EQ(gr::io::read(fd, buf, sizeof buf, gr::after(kBound)), -1);
    EXPECT_EQ(errno, EAGAIN);
    errno = 0;
    EXPECT_EQ(gr::io::recv(fd, buf, sizeof buf, 0, gr::after(kBound)), -1);
    EXPECT_EQ(errno, EAGAIN);
    EXPECT_LT(sw.elapsed(), kBound / 2);
    // Writes fill the buffer and stop with a partial count, then EAGAIN.
    ssize_t w = gr::io::write(fd, big.data(), big.size(), gr::after(kBound));
    EXPECT_GT(w, 0);
    EXPECT_LT(w, static_cast<ssize_t>(big.size()));
    errno = 0;
    EXPECT_EQ(gr::io::write(fd, big.data(), big.size(), gr::after(kBound)), -1);
    EXPECT_EQ(errno, EAGAIN);
    errno = 0;
    EXPECT_EQ(gr::io::send(fd, big.data(), 4096, 0, gr::after(kBound)), -1);
    EXPECT_EQ(errno, EAGAIN);
    EXPECT_LT(sw.elapsed(), kBound / 2);
  }).join();
  // libc agrees on the same fd.
  errno = 0;
  EXPECT_EQ(::write(a.get(), big.data(), 4096), -1);
  EXPECT_EQ(errno, EAGAIN);
}

// ---- EOF -----------------------------------------------------------------------------

TEST(IoSocket, EofReturnsZero) {
  auto [a, b] = gr_test::socket_pair();
  ASSERT_TRUE(a && b);
  auto [c, d] = gr_test::socket_pair();
  ASSERT_TRUE(c && d);
  gr::event reading;
  gr::runtime rt(opts(2));
  // Data, then EOF, already there when reading.
  ASSERT_EQ(::write(b.get(), "hello", 5), 5);
  b.reset();
  gr::spawn([&, fd = a.get()] {
    char buf[16];
    EXPECT_EQ(gr::io::read(fd, buf, sizeof buf, gr::after(kBound)), 5);
    EXPECT_EQ(std::memcmp(buf, "hello", 5), 0);
    EXPECT_EQ(gr::io::read(fd, buf, sizeof buf, gr::after(kBound)), 0);
    EXPECT_EQ(gr::io::recv(fd, buf, sizeof buf, 0, gr::after(kBound)), 0);
  }).join();
  // The reader is already blocked when the peer closes.
  auto h = gr::spawn([&, fd = c.get()] {
    char buf[16];
    reading.set();
    return gr::io::read(fd, buf, sizeof buf, gr::after(kBound));
  });
  reading.wait();
  std::this_thread::sleep_for(20ms);
  d.reset();
  EXPECT_EQ(h.join(), 0);
}

// ---- io::close while another green thread waits -----------------------------------

TEST(IoSocket, CloseWakesReaderBlockedOnAnotherWorkerWithEbadf) {
  auto [a, b] = gr_test::socket_pair();
  ASSERT_TRUE(a && b);
  gr::event reading;
  gr::runtime rt(opts(2));
  const int fd = a.release();  // closed by green thread B below
  auto reader = gr::spawn_on(0, [&] {
    char buf[16];
    reading.set();
    stopwatch sw;
    ssize_t r = gr::io::read(fd, buf, sizeof buf, gr::after(kBound));
    return std::tuple<ssize_t, int, std::chrono::steady_clock::duration>(r, errno, sw.elapsed());
  });
  reading.wait();
  std::this_thread::sleep_for(20ms);  // lets A reach its kernel wait (not needed for correctness)
  stopwatch sw;
  int rc = gr::spawn_on(1, [&] { return gr::io::close(fd); }).join();
  EXPECT_EQ(rc, 0);
  auto [r, err, took] = reader.join();
  EXPECT_EQ(r, -1);
  EXPECT_EQ(err, EBADF);
  EXPECT_LT(sw.elapsed(), kBound / 2) << "the blocked read was not woken promptly by io::close";
  EXPECT_LT(took, kBound / 2);
  // The peer sees the close.
  char x;
  EXPECT_EQ(::read(b.get(), &x, 1), 0);
}

// ---- recv(MSG_WAITALL) -------------------------------------------------------------

TEST(IoSocket, RecvWaitAllGathersEveryByte) {
  auto [a, b] = gr_test::socket_pair();
  ASSERT_TRUE(a && b);
  gr::runtime rt(opts(2));
  std::string expect;
  for (int i = 0; i < 3000; ++i) expect.push_back(static_cast<char>('A' + i % 26));
  auto writer = gr::spawn_on(1, [&, fd = b.get()] {
    for (int part = 0; part < 3; ++part) {
      gr::this_fiber::sleep_for(10ms);
      EXPECT_EQ(gr::io::write(fd, expect.data() + part * 1000, 1000), 1000);
    }
  });
  auto got = gr::spawn_on(0, [&, fd = a.get()] {
    std::string buf(3000, '\0');
    ssize_t r = gr::io::recv(fd, buf.data(), buf.size(), MSG_WAITALL, gr::after(kBound));
    buf.resize(r > 0 ? static_cast<std::size_t>(r) : 0);
    return buf;
  }).join();
  writer.join();
  EXPECT_EQ(got.size(), 3000u);
  EXPECT_EQ(got, expect);
  // EOF before the full count: the partial count.
  ASSERT_EQ(::write(b.get(), "xyz", 3), 3);
  b.reset();
  EXPECT_EQ(gr::spawn([&, fd = a.get()] {
              char buf[100];
              return gr::io::recv(fd, buf, sizeof buf, MSG_WAITALL, gr::after(kBound));
            }).join(),
            3);
}

// ---- connect -----------------------------------------------------------------------

TEST(IoSocket, ConnectToClosedPortIsRefused) {
  // A bound socket that does not listen: its port is taken and refuses connections.
  unique_fd holder(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  ASSERT_TRUE(holder);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  ASSERT_EQ(::bind(holder.get(), reinterpret_cast<sockaddr*>(&addr), len), 0);
  ASSERT_EQ(::getsockname(holder.get(), reinterpret_cast<sockaddr*>(&addr), &len), 0);
  gr::runtime rt(opts(2));
  auto try_connect = [&] {
    unique_fd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    int r = gr::io::connect(s.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr, gr::after(kBound));
    return std::pair<int, int>(r, errno);
  };
  auto [r, err] = gr::spawn(try_connect).join();
  EXPECT_EQ(r, -1);
  EXPECT_EQ(err, ECONNREFUSED);
  auto [pr, perr] = try_connect();  // plain thread
  EXPECT_EQ(pr, -1);
  EXPECT_EQ(perr, ECONNREFUSED);
}

TEST(IoSocket, ConnectAcceptAndTalkOnGreenThreads) {
  sockaddr_in addr{};
  unique_fd listener = tcp_listener(addr, 16);
  ASSERT_TRUE(listener);
  gr::runtime rt(opts(2));
  auto server = gr::spawn_on(0, [&, lfd = listener.get()] {
    sockaddr_in peer{};
    socklen_t plen = sizeof peer;
    int c = gr::io::accept(lfd, reinterpret_cast<sockaddr*>(&peer), &plen, gr::after(kBound));
    if (c < 0) return std::string("accept failed");
    EXPECT_EQ(plen, sizeof peer);
    EXPECT_EQ(peer.sin_family, AF_INET);
    char buf[5];
    ssize_t r = gr::io::recv(c, buf, sizeof buf, MSG_WAITALL, gr::after(kBound));
    gr::io::send(c, "pong!", 5, 0);
    gr::io::close(c);
    return std::string(buf, r > 0 ? static_cast<std::size_t>(r) : 0);
  });
  auto client = gr::spawn_on(1, [&] {
    unique_fd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    EXPECT_EQ(gr::io::connect(s.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr, gr::after(kBound)), 0);
    EXPECT_EQ(gr::io::send(s.get(), "ping!", 5, 0), 5);
    char buf[8];
    ssize_t r = gr::io::recv(s.get(), buf, 5, MSG_WAITALL, gr::after(kBound));
    return std::string(buf, r > 0 ? static_cast<std::size_t>(r) : 0);
  });
  EXPECT_EQ(server.join(), "ping!");
  EXPECT_EQ(client.join(), "pong!");
}

// ---- poll ------------------------------------------------------------------------------

TEST(IoSocket, PollReadyTimeoutAndWakeup) {
  auto [a, b] = gr_test::socket_pair();
  ASSERT_TRUE(a && b);
  gr::runtime rt(opts(2));
  gr::spawn_on(0, [&, fd = a.get(), peer = b.get()] {
    // Writable at once.
    EXPECT_TRUE(gr::io::poll(fd, POLLOUT, gr::after(kBound)) & POLLOUT);
    // Nothing to read: times out with 0 after at least the timeout.
    stopwatch sw;
    EXPECT_EQ(gr::io::poll(fd, POLLIN, gr::after(50ms)), 0);
    EXPECT_GE(sw.elapsed(), 50ms);
    EXPECT_LT(sw.elapsed(), 50ms + 500ms);
    // Data already there.
    EXPECT_EQ(::write(peer, "x", 1), 1);
    EXPECT_TRUE(gr::io::poll(fd, POLLIN, gr::after(kBound)) & POLLIN);
    char c;
    EXPECT_EQ(gr::io::read(fd, &c, 1), 1);  // poll consumed nothing
    // Blocked, then woken by a writer on the other worker.
    auto w = gr::spawn_on(1, [peer] {
      gr::this_fiber::sleep_for(20ms);
      return ::write(peer, "y", 1);
    });
    int rev = gr::io::poll(fd, POLLIN, gr::after(kBound));
    EXPECT_TRUE(rev & POLLIN) << rev;
    EXPECT_EQ(w.join(), 1);
    EXPECT_EQ(gr::io::read(fd, &c, 1), 1);
    EXPECT_EQ(c, 'y');
  }).join();
  // Plain thread: same results.
  EXPECT_EQ(gr::io::poll(a.get(), POLLIN, gr::after(20ms)), 0);
  EXPECT_TRUE(gr::io::poll(a.get(), POLLOUT) & POLLOUT);
}

// ---- readv / writev ------------------------------------------------------------------

TEST(IoSocket, ReadvWritevScatterGather) {
  auto [a, b] = gr_test::socket_pair();
  ASSERT_TRUE(a && b);
  gr::runtime rt(opts(2));
  gr::spawn([&, fa = a.get(), fb = b.get()] {
    char p1[] = "abc", p2[] = "defgh", p3[] = "ij";
    iovec out[3] = {{p1, 3}, {p2, 5}, {p3, 2}};
    EXPECT_EQ(gr::io::writev(fa, out, 3), 10);
    char q1[4], q2[6];
    iovec in[2] = {{q1, 4}, {q2, 6}};
    EXPECT_EQ(gr::io::readv(fb, in, 2, gr::after(kBound)), 10);
    EXPECT_EQ(std::string(q1, 4), "abcd");
    EXPECT_EQ(std::string(q2, 6), "efghij");
  }).join();
  // A blocking writev far larger than the socket buffer completes, in order,
  // while a reader on the other worker drains it.
  constexpr std::size_t kPart = 1 << 20;
  std::vector<unsigned char> parts[3];
  for (int i = 0; i < 3; ++i) {
    parts[i].resize(kPart + static_cast<std::size_t>(i) * 7);
    gr_test::byte_stream(100 + static_cast<std::uint64_t>(i)).fill(parts[i].data(), parts[i].size());
  }
  const std::size_t total = parts[0].size() + parts[1].size() + parts[2].size();
  auto writer = gr::spawn_on(0, [&, fd = a.get()] {
    iovec iov[3];
    for (int i = 0; i < 3; ++i) iov[i] = {parts[i].data(), parts[i].size()};
    return gr::io::writev(fd, iov, 3, gr::after(60s));
  });
  auto reader = gr::spawn_on(1, [&, fd = b.get()] {
    std::vector<unsigned char> got(total);
    std::size_t off = 0;
    while (off < total) {
      std::size_t first = std::min<std::size_t>(1000, total - off);
      iovec iov[2] = {{got.data() + off, first}, {got.data() + off + first, std::min<std::size_t>(3000, total - off - first)}};
      ssize_t r = gr::io::readv(fd, iov, 2, gr::after(60s));
      if (r <= 0) break;
      off += static_cast<std::size_t>(r);
    }
    got.resize(off);
    return got;
  });
  EXPECT_EQ(writer.join(), static_cast<ssize_t>(total));
  auto got = reader.join();
  ASSERT_EQ(got.size(), total);
  EXPECT_TRUE(std::equal(parts[0].begin(), parts[0].end(), got.begin()));
  EXPECT_TRUE(std::equal(parts[1].begin(), parts[1].end(), got.begin() + static_cast<long>(parts[0].size())));
  EXPECT_TRUE(std::equal(parts[2].begin(), parts[2].end(),
                         got.begin() + static_cast<long>(parts[0].size() + parts[1].size())));
}

// ---- sendmsg / recvmsg ---------------------------------------------------------------

TEST(IoSocket, SendmsgRecvmsgWithFdPassing) {
  auto [a, b] = gr_test::socket_pair();
  ASSERT_TRUE(a && b);
  int pipefd[2];
  ASSERT_EQ(::pipe2(pipefd, O_CLOEXEC), 0);
  unique_fd pr(pipefd[0]), pw(pipefd[1]);
  gr::runtime rt(opts(2));
  // The receiver blocks first (slow path), then the sender sends data + an fd.
  gr::event receiving;
  auto receiver = gr::spawn_on(0, [&, fd = b.get()] {
    char d1[3], d2[8];
    iovec iov[2] = {{d1, 3}, {d2, 8}};
    alignas(cmsghdr) char ctrl[CMSG_SPACE(sizeof(int))];
    msghdr mh{};
    mh.msg_iov = iov;
    mh.msg_iovlen = 2;
    mh.msg_control = ctrl;
    mh.msg_controllen = sizeof ctrl;
    receiving.set();
    ssize_t r = gr::io::recvmsg(fd, &mh, MSG_CMSG_CLOEXEC, gr::after(kBound));
    int passed = -1;
    for (cmsghdr* c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) std::memcpy(&passed, CMSG_DATA(c), sizeof passed);
    std::string data = r > 0 ? std::string(d1, std::min<ssize_t>(r, 3)) + std::string(d2, r > 3 ? static_cast<std::size_t>(r - 3) : 0) : "";
    return std::pair<std::string, int>(data, passed);
  });
  receiving.wait();
  std::this_thread::sleep_for(20ms);
  auto sent = gr::spawn_on(1, [&, fd = a.get(), give = pr.get()] {
    char h1[] = "hel", h2[] = "lo world";
    iovec iov[2] = {{h1, 3}, {h2, 8}};
    alignas(cmsghdr) char ctrl[CMSG_SPACE(sizeof(int))] = {};
    msghdr mh{};
    mh.msg_iov = iov;
    mh.msg_iovlen = 2;
    mh.msg_control = ctrl;
    mh.msg_controllen = sizeof ctrl;
    cmsghdr* c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &give, sizeof give);
    return gr::io::sendmsg(fd, &mh, 0, gr::after(kBound));
  }).join();
  EXPECT_EQ(sent, 11);
  auto [data, passed] = receiver.join();
  EXPECT_EQ(data, "hello world");
  ASSERT_GE(passed, 0) << "no fd received";
  unique_fd got(passed);
  // The received fd is the pipe's read end.
  ASSERT_EQ(::write(pw.get(), "!", 1), 1);
  char c = 0;
  EXPECT_EQ(gr::spawn([&] { return gr::io::read(got.get(), &c, 1, gr::after(kBound)); }).join(), 1);
  EXPECT_EQ(c, '!');
}

// ---- plain (non-worker) threads ------------------------------------------------------

namespace {
// The same checks, run on the calling plain thread.
void plain_thread_checks() {
  EXPECT_FALSE(gr::this_fiber::is_green_thread());
  auto [a, b] = gr_test::socket_pair();
  ASSERT_TRUE(a && b);
  // Blocking read that really blocks the OS thread until a peer writes.
  std::thread peer([fd = b.get()] {
    std::this_thread::sleep_for(30ms);
    [[maybe_unused]] ssize_t w = ::write(fd, "data", 4);
  });
  char buf[16];
  stopwatch sw;
  EXPECT_EQ(gr::io::read(a.get(), buf, sizeof buf), 4);
  EXPECT_GE(sw.elapsed(), 20ms);
  peer.join();
  EXPECT_EQ(std::memcmp(buf, "data", 4), 0);
  // Same errors as libc.
  errno = 0;
  EXPECT_EQ(gr::io::read(-1, buf, 1), -1);
  EXPECT_EQ(errno, EBADF);
  errno = 0;
  EXPECT_EQ(gr::io::write(-1, buf, 1), -1);
  EXPECT_EQ(errno, EBADF);
  ASSERT_TRUE(gr_test::set_nonblocking(a.get()));
  errno = 0;
  EXPECT_EQ(gr::io::read(a.get(), buf, sizeof buf), -1);
  EXPECT_EQ(errno, EAGAIN);
  int fl = ::fcntl(a.get(), F_GETFL);
  ASSERT_EQ(::fcntl(a.get(), F_SETFL, fl & ~O_NONBLOCK), 0);
  // writev/readv/send/recv and EOF.
  char p1[] = "ab", p2[] = "cd";
  iovec out[2] = {{p1, 2}, {p2, 2}};
  EXPECT_EQ(gr::io::writev(b.get(), out, 2), 4);
  EXPECT_EQ(gr::io::recv(a.get(), buf, 4, MSG_WAITALL), 4);
  EXPECT_EQ(std::memcmp(buf, "abcd", 4), 0);
  EXPECT_EQ(gr::io::send(b.get(), "z", 1, 0), 1);
  b.reset();
  EXPECT_EQ(gr::io::read(a.get(), buf, sizeof buf), 1);
  EXPECT_EQ(gr::io::read(a.get(), buf, sizeof buf), 0);
  // A deadline on a plain thread: ETIMEDOUT after at least the timeout.
  auto [c, d] = gr_test::socket_pair();
  sw.restart();
  errno = 0;
  EXPECT_EQ(gr::io::read(c.get(), buf, sizeof buf, gr::after(30ms)), -1);
  EXPECT_EQ(errno, ETIMEDOUT);
  EXPECT_GE(sw.elapsed(), 30ms);
}
}  // namespace

TEST(IoSocket, PlainThreadCallsBehaveLikeLibcWithRuntimeAlive) {
  gr::runtime rt(opts(2));
  plain_thread_checks();                // the test's main thread
  std::thread t(plain_thread_checks);  // another plain thread
  t.join();
}

TEST(IoSocket, PlainThreadCallsBehaveLikeLibcWithoutRuntime) {
  ASSERT_EQ(gr::runtime::current(), nullptr);
  plain_thread_checks();
}
