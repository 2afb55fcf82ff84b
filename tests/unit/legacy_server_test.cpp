// legacy_server_test: keeps examples/legacy_server (the shim's target program,
// a plain pthread server) from rotting. Each test starts the real binary as a
// child process, reads its "listening on <port>" line, and checks the bytes it
// sends back exactly: keep-alive, pipelined and byte-split requests,
// Connection: close and HTTP/1.0, a malformed request, the --pool variant's
// queueing, and the --backend variant's one round trip per request (counted
// by a tiny backend in this process). No sleeps: every wait is a read with a
// deadline that only fails the test when it expires.
#include "helpers/test_util.hpp"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace {

using gr_test::unique_fd;

#ifdef LEGACY_SERVER_PATH
constexpr const char* kServer = LEGACY_SERVER_PATH;
#else
constexpr const char* kServer = nullptr;
#endif

const std::string kHello =
    "HTTP/1.1 200 OK\r\nServer: legacy_server\r\nContent-Type: text/plain\r\nContent-Length: 6\r\n\r\nhello\n";
const std::string kHelloClose =
    "HTTP/1.1 200 OK\r\nServer: legacy_server\r\nContent-Type: text/plain\r\nContent-Length: 6\r\n"
    "Connection: close\r\n\r\nhello\n";
const std::string kBad =
    "HTTP/1.1 400 Bad Request\r\nServer: legacy_server\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
const std::string kGet = "GET / HTTP/1.1\r\nHost: t\r\n\r\n";

constexpr int kTimeoutMs = 10000;

std::string repeat(const std::string& s, int n) {
  std::string r;
  for (int i = 0; i < n; ++i) r += s;
  return r;
}

// The server under test, killed and reaped on destruction.
class server_process {
 public:
  explicit server_process(std::vector<std::string> args) {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) return;
    unique_fd rd(p[0]), wr(p[1]);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, wr.get(), 1);
    std::vector<std::string> all{kServer};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : all) argv.push_back(a.data());
    argv.push_back(nullptr);
    int rc = posix_spawn(&pid_, kServer, &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
      pid_ = -1;
      return;
    }
    wr.reset();
    std::string line;
    char c;
    pollfd pfd{rd.get(), POLLIN, 0};
    while (::poll(&pfd, 1, kTimeoutMs) == 1 && ::read(rd.get(), &c, 1) == 1 && c != '\n') line += c;
    if (line.rfind("listening on ", 0) == 0) port_ = std::atoi(line.c_str() + 13);
  }
  ~server_process() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  int port() const { return port_; }
  // True while the child has neither exited nor crashed.
  bool alive() const { return pid_ > 0 && ::waitpid(pid_, nullptr, WNOHANG) == 0; }

 private:
  pid_t pid_ = -1;
  int port_ = 0;
};

unique_fd connect_to(int port) {
  unique_fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return {};
  return fd;
}

bool send_all(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t w = ::write(fd, s.data() + off, s.size() - off);
    if (w <= 0) return false;
    off += static_cast<size_t>(w);
  }
  return true;
}

// Reads exactly n bytes (fewer on EOF, error or the deadline).
std::string read_n(int fd, size_t n, int timeout_ms = kTimeoutMs) {
  std::string out;
  char buf[4096];
  while (out.size() < n) {
    pollfd pfd{fd, POLLIN, 0};
    if (::poll(&pfd, 1, timeout_ms) != 1) break;
    ssize_t r = ::read(fd, buf, std::min(sizeof buf, n - out.size()));
    if (r <= 0) break;
    out.append(buf, static_cast<size_t>(r));
  }
  return out;
}

// True when the peer closes without sending anything more.
bool eof_next(int fd) {
  pollfd pfd{fd, POLLIN, 0};
  if (::poll(&pfd, 1, kTimeoutMs) != 1) return false;
  char c;
  return ::read(fd, &c, 1) == 0;
}

// A line-echo backend like bench/macro/backend with no delay: answers "ok\n"
// per line and counts lines. One thread polls every connection.
class tiny_backend {
 public:
  tiny_backend() {
    listen_.reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    if (::bind(listen_.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(listen_.get(), 64) != 0 ||
        ::getsockname(listen_.get(), reinterpret_cast<sockaddr*>(&a), &al) != 0)
      return;
    port_ = ntohs(a.sin_port);
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) return;
    stop_rd_.reset(p[0]);
    stop_wr_.reset(p[1]);
    thread_ = std::thread([this] { loop(); });
  }
  ~tiny_backend() {
    if (thread_.joinable()) {
      (void)::write(stop_wr_.get(), "x", 1);
      thread_.join();
    }
  }
  int port() const { return port_; }
  int lines() const { return lines_.load(); }
  int connections() const { return connections_.load(); }

