/* LD_PRELOAD shim for fix-bench's fixer peer: every socket accept() or accept4() returns
 * gets TCP_NODELAY, as QuickFIX's SocketNodelay=Y and fix-engine do. fixer 0.11 has no
 * such setting; without it Nagle's algorithm meets delayed ACKs and replies wait 40 ms
 * (measured: p90 43.7 ms). Preloaded together with tests/interop/loopback_bind.c, which
 * keeps acceptors without a listen-address setting (QuickFIX) on 127.0.0.1.
 *
 * Built by scripts/bench.py: cc -O2 -shared -fPIC -o nodelay_accept.so nodelay_accept.c -ldl */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

static int no_delay(int fd) {
  if (fd >= 0) {
    int one = 1;
    /* A non-TCP socket refuses the option, harmlessly. */
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  return fd;
}

int accept(int fd, struct sockaddr *addr, socklen_t *len) {
  static int (*real_accept)(int, struct sockaddr *, socklen_t *);
  if (!real_accept) {
    real_accept = (int (*)(int, struct sockaddr *, socklen_t *))dlsym(RTLD_NEXT, "accept");
  }
  return no_delay(real_accept(fd, addr, len));
}

int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags) {
  static int (*real_accept4)(int, struct sockaddr *, socklen_t *, int);
  if (!real_accept4) {
    real_accept4 = (int (*)(int, struct sockaddr *, socklen_t *, int))dlsym(RTLD_NEXT, "accept4");
  }
  return no_delay(real_accept4(fd, addr, len, flags));
}
