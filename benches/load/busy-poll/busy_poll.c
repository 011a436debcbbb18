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
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <sched.h>
#include <stddef.h>
#include <sys/epoll.h>
#include <time.h>

typedef int (*epoll_wait_fn)(int, struct epoll_event *, int, int);

static long long monotonic_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

int epoll_wait(int epfd, struct epoll_event *events, int maxevents, int timeout) {
    static epoll_wait_fn next = NULL;
    if (next == NULL) {
        next = (epoll_wait_fn)dlsym(RTLD_NEXT, "epoll_wait");
    }
    long long deadline = timeout < 0 ? -1 : monotonic_ms() + timeout;
    for (;;) {
        int ready = next(epfd, events, maxevents, 0);
        if (ready != 0) {
            return ready; /* events, or an error with errno set */
        }
        if (deadline >= 0 && monotonic_ms() >= deadline) {
            return 0;
        }
        sched_yield();
    }
}
