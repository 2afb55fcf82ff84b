// interop_io_test: greenring::co - coroutine-native I/O on the worker's driver
// (run once per driver by the suite): ready and blocked reads, EOF, large
// writes that need many partial transfers, O_NONBLOCK fds, deadlines, poll,
// accept/connect over loopback TCP, regular files, sleeps, yield, and a
// coroutine-only ping-pong that never touches a green thread API.
#include "helpers/test_util.hpp"

#include <greenring/interop/interop.hpp>

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace gr = greenring;
using gr_test::opts;
using namespace std::chrono_literals;

TEST(InteropIo, ReadyAndBlockedReadsAndEof) {
  gr::runtime rt(opts(2));
  auto [a, b] = gr_test::socket_pair();
  auto t = [&]() -> gr::task<std::string> {
    std::string out;
    char c = 'a';
    co_await gr::co::write(a.get(), &c, 1);
    char buf[8];
    ssize_t n = co_await gr::co::read(b.get(), buf, sizeof buf);  // ready: fast path
    out.append(buf, static_cast<std::size_t>(n));
    // Blocked: the writer comes 5 ms later.
    auto [r, w] = co_await gr::when_all(
        [&]() -> gr::task<ssize_t> { co_return co_await gr::co::recv(b.get(), buf, sizeof buf, 0); }(),
        [&]() -> gr::task<ssize_t> {
          co_await gr::co::sleep_for(5ms);
          co_return co_await gr::co::send(a.get(), "bc", 2, 0);
        }());
    EXPECT_EQ(w, 2);
    out.append(buf, static_cast<std::size_t>(r));
    a.reset();
    n = co_await gr::co::read(b.get(), buf, sizeof buf);  // EOF
    out += n == 0 ? "|eof" : "|?";
    co_return out;
  };
  EXPECT_EQ(gr::sync_wait(t()), "abc|eof");
}

TEST(InteropIo, LargeWriteCompletesThroughPartialTransfers) {
  gr::runtime rt(opts(2));
  auto [a, b] = gr_test::socket_pair();
  constexpr std::size_t kSize = 4 << 20;
  std::vector<unsigned char> src(kSize), dst(kSize);
  gr_test::byte_stream(1).fill(src.data(), kSize);
  auto writer = [&]() -> gr::task<ssize_t> { co_return co_await gr::co::write(a.get(), src.data(), kSize); };
  auto reader = [&]() -> gr::task<std::size_t> {
    std::size_t got = 0;
    while (got < kSize) {
      ssize_t n = co_await gr::co::read(b.get(), dst.data() + got, kSize - got);
      if (n <= 0) break;
      got += static_cast<std::size_t>(n);
    }
    co_return got;
  };
  auto [w, r] = gr::sync_wait(gr::when_all(writer(), reader()));
  EXPECT_EQ(w, static_cast<ssize_t>(kSize));
  EXPECT_EQ(r, kSize);
  EXPECT_TRUE(src == dst);
}

TEST(InteropIo, NonBlockingFdGetsEagainAtOnce) {
  gr::runtime rt(opts(1));
  auto [a, b] = gr_test::socket_pair(SOCK_STREAM | SOCK_NONBLOCK);
  auto t = [&]() -> gr::task<int> {
    char c;
    ssize_t n = co_await gr::co::read(a.get(), &c, 1);
    co_return n == -1 ? errno : 0;
  };
  EXPECT_EQ(gr::sync_wait(t()), EAGAIN);
}

TEST(InteropIo, DeadlineGivesEtimedoutAndPollGivesZero) {
  gr::runtime rt(opts(1));
  auto [a, b] = gr_test::socket_pair();
  auto t = [&]() -> gr::task<void> {
    char c;
    gr_test::stopwatch sw;
    ssize_t n = co_await gr::co::read(a.get(), &c, 1, gr::after(20ms));
    EXPECT_EQ(n, -1);
    EXPECT_EQ(errno, ETIMEDOUT);
    EXPECT_GE(sw.elapsed_ms(), 19);
    EXPECT_EQ(co_await gr::co::poll(a.get(), POLLIN, gr::after(5ms)), 0);
    co_await gr::co::write(b.get(), "z", 1);
    int rev = static_cast<int>(co_await gr::co::poll(a.get(), POLLIN, gr::after(1s)));
    EXPECT_TRUE(rev & POLLIN);
    // Data that is there wins over a deadline that has passed.
    EXPECT_EQ(co_await gr::co::read(a.get(), &c, 1, gr::after(-1s)), 1);
  };
  gr::sync_wait(t());
}

