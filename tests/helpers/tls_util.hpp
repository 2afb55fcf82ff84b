// helpers/tls_util.hpp: test-time PKI and child processes for the TLS tests
// and bench: a throw-away CA plus an ECDSA P-256 server certificate for
// localhost/127.0.0.1 made with the openssl CLI in a temp dir, TCP listeners,
// and fork/exec of openssl s_server / s_client / curl with files as stdio.
// Header-only; include as "helpers/tls_util.hpp".
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace gr_test {

inline std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

inline bool write_file(const std::string& path, const std::string& data) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << data;
  return static_cast<bool>(f);
}

// A CA and a server certificate signed by it (SAN DNS:localhost, IP:127.0.0.1),
// both ECDSA P-256, in a fresh temp dir removed on destruction.
struct test_pki {
  std::string dir, ca, ca_key, cert, key;
  bool ok = false;

  test_pki() {
    char tmpl[] = "/tmp/greenring-tls.XXXXXX";
    if (!::mkdtemp(tmpl)) return;
    dir = tmpl;
    ca = dir + "/ca.pem";
    ca_key = dir + "/ca.key";
    cert = dir + "/server.pem";
    key = dir + "/server.key";
    write_file(dir + "/ext.cnf",
               "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
               "subjectAltName=DNS:localhost,IP:127.0.0.1\n");
    std::string d = "'" + dir + "'";
    std::string cmd =
        "set -e; cd " + d + ";"
        " openssl ecparam -name prime256v1 -genkey -noout -out ca.key;"
        " openssl req -x509 -new -key ca.key -sha256 -days 2 -subj /CN=greenring-test-ca"
        "   -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign -out ca.pem;"
        " openssl ecparam -name prime256v1 -genkey -noout -out server.key;"
        " openssl req -new -key server.key -subj /CN=localhost/O=greenring -out server.csr;"
        " openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -sha256"
        "   -extfile ext.cnf -out server.pem";
    std::string full = "( " + cmd + " ) >" + d + "/gen.log 2>&1";
    ok = std::system(full.c_str()) == 0;
  }
  ~test_pki() {
    if (!dir.empty()) std::system(("rm -rf '" + dir + "'").c_str());
  }
  test_pki(const test_pki&) = delete;
  test_pki& operator=(const test_pki&) = delete;
};

// A blocking TCP listener on 127.0.0.1 (port 0: ephemeral); returns the fd
// and fills port, -1 on failure.
inline int tcp_listen(unsigned short& port, int backlog = 1024) {
  int l = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (l < 0) return -1;
  int one = 1;
  ::setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  socklen_t len = sizeof a;
  if (::bind(l, reinterpret_cast<sockaddr*>(&a), len) != 0 ||
      ::getsockname(l, reinterpret_cast<sockaddr*>(&a), &len) != 0 || ::listen(l, backlog) != 0) {
    ::close(l);
    return -1;
  }
  port = ntohs(a.sin_port);
  return l;
}

inline sockaddr_in loopback(unsigned short port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  return a;
}

// A port that was free a moment ago (for servers that bind it themselves).
inline unsigned short free_port() {
  unsigned short p = 0;
  int l = tcp_listen(p);
  if (l >= 0) ::close(l);
  return p;
}

// A child process with stdin/stdout/stderr redirected to files ("" = /dev/null).
class child {
 public:
  child(const std::vector<std::string>& argv, const std::string& in, const std::string& out,
        const std::string& err = "") {
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, in.empty() ? "/dev/null" : in.c_str(), O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, out.empty() ? "/dev/null" : out.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                     0600);
    posix_spawn_file_actions_addopen(&fa, 2, err.empty() ? "/dev/null" : err.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                     0600);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    if (posix_spawnp(&pid_, args[0], &fa, nullptr, args.data(), environ) != 0) pid_ = -1;
    posix_spawn_file_actions_destroy(&fa);
  }
  ~child() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  child(const child&) = delete;
  child& operator=(const child&) = delete;
  bool started() const { return pid_ > 0; }
  // False once it has exited (reaped here).
  bool running() {
    if (pid_ <= 0) return false;
    if (::waitpid(pid_, nullptr, WNOHANG) == pid_) pid_ = -1;
    return pid_ > 0;
  }
  // Exit status, or -1 if it did not exit within `limit` (it is then killed).
  int wait(std::chrono::milliseconds limit) {
    auto end = std::chrono::steady_clock::now() + limit;
    while (pid_ > 0) {
      int st = 0;
      pid_t r = ::waitpid(pid_, &st, WNOHANG);
      if (r == pid_) {
        pid_ = -1;
        return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
      }
      if (std::chrono::steady_clock::now() > end) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return -1;
  }

 private:
  pid_t pid_ = -1;
};

// Polls a file until it contains `needle` (a child's "ready" line); false
// after `limit`, or as soon as `c` (if given) has exited.
inline bool wait_for_text(const std::string& file, const std::string& needle, std::chrono::milliseconds limit,
                          child* c = nullptr) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (read_file(file).find(needle) != std::string::npos) return true;
    if (c && !c->running()) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

}  // namespace gr_test
