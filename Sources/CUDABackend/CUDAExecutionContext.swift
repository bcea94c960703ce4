import CCUDA
import CPixelEncoding
import Foundation
import InferenceCore

/// Per-inference state on one GPU: its own stream (priority from the configuration), activation workspace for its
/// largest batch, cuBLASLt handle, workspace and matmul plans, pinned host staging buffers and one CUDA graph per
/// batch-size profile (1, 2, 4, …, max), captured on first use and replayed after.
///
/// The residual stream is fp32 in fp32 and bf16 engines and on the small-batch path: 12–32 blocks each add a small
/// update to it, and rounding that sum to 16 bits after every block is where most of the drift would come from.
/// fp16 engines keep it in fp16 on the large-batch path, as open_clip's own fp16 model does: there out_proj is bound
/// by memory, and the fp16 stream halves the bytes its epilogue, c_proj's and the LayerNorms move
/// (`CLIPSERVE_RESIDUAL=f32` keeps fp32). The adds cost nothing extra: out_proj and c_proj write straight into it
/// with cuBLASLt's BIAS epilogue and beta = 1 (C = D = x, exact in fp32), so "LayerNorm fused with the residual add"
/// becomes "residual add fused into the GEMM, LayerNorm reads the residual and writes the 16-bit GEMM input".
///
/// Not `Sendable`: one worker thread owns a context for its whole life; the engine's weights are shared read-only.
public final class CUDAExecutionContext: ExecutionContext {
    public let maxBatchSize: Int
    /// Batch sizes a graph is captured for; a batch runs on the smallest profile that holds it, the rest padded.
    public let profiles: [Int]
    let engine: CUDAEngine
    let device: CUDADevice
    let libraries: CUDALibraries
    let stream: CUstream
    let handle: cublasLtHandle_t
    let workspace: CUDABuffer
    let workspaceBytes = 32 << 20
    /// Activations: pixels [B,3,S,S] f32, patches [B·G², K] T, patch GEMM output [B·G², W] f32, residual x
    /// [B·T, W] f32 or f16 (`halfResidual`), LayerNorm output h [B·T, W] T, qkv [B·T, 3W] T, attention [B·T, W] T,
    /// MLP [B·T, M] T, pooled class tokens [B, W] T, embeddings [B, E] f32.
    let pixels, patches, patchOut, x, h, qkv, attention, mlp, pooled, embedding: CUDABuffer
    /// A batch uploaded as RGB bytes [B,3,S,S], and the normalisation table (768 floats) that turns it into `pixels`.
    let pixelBytes, normalizationTable: CUDABuffer
    /// The table `normalizationTable` holds, once uploaded.
    private var uploadedNormalization: PixelNormalization?
    /// Pinned upload buffer: a batch in `inputEncoding`, or as bytes (which take at most as much room).
    let pinnedInput: UnsafeMutableRawPointer
    /// How pixels travel to the device: in the engine's storage type, so a 16-bit engine uploads half the bytes
    /// (im2col rounded them to that type anyway, so results are bit-identical).
    let inputEncoding: PixelEncoding
    let pinnedOutput: UnsafeMutableRawPointer
    /// Recorded after a served batch's download; its waiter sleeps instead of spinning (the driver spins on stream
    /// syncs while there are more cores than contexts: a worker per context would burn a core for the whole batch,
    /// cores the batcher's clients, decoding and the next batch's fill need).
    let batchDone: CUevent
    /// Recorded after this context's forward pass when it takes turns with the GPU's other contexts (normal priority,
    /// unless CLIPSERVE_LAUNCH_TURNS=0); nil for a high-priority context, which overtakes instead of queueing.
    let turnDone: CUevent?
    private var plans: [MatmulShape: MatmulPlan] = [:]
    private var graphs: [Int: CUgraphExec] = [:]
    /// Events recorded by `mark` while `profileStages` runs.
    private var stageEvents: [(String, CUevent)]?
    /// CUDA graphs are used unless CLIPSERVE_CUDA_GRAPHS=0.
    let useGraphs: Bool
    /// Whether the large-batch path keeps the residual stream in fp16: fp16 engines, unless CLIPSERVE_RESIDUAL=f32.
    let halfResidual: Bool
    /// Whether large batches may take the wgmma attention (unless CLIPSERVE_WGMMA_ATTENTION=0).
    let wgmmaAttentionAllowed: Bool
    /// Whether the wgmma path may run the QKV GEMM without its bias (unless CLIPSERVE_QKV_BIAS_FOLD=0; see forward).
    let qkvBiasFoldAllowed: Bool
    /// The most query rows past the last whole tile the wgmma attention computes without a tile (CUDAKernels).
    let wgmmaAttentionMaxTailRows: Int
    /// The kernel for the last block's class-token attention (the large-batch path then runs that block for the class
    /// tokens alone); nil when the head width has none or CLIPSERVE_CLASS_TOKEN_BLOCK=0 (the full block).
    let classTokenKernel: String?
    /// Heuristic candidates timed per matmul shape: 16, or CLIPSERVE_GEMM_TUNING=N (0: the heuristic's first only).
    let matmulCandidates: Int
    /// Whether and up to how many rows the small-batch block kernels run; nil when this engine or GPU cannot use them.
    let smallBatch: SmallBatchPath?

