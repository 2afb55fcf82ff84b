// io_file_test: green file I/O on a temp file under /tmp (mkstemp):
// io::open/openat/pread/pwrite/read/write/readv/fsync/fdatasync/statx/close
// give the results libc gives, and for bad input the same -1 and errno as the
// libc call (EBADF for fd -1, ENOENT for a missing path, EINVAL for a negative
// offset, EISDIR reading a directory, ...), both on green threads and on plain
// threads; a 4 MiB file written and read back is identical; many green threads
// doing file I/O concurrently on one worker all see their own data.
#include "helpers/test_util.hpp"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

namespace gr = greenring;
using gr_test::opts;

namespace {

// A file from mkstemp under /tmp, removed at the end.
struct temp_file {
  std::string path;
  temp_file() {
    char t[] = "/tmp/greenring_io_file_XXXXXX";
    int fd = ::mkstemp(t);
    if (fd >= 0) {
      ::close(fd);
      path = t;
    }
  }
  ~temp_file() {
    if (!path.empty()) ::unlink(path.c_str());
  }
  std::string dir() const { return path.substr(0, path.rfind('/')); }
  std::string base() const { return path.substr(path.rfind('/') + 1); }
};

struct outcome {
  long r;
  int e;  // errno, only meaningful when r == -1
  bool operator==(const outcome& o) const { return r == o.r && (r != -1 || e == o.e); }
};
std::ostream& operator<<(std::ostream& os, const outcome& o) {
  os << o.r;
  if (o.r == -1) os << " (errno " << o.e << " " << std::strerror(o.e) << ")";
  return os;
}

template <class F>
outcome call(F f) {
  errno = 0;
  long r = static_cast<long>(f());
  return {r, errno};
}

// Bad-input cases: each pairs the greenring call with the libc call it mirrors
// and names the errno both must give.
struct error_case {
  const char* name;
  int expected_errno;
  std::function<long()> green;
  std::function<long()> libc;
};

std::vector<error_case> error_cases(const temp_file& f, int rdonly_fd, int wronly_fd, int dir_fd, int sock_fd) {
  static char buf[64];
  static struct statx stx;
  const char* path = f.path.c_str();
  return {
      {"read fd -1", EBADF, [] { return gr::io::read(-1, buf, 1); }, [] { return ::read(-1, buf, 1); }},
      {"write fd -1", EBADF, [] { return gr::io::write(-1, "x", 1); }, [] { return ::write(-1, "x", 1); }},
      {"pread fd -1", EBADF, [] { return gr::io::pread(-1, buf, 1, 0); }, [] { return ::pread(-1, buf, 1, 0); }},
      {"pwrite fd -1", EBADF, [] { return gr::io::pwrite(-1, "x", 1, 0); }, [] { return ::pwrite(-1, "x", 1, 0); }},
      {"fsync fd -1", EBADF, [] { return long(gr::io::fsync(-1)); }, [] { return long(::fsync(-1)); }},
      {"fdatasync fd -1", EBADF, [] { return long(gr::io::fdatasync(-1)); }, [] { return long(::fdatasync(-1)); }},
      {"close fd -1", EBADF, [] { return long(gr::io::close(-1)); }, [] { return long(::close(-1)); }},
      {"statx dirfd -1, relative path", EBADF,
       [] { return long(gr::io::statx(-1, "rel", 0, STATX_SIZE, &stx)); },
       [] { return long(::statx(-1, "rel", 0, STATX_SIZE, &stx)); }},
      {"open missing path", ENOENT,
       [] { return long(gr::io::open("/tmp/greenring-no-such-dir/no-such-file", O_RDONLY)); },
       [] { return long(::open("/tmp/greenring-no-such-dir/no-such-file", O_RDONLY)); }},
      {"openat missing path", ENOENT,
       [dir_fd] { return long(gr::io::openat(dir_fd, "greenring-no-such-file", O_RDONLY)); },
       [dir_fd] { return long(::openat(dir_fd, "greenring-no-such-file", O_RDONLY)); }},
      {"statx missing path", ENOENT,
       [] { return long(gr::io::statx(AT_FDCWD, "/tmp/greenring-no-such-file", 0, STATX_SIZE, &stx)); },
       [] { return long(::statx(AT_FDCWD, "/tmp/greenring-no-such-file", 0, STATX_SIZE, &stx)); }},
      {"open file with O_DIRECTORY", ENOTDIR,
       [path] { return long(gr::io::open(path, O_RDONLY | O_DIRECTORY)); },
       [path] { return long(::open(path, O_RDONLY | O_DIRECTORY)); }},
      {"open existing with O_CREAT|O_EXCL", EEXIST,
       [path] { return long(gr::io::open(path, O_RDWR | O_CREAT | O_EXCL, 0600)); },
       [path] { return long(::open(path, O_RDWR | O_CREAT | O_EXCL, 0600)); }},
      {"pread negative offset", EINVAL,
       [rdonly_fd] { return gr::io::pread(rdonly_fd, buf, 1, -1); },
       [rdonly_fd] { return ::pread(rdonly_fd, buf, 1, -1); }},
      {"pwrite negative offset", EINVAL,
       [wronly_fd] { return gr::io::pwrite(wronly_fd, "x", 1, -5); },
       [wronly_fd] { return ::pwrite(wronly_fd, "x", 1, -5); }},
      {"read directory fd", EISDIR,
       [dir_fd] { return gr::io::read(dir_fd, buf, sizeof buf); },
       [dir_fd] { return ::read(dir_fd, buf, sizeof buf); }},
      {"pread directory fd", EISDIR,
       [dir_fd] { return gr::io::pread(dir_fd, buf, sizeof buf, 0); },
       [dir_fd] { return ::pread(dir_fd, buf, sizeof buf, 0); }},
      {"write to O_RDONLY fd", EBADF,
       [rdonly_fd] { return gr::io::write(rdonly_fd, "x", 1); },
       [rdonly_fd] { return ::write(rdonly_fd, "x", 1); }},
      {"read from O_WRONLY fd", EBADF,
       [wronly_fd] { return gr::io::read(wronly_fd, buf, 1); },
       [wronly_fd] { return ::read(wronly_fd, buf, 1); }},
      {"fsync a socket", EINVAL,
       [sock_fd] { return long(gr::io::fsync(sock_fd)); },
       [sock_fd] { return long(::fsync(sock_fd)); }},
  };
}

void check_error_cases(const temp_file& f) {
  int ro = ::open(f.path.c_str(), O_RDONLY | O_CLOEXEC);
  int wo = ::open(f.path.c_str(), O_WRONLY | O_CLOEXEC);
  int dir = ::open(f.dir().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  auto [s1, s2] = gr_test::socket_pair();
  ASSERT_GE(ro, 0);
  ASSERT_GE(wo, 0);
  ASSERT_GE(dir, 0);
  for (auto& c : error_cases(f, ro, wo, dir, s1.get())) {
    outcome lib = call(c.libc);
    outcome green = call(c.green);
    EXPECT_EQ(lib, (outcome{-1, c.expected_errno})) << c.name << " (libc itself)";
    EXPECT_EQ(green, lib) << c.name << (gr::this_fiber::is_green_thread() ? " on a green thread" : " on a plain thread");
  }
  ::close(ro);
  ::close(wo);
  ::close(dir);
}

}  // namespace

TEST(IoFile, BasicOperationsOnTempFile) {
  temp_file f;
  ASSERT_FALSE(f.path.empty());
  gr::runtime rt(opts(2));
  gr::spawn([&] {
    int fd = gr::io::open(f.path.c_str(), O_RDWR | O_CLOEXEC);
    ASSERT_GE(fd, 0) << std::strerror(errno);
    EXPECT_EQ(gr::io::write(fd, "hello world", 11), 11);
    char buf[64] = {};
    EXPECT_EQ(gr::io::pread(fd, buf, 5, 6), 5);
    EXPECT_EQ(std::string(buf, 5), "world");
    EXPECT_EQ(gr::io::pwrite(fd, "HELLO", 5, 0), 5);
    // pread/pwrite do not move the file position; write did (to 11).
    EXPECT_EQ(::lseek(fd, 0, SEEK_CUR), 11);
    EXPECT_EQ(gr::io::read(fd, buf, sizeof buf), 0);  // at EOF
    ASSERT_EQ(::lseek(fd, 0, SEEK_SET), 0);
    EXPECT_EQ(gr::io::read(fd, buf, sizeof buf), 11);
    EXPECT_EQ(std::string(buf, 11), "HELLO world");
    EXPECT_EQ(gr::io::read(fd, buf, sizeof buf), 0);
    // readv from a position, across two buffers.
    char a[3], b[4];
    iovec iov[2] = {{a, 3}, {b, 4}};
    ASSERT_EQ(::lseek(fd, 2, SEEK_SET), 2);
    EXPECT_EQ(gr::io::readv(fd, iov, 2), 7);
    EXPECT_EQ(std::string(a, 3) + std::string(b, 4), "LLO wor");
    // writev appends at the position.
    ASSERT_EQ(::lseek(fd, 0, SEEK_END), 11);
    char p1[] = "!!", p2[] = "?";
    iovec out[2] = {{p1, 2}, {p2, 1}};
    EXPECT_EQ(gr::io::writev(fd, out, 2), 3);
    EXPECT_EQ(gr::io::fsync(fd), 0);
    EXPECT_EQ(gr::io::fdatasync(fd), 0);
    struct statx st{};
    EXPECT_EQ(gr::io::statx(AT_FDCWD, f.path.c_str(), 0, STATX_SIZE | STATX_TYPE, &st), 0);
    EXPECT_TRUE(st.stx_mask & STATX_SIZE);
    EXPECT_EQ(st.stx_size, 14u);
    EXPECT_TRUE(S_ISREG(st.stx_mode));
    struct statx by_fd{};
    EXPECT_EQ(gr::io::statx(fd, "", AT_EMPTY_PATH, STATX_SIZE | STATX_INO, &by_fd), 0);
    EXPECT_EQ(by_fd.stx_size, 14u);
    struct stat libc_st{};
    ASSERT_EQ(::fstat(fd, &libc_st), 0);
    EXPECT_EQ(by_fd.stx_ino, libc_st.st_ino);
    EXPECT_EQ(gr::io::close(fd), 0);
    // openat relative to the directory.
    int dfd = gr::io::open(f.dir().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ASSERT_GE(dfd, 0);
    int fd2 = gr::io::openat(dfd, f.base().c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(fd2, 0) << std::strerror(errno);
    EXPECT_EQ(gr::io::pread(fd2, buf, 14, 0), 14);
    EXPECT_EQ(std::string(buf, 14), "HELLO world!!?");
    struct statx rel{};
    EXPECT_EQ(gr::io::statx(dfd, f.base().c_str(), 0, STATX_SIZE, &rel), 0);
    EXPECT_EQ(rel.stx_size, 14u);
    EXPECT_EQ(gr::io::close(fd2), 0);
    EXPECT_EQ(gr::io::close(dfd), 0);
    // O_CREAT through io::open, with the mode honoured.
    std::string created = f.path + ".new";
    int nfd = gr::io::open(created.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    ASSERT_GE(nfd, 0) << std::strerror(errno);
    struct stat cst{};
    EXPECT_EQ(::fstat(nfd, &cst), 0);
    EXPECT_EQ(cst.st_mode & 0777 & ~0640u, 0u);
    EXPECT_EQ(gr::io::close(nfd), 0);
    ::unlink(created.c_str());
  }).join();
}

TEST(IoFile, BadInputGivesSameResultAndErrnoAsLibc) {
  temp_file f;
  ASSERT_FALSE(f.path.empty());
  ASSERT_EQ(::truncate(f.path.c_str(), 100), 0);
  gr::runtime rt(opts(2));
  gr::spawn([&] { check_error_cases(f); }).join();  // green thread
  check_error_cases(f);                              // plain thread, runtime alive
}

TEST(IoFile, FourMiBFileRoundTrip) {
  constexpr std::size_t kSize = 4 << 20;
  temp_file f;
  ASSERT_FALSE(f.path.empty());
  std::vector<unsigned char> data(kSize);
  gr_test::byte_stream(7).fill(data.data(), data.size());
  gr::runtime rt(opts(2));
  gr::spawn([&] {
    int fd = gr::io::open(f.path.c_str(), O_RDWR | O_TRUNC | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    EXPECT_EQ(gr::io::write(fd, data.data(), data.size()), static_cast<ssize_t>(kSize));
    EXPECT_EQ(gr::io::fsync(fd), 0);
    struct statx st{};
    EXPECT_EQ(gr::io::statx(fd, "", AT_EMPTY_PATH, STATX_SIZE, &st), 0);
    EXPECT_EQ(st.stx_size, kSize);
    // Back with pread in 64 KiB chunks...
    std::vector<unsigned char> back(kSize, 0);
    for (std::size_t off = 0; off < kSize;) {
      ssize_t r = gr::io::pread(fd, back.data() + off, 64 * 1024, static_cast<off_t>(off));
      ASSERT_GT(r, 0);
      off += static_cast<std::size_t>(r);
    }
    EXPECT_TRUE(back == data);
    // ...and with sequential reads of odd sizes.
    std::fill(back.begin(), back.end(), 0);
    ASSERT_EQ(::lseek(fd, 0, SEEK_SET), 0);
    std::size_t off = 0;
    for (;;) {
      ssize_t r = gr::io::read(fd, back.data() + off, std::min<std::size_t>(12345, kSize - off + 1));
      ASSERT_GE(r, 0);
      if (r == 0) break;
      off += static_cast<std::size_t>(r);
    }
    EXPECT_EQ(off, kSize);
    EXPECT_TRUE(back == data);
    // pwrite over the middle, read by libc.
    std::vector<unsigned char> patch(1 << 20, 0xEE);
    EXPECT_EQ(gr::io::pwrite(fd, patch.data(), patch.size(), 1 << 20), static_cast<ssize_t>(patch.size()));
    EXPECT_EQ(gr::io::fdatasync(fd), 0);
    EXPECT_EQ(gr::io::close(fd), 0);
  }).join();
  std::memset(data.data() + (1 << 20), 0xEE, 1 << 20);
  std::vector<unsigned char> libc_back(kSize);
  int fd = ::open(f.path.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  std::size_t off = 0;
  while (off < kSize) {
    ssize_t r = ::pread(fd, libc_back.data() + off, kSize - off, static_cast<off_t>(off));
    ASSERT_GT(r, 0);
    off += static_cast<std::size_t>(r);
  }
  ::close(fd);
  EXPECT_TRUE(libc_back == data);
}

TEST(IoFile, ManyGreenThreadsDoFileIoConcurrentlyOnOneWorker) {
  constexpr int kThreads = 200;
  constexpr std::size_t kRegion = 16 * 1024;
  temp_file f;
  ASSERT_FALSE(f.path.empty());
  std::atomic<int> verified{0}, errors{0};
  gr::runtime rt(opts(1));
  std::vector<gr::join_handle<void>> hs;
  for (int i = 0; i < kThreads; ++i)
    hs.push_back(gr::spawn_on(0, [&, i] {
      std::vector<unsigned char> mine(kRegion), back(kRegion);
      gr_test::byte_stream(static_cast<std::uint64_t>(i) + 1000).fill(mine.data(), mine.size());
      int fd = gr::io::open(f.path.c_str(), O_RDWR | O_CLOEXEC);  // each its own open file description
      if (fd < 0) {
        errors.fetch_add(1);
        return;
      }
      const off_t at = static_cast<off_t>(i) * static_cast<off_t>(kRegion);
      if (gr::io::pwrite(fd, mine.data(), kRegion, at) != static_cast<ssize_t>(kRegion)) errors.fetch_add(1);
      gr::this_fiber::yield();
      if (i % 10 == 0 && gr::io::fdatasync(fd) != 0) errors.fetch_add(1);
      struct statx st{};
      if (gr::io::statx(fd, "", AT_EMPTY_PATH, STATX_SIZE, &st) != 0 ||
          st.stx_size < static_cast<std::uint64_t>(at) + kRegion)
        errors.fetch_add(1);
      if (gr::io::pread(fd, back.data(), kRegion, at) != static_cast<ssize_t>(kRegion)) errors.fetch_add(1);
      if (back == mine) verified.fetch_add(1);
      if (gr::io::close(fd) != 0) errors.fetch_add(1);
    }));
  for (auto& h : hs) h.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(verified.load(), kThreads);
  // The whole file, read by libc: every region intact.
  struct stat st{};
  ASSERT_EQ(::stat(f.path.c_str(), &st), 0);
  EXPECT_EQ(st.st_size, static_cast<off_t>(kThreads * kRegion));
  int fd = ::open(f.path.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  int intact = 0;
  std::vector<unsigned char> want(kRegion), got(kRegion);
  for (int i = 0; i < kThreads; ++i) {
    gr_test::byte_stream(static_cast<std::uint64_t>(i) + 1000).fill(want.data(), want.size());
    if (::pread(fd, got.data(), kRegion, static_cast<off_t>(i) * static_cast<off_t>(kRegion)) ==
            static_cast<ssize_t>(kRegion) &&
        got == want)
      ++intact;
  }
  ::close(fd);
  EXPECT_EQ(intact, kThreads);
}
