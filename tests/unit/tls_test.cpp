// tls_test: greenring::tls against real OpenSSL peers and itself, on both
// drivers. Certificates (a CA and an ECDSA P-256 server cert for
// localhost/127.0.0.1) are made at test time with the openssl CLI.
//  - Client vs `openssl s_server -www`: verification against the test CA
//    succeeds (subject seen); verification off by explicit choice accepts the
//    untrusted cert; the system store alone rejects it with the verify
//    reason; a wrong host name is rejected; ALPN is negotiated; the second
//    connection resumes the session (client and s_server's page agree).
//  - greenring server vs `openssl s_client` (echo, bytes compared) and vs
//    `curl --cacert` (a 200 KiB body compared byte for byte).
//  - 200 concurrent handshakes + echo round trips, client and server green
//    threads all on ONE worker, every byte checked, exact counts.
//  - Error-queue isolation: green thread B is suspended inside SSL_read after
//    OpenSSL queued B's "bad record mac" error (its alert write blocks);
//    meanwhile green thread A on the same worker sees an empty queue, fails a
//    handshake with its own verify error and then succeeds one; B then gets
//    exactly its own error.
//  - Deadlines: a handshake against a TCP server that never speaks TLS times
//    out; a read deadline leaves the stream usable; a write deadline returns
//    the partial count and the next call reports timed_out. Cancellation of a
//    green thread blocked in a TLS read throws greenring::cancelled.
//  - A stream on a plain thread with no runtime (plain blocking syscalls).
#include "helpers/test_util.hpp"
#include "helpers/tls_util.hpp"

#include <greenring/tls.hpp>

#include <gtest/gtest.h>

#include <openssl/err.h>
#include <sys/ioctl.h>

#include <atomic>
#include <optional>
#include <cstring>
#include <string>
#include <vector>

namespace gr = greenring;
namespace tls = greenring::tls;
using gr_test::opts;
using namespace std::chrono_literals;

