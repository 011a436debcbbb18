/*
 * LD_PRELOAD shim for the load generator (run.sh, WRK_BUSY_POLL=1): wrk's
 * epoll_wait never sleeps. It polls without blocking until an event arrives
 * or the caller's timeout has passed, yielding the CPU between polls to any
 * other runnable task (such as a Redis server sharing the CPU).
 *
 * Why: on a virtual machine, a process that makes a sleeping process on
 * another CPU runnable pays for an inter-processor interrupt to wake that
 * CPU, and the hypervisor's exit for it is charged to the sender's system
 * time. Under the standard method the server is that sender every time its
 * response finds wrk asleep, which happens more often the slower the server
 * is; with this shim wrk is never asleep, so each server's CPU time per
 * request is its own work. See benches/load/README.md.
 *
 * Semantics kept: a negative timeout waits for ever, 0 polls once, a
 * positive one returns 0 once that many milliseconds have passed; errors
 * are returned as they come. A signal now arrives between two polls rather
 * than during a blocking wait, so EINTR is practically never returned (wrk
 * does not rely on it: it stops on a timer and a flag).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <time.h>

typedef int (*epoll_wait_fn)(int, struct epoll_event *, int, int);

static epoll_wait_fn next_epoll_wait;

/* Resolved once, before wrk's main and its threads start. */
__attribute__((constructor)) static void resolve(void) {
    next_epoll_wait = (epoll_wait_fn)dlsym(RTLD_NEXT, "epoll_wait");
    if (next_epoll_wait == NULL) {
        fprintf(stderr, "busy_poll: epoll_wait not found: %s\n", dlerror());
        abort();
    }
}

static long long monotonic_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

int epoll_wait(int epfd, struct epoll_event *events, int maxevents, int timeout) {
    long long deadline = timeout < 0 ? -1 : monotonic_ns() + (long long)timeout * 1000000LL;
    for (;;) {
        int ready = next_epoll_wait(epfd, events, maxevents, 0);
        if (ready != 0) {
            return ready; /* events, or an error with errno set */
        }
        if (deadline >= 0 && monotonic_ns() >= deadline) {
            return 0;
        }
        sched_yield();
    }
}
