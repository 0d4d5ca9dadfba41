// A UVC camera without hardware, for fipsd's V4L2 capture path
// (Tests/Integration/fipsd/camera.py). Loaded with LD_PRELOAD into the
// host (dynamically linked) fipsd, it answers open/ioctl/mmap/close for one
// device path the way a UVC webcam driver does: QUERYCAP, ENUM_FMT,
// S_FMT/G_FMT/TRY_FMT with format negotiation (an unoffered pixel format is
// answered with the default one, the size with the camera's only size),
// S_PARM, REQBUFS, QUERYBUF, QBUF, DQBUF (EAGAIN on the non-blocking fd when
// no frame is done), STREAMON/STREAMOFF. A thread plays the frames at the
// camera's rate into the queued buffers; with no buffer queued the frame is
// dropped "in the driver", as uvcvideo does. The fd is an eventfd, so
// fipsd's own poll(2) sees POLLIN when a frame is done; after an unplug every
// ioctl fails with ENODEV and open fails with ENOENT until the replug.
//
// Why by hand: v4l2loopback needs a kernel module, and vivid neither serves
// chosen frames nor unplugs; neither loads in a container. Every other fd
// goes to libc untouched.
//
// Environment:
//   FIPS_UVC_DEVICE        the path it stands in for (required)
//   FIPS_UVC_MJPEG         JPEG files, ':'-separated, played in turn (offers MJPEG)
//   FIPS_UVC_YUYV          raw YUYV 4:2:2 frames of FIPS_UVC_SIZE, ':'-separated (offers YUYV)
//   FIPS_UVC_SIZE          WxH of the camera's one frame size (default 640x480)
//   FIPS_UVC_FPS           frames per second (default 30)
//   FIPS_UVC_ERROR_EVERY   every Nth frame carries V4L2_BUF_FLAG_ERROR (0: none)
//   FIPS_UVC_UNPLUG_AFTER  unplug once after this many frames (0: never)
//   FIPS_UVC_REPLUG_MS     and come back this long after (default 1000)
//   FIPS_UVC_STATS         a file rewritten after every frame with the counters
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/videodev2.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define NBUF 8
#define MAX_FRAMES 64

struct frame { unsigned char *data; size_t bytes; };

static struct {
    // Configuration, read once.
    int configured;
    const char *device;
    struct frame mjpeg[MAX_FRAMES], yuyv[MAX_FRAMES];
    int n_mjpeg, n_yuyv;
    unsigned width, height, fps, error_every, unplug_after, replug_ms;
    const char *stats;
    // The open instance (one at a time, as fipsd opens it).
    pthread_mutex_t lock;
    int fd;                       // the eventfd handed out, -1 when closed
    int gone;                     // unplugged while open: every ioctl is ENODEV
    uint32_t pixfmt;
    int nbuf;
    struct { void *mem; size_t length; int queued, done; uint32_t bytes, flags, seq; struct timeval ts; } buf[NBUF];
    int queue[NBUF], nqueue;      // queued by the application, FIFO
    int donefifo[NBUF], ndone;    // filled, waiting for DQBUF, FIFO
    int streaming;
    pthread_t thread;
    // Counters over the process's life, written to FIPS_UVC_STATS.
    unsigned long produced, driver_dropped, opens, unplugs;
    int64_t replug_at_ns;
} cam = { .lock = PTHREAD_MUTEX_INITIALIZER, .fd = -1 };

static int (*real_open)(const char *, int, ...);
static int (*real_openat)(int, const char *, int, ...);
static int (*real_close)(int);
static int (*real_ioctl)(int, unsigned long, ...);
static void *(*real_mmap)(void *, size_t, int, int, int, off_t);
static int (*real_munmap)(void *, size_t);

static int64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static void resolve(void) {
    if (real_open) return;
    real_open = dlsym(RTLD_NEXT, "open");
    real_openat = dlsym(RTLD_NEXT, "openat");
    real_close = dlsym(RTLD_NEXT, "close");
    real_ioctl = dlsym(RTLD_NEXT, "ioctl");
    real_mmap = dlsym(RTLD_NEXT, "mmap");
    real_munmap = dlsym(RTLD_NEXT, "munmap");
}

static unsigned env_uint(const char *name, unsigned dflt) {
    const char *v = getenv(name);
    return v && *v ? (unsigned)strtoul(v, NULL, 10) : dflt;
}

