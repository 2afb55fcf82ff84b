// Start-up and configuration of the LD_PRELOAD shim (issue 5): main runs as a
// green thread, exit paths keep their status and atexit handlers,
// GREENRING_DISABLE turns everything off, the launcher finds the library, and
// the library exports nothing but the interposed libc symbols.
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <set>
#include <sstream>
#include <string>

namespace {

struct result {
  int status = -1;
  std::string out;
};

result run(const std::string& cmd) {
  result r;
  FILE* p = ::popen((cmd + " 2>/dev/null").c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf{};
  while (std::size_t n = std::fread(buf.data(), 1, buf.size(), p)) r.out.append(buf.data(), n);
  int st = ::pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  return r;
}

const std::string kLib = GREENRING_PRELOAD_LIB;
const std::string kLauncher = GREENRING_LAUNCHER;
const std::string kProbe = SHIM_PROBE;
std::string preload(const std::string& env = "") { return env + " LD_PRELOAD=" + kLib + " " + kProbe; }

TEST(ShimStart, MainRunsAsGreenThreadAndKeepsExitStatusAndAtexit) {
  auto plain = run(kProbe + " 7");
  EXPECT_EQ(plain.status, 7);
  EXPECT_EQ(plain.out, "green=0\natexit ran\n");
  auto shim = run(preload() + " 7");
  EXPECT_EQ(shim.status, 7);
  EXPECT_EQ(shim.out, "green=1\natexit ran\n");
}

TEST(ShimStart, ExitFromAnotherThreadRunsHandlersOnce) {
  auto shim = run(preload("GREENRING_WORKERS=2") + " 5 exit");
  EXPECT_EQ(shim.status, 5);
  EXPECT_EQ(shim.out, "green=1\natexit ran\n");
}

TEST(ShimStart, PthreadExitInMainWaitsForOtherThreads) {
  auto plain = run(kProbe + " 3 pexit");
  auto shim = run(preload("GREENRING_WORKERS=1") + " 3 pexit");
  EXPECT_EQ(plain.status, 0);
  EXPECT_EQ(shim.status, 0);
  EXPECT_EQ(shim.out, "green=1\nlate thread done\natexit ran\n");
  EXPECT_EQ(plain.out, "green=0\nlate thread done\natexit ran\n");
}

TEST(ShimStart, DisableLeavesEverythingToLibc) {
  auto off = run(preload("GREENRING_DISABLE=1") + " 4");
  EXPECT_EQ(off.status, 4);
  EXPECT_EQ(off.out, "green=0\natexit ran\n");
  auto zero = run(preload("GREENRING_DISABLE=0") + " 4");  // "0" means not disabled
  EXPECT_EQ(zero.out, "green=1\natexit ran\n");
}

TEST(ShimStart, LauncherFindsTheLibraryAndSetsOptions) {
  auto lib = run(kLauncher + " lib");
  EXPECT_EQ(lib.status, 0);
  EXPECT_NE(lib.out.find("libgreenring_preload.so"), std::string::npos);
  auto r = run(kLauncher + " run --workers 3 --backend epoll -- " + kProbe + " 9");
  EXPECT_EQ(r.status, 9);
  EXPECT_EQ(r.out, "green=1\natexit ran\n");
  auto env = run(kLauncher + " run --workers 3 -- /usr/bin/env");
  EXPECT_NE(env.out.find("GREENRING_WORKERS=3\n"), std::string::npos);
  EXPECT_NE(env.out.find("LD_PRELOAD=" ), std::string::npos);
  EXPECT_EQ(run(kLauncher + " run -- /nonexistent/program").status, 127);
  EXPECT_EQ(run(kLauncher + " frobnicate").status, 2);
}

TEST(ShimStart, ExportsOnlyInterposedLibcSymbols) {
  auto r = run("nm -D --defined-only " + kLib + " | awk '{print $3}'");
  ASSERT_EQ(r.status, 0);
  std::istringstream in(r.out);
  std::string sym;
  int n = 0;
  while (in >> sym) {
    ++n;
    // Every export is a C name libc also defines: no C++ (_Z) or greenring internals.
    EXPECT_NE(sym.rfind("_Z", 0), 0u) << sym;
    EXPECT_EQ(sym.find("greenring"), std::string::npos) << sym;
  }
  EXPECT_GT(n, 100);
  auto libc = run("nm -D --defined-only /lib/x86_64-linux-gnu/libc.so.6 | awk '{print $3}' | sed 's/@.*//' | sort -u");
  std::set<std::string> have;
  std::istringstream li(libc.out);
  while (li >> sym) have.insert(sym);
  std::istringstream in2(r.out);
  while (in2 >> sym) EXPECT_TRUE(have.count(sym)) << sym << " is not a libc symbol";
}

}  // namespace