namespace {

constexpr auto kBound = 20s;  // turns a lost wake-up into a failure instead of a hang

gr_test::test_pki& pki() {
  static gr_test::test_pki p;
  return p;
}

// A connected blocking TCP socket to 127.0.0.1:port (green connect).
int dial(unsigned short port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a = gr_test::loopback(port);
  if (gr::io::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a, gr::after(kBound)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// A client stream on a new connection to 127.0.0.1:port, handshake done.
tls::stream connected(const tls::context& ctx, unsigned short port, const char* host = "localhost") {
  tls::stream s(ctx, dial(port), tls::fd_ownership::owned);
  s.connect(host, gr::after(kBound));
  return s;
}

tls::context client_ctx(bool with_ca) {
  tls::context c(tls::role::client);
  if (with_ca) c.load_verify_file(pki().ca);
  return c;
}

tls::context server_ctx() {
  tls::context c(tls::role::server);
  c.use_certificate_chain_file(pki().cert);
  c.use_private_key_file(pki().key);
  return c;
}

std::string payload(std::uint64_t seed, std::size_t n) {
  std::string s(n, '\0');
  gr_test::byte_stream(seed).fill(reinterpret_cast<unsigned char*>(s.data()), n);
  return s;
}

// Reads until `n` bytes or EOF/error.
std::string read_n(tls::stream& s, std::size_t n, gr::deadline until = gr::after(kBound)) {
  std::string out;
  char buf[16384];
  while (out.size() < n) {
    std::size_t got = s.read(buf, std::min(sizeof buf, n - out.size()), until);
    if (got == 0) break;
    out.append(buf, got);
  }
  return out;
}

// ---- client side against openssl s_server ------------------------------------------

class TlsClient : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ASSERT_TRUE(pki().ok) << "openssl CLI failed: " << gr_test::read_file(pki().dir + "/gen.log");
    out_ = pki().dir + "/s_server.out";
    // The port was free a moment ago; another test process may take it
    // first (ctest -j), so a server that cannot bind is retried elsewhere.
    for (int attempt = 0; attempt < 5; ++attempt) {
      port_ = gr_test::free_port();
      server_ = new gr_test::child({"openssl", "s_server", "-accept", "127.0.0.1:" + std::to_string(port_), "-cert",
                                    pki().cert, "-key", pki().key, "-www", "-alpn", "http/1.1"},
                                   "", out_, pki().dir + "/s_server.err");
      ASSERT_TRUE(server_->started());
      if (gr_test::wait_for_text(out_, "ACCEPT", 10s, server_)) return;
      delete server_;
      server_ = nullptr;
    }
    FAIL() << "openssl s_server did not start: " << gr_test::read_file(pki().dir + "/s_server.err");
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }

  // GET / from s_server -www; returns the status page (it ends with </HTML>;
  // s_server closes without close_notify, so stop there).
  static std::string get_page(tls::stream& s) {
    std::string req = "GET / HTTP/1.0\r\n\r\n";
    EXPECT_EQ(s.write(req.data(), req.size(), gr::after(kBound)), req.size());
    std::string page;
    char buf[4096];
    while (page.find("</HTML>") == std::string::npos) {
      std::error_code ec;
      std::size_t n = s.read(buf, sizeof buf, ec, gr::after(kBound));
      if (ec || n == 0) break;
      page.append(buf, n);
    }
    return page;
  }

  static inline unsigned short port_ = 0;
  static inline std::string out_;
  static inline gr_test::child* server_ = nullptr;
};

TEST_F(TlsClient, VerifiesAgainstTestCa) {
  gr::run(opts(1), [] {
    auto ctx = client_ctx(true);
    int fd = dial(port_);
    ASSERT_GE(fd, 0);
    tls::stream s(ctx, fd, tls::fd_ownership::owned);
    s.connect("localhost", gr::after(kBound));
    EXPECT_NE(s.peer_certificate_subject().find("CN=localhost"), std::string::npos) << s.peer_certificate_subject();
    EXPECT_FALSE(s.protocol_version().empty());
    std::string page = get_page(s);
    EXPECT_EQ(page.rfind("HTTP/1.0 200 ok", 0), 0u) << page.substr(0, 200);
    EXPECT_NE(page.find("</HTML>"), std::string::npos);
  });
}

TEST_F(TlsClient, IpLiteralHostIsCheckedAgainstSanIp) {
  gr::run(opts(1), [] {
    auto ctx = client_ctx(true);
    auto s = connected(ctx, port_, "127.0.0.1");
    EXPECT_NE(get_page(s).find("</HTML>"), std::string::npos);
  });
}

TEST_F(TlsClient, VerifyOffAcceptsUntrustedCertificate) {
  gr::run(opts(1), [] {
    auto ctx = client_ctx(false);  // system store only: the test CA is unknown
    ctx.set_verify(false);
    auto s = connected(ctx, port_, "not-the-right-name.example");
    EXPECT_NE(get_page(s).find("</HTML>"), std::string::npos);
  });
}

TEST_F(TlsClient, SystemStoreAloneRejectsTestCertificate) {
  gr::run(opts(1), [] {
    auto ctx = client_ctx(false);
    tls::stream s(ctx, dial(port_), tls::fd_ownership::owned);
    try {
      s.connect("localhost", gr::after(kBound));
      ADD_FAILURE() << "handshake with an untrusted certificate succeeded";
    } catch (const tls::error& e) {
      EXPECT_EQ(e.code(), tls::errc::certificate_verify_failed) << e.what();
      EXPECT_NE(std::string(e.what()).find("certificate verify failed"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("unable to get local issuer certificate"), std::string::npos) << e.what();
      EXPECT_NE(e.verify_result(), 0);
    }
    // Broken: later calls report the same failure.
    std::error_code ec;
    char c;
    EXPECT_EQ(s.read(&c, 1, ec), 0u);
    EXPECT_EQ(ec, tls::errc::certificate_verify_failed);
    EXPECT_EQ(ERR_peek_error(), 0ul) << "the stream left entries in the thread's error queue";
  });
}

TEST_F(TlsClient, WrongHostNameRejected) {
  gr::run(opts(1), [] {
    auto ctx = client_ctx(true);
    tls::stream s(ctx, dial(port_), tls::fd_ownership::owned);
    try {
      s.connect("www.example.com", gr::after(kBound));
      ADD_FAILURE() << "handshake with a wrong host name succeeded";
    } catch (const tls::error& e) {
      EXPECT_EQ(e.code(), tls::errc::certificate_verify_failed) << e.what();
      EXPECT_NE(std::string(e.what()).find("hostname mismatch"), std::string::npos) << e.what();
    }
  });
}

TEST_F(TlsClient, AlpnNegotiated) {
  gr::run(opts(1), [] {
    auto ctx = client_ctx(true);
    ctx.set_alpn({"h2", "http/1.1"});  // s_server only speaks http/1.1
    auto s = connected(ctx, port_);
    EXPECT_EQ(s.alpn(), "http/1.1");
    get_page(s);
  });
}

TEST_F(TlsClient, SessionResumedOnSecondConnection) {
  gr::run(opts(1), [] {
    auto ctx = client_ctx(true);
    {
      auto s = connected(ctx, port_);
      EXPECT_FALSE(s.session_reused());
      std::string page = get_page(s);  // TLS 1.3 tickets arrive with the first read
      EXPECT_NE(page.find("New, "), std::string::npos) << page.substr(0, 400);
      // OpenSSL drops the session of a connection freed without close_notify
      // sent. s_server may already have closed its end: a failed send is fine,
      // the SSL counts as shut down once it tried.
      try {
        s.shutdown(gr::after(kBound));
      } catch (const tls::error&) {
      }
    }
    auto s = connected(ctx, port_);
    EXPECT_TRUE(s.session_reused());
    std::string page = get_page(s);
    EXPECT_NE(page.find("Reused, "), std::string::npos) << page.substr(0, 400);
  });
}

TEST_F(TlsClient, WorksOnAPlainThreadWithoutARuntime) {
  auto ctx = client_ctx(true);
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a = gr_test::loopback(port_);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  tls::stream s(ctx, fd, tls::fd_ownership::owned);
  s.connect("localhost", gr::after(kBound));
  EXPECT_NE(get_page(s).find("</HTML>"), std::string::npos);
}

// ---- greenring server -------------------------------------------------------------------

// Accepts `conns` connections on `lfd`, one green thread each running `handle`.
template <class Handle>
void serve(int lfd, int conns, const tls::context& ctx, Handle handle, std::atomic<int>& failures) {
  std::vector<gr::join_handle<void>> hs;
  for (int i = 0; i < conns; ++i) {
    int fd = gr::io::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC, gr::after(kBound));
    if (fd < 0) {
      failures.fetch_add(1);
      break;
    }
    hs.push_back(gr::spawn([&ctx, &handle, &failures, fd] {
      try {
        tls::stream s(ctx, fd, tls::fd_ownership::owned);
        s.accept(gr::after(kBound));
        handle(s);
      } catch (const std::exception& e) {
        failures.fetch_add(1);
        std::fprintf(stderr, "server connection: %s\n", e.what());
      }
    }));
  }
  for (auto& h : hs) h.join();
}

// A loopback listener for a greenring TLS server, made for each test, and
// the test CA's contexts for both sides. The suites below are this fixture
// under their own names, which are what ctest selects on.
class TlsLoopback : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(pki().ok);
    sctx_ = server_ctx();
    cctx_ = client_ctx(true);
    l_.reset(gr_test::tcp_listen(port_));
    ASSERT_TRUE(l_);
  }

  // serve() on a new green thread with sctx_; what goes wrong counts in failures_.
  template <class Handle>
  gr::join_handle<void> spawn_server(Handle handle, int conns = 1) {
    return gr::spawn([this, handle, conns] { serve(l_.get(), conns, sctx_, handle, failures_); });
  }

  // Runs a client program against the server `srv` until both end; the
  // program must exit 0 (its stderr goes to `err`, shown if not) and the
  // server must count no failure.
  void run_client_program(const std::vector<std::string>& argv, const std::string& in, const std::string& out,
                          const std::string& err, gr::join_handle<void>& srv) {
    gr_test::child c(argv, in, out, err);
    ASSERT_TRUE(c.started());
    EXPECT_EQ(c.wait(kBound), 0) << gr_test::read_file(err);
    srv.join();
    EXPECT_EQ(failures_.load(), 0);
  }

  tls::context sctx_{tls::role::server}, cctx_{tls::role::client};
  unsigned short port_ = 0;
  gr_test::unique_fd l_;
  std::atomic<int> failures_{0};
};

