/* tests/helpers/shim_probe.c: a plain C program (not linked with greenring)
 * that reports what the shim did to it, for tests/unit/shim_start_test.cpp.
 *   shim_probe EXIT_CODE [MODE]
 * MODE "exit" calls exit() from a second thread; "pexit" ends main with pthread_exit. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void at_exit_handler(void) { printf("atexit ran\n"); }

static int code;
static void* exit_from_thread(void* a) {
  (void)a;
  exit(code);
}
static void* late(void* a) {
  usleep(20000);
  printf("late thread done\n");
  return a;
}

int main(int argc, char** argv) {
  code = argc > 1 ? atoi(argv[1]) : 0;
  const char* mode = argc > 2 ? argv[2] : "";
  atexit(at_exit_handler);
  printf("green=%d\n", (int)((uintptr_t)pthread_self() & 1));
  fflush(stdout);
  if (strcmp(mode, "exit") == 0) {
    pthread_t t;
    pthread_create(&t, NULL, exit_from_thread, NULL);
    pthread_join(t, NULL);
    return 99; /* not reached */
  }
  if (strcmp(mode, "pexit") == 0) {
    pthread_t t;
    pthread_create(&t, NULL, late, NULL);
    pthread_detach(t);
    pthread_exit(NULL);
  }
  return code;
}