    init(engine: CUDAEngine, configuration: ExecutionContextConfiguration) throws {
        guard configuration.maxBatchSize >= 1 else {
            throw EngineError.unavailable("cuda: maxBatchSize must be at least 1, got \(configuration.maxBatchSize)")
        }
        self.engine = engine
        device = engine.device
        libraries = device.libraries
        maxBatchSize = configuration.maxBatchSize
        var sizes: [Int] = []
        var size = 1
        while size < maxBatchSize { sizes.append(size); size *= 2 }
        sizes.append(maxBatchSize)
        profiles = sizes
        useGraphs = ProcessInfo.processInfo.environment["CLIPSERVE_CUDA_GRAPHS"] != "0"
        halfResidual = engine.dtype == .f16 && ProcessInfo.processInfo.environment["CLIPSERVE_RESIDUAL"] != "f32"
        wgmmaAttentionAllowed = ProcessInfo.processInfo.environment["CLIPSERVE_WGMMA_ATTENTION"] != "0"
        qkvBiasFoldAllowed = ProcessInfo.processInfo.environment["CLIPSERVE_QKV_BIAS_FOLD"] != "0"
        wgmmaAttentionMaxTailRows = CUDAKernels.wgmmaAttentionMaxTailRows(ProcessInfo.processInfo.environment)
        let classKernel = "attention_class_d\(engine.spec.headWidth)_\(CUDAKernels.suffix(engine.dtype))"
        // Its scores must fit the 48 KB of shared memory a launch gets unasked (3072 tokens).
        classTokenKernel = ProcessInfo.processInfo.environment["CLIPSERVE_CLASS_TOKEN_BLOCK"] != "0"
            && engine.kernels.has(classKernel)
            && CUDAKernels.classTokenAttentionSharedBytes(tokens: engine.spec.tokens) <= 48 << 10 ? classKernel : nil
        let tuning = ProcessInfo.processInfo.environment["CLIPSERVE_GEMM_TUNING"]
        matmulCandidates = tuning == "0" ? 1 : tuning.flatMap { Int($0) }.map { min(max($0, 1), 128) } ?? 16
        try device.bind()
        let d = libraries.driver
        var least: Int32 = 0, greatest: Int32 = 0
        try libraries.check(d.cuCtxGetStreamPriorityRange!(&least, &greatest), "cuCtxGetStreamPriorityRange")
        let priority = configuration.priority == .high ? greatest : least
        var stream: CUstream?
        try libraries.check(
            d.cuStreamCreateWithPriority!(&stream, UInt32(CCUDA_STREAM_NON_BLOCKING), priority),
            "cuStreamCreateWithPriority(\(priority))")
        self.stream = stream!
        var handle: cublasLtHandle_t?
        try libraries.checkBLAS(libraries.cublasLt.cublasLtCreate!(&handle), "cublasLtCreate", "cuda:\(device.ordinal)")
        self.handle = handle!
        workspace = try device.allocate(workspaceBytes, "cuBLASLt workspace")

        let spec = engine.spec, b = maxBatchSize, t = engine.dtype.byteSize
        let rows = b * spec.tokens, w = spec.width, g2 = spec.gridSize * spec.gridSize
        inputEncoding =
            switch engine.dtype {
            case .f32: .float32
            case .f16: .float16
            case .bf16: .bfloat16
            }
        pixels = try device.allocate(b * spec.pixelsPerImage * inputEncoding.byteSize, "pixels")
        patches = try device.allocate(b * g2 * engine.patchK * t, "patches")
        patchOut = try device.allocate(b * g2 * w * 4, "patch embeddings")
        // fp32 room: the small-batch path keeps the stream in fp32 even when the large-batch path holds fp16 here.
        x = try device.allocate(rows * w * 4, "residual stream")
        h = try device.allocate(rows * w * t, "layernorm output")
        qkv = try device.allocate(rows * 3 * w * t, "qkv")
        attention = try device.allocate(rows * w * t, "attention output")
        mlp = try device.allocate(rows * spec.mlpWidth * t, "mlp hidden")
        pooled = try device.allocate(b * w * t, "pooled class tokens")
        embedding = try device.allocate(b * spec.embedDim * 4, "embeddings")
        pixelBytes = try device.allocate(b * spec.pixelsPerImage, "pixel bytes")
        normalizationTable = try device.allocate(3 * 256 * 4, "normalisation table")
        // Padded images read whatever the pixel buffer holds; start it at zero so they are finite.
        try libraries.check(d.cuMemsetD8Async!(pixels.pointer, 0, pixels.bytes, stream), "cuMemsetD8Async(pixels)")
        var input: UnsafeMutableRawPointer?, output: UnsafeMutableRawPointer?
        try libraries.check(d.cuMemAllocHost!(&input, pixels.bytes), "cuMemAllocHost(\(pixels.bytes) bytes)")
        try libraries.check(d.cuMemAllocHost!(&output, embedding.bytes), "cuMemAllocHost(\(embedding.bytes) bytes)")
        pinnedInput = input!
        pinnedOutput = output!
        var done: CUevent?
        try libraries.check(
            d.cuEventCreate!(&done, UInt32(CCUDA_EVENT_BLOCKING_SYNC | CCUDA_EVENT_DISABLE_TIMING)), "cuEventCreate(batch done)")
        batchDone = done!
        if configuration.priority == .normal, ProcessInfo.processInfo.environment["CLIPSERVE_LAUNCH_TURNS"] != "0" {
            var turn: CUevent?
            try libraries.check(d.cuEventCreate!(&turn, UInt32(CCUDA_EVENT_DISABLE_TIMING)), "cuEventCreate(turn)")
            turnDone = turn
        } else {
            turnDone = nil
        }
        smallBatch = SmallBatchPath(engine: engine, contextRows: rows)
        try libraries.check(d.cuStreamSynchronize!(stream), "cuStreamSynchronize")
    }

    deinit {
        let d = libraries.driver
        _ = d.cuCtxSetCurrent!(device.context)
        _ = d.cuStreamSynchronize!(stream)
        for exec in graphs.values { _ = d.cuGraphExecDestroy!(exec) }
        plans.removeAll()
        _ = libraries.cublasLt.cublasLtDestroy!(handle)
        _ = d.cuStreamDestroy!(stream)
        _ = d.cuMemFreeHost!(pinnedInput)
        _ = d.cuMemFreeHost!(pinnedOutput)
        _ = d.cuEventDestroy!(batchDone)
        if let turnDone {
            engine.launchTurn.forget(turnDone)
            _ = d.cuEventDestroy!(turnDone)
        }
    }

