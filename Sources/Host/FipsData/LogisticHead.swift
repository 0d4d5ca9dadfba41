import COpenBLAS
import Foundation
import FipsArtifact
import FipsHostModel

/// Multinomial logistic regression (softmax + cross-entropy, L2 on the
/// weights, not the bias), trained full-batch with L-BFGS: deterministic
/// (one thread, fixed iteration order, no sampling) and converged to a
/// gradient tolerance rather than stopped after a guessed number of epochs.
///
/// Features are standardised (per-dimension mean/std of the training set)
/// while training, because raw DINOv2 features have very different scales
/// per dimension and L-BFGS and one L2 strength behave much better on
/// standardised inputs. The stored head acts on the *raw* feature (what the
/// executor feeds it): the standardisation is folded into the weights,
/// W' = W / σ (per input column), b' = b − W'·μ.
public struct LogisticHead {
    public var classes: Int
    public var dim: Int
    /// [classes, dim], acting on raw features.
    public var weight: [Float]
    /// [classes]
    public var bias: [Float]

    public struct Options {
        /// λ in mean cross-entropy + λ/2 ‖W‖² (W on standardised features).
        /// 1e-2: what 3-fold cross-validation picked for DINOv2-S on Fashion-MNIST
        /// (2,000 images), with CLS and with CLS ‖ patch-mean features.
        public var l2: Double = 1e-2
        public var maxIterations = 1000
        /// Stop when the largest gradient entry falls below this.
        public var gradientTolerance = 1e-5
        public var history = 10
        public var standardize = true
        public init() {}
    }

    public struct Report {
        public var iterations: Int
        public var loss: Double
        public var gradientNorm: Double
        public var converged: Bool
        public var trainAccuracy: Double
        public var l2: Double
        public var seconds: Double
    }

    public init(classes: Int, dim: Int, weight: [Float], bias: [Float]) {
        precondition(weight.count == classes * dim && bias.count == classes)
        self.classes = classes
        self.dim = dim
        self.weight = weight
        self.bias = bias
    }

    // MARK: objective