TEST(InteropIo, AcceptAndConnectOverLoopback) {
  gr::runtime rt(opts(2));
  int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(lfd, 0);
  gr_test::unique_fd listener(lfd);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(lfd, 64), 0);
  socklen_t len = sizeof addr;
  ::getsockname(lfd, reinterpret_cast<sockaddr*>(&addr), &len);
  constexpr int kClients = 20;
  auto server = [&]() -> gr::task<int> {
    int served = 0;
    for (int i = 0; i < kClients; ++i) {
      int c = static_cast<int>(co_await gr::co::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC));
      if (c < 0) co_return -errno;
      char buf[4];
      if (co_await gr::co::read(c, buf, 4) == 4 && co_await gr::co::write(c, buf, 4) == 4) served++;
      ::close(c);
    }
    co_return served;
  };
  auto client = [&](int i) -> gr::task<bool> {
    co_await gr::co::sleep_for(std::chrono::milliseconds(i % 3));
    gr_test::unique_fd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (co_await gr::co::connect(s.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) co_return false;
    int v = i;
    co_await gr::co::write(s.get(), &v, 4);
    int back = -1;
    co_return co_await gr::co::read(s.get(), &back, 4) == 4 && back == i;
  };
  auto clients = [&]() -> gr::task<int> {
    std::vector<gr::task<bool>> ts;
    for (int i = 0; i < kClients; ++i) ts.push_back(client(i));
    auto ok = co_await gr::when_all(std::move(ts));
    int n = 0;
    for (bool b : ok) n += b;
    co_return n;
  };
  auto [served, ok] = gr::sync_wait(gr::when_all(server(), clients()));
  EXPECT_EQ(served, kClients);
  EXPECT_EQ(ok, kClients);
}

TEST(InteropIo, ConnectRefusedReportsErrno) {
  gr::runtime rt(opts(1));
  // Bind a port, close it: connecting there is refused.
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  {
    gr_test::unique_fd l(::socket(AF_INET, SOCK_STREAM, 0));
    ::bind(l.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    socklen_t len = sizeof addr;
    ::getsockname(l.get(), reinterpret_cast<sockaddr*>(&addr), &len);
  }
  auto t = [&]() -> gr::task<int> {
    gr_test::unique_fd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    ssize_t r = co_await gr::co::connect(s.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    co_return r == -1 ? errno : 0;
  };
  EXPECT_EQ(gr::sync_wait(t()), ECONNREFUSED);
}

TEST(InteropIo, RegularFileReadAndWrite) {
  gr::runtime rt(opts(1));
  char path[] = "/tmp/greenring_interop_XXXXXX";
  int fd = ::mkstemp(path);
  ASSERT_GE(fd, 0);
  ::unlink(path);
  gr_test::unique_fd f(fd);
  auto t = [&]() -> gr::task<std::string> {
    co_await gr::co::write(f.get(), "hello file", 10);
    ::lseek(f.get(), 0, SEEK_SET);
    char buf[32] = {};
    ssize_t n = co_await gr::co::read(f.get(), buf, sizeof buf);
    co_return std::string(buf, n > 0 ? static_cast<std::size_t>(n) : 0);
  };
  EXPECT_EQ(gr::sync_wait(t()), "hello file");
}

TEST(InteropIo, SleepsOrderAndDuration) {
  gr::runtime rt(opts(1));
  std::vector<int> order;
  auto sleeper = [&](int ms, int tag) -> gr::task<void> {
    co_await gr::co::sleep_for(std::chrono::milliseconds(ms));
    order.push_back(tag);
  };
  gr_test::stopwatch sw;
  gr::sync_wait(gr::when_all(sleeper(30, 3), sleeper(10, 1), sleeper(20, 2), sleeper(0, 0)));
  EXPECT_GE(sw.elapsed_ms(), 29);
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3}));
}

TEST(InteropIo, YieldInterleavesCoroutines) {
  gr::runtime rt(opts(1));
  std::string trace;
  auto step = [&](char c) -> gr::task<void> {
    for (int i = 0; i < 3; ++i) {
      trace += c;
      co_await gr::co::yield();
    }
  };
  gr::sync_wait(gr::when_all(step('a'), step('b')));
  EXPECT_EQ(trace, "ababab");
}

TEST(InteropIo, CoroutineOnlyPingPong) {
  gr::runtime rt(opts(1));
  auto [a, b] = gr_test::socket_pair();
  constexpr int kRounds = 10'000;
  auto pinger = [&]() -> gr::task<int> {
    int ok = 0;
    for (int i = 0; i < kRounds; ++i) {
      char c = static_cast<char>(i);
      if (co_await gr::co::write(a.get(), &c, 1) != 1) break;
      char d = 0;
      if (co_await gr::co::read(a.get(), &d, 1) != 1) break;
      ok += d == static_cast<char>(c + 1);
    }
    co_return ok;
  };
  auto ponger = [&]() -> gr::task<void> {
    for (int i = 0; i < kRounds; ++i) {
      char c;
      if (co_await gr::co::read(b.get(), &c, 1) != 1) co_return;
      ++c;
      co_await gr::co::write(b.get(), &c, 1);
    }
  };
  auto h = gr::co_spawn(ponger());
  EXPECT_EQ(gr::sync_wait(pinger()), kRounds);
  h.join();
}
