import ArgumentParser
import CLIPModel
import CPUBackend
import CUDABackend
import Foundation
import InferenceCore

/// Which backend runs the model.
enum BackendChoice: String, CaseIterable, ExpressibleByArgument, Sendable {
    /// CUDA when a usable GPU and its libraries are found, else the CPU.
    case auto
    /// OpenBLAS on this machine's cores, fp32.
    case cpu
    /// NVIDIA GPUs through the CUDA driver API.
    case cuda
}

extension Precision: ExpressibleByArgument {}

/// GPUs a CUDA engine may use.
enum DeviceSelection: Equatable, Sendable, ExpressibleByArgument {
    /// Every visible GPU.
    case all
    /// These ordinals.
    case list([Int])

    init?(argument: String) {
        if argument == "all" {
            self = .all
            return
        }
        let ordinals = argument.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !ordinals.isEmpty, ordinals.allSatisfy({ ($0 ?? -1) >= 0 }) else { return nil }
        self = .list(ordinals.compactMap { $0 })
    }

    /// The ordinals this selection names when the driver sees `available` GPUs; throws
    /// `EngineError.unavailable` naming an ordinal that does not exist.
    func ordinals(available: Int) throws -> [Int] {
        switch self {
        case .all: return Array(0..<available)
        case let .list(list):
            if let bad = list.first(where: { $0 >= available }) {
                throw EngineError.unavailable("cuda: GPU \(bad) requested, the driver sees \(available) (0...\(available - 1))")
            }
            return list
        }
    }
}

/// The options every command that runs a model shares: which model, on which backend, how.
struct ModelOptions: ParsableArguments {
    /// Default `--model` (`CLIPSERVE_MODEL` reaches `--model` through `ConfigurableCommand`).
    static let defaultModel = "random:ViT-B-32"

    @Option(
        help: ArgumentHelp(
            "Model directory (open_clip or Hugging Face CLIP layout) or random:NAME (env CLIPSERVE_MODEL).",
            valueName: "model"))
    var model: String = ModelOptions.defaultModel

    @Option(help: "Backend: auto (CUDA when usable, else CPU), cpu or cuda.")
    var backend: BackendChoice = .auto

    @Option(help: "Compute precision: fp32, fp16 or bf16 (default: fp16 on CUDA, fp32 on CPU; the CPU runs fp32 only).")
    var precision: Precision?

    @Option(help: "CPU worker threads per forward pass (default: the processors this process may use).")
    var threads: Int?

    @Option(
        name: .customLong("cuda-lib-path"),
        help: ArgumentHelp(
            "Directory to search for libcuda, libcublasLt and libnvrtc; repeatable (env CLIPSERVE_CUDA_LIB_PATH, colon-separated).",
            valueName: "dir"))
    var cudaLibPathOptions: [String] = []

    @Option(help: ArgumentHelp("GPUs to use: all, or ordinals like 0,1.", valueName: "all|0,1"))
    var devices: DeviceSelection = .all

    /// `--cuda-lib-path` directories, in order; `ConfigurableCommand` appends those of `CLIPSERVE_CUDA_LIB_PATH`
    /// (and of a config file) after the command line's.
    var cudaLibraryPaths: [String] { cudaLibPathOptions }

    func validate() throws {
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1, got \(threads)") }
        if backend == .cpu, let precision, precision != .fp32 {
            throw ValidationError(
                "the cpu backend computes in fp32 only; drop --precision \(precision.rawValue) or use --backend cuda")
        }
    }
}

/// Builds the engine `ModelOptions` ask for; shared by every command.
enum EngineFactory {
    /// An engine for `model` on the chosen backend; `auto` takes CUDA when it is usable, else the CPU.
    static func make(options: ModelOptions, model: LoadedModel) throws -> any EmbeddingEngine {
        switch options.backend {
        case .cpu:
            return try makeCPU(options: options, model: model)
        case .cuda:
            return try makeCUDA(options: options, model: model)
        case .auto:
            do {
                return try makeCUDA(options: options, model: model)
            } catch let EngineError.unavailable(reason) {
                return try makeCPUInsteadOfCUDA(options: options, model: model, reason: reason)
            }
        }
    }

