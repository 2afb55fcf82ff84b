// helpers/dnsmasq.hpp: a dnsmasq child process (Debian dnsmasq-base) that
// serves records under .test on a loopback port, for the DNS tests and bench:
// starting it, and asking it a raw query to see whether it answers yet.
// Header-only; include as "helpers/dnsmasq.hpp".
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <spawn.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <string>
#include <vector>

extern char** environ;

namespace gr_test {

inline constexpr const char* kDnsmasq = "/usr/sbin/dnsmasq";

// Starts dnsmasq on 127.0.0.1:port with nothing but `records` (dnsmasq
// options such as --host-record=...) and no upstream, its output discarded.
// Returns its pid, or -1. It answers only some time after it starts.
inline pid_t spawn_dnsmasq(int port, const std::vector<std::string>& records) {
  std::vector<std::string> args = {kDnsmasq, "--keep-in-foreground", "--port=" + std::to_string(port),
                                   "--listen-address=127.0.0.1", "--bind-interfaces", "--no-resolv", "--no-hosts",
                                   "--conf-file=/dev/null", "--pid-file=", "--local=/test/"};
  args.insert(args.end(), records.begin(), records.end());
  if (::geteuid() == 0) args.push_back("--user=root");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  pid_t pid = -1;
  int rc = ::posix_spawn(&pid, kDnsmasq, &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  return rc == 0 ? pid : -1;
}

// One A query for a.test straight over UDP to 127.0.0.1:port: did an answer
// come within `wait_ms`?
inline bool dnsmasq_answers(int port, int wait_ms) {
  int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<std::uint16_t>(port));
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const unsigned char q[] = {0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 1,   'a', 4,
                             't',  'e',  's',  't',  0, 0, 1, 0, 1};
  bool ok = false;
  if (::sendto(fd, q, sizeof q, 0, reinterpret_cast<sockaddr*>(&sa), sizeof sa) >= 0) {
    pollfd pfd{fd, POLLIN, 0};
    unsigned char buf[512];
    ok = ::poll(&pfd, 1, wait_ms) == 1 && ::recv(fd, buf, sizeof buf, 0) >= 12 && buf[0] == 0x12 && buf[1] == 0x34;
  }
  ::close(fd);
  return ok;
}

}  // namespace gr_test
