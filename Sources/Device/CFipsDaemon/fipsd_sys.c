#define _GNU_SOURCE
#include "fipsd_sys.h"
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <linux/videodev2.h>

int fipsd_signals_init(void) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGUSR1);
    if (sigprocmask(SIG_BLOCK, &set, NULL) != 0) return -errno;
    signal(SIGPIPE, SIG_IGN);
    int fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

int fipsd_signal_next(int sfd) {
    struct signalfd_siginfo si;
    for (;;) {
        ssize_t r = read(sfd, &si, sizeof si);
        if (r == (ssize_t)sizeof si) return (int)si.ssi_signo;
        if (r < 0 && errno == EINTR) continue;
        return 0;
    }
}

int fipsd_listen(const char *host, int port, int backlog) {
    struct sockaddr_in a4;
    struct sockaddr_in6 a6;
    struct sockaddr *sa;
    socklen_t len;
    int family;
    memset(&a4, 0, sizeof a4);
    memset(&a6, 0, sizeof a6);
    if (port < 0 || port > 65535) return -EINVAL;
    if (inet_pton(AF_INET, host, &a4.sin_addr) == 1) {
        a4.sin_family = AF_INET;
        a4.sin_port = htons((uint16_t)port);
        sa = (struct sockaddr *)&a4; len = sizeof a4; family = AF_INET;
    } else if (inet_pton(AF_INET6, host, &a6.sin6_addr) == 1) {
        a6.sin6_family = AF_INET6;
        a6.sin6_port = htons((uint16_t)port);
        sa = (struct sockaddr *)&a6; len = sizeof a6; family = AF_INET6;
    } else {
        return -EINVAL;
    }
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, sa, len) != 0 || listen(fd, backlog) != 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

int fipsd_local_port(int fd) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0) return -errno;
    if (ss.ss_family == AF_INET) return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6) return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return -EAFNOSUPPORT;
}

int fipsd_accept(int lfd) {
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) return fd;
        if (errno == EINTR) continue;
        return -errno;
    }
}

long fipsd_read(int fd, void *buf, size_t n) {
    for (;;) {
        ssize_t r = read(fd, buf, n);
        if (r >= 0) return (long)r;
        if (errno == EINTR) continue;
        return -errno;
    }
}

long fipsd_write(int fd, const void *buf, size_t n) {
    for (;;) {
        ssize_t r = write(fd, buf, n);
        if (r >= 0) return (long)r;
        if (errno == EINTR) continue;
        return -errno;
    }
}

int fipsd_write_all(int fd, const void *buf, size_t n) {
    const unsigned char *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        if (w == 0) return EIO;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

void fipsd_close(int fd) { if (fd >= 0) close(fd); }

int fipsd_shutdown_write(int fd) { return shutdown(fd, SHUT_WR) == 0 ? 0 : -errno; }

int fipsd_set_nonblocking(int fd) {
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0) return -errno;
    return 0;
}

int fipsd_poll(const int *fds, const short *events, short *revents, int n, int timeout_ms) {
    struct pollfd pf[256];
    if (n < 0 || n > 256) return -EINVAL;
    for (int i = 0; i < n; i++) { pf[i].fd = fds[i]; pf[i].events = events[i]; pf[i].revents = 0; }
    int r = poll(pf, (nfds_t)n, timeout_ms);
    if (r < 0) return -errno;
    for (int i = 0; i < n; i++) revents[i] = pf[i].revents;
    return r;
}

int fipsd_watch_dir(const char *dir) {
    int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd < 0) return -errno;
    if (inotify_add_watch(fd, dir, IN_CLOSE_WRITE | IN_MOVED_TO | IN_ONLYDIR) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

long fipsd_watch_read(int fd, char *names, size_t cap, int *overflow) {
    char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
    size_t used = 0;
    *overflow = 0;
    for (;;) {
        ssize_t r = read(fd, buf, sizeof buf);
        if (r < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) break;
            return -errno;
        }
        if (r == 0) break;
        for (char *p = buf; p < buf + r;) {
            struct inotify_event *ev = (struct inotify_event *)p;
            if (ev->mask & IN_Q_OVERFLOW) *overflow = 1;
            if (ev->len > 0 && !(ev->mask & IN_ISDIR) && (ev->mask & (IN_CLOSE_WRITE | IN_MOVED_TO))) {
                size_t l = strlen(ev->name);
                if (used + l + 1 <= cap) {
                    memcpy(names + used, ev->name, l + 1);
                    used += l + 1;
                } else {
                    *overflow = 1;   // no room: the caller rescans the folder
                }
            }
            p += sizeof(struct inotify_event) + ev->len;
        }
    }
    return (long)used;
}

