// The "last read blocked" hint (io.cpp): once a read of a blocking fd has
// waited, the next read and write go straight to the driver. Whatever the
// hint says, results must stay libc's: data in order, EOF, and EAGAIN at once
// after the program makes the fd non-blocking behind greenring's back.
#include <greenring/greenring.hpp>

#include "io/wait_any.hpp"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

namespace gr = greenring;

namespace {

gr::options one_worker() {
  gr::options o;
  o.workers = 1;
  return o;
}

// With hints on, as under the shim: the program's fcntl goes through the
// shim, which drops the hint (forget_blocked_hint) — emulated here.
TEST(IoHint, BlockedReadsThenNonBlockingFlagGivesEagainAtOnce) {
  for (bool hints : {false, true}) {
  SCOPED_TRACE(hints ? "hints on, shim drops the hint" : "hints off (linked programs)");
  gr::detail::enable_blocked_hints(hints);
  gr::runtime rt(one_worker());
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  auto h = gr::spawn([&] {
    std::string got;
    char buf[64];
    for (int round = 0; round < 3; ++round) {  // each read waits: the hint is set after the first
      ssize_t n = gr::io::read(sv[0], buf, sizeof buf);
      EXPECT_GT(n, 0);
      got.append(buf, static_cast<std::size_t>(n > 0 ? n : 0));
      EXPECT_EQ(gr::io::write(sv[0], "ack", 3), 3);  // a write on a hinted fd
    }
    // The program flips O_NONBLOCK itself (no shim to tell greenring).
    int fl = ::fcntl(sv[0], F_GETFL);
    EXPECT_EQ(::fcntl(sv[0], F_SETFL, fl | O_NONBLOCK), 0);
    if (hints) gr::detail::forget_blocked_hint(sv[0]);
    auto t0 = gr::clock::now();
    errno = 0;
    EXPECT_EQ(gr::io::read(sv[0], buf, sizeof buf), -1);
    EXPECT_EQ(errno, EAGAIN);
    EXPECT_EQ(gr::io::recv(sv[0], buf, sizeof buf, 0), -1);
    EXPECT_EQ(errno, EAGAIN);
    EXPECT_LT(gr::clock::now() - t0, std::chrono::seconds(5));  // not a wait for data that never comes
    return got;
  });
  auto peer = gr::spawn([&] {
    char ack[3];
    for (const char* m : {"one", "two", "three"}) {
      gr::this_fiber::sleep_for(std::chrono::milliseconds(5));  // let the reader block first
      EXPECT_EQ(gr::io::write(sv[1], m, std::strlen(m)), static_cast<ssize_t>(std::strlen(m)));
      EXPECT_EQ(gr::io::read(sv[1], ack, 3), 3);
    }
  });
  peer.join();
  EXPECT_EQ(h.join(), "onetwothree");
  ::close(sv[0]);
  ::close(sv[1]);
  }
  gr::detail::enable_blocked_hints(false);
}

TEST(IoHint, LargeWriteOnHintedFdIsCompleteAndOrdered) {
  gr::detail::enable_blocked_hints(true);
  gr::runtime rt(one_worker());
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  const std::size_t kBig = 4 << 20;  // far beyond the socket buffer: partial ring writes continue
  std::string big(kBig, '\0');
  for (std::size_t i = 0; i < kBig; ++i) big[i] = static_cast<char>('a' + i * 7 % 26);
  auto writer = gr::spawn([&] {
    char c;
    EXPECT_EQ(gr::io::read(sv[0], &c, 1), 1);  // blocks: sets the hint
    EXPECT_EQ(gr::io::write(sv[0], big.data(), big.size()), static_cast<ssize_t>(big.size()));
    ::shutdown(sv[0], SHUT_WR);
  });
  auto reader = gr::spawn([&] {
    gr::this_fiber::sleep_for(std::chrono::milliseconds(5));
    EXPECT_EQ(gr::io::write(sv[1], "g", 1), 1);
    std::string got;
    std::vector<char> buf(65536);  // not on the 64 KiB green stack
    for (;;) {
      ssize_t n = gr::io::read(sv[1], buf.data(), buf.size());
      if (n <= 0) break;
      got.append(buf.data(), static_cast<std::size_t>(n));
    }
    return got == big;
  });
  writer.join();
  EXPECT_TRUE(reader.join());
  ::close(sv[0]);
  ::close(sv[1]);
  gr::detail::enable_blocked_hints(false);
}

}  // namespace
