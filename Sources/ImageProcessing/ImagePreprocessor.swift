import InferenceCore

/// Encoded image bytes to the model's normalised `[3, S, S]` input, pixel-identical to open_clip's PIL pipeline
/// (or transformers' `CLIPImageProcessor` PIL backend when `config.pipeline == .huggingFace`).
public struct ImagePreprocessor: Sendable {
    /// Where the output square lies in the resized image.
    public struct Geometry: Sendable, Hashable {
        /// Width after the resize step (equal to the source width when no resize happens).
        public var resizedWidth: Int
        /// Height after the resize step.
        public var resizedHeight: Int
        /// Column of the resized image at output column 0; negative when the image is padded.
        public var left: Int
        /// Row of the resized image at output row 0; negative when the image is padded.
        public var top: Int

        public init(resizedWidth: Int, resizedHeight: Int, left: Int, top: Int) {
            self.resizedWidth = resizedWidth
            self.resizedHeight = resizedHeight
            self.left = left
            self.top = top
        }
    }

    /// The configuration this preprocessor reproduces.
    public let config: PreprocessConfig
    /// Largest accepted `width * height`, checked from the header (Pillow's `MAX_IMAGE_PIXELS`).
    public let maxPixels: Int
    /// `((v / 255) - mean[c]) / std[c]` for every byte value, in Float32 like torchvision's ToTensor + Normalize.
    public let normalization: PixelNormalization
    private var table: [Float] { normalization.table }

    public init(config: PreprocessConfig, maxPixels: Int = 89_478_485) {
        self.config = config
        self.maxPixels = maxPixels
        normalization = PixelNormalization(config)
    }

    /// Floats one image occupies: `3 * size * size`.
    public var outputCount: Int { 3 * config.size * config.size }

    /// Decodes and preprocesses `bytes`, writing `3 * S * S` normalised floats (channel-major) into `output`.
    public func process(_ bytes: UnsafeRawBufferPointer, into output: UnsafeMutableBufferPointer<Float>) throws(ImageError) {
        guard output.count == outputCount else { throw .outputSize(expected: outputCount, got: output.count) }
        let window = try decodeWindow(bytes)
        let plane = config.size * config.size
        guard let base = output.baseAddress else { return }
        // The common case (RGB filling the whole square): the resized pixels go through the table straight into the
        // output; other modes and padding take the planar byte path first.
        if let region = try rgbSquare(window) {
            region.withUnsafeBufferPointer { src in
                table.withUnsafeBufferPointer { lut in
                    guard let p = src.baseAddress, let t = lut.baseAddress else { return }
                    for i in 0..<plane {
                        base[i] = t[Int(p[3 * i])]
                        base[plane + i] = t[256 + Int(p[3 * i + 1])]
                        base[2 * plane + i] = t[512 + Int(p[3 * i + 2])]
                    }
                }
            }
            return
        }
        let planes = try render(window)
        planes.withUnsafeBufferPointer { src in
            table.withUnsafeBufferPointer { lut in
                for c in 0..<3 {
                    let base = c * plane
                    let channel = c * 256
                    for i in 0..<plane { output[base + i] = lut[channel + Int(src[base + i])] }
                }
            }
        }
    }

    /// The resized `S x S` RGB pixels (interleaved) when the image is RGB and covers the whole output, else nil.
    private func rgbSquare(_ window: ImageDecoder.Window) throws(ImageError) -> [UInt8]? {
        guard window.image.mode == .RGB, config.pipeline == .openCLIP || window.image.transparentColor == nil else {
            return nil
        }
        try validate()
        let g = geometry(width: window.fullWidth, height: window.fullHeight)
        guard g.resizedWidth >= 1, g.resizedHeight >= 1 else { return nil }
        let (columns, rows) = outputSpan(g)
        guard columns.count == config.size, rows.count == config.size else { return nil }
        return resizedRegion(window, window.image, g, columns: columns, rows: rows)
    }