long fipsd_list_files(const char *dir, char *names, size_t cap) {
    DIR *d = opendir(dir);
    if (!d) return -errno;
    size_t used = 0;
    struct dirent *e;
    char path[4096];
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        int regular = e->d_type == DT_REG;
        if (e->d_type == DT_UNKNOWN || e->d_type == DT_LNK) {
            struct stat st;
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            regular = stat(path, &st) == 0 && S_ISREG(st.st_mode);
        }
        if (!regular) continue;
        size_t l = strlen(e->d_name);
        if (used + l + 1 > cap) { closedir(d); return -ENOBUFS; }
        memcpy(names + used, e->d_name, l + 1);
        used += l + 1;
    }
    closedir(d);
    return (long)used;
}

int fipsd_rename(const char *from, const char *to) { return rename(from, to) == 0 ? 0 : errno; }

long fipsd_read_prefix(const char *path, void *buf, size_t n) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -errno;
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, (char *)buf + got, n - got);
        if (r < 0) { if (errno == EINTR) continue; int e = errno; close(fd); return -e; }
        if (r == 0) break;
        got += (size_t)r;
    }
    close(fd);
    return (long)got;
}

int fipsd_open_append(const char *path) {
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    return fd < 0 ? -errno : fd;
}

int64_t fipsd_fd_file_size(int fd) {
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return -1;
    return (int64_t)st.st_size;
}

int fipsd_utc_now(char *buf, size_t n) {
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    char head[32];
    strftime(head, sizeof head, "%Y-%m-%dT%H:%M:%S", &tm);
    return snprintf(buf, n, "%s.%03ldZ", head, ts.tv_nsec / 1000000L);
}

// A "Key:   123 kB" line of /proc/self/status, in bytes, or -1.
static int64_t status_bytes(const char *key) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    size_t n = strlen(key);
    long long kb = -1;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, key, n) == 0 && line[n] == ':') { kb = atoll(line + n + 1); break; }
    }
    fclose(f);
    return kb < 0 ? -1 : (int64_t)kb * 1024;
}

int64_t fipsd_rss_bytes(void) { return status_bytes("VmRSS"); }

int64_t fipsd_virtual_bytes(void) { return status_bytes("VmSize"); }

int fipsd_open_fds(void) {
    DIR *d = opendir("/proc/self/fd");
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) if (e->d_name[0] != '.') n++;
    closedir(d);
    return n - 1;   // not the directory stream's own descriptor
}

int64_t fipsd_max_fds(void) {
    struct rlimit r;
    if (getrlimit(RLIMIT_NOFILE, &r) != 0) return -1;
    return r.rlim_cur == RLIM_INFINITY ? -1 : (int64_t)r.rlim_cur;
}