static int load_frames(const char *list, struct frame *out) {
    if (!list || !*list) return 0;
    char *copy = strdup(list), *save = NULL;
    int n = 0;
    for (char *p = strtok_r(copy, ":", &save); p && n < MAX_FRAMES; p = strtok_r(NULL, ":", &save)) {
        FILE *f = fopen(p, "rb");
        if (!f) { fprintf(stderr, "uvc_camera: cannot read %s\n", p); abort(); }
        fseek(f, 0, SEEK_END);
        long size = ftell(f);
        fseek(f, 0, SEEK_SET);
        out[n].data = malloc((size_t)size);
        out[n].bytes = fread(out[n].data, 1, (size_t)size, f);
        fclose(f);
        n++;
    }
    free(copy);
    return n;
}

static void configure(void) {
    if (cam.configured) return;
    cam.configured = 1;
    cam.device = getenv("FIPS_UVC_DEVICE");
    cam.n_mjpeg = load_frames(getenv("FIPS_UVC_MJPEG"), cam.mjpeg);
    cam.n_yuyv = load_frames(getenv("FIPS_UVC_YUYV"), cam.yuyv);
    const char *size = getenv("FIPS_UVC_SIZE");
    cam.width = 640; cam.height = 480;
    if (size) sscanf(size, "%ux%u", &cam.width, &cam.height);
    for (int i = 0; i < cam.n_yuyv; i++)
        if (cam.yuyv[i].bytes != (size_t)cam.width * cam.height * 2) {
            fprintf(stderr, "uvc_camera: a YUYV frame is %zu bytes, not %ux%ux2\n", cam.yuyv[i].bytes, cam.width, cam.height);
            abort();
        }
    cam.fps = env_uint("FIPS_UVC_FPS", 30);
    cam.error_every = env_uint("FIPS_UVC_ERROR_EVERY", 0);
    cam.unplug_after = env_uint("FIPS_UVC_UNPLUG_AFTER", 0);
    cam.replug_ms = env_uint("FIPS_UVC_REPLUG_MS", 1000);
    cam.stats = getenv("FIPS_UVC_STATS");
}

static int is_camera_path(const char *path) {
    configure();
    return cam.device && path && strcmp(path, cam.device) == 0;
}

static int is_camera_fd(int fd) { return fd >= 0 && fd == cam.fd; }

static uint32_t default_format(void) { return cam.n_mjpeg ? V4L2_PIX_FMT_MJPEG : V4L2_PIX_FMT_YUYV; }

static int offers(uint32_t f) {
    return (f == V4L2_PIX_FMT_MJPEG && cam.n_mjpeg) || (f == V4L2_PIX_FMT_YUYV && cam.n_yuyv);
}

static size_t image_size(uint32_t f) {
    if (f == V4L2_PIX_FMT_YUYV) return (size_t)cam.width * cam.height * 2;
    size_t most = 0;
    for (int i = 0; i < cam.n_mjpeg; i++) if (cam.mjpeg[i].bytes > most) most = cam.mjpeg[i].bytes;
    return most;
}

static void write_stats(void) {
    if (!cam.stats) return;
    char text[256];
    int n = snprintf(text, sizeof text, "produced %lu\ndriver_dropped %lu\nopens %lu\nunplugs %lu\n",
                     cam.produced, cam.driver_dropped, cam.opens, cam.unplugs);
    int fd = real_open(cam.stats, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd >= 0) { if (write(fd, text, (size_t)n) < 0) {} real_close(fd); }
}

static void signal_fd(void) { uint64_t one = 1; if (write(cam.fd, &one, 8) < 0) {} }

// One frame into the oldest queued buffer; called with the lock held.
static void produce_frame(void) {
    cam.produced++;
    if (cam.nqueue == 0) { cam.driver_dropped++; return; }
    int i = cam.queue[0];
    memmove(cam.queue, cam.queue + 1, sizeof(int) * (size_t)--cam.nqueue);
    const struct frame *f = cam.pixfmt == V4L2_PIX_FMT_YUYV ? &cam.yuyv[(cam.produced - 1) % (unsigned long)cam.n_yuyv]
                                                           : &cam.mjpeg[(cam.produced - 1) % (unsigned long)cam.n_mjpeg];
    size_t n = f->bytes < cam.buf[i].length ? f->bytes : cam.buf[i].length;
    if (cam.buf[i].mem) memcpy(cam.buf[i].mem, f->data, n);
    cam.buf[i].queued = 0;
    cam.buf[i].done = 1;
    cam.buf[i].bytes = (uint32_t)n;
    cam.buf[i].seq = (uint32_t)(cam.produced - 1);
    cam.buf[i].flags = cam.error_every && cam.produced % cam.error_every == 0 ? V4L2_BUF_FLAG_ERROR : 0;
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    cam.buf[i].ts.tv_sec = t.tv_sec;
    cam.buf[i].ts.tv_usec = t.tv_nsec / 1000;
    cam.donefifo[cam.ndone++] = i;
    signal_fd();
}