    /// Decodes and preprocesses `bytes` into a new `[3, S, S]` array.
    public func process(_ bytes: [UInt8]) throws(ImageError) -> [Float] {
        var output = [Float](repeating: 0, count: outputCount)
        var failure: ImageError?
        bytes.withUnsafeBytes { raw in
            output.withUnsafeMutableBufferPointer { out in
                do throws(ImageError) { try process(raw, into: out) } catch { failure = error }
            }
        }
        if let failure { throw failure }
        return output
    }

    /// The `[3, S, S]` RGB bytes before ToTensor's division by 255: `normalization` turns them into exactly the
    /// floats `process` returns.
    public func unnormalizedPixels(_ bytes: [UInt8]) throws(ImageError) -> [UInt8] {
        var result: Result<ImageDecoder.Window, ImageError> = .failure(.empty)
        bytes.withUnsafeBytes { raw in
            do throws(ImageError) { result = .success(try decodeWindow(raw)) } catch { result = .failure(error) }
        }
        let window = try result.get()
        // The common case (RGB filling the whole square): only the interleaved resized pixels to de-interleave.
        if let region = try rgbSquare(window) {
            let plane = config.size * config.size
            var planes = [UInt8](repeating: 0, count: 3 * plane)
            region.withUnsafeBufferPointer { src in
                planes.withUnsafeMutableBufferPointer { out in
                    for i in 0..<plane {
                        out[i] = src[3 * i]
                        out[plane + i] = src[3 * i + 1]
                        out[2 * plane + i] = src[3 * i + 2]
                    }
                }
            }
            return planes
        }
        return try render(window)
    }

    /// Resize, crop or pad, and convert a decoded image to `[3, S, S]` RGB bytes.
    public func pixels(_ decoded: DecodedImage) throws(ImageError) -> [UInt8] {
        try render(ImageDecoder.Window(image: decoded, fullWidth: decoded.width, fullHeight: decoded.height))
    }

    /// Decodes only the part of the image the output depends on (JPEG), found from the header's size.
    private func decodeWindow(_ bytes: UnsafeRawBufferPointer) throws(ImageError) -> ImageDecoder.Window {
        try ImageDecoder.decodeWindow(bytes, maxPixels: maxPixels) { width, height in
            sourceSpan(width: width, height: height)
        }
    }

    /// The output square's columns and rows in the resized image (empty parts are padding).
    private func outputSpan(_ g: Geometry) -> (columns: Range<Int>, rows: Range<Int>) {
        let size = config.size
        let left = max(0, g.left), top = max(0, g.top)
        return (left..<max(left, min(g.resizedWidth, g.left + size)), top..<max(top, min(g.resizedHeight, g.top + size)))
    }

    /// The source columns and rows the output reads, or nil when the whole image is needed or nothing can be said.
    func sourceSpan(width: Int, height: Int) -> (columns: Range<Int>, rows: Range<Int>)? {
        guard (try? validate()) != nil else { return nil }
        let g = geometry(width: width, height: height)
        guard g.resizedWidth >= 1, g.resizedHeight >= 1 else { return nil }
        let (columns, rows) = outputSpan(g)
        guard !columns.isEmpty, !rows.isEmpty else { return nil }
        if g.resizedWidth == width && g.resizedHeight == height { return (columns, rows) }
        let sourceColumns = g.resizedWidth == width
            ? columns : ResampleAxis(inSize: width, outSize: g.resizedWidth, outputs: columns).inputSpan
        let sourceRows = g.resizedHeight == height
            ? rows : ResampleAxis(inSize: height, outSize: g.resizedHeight, outputs: rows).inputSpan
        return (sourceColumns, sourceRows)
    }

