/* A step of the wall clock for one process, as an NTP correction makes one: CLOCK_REALTIME
 * (and gettimeofday and time, which read it) moved by the signed 64-bit count of
 * nanoseconds in the file named by PINGJIA_CLOCK_FILE, read at every call through a shared
 * mapping so that a test can step it while the process runs; the monotonic and boot
 * clocks are left alone, as a step leaves them.
 *
 * Written here because libfaketime, which does this in general, cannot in Debian 12's
 * 0.9.10 under Python 3.11: with its monotonic clock faked, timed waits hang; without,
 * time.sleep fails with EINVAL (wolfcw/libfaketime#426). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static int (*real_clock_gettime)(clockid_t, struct timespec *);
static volatile const int64_t *offset_ns;

static void init(void) {
    if (real_clock_gettime)
        return;
    real_clock_gettime = dlsym(RTLD_NEXT, "clock_gettime");
    const char *path = getenv("PINGJIA_CLOCK_FILE");
    int fd = path ? open(path, O_RDONLY) : -1;
    if (fd >= 0) {
        void *p = mmap(NULL, sizeof(int64_t), PROT_READ, MAP_SHARED, fd, 0);
        if (p != MAP_FAILED)
            offset_ns = p;
        close(fd);
    }
}

int clock_gettime(clockid_t id, struct timespec *ts) {
    init();
    int r = real_clock_gettime(id, ts);
    if (r == 0 && offset_ns && (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE)) {
        int64_t ns = (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec + *offset_ns;
        ts->tv_sec = ns / 1000000000;
        ts->tv_nsec = ns % 1000000000;
    }
    return r;
}

int gettimeofday(struct timeval *tv, void *tz) {
    struct timespec ts;
    (void)tz;
    clock_gettime(CLOCK_REALTIME, &ts);
    tv->tv_sec = ts.tv_sec;
    tv->tv_usec = ts.tv_nsec / 1000;
    return 0;
}

time_t time(time_t *t) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (t)
        *t = ts.tv_sec;
    return ts.tv_sec;
}
