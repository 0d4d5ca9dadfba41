import FipsArtifact
import FipsDeviceSupport
import FipsImage
import FipsViT

/// Where frames come from.
public enum SourceKind: Int {
    case camera = 0, folder = 1, http = 2, stdin = 3
    public static let all: [SourceKind] = [.camera, .folder, .http, .stdin]
    public var name: String {
        switch self {
        case .camera: return "camera"
        case .folder: return "folder"
        case .http: return "http"
        case .stdin: return "stdin"
        }
    }
}

/// `fipsd` options, parsed by `daemonFlags` (FipsDeviceSupport's flag table).
public struct DaemonOptions: RuntimeChoiceOptions {
    public var model = ""
    // camera
    public var camera: String? = nil
    public var cameraWidth = 640
    public var cameraHeight = 480
    /// --camera-size was given; else the model's planned camera size fills it (`resolveCamera`).
    public var cameraSizeGiven = false
    public var cameraFPS = 0
    /// 0 any (MJPEG first), 1 MJPEG, 2 YUYV (FIPSD_CAM_*).
    public var cameraFormat: Int32 = 0
    // folder
    public var watch: String? = nil
    public var doneDir: String? = nil
    public var failedDir: String? = nil
    // HTTP
    public var listenHost: String? = nil
    public var listenPort = 0
    /// --max-body, --max-connections and --max-pixels: nil until given; the
    /// model's planned limits or the defaults below fill them (`resolveLimits`).
    public var maxBodyGiven: Int? = nil
    public var maxConnectionsGiven: Int? = nil
    public var maxPixelsGiven: Int? = nil
    public static let fallbackLimits = InputLimits(maxPixels: DecodeLimits.defaultMaxPixels, maxInputBytes: 10 << 20,
                                                   maxConnections: 16, budgetBytes: 0)
    public var maxBodyBytes = 10 << 20
    public var httpTimeoutMs = 10_000
    public var maxConnections = 16
    // stdin
    public var stdin = false
    public var stdinNoDrop = false
    // output
    public var output: String? = nil
    public var rotateBytes = 64 << 20
    public var topK = 5
    /// --top-k was given: refused for a model without a head.
    public var topKGiven = false
    /// Add the CLS embedding to each result line.
    public var embedding = false
    /// Write each frame's final LayerNorm output [tokens, dim] as .npy here.
    public var featuresOut: String? = nil
    public var maxPixels = DecodeLimits.defaultMaxPixels
    public var threads: Int? = nil
    public var kernel: String? = nil
    public var nonlinear = ExecutorOptions()
    public var quiet = false

    public init() {}

    /// Fills --max-body, --max-connections and --max-pixels from the model's
    /// planned limits where they were not given; the notes to log.
    public mutating func resolveLimits(_ artifact: Artifact) -> [String] {
        let l = PlannedLimits(model: model, artifact, maxPixels: maxPixelsGiven, maxInputBytes: maxBodyGiven,
                              maxConnections: maxConnectionsGiven, fallback: DaemonOptions.fallbackLimits,
                              connectionsFlag: "--max-connections", inputBytesFlag: "--max-body")
        maxBodyBytes = l.maxInputBytes
        maxConnections = l.maxConnections
        maxPixels = l.maxPixels
        return l.notes
    }

