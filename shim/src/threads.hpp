// shim/src/threads.hpp: what start.cpp needs from threads.cpp.
#pragma once

namespace greenring::shim {
[[noreturn]] void run_main_green(int (*main_fn)(int, char**, char**), int argc, char** argv, char** envp);
[[noreturn]] void exit_green_thread(void* value);
}  // namespace greenring::shim
