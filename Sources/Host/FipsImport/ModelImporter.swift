import Foundation
import FipsArtifactWriter
import FipsHostModel

/// Entry point of `fips import`: picks the reader by extension or content.
///   - `.onnx`: `ONNXImporter` (ViT/DINOv2 graphs recognised by structure)
///   - `.safetensors`: `SafetensorsImporter` (HF ViT/DeiT/DINOv2, timm)
///   - a directory: its `model.safetensors` (with `config.json`), else its
///     only `.safetensors` or `.onnx` file
public enum ModelImporter {
    public static func load(path: String, options: ImportOptions = .init()) throws -> ViTModel {
        let file = try resolve(path)
        let model: ViTModel
        switch try kind(of: file) {
        case .onnx: model = try ONNXImporter.load(path: file, options: options)
        case .safetensors: model = try SafetensorsImporter.load(path: file, options: options)
        }
        if let problem = model.validate() { throw ImportError(path: file, "imported model is inconsistent: \(problem)") }
        return model
    }

    /// The model a command's `--model` names: a `.fips` artifact read back into
    /// a host model (`ArtifactReaderHost`, integer weights dequantised), or
    /// anything `load(path:)` imports, with default import options.
    public static func loadArtifactOrImport(path: String) throws -> ViTModel {
        path.hasSuffix(".fips") ? try ArtifactReaderHost.load(path: path) : try load(path: path)
    }

    enum Kind { case onnx, safetensors }

    /// The model file a path names (a directory is searched).
    static func resolve(_ path: String) throws -> String {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw ImportError(path: path, "no such file or directory")
        }
        if !isDir.boolValue { return path }
        let dir = URL(fileURLWithPath: path)
        let preferred = dir.appendingPathComponent("model.safetensors").path
        if FileManager.default.fileExists(atPath: preferred) { return preferred }
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted()
        let candidates = names.filter { $0.hasSuffix(".safetensors") || $0.hasSuffix(".onnx") }
        if candidates.count == 1 { return dir.appendingPathComponent(candidates[0]).path }
        if candidates.isEmpty {
            if names.contains(where: { $0.hasSuffix(".bin") || $0.hasSuffix(".pth") || $0.hasSuffix(".pt") }) {
                throw ImportError(path: path, "holds only PyTorch pickle checkpoints (.bin/.pt/.pth); convert them to model.safetensors")
            }
            throw ImportError(path: path, "directory holds no model.safetensors or .onnx file")
        }
        throw ImportError(path: path, "directory holds several models (\(candidates.joined(separator: ", "))); name one")
    }

    static func kind(of file: String) throws -> Kind {
        let ext = URL(fileURLWithPath: file).pathExtension.lowercased()
        if ext == "onnx" { return .onnx }
        if ext == "safetensors" { return .safetensors }
        if ["bin", "pt", "pth", "ckpt"].contains(ext) {
            throw ImportError(path: file, "PyTorch pickle checkpoints are not supported; save the weights as .safetensors")
        }
        // Sniff: safetensors starts with a small LE length followed by '{'.
        guard let h = FileHandle(forReadingAtPath: file) else { throw ImportError(path: file, "cannot open file") }
        defer { try? h.close() }
        let head = (try? h.read(upToCount: 9)) ?? Data()
        if head.count == 9 && head[head.startIndex + 8] == UInt8(ascii: "{") {
            let n = head.prefix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
            if n < 100_000_000 { return .safetensors }
        }
        if head.isEmpty { throw ImportError(path: file, "file is empty (0 bytes)") }
        // ONNX ModelProto starts with field 1 (ir_version, varint): byte 0x08.
        if head.first == 0x08 { return .onnx }
        throw ImportError(path: file, "unknown model format (expected .onnx or .safetensors)")
    }
}
