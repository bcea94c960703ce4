import CCUDA
import Foundation
import InferenceCore

/// An argument of a kernel launch, stored as the kernel's parameter type requires.
enum KernelArgument {
    case pointer(CUdeviceptr)
    case int32(Int32)
    case int64(Int64)
    case float(Float)
    /// A TMA descriptor passed by value (a `__grid_constant__` CUtensorMap parameter).
    case tensorMap(TensorMap)

    /// Bytes the value takes and the alignment it needs.
    var layout: (size: Int, alignment: Int) {
        switch self {
        case .pointer, .int64: (8, 8)
        case .int32, .float: (4, 4)
        case .tensorMap: (TensorMap.byteCount, TensorMap.alignment)
        }
    }
}

/// A CUtensorMap: the driver's opaque 128-byte TMA descriptor of a tiled view of a global tensor.
struct TensorMap {
    static let byteCount = 128, alignment = 64
    var words = [UInt64](repeating: 0, count: 16)

    /// A row-major 16-bit matrix of `rows` x `columns` at `address`, read in boxes of `boxRows` x `boxColumns`
    /// (`boxColumns` · 2 = 128 bytes) with the 128-byte swizzle that wgmma reads; rows past the end read as zero.
    init(matrix address: CUdeviceptr, rows: Int, columns: Int, boxRows: Int, boxColumns: Int, dtype: DType,
         libraries: CUDALibraries, label: String) throws {
        precondition(dtype != .f32, "TMA maps here are for 16-bit matrices")
        var dims: [UInt64] = [UInt64(columns), UInt64(rows)], strides: [UInt64] = [UInt64(columns * 2)]
        var box: [UInt32] = [UInt32(boxColumns), UInt32(boxRows)], elementStrides: [UInt32] = [1, 1]
        let type = dtype == .bf16 ? CCUDA_TENSOR_MAP_DATA_TYPE_BFLOAT16 : CCUDA_TENSOR_MAP_DATA_TYPE_FLOAT16
        let result = words.withUnsafeMutableBytes { map in
            libraries.driver.cuTensorMapEncodeTiled!(
                map.baseAddress, Int32(type), 2, UnsafeMutableRawPointer(bitPattern: UInt(address)), &dims, &strides,
                &box, &elementStrides, Int32(CCUDA_TENSOR_MAP_INTERLEAVE_NONE), Int32(CCUDA_TENSOR_MAP_SWIZZLE_128B),
                Int32(CCUDA_TENSOR_MAP_L2_PROMOTION_L2_256B), Int32(CCUDA_TENSOR_MAP_FLOAT_OOB_FILL_NONE))
        }
        try libraries.check(
            result, "cuTensorMapEncodeTiled(\(label))", "\(rows) x \(columns) \(dtype.rawValue), box \(boxRows) x \(boxColumns)")
    }
}

/// The compiled ViT kernels of one device: one module, its functions looked up once.
final class CUDAKernels: @unchecked Sendable {
    // @unchecked: immutable after init; CUfunction handles may be launched from any thread bound to the context.
    let device: CUDADevice
    private let module: CUmodule
    /// The tensor-core module (attention_mma.cu and small_batch.cu), nil when it failed to build (see
    /// `tensorCoreAttentionError`).
    private let attentionModule: CUmodule?
    /// Why the tensor-core attention is unavailable, if it is.
    let tensorCoreAttentionError: String?
    private var functions: [String: CUfunction] = [:]
    /// Whether the CUBIN came from the disk cache, and how long compiling or loading took (seconds).
    let cached: Bool
    let compileSeconds: Double
    /// Whether kernels can be launched as programmatic dependents (sm_90 and later; `CLIPSERVE_PDL=0` turns it off).
    let programmaticLaunch: Bool

