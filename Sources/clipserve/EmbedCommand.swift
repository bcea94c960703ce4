import ArgumentParser
import CLIPModel
import Dispatch
import Foundation
import ImageProcessing
import InferenceCore

/// `clipserve embed`: embeddings of image files, in input order, as JSONL or .npy.
struct EmbedCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "embed",
        abstract: "Print the embeddings of image files (JSONL on stdout, or a .npy array).",
        discussion: """
            A directory stands for every .jpg, .jpeg, .png and .webp file inside it (recursively, sorted by path).
            A file that cannot be read or decoded is named on stderr with the reason; the others are still embedded, \
            and the exit status is 1.
            """
    )

    enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
        case jsonl, npy
    }

    @OptionGroup var model: ModelOptions

    @Option(name: .customLong("batch-size"), help: "Images per forward pass.")
    var batchSize = 8

    @Flag(name: .customLong("no-normalize"), help: "Print open_clip's raw encode_image vector instead of the L2-normalised one.")
    var noNormalize = false

    @Option(help: "Output format: jsonl (one {\"file\", \"embedding\"} object per line) or npy (float32 [N, D], rows in input order of the files that succeeded).")
    var output: OutputFormat = .jsonl

    @Option(name: [.customShort("o"), .customLong("out")], help: "Write to this file instead of stdout.")
    var outputPath: String?

    @Argument(help: "Image files or directories.")
    var inputs: [String]

    func validate() throws {
        guard batchSize >= 1 else { throw ValidationError("--batch-size must be at least 1") }
    }

    func run() throws {
        let files = try ImageFileList.expand(inputs)
        guard !files.isEmpty else { throw ValidationError("no image files found in \(inputs.joined(separator: ", "))") }
        let loaded = try CLIPModelLoader.load(model.model)
        let engine = try EngineFactory.make(options: model, model: loaded)
        let context = try engine.makeContext(ExecutionContextConfiguration(maxBatchSize: batchSize))
        let preprocessor = ImagePreprocessor(config: loaded.preprocess)
        let spec = loaded.spec
        let sink = try OutputSink(path: outputPath)
        var failures = 0
        var rows: [Float] = []
        var rowCount = 0

        for start in stride(from: 0, to: files.count, by: batchSize) {
            let chunk = Array(files[start..<min(start + batchSize, files.count)])
            let prepared = Self.preprocess(chunk, with: preprocessor, pixelsPerImage: spec.pixelsPerImage)
            var ok: [(file: String, slot: Int)] = []
            for (i, result) in prepared.results.enumerated() {
                switch result {
                case .success: ok.append((chunk[i], i))
                case let .failure(error):
                    failures += 1
                    FileHandle.standardError.write(Data("clipserve: \(chunk[i]): \(error)\n".utf8))
                }
            }
            guard !ok.isEmpty else { continue }
            var pixels = [Float](repeating: 0, count: ok.count * spec.pixelsPerImage)
            for (row, item) in ok.enumerated() {
                let src = item.slot * spec.pixelsPerImage
                pixels.replaceSubrange(row * spec.pixelsPerImage..<(row + 1) * spec.pixelsPerImage,
                                       with: prepared.pixels[src..<src + spec.pixelsPerImage])
            }
            let embeddings = try context.embed(pixels, count: ok.count, normalize: !noNormalize, embedDim: spec.embedDim)
            switch output {
            case .jsonl:
                for (row, item) in ok.enumerated() {
                    let vector = embeddings[row * spec.embedDim..<(row + 1) * spec.embedDim]
                    try sink.write(Self.jsonLine(file: item.file, vector: vector))
                }
            case .npy:
                rows.append(contentsOf: embeddings)
                rowCount += ok.count
            }
        }
        if output == .npy {
            try sink.write(NPYWriter.float32(rows, shape: [rowCount, spec.embedDim]))
        }
        try sink.close()
        if failures > 0 { throw ExitCode(1) }
    }

    /// Decodes and preprocesses a chunk on all cores; slot i holds file i's pixels when it succeeded.
    static func preprocess(_ files: [String], with preprocessor: ImagePreprocessor, pixelsPerImage: Int)
        -> (pixels: [Float], results: [Result<Void, any Error>])
    {
        let results = ResultSlots(count: files.count)
        var pixels = [Float](repeating: 0, count: files.count * pixelsPerImage)
        pixels.withUnsafeMutableBufferPointer { all in
            let base = UnsafeMutableBufferPointerBox(all)
            DispatchQueue.concurrentPerform(iterations: files.count) { i in
                do {
                    let bytes = try ImageFileList.read(files[i])
                    let slot = UnsafeMutableBufferPointer(rebasing: base.buffer[i * pixelsPerImage..<(i + 1) * pixelsPerImage])
                    try bytes.withUnsafeBytes { try preprocessor.process($0, into: slot) }
                    results.set(i, .success(()))
                } catch {
                    results.set(i, .failure(error))
                }
            }
        }
        return (pixels, results.values)
    }

    static func jsonLine(file: String, vector: ArraySlice<Float>) -> Data {
        var line = "{\"file\":" + JSONText.string(file) + ",\"embedding\":["
        line += vector.map { JSONText.float($0) }.joined(separator: ",")
        line += "]}\n"
        return Data(line.utf8)
    }
}