 private:
  void loop() {
    std::vector<unique_fd> conns;
    for (;;) {
      std::vector<pollfd> pfds{{stop_rd_.get(), POLLIN, 0}, {listen_.get(), POLLIN, 0}};
      for (auto& c : conns) pfds.push_back({c.get(), POLLIN, 0});
      if (::poll(pfds.data(), pfds.size(), -1) < 0) return;
      if (pfds[0].revents) return;
      if (pfds[1].revents) {
        conns.emplace_back(::accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC));
        ++connections_;
      }
      for (size_t i = 2; i < pfds.size(); ++i) {
        if (!pfds[i].revents) continue;
        char buf[512];
        ssize_t r = ::read(pfds[i].fd, buf, sizeof buf);
        if (r <= 0) {
          conns[i - 2].reset();
          continue;
        }
        std::string reply;
        for (ssize_t k = 0; k < r; ++k)
          if (buf[k] == '\n') reply += "ok\n";
        lines_ += static_cast<int>(reply.size() / 3);
        send_all(pfds[i].fd, reply);
      }
      std::erase_if(conns, [](const unique_fd& f) { return !f; });
    }
  }

  unique_fd listen_, stop_rd_, stop_wr_;
  int port_ = 0;
  std::atomic<int> lines_{0}, connections_{0};
  std::thread thread_;
};

class LegacyServer : public ::testing::Test {
 protected:
  void SetUp() override {
    if (kServer == nullptr) GTEST_SKIP() << "examples not built (GREENRING_EXAMPLES=OFF)";
  }
};

TEST_F(LegacyServer, KeepAliveRequestsGetExactResponsesOnOneConnection) {
  server_process s({});
  ASSERT_GT(s.port(), 0);
  unique_fd c = connect_to(s.port());
  ASSERT_TRUE(c);
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(send_all(c.get(), kGet));
    EXPECT_EQ(read_n(c.get(), kHello.size()), kHello) << "request " << i;
  }
  ASSERT_TRUE(send_all(c.get(), "GET /last HTTP/1.1\r\nConnection: close\r\n\r\n"));
  EXPECT_EQ(read_n(c.get(), kHelloClose.size()), kHelloClose);
  EXPECT_TRUE(eof_next(c.get()));
  EXPECT_TRUE(s.alive());
}

TEST_F(LegacyServer, PipelinedAndByteSplitRequestsAreAnsweredInOrder) {
  server_process s({});
  ASSERT_GT(s.port(), 0);
  unique_fd c = connect_to(s.port());
  ASSERT_TRUE(c);
  // Five requests in one write, the third with a body the server must skip.
  std::string batch = kGet + kGet + "POST /p HTTP/1.1\r\nContent-Length: 4\r\n\r\nGET " + kGet + kGet;
  ASSERT_TRUE(send_all(c.get(), batch));
  EXPECT_EQ(read_n(c.get(), 5 * kHello.size()), repeat(kHello, 5));
  // One request a byte at a time, then one split mid-terminator with the next glued on.
  for (char ch : kGet) ASSERT_TRUE(send_all(c.get(), std::string(1, ch)));
  EXPECT_EQ(read_n(c.get(), kHello.size()), kHello);
  ASSERT_TRUE(send_all(c.get(), "GET / HTTP/1.1\r\nHost: t\r\n\r"));
  ASSERT_TRUE(send_all(c.get(), "\nGET / HTTP/1.0\r\n\r\n"));
  EXPECT_EQ(read_n(c.get(), kHello.size() + kHelloClose.size()), kHello + kHelloClose);  // 1.0: close
  EXPECT_TRUE(eof_next(c.get()));
}

TEST_F(LegacyServer, MalformedRequestGets400AndClose) {
  server_process s({});
  ASSERT_GT(s.port(), 0);
  unique_fd c = connect_to(s.port());
  ASSERT_TRUE(c);
  ASSERT_TRUE(send_all(c.get(), kGet + "NONSENSE\r\n\r\n" + kGet));
  EXPECT_EQ(read_n(c.get(), kHello.size() + kBad.size()), kHello + kBad);
  EXPECT_TRUE(eof_next(c.get()));
  // The server survives and serves the next client.
  unique_fd d = connect_to(s.port());
  ASSERT_TRUE(d);
  ASSERT_TRUE(send_all(d.get(), kGet));
  EXPECT_EQ(read_n(d.get(), kHello.size()), kHello);
}