    /// Compiles (or loads from cache) the embedded kernel sources for `device`.
    init(device: CUDADevice, dtype: DType) throws {
        self.device = device
        programmaticLaunch = device.computeCapability.major >= 9 && ProcessInfo.processInfo.environment["CLIPSERVE_PDL"] != "0"
        try device.bind()
        let started = ContinuousClock.now
        let compiler = NVRTCCompiler(libraries: device.libraries)
        let suffix = Self.suffix(dtype)
        let define = "CLIPSERVE_\(suffix.uppercased())"
        let (cubin, cached) = try compiler.cubin(
            source: KernelSources.activation + "\n" + KernelSources.vitKernels, name: "vit_kernels",
            architecture: device.architecture, defines: [define])
        var module: CUmodule?
        try cubin.withUnsafeBytes { bytes in
            try device.libraries.check(
                device.libraries.driver.cuModuleLoadData!(&module, bytes.baseAddress), "cuModuleLoadData(vit_kernels)",
                "\(cubin.count) bytes, \(device.architecture)")
        }
        self.module = module!
        self.cached = cached
        // The tensor-core module is an optimisation: if NVRTC, the loader or a function attribute rejects it, the
        // engine falls back to the scalar attention and the cuBLASLt block.
        var attentionModule: CUmodule?
        var attentionError: String?
        var tensorCoreFunctions: [String: CUfunction] = [:]
        if dtype == .f32 {
            attentionError = "not used in fp32"
        } else { do {
            // Hopper builds for sm_90a, the target with wgmma (attention_wgmma.cu is empty for any other); an NVRTC
            // without that target builds for the device's own architecture, without the wgmma attention.
            let program = [
                KernelSources.attentionMma, KernelSources.activation, KernelSources.smallBatch, KernelSources.attentionWgmma,
                KernelSources.gemmWgmma,
            ].joined(separator: "\n")
            var architecture = Self.tensorCoreArchitecture(device)
            let mmaCubin: [UInt8]
            do {
                mmaCubin = try compiler.cubin(source: program, name: "tensor_core", architecture: architecture, defines: [define]).bytes
            } catch where architecture != device.architecture {
                architecture = device.architecture
                mmaCubin = try compiler.cubin(source: program, name: "tensor_core", architecture: architecture, defines: [define]).bytes
            }
            try mmaCubin.withUnsafeBytes { bytes in
                try device.libraries.check(
                    device.libraries.driver.cuModuleLoadData!(&attentionModule, bytes.baseAddress), "cuModuleLoadData(tensor_core)")
            }
            // The small-batch kernels use clusters and programmatic launch: built for sm_90 and later only.
            let smallBatch = device.computeCapability.major >= 9 ? ["ln_linear", "linear_residual"] : []
            let wgmma = architecture == "sm_90a" ? ["attention_wgmma_d64", "gemm_activation"] : []
            for name in (["attention_mma_d64", "attention_mma_d80"] + smallBatch + wgmma).map({ "\($0)_\(suffix)" }) {
                let function = try Self.function(name, in: attentionModule!, device: device)
                try device.libraries.check(
                    device.libraries.driver.cuFuncSetAttribute!(
                        function, Int32(CCUDA_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES), Int32(device.maxSharedMemoryPerBlock)),
                    "cuFuncSetAttribute(\(name), max dynamic shared memory \(device.maxSharedMemoryPerBlock))")
                tensorCoreFunctions[name] = function
            }
        } catch {
            if let loaded = attentionModule { _ = device.libraries.driver.cuModuleUnload!(loaded) }
            attentionModule = nil
            attentionError = "\(error)"
            tensorCoreFunctions = [:]
        } }
        self.attentionModule = attentionModule
        tensorCoreAttentionError = attentionError
        functions = tensorCoreFunctions
        let elapsed = ContinuousClock.now - started
        compileSeconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
        for op in ["im2col", "normalize_bytes", "embed_layernorm", "layernorm", "layernorm_registers", "bias_gelu", "attention_d16", "attention_d32", "attention_d64", "attention_d80",
                   "attention_class_d16", "attention_class_d32", "attention_class_d64", "attention_class_d80"] {
            try lookUp("\(op)_\(suffix)")
        }
        // The LayerNorms of the 16-bit residual stream (vit_kernels.cu builds them for 16-bit types only).
        if dtype != .f32 {
            for op in ["layernorm_from16", "layernorm_registers_from16"] { try lookUp("\(op)_\(suffix)") }
        }
        try lookUp("l2norm_f32")
        try lookUp("spin")
        // Attention keeps a K and a V tile of fp32 in dynamic shared memory.
        for (name, function) in functions where name.hasPrefix("attention_d") {
            try device.libraries.check(
                device.libraries.driver.cuFuncSetAttribute!(
                    function, Int32(CCUDA_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES), Int32(Self.attentionSharedBytes(headWidth: 80))),
                "cuFuncSetAttribute(\(name), max dynamic shared memory)")
        }
    }