double fipsd_unix_time(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

double fipsd_cpu_seconds(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

// ---- V4L2 ----
struct fipsd_camera {
    int fd;
    int nbuf;
    void *start[FIPSD_CAM_BUFFERS];
    size_t length[FIPSD_CAM_BUFFERS];
    int format, width, height, stride;
};

static int xioctl(int fd, unsigned long req, void *arg) {
    int r;
    do { r = ioctl(fd, req, arg); } while (r < 0 && errno == EINTR);
    return r;
}

static void cam_free(fipsd_camera *c) {
    if (!c) return;
    for (int i = 0; i < c->nbuf; i++)
        if (c->start[i] && c->start[i] != MAP_FAILED) munmap(c->start[i], c->length[i]);
    if (c->fd >= 0) close(c->fd);
    free(c);
}

static int try_format(int fd, uint32_t pixfmt, int w, int h, struct v4l2_format *out) {
    struct v4l2_format f;
    memset(&f, 0, sizeof f);
    f.type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
    f.fmt.pix.width = (uint32_t)w;
    f.fmt.pix.height = (uint32_t)h;
    f.fmt.pix.pixelformat = pixfmt;
    f.fmt.pix.field = V4L2_FIELD_ANY;
    if (xioctl(fd, VIDIOC_S_FMT, &f) != 0) return -errno;
    if (f.fmt.pix.pixelformat != pixfmt) return -EPROTO;
    *out = f;
    return 0;
}

fipsd_camera *fipsd_camera_open(const char *dev, int width, int height, int fps, int prefer,
                                int *err, char *msg, size_t msg_n) {
    *err = 0;
    if (msg_n) msg[0] = 0;
    fipsd_camera *c = calloc(1, sizeof *c);
    if (!c) { *err = ENOMEM; snprintf(msg, msg_n, "out of memory"); return NULL; }
    c->fd = open(dev, O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (c->fd < 0) { *err = errno; snprintf(msg, msg_n, "cannot open: %s", strerror(errno)); free(c); return NULL; }
    struct v4l2_capability cap;
    memset(&cap, 0, sizeof cap);
    if (xioctl(c->fd, VIDIOC_QUERYCAP, &cap) != 0) {
        *err = errno; snprintf(msg, msg_n, "not a V4L2 device (VIDIOC_QUERYCAP: %s)", strerror(errno));
        cam_free(c); return NULL;
    }
    uint32_t caps = (cap.capabilities & V4L2_CAP_DEVICE_CAPS) ? cap.device_caps : cap.capabilities;
    if (!(caps & V4L2_CAP_VIDEO_CAPTURE) || !(caps & V4L2_CAP_STREAMING)) {
        *err = EPROTO; snprintf(msg, msg_n, "not a video capture device with streaming I/O");
        cam_free(c); return NULL;
    }
    struct v4l2_format f;
    int r = -EPROTO;
    if (prefer != FIPSD_CAM_YUYV) {
        r = try_format(c->fd, V4L2_PIX_FMT_MJPEG, width, height, &f);
        if (r == 0) c->format = FIPSD_CAM_MJPEG;
    }
    if (r != 0 && prefer != FIPSD_CAM_MJPEG) {
        r = try_format(c->fd, V4L2_PIX_FMT_YUYV, width, height, &f);
        if (r == 0) c->format = FIPSD_CAM_YUYV;
    }
    if (r != 0) {
        *err = -r;
        snprintf(msg, msg_n, "the camera offers no %s format at %dx%d (VIDIOC_S_FMT: %s)",
                 prefer == FIPSD_CAM_MJPEG ? "MJPEG" : prefer == FIPSD_CAM_YUYV ? "YUYV" : "MJPEG or YUYV",
                 width, height, r == -EPROTO ? "format refused" : strerror(-r));
        cam_free(c); return NULL;
    }
    c->width = (int)f.fmt.pix.width;
    c->height = (int)f.fmt.pix.height;
    c->stride = f.fmt.pix.bytesperline ? (int)f.fmt.pix.bytesperline : c->width * 2;
    if (fps > 0) {
        struct v4l2_streamparm p;
        memset(&p, 0, sizeof p);
        p.type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
        p.parm.capture.timeperframe.numerator = 1;
        p.parm.capture.timeperframe.denominator = (uint32_t)fps;
        xioctl(c->fd, VIDIOC_S_PARM, &p);   // a driver without frame-rate control keeps its own
    }
    struct v4l2_requestbuffers rb;
    memset(&rb, 0, sizeof rb);
    rb.count = FIPSD_CAM_BUFFERS;
    rb.type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
    rb.memory = V4L2_MEMORY_MMAP;
    if (xioctl(c->fd, VIDIOC_REQBUFS, &rb) != 0 || rb.count < 2) {
        *err = rb.count < 2 ? ENOMEM : errno;
        snprintf(msg, msg_n, "cannot get mmap buffers (VIDIOC_REQBUFS: %s)", strerror(*err));
        cam_free(c); return NULL;
    }
    c->nbuf = rb.count > FIPSD_CAM_BUFFERS ? FIPSD_CAM_BUFFERS : (int)rb.count;
    for (int i = 0; i < c->nbuf; i++) {
        struct v4l2_buffer b;
        memset(&b, 0, sizeof b);
        b.type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
        b.memory = V4L2_MEMORY_MMAP;
        b.index = (uint32_t)i;
        if (xioctl(c->fd, VIDIOC_QUERYBUF, &b) != 0) {
            *err = errno; snprintf(msg, msg_n, "VIDIOC_QUERYBUF: %s", strerror(errno)); cam_free(c); return NULL;
        }
        c->length[i] = b.length;
        c->start[i] = mmap(NULL, b.length, PROT_READ | PROT_WRITE, MAP_SHARED, c->fd, b.m.offset);
        if (c->start[i] == MAP_FAILED) {
            *err = errno; snprintf(msg, msg_n, "cannot map buffer %d: %s", i, strerror(errno)); cam_free(c); return NULL;
        }
        if (xioctl(c->fd, VIDIOC_QBUF, &b) != 0) {
            *err = errno; snprintf(msg, msg_n, "VIDIOC_QBUF: %s", strerror(errno)); cam_free(c); return NULL;
        }
    }
    int type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
    if (xioctl(c->fd, VIDIOC_STREAMON, &type) != 0) {
        *err = errno; snprintf(msg, msg_n, "VIDIOC_STREAMON: %s", strerror(errno)); cam_free(c); return NULL;
    }
    return c;
}

int fipsd_camera_fd(const fipsd_camera *c) { return c->fd; }
int fipsd_camera_format(const fipsd_camera *c) { return c->format; }
int fipsd_camera_width(const fipsd_camera *c) { return c->width; }
int fipsd_camera_height(const fipsd_camera *c) { return c->height; }
int fipsd_camera_stride(const fipsd_camera *c) { return c->stride; }

size_t fipsd_camera_buffer_bytes(const fipsd_camera *c) {
    size_t n = 0;
    for (int i = 0; i < c->nbuf; i++) n += c->length[i];
    return n;
}

int fipsd_camera_requeue(fipsd_camera *c, int index) {
    struct v4l2_buffer b;
    memset(&b, 0, sizeof b);
    b.type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
    b.memory = V4L2_MEMORY_MMAP;
    b.index = (uint32_t)index;
    return xioctl(c->fd, VIDIOC_QBUF, &b) == 0 ? 0 : -errno;
}

int fipsd_camera_dequeue_latest(fipsd_camera *c, const void **data, size_t *bytes, int *dropped) {
    int have = -1;
    size_t used = 0;
    for (;;) {
        struct v4l2_buffer b;
        memset(&b, 0, sizeof b);
        b.type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
        b.memory = V4L2_MEMORY_MMAP;
        if (xioctl(c->fd, VIDIOC_DQBUF, &b) != 0) {
            if (errno == EAGAIN) break;
            int e = errno;
            if (have >= 0) fipsd_camera_requeue(c, have);
            return -e;
        }
        if (b.index >= (uint32_t)c->nbuf) return -EIO;
        if (have >= 0) {
            fipsd_camera_requeue(c, have);
            (*dropped)++;
        }
        if (b.flags & V4L2_BUF_FLAG_ERROR) {   // a damaged frame: give it back, count it dropped
            fipsd_camera_requeue(c, (int)b.index);
            (*dropped)++;
            have = -1;
            continue;
        }
        have = (int)b.index;
        used = b.bytesused;
    }
    if (have < 0) return -EAGAIN;
    *data = c->start[have];
    *bytes = used > c->length[have] ? c->length[have] : used;
    return have;
}

void fipsd_camera_close(fipsd_camera *c) {
    if (!c) return;
    int type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
    xioctl(c->fd, VIDIOC_STREAMOFF, &type);
    cam_free(c);
}