    private func validate(pixels: UnsafeBufferPointer<Float>, count: Int) throws {
        guard count <= maxBatchSize else { throw EngineError.batchTooLarge(requested: count, maximum: maxBatchSize) }
        guard count >= 0 else { throw EngineError.bufferSize(what: "pixel", expected: 0, got: count) }
        let expected = count * engine.spec.pixelsPerImage
        guard pixels.count == expected else { throw EngineError.bufferSize(what: "pixel", expected: expected, got: pixels.count) }
    }

    public func embed(
        pixels input: UnsafeBufferPointer<Float>, count: Int, normalize: Bool, into output: UnsafeMutableBufferPointer<Float>
    ) throws {
        try validate(pixels: input, count: count)
        guard count > 0 else { return }
        stage(input, count: count)
        try embedStaged(count: count, normalize: normalize, into: output)
    }

    /// The pinned upload buffer itself, in `inputEncoding`: the runtime's worker writes a batch here, saving a host
    /// copy per pixel (and, for 16-bit engines, half the bytes over PCIe).
    public func stagingBuffer(count: Int) -> StagingBuffer? {
        guard count >= 1, count <= maxBatchSize else { return nil }
        return StagingBuffer(
            base: pinnedInput, encoding: inputEncoding, capacity: maxBatchSize * engine.spec.pixelsPerImage)
    }

    /// Writes `count` images of fp32 pixels into the pinned upload buffer in `inputEncoding`.
    private func stage(_ input: UnsafeBufferPointer<Float>, count: Int) {
        let values = count * engine.spec.pixelsPerImage
        switch inputEncoding {
        case .float32: pinnedInput.copyMemory(from: input.baseAddress!, byteCount: values * 4)
        case .float16: cpe_f32_to_f16(input.baseAddress!, pinnedInput.assumingMemoryBound(to: UInt16.self), values)
        case .bfloat16: cpe_f32_to_bf16(input.baseAddress!, pinnedInput.assumingMemoryBound(to: UInt16.self), values)
        case .uint8: preconditionFailure("inputEncoding is the engine's floating-point storage type")
        }
    }

    public func embedStaged(count: Int, normalize: Bool, into output: UnsafeMutableBufferPointer<Float>) throws {
        try checkBatch(count: count, output: output)
        try device.bind()
        let d = libraries.driver
        let bytes = count * engine.spec.pixelsPerImage * inputEncoding.byteSize
        try libraries.check(d.cuMemcpyHtoDAsync!(pixels.pointer, pinnedInput, bytes, stream), "cuMemcpyHtoDAsync(pixels)", "\(bytes) bytes")
        try forwardAndDownload(count: count, normalize: normalize, into: output)
    }

    /// The pinned upload buffer, holding a batch as RGB bytes: a quarter of fp32's bytes to write and half of fp16's
    /// to upload; `embedStagedBytes` normalises them on the device.
    public func byteStagingBuffer(count: Int) -> StagingBuffer? {
        guard count >= 1, count <= maxBatchSize else { return nil }
        return StagingBuffer(base: pinnedInput, encoding: .uint8, capacity: maxBatchSize * engine.spec.pixelsPerImage)
    }

    /// Uploads the bytes, turns them into `pixels` with `normalization`'s table (one kernel before the graph, so the
    /// graphs serve both inputs) and runs the batch. The table is the host's, so the values are bit-identical to
    /// normalising on the host and uploading those.
    public func embedStagedBytes(
        count: Int, normalization: PixelNormalization, normalize: Bool, into output: UnsafeMutableBufferPointer<Float>
    ) throws {
        try checkBatch(count: count, output: output)
        try device.bind()
        let d = libraries.driver
        if uploadedNormalization != normalization {
            // Once per context in practice (every request uses the model's table); the stream may still read the
            // old one, so it finishes first.
            try libraries.check(d.cuStreamSynchronize!(stream), "cuStreamSynchronize before the normalisation table")
            try normalization.table.withUnsafeBytes { table in
                try libraries.check(
                    d.cuMemcpyHtoD!(normalizationTable.pointer, table.baseAddress, table.count), "cuMemcpyHtoD(normalisation table)")
            }
            uploadedNormalization = normalization
        }
        let spec = engine.spec, bytes = count * spec.pixelsPerImage, plane = spec.imageSize * spec.imageSize
        try libraries.check(
            d.cuMemcpyHtoDAsync!(pixelBytes.pointer, pinnedInput, bytes, stream), "cuMemcpyHtoDAsync(pixel bytes)", "\(bytes) bytes")
        try forwardAndDownload(count: count, normalize: normalize, into: output) {
            try engine.kernels.launch(
                "normalize_bytes_\(CUDAKernels.suffix(engine.dtype))",
                grid: (max(1, min((plane + 255) / 256, 64)), count * 3, 1), block: 256, stream: stream,
                [.pointer(pixelBytes.pointer), .pointer(pixels.pointer), .pointer(normalizationTable.pointer),
                 .int32(Int32(plane))])
        }
    }

    private func checkBatch(count: Int, output: UnsafeMutableBufferPointer<Float>) throws {
        guard count >= 1, count <= maxBatchSize else {
            throw EngineError.batchTooLarge(requested: count, maximum: maxBatchSize)
        }
        let e = engine.spec.embedDim
        guard output.count == count * e else { throw EngineError.bufferSize(what: "output", expected: count * e, got: output.count) }
    }

    /// The GPU work of a batch (`before`, then the forward pass of the `count` images in `pixels`), in this
    /// context's turn when it takes turns; then the embeddings back into `output`. Waits for all of it.
    private func forwardAndDownload(
        count: Int, normalize: Bool, into output: UnsafeMutableBufferPointer<Float>, before: () throws -> Void = {}
    ) throws {
        let d = libraries.driver, e = engine.spec.embedDim
        func compute() throws {
            try before()
            try run(profile: profile(for: count))
            if normalize { try l2Normalize(count: count) }
        }
        if let turnDone {
            try engine.launchTurn.take(stream: stream, done: turnDone, libraries: libraries, compute)
        } else {
            try compute()
        }
        try libraries.check(
            d.cuMemcpyDtoHAsync!(pinnedOutput, embedding.pointer, count * e * 4, stream), "cuMemcpyDtoHAsync(embeddings)")
        try libraries.check(d.cuEventRecord!(batchDone, stream), "cuEventRecord(batch done)")
        try libraries.check(d.cuEventSynchronize!(batchDone), "cuEventSynchronize after embed(\(count))")
        UnsafeMutableRawPointer(output.baseAddress!).copyMemory(from: pinnedOutput, byteCount: count * e * 4)
    }

