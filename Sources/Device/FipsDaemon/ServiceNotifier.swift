import CFipsDaemon
import CFipsSys

/// Tells systemd (Type=notify) what the daemon is doing: READY=1 once the
/// model has passed its test forward and every source is open, RELOADING=1
/// around a SIGHUP reload, WATCHDOG=1 from the event loop at half the
/// interval systemd asks for, STOPPING=1 on SIGTERM. Without $NOTIFY_SOCKET
/// (not started by systemd) every call does nothing.
struct ServiceNotifier {
    /// Half of $WATCHDOG_USEC, in nanoseconds; 0 when there is no watchdog.
    let watchdogPeriodNs: Int64
    var lastWatchdogNs: Int64 = 0
    var failedOnce = false

    init() {
        watchdogPeriodNs = fipsd_watchdog_usec() * 1000 / 2
    }

    mutating func ready(_ status: String) { send("READY=1\nSTATUS=" + status) }

    mutating func reloading() { send("RELOADING=1\nMONOTONIC_USEC=\(fipsd_monotonic_usec())\nSTATUS=reloading the model") }

    mutating func stopping() { send("STOPPING=1\nSTATUS=stopping") }

    /// Pets the watchdog when half its interval has passed. The loop calls this
    /// after every poll and every frame, so a stuck forward pass or a wedged
    /// loop stops the pings and systemd restarts the service.
    mutating func watchdog(now: Int64) {
        guard watchdogPeriodNs > 0, now - lastWatchdogNs >= watchdogPeriodNs else { return }
        lastWatchdogNs = now
        send("WATCHDOG=1")
    }

    /// Milliseconds until the next watchdog ping is due (the loop's poll timeout).
    func waitLimitMs(now: Int64) -> Int64 {
        guard watchdogPeriodNs > 0 else { return Int64.max }
        return max(0, (lastWatchdogNs + watchdogPeriodNs - now) / 1_000_000)
    }

    private mutating func send(_ state: String) {
        let r = fipsd_notify(state)
        if r < 0 && !failedOnce {
            failedOnce = true
            logLine("cannot notify systemd on $NOTIFY_SOCKET: \(errnoString(-r))")
        }
    }
}