    /// With --camera: takes the model's planned capture size where --camera-size
    /// was not given. The camera's buffers are memory the budget must count, so,
    /// unlike the input limits (a warning), a capture the plan does not count is
    /// refused: a --camera-size with more pixels than planned, or any camera on a
    /// model planned with `--camera none`. A model without the record (older
    /// fips-plan, or none) keeps the 640x480 default and a note says so.
    /// `planned`: the artifact's `inputLimits`. The refusal is the message for exit 2.
    public mutating func resolveCamera(planned: InputLimits?) -> (notes: [String], refusal: String?) {
        guard camera != nil else { return ([], nil) }
        let size = "\(cameraWidth)x\(cameraHeight)"
        guard let limits = planned, let cam = limits.camera else {
            if cameraSizeGiven { return ([], nil) }
            return (["note: \(model) records no planned camera size (not made by fips-plan, or by an older one); "
                     + "capturing at \(size), which its budget may not count"], nil)
        }
        let budget = "\(limits.budgetBytes / 1024) KiB budget"
        switch cam {
        case .noCamera:
            return ([], "--camera \(camera!) at \(size): \(model) was planned with --camera none, so its \(budget) "
                        + "counts no camera buffers; plan it again with fips-plan --camera \(size)")
        case let .size(w, h):
            if !cameraSizeGiven {
                cameraWidth = w; cameraHeight = h
                return ([], nil)
            }
            if cameraWidth * cameraHeight > w * h {
                return ([], "--camera-size \(size) is larger than the \(w)x\(h) camera planned for \(model): its \(budget) "
                            + "counts the capture buffers of \(w)x\(h) only; give at most that, or plan it again with "
                            + "fips-plan --camera \(size)")
            }
            return ([], nil)
        }
    }

    public var hasSource: Bool { camera != nil || watch != nil || listenHost != nil || stdin }
}

public let daemonUsage = """
USAGE: fipsd --model <model.fips> [--camera <dev>] [--watch <dir>] [--listen [<host>:]<port>] [--stdin]
             [--output <file>] [--top-k <k>] [--embedding] [--features-out <dir>] [--threads <n>] [options]

Classifies images on the device as they arrive and publishes one JSON line per
frame. Give at least one source; several at once are fine. One frame is
classified at a time; a camera or stdin stream that runs faster than the model
has its older frames dropped (counted in /metrics), never queued.

  {"time": "2026-12-01T06:15:00.123Z", "source": "folder", "frame": 3, "file": "cat.jpg",
   "top": [{"label": "cat", "score": 0.91}, ...], "ms": 31.2, "forward_ms": 27.9}

"ms" is decode + preprocessing + forward pass; "frame" counts per source. A bad
frame gives a line with "error" instead of "top" (and is logged and counted);
a model without a classification head gives "cls_norm" instead of "top";
--embedding adds "embedding": [<dim floats>], the frame's CLS feature.

SOURCES:
  --camera <dev>          a V4L2 camera (e.g. /dev/video0), MJPEG or YUYV, mmap buffers;
                          retried with backoff (1 s doubling to 30 s) while missing or unplugged
  --camera-size <W>x<H>   requested capture size (default: the model's planned camera, else 640x480;
                          the driver may pick the nearest). More pixels than fips-plan --camera
                          counted, or any camera on a model planned with --camera none, is refused
  --camera-fps <n>        requested frame rate (default: the driver's)
  --camera-format <f>     mjpeg, yuyv or any (default any: MJPEG if offered, else YUYV)
  --watch <dir>           a folder: every image closed after writing in it (or moved into it)
                          is classified once, then moved to <dir>/done/ or <dir>/failed/.
                          Images already there at start are classified too; names
                          starting with '.' are ignored (write to .name, then rename);
                          a file of the same name already in done/ or failed/ is replaced
  --done-dir <dir>        where classified images go (default <watch>/done)
  --failed-dir <dir>      where undecodable images go (default <watch>/failed)
  --listen [<host>:]<port>
                          HTTP on <host> (default 127.0.0.1, loopback only; give
                          0.0.0.0:<port> to serve other machines; port 0 picks one):
                            POST /classify   body: a JPEG or PNG, raw or as the file of a
                                             multipart/form-data upload (curl -F img=@a.jpg);
                                             answers the JSON line
                            GET  /healthz    200 "ok" while a model is loaded
                            GET  /metrics    Prometheus text: frames, errors by kind,
                                             HTTP answers, duration histograms, model, build
  --max-body <size>       largest accepted request body or stdin frame, e.g. 8M or 500kB
                          (default: the model's planned limit, else 10M; larger: 413)
  --http-timeout <time>   a request must arrive within this time (default 10s; else 408)
  --max-connections <n>   open HTTP connections at once (default: the model's planned limit,
                          else 16; more: 503). fips-plan writes these limits into the model
                          so that its budget holds; a larger value logs a warning
  --stdin                 an MJPEG stream (concatenated JPEGs) on standard input, or one
                          PNG image; the daemon exits when the stream ends and nothing else
                          is watched: 0, or 1 when some frames or bytes on stdin failed
  --stdin-no-drop         classify every stdin frame (read stdin only when idle) instead
                          of the newest: for files rather than live streams

OUTPUT AND MODEL:
  --output <file>         append the JSON lines to <file> (default: standard output);
                          a full disk drops lines (logged, counted), never stops the daemon
  --rotate-bytes <size>   when <file> passes this size, rename it to <file>.1 and start a
                          new one (default 64M; 0: never)
  --top-k <k>             labels per frame (default 5); refused for a model without a head
  --embedding             add "embedding": the CLS token's final LayerNorm output, the
                          way to use a backbone (retrieval, nearest neighbours)
  --features-out <dir>    also write each frame's final LayerNorm output (every token) to
                          <dir>/<image stem>.npy (folder mode) or <source>-<frame>.npy,
                          named in the line as "features"; one file per frame, so for
                          folders and HTTP rather than a camera left running
  --max-pixels <n>        refuse images with more pixels (default: the model's planned
                          limit, else 8000000); a JPEG counts
                          at the 1/2, 1/4 or 1/8 size it decodes at for the model's input
  --threads <n>           worker threads (default: the CPUs this process may use)
  --kernel <name>         integer GEMM kernel (scalar, avx2, avx512vnni, neon, neon-dotprod)
  --integer-nonlinear <list>
                          I-ViT integer softmax, gelu, layernorm (comma-separated, or all)
  --quiet                 log only errors and reloads, not start-up and shutdown notes
  -h, --help              show this help

SIGNALS: SIGTERM or SIGINT finishes the frame in flight and exits 0. SIGHUP
reloads --model from disk: the new model is checked (checksums, tensors, one
test forward pass) before it replaces the old one; a bad file keeps the old
model serving and the log says why. SIGUSR1 reopens --output (after logrotate
moved it). Logs go to standard error, one line each. Started by systemd with
Type=notify ($NOTIFY_SOCKET), fipsd says READY=1 once the model and every
source are up, RELOADING=1 around a reload, and pings $WATCHDOG_USEC's watchdog.

EXAMPLES:
  fipsd --model dinov2_s.q8.fips --camera /dev/video0 --camera-size 640x480 --output /var/log/fipsd.jsonl
  fipsd --model model.fips --watch /srv/inbox --listen 8080
  curl --data-binary @cat.jpg http://127.0.0.1:8080/classify
  curl -s http://127.0.0.1:8080/metrics | grep fipsd_frames_total
  ffmpeg -f v4l2 -i /dev/video0 -f mjpeg - | fipsd --model model.fips --stdin
  kill -HUP $(pidof fipsd)          # after copying a new model.fips into place (mv, not cp)
"""