    public func captureLayers(pixels input: UnsafeBufferPointer<Float>, count: Int) throws -> [LayerOutput] {
        try validate(pixels: input, count: count)
        guard count > 0 else { return [] }
        try device.bind()
        // Same path as `embed`: pinned staging and an async copy on this context's stream (a pageable
        // cuMemcpyHtoD on the legacy stream is not ordered with this non-blocking stream).
        let bytes = input.count * inputEncoding.byteSize
        stage(input, count: count)
        try libraries.check(
            libraries.driver.cuMemcpyHtoDAsync!(pixels.pointer, pinnedInput, bytes, stream), "cuMemcpyHtoDAsync(pixels)")
        var layers: [LayerOutput] = []
        try forward(count: count) { name, shape, buffer, dtype in
            try self.synchronize("capture \(name)")
            layers.append(LayerOutput(name: name, shape: shape, values: try self.download(buffer, dtype, shape.reduce(1, *))))
        }
        try synchronize("capture")
        let e = engine.spec.embedDim
        layers.append(LayerOutput(name: "projection", shape: [count, e], values: try download(embedding, .f32, count * e)))
        return layers
    }

    /// Times `iterations` forward passes of `batch` images already resident on the device (as the PyTorch peers
    /// measure): graph replays between two events, no host copies. Returns seconds per batch.
    public func timeDeviceResident(batch: Int, iterations: Int) throws -> Double {
        guard batch >= 1, batch <= maxBatchSize else { throw EngineError.batchTooLarge(requested: batch, maximum: maxBatchSize) }
        try device.bind()
        let d = libraries.driver
        let profile = profile(for: batch)
        try run(profile: profile)  // captures the graph and warms up
        try synchronize("warm-up")
        var start: CUevent?, end: CUevent?
        try libraries.check(d.cuEventCreate!(&start, 0), "cuEventCreate")
        try libraries.check(d.cuEventCreate!(&end, 0), "cuEventCreate")
        defer { _ = d.cuEventDestroy!(start); _ = d.cuEventDestroy!(end) }
        try libraries.check(d.cuEventRecord!(start, stream), "cuEventRecord")
        for _ in 0..<iterations { try run(profile: profile) }
        try libraries.check(d.cuEventRecord!(end, stream), "cuEventRecord")
        try libraries.check(d.cuEventSynchronize!(end), "cuEventSynchronize")
        var milliseconds: Float = 0
        try libraries.check(d.cuEventElapsedTime!(&milliseconds, start, end), "cuEventElapsedTime")
        return Double(milliseconds) / 1000 / Double(iterations)
    }

    /// One forward pass of the `count` images already in the device input buffer (from the previous `embed`),
    /// waiting for it to finish: no host copies. For engine-only benchmarks.
    public func forwardDeviceResident(count: Int) throws {
        guard count >= 1, count <= maxBatchSize else { throw EngineError.batchTooLarge(requested: count, maximum: maxBatchSize) }
        try device.bind()
        try run(profile: profile(for: count))
        try synchronize("forward(\(count))")
    }

    func profile(for count: Int) -> Int { profiles.first { $0 >= count } ?? maxBatchSize }

    func synchronize(_ what: String) throws {
        try libraries.check(libraries.driver.cuStreamSynchronize!(stream), "cuStreamSynchronize after \(what)")
    }

    /// Runs the forward pass for `profile` images: a graph replay once captured, else eager then capture.
    private func run(profile: Int) throws {
        let d = libraries.driver
        if let exec = graphs[profile] {
            try libraries.check(d.cuGraphLaunch!(exec, stream), "cuGraphLaunch(batch \(profile))")
            return
        }
        try forward(count: profile, capture: nil)
        guard useGraphs else { return }
        // The eager pass above chose every plan and loaded every kernel; now record the same work.
        try synchronize("eager forward(\(profile))")
        try libraries.check(
            d.cuStreamBeginCapture!(stream, Int32(CCUDA_STREAM_CAPTURE_MODE_THREAD_LOCAL)), "cuStreamBeginCapture(batch \(profile))")
        var graph: CUgraph?
        do {
            try forward(count: profile, capture: nil)
        } catch {
            _ = d.cuStreamEndCapture!(stream, &graph)
            if let graph { _ = d.cuGraphDestroy!(graph) }
            throw error
        }
        try libraries.check(d.cuStreamEndCapture!(stream, &graph), "cuStreamEndCapture(batch \(profile))")
        defer { _ = d.cuGraphDestroy!(graph) }
        var exec: CUgraphExec?
        try libraries.check(d.cuGraphInstantiateWithFlags!(&exec, graph, 0), "cuGraphInstantiateWithFlags(batch \(profile))")
        graphs[profile] = exec!
    }

    private func l2Normalize(count: Int) throws {
        try engine.kernels.launch(
            "l2norm_f32", grid: (count, 1, 1), block: 256, stream: stream,
            [.pointer(embedding.pointer), .int32(Int32(engine.spec.embedDim))])
    }

    private func download(_ buffer: CUDABuffer, _ dtype: DType, _ count: Int) throws -> [Float] {
        var raw = [UInt8](repeating: 0, count: count * dtype.byteSize)
        try raw.withUnsafeMutableBytes { bytes in
            try libraries.check(
                libraries.driver.cuMemcpyDtoH!(bytes.baseAddress!, buffer.pointer, bytes.count), "cuMemcpyDtoH", "\(bytes.count) bytes")
        }
        return raw.withUnsafeBytes { bytes in
            (0..<count).map { i in
                switch dtype {
                case .f32: bytes.load(fromByteOffset: i * 4, as: Float.self)
                case .f16: HalfConversion.float(fromF16: bytes.load(fromByteOffset: i * 2, as: UInt16.self))
                case .bf16: HalfConversion.float(fromBF16: bytes.load(fromByteOffset: i * 2, as: UInt16.self))
                }
            }
        }
    }

