// shim/src/threads.hpp: what start.cpp needs from threads.cpp.
#pragma once

namespace greenring::shim {
[[noreturn]] void run_main_green(int (*main_fn)(int, char**, char**), int argc, char** argv, char** envp);
[[noreturn]] void exit_green_thread(void* value);
void install_cancel_hook() noexcept;

// start.cpp: a runtime configured from the environment (GREENRING_WORKERS…);
// false, after saying why on stderr, when it cannot start.
bool start_runtime(bool adopt_calling_thread) noexcept;

// The calling thread's pthread record (green threads, and the thread that
// forked in a fork child), or nullptr.
void* current_thread_record() noexcept;
// In the child of fork(), on the thread that forked, with what
// current_thread_record() said before: pthread_self, keys and pthread_exit
// keep working now that it runs as a plain thread.
void threads_after_fork_child(void* record) noexcept;
}  // namespace greenring::shim