/// "640x480" -> (640, 480).
func parseSize(_ s: String) -> (Int, Int)? {
    let parts = s.split(separator: "x")
    guard parts.count == 2, let w = parseInt(String(parts[0])), let h = parseInt(String(parts[1])),
          w >= 1, h >= 1, w <= 16384, h <= 16384 else { return nil }
    return (w, h)
}

/// "8080" -> ("127.0.0.1", 8080); "0.0.0.0:8080"; "[::1]:8080".
public func parseListen(_ s: String) -> (String, Int)? {
    var host = "127.0.0.1"
    var portText = s
    let bytes = Array(s.utf8)
    if bytes.first == 91 {  // [v6]:port
        guard let close = bytes.firstIndex(of: 93), close + 1 < bytes.count, bytes[close + 1] == 58 else { return nil }
        host = String(decoding: bytes[1..<close], as: UTF8.self)
        portText = String(decoding: bytes[(close + 2)...], as: UTF8.self)
    } else if let colon = bytes.lastIndex(of: 58) {
        host = String(decoding: bytes[..<colon], as: UTF8.self)
        portText = String(decoding: bytes[(colon + 1)...], as: UTF8.self)
        if host.isEmpty { return nil }
    }
    guard let port = parseInt(portText), port <= 65535 else { return nil }
    return (host, port)
}