    private func matmul(
        _ label: String, m: Int, n: Int, k: Int, weight: CUDABuffer, input: CUDABuffer, output: CUDABuffer,
        outputType: DType, bias: CUDABuffer?, accumulate: Bool = false, outputStride: Int? = nil
    ) throws {
        let shape = MatmulShape(
            m: m, n: n, k: k, input: engine.dtype, output: outputType, bias: bias != nil, outputStride: outputStride)
        let plan: MatmulPlan
        if let cached = plans[shape] {
            plan = cached
        } else {
            plan = try MatmulPlan(
                shape: shape, handle: handle, workspaceLimit: workspaceBytes, libraries: libraries,
                sampleBias: bias?.pointer ?? 0, candidates: matmulCandidates)
            if plan.candidates.count > 1 {
                plan.use(try engine.matmulChoices.algorithm(for: shape) {
                    try fastest(plan, weight: weight, input: input, bias: bias, accumulate: accumulate)
                })
            }
            plans[shape] = plan
        }
        try plan.run(
            handle: handle, weight: weight.pointer, input: input.pointer, output: output.pointer, bias: bias?.pointer,
            accumulate: accumulate, workspace: workspace.pointer, workspaceLimit: workspaceBytes, stream: stream,
            label: label)
    }

    /// The quickest of `plan`'s candidates on this GPU, timed on the real weights and input into a scratch output, so
    /// nothing the forward pass holds is touched. The scratch is zeroed and added to when the real run `accumulate`s,
    /// as out_proj and c_proj do (beta = 1 reads the output, which can favour another candidate). The heuristic's
    /// first when the output would need more than 1 GiB of scratch or no candidate runs. Never called while a graph
    /// is being captured: plans are made in the eager pass that precedes each capture.
    private func fastest(
        _ plan: MatmulPlan, weight: CUDABuffer, input: CUDABuffer, bias: CUDABuffer?, accumulate: Bool
    ) throws -> cublasLtMatmulAlgo_t {
        let shape = plan.shape
        let outputBytes = ((shape.m - 1) * shape.ldY + shape.n) * shape.output.byteSize
        guard outputBytes <= 1 << 30 else { return plan.candidates[0] }
        let d = libraries.driver
        let scratch = try device.allocate(outputBytes, "matmul timing output")
        if accumulate {
            try libraries.check(
                d.cuMemsetD8Async!(scratch.pointer, 0, outputBytes, stream), "cuMemsetD8Async(matmul timing output)")
        }
        var start: CUevent?, end: CUevent?
        try libraries.check(d.cuEventCreate!(&start, 0), "cuEventCreate")
        try libraries.check(d.cuEventCreate!(&end, 0), "cuEventCreate")
        defer {
            _ = d.cuStreamSynchronize!(stream)
            _ = d.cuEventDestroy!(start)
            _ = d.cuEventDestroy!(end)
        }
        // About 1 GFLOP of work per candidate (between 2 and 20 runs), each run bracketed by the same two events.
        let flops = 2.0 * Double(shape.m) * Double(shape.n) * Double(shape.k)
        let runs = max(2, min(20, Int(1e9 / max(flops, 1))))
        var best: (algorithm: cublasLtMatmulAlgo_t, milliseconds: Float)?
        for (index, candidate) in plan.candidates.enumerated() {
            plan.use(candidate)
            func once() throws {
                try plan.run(
                    handle: handle, weight: weight.pointer, input: input.pointer, output: scratch.pointer,
                    bias: bias?.pointer, accumulate: accumulate, workspace: workspace.pointer, workspaceLimit: workspaceBytes,
                    stream: stream, label: "timing")
            }
            // A candidate the library turns down at run time is skipped; the heuristic's first must work.
            do { try once() } catch { if index == 0 { throw error } else { continue } }
            try libraries.check(d.cuEventRecord!(start, stream), "cuEventRecord")
            for _ in 0..<runs { try once() }
            try libraries.check(d.cuEventRecord!(end, stream), "cuEventRecord")
            try libraries.check(d.cuEventSynchronize!(end), "cuEventSynchronize(matmul timing)")
            var milliseconds: Float = 0
            try libraries.check(d.cuEventElapsedTime!(&milliseconds, start, end), "cuEventElapsedTime")
            if best.map({ milliseconds < $0.milliseconds }) ?? true { best = (candidate, milliseconds) }
        }
        return best?.algorithm ?? plan.candidates[0]
    }

