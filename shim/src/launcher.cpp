// shim/src/launcher.cpp: the `greenring` command.
//
//   greenring run [--workers N] [--backend auto|uring|epoll] [--stack-size BYTES]
//                 [--native-threads LIST] [--watchdog-ms MS] -- program [args...]
//
// Sets the shim's environment variables (docs/env.md), puts
// libgreenring_preload.so first in LD_PRELOAD and execs the program. The
// library is looked up next to this executable (the build tree: both live in
// build/shim/), then in ../lib and ../lib/greenring (an installed prefix), so
// the launcher works wherever it is run from without configuration.
#include <limits.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

const char kLib[] = "libgreenring_preload.so";

int usage(FILE* out, int rc) {
  std::fprintf(out,
               "usage: greenring run [options] -- program [args...]\n"
               "  --workers N            worker OS threads (GREENRING_WORKERS; default: CPUs available)\n"
               "  --backend B            auto, uring or epoll (GREENRING_BACKEND)\n"
               "  --stack-size BYTES     default green-thread stack, k/m suffixes (GREENRING_STACK_SIZE)\n"
               "  --native-threads LIST  start routines (symbol or library names, or *) kept as OS threads\n"
               "                         (GREENRING_NATIVE_THREADS)\n"
               "  --watchdog-ms MS       report workers held by one green thread that long (GREENRING_WATCHDOG_MS)\n"
               "  greenring lib          print the preload library's path\n");
  return rc;
}

std::string self_dir() {
  char buf[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return ".";
  buf[n] = 0;
  std::string s(buf);
  auto slash = s.rfind('/');
  return slash == std::string::npos ? "." : s.substr(0, slash);
}

std::string find_lib() {
  if (const char* e = std::getenv("GREENRING_PRELOAD_LIB"); e && *e) return e;
  std::string dir = self_dir();
  for (const char* rel : {"/", "/../lib/", "/../lib/greenring/", "/../lib64/"}) {
    std::string p = dir + rel + kLib;
    if (access(p.c_str(), R_OK) == 0) {
      char real[PATH_MAX];
      return realpath(p.c_str(), real) ? std::string(real) : p;
    }
  }
  return {};
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return usage(stderr, 2);
  std::string cmd = argv[1];
  if (cmd == "-h" || cmd == "--help" || cmd == "help") return usage(stdout, 0);
  std::string lib = find_lib();
  if (cmd == "lib") {
    if (lib.empty()) return std::fprintf(stderr, "greenring: %s not found\n", kLib), 1;
    std::printf("%s\n", lib.c_str());
    return 0;
  }
  if (cmd != "run") return usage(stderr, 2);
  int i = 2;
  auto value = [&](const char* opt) -> const char* {
    if (i + 1 >= argc) {
      std::fprintf(stderr, "greenring: %s needs a value\n", opt);
      std::exit(2);
    }
    return argv[++i];
  };
  for (; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--") {
      ++i;
      break;
    }
    if (a == "--workers") setenv("GREENRING_WORKERS", value("--workers"), 1);
    else if (a == "--backend") setenv("GREENRING_BACKEND", value("--backend"), 1);
    else if (a == "--stack-size") setenv("GREENRING_STACK_SIZE", value("--stack-size"), 1);
    else if (a == "--native-threads") setenv("GREENRING_NATIVE_THREADS", value("--native-threads"), 1);
    else if (a == "--watchdog-ms") setenv("GREENRING_WATCHDOG_MS", value("--watchdog-ms"), 1);
    else if (!a.empty() && a[0] == '-') return std::fprintf(stderr, "greenring: unknown option %s\n", a.c_str()), usage(stderr, 2);
    else break;  // the program, without "--"
  }
  if (i >= argc) return usage(stderr, 2);
  if (lib.empty()) {
    std::fprintf(stderr, "greenring: %s not found next to %s or in ../lib (set GREENRING_PRELOAD_LIB)\n", kLib,
                 self_dir().c_str());
    return 127;
  }
  std::string preload = lib;
  if (const char* old = std::getenv("LD_PRELOAD"); old && *old) preload += std::string(":") + old;
  setenv("LD_PRELOAD", preload.c_str(), 1);
  execvp(argv[i], argv + i);
  std::fprintf(stderr, "greenring: cannot run %s: %s\n", argv[i], std::strerror(errno));
  return errno == ENOENT ? 127 : 126;
}
