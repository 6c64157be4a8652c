/* An LD_PRELOAD shim for fault tests and drills, switched from outside the process:
 *
 * - Disk: fdatasync() and fsync() fail with EIO (or the errno in FIX_FAULT_ERRNO) while
 *   the file named by FIX_FAULT_FSYNC_FAIL_IF exists (touch it to fail the disk, remove
 *   it to heal); they take longer while the file named by FIX_FAULT_FSYNC_SLOW_IF exists:
 *   the milliseconds it holds, 3000 when it holds no number (a disk slower than the
 *   lease).
 * - Journal writes: write() to a file whose path holds "/journal/" fails with EIO (or the
 *   errno in FIX_FAULT_ERRNO) while the file named by FIX_FAULT_WRITE_FAIL_IF exists; other
 *   writes (sockets, logs, the lease file) pass.
 * - Wall clock: while the file named by FIX_FAULT_CLOCK_OFFSET_FILE exists, the number of
 *   milliseconds it holds (may be negative) is added to CLOCK_REALTIME as clock_gettime()
 *   and gettimeofday() return it: a clock that stepped. Monotonic clocks are untouched.
 *
 * Without the variables every call passes through unchanged.
 *
 * Built by fix_drill::shim (cc -shared -fPIC -O2 -o fault_shim.so fault_shim.c -ldl).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static int tripped(void) {
    const char *path = getenv("FIX_FAULT_FSYNC_FAIL_IF");
    return path != NULL && access(path, F_OK) == 0;
}

static void slow_down(void) {
    const char *path = getenv("FIX_FAULT_FSYNC_SLOW_IF");
    if (path == NULL) {
        return;
    }
    int saved = errno;
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        errno = saved;
        return;
    }
    long n = 0;
    if (fscanf(f, "%ld", &n) != 1 || n <= 0) {
        n = 3000;
    }
    fclose(f);
    errno = saved;
    struct timespec pause = {n / 1000, (n % 1000) * 1000000L};
    nanosleep(&pause, NULL);
}

static int fault_errno(void) {
    const char *e = getenv("FIX_FAULT_ERRNO");
    int n = e != NULL ? atoi(e) : 0;
    return n > 0 ? n : EIO;
}

int fdatasync(int fd) {
    static int (*real)(int);
    slow_down();
    if (tripped()) {
        errno = fault_errno();
        return -1;
    }
    if (real == NULL) {
        real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    }
    return real(fd);
}

int fsync(int fd) {
    static int (*real)(int);
    slow_down();
    if (tripped()) {
        errno = fault_errno();
        return -1;
    }
    if (real == NULL) {
        real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    }
    return real(fd);
}

/* Whether fd is open on a file under a journal directory. Only async-signal-safe calls
 * (write() may be called from a signal handler): the fd is formatted by hand. */
static int journal_fd(int fd) {
    char link[32] = "/proc/self/fd/";
    char digits[12];
    int len = 0;
    unsigned int v = fd < 0 ? 0 : (unsigned int)fd;
    do {
        digits[len++] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0 && len < (int)sizeof digits);
    size_t at = strlen(link);
    while (len > 0) {
        link[at++] = digits[--len];
    }
    link[at] = '\0';
    char path[4096];
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n <= 0) {
        return 0;
    }
    path[n] = '\0';
    return strstr(path, "/journal/") != NULL;
}

static ssize_t (*real_write)(int, const void *, size_t);

/* Resolved before main, not lazily inside write() (dlsym is not async-signal-safe). */
__attribute__((constructor)) static void resolve_write(void) {
    real_write = (ssize_t(*)(int, const void *, size_t))dlsym(RTLD_NEXT, "write");
}

ssize_t write(int fd, const void *buf, size_t count) {
    const char *trigger = getenv("FIX_FAULT_WRITE_FAIL_IF");
    if (trigger != NULL) {
        int saved = errno;
        int failing = access(trigger, F_OK) == 0 && journal_fd(fd);
        errno = saved;
        if (failing) {
            errno = fault_errno();
            return -1;
        }
    }
    return real_write(fd, buf, count);
}

/* The clock step in milliseconds, 0 when none is set. Keeps errno as it was. */
static long long clock_offset_ms(void) {
    const char *path = getenv("FIX_FAULT_CLOCK_OFFSET_FILE");
    if (path == NULL) {
        return 0;
    }
    int saved = errno;
    long long ms = 0;
    FILE *f = fopen(path, "r");
    if (f != NULL) {
        if (fscanf(f, "%lld", &ms) != 1) {
            ms = 0;
        }
        fclose(f);
    }
    errno = saved;
    return ms;
}

static void shift(struct timespec *ts, long long ms) {
    long long ns = (long long)ts->tv_nsec + (ms % 1000) * 1000000LL;
    ts->tv_sec += ms / 1000;
    if (ns < 0) {
        ns += 1000000000LL;
        ts->tv_sec -= 1;
    } else if (ns >= 1000000000LL) {
        ns -= 1000000000LL;
        ts->tv_sec += 1;
    }
    ts->tv_nsec = ns;
}

int clock_gettime(clockid_t id, struct timespec *ts) {
    static int (*real)(clockid_t, struct timespec *);
    if (real == NULL) {
        real = (int (*)(clockid_t, struct timespec *))dlsym(RTLD_NEXT, "clock_gettime");
    }
    int r = real(id, ts);
    if (r == 0 && ts != NULL && (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE)) {
        long long ms = clock_offset_ms();
        if (ms != 0) {
            shift(ts, ms);
        }
    }
    return r;
}

int gettimeofday(struct timeval *tv, void *tz) {
    static int (*real)(struct timeval *, void *);
    if (real == NULL) {
        real = (int (*)(struct timeval *, void *))dlsym(RTLD_NEXT, "gettimeofday");
    }
    int r = real(tv, tz);
    if (r == 0 && tv != NULL) {
        long long ms = clock_offset_ms();
        if (ms != 0) {
            struct timespec ts = {tv->tv_sec, (long)tv->tv_usec * 1000L};
            shift(&ts, ms);
            tv->tv_sec = ts.tv_sec;
            tv->tv_usec = ts.tv_nsec / 1000L;
        }
    }
    return r;
}