    /// Enqueues the whole ViT forward pass for `count` images from `pixels` to `embedding` (un-normalised).
    /// `capture` is called after each stage with its buffer (work is enqueued, not finished).
    private func forward(
        count: Int, capture: ((_ name: String, _ shape: [Int], _ buffer: CUDABuffer, _ dtype: DType) throws -> Void)?
    ) throws {
        let e = engine, spec = e.spec, k = e.kernels, s = stream
        let suffix = CUDAKernels.suffix(e.dtype)
        let b = count, t = spec.tokens, w = spec.width, mw = spec.mlpWidth, g = spec.gridSize, g2 = g * g
        let rows = b * t, eps = spec.layerNormEpsilon
        func elementwiseGrid(_ total: Int) -> (Int, Int, Int) {
            (max(1, min((total + 255) / 256, device.multiprocessors * 16)), 1, 1)
        }
        try k.launch(
            "im2col_\(suffix)", grid: elementwiseGrid(b * g2 * e.patchK), block: 256, stream: s,
            [.pointer(pixels.pointer), .pointer(patches.pointer), .int32(Int32(b)), .int32(Int32(spec.imageSize)),
             .int32(Int32(spec.patchSize)), .int32(Int32(g)), .int32(Int32(e.patchK))])
        try mark("im2col")
        try matmul(
            "conv1", m: b * g2, n: w, k: e.patchK, weight: e.patchEmbedding, input: patches, output: patchOut,
            outputType: .f32, bias: nil)
        try mark("gemm conv1")
        let headWidth = spec.headWidth, queryTile = 64
        // Tensor cores for 16-bit activations when the whole K/V of a head fits in shared memory; else the scalar kernel.
        let mmaKernel = "attention_mma_d\(headWidth)_\(suffix)"
        let mmaShared = CUDAKernels.tensorCoreAttentionSharedBytes(tokens: t, headWidth: headWidth)
        let useTensorCores = e.dtype != .f32 && k.has(mmaKernel) && mmaShared <= device.maxSharedMemoryPerBlock
            && ProcessInfo.processInfo.environment["CLIPSERVE_SCALAR_ATTENTION"] != "1"
        let smallBatchPath = smallBatch.flatMap { useTensorCores && rows <= $0.maxRows ? $0 : nil }
        // The residual stream's type (see the class comment): fp16 only on the large-batch path of an fp16 engine.
        let residual16 = halfResidual && smallBatchPath == nil
        let residualType: DType = residual16 ? .f16 : .f32
        // Rows of up to 1280 columns (a multiple of 128) are held in registers and read once; every LayerNorm reads
        // the residual stream, the `_from16` kernels when it is 16-bit.
        let layerNormKernel = (w % 128 == 0 && w <= 1280 ? "layernorm_registers" : "layernorm")
            + (residual16 ? "_from16" : "")
        func layerNorm(_ input: CUDABuffer, stride: Int, _ output: CUDABuffer, _ type: String, rows: Int,
                       _ gamma: CUDABuffer, _ beta: CUDABuffer) throws {
            try k.launch(
                "\(layerNormKernel)_\(type)", grid: ((rows + 3) / 4, 1, 1), block: 128, stream: s,
                [.pointer(input.pointer), .int64(Int64(stride)), .pointer(output.pointer), .pointer(gamma.pointer),
                 .pointer(beta.pointer), .int32(Int32(rows)), .int32(Int32(w)), .float(eps)])
        }

        // The embeddings and ln_pre in one kernel, into x in fp32, or in fp16 when the residual is (x16, x null); the
        // small-batch block also gets the rows rounded to 16 bits in h.
        try k.launch(
            "embed_layernorm_\(suffix)", grid: ((rows + 3) / 4, 1, 1), block: 128, stream: s,
            [.pointer(patchOut.pointer), .pointer(e.classEmbedding.pointer), .pointer(e.positionalEmbedding.pointer),
             .pointer(e.lnPreWeight.pointer), .pointer(e.lnPreBias.pointer), .pointer(residual16 ? 0 : x.pointer),
             .pointer(residual16 ? x.pointer : smallBatchPath == nil ? 0 : h.pointer), .int32(Int32(rows)),
             .int32(Int32(t)), .int32(Int32(w)), .float(eps)])
        try mark("embed+ln_pre")
        try capture?("ln_pre", [b, t, w], x, residualType)
        var attentionKernel = useTensorCores ? mmaKernel : "attention_d\(headWidth)_\(suffix)"
        // Each warp owns 16 queries at a time; a CTA of 4 to 8 warps stages a head's K/V once. Pick the CTA size that
        // idles the fewest warps (ties: more warps): 17 query tiles of ViT-L-14 run on 6 warps. With enough
        // (head, image) pairs to fill the GPU, one CTA walks all of a head's tiles (K/V read once); small batches
        // spread the tiles over several CTAs instead, one tile per warp.
        let queryTiles = (t + 15) / 16
        let mmaWarps = (4...8).min { a, b in
            let slotsA = (queryTiles + a - 1) / a * a, slotsB = (queryTiles + b - 1) / b * b
            return slotsA != slotsB ? slotsA < slotsB : a > b
        }!
        let onePerHead = b >= engine.wholeHeadAttentionBatch
        let tilesPerCTA = onePerHead ? queryTiles : mmaWarps
        var attentionGridX = useTensorCores ? (queryTiles + tilesPerCTA - 1) / tilesPerCTA : (t + queryTile - 1) / queryTile
        var attentionBlock = useTensorCores ? 32 * mmaWarps : queryTile
        var attentionShared = useTensorCores ? mmaShared : CUDAKernels.attentionSharedBytes(headWidth: headWidth)
        // On Hopper, batches that give every SM several (head, image) pairs take the wgmma kernel: one CTA of one or
        // two warpgroups per pair (CLIPSERVE_WGMMA_ATTENTION=0 keeps mma.sync).
        let wgmmaKernel = "attention_wgmma_d64_\(suffix)"
        let tailRows = CUDAKernels.wgmmaAttentionTailRows(tokens: t, maxRows: wgmmaAttentionMaxTailRows)
        if useTensorCores, onePerHead, k.has(wgmmaKernel),
            CUDAKernels.wgmmaAttentionFits(
                headWidth: headWidth, tokens: t, tailRows: tailRows, sharedMemory: device.maxSharedMemoryPerBlock),
            wgmmaAttentionAllowed
        {
            attentionKernel = wgmmaKernel
            attentionGridX = 1
            attentionBlock = 128 * CUDAKernels.wgmmaAttentionWarpgroups(tokens: t)
            attentionShared = CUDAKernels.wgmmaAttentionSharedBytes(tokens: t, tailRows: tailRows)
        }
        let wgmmaAttention = attentionKernel == wgmmaKernel
        // On Hopper, c_fc with its bias and activation runs as one wgmma kernel (gemm_wgmma.cu) when the batch gives it
        // enough tiles (FusedMLP.runs); otherwise cuBLASLt and the bias + GELU pass.
        let mlpKernel = smallBatchPath == nil ? e.fusedMLP.flatMap { $0.runs(rows: rows, mlpWidth: mw) ? $0 : nil } : nil
        let mapH = try mlpKernel.map {
            try TensorMap(
                matrix: h.pointer, rows: rows, columns: w, boxRows: $0.kernel.boxRows, boxColumns: $0.kernel.slice,
                dtype: e.dtype, libraries: libraries, label: "layernorm output")
        }
        let scale = 1 / Float(headWidth).squareRoot()
        // With the wgmma attention the QKV GEMM runs without a bias, which costs cuBLASLt about 8% there (ViT-L-14 at
        // batch 256 on an H100: 14.2 against 13.0 ms): the attention adds Q's bias to each query tile it loads, K's
        // bias is dropped (it shifts a whole row of scores, which the softmax ignores) and V's is folded into
        // out_proj's bias (CUDAEngine.foldValueBias). CLIPSERVE_QKV_BIAS_FOLD=0 keeps the bias in the GEMM.
        let foldQKVBias = wgmmaAttention && smallBatchPath == nil && qkvBiasFoldAllowed
        for (index, block) in e.blocks.enumerated() {
            let label = "resblocks.\(index)"
            let queryBias = foldQKVBias ? block.qkvBiasF32.pointer : 0  // the first W of the fp32 QKV bias: Q's
            var attentionArguments: [KernelArgument] = [
                .pointer(qkv.pointer), .pointer(attention.pointer), .int32(Int32(t)), .int32(Int32(spec.heads)),
                .float(scale)]
            if useTensorCores {
                attentionArguments.append(wgmmaAttention ? .pointer(queryBias) : .int32(Int32(tilesPerCTA)))
                if wgmmaAttention { attentionArguments.append(.int32(Int32(tailRows))) }
            }
            func launchAttention(dependent: Bool) throws {
                try k.launch(
                    attentionKernel, grid: (attentionGridX, spec.heads, b), block: attentionBlock,
                    sharedBytes: attentionShared, stream: s, dependent: dependent, attentionArguments)
            }
            if let smallBatchPath {
                try smallBatchBlock(block, rows: rows, path: smallBatchPath, attentionLaunch: launchAttention)
                try capture?(label, [b, t, w], x, residualType)
                continue
            }
            // ln_1 and ln_2 without their affine: gamma and beta are folded into QKV and c_fc (CUDABlockWeights).
            try layerNorm(x, stride: w, h, suffix, rows: rows, e.unitGamma, e.zeroBeta)
            try mark("layernorm")
            try matmul(
                "\(label).qkv", m: rows, n: 3 * w, k: w, weight: block.qkvWeight, input: h, output: qkv,
                outputType: e.dtype, bias: foldQKVBias ? nil : block.qkvBias)
            try mark("gemm qkv")
            // The last block for the class tokens alone: the output is ln_post and proj of each image's class token, so
            // nothing reads the other tokens' rows after this block. Every token's K and V are needed (above); from the
            // attention on, one row per image: the attention writes them compactly, out_proj and c_proj add into the
            // class tokens' rows of x (T·W apart), ln_2 reads those. The per-layer capture (verify) runs the full
            // block, so it compares every token.
            let classKernel = index == e.blocks.count - 1 && capture == nil ? classTokenKernel : nil
            if let classKernel {
                let heads = CUDAKernels.classTokenHeadsPerCTA
                try k.launch(
                    classKernel, grid: ((spec.heads + heads - 1) / heads, b, 1), block: 32 * heads,
                    sharedBytes: CUDAKernels.classTokenAttentionSharedBytes(tokens: t), stream: s,
                    [.pointer(qkv.pointer), .pointer(attention.pointer), .int32(Int32(t)), .int32(Int32(spec.heads)),
                     .float(scale), .pointer(queryBias)])
                try mark("attention (class token)")
            } else {
                try launchAttention(dependent: false)
                try mark(wgmmaAttention ? "attention (wgmma)" : useTensorCores ? "attention (mma)" : "attention (scalar)")
            }
            // Rows from here on: every token's, or the class tokens' alone (`xStride` apart in x).
            let n = classKernel == nil ? rows : b, xStride = classKernel == nil ? w : t * w
            let outputStride = classKernel == nil ? nil : xStride  // nil: the plain row-major shape (its own plan)
            // cuBLASLt reads the bias in the output type: fp16 copies for the fp16 stream.
            let outBias = foldQKVBias
                ? (residual16 ? block.outBiasWithValueBias16! : block.outBiasWithValueBias)
                : (residual16 ? block.outBias16! : block.outBias)
            try matmul(
                "\(label).out_proj", m: n, n: w, k: w, weight: block.outWeight, input: attention, output: x,
                outputType: residualType, bias: outBias, accumulate: true, outputStride: outputStride)
            try mark("gemm out_proj")
            try layerNorm(x, stride: xStride, h, suffix, rows: n, e.unitGamma, e.zeroBeta)
            try mark("layernorm")
            if let mlpKernel, classKernel == nil {
                // c_fc, its bias and the activation in one persistent wgmma kernel: the hidden layer is written once.
                let kernel = mlpKernel.kernel
                let mapW = try TensorMap(
                    matrix: block.fc1Weight.pointer, rows: mw, columns: w, boxRows: kernel.boxRows, boxColumns: kernel.slice,
                    dtype: e.dtype, libraries: libraries, label: "\(label).c_fc weight")
                let clusters = min(kernel.units(rows: rows, mlpWidth: mw), mlpKernel.clusters)
                try k.launch(
                    kernel.name(e.dtype), grid: (clusters * kernel.cluster, 1, 1), block: kernel.threads,
                    sharedBytes: kernel.sharedBytes, stream: s, cluster: (kernel.cluster, 1, 1),
                    [.tensorMap(mapH!), .tensorMap(mapW), .pointer(mlp.pointer), .pointer(block.fc1Bias.pointer),
                     .int32(Int32(rows)), .int32(Int32(mw)), .int32(Int32(w)), .int32(spec.activation == .quickGELU ? 1 : 0)])
                try mark("gemm c_fc+gelu (wgmma)")
            } else {
                try matmul(
                    "\(label).c_fc", m: n, n: mw, k: w, weight: block.fc1Weight, input: h, output: mlp,
                    outputType: e.dtype, bias: nil)
                try mark("gemm c_fc")
                try k.launch(
                    "bias_gelu_\(suffix)", grid: (min(n, device.multiprocessors * 32), 1, 1), block: 128, stream: s,
                    [.pointer(mlp.pointer), .pointer(block.fc1Bias.pointer), .int64(Int64(n)), .int32(Int32(mw)),
                     .int32(spec.activation == .quickGELU ? 1 : 0)])
                try mark("bias+gelu")
            }
            try matmul(
                "\(label).c_proj", m: n, n: w, k: mw, weight: block.fc2Weight, input: mlp, output: x,
                outputType: residualType, bias: residual16 ? block.fc2Bias16! : block.fc2Bias, accumulate: true,
                outputStride: outputStride)
            try mark("gemm c_proj")
            try capture?(label, [b, t, w], x, residualType)
        }
        // ln_post on each image's class token (rows T·W apart), then the projection: on the small-batch path one
        // ln_linear with ln_post folded into proj, from the class tokens' 16-bit copy.
        if smallBatchPath != nil, let folded = e.foldedProjection, spec.embedDim % SmallBatchPath.tileColumns == 0 {
            try smallBatchProjection(folded, batch: b)
        } else {
            try layerNorm(x, stride: t * w, pooled, suffix, rows: b, e.lnPostWeight, e.lnPostBias)
            try capture?("ln_post", [b, w], pooled, e.dtype)
            try matmul(
                "proj", m: b, n: spec.embedDim, k: w, weight: e.projection, input: pooled, output: embedding,
                outputType: .f32, bias: nil)
        }
        try mark("ln_post+proj")
    }

