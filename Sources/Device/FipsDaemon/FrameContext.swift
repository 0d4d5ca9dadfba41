import CFipsSys
import FipsArtifact
import FipsDeviceSupport
import FipsImage

/// What every source shares: the options, the model being served, the
/// metrics, the output and the per-source frame counters. Classifies a
/// decoded frame and writes its JSON line.
final class FrameContext {
    let o: DaemonOptions
    var model: LoadedModel
    var metrics: Metrics
    let sink: OutputSink
    /// --max-pixels and the body limit; `limits` adds the served model's resize size.
    let baseLimits: DecodeLimits
    var frameNo = [Int](repeating: 0, count: SourceKind.all.count)
    /// --features-out is failing (logged once until a write succeeds).
    var featuresFailing = false

    init(options: DaemonOptions, model: LoadedModel, sink: OutputSink) {
        self.o = options
        self.model = model
        self.sink = sink
        self.metrics = Metrics(expectedForward: model.timedForwardSeconds())
        var l = DecodeLimits()
        l.maxPixels = options.maxPixels
        // A watched folder's files: the planned (or given) encoded-input limit;
        // for a model without limits, as before, at least 64 MiB.
        let planned = model.artifact.inputLimits != nil || options.maxBodyGiven != nil
        l.maxFileBytes = planned ? options.maxBodyBytes : max(options.maxBodyBytes, 64 << 20)
        self.baseLimits = l
    }

    /// The decode limits for the model being served now (SIGHUP may change its resize size).
    var limits: DecodeLimits { model.classifier.decodeLimits(baseLimits) }

    /// Counts a frame of `source`; its number (from 1, per source).
    func nextFrame(_ source: SourceKind) -> Int {
        frameNo[source.rawValue] += 1
        return frameNo[source.rawValue]
    }

    /// Classifies a decoded frame (or reports its error): writes the JSON
    /// line, updates the metrics, and returns the line.
    @discardableResult
    func finish(_ result: Result<RGBImage, ImageError>, source: SourceKind, frame: Int, file: String?, start: Int64) -> [UInt8] {
        var t = TextBuffer()
        t.append("{\"time\": \"")
        t.append(utcNow())
        t.append("\", \"model\": \"\(hex8(model.checksum))\", \"source\": \"\(source.name)\", \"frame\": \(frame)")
        if let f = file {
            t.append(", \"file\": ")
            t.appendJSONString(f)
        }
        switch result {
        case .success(let img):
            let r = model.run(img, startedNs: start)
            metrics.frame(source, seconds: r.totalMs / 1000, forwardSeconds: r.forwardMs / 1000)
            model.classifier.appendPrediction(to: &t, topK: o.topK, embedding: o.embedding)
            if let dir = o.featuresOut { writeFeatures(dir: dir, name: file.map(pathStem) ?? "\(source.name)-\(frame)", into: &t) }
            t.append(", \"ms\": ")
            t.appendFixed(r.totalMs, decimals: 3)
            t.append(", \"decode_ms\": ")
            t.appendFixed(r.totalMs - r.forwardMs, decimals: 3)
            t.append(", \"forward_ms\": ")
            t.appendFixed(r.forwardMs, decimals: 3)
        case .failure(let e):
            metrics.frameError(errorKind(e))
            logLine("\(source.name): \(e.message)")
            t.append(", \"error\": ")
            t.appendJSONString(e.message)
            t.append(", \"error_kind\": \"\(errorKind(e))\"")
            t.append(", \"ms\": ")
            t.appendFixed(Double(fips_now_ns() - start) / 1e6, decimals: 3)
        }
        t.append("}\n")
        _ = sink.write(t.bytes, metrics: &metrics)
        return t.bytes
    }

    /// --features-out: the frame's final LayerNorm output as <dir>/<name>.npy, named in the
    /// line. A failure (a full disk) is counted and logged once until a write succeeds again.
    func writeFeatures(dir: String, name: String, into t: inout TextBuffer) {
        let c = model.classifier
        let path = dir + "/" + name + ".npy"
        let e = NpyWriter.write(c.features, shape: [c.config.tokenCount, c.config.dim], to: path)
        if e != 0 {
            metrics.error("features_write")
            if !featuresFailing { logLine("features: \(path): \(errnoString(e)) (further failures counted, not logged)") }
            featuresFailing = true
            return
        }
        featuresFailing = false
        t.append(", \"features\": ")
        t.appendJSONString(path)
    }
}