using TlsServer = TlsLoopback;
using TlsConcurrency = TlsLoopback;
using TlsDeadline = TlsLoopback;
using TlsCancel = TlsLoopback;

TEST_F(TlsServer, OpensslSClientGetsItsBytesEchoed) {
  std::string input;
  for (int i = 0; i < 400; ++i) input += "line " + std::to_string(i) + " of the greenring s_client echo test\n";
  std::string in = pki().dir + "/sclient.in", out = pki().dir + "/sclient.out";
  ASSERT_TRUE(gr_test::write_file(in, input));
  gr::runtime rt(opts(1));
  auto srv = spawn_server([&](tls::stream& s) {
    std::string got = read_n(s, input.size());
    s.write(got.data(), got.size(), gr::after(kBound));
    s.shutdown(gr::after(kBound));
  });
  ASSERT_NO_FATAL_FAILURE(run_client_program({"openssl", "s_client", "-connect", "127.0.0.1:" + std::to_string(port_),
                                              "-servername", "localhost", "-CAfile", pki().ca, "-verify_return_error",
                                              "-quiet", "-nocommands"},
                                             in, out, pki().dir + "/sclient.err", srv));
  std::string echoed = gr_test::read_file(out);
  EXPECT_EQ(echoed.size(), input.size());
  EXPECT_TRUE(echoed == input);
}

