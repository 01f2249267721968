/*
 * A slower disk, for benchmarks: an LD_PRELOAD shim that makes every fsync and fdatasync of the
 * process wait SLOW_SYNC_US microseconds (default 1000) before the real call. It shows what a
 * sync on the event loop costs where syncs are slow (the delays are picked, not measured on any
 * particular disk).
 *
 *   cc -shared -fPIC -O2 -o /tmp/slow-sync.so scripts/bench/slow-sync.c -ldl
 *   LD_PRELOAD=/tmp/slow-sync.so SLOW_SYNC_US=1000 BENCH_CONCS=16 node --import tsx scripts/bench/issue-api.ts 12 8 50000
 *
 * The bench's children (agentca serve, cfssl, wrk) inherit it.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <time.h>

static void slow_down(void) {
  const char *v = getenv("SLOW_SYNC_US");
  long us = v ? atol(v) : 1000;
  struct timespec left = { us / 1000000, (us % 1000000) * 1000 };
  while (nanosleep(&left, &left) != 0) {
  }
}

int fsync(int fd) {
  static int (*real)(int);
  if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
  slow_down();
  return real(fd);
}

int fdatasync(int fd) {
  static int (*real)(int);
  if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
  slow_down();
  return real(fd);
}