    deinit {
        _ = device.libraries.driver.cuModuleUnload!(module)
        if let attentionModule { _ = device.libraries.driver.cuModuleUnload!(attentionModule) }
    }

    /// Shared memory the tensor-core attention needs for `tokens` keys: K and V row-major, 16-bit, rows padded to
    /// headWidth + 8 and the sequence to a multiple of 16.
    static func tensorCoreAttentionSharedBytes(tokens: Int, headWidth: Int) -> Int {
        let padded = (tokens + 15) / 16 * 16
        return 2 * padded * (headWidth + 8) * 2
    }

    /// The tensor-core program's target: sm_90a (wgmma) on compute capability 9.0, else the device's own.
    static func tensorCoreArchitecture(_ device: CUDADevice) -> String {
        device.architecture == "sm_90" ? "sm_90a" : device.architecture
    }

    /// Warpgroups per CTA of the wgmma attention: two, or one when a head has a single 64-row query tile.
    static func wgmmaAttentionWarpgroups(tokens: Int) -> Int { tokens > 64 ? 2 : 1 }

    /// Shared memory of the wgmma attention (attention_wgmma.cu) for `tokens` keys, head width 64: K and V in blocks
    /// of 64 rows (the last 16 rows when at most 16 keys remain in it), 128 bytes a row; two 64-row query buffers per
    /// warpgroup; 1 KB to align the tiles to the swizzle's 1024 bytes.
    /// With `tailRows`, the scratch of attention_rows_scalar after them: the scores and 8 + 4·64 floats.
    static func wgmmaAttentionSharedBytes(tokens: Int, tailRows: Int = 0) -> Int {
        let last = (tokens - 1) / 64 * 64
        let keyRows = last + (tokens - last <= 16 ? 16 : 64)
        let scratch = tailRows > 0 ? 4 * ((tokens + 3) / 4 * 4 + 8 + 4 * 64) : 0
        return 1024 + 2 * keyRows * 128 + wgmmaAttentionWarpgroups(tokens: tokens) * 2 * 64 * 128 + scratch
    }

    /// The query rows past the last whole 64-row tile that the wgmma attention computes without a tile of their own
    /// (attention_rows_scalar, from shared memory before its tiles): tokens mod 64 when that is 1 to `maxRows` and at
    /// least two whole tiles come before them, else 0. ViT-L-14's 257 tokens: 1 (four tiles instead of five).
    static func wgmmaAttentionTailRows(tokens: Int, maxRows: Int) -> Int {
        let rows = tokens % 64
        return rows >= 1 && rows <= maxRows && tokens / 64 >= 2 ? rows : 0
    }

    /// The most tail rows the wgmma attention computes that way: CLIPSERVE_ATTENTION_TAIL, else 1 (0: always a tile).
    static func wgmmaAttentionMaxTailRows(_ environment: [String: String]) -> Int {
        environment["CLIPSERVE_ATTENTION_TAIL"].flatMap { Int($0) }.map { max(0, min($0, 63)) } ?? 1
    }

    /// Whether the wgmma attention can run a model: it is built for head width 64 only (ViT-H-14's 80 keeps the
    /// mma.sync kernel), and K, V, the query buffers and the scratch for `tailRows` must fit in a CTA's shared memory.
    static func wgmmaAttentionFits(headWidth: Int, tokens: Int, tailRows: Int = 0, sharedMemory: Int) -> Bool {
        headWidth == 64 && wgmmaAttentionSharedBytes(tokens: tokens, tailRows: tailRows) <= sharedMemory
    }

    /// Heads per CTA of the class-token attention (`attention_class_token` in vit_kernels.cu: a warp per head).
    static let classTokenHeadsPerCTA = 4