TEST_F(TlsServer, CurlGetsTheBodyByteForByte) {
  const std::string body = payload(42, 200 * 1024);
  std::string out = pki().dir + "/curl.out";
  gr::runtime rt(opts(1));
  sctx_.set_alpn({"http/1.1"});
  auto srv = spawn_server([&](tls::stream& s) {
    std::string req;
    char buf[4096];
    while (req.find("\r\n\r\n") == std::string::npos) {
      std::size_t n = s.read(buf, sizeof buf, gr::after(kBound));
      if (n == 0) throw std::runtime_error("EOF before the end of the request");
      req.append(buf, n);
    }
    if (req.rfind("GET / HTTP/1.1\r\n", 0) != 0) throw std::runtime_error("unexpected request: " + req);
    std::string head = "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: " +
                       std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n";
    s.write(head.data(), head.size(), gr::after(kBound));
    s.write(body.data(), body.size(), gr::after(kBound));
    s.shutdown(gr::after(kBound));
  });
  ASSERT_NO_FATAL_FAILURE(run_client_program({"curl", "-sS", "--fail", "--http1.1", "--max-time", "20", "--cacert",
                                              pki().ca, "-o", out, "https://localhost:" + std::to_string(port_) + "/"},
                                             "", "", pki().dir + "/curl.err", srv));
  std::string got = gr_test::read_file(out);
  ASSERT_EQ(got.size(), body.size());
  EXPECT_TRUE(got == body);
}

