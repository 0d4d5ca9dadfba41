import FipsArtifact
import FipsDeviceSupport
import FipsImage

/// include/fips.h, exported with @_cdecl. A `fips_model *` is a retained CModel.

func model(_ m: OpaquePointer?) -> CModel? {
    m.map { Unmanaged<CModel>.fromOpaque(UnsafeRawPointer($0)).takeUnretainedValue() }
}

@_cdecl("fips_open")
public func fips_open(_ path: UnsafePointer<CChar>?, _ threads: Int32,
                      _ err: UnsafeMutablePointer<CChar>?, _ errLen: Int) -> OpaquePointer? {
    func failed(_ message: String) -> OpaquePointer? {
        if let e = err { copyCString(message, into: e, capacity: errLen) }
        return nil
    }
    guard let path else { return failed("fips_open: path is NULL") }
    guard threads >= 0 && threads <= 256 else { return failed("fips_open: threads must be 0 (the CPU count) to 256") }
    let m: CModel
    do { m = try CModel(path: String(cString: path), threads: Int(threads)) } catch { return failed(error.message) }
    if let e = err, errLen > 0 { e[0] = 0 }
    return OpaquePointer(Unmanaged.passRetained(m).toOpaque())
}

@_cdecl("fips_close")
public func fips_close(_ m: OpaquePointer?) {
    guard let m else { return }
    Unmanaged<CModel>.fromOpaque(UnsafeRawPointer(m)).release()
}

@_cdecl("fips_num_classes")
public func fips_num_classes(_ m: OpaquePointer?) -> Int32 { model(m).map { Int32($0.classifier.config.numClasses) } ?? CStatus.argument }

@_cdecl("fips_embedding_dim")
public func fips_embedding_dim(_ m: OpaquePointer?) -> Int32 { model(m).map { Int32($0.classifier.config.dim) } ?? CStatus.argument }

@_cdecl("fips_input_size")
public func fips_input_size(_ m: OpaquePointer?) -> Int32 { model(m).map { Int32($0.classifier.config.cropSize) } ?? CStatus.argument }

@_cdecl("fips_label")
public func fips_label(_ m: OpaquePointer?, _ i: Int32) -> UnsafePointer<CChar>? {
    guard let c = model(m), i >= 0, Int(i) < c.labels.count else { return nil }
    return UnsafePointer(c.labels[Int(i)])
}

@_cdecl("fips_error")
public func fips_error(_ m: OpaquePointer?) -> UnsafePointer<CChar>? {
    guard let c = model(m) else { return nil }
    return UnsafePointer(c.error)
}

@_cdecl("fips_run_encoded")
public func fips_run_encoded(_ m: OpaquePointer?, _ bytes: UnsafeRawPointer?, _ n: Int) -> Int32 {
    guard let c = model(m) else { return CStatus.argument }
    guard let bytes, n > 0 else { return c.fail(CStatus.argument, "fips_run_encoded: no bytes") }
    if n > c.limits.maxFileBytes { return c.fail(CStatus.image, "image of \(n) bytes is over the limit of \(c.limits.maxFileBytes)") }
    return c.run(Classifier.decode(UnsafeRawBufferPointer(start: bytes, count: n), name: "image", limits: c.limits))
}

@_cdecl("fips_run_file")
public func fips_run_file(_ m: OpaquePointer?, _ path: UnsafePointer<CChar>?) -> Int32 {
    guard let c = model(m) else { return CStatus.argument }
    guard let path else { return c.fail(CStatus.argument, "fips_run_file: path is NULL") }
    return c.run(Classifier.decode(path: String(cString: path), limits: c.limits))
}

@_cdecl("fips_run_rgb")
public func fips_run_rgb(_ m: OpaquePointer?, _ rgb: UnsafePointer<UInt8>?, _ width: Int32, _ height: Int32, _ stride: Int32) -> Int32 {
    guard let c = model(m) else { return CStatus.argument }
    guard let rgb else { return c.fail(CStatus.argument, "fips_run_rgb: no pixels") }
    let (w, h, s) = (Int(width), Int(height), Int(stride))
    if let bad = c.checkFrame(width: w, height: h, stride: s, rowBytes: w * 3, what: "fips_run_rgb") { return bad }
    let bytes = UnsafeRawBufferPointer(start: rgb, count: s * (h - 1) + w * 3)
    return c.run(.success(CameraFrame.fromRGB24(bytes, width: w, height: h, stride: s)))
}

@_cdecl("fips_run_yuyv")
public func fips_run_yuyv(_ m: OpaquePointer?, _ yuyv: UnsafePointer<UInt8>?, _ width: Int32, _ height: Int32, _ stride: Int32) -> Int32 {
    guard let c = model(m) else { return CStatus.argument }
    guard let yuyv else { return c.fail(CStatus.argument, "fips_run_yuyv: no pixels") }
    let (w, h, s) = (Int(width), Int(height), Int(stride))
    let pairBytes = ((w + 1) / 2) * 4
    if let bad = c.checkFrame(width: w, height: h, stride: s, rowBytes: pairBytes, what: "fips_run_yuyv") { return bad }
    let bytes = UnsafeRawBufferPointer(start: yuyv, count: s * (h - 1) + pairBytes)
    return c.run(.success(CameraFrame.fromYUYV(bytes, width: w, height: h, stride: s)))
}

@_cdecl("fips_top_k")
public func fips_top_k(_ m: OpaquePointer?, _ k: Int32, _ classes: UnsafeMutablePointer<Int32>?, _ scores: UnsafeMutablePointer<Float>?) -> Int32 {
    guard let c = model(m) else { return CStatus.argument }
    let cfg = c.classifier.config
    guard cfg.hasHead else {
        return c.fail(CStatus.noHead, "the model has no classification head: use fips_embedding, or train a head with `fips head`")
    }
    guard c.hasResult else { return c.fail(CStatus.noImage, "no image has run yet (or the last one failed)") }
    guard k > 0, let classes, let scores else { return c.fail(CStatus.argument, "fips_top_k: k must be positive, classes and scores not NULL") }
    let probs = softmax(c.classifier.logits, cfg.numClasses)
    let order = topIndices(probs, k: min(Int(k), cfg.numClasses))
    for (i, j) in order.enumerated() {
        classes[i] = Int32(j)
        scores[i] = probs[j]
    }
    return Int32(order.count)
}

@_cdecl("fips_embedding")
public func fips_embedding(_ m: OpaquePointer?, _ out: UnsafeMutablePointer<Float>?, _ capacity: Int32) -> Int32 {
    guard let c = model(m) else { return CStatus.argument }
    guard c.hasResult else { return c.fail(CStatus.noImage, "no image has run yet (or the last one failed)") }
    guard let out, capacity >= 0 else { return c.fail(CStatus.argument, "fips_embedding: out is NULL or capacity negative") }
    let dim = c.classifier.config.dim
    for k in 0..<min(Int(capacity), dim) { out[k] = c.classifier.features[k] }
    return Int32(dim)
}