static void *player(void *arg) {
    (void)arg;
    int64_t period = 1000000000 / (cam.fps ? cam.fps : 1), next = now_ns();
    for (;;) {
        next += period;
        struct timespec t = { (time_t)(next / 1000000000), (long)(next % 1000000000) };
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &t, NULL) == EINTR) {}
        pthread_mutex_lock(&cam.lock);
        if (!cam.streaming) { pthread_mutex_unlock(&cam.lock); return NULL; }
        if (cam.unplug_after && cam.unplugs == 0 && cam.produced == cam.unplug_after) {
            cam.gone = 1;                      // the cable is out: wake the reader, who gets ENODEV
            cam.unplugs++;
            cam.replug_at_ns = now_ns() + (int64_t)cam.replug_ms * 1000000;
            signal_fd();
            write_stats();
            pthread_mutex_unlock(&cam.lock);
            return NULL;
        }
        produce_frame();
        write_stats();
        pthread_mutex_unlock(&cam.lock);
    }
}

static void stop_streaming(void) {
    pthread_mutex_lock(&cam.lock);
    int was = cam.streaming;
    cam.streaming = 0;
    pthread_mutex_unlock(&cam.lock);
    if (was) pthread_join(cam.thread, NULL);
    pthread_mutex_lock(&cam.lock);
    for (int i = 0; i < cam.nbuf; i++) cam.buf[i].queued = cam.buf[i].done = 0;
    cam.nqueue = cam.ndone = 0;
    pthread_mutex_unlock(&cam.lock);
}

static int open_camera(void) {
    resolve();
    if (cam.replug_at_ns && now_ns() < cam.replug_at_ns) { errno = ENOENT; return -1; }
    if (cam.fd >= 0) { errno = EBUSY; return -1; }
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd < 0) return -1;
    pthread_mutex_lock(&cam.lock);
    cam.fd = fd;
    cam.gone = 0;
    cam.pixfmt = default_format();
    cam.nbuf = cam.nqueue = cam.ndone = 0;
    cam.opens++;
    write_stats();
    pthread_mutex_unlock(&cam.lock);
    return fd;
}

static int fail(int e) { errno = e; return -1; }

static void fill_format(struct v4l2_format *f) {
    f->fmt.pix.width = cam.width;
    f->fmt.pix.height = cam.height;
    f->fmt.pix.pixelformat = cam.pixfmt;
    f->fmt.pix.field = V4L2_FIELD_NONE;
    f->fmt.pix.bytesperline = cam.pixfmt == V4L2_PIX_FMT_YUYV ? cam.width * 2 : 0;
    f->fmt.pix.sizeimage = (uint32_t)image_size(cam.pixfmt);
    f->fmt.pix.colorspace = V4L2_COLORSPACE_SRGB;
}

static int request_buffers(struct v4l2_requestbuffers *rb) {
    if (rb->type != V4L2_BUF_TYPE_VIDEO_CAPTURE || rb->memory != V4L2_MEMORY_MMAP) return fail(EINVAL);
    if (cam.streaming) return fail(EBUSY);
    for (int i = 0; i < cam.nbuf; i++) if (cam.buf[i].mem) return fail(EBUSY);   // still mapped
    unsigned n = rb->count > NBUF ? NBUF : rb->count;
    size_t page = (size_t)sysconf(_SC_PAGESIZE), size = (image_size(cam.pixfmt) + page - 1) / page * page;
    for (unsigned i = 0; i < n; i++) {
        memset(&cam.buf[i], 0, sizeof cam.buf[i]);
        cam.buf[i].length = size;
    }
    cam.nbuf = (int)n;
    rb->count = n;
    return 0;
}

