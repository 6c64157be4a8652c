/* An LD_PRELOAD shim for fault tests: fdatasync() and fsync() fail with EIO (or the errno
 * in FIX_FAULT_ERRNO) while the file named by FIX_FAULT_FSYNC_FAIL_IF exists, so a test
 * can make a running engine's disk fail from outside the process (touch the file) and
 * heal it (remove it). Without the variable the calls pass through unchanged.
 *
 * Built by the tests that use it: cc -shared -fPIC -O2 -o fsync_fault.so fsync_fault.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

static int tripped(void) {
    const char *path = getenv("FIX_FAULT_FSYNC_FAIL_IF");
    return path != NULL && access(path, F_OK) == 0;
}

static int fault_errno(void) {
    const char *e = getenv("FIX_FAULT_ERRNO");
    int n = e != NULL ? atoi(e) : 0;
    return n > 0 ? n : EIO;
}

int fdatasync(int fd) {
    static int (*real)(int);
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
    if (tripped()) {
        errno = fault_errno();
        return -1;
    }
    if (real == NULL) {
        real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    }
    return real(fd);
}