    /// Mean cross-entropy plus λ/2‖W‖² and its gradient. `params` is W
    /// [classes, dim] row-major followed by b [classes]; `x` is [n, dim].
    public static func objective(_ params: [Double], x: [Double], n: Int, dim d: Int, labels: [Int], classes C: Int,
                                 l2: Double) -> (loss: Double, gradient: [Double]) {
        precondition(params.count == C * d + C && x.count == n * d && labels.count == n)
        var z = [Double](repeating: 0, count: n * C)
        // z = X · Wᵀ
        params.withUnsafeBufferPointer { p in
            x.withUnsafeBufferPointer { xb in
                z.withUnsafeMutableBufferPointer { zb in
                    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(n), Int32(C), Int32(d), 1,
                                xb.baseAddress, Int32(d), p.baseAddress, Int32(d), 0, zb.baseAddress, Int32(C))
                }
            }
        }
        var loss = 0.0
        var gb = [Double](repeating: 0, count: C)
        let invN = 1 / Double(n)
        for i in 0..<n {
            var m = -Double.infinity
            for c in 0..<C { z[i * C + c] += params[C * d + c]; m = max(m, z[i * C + c]) }
            var s = 0.0
            for c in 0..<C { let e = exp(z[i * C + c] - m); z[i * C + c] = e; s += e }
            loss -= log(z[i * C + labels[i]] / s)
            // z becomes G = (softmax − onehot) / n
            for c in 0..<C { z[i * C + c] = (z[i * C + c] / s - (c == labels[i] ? 1 : 0)) * invN; gb[c] += z[i * C + c] }
        }
        loss *= invN
        var grad = [Double](repeating: 0, count: C * d + C)
        for k in 0..<(C * d) { grad[k] = l2 * params[k]; loss += 0.5 * l2 * params[k] * params[k] }
        // gW += Gᵀ · X
        z.withUnsafeBufferPointer { g in
            x.withUnsafeBufferPointer { xb in
                grad.withUnsafeMutableBufferPointer { gr in
                    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(C), Int32(d), Int32(n), 1,
                                g.baseAddress, Int32(C), xb.baseAddress, Int32(d), 1, gr.baseAddress, Int32(d))
                }
            }
        }
        for c in 0..<C { grad[C * d + c] = gb[c] }
        return (loss, grad)
    }

    // MARK: training

    /// Trains on `features` [count, dim] (raw) with `labels` in 0..<classes.
    public static func train(features: [Float], count n: Int, dim d: Int, labels: [Int], classes C: Int,
                             options o: Options = Options()) -> (LogisticHead, Report) {
        precondition(features.count == n * d && labels.count == n && n > 0)
        precondition(labels.allSatisfy { $0 >= 0 && $0 < C }, "labels outside 0..<\(C)")
        openblas_set_num_threads(1)  // determinism: one summation order
        let t0 = Date()
        var mu = [Double](repeating: 0, count: d), sigma = [Double](repeating: 1, count: d)
        if o.standardize {
            for i in 0..<n { for k in 0..<d { mu[k] += Double(features[i * d + k]) } }
            for k in 0..<d { mu[k] /= Double(n) }
            var v = [Double](repeating: 0, count: d)
            for i in 0..<n { for k in 0..<d { let e = Double(features[i * d + k]) - mu[k]; v[k] += e * e } }
            // A constant dimension keeps σ = 1 (its weight then only sees L2).
            for k in 0..<d { let s = (v[k] / Double(n)).squareRoot(); sigma[k] = s > 1e-12 ? s : 1 }
        }
        var x = [Double](repeating: 0, count: n * d)
        for i in 0..<n { for k in 0..<d { x[i * d + k] = (Double(features[i * d + k]) - mu[k]) / sigma[k] } }
        let f = { (p: [Double]) in objective(p, x: x, n: n, dim: d, labels: labels, classes: C, l2: o.l2) }
        let r = LBFGS.minimize(f, start: [Double](repeating: 0, count: C * d + C), maxIterations: o.maxIterations,
                               gradientTolerance: o.gradientTolerance, history: o.history)
        // Fold the standardisation into the stored weights.
        var w = [Float](repeating: 0, count: C * d), b = [Float](repeating: 0, count: C)
        for c in 0..<C {
            var bc = r.x[C * d + c]
            for k in 0..<d {
                let wk = r.x[c * d + k] / sigma[k]
                w[c * d + k] = Float(wk)
                bc -= wk * mu[k]
            }
            b[c] = Float(bc)
        }
        let head = LogisticHead(classes: C, dim: d, weight: w, bias: b)
        let acc = Metrics.topK(head.logits(features, count: n), classes: C, labels: labels, k: 1)
        return (head, Report(iterations: r.iterations, loss: r.value, gradientNorm: r.gradientNorm, converged: r.converged,
                             trainAccuracy: acc, l2: o.l2, seconds: Date().timeIntervalSince(t0)))
    }

    /// Picks λ from `grid` by k-fold cross-validation accuracy on the training
    /// set (folds by index modulo k, deterministic); ties go to the larger λ.
    public static func crossValidateL2(features: [Float], count n: Int, dim d: Int, labels: [Int], classes C: Int,
                                       grid: [Double] = [1e-4, 1e-3, 1e-2, 1e-1], folds: Int = 3,
                                       options: Options = Options()) -> (best: Double, accuracies: [Double]) {
        var accs = [Double]()
        for l2 in grid {
            var correct = 0.0
            for fold in 0..<folds {
                var trX = [Float](), trY = [Int](), teX = [Float](), teY = [Int]()
                for i in 0..<n {
                    let row = features[(i * d)..<((i + 1) * d)]
                    if i % folds == fold { teX += row; teY.append(labels[i]) } else { trX += row; trY.append(labels[i]) }
                }
                var o = options
                o.l2 = l2
                let (h, _) = train(features: trX, count: trY.count, dim: d, labels: trY, classes: C, options: o)
                correct += Metrics.topK(h.logits(teX, count: teY.count), classes: C, labels: teY, k: 1) * Double(teY.count)
            }
            accs.append(correct / Double(n))
        }
        var best = 0
        for i in 1..<grid.count where accs[i] >= accs[best] { best = i }
        return (grid[best], accs)
    }

    /// Raw features [count, dim] → logits [count, classes].
    public func logits(_ features: [Float], count n: Int) -> [Float] {
        precondition(features.count == n * dim)
        var out = [Float](repeating: 0, count: n * classes)
        for i in 0..<n {
            for c in 0..<classes {
                var s = Double(bias[c])
                for k in 0..<dim { s += Double(weight[c * dim + k]) * Double(features[i * dim + k]) }
                out[i * classes + c] = Float(s)
            }
        }
        return out
    }

    /// Stores the head in `model` (replacing any head): `head.weight`
    /// [classes, dim], `head.bias`, config.numClasses, pooling and labels.
    public func install(into model: inout ViTModel, labels: [String], pooling: ViTConfig.HeadPooling = .cls) {
        precondition(labels.count == classes, "\(labels.count) labels for \(classes) classes")
        precondition(dim == (pooling == .cls ? model.config.dim : 2 * model.config.dim), "head width does not match the pooling")
        model.config.numClasses = classes
        model.config.headPooling = pooling
        model.tensors[TensorNames.headWeight] = HostTensor(shape: [classes, dim], data: weight)
        model.tensors[TensorNames.headBias] = HostTensor(shape: [classes], data: bias)
        model.labels = labels
    }
}