static void describe(int i, struct v4l2_buffer *b) {
    b->index = (uint32_t)i;
    b->type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
    b->memory = V4L2_MEMORY_MMAP;
    b->length = (uint32_t)cam.buf[i].length;
    b->m.offset = (uint32_t)((size_t)i * cam.buf[i].length);
    b->bytesused = cam.buf[i].bytes;
    b->sequence = cam.buf[i].seq;
    b->timestamp = cam.buf[i].ts;
    b->field = V4L2_FIELD_NONE;
    b->flags = V4L2_BUF_FLAG_MAPPED | V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC | cam.buf[i].flags
             | (cam.buf[i].queued ? V4L2_BUF_FLAG_QUEUED : 0) | (cam.buf[i].done ? V4L2_BUF_FLAG_DONE : 0);
}

static int dequeue(struct v4l2_buffer *b) {
    if (cam.ndone == 0) return fail(cam.streaming ? EAGAIN : EINVAL);
    int i = cam.donefifo[0];
    memmove(cam.donefifo, cam.donefifo + 1, sizeof(int) * (size_t)--cam.ndone);
    cam.buf[i].done = 0;
    describe(i, b);
    if (cam.ndone == 0) { uint64_t v; if (read(cam.fd, &v, 8) < 0) {} }   // nothing left: poll sleeps again
    return 0;
}

static int camera_ioctl(unsigned long req, void *arg) {
    if (cam.gone && req != VIDIOC_STREAMOFF) return fail(ENODEV);
    switch (req) {
    case VIDIOC_QUERYCAP: {
        struct v4l2_capability *c = arg;
        memset(c, 0, sizeof *c);
        snprintf((char *)c->driver, sizeof c->driver, "uvcvideo");
        snprintf((char *)c->card, sizeof c->card, "fips test camera");
        snprintf((char *)c->bus_info, sizeof c->bus_info, "usb-fips-1");
        c->device_caps = V4L2_CAP_VIDEO_CAPTURE | V4L2_CAP_STREAMING;
        c->capabilities = c->device_caps | V4L2_CAP_DEVICE_CAPS;
        return 0;
    }
    case VIDIOC_ENUM_FMT: {
        struct v4l2_fmtdesc *d = arg;
        uint32_t offered[2]; int n = 0;
        if (cam.n_mjpeg) offered[n++] = V4L2_PIX_FMT_MJPEG;
        if (cam.n_yuyv) offered[n++] = V4L2_PIX_FMT_YUYV;
        if (d->type != V4L2_BUF_TYPE_VIDEO_CAPTURE || d->index >= (uint32_t)n) return fail(EINVAL);
        d->pixelformat = offered[d->index];
        d->flags = d->pixelformat == V4L2_PIX_FMT_MJPEG ? V4L2_FMT_FLAG_COMPRESSED : 0;
        return 0;
    }
    case VIDIOC_G_FMT: case VIDIOC_S_FMT: case VIDIOC_TRY_FMT: {
        struct v4l2_format *f = arg;
        if (f->type != V4L2_BUF_TYPE_VIDEO_CAPTURE) return fail(EINVAL);
        if (req == VIDIOC_G_FMT) { fill_format(f); return 0; }
        if (req == VIDIOC_S_FMT && (cam.streaming || cam.nbuf)) return fail(EBUSY);
        uint32_t keep = cam.pixfmt;
        cam.pixfmt = offers(f->fmt.pix.pixelformat) ? f->fmt.pix.pixelformat : default_format();
        fill_format(f);                  // a driver answers with what it can do, not EINVAL
        if (req == VIDIOC_TRY_FMT) cam.pixfmt = keep;
        return 0;
    }
    case VIDIOC_S_PARM: case VIDIOC_G_PARM: {
        struct v4l2_streamparm *p = arg;
        if (p->type != V4L2_BUF_TYPE_VIDEO_CAPTURE) return fail(EINVAL);
        p->parm.capture.capability = V4L2_CAP_TIMEPERFRAME;
        p->parm.capture.timeperframe.numerator = 1;          // this camera has one rate
        p->parm.capture.timeperframe.denominator = cam.fps;
        return 0;
    }
    case VIDIOC_REQBUFS: return request_buffers(arg);
    case VIDIOC_QUERYBUF: {
        struct v4l2_buffer *b = arg;
        if (b->index >= (uint32_t)cam.nbuf) return fail(EINVAL);
        describe((int)b->index, b);
        return 0;
    }
    case VIDIOC_QBUF: {
        struct v4l2_buffer *b = arg;
        if (b->index >= (uint32_t)cam.nbuf || b->memory != V4L2_MEMORY_MMAP) return fail(EINVAL);
        int i = (int)b->index;
        if (cam.buf[i].queued || cam.buf[i].done) return fail(EINVAL);
        cam.buf[i].queued = 1;
        cam.queue[cam.nqueue++] = i;
        describe(i, b);
        return 0;
    }
    case VIDIOC_DQBUF: return dequeue(arg);
    default: return fail(ENOTTY);
    }
}

