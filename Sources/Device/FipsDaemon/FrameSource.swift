import CFipsDaemon

/// What the poll loop asks of a source of frames: HTTP, folder, stdin or
/// camera. A constraint for generics only (Embedded Swift has no `any`);
/// the daemon holds each source as its concrete type.
protocol FrameSource: AnyObject {
    /// Adds the descriptors to wait on, each with a tag of the source's own.
    func register(_ poll: inout PollSet, now: Int64)
    /// The longest the poll may wait for this source, in ms: 0 with a frame
    /// waiting, or until a deadline or retry; Int64.max when nothing is due.
    func waitLimitMs(now: Int64) -> Int64
    /// Handles the events poll reported on the descriptor registered with `tag`.
    func ready(tag: Int, revents: Int32)
    /// After all events of one poll: deadlines and closing.
    func afterPoll()
    /// A frame is waiting to be classified (the sources take turns).
    var hasFrame: Bool { get }
    /// Classifies the waiting frame.
    func processFrame()
}

extension FrameSource {
    func waitLimitMs(now: Int64) -> Int64 { Int64.max }
    func afterPoll() {}
    var hasFrame: Bool { false }
    func processFrame() {}
}

/// The descriptors of one poll() call, each with the source it belongs to
/// (an index the daemon chooses) and that source's tag.
struct PollSet {
    var fds: [Int32] = []
    var events: [Int16] = []
    var revents: [Int16] = []
    var owners: [Int] = []
    var tags: [Int] = []
    /// The owner `add` records: set by the daemon before each source registers.
    var owner = 0

    mutating func reset() {
        fds.removeAll(keepingCapacity: true)
        events.removeAll(keepingCapacity: true)
        owners.removeAll(keepingCapacity: true)
        tags.removeAll(keepingCapacity: true)
    }

    mutating func add(_ fd: Int32, _ ev: Int32, tag: Int = 0) {
        fds.append(fd); events.append(Int16(ev)); owners.append(owner); tags.append(tag)
    }

    /// poll(); the number of ready descriptors, or -errno.
    mutating func wait(timeoutMs: Int64) -> Int32 {
        revents = [Int16](repeating: 0, count: fds.count)
        let n = Int32(fds.count)
        return fds.withUnsafeBufferPointer { f in
            events.withUnsafeBufferPointer { e in
                revents.withUnsafeMutableBufferPointer { rv in
                    fipsd_poll(f.baseAddress, e.baseAddress, rv.baseAddress, n, Int32(timeoutMs))
                }
            }
        }
    }
}