    /// The wgmma c_fc + activation kernel and how many of its clusters fit on the device at once.
    struct FusedMLP: Sendable {
        let kernel: CUDAKernels.GemmActivationKernel
        let clusters: Int
        /// CLIPSERVE_MLP_GEMM=wgmma: whatever the batch.
        let always: Bool

        /// Whether a c_fc of `rows` rows runs fused: with at least eight waves of work units for the resident
        /// clusters, where the persistent kernel beats cuBLASLt plus the bias + GELU pass (measured at batch 256:
        /// scripts/device/gemm_check.cu); smaller batches keep cuBLASLt, whose tiles suit them better.
        func runs(rows: Int, mlpWidth: Int) -> Bool {
            always || kernel.units(rows: rows, mlpWidth: mlpWidth) >= 8 * clusters
        }
    }

    /// The wgmma c_fc + activation kernel when usable: a 16-bit engine, the kernel built (sm_90a), widths that are
    /// whole tiles, its shared memory available, at least one of its clusters resident, and not turned off
    /// (CLIPSERVE_MLP_GEMM=cublaslt). Otherwise nil: cuBLASLt and the bias + GELU pass (like the tensor-core module,
    /// the kernel is an optimisation: if the driver cannot place its clusters, the engine runs without it).
    static func fusedMLP(kernels: CUDAKernels, dtype: DType, spec: VisionTowerSpec) -> FusedMLP? {
        let kernel = CUDAKernels.gemmActivation
        let choice = ProcessInfo.processInfo.environment["CLIPSERVE_MLP_GEMM"]
        guard choice != "cublaslt", dtype != .f32, kernel.fits(width: spec.width, mlpWidth: spec.mlpWidth),
            kernels.has(kernel.name(dtype)), kernel.sharedBytes <= kernels.device.maxSharedMemoryPerBlock,
            let clusters = try? kernels.maxActiveClusters(
                kernel.name(dtype), block: kernel.threads, sharedBytes: kernel.sharedBytes, cluster: kernel.cluster),
            clusters > 0
        else { return nil }
        return FusedMLP(kernel: kernel, clusters: clusters, always: choice == "wgmma")
    }