static int stream_ioctl(unsigned long req) {
    if (req == VIDIOC_STREAMOFF) { stop_streaming(); return cam.gone ? fail(ENODEV) : 0; }
    pthread_mutex_lock(&cam.lock);
    int r = 0;
    if (cam.gone) r = fail(ENODEV);
    else if (cam.nbuf == 0) r = fail(EINVAL);
    else if (!cam.streaming) {
        cam.streaming = 1;
        pthread_create(&cam.thread, NULL, player, NULL);
    }
    pthread_mutex_unlock(&cam.lock);
    return r;
}

// ---- the intercepted libc entry points ----

static int open_any(const char *path, int flags, mode_t mode) {
    resolve();
    if (is_camera_path(path)) return open_camera();
    return real_open(path, flags, mode);
}

int open(const char *path, int flags, ...) {
    mode_t mode = 0;
    if (flags & (O_CREAT | O_TMPFILE)) { va_list ap; va_start(ap, flags); mode = va_arg(ap, mode_t); va_end(ap); }
    return open_any(path, flags, mode);
}

int open64(const char *path, int flags, ...) {
    mode_t mode = 0;
    if (flags & (O_CREAT | O_TMPFILE)) { va_list ap; va_start(ap, flags); mode = va_arg(ap, mode_t); va_end(ap); }
    return open_any(path, flags, mode);
}

int __open_2(const char *path, int flags) { return open_any(path, flags, 0); }
int __open64_2(const char *path, int flags) { return open_any(path, flags, 0); }

int openat(int dir, const char *path, int flags, ...) {
    mode_t mode = 0;
    if (flags & (O_CREAT | O_TMPFILE)) { va_list ap; va_start(ap, flags); mode = va_arg(ap, mode_t); va_end(ap); }
    resolve();
    if (is_camera_path(path)) return open_camera();
    return real_openat(dir, path, flags, mode);
}

int openat64(int dir, const char *path, int flags, ...) {
    mode_t mode = 0;
    if (flags & (O_CREAT | O_TMPFILE)) { va_list ap; va_start(ap, flags); mode = va_arg(ap, mode_t); va_end(ap); }
    resolve();
    if (is_camera_path(path)) return open_camera();
    return real_openat(dir, path, flags, mode);
}

int ioctl(int fd, unsigned long req, ...) {
    va_list ap;
    va_start(ap, req);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    resolve();
    if (!is_camera_fd(fd)) return real_ioctl(fd, req, arg);
    if (req == VIDIOC_STREAMON || req == VIDIOC_STREAMOFF) return stream_ioctl(req);
    pthread_mutex_lock(&cam.lock);
    int r = camera_ioctl(req, arg);
    int e = errno;
    pthread_mutex_unlock(&cam.lock);
    errno = e;
    return r;
}

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off) {
    resolve();
    if (!is_camera_fd(fd)) return real_mmap(addr, len, prot, flags, fd, off);
    pthread_mutex_lock(&cam.lock);
    void *r = MAP_FAILED;
    int e = EINVAL;                      // no buffer at that offset, or already mapped
    for (int i = 0; i < cam.nbuf; i++)
        if ((off_t)((size_t)i * cam.buf[i].length) == off && len <= cam.buf[i].length && !cam.buf[i].mem) {
            r = real_mmap(addr, cam.buf[i].length, prot, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
            if (r != MAP_FAILED) cam.buf[i].mem = r; else e = errno;
            break;
        }
    pthread_mutex_unlock(&cam.lock);
    if (r == MAP_FAILED) errno = e;
    return r;
}

void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off) { return mmap(addr, len, prot, flags, fd, off); }

int munmap(void *addr, size_t len) {
    resolve();
    pthread_mutex_lock(&cam.lock);
    for (int i = 0; i < cam.nbuf; i++) if (cam.buf[i].mem == addr) cam.buf[i].mem = NULL;
    pthread_mutex_unlock(&cam.lock);
    return real_munmap(addr, len);
}

int close(int fd) {
    resolve();
    if (is_camera_fd(fd)) {
        stop_streaming();
        pthread_mutex_lock(&cam.lock);
        cam.fd = -1;
        cam.nbuf = 0;
        pthread_mutex_unlock(&cam.lock);
    }
    return real_close(fd);
}
