// systemd's service notification protocol, written directly: a datagram of
// "KEY=VALUE" lines on the Unix socket named by $NOTIFY_SOCKET (sd_notify(3)).
// A few lines instead of libsystemd, which the static device binaries cannot
// link and boards without systemd do not have.
#ifndef FIPSD_NOTIFY_H
#define FIPSD_NOTIFY_H
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// Sends state (e.g. "READY=1\nSTATUS=serving") to $NOTIFY_SOCKET (a path, or
// "@name" for the abstract namespace). Returns 1 when sent, 0 when the
// variable is unset (not started by systemd with Type=notify), or -errno.
int fipsd_notify(const char *state);
// The watchdog interval systemd asks for ($WATCHDOG_USEC, when $WATCHDOG_PID
// is unset or this process), in microseconds; 0 when there is no watchdog.
int64_t fipsd_watchdog_usec(void);
// CLOCK_MONOTONIC in microseconds, for "RELOADING=1\nMONOTONIC_USEC=...".
int64_t fipsd_monotonic_usec(void);

#ifdef __cplusplus
}
#endif
#endif