// ---- many handshakes on one worker ------------------------------------------------------------

TEST_F(TlsConcurrency, TwoHundredHandshakesAndEchoesOnOneWorker) {
  constexpr int kConns = 200;
  std::atomic<int> verified{0}, echoed_conns{0}, off_worker{0};
  std::atomic<std::uint64_t> bytes{0};
  gr::run(opts(1), [&] {
    auto srv = spawn_server([&](tls::stream& s) {
      if (gr::this_fiber::worker_index() != 0) off_worker.fetch_add(1);
      char buf[16384];
      for (;;) {
        std::size_t n = s.read(buf, sizeof buf, gr::after(kBound));
        if (n == 0) break;
        s.write(buf, n, gr::after(kBound));
      }
      s.shutdown(gr::after(kBound));
      echoed_conns.fetch_add(1);
    }, kConns);
    std::vector<gr::join_handle<void>> clients;
    for (int i = 0; i < kConns; ++i) {
      clients.push_back(gr::spawn([&, i] {
        try {
          if (gr::this_fiber::worker_index() != 0) off_worker.fetch_add(1);
          auto s = connected(cctx_, port_);
          std::size_t n = 1 + (static_cast<std::size_t>(i) * 7919) % (24 * 1024);
          std::string data = payload(1000 + i, n);
          EXPECT_EQ(s.write(data.data(), n, gr::after(kBound)), n);
          std::string back = read_n(s, n);
          s.shutdown(gr::after(kBound));
          char c;
          EXPECT_EQ(s.read(&c, 1, gr::after(kBound)), 0u);  // the server's close_notify
          if (back == data) verified.fetch_add(1);
          bytes.fetch_add(back.size());
        } catch (const std::exception& e) {
          failures_.fetch_add(1);
          std::fprintf(stderr, "client %d: %s\n", i, e.what());
        }
      }));
    }
    for (auto& h : clients) h.join();
    srv.join();
  });
  std::uint64_t want = 0;
  for (int i = 0; i < kConns; ++i) want += 1 + (static_cast<std::size_t>(i) * 7919) % (24 * 1024);
  EXPECT_EQ(failures_.load(), 0);
  EXPECT_EQ(off_worker.load(), 0);
  EXPECT_EQ(verified.load(), kConns);
  EXPECT_EQ(echoed_conns.load(), kConns);
  EXPECT_EQ(bytes.load(), want);
}

// ---- the OS thread's error queue is per green thread -----------------------------------------

