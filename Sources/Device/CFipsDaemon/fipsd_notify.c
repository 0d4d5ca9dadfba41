// sd_notify(3) without libsystemd: see include/fipsd_notify.h.
#define _GNU_SOURCE
#include "fipsd_notify.h"
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

int fipsd_notify(const char *state) {
    const char *path = getenv("NOTIFY_SOCKET");
    if (path == NULL || path[0] == 0) return 0;
    struct sockaddr_un addr;
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    size_t n = strlen(path);
    if (path[0] != '/' && path[0] != '@') return -EAFNOSUPPORT;
    if (n >= sizeof addr.sun_path) return -ENAMETOOLONG;
    memcpy(addr.sun_path, path, n);
    if (path[0] == '@') addr.sun_path[0] = 0;   // abstract namespace: no trailing NUL counted
    socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (path[0] == '@' ? 0 : 1));
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    ssize_t r = sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&addr, len);
    int e = errno;
    close(fd);
    return r < 0 ? -e : 1;
}

int64_t fipsd_watchdog_usec(void) {
    const char *pid = getenv("WATCHDOG_PID");
    if (pid != NULL && pid[0] != 0 && strtol(pid, NULL, 10) != (long)getpid()) return 0;
    const char *us = getenv("WATCHDOG_USEC");
    if (us == NULL || us[0] == 0) return 0;
    long long v = strtoll(us, NULL, 10);
    return v > 0 ? (int64_t)v : 0;
}

int64_t fipsd_monotonic_usec(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}