let daemonFlags = FlagTable<DaemonOptions>(
    defaults: DaemonOptions(),
    flags: [
        .value("--model", missing: "--model needs a path") { o, v in o.model = v; return nil },
        .value("--camera", missing: "--camera needs a device path such as /dev/video0") { o, v in o.camera = v; return nil },
        .value("--camera-size", missing: cameraSizeError) { o, v in
            guard let size = parseSize(v) else { return cameraSizeError }
            o.cameraWidth = size.0; o.cameraHeight = size.1; o.cameraSizeGiven = true
            return nil
        },
        .integer("--camera-fps", in: 1...1000, error: "--camera-fps needs a frame rate from 1 to 1000") { o, k in o.cameraFPS = k },
        .value("--camera-format", missing: "--camera-format needs mjpeg, yuyv or any") { o, v in
            switch v {
            case "any": o.cameraFormat = 0
            case "mjpeg": o.cameraFormat = 1
            case "yuyv": o.cameraFormat = 2
            default: return "--camera-format: '\(v)' is not mjpeg, yuyv or any"
            }
            return nil
        },
        .value("--watch", missing: "--watch needs a directory") { o, v in o.watch = v; return nil },
        .value("--done-dir", missing: "--done-dir needs a directory") { o, v in o.doneDir = v; return nil },
        .value("--failed-dir", missing: "--failed-dir needs a directory") { o, v in o.failedDir = v; return nil },
        .value("--listen", missing: "--listen needs [HOST:]PORT, e.g. 8080 or 0.0.0.0:8080") { o, v in
            guard let hp = parseListen(v) else {
                return "--listen: '\(v)' is not [HOST:]PORT (e.g. 8080, 127.0.0.1:8080, 0.0.0.0:8080, [::1]:8080)"
            }
            o.listenHost = hp.0; o.listenPort = hp.1
            return nil
        },
        .bytes("--max-body", in: 1...(1 << 30), error: "--max-body needs a size from 1 byte to 1GiB (e.g. 8M, 500kB, 4096)") { o, k in o.maxBodyBytes = k; o.maxBodyGiven = k },
        .milliseconds("--http-timeout", in: 1...3_600_000, error: "--http-timeout needs a duration with its unit from 1ms to 1h (e.g. 10s, 700ms)") { o, k in o.httpTimeoutMs = k },
        .integer("--max-connections", in: 1...200, error: "--max-connections needs a count from 1 to 200") { o, k in o.maxConnections = k; o.maxConnectionsGiven = k },
        .set("--stdin") { $0.stdin = true },
        .set("--stdin-no-drop") { $0.stdin = true; $0.stdinNoDrop = true },
        .value("--output", "-o", missing: "--output needs a file path") { o, v in o.output = v; return nil },
        .bytes("--rotate-bytes", in: 0...(1 << 40), error: "--rotate-bytes needs a size (e.g. 64M; 0: never rotate)") { o, k in o.rotateBytes = k },
        .integer("--top-k", in: 1...100_000, error: "--top-k needs a positive integer") { o, k in o.topK = k; o.topKGiven = true },
        .set("--embedding") { $0.embedding = true },
        .value("--features-out", missing: "--features-out needs a directory") { o, v in o.featuresOut = v; return nil },
        .integer("--max-pixels", in: 1...(1 << 40), error: "--max-pixels needs a positive integer") { o, k in o.maxPixels = k; o.maxPixelsGiven = k },
        .integer("--threads", in: 1...256, error: "--threads needs an integer from 1 to 256") { o, k in o.threads = k },
        .kernel,
        .integerNonlinear,
        .set("--quiet", "-q") { $0.quiet = true },
    ],
    argument: { _, a in "unexpected argument '\(a)' (images come from --camera, --watch, --listen or --stdin)" },
    finish: { o in
        if o.model.isEmpty { return "missing --model" }
        if !o.hasSource { return "no source: give --camera, --watch, --listen or --stdin" }
        return nil
    })

let cameraSizeError = "--camera-size needs WIDTHxHEIGHT, e.g. 640x480"