    private func render(_ window: ImageDecoder.Window) throws(ImageError) -> [UInt8] {
        try validate()
        let image = config.pipeline == .huggingFace ? PixelConversion.huggingFaceRGB(window.image) : window.image
        let size = config.size
        let fullWidth = window.fullWidth, fullHeight = window.fullHeight
        let g = geometry(width: fullWidth, height: fullHeight)
        guard g.resizedWidth >= 1, g.resizedHeight >= 1 else {
            throw .degenerateResize(
                width: fullWidth, height: fullHeight, resizedWidth: g.resizedWidth, resizedHeight: g.resizedHeight)
        }
        let (columns, rows) = outputSpan(g)
        let region = resizedRegion(window, image, g, columns: columns, rows: rows)

        var planes = [UInt8](repeating: 0, count: 3 * size * size)
        planes.withUnsafeMutableBufferPointer { out in
            if columns.count < size || rows.count < size {
                // torchvision pads in the image's own mode, so the fill goes through the same conversion.
                let fill = UInt8(clamping: config.fillColor)
                let rgb = PixelConversion.fillRGB(image, fill)
                for c in 0..<3 {
                    for i in 0..<(size * size) { out[c * size * size + i] = rgb[c] }
                }
            }
            region.withUnsafeBufferPointer { src in
                PixelConversion.writeRGB(
                    image, region: src, width: columns.count, height: rows.count, into: out, size: size,
                    x: columns.lowerBound - g.left, y: rows.lowerBound - g.top)
            }
        }
        return planes
    }

    /// The resize target and crop offsets for a `width x height` image.
    public func geometry(width: Int, height: Int) -> Geometry {
        let size = config.size
        var resizedWidth = width, resizedHeight = height
        switch config.resizeMode {
        case .shortest:
            // torchvision `_compute_resized_output_size`: the long side is truncated.
            if width <= height {
                resizedWidth = size
                resizedHeight = Int(Double(size * height) / Double(width))
            } else {
                resizedHeight = size
                resizedWidth = Int(Double(size * width) / Double(height))
            }
        case .squash:
            resizedWidth = size
            resizedHeight = size
        case .longest:
            // open_clip `ResizeKeepRatio(longest=1)`: scale by the larger ratio, Python `round` (half to even).
            let ratio = max(Double(height) / Double(size), Double(width) / Double(size))
            resizedHeight = Int((Double(height) * 1.0 / ratio).rounded(.toNearestOrEven))
            resizedWidth = Int((Double(width) * 1.0 / ratio).rounded(.toNearestOrEven))
        }
        switch config.pipeline {
        case .openCLIP:
            return Geometry(
                resizedWidth: resizedWidth, resizedHeight: resizedHeight,
                left: Self.cropOffset(resizedWidth, size), top: Self.cropOffset(resizedHeight, size))
        case .huggingFace:
            return Geometry(
                resizedWidth: resizedWidth, resizedHeight: resizedHeight,
                left: Self.floorDiv(resizedWidth - size, 2), top: Self.floorDiv(resizedHeight - size, 2))
        }
    }

    /// torchvision `center_crop` / open_clip `center_crop_or_pad` along one axis: pad `(S - n) // 2` before when
    /// too small, then crop at `int(round((n' - S) / 2))`.
    private static func cropOffset(_ extent: Int, _ size: Int) -> Int {
        let padBefore = size > extent ? (size - extent) / 2 : 0
        let padded = size > extent ? size : extent
        return Int((Double(padded - size) / 2.0).rounded(.toNearestOrEven)) - padBefore
    }

    private static func floorDiv(_ a: Int, _ b: Int) -> Int {
        let q = a / b
        return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q
    }

    private func validate() throws(ImageError) {
        guard config.size > 0 else { throw .invalidConfig("size \(config.size) must be positive") }
        guard config.mean.count == 3, config.std.count == 3 else {
            throw .invalidConfig("mean and std need 3 values, got \(config.mean.count) and \(config.std.count)")
        }
        guard config.std.allSatisfy({ $0 != 0 }) else { throw .invalidConfig("std \(config.std) contains zero") }
        guard config.interpolation == "bicubic" else {
            throw .invalidConfig("interpolation \"\(config.interpolation)\" (only bicubic is implemented)")
        }
    }