/// Limited-memory BFGS (two-loop recursion) with a backtracking Armijo line
/// search. Small and deterministic; enough for a convex problem of a few
/// thousand parameters.
public enum LBFGS {
    public struct Result {
        public var x: [Double]
        public var value: Double
        public var gradientNorm: Double
        public var iterations: Int
        public var converged: Bool
    }

    public static func minimize(_ f: ([Double]) -> (loss: Double, gradient: [Double]), start: [Double],
                                maxIterations: Int, gradientTolerance: Double, history m: Int = 10) -> Result {
        var x = start
        var (fx, g) = f(x)
        var S = [[Double]](), Y = [[Double]](), rho = [Double]()
        func dot(_ a: [Double], _ b: [Double]) -> Double { var s = 0.0; for i in 0..<a.count { s += a[i] * b[i] }; return s }
        func infNorm(_ a: [Double]) -> Double { a.reduce(0) { max($0, abs($1)) } }
        var it = 0
        while it < maxIterations && infNorm(g) > gradientTolerance {
            it += 1
            // Two-loop recursion: d = −H·g.
            var q = g
            var alpha = [Double](repeating: 0, count: S.count)
            for i in stride(from: S.count - 1, through: 0, by: -1) {
                alpha[i] = rho[i] * dot(S[i], q)
                for k in 0..<q.count { q[k] -= alpha[i] * Y[i][k] }
            }
            let gamma = S.isEmpty ? 1 / max(1e-12, dot(g, g).squareRoot()) : dot(S.last!, Y.last!) / dot(Y.last!, Y.last!)
            for k in 0..<q.count { q[k] *= gamma }
            for i in 0..<S.count {
                let beta = rho[i] * dot(Y[i], q)
                for k in 0..<q.count { q[k] += S[i][k] * (alpha[i] - beta) }
            }
            var dir = q.map { -$0 }
            var slope = dot(g, dir)
            if slope >= 0 {  // not a descent direction (numerical trouble): restart on steepest descent
                S.removeAll(); Y.removeAll(); rho.removeAll()
                dir = g.map { -$0 / max(1e-12, dot(g, g).squareRoot()) }
                slope = dot(g, dir)
            }
            var step = 1.0
            var xn = x, fn = fx, gn = g
            var accepted = false
            for _ in 0..<40 {
                for k in 0..<x.count { xn[k] = x[k] + step * dir[k] }
                (fn, gn) = f(xn)
                if fn <= fx + 1e-4 * step * slope { accepted = true; break }
                step *= 0.5
            }
            if !accepted { break }
            var s = [Double](repeating: 0, count: x.count), y = s
            for k in 0..<x.count { s[k] = xn[k] - x[k]; y[k] = gn[k] - g[k] }
            let sy = dot(s, y)
            let improvement = fx - fn
            x = xn; g = gn
            let prev = fx
            fx = fn
            if sy > 1e-12 {
                S.append(s); Y.append(y); rho.append(1 / sy)
                if S.count > m { S.removeFirst(); Y.removeFirst(); rho.removeFirst() }
            }
            if improvement <= 1e-13 * max(1, abs(prev)) { break }
        }
        let gnorm = infNorm(g)
        return Result(x: x, value: fx, gradientNorm: gnorm, iterations: it, converged: gnorm <= gradientTolerance)
    }
}

/// Classification figures.
public enum Metrics {
    /// Fraction of rows whose label is among the k largest logits (ties: lower index first).
    public static func topK(_ logits: [Float], classes C: Int, labels: [Int], k: Int) -> Double {
        let n = labels.count
        precondition(logits.count == n * C)
        if n == 0 { return 0 }
        var hit = 0
        for i in 0..<n {
            let y = logits[i * C + labels[i]]
            var above = 0
            for c in 0..<C where c != labels[i] {
                let v = logits[i * C + c]
                if v > y || (v == y && c < labels[i]) { above += 1 }
            }
            if above < k { hit += 1 }
        }
        return Double(hit) / Double(n)
    }
}
