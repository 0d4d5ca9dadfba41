// OS plumbing for the fipsd daemon (device code): signals through a signalfd,
// TCP sockets, poll, inotify, V4L2 capture with mmap buffers, wall-clock time
// and process figures. Plain functions without varargs or macros, so Embedded
// Swift can call them. Functions that can fail return -errno (or set *err).
#ifndef FIPSD_SYS_H
#define FIPSD_SYS_H
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// poll(2) event bits (Linux values; the same on x86-64 and aarch64).
enum { FIPSD_POLLIN = 0x001, FIPSD_POLLOUT = 0x004, FIPSD_POLLERR = 0x008,
       FIPSD_POLLHUP = 0x010, FIPSD_POLLNVAL = 0x020 };
enum { FIPSD_SIGHUP = 1, FIPSD_SIGINT = 2, FIPSD_SIGUSR1 = 10, FIPSD_SIGTERM = 15 };
// errno values device code compares against.
enum { FIPSD_EAGAIN = 11, FIPSD_ENOENT = 2, FIPSD_ENODEV = 19, FIPSD_EINTR = 4, FIPSD_ENOSPC = 28 };

// Blocks SIGTERM, SIGINT, SIGHUP and SIGUSR1 in this thread (call before any
// other thread starts, so every thread inherits the mask), ignores SIGPIPE,
// and returns a non-blocking signalfd for the four, or -errno.
int fipsd_signals_init(void);
// The next pending signal number from the signalfd, or 0 when none.
int fipsd_signal_next(int sfd);

// A non-blocking listening TCP socket on a numeric IPv4 or IPv6 address
// (SO_REUSEADDR). Returns the fd or -errno; -EINVAL for an unparsable address.
int fipsd_listen(const char *host, int port, int backlog);
// The local port of a bound socket (for --listen HOST:0), or -errno.
int fipsd_local_port(int fd);
// accept4(SOCK_NONBLOCK | SOCK_CLOEXEC); fd or -errno (-EAGAIN: none waiting).
int fipsd_accept(int lfd);
// One read/write; bytes, 0 at end of file (read), or -errno.
long fipsd_read(int fd, void *buf, size_t n);
long fipsd_write(int fd, const void *buf, size_t n);
// Writes everything (retrying EINTR and short writes); 0 or errno.
int fipsd_write_all(int fd, const void *buf, size_t n);
void fipsd_close(int fd);
// shutdown(fd, SHUT_WR): the peer sees the end of the response; 0 or -errno.
int fipsd_shutdown_write(int fd);
int fipsd_set_nonblocking(int fd);

// poll(2) over n descriptors; returns the ready count, 0 on timeout or -errno.
int fipsd_poll(const int *fds, const short *events, short *revents, int n, int timeout_ms);

// inotify on a directory for files closed after writing or moved in.
// Returns the inotify fd or -errno.
int fipsd_watch_dir(const char *dir);
// Reads the pending events into names (NUL-terminated names one after the
// other) and returns the bytes used, 0 when none, or -errno. *overflow is set
// to 1 when the kernel's queue overflowed (events lost: rescan the folder).
long fipsd_watch_read(int fd, char *names, size_t cap, int *overflow);
// Regular files in dir whose names do not start with '.', NUL-separated,
// unsorted. Returns the bytes used, or -errno; stops (returns -ENOBUFS) when
// cap is too small.
long fipsd_list_files(const char *dir, char *names, size_t cap);
// rename(2); 0 or errno.
int fipsd_rename(const char *from, const char *to);
// The first n bytes of a file into buf; returns bytes read or -errno.
long fipsd_read_prefix(const char *path, void *buf, size_t n);

// Opens path for appending (O_CREAT, 0644); fd or -errno.
int fipsd_open_append(const char *path);
// Size of a regular file, or -1 for anything else (pipes, /dev/full, ttys).
int64_t fipsd_fd_file_size(int fd);

// UTC wall-clock time as "YYYY-MM-DDTHH:MM:SS.mmmZ"; returns the length.
int fipsd_utc_now(char *buf, size_t n);
// Current resident set size (VmRSS) and virtual size (VmSize) in bytes, or -1.
int64_t fipsd_rss_bytes(void);
int64_t fipsd_virtual_bytes(void);
// Open file descriptors (/proc/self/fd), and the soft RLIMIT_NOFILE (-1: none).
int fipsd_open_fds(void);
int64_t fipsd_max_fds(void);
// CLOCK_REALTIME as seconds since the Unix epoch.
double fipsd_unix_time(void);
// User + system CPU seconds of this process.
double fipsd_cpu_seconds(void);

// ---- V4L2 capture (mmap streaming I/O) ----
typedef struct fipsd_camera fipsd_camera;
enum { FIPSD_CAM_ANY = 0, FIPSD_CAM_MJPEG = 1, FIPSD_CAM_YUYV = 2 };
// The mmap buffers fipsd asks the driver for; fips-plan counts them (CameraMemory.buffers, which a test holds equal).
enum { FIPSD_CAM_BUFFERS = 4 };
// Opens dev, negotiates width x height (the driver may pick the nearest) in
// MJPEG or YUYV (prefer: FIPSD_CAM_*; ANY tries MJPEG first), asks for fps
// frames per second (0: the driver's default), maps 4 buffers and starts
// streaming. NULL on failure with *err = errno (or EPROTO for "not a capture
// device / no supported format") and a one-line reason in msg.
fipsd_camera *fipsd_camera_open(const char *dev, int width, int height, int fps, int prefer,
                                int *err, char *msg, size_t msg_n);
int fipsd_camera_fd(const fipsd_camera *cam);
int fipsd_camera_format(const fipsd_camera *cam);   // FIPSD_CAM_MJPEG or FIPSD_CAM_YUYV
int fipsd_camera_width(const fipsd_camera *cam);
int fipsd_camera_height(const fipsd_camera *cam);
int fipsd_camera_stride(const fipsd_camera *cam);
// The bytes of the mapped buffers, as the driver sized them (checked against fips-plan's count).
size_t fipsd_camera_buffer_bytes(const fipsd_camera *cam);
// Dequeues every filled buffer, gives all but the newest back to the driver
// (adding their number to *dropped) and returns the newest one's index, with
// its bytes in *data / *bytes. -EAGAIN when no frame is ready; other -errno
// (ENODEV, EIO) when the camera went away. Hand the buffer back with
// fipsd_camera_requeue before the next dequeue.
int fipsd_camera_dequeue_latest(fipsd_camera *cam, const void **data, size_t *bytes, int *dropped);
int fipsd_camera_requeue(fipsd_camera *cam, int index);
void fipsd_camera_close(fipsd_camera *cam);

#ifdef __cplusplus
}
#endif
#endif