    /// Shared memory of the class-token attention: each warp keeps `tokens` fp32 scores.
    static func classTokenAttentionSharedBytes(tokens: Int) -> Int { classTokenHeadsPerCTA * tokens * 4 }

    /// The wgmma GEMM with the MLP activation (gemm_wgmma.cu), as the source builds it: persistent, 128 x 256 output
    /// tiles, K in slices of 64 through `stages` shared-memory stages, clusters of `cluster` CTAs along M (W's slice
    /// multicast to both), `threads` a CTA (two consumer warpgroups, the producer warp, three epilogue warps).
    struct GemmActivationKernel {
        let tileRows: Int, tileColumns: Int, slice: Int, stages: Int, cluster: Int, threads: Int
        /// Rows of the boxes TMA loads (X's tile rows; W's tile columns in two halves).
        var boxRows: Int { tileRows }

        /// Shared memory of a CTA: `stages` slices of X (tileRows rows) and W (tileColumns rows), `slice` columns of
        /// 16 bits each; the staging tile (tileRows rows of tileColumns + 8 halves); a full and an empty barrier per
        /// stage and two for the staging tile; 1 KB to align the stages to the swizzle's 1024 bytes (GemmShape in the
        /// source).
        var sharedBytes: Int {
            1024 + stages * (tileRows + tileColumns) * slice * 2 + tileRows * (tileColumns + 8) * 2 + (2 * stages + 2) * 8
        }

        func name(_ dtype: DType) -> String { "gemm_activation_\(CUDAKernels.suffix(dtype))" }

        /// Whether the kernel takes an MLP of these widths: whole output tiles across, whole K slices.
        func fits(width: Int, mlpWidth: Int) -> Bool { width % slice == 0 && mlpWidth % tileColumns == 0 }

        /// Work units (pairs of tiles along M, for clusters of two) of a c_fc with `rows` rows.
        func units(rows: Int, mlpWidth: Int) -> Int {
            ((rows + tileRows - 1) / tileRows + cluster - 1) / cluster * (mlpWidth / tileColumns)
        }
    }

    static let gemmActivation = GemmActivationKernel(tileRows: 128, tileColumns: 256, slice: 64, stages: 3, cluster: 2, threads: 384)

    /// How many clusters of `function`'s launch shape can be resident at once (with clusters of two, a GPC with an
    /// odd number of free SMs leaves one over, so this can be less than SMs / 2).
    func maxActiveClusters(_ name: String, block: Int, sharedBytes: Int, cluster: Int) throws -> Int {
        guard let function = functions[name] else { throw EngineError.device("cuda: kernel \(name) not in the tensor-core module") }
        var attribute = ccuda_launch_attribute()
        attribute.id = Int32(CCUDA_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION)
        attribute.value.clusterDim = .init(x: UInt32(cluster), y: 1, z: 1)
        var clusters: Int32 = 0
        let result = withUnsafeMutablePointer(to: &attribute) { attribute in
            var config = ccuda_launch_config(
                gridDimX: UInt32(device.multiprocessors / cluster * cluster), gridDimY: 1, gridDimZ: 1,
                blockDimX: UInt32(block), blockDimY: 1, blockDimZ: 1, sharedMemBytes: UInt32(sharedBytes), hStream: nil,
                attrs: attribute, numAttrs: 1)
            return device.libraries.driver.cuOccupancyMaxActiveClusters!(&clusters, function, &config)
        }
        try device.libraries.check(
            result, "cuOccupancyMaxActiveClusters(\(name))", "block \(block) shared \(sharedBytes) cluster \(cluster)")
        return Int(clusters)
    }

    /// Whether `hasFunction(name)` can launch.
    func has(_ name: String) -> Bool { functions[name] != nil }

    /// Kernel-name suffix of a storage type.
    static func suffix(_ dtype: DType) -> String {
        switch dtype {
        case .f32: "f32"
        case .f16: "f16"
        case .bf16: "bf16"
        }
    }

    /// Keys per shared-memory tile in the attention kernel (KEY_TILE in the source).
    static let attentionKeyTile = 32

    /// Head widths the attention kernel is instantiated for.
    static let supportedHeadWidths = [16, 32, 64, 80]