TEST(TlsErrors, QueueIsIsolatedBetweenGreenThreadsOnOneWorker) {
  ASSERT_TRUE(pki().ok);
  unsigned short bad_port = 0, good_port = 0;
  gr_test::unique_fd bad_l(gr_test::tcp_listen(bad_port)), good_l(gr_test::tcp_listen(good_port));
  ASSERT_TRUE(bad_l && good_l);
  // Outlive the runtime: an early ASSERT return must not free what the other
  // green threads still wait on (the runtime's destructor cancels them).
  auto sctx = server_ctx();
  auto cctx = client_ctx(true);
  gr::event peer_ready, release_peer;
  std::optional<tls::stream> b;
  std::atomic<bool> b_done{false};
  std::string b_what;
  std::error_code b_code;
  gr::run(opts(1), [&] {

    // P: completes a handshake, then sends a record that cannot decrypt and
    // stops reading; it closes (with unread data: RST) when released.
    auto peer = gr::spawn([&] {
      int fd = gr::io::accept4(bad_l.get(), nullptr, nullptr, SOCK_CLOEXEC, gr::after(kBound));
      ASSERT_GE(fd, 0);
      int small = 4096;
      ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
      {
        tls::stream s(sctx, fd);
        s.accept(gr::after(kBound));
        unsigned char rec[5 + 64] = {0x17, 0x03, 0x03, 0x00, 64};
        for (int i = 5; i < 5 + 64; ++i) rec[i] = static_cast<unsigned char>(i * 37);
        ASSERT_EQ(gr::io::send(fd, rec, sizeof rec, MSG_NOSIGNAL), static_cast<ssize_t>(sizeof rec));
        peer_ready.set();
        release_peer.wait();
      }
      gr::io::close(fd);
    });

    // B: reads the bad record; OpenSSL queues the error, then tries to send
    // the alert into a connection whose send direction the test filled.
    int bfd = dial(bad_port);
    ASSERT_GE(bfd, 0);
    b.emplace(cctx, bfd, tls::fd_ownership::owned);
    b->connect("localhost", gr::after(kBound));
    peer_ready.wait();
    int small = 4096;
    ::setsockopt(bfd, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    std::string junk(4096, 'j');
    for (int eagains = 0; eagains < 3;) {
      if (::send(bfd, junk.data(), junk.size(), MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
        ASSERT_EQ(errno, EAGAIN);
        ++eagains;
        gr::this_fiber::sleep_for(5ms);
      }
    }
    auto bh = gr::spawn([&] {
      char buf[256];
      try {
        b->read(buf, sizeof buf, gr::after(kBound));
        b_what = "read succeeded";
      } catch (const tls::error& e) {
        b_what = e.what();
        b_code = e.code();
      }
      b_done = true;
    });
    // B has consumed the bad record once nothing is left to read; it is then
    // suspended in the alert write, with its error taken out of the queue.
    for (int i = 0; i < 4000; ++i) {
      int inq = -1;
      ::ioctl(bfd, FIONREAD, &inq);
      if (inq == 0 && i > 0) break;
      gr::this_fiber::sleep_for(5ms);
    }
    gr::this_fiber::sleep_for(20ms);
    ASSERT_FALSE(b_done.load()) << "B finished early (alert write did not block): " << b_what;
    EXPECT_EQ(ERR_peek_error(), 0ul) << "B's error is visible to A: " << ERR_error_string(ERR_peek_error(), nullptr);

    // A, same worker, while B is suspended mid-failure: a failing handshake
    // (its own verify error) and then a succeeding one with an echo.
    std::atomic<int> srv_fail{0};
    auto good = gr::spawn([&] {
      serve(good_l.get(), 2, sctx, [](tls::stream& s) {
        char buf[64];
        std::size_t n = s.read(buf, sizeof buf, gr::after(kBound));
        s.write(buf, n, gr::after(kBound));
      }, srv_fail);
    });
    auto untrusting = client_ctx(false);
    {
      tls::stream a(untrusting, dial(good_port), tls::fd_ownership::owned);
      try {
        a.connect("localhost", gr::after(kBound));
        ADD_FAILURE() << "A1 handshake succeeded";
      } catch (const tls::error& e) {
        std::string w = e.what();
        EXPECT_EQ(e.code(), tls::errc::certificate_verify_failed) << w;
        EXPECT_NE(w.find("certificate verify failed"), std::string::npos) << w;
        EXPECT_EQ(w.find("bad record mac"), std::string::npos) << "A saw B's error: " << w;
      }
    }
    {
      tls::stream a(cctx, dial(good_port), tls::fd_ownership::owned);
      a.connect("localhost", gr::after(kBound));
      ASSERT_EQ(a.write("ping", 4, gr::after(kBound)), 4u);
      EXPECT_EQ(read_n(a, 4), "ping");
      EXPECT_TRUE(a.last_error().empty()) << a.last_error();
    }
    good.join();
    EXPECT_FALSE(b_done.load());

    release_peer.set();
    bh.join();
    peer.join();
    EXPECT_EQ(b_code, tls::errc::protocol) << b_what;
    EXPECT_NE(b_what.find("bad record mac"), std::string::npos) << "B lost its own error: " << b_what;
    EXPECT_EQ(b_what.find("certificate verify failed"), std::string::npos) << "B saw A's error: " << b_what;
    EXPECT_EQ(ERR_peek_error(), 0ul);
  });
}

// ---- deadlines and cancellation ------------------------------------------------------------------

TEST_F(TlsDeadline, HandshakeAgainstSilentTcpServerTimesOut) {
  // The kernel completes the TCP handshake on the listener; nobody speaks TLS.
  gr::run(opts(1), [&] {
    tls::stream s(cctx_, dial(port_), tls::fd_ownership::owned);
    gr_test::stopwatch sw;
    try {
      s.connect("localhost", gr::after(300ms));
      ADD_FAILURE() << "handshake against a silent server succeeded";
    } catch (const tls::error& e) {
      EXPECT_EQ(e.code(), std::errc::timed_out) << e.what();
    }
    EXPECT_GE(sw.elapsed_ms(), 250);
    EXPECT_LT(sw.elapsed_ms(), 10000);
  });
}

TEST_F(TlsDeadline, ReadDeadlineLeavesTheStreamUsable) {
  gr::run(opts(1), [&] {
    gr::event timed_out;
    auto srv = spawn_server([&](tls::stream& s) {
      timed_out.wait();
      s.write("late", 4, gr::after(kBound));
      s.shutdown(gr::after(kBound));
    });
    auto s = connected(cctx_, port_);
    char buf[16];
    std::error_code ec;
    EXPECT_EQ(s.read(buf, sizeof buf, ec, gr::after(100ms)), 0u);
    EXPECT_EQ(ec, std::errc::timed_out) << s.last_error();
    timed_out.set();
    EXPECT_EQ(read_n(s, 4), "late");
    EXPECT_EQ(s.read(buf, sizeof buf, gr::after(kBound)), 0u);
    srv.join();
    EXPECT_EQ(failures_.load(), 0);
  });
}

TEST_F(TlsDeadline, WriteDeadlineReturnsThePartialCountThenTheError) {
  gr::run(opts(1), [&] {
    gr::event written;
    auto srv = spawn_server([&](tls::stream&) { written.wait(); });  // never reads
    auto s = connected(cctx_, port_);
    const std::string big(32 << 20, 'w');  // far more than both socket buffers hold
    gr_test::stopwatch sw;
    std::size_t n = s.write(big.data(), big.size(), gr::after(200ms));
    EXPECT_GT(n, 0u);
    EXPECT_LT(n, big.size());
    EXPECT_LT(sw.elapsed_ms(), 10000);
    std::error_code ec;
    EXPECT_EQ(s.write("x", 1, ec), 0u);  // the stream is broken; the deadline is reported now
    EXPECT_EQ(ec, std::errc::timed_out) << s.last_error();
    try {
      s.write("x", 1);
      ADD_FAILURE() << "write on a broken stream succeeded";
    } catch (const tls::error& e) {
      EXPECT_EQ(e.code(), std::errc::timed_out) << e.what();
    }
    written.set();
    srv.join();
  });
}

TEST_F(TlsCancel, CancellingAGreenThreadBlockedInReadThrowsCancelled) {
  gr::run(opts(1), [&] {
    gr::event done;
    auto srv = spawn_server([&](tls::stream&) { done.wait(); });
    std::atomic<bool> in_read{false};
    auto reader = gr::spawn([&] {
      auto s = connected(cctx_, port_);
      in_read = true;
      char buf[16];
      s.read(buf, sizeof buf, gr::after(kBound));
    });
    while (!in_read.load()) gr::this_fiber::sleep_for(1ms);
    gr::this_fiber::sleep_for(20ms);
    reader.cancel();
    EXPECT_THROW(reader.join(), gr::cancelled);
    done.set();
    srv.join();
    EXPECT_EQ(failures_.load(), 0);
    EXPECT_EQ(ERR_peek_error(), 0ul);
  });
}

}  // namespace
