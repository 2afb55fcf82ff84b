// helpers/test_util.hpp: small shared helpers for the greenring unit tests
// (options builder, stopwatch, owned fds, socketpairs, scoped environment
// variables). Header-only; include as "helpers/test_util.hpp".
#pragma once

#include <greenring/greenring.hpp>

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <cstdlib>
#include <optional>
#include <string>
#include <utility>

namespace gr_test {

namespace gr = greenring;
using namespace std::chrono_literals;
using ms = std::chrono::milliseconds;

inline gr::options opts(unsigned workers, std::size_t stack_size = 0) {
  gr::options o;
  o.workers = workers;
  o.stack_size = stack_size;
  return o;
}

// True when this test binary itself is built with AddressSanitizer.
#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool kAsan = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline constexpr bool kAsan = true;
#else
inline constexpr bool kAsan = false;
#endif
#else
inline constexpr bool kAsan = false;
#endif

class stopwatch {
 public:
  stopwatch() : t0_(std::chrono::steady_clock::now()) {}
  void restart() { t0_ = std::chrono::steady_clock::now(); }
  std::chrono::steady_clock::duration elapsed() const { return std::chrono::steady_clock::now() - t0_; }
  long long elapsed_ms() const { return std::chrono::duration_cast<ms>(elapsed()).count(); }

 private:
  std::chrono::steady_clock::time_point t0_;
};

// Owns one file descriptor; closes it with ::close unless released.
class unique_fd {
 public:
  unique_fd() = default;
  explicit unique_fd(int fd) : fd_(fd) {}
  unique_fd(unique_fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  unique_fd& operator=(unique_fd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  ~unique_fd() { reset(); }
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }
  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }
  explicit operator bool() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

// A connected AF_UNIX socketpair (blocking unless type has SOCK_NONBLOCK).
inline std::pair<unique_fd, unique_fd> socket_pair(int type = SOCK_STREAM) {
  int sv[2] = {-1, -1};
  if (::socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, sv) != 0) return {};
  return {unique_fd(sv[0]), unique_fd(sv[1])};
}

inline bool set_nonblocking(int fd) {
  int fl = ::fcntl(fd, F_GETFL);
  return fl >= 0 && ::fcntl(fd, F_SETFL, fl | O_NONBLOCK) == 0;
}

// Sets (or, with value == nullopt, unsets) an environment variable for the
// lifetime of the object and restores the previous state afterwards.
class scoped_env {
 public:
  scoped_env(const char* name, std::optional<std::string> value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value) ::setenv(name, value->c_str(), 1); else ::unsetenv(name);
  }
  ~scoped_env() {
    if (old_) ::setenv(name_.c_str(), old_->c_str(), 1); else ::unsetenv(name_.c_str());
  }
  scoped_env(const scoped_env&) = delete;
  scoped_env& operator=(const scoped_env&) = delete;

 private:
  std::string name_;
  std::optional<std::string> old_;
};

// Raises the RLIMIT_NOFILE soft limit to the hard limit; returns the new soft limit.
inline rlim_t raise_nofile_limit() {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return 0;
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &rl);
    ::getrlimit(RLIMIT_NOFILE, &rl);
  }
  return rl.rlim_cur;
}

// Deterministic byte stream (xorshift64*) so payloads can be regenerated for
// verification instead of being stored. fill() calls may be split anywhere:
// the bytes produced depend only on the seed and the position.
class byte_stream {
 public:
  explicit byte_stream(std::uint64_t seed) : s_(seed * 0x9E3779B97F4A7C15ULL + 0x2545F4914F6CDD1DULL) {
    if (s_ == 0) s_ = 1;
  }
  void fill(unsigned char* p, std::size_t n) {
    while (n > 0 && left_ > 0) {
      *p++ = take();
      --n;
    }
    while (n >= 8) {
      std::uint64_t w = word();
      std::memcpy(p, &w, 8);
      p += 8;
      n -= 8;
    }
    if (n > 0) {
      cur_ = word();
      left_ = 8;
      while (n-- > 0) *p++ = take();
    }
  }

 private:
  std::uint64_t word() {
    s_ ^= s_ >> 12;
    s_ ^= s_ << 25;
    s_ ^= s_ >> 27;
    return s_ * 0x2545F4914F6CDD1DULL;
  }
  unsigned char take() {
    auto b = static_cast<unsigned char>(cur_);
    cur_ >>= 8;
    --left_;
    return b;
  }
  std::uint64_t s_;
  std::uint64_t cur_ = 0;
  int left_ = 0;
};

// Order-sensitive Fletcher-style checksum with 64-bit sums; independent of how
// the data is split into update() calls.
struct checksum {
  std::uint64_t s1 = 0, s2 = 0, n = 0;
  void update(const unsigned char* p, std::size_t len) {
    for (std::size_t i = 0; i < len; ++i) {
      s1 += p[i];
      s2 += s1;
    }
    n += len;
  }
  bool operator==(const checksum&) const = default;
};

}  // namespace gr_test