    /// One engine per selected device: every GPU of `--devices` on CUDA (each with its own copy of the weights),
    /// the one CPU engine otherwise; `auto` falls back to the CPU as `make` does.
    static func makeAll(options: ModelOptions, model: LoadedModel) throws -> [any EmbeddingEngine] {
        switch options.backend {
        case .cpu:
            return [try makeCPU(options: options, model: model)]
        case .cuda:
            return try makeCUDAEngines(options: options, model: model)
        case .auto:
            do {
                return try makeCUDAEngines(options: options, model: model)
            } catch let EngineError.unavailable(reason) {
                return [try makeCPUInsteadOfCUDA(options: options, model: model, reason: reason)]
            }
        }
    }

    /// The backend's short name for reports: "cpu" or "cuda".
    static func backendName(of engine: any EmbeddingEngine) -> String {
        engine is CPUEngine ? "cpu" : "cuda"
    }

    /// Worker threads of a CPU engine, nil for other backends.
    static func threads(of engine: any EmbeddingEngine) -> Int? {
        (engine as? CPUEngine)?.threads
    }

    /// `auto`'s fallback once CUDA turned out unusable for `reason`: the CPU, unless a 16-bit precision was asked for.
    private static func makeCPUInsteadOfCUDA(
        options: ModelOptions, model: LoadedModel, reason: String
    ) throws -> any EmbeddingEngine {
        guard options.precision == nil || options.precision == .fp32 else {
            throw EngineError.unavailable(
                "--precision \(options.precision!.rawValue) needs CUDA, which is unavailable (\(reason)); "
                    + "the cpu backend computes in fp32 only")
        }
        return try makeCPU(options: options, model: model)
    }

    private static func makeCPU(options: ModelOptions, model: LoadedModel) throws -> any EmbeddingEngine {
        if let precision = options.precision, precision != .fp32 {
            throw EngineError.unavailable(
                "the cpu backend computes in fp32 only; drop --precision \(precision.rawValue) or use --backend cuda")
        }
        return try CPUEngine(spec: model.spec, weights: model.weights, threads: options.threads)
    }

    // MARK: CUDA (filled in by the CUDA backend)

    /// A CUDA engine for `options.devices` at `options.precision ?? .fp16`, searching `options.cudaLibraryPaths`.
    ///
    /// Must throw `EngineError.unavailable` (never crash) when no driver, GPU or library is usable, so `auto` can
    /// fall back to the CPU.
    ///
    /// A `CUDAEngine` holds one GPU: this returns the engine of the first selected GPU. Serving on several GPUs
    /// takes one engine per ordinal (`makeCUDAEngines`).
    private static func makeCUDA(options: ModelOptions, model: LoadedModel) throws -> any EmbeddingEngine {
        guard let first = try makeCUDAEngines(options: options, model: model, limit: 1).first else {
            throw EngineError.unavailable("cuda: no GPU selected")
        }
        return first
    }

    /// One CUDA engine per selected GPU (at most `limit`), each with its own copy of the weights.
    static func makeCUDAEngines(options: ModelOptions, model: LoadedModel, limit: Int = .max) throws -> [CUDAEngine] {
        let paths = options.cudaLibraryPaths
        CUDALibraries.setSearchPath(paths.isEmpty ? nil : paths.joined(separator: ":"))
        let available = try CUDAEngine.availableDeviceCount()
        guard available > 0 else { throw EngineError.unavailable("cuda: the driver sees no GPU") }
        return try options.devices.ordinals(available: available).prefix(limit).map { ordinal in
            try CUDAEngine(
                spec: model.spec, weights: model.weights, precision: options.precision ?? .fp16, deviceOrdinal: ordinal)
        }
    }
}