    /// The resized image's pixels in `columns x rows`, in the image's own mode (Pillow resizes before converting).
    /// `image` is `window.image`, possibly converted to RGB; it covers the window's part of the source.
    private func resizedRegion(
        _ window: ImageDecoder.Window, _ image: DecodedImage, _ g: Geometry, columns: Range<Int>, rows: Range<Int>
    ) -> [UInt8] {
        let bpp = image.mode.bytesPerPixel
        let w = window.fullWidth, h = window.fullHeight
        let ox = window.x, oy = window.y, stride = image.width * bpp
        if columns.isEmpty || rows.isEmpty { return [] }
        if g.resizedWidth == w && g.resizedHeight == h {
            // torchvision skips the resize when the size already matches.
            var out = [UInt8](repeating: 0, count: columns.count * rows.count * bpp)
            let rowBytes = columns.count * bpp
            image.pixels.withUnsafeBufferPointer { src in
                out.withUnsafeMutableBufferPointer { dst in
                    for (r, y) in rows.enumerated() {
                        let from = (y - oy) * stride + (columns.lowerBound - ox) * bpp
                        for b in 0..<rowBytes { dst[r * rowBytes + b] = src[from + b] }
                    }
                }
            }
            return out
        }
        switch image.mode {
        case .P, .bilevel:
            // Image.resize forces NEAREST for modes 1 and P.
            let xs = Resampler.nearestIndices(inSize: w, outSize: g.resizedWidth, outputs: columns)
            let ys = Resampler.nearestIndices(inSize: h, outSize: g.resizedHeight, outputs: rows)
            var out = [UInt8](repeating: 0, count: columns.count * rows.count)
            image.pixels.withUnsafeBufferPointer { src in
                for (r, y) in ys.enumerated() {
                    for (c, x) in xs.enumerated() { out[r * columns.count + c] = src[(y - oy) * stride + x - ox] }
                }
            }
            return out
        case .L, .RGB, .CMYK:
            return image.pixels.withUnsafeBufferPointer { src in
                Resampler.resample8(
                    src, width: w, height: h, channels: bpp, outWidth: g.resizedWidth, outHeight: g.resizedHeight,
                    columns: columns, rows: rows, originX: ox, originY: oy, stride: stride)
            }
        case .LA, .RGBA:
            // Image.resize converts LA/RGBA to La/RGBa, resizes, and converts back.
            let premultiplied = PixelConversion.premultiplied(image.pixels, channels: bpp)
            var out = premultiplied.withUnsafeBufferPointer { src in
                Resampler.resample8(
                    src, width: w, height: h, channels: bpp, outWidth: g.resizedWidth, outHeight: g.resizedHeight,
                    columns: columns, rows: rows, originX: ox, originY: oy, stride: stride)
            }
            PixelConversion.unpremultiply(&out, channels: bpp)
            return out
        case .I16:
            // Only JPEG decodes windows, so 16-bit gray (PNG) always covers the whole image here.
            var values = [UInt16](repeating: 0, count: w * h)
            image.pixels.withUnsafeBufferPointer { src in
                for i in 0..<(w * h) { values[i] = UInt16(src[2 * i]) | UInt16(src[2 * i + 1]) << 8 }
            }
            let resized = Resampler.resample16(
                values, width: w, height: h, outWidth: g.resizedWidth, outHeight: g.resizedHeight,
                columns: columns, rows: rows)
            var out = [UInt8](repeating: 0, count: resized.count * 2)
            for (i, v) in resized.enumerated() {
                out[2 * i] = UInt8(truncatingIfNeeded: v)
                out[2 * i + 1] = UInt8(truncatingIfNeeded: v >> 8)
            }
            return out
        }
    }
}