    /// Records an event after the op just enqueued when stage profiling is on.
    func mark(_ stage: String) throws {
        guard stageEvents != nil else { return }
        var event: CUevent?
        try libraries.check(libraries.driver.cuEventCreate!(&event, 0), "cuEventCreate")
        try libraries.check(libraries.driver.cuEventRecord!(event, stream), "cuEventRecord(\(stage))")
        stageEvents!.append((stage, event!))
    }

    /// Runs one eager forward pass of `batch` device-resident images with an event after every op and returns the
    /// GPU milliseconds spent per stage kind, largest first. No graph: the ops are queued behind a GPU spin so they run
    /// back to back, and each op's time includes the gap before it and its event.
    public func profileStages(batch: Int) throws -> [(stage: String, milliseconds: Double)] {
        guard batch >= 1, batch <= maxBatchSize else { throw EngineError.batchTooLarge(requested: batch, maximum: maxBatchSize) }
        try device.bind()
        try forward(count: batch, capture: nil)  // plans and warm-up
        try synchronize("profile warm-up")
        var start: CUevent?
        try libraries.check(libraries.driver.cuEventCreate!(&start, 0), "cuEventCreate")
        // 20 ms of GPU spinning while the host enqueues the pass: the ops then run back to back, as in a graph, and
        // the events time the GPU rather than the host's launch rate (which is what small batches would show).
        try engine.kernels.launch("spin", grid: (1, 1, 1), block: 32, stream: stream, [.int64(20_000_000)])
        try libraries.check(libraries.driver.cuEventRecord!(start, stream), "cuEventRecord(start)")
        stageEvents = [("start", start!)]
        defer {
            for (_, event) in stageEvents ?? [] { _ = libraries.driver.cuEventDestroy!(event) }
            stageEvents = nil
        }
        try forward(count: batch, capture: nil)
        try synchronize("profile")
        var totals: [String: Double] = [:]
        let events = stageEvents!
        for i in 1..<events.count {
            var ms: Float = 0
            try libraries.check(libraries.driver.cuEventElapsedTime!(&ms, events[i - 1].1, events[i].1), "cuEventElapsedTime")
            totals[events[i].0, default: 0] += Double(ms)
        }
        return totals.map { ($0.key, $0.value) }.sorted { $0.1 > $1.1 }
    }
}