    static func attentionSharedBytes(headWidth: Int) -> Int { 2 * attentionKeyTile * headWidth * 4 }

    private func lookUp(_ name: String) throws {
        functions[name] = try Self.function(name, in: module, device: device)
    }

    private static func function(_ name: String, in module: CUmodule, device: CUDADevice) throws -> CUfunction {
        var function: CUfunction?
        try device.libraries.check(
            device.libraries.driver.cuModuleGetFunction!(&function, module, name), "cuModuleGetFunction(\(name))")
        return function!
    }

    /// Enqueues kernel `name` on `stream`. With `dependent` (and `programmaticLaunch`), the kernel may start while the
    /// kernel before it is still running: it must begin with `wait_for_producer()` before touching anything that
    /// kernel writes (small_batch.cu's kernels and the tensor-core attention do). `cluster` launches thread-block
    /// clusters of that shape (sm_90 and later).
    func launch(
        _ name: String, grid: (Int, Int, Int), block: Int, sharedBytes: Int = 0, stream: CUstream?,
        dependent: Bool = false, cluster: (Int, Int, Int)? = nil, _ arguments: [KernelArgument]
    ) throws {
        guard let function = functions[name] else { throw EngineError.device("cuda: kernel \(name) not in vit_kernels") }
        var offsets: [Int] = [], end = 0
        for argument in arguments {
            let (size, alignment) = argument.layout
            let offset = (end + alignment - 1) / alignment * alignment
            offsets.append(offset)
            end = offset + size
        }
        let storage = UnsafeMutableRawPointer.allocate(byteCount: max(end, 8), alignment: TensorMap.alignment)
        defer { storage.deallocate() }
        var pointers: [UnsafeMutableRawPointer?] = []
        for (argument, offset) in zip(arguments, offsets) {
            let slot = storage + offset
            switch argument {
            case let .pointer(value): slot.storeBytes(of: value, as: UInt64.self)
            case let .int32(value): slot.storeBytes(of: value, as: Int32.self)
            case let .int64(value): slot.storeBytes(of: value, as: Int64.self)
            case let .float(value): slot.storeBytes(of: value, as: Float.self)
            case let .tensorMap(map):
                map.words.withUnsafeBytes { slot.copyMemory(from: $0.baseAddress!, byteCount: TensorMap.byteCount) }
            }
            pointers.append(slot)
        }
        let driver = device.libraries.driver
        let result = pointers.withUnsafeMutableBufferPointer { params in
            var attributes: [ccuda_launch_attribute] = []
            if dependent, programmaticLaunch {
                var attribute = ccuda_launch_attribute()
                attribute.id = Int32(CCUDA_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION)
                attribute.value.value = 1
                attributes.append(attribute)
            }
            if let cluster {
                var attribute = ccuda_launch_attribute()
                attribute.id = Int32(CCUDA_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION)
                attribute.value.clusterDim = .init(x: UInt32(cluster.0), y: UInt32(cluster.1), z: UInt32(cluster.2))
                attributes.append(attribute)
            }
            guard !attributes.isEmpty else {
                return driver.cuLaunchKernel!(
                    function, UInt32(grid.0), UInt32(grid.1), UInt32(grid.2), UInt32(block), 1, 1, UInt32(sharedBytes),
                    stream, params.baseAddress, nil)
            }
            return attributes.withUnsafeMutableBufferPointer { attributes in
                var config = ccuda_launch_config(
                    gridDimX: UInt32(grid.0), gridDimY: UInt32(grid.1), gridDimZ: UInt32(grid.2), blockDimX: UInt32(block),
                    blockDimY: 1, blockDimZ: 1, sharedMemBytes: UInt32(sharedBytes), hStream: stream,
                    attrs: attributes.baseAddress, numAttrs: UInt32(attributes.count))
                return driver.cuLaunchKernelEx!(&config, function, params.baseAddress, nil)
            }
        }
        try device.libraries.check(
            result, "cuLaunchKernel(\(name))",
            "grid \(grid) block \(block) shared \(sharedBytes)\(cluster.map { " cluster \($0)" } ?? "")")
    }
}