TEST_F(LegacyServer, PeerEofWithPartialRequestClosesQuietly) {
  server_process s({});
  ASSERT_GT(s.port(), 0);
  unique_fd c = connect_to(s.port());
  ASSERT_TRUE(c);
  ASSERT_TRUE(send_all(c.get(), kGet + "GET / HT"));
  EXPECT_EQ(read_n(c.get(), kHello.size()), kHello);
  ASSERT_EQ(::shutdown(c.get(), SHUT_WR), 0);
  EXPECT_TRUE(eof_next(c.get()));
  EXPECT_TRUE(s.alive());
}

// --pool 2: two workers each own a connection until it closes; a third
// connection waits in the queue and is served once one of them closes.
TEST_F(LegacyServer, PoolServesAtMostPoolSizeConnectionsAtOnce) {
  server_process s({"--pool", "2"});
  ASSERT_GT(s.port(), 0);
  unique_fd a = connect_to(s.port()), b = connect_to(s.port());
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(send_all(a.get(), kGet));
  ASSERT_TRUE(send_all(b.get(), kGet));
  EXPECT_EQ(read_n(a.get(), kHello.size()), kHello);
  EXPECT_EQ(read_n(b.get(), kHello.size()), kHello);
  unique_fd c = connect_to(s.port());
  ASSERT_TRUE(c);
  ASSERT_TRUE(send_all(c.get(), kGet));
  // Both workers are held by a and b (open, idle): c is queued. The short
  // poll only gives a wrong server the chance to answer; a correct one never does.
  EXPECT_EQ(read_n(c.get(), kHello.size(), 200), "");
  a.reset();
  EXPECT_EQ(read_n(c.get(), kHello.size()), kHello);
  ASSERT_TRUE(send_all(b.get(), kGet));
  EXPECT_EQ(read_n(b.get(), kHello.size()), kHello);
}

// --backend: one round trip to the backend per request, pipelined ones
// included, over one persistent backend connection per client connection.
TEST_F(LegacyServer, BackendModeMakesOneRoundTripPerRequest) {
  tiny_backend be;
  ASSERT_GT(be.port(), 0);
  server_process s({"--backend", "127.0.0.1:" + std::to_string(be.port())});
  ASSERT_GT(s.port(), 0);
  unique_fd c1 = connect_to(s.port()), c2 = connect_to(s.port());
  ASSERT_TRUE(c1 && c2);
  ASSERT_TRUE(send_all(c1.get(), kGet));
  EXPECT_EQ(read_n(c1.get(), kHello.size()), kHello);
  ASSERT_TRUE(send_all(c1.get(), repeat(kGet, 4)));
  EXPECT_EQ(read_n(c1.get(), 4 * kHello.size()), repeat(kHello, 4));
  ASSERT_TRUE(send_all(c2.get(), repeat(kGet, 2)));
  EXPECT_EQ(read_n(c2.get(), 2 * kHello.size()), repeat(kHello, 2));
  // Every response above waited for its backend answer, so the counts are final.
  EXPECT_EQ(be.lines(), 7);
  EXPECT_EQ(be.connections(), 2);
}

// --pool and --backend together: the latency case's pool row.
TEST_F(LegacyServer, PoolWithBackendAnswersEveryRequest) {
  tiny_backend be;
  ASSERT_GT(be.port(), 0);
  server_process s({"--pool", "3", "--backend", "127.0.0.1:" + std::to_string(be.port())});
  ASSERT_GT(s.port(), 0);
  std::vector<unique_fd> cs;
  for (int i = 0; i < 3; ++i) {
    cs.push_back(connect_to(s.port()));
    ASSERT_TRUE(cs.back());
    ASSERT_TRUE(send_all(cs.back().get(), repeat(kGet, 3)));
  }
  for (auto& c : cs) EXPECT_EQ(read_n(c.get(), 3 * kHello.size()), repeat(kHello, 3));
  EXPECT_EQ(be.lines(), 9);
  EXPECT_EQ(be.connections(), 3);
}

}  // namespace
