import CImageCodecs

/// Decodes JPEG, PNG and WebP bytes into the mode and pixel values Pillow's `Image.open(...).load()` gives.
public enum ImageDecoder {
    /// Decodes `bytes`, refusing images over `maxPixels` from their header, before allocating pixels.
    public static func decode(_ bytes: UnsafeRawBufferPointer, maxPixels: Int = 89_478_485) throws(ImageError) -> DecodedImage {
        try decodeWindow(bytes, maxPixels: maxPixels, request: nil).image
    }

    /// Part of an image: `image` holds the pixels of columns `x..<x + image.width` and rows `y..<y + image.height`
    /// of a `fullWidth x fullHeight` image.
    struct Window {
        var image: DecodedImage
        var x = 0
        var y = 0
        var fullWidth: Int
        var fullHeight: Int
    }

    /// Given the full size, the source columns and rows the caller will read (nil: all of them).
    typealias WindowRequest = (_ width: Int, _ height: Int) -> (columns: Range<Int>, rows: Range<Int>)?

    /// Decodes at least the requested window. JPEG skips the colour conversion and inverse DCT of the rest (it still
    /// reads all of the data, so truncation is detected as before); PNG and WebP decode everything.
    static func decodeWindow(
        _ bytes: UnsafeRawBufferPointer, maxPixels: Int, request: WindowRequest?
    ) throws(ImageError) -> Window {
        guard bytes.count > 0, let base = bytes.baseAddress else { throw .empty }
        guard let format = ImageFormat.sniff(bytes) else {
            throw .unknownFormat(prefix: Array(bytes.prefix(8)))
        }
        let data = base.assumingMemoryBound(to: UInt8.self)
        let image: DecodedImage
        switch format {
        case .jpeg: return try decodeJPEG(data, count: bytes.count, maxPixels: maxPixels, request: request)
        case .png: image = try decodePNG(data, count: bytes.count, maxPixels: maxPixels)
        case .webp: image = try decodeWebP(data, count: bytes.count, maxPixels: maxPixels)
        }
        return Window(image: image, fullWidth: image.width, fullHeight: image.height)
    }

    /// Decodes an array of encoded bytes.
    public static func decode(_ bytes: [UInt8], maxPixels: Int = 89_478_485) throws(ImageError) -> DecodedImage {
        var result: Result<DecodedImage, ImageError> = .failure(.empty)
        bytes.withUnsafeBytes { raw in
            do throws(ImageError) { result = .success(try decode(raw, maxPixels: maxPixels)) } catch {
                result = .failure(error)
            }
        }
        return try result.get()
    }

    static func checkSize(_ format: ImageFormat, _ width: Int, _ height: Int, _ maxPixels: Int) throws(ImageError) {
        guard width > 0, height > 0 else { throw .zeroSize(format: format, width: width, height: height) }
        let (pixels, overflow) = width.multipliedReportingOverflow(by: height)
        guard !overflow, pixels <= maxPixels else {
            throw .tooLarge(format: format, width: width, height: height, limit: maxPixels)
        }
    }

    // MARK: JPEG

    private static func decodeJPEG(
        _ data: UnsafePointer<UInt8>, count: Int, maxPixels: Int, request: WindowRequest?
    ) throws(ImageError) -> Window {
        guard let jpeg = cic_jpeg_create(data, count) else {
            throw .corrupt(format: .jpeg, detail: "libjpeg could not allocate a decompressor")
        }
        defer { cic_jpeg_destroy(jpeg) }
        func failure(_ stage: String) -> ImageError {
            let message = String(cString: cic_jpeg_message(jpeg))
            if cic_jpeg_hit_eof(jpeg) != 0 {
                return .truncated(format: .jpeg, detail: "\(stage): \(message)")
            }
            return .corrupt(format: .jpeg, detail: "\(stage): \(message)")
        }
        var width: Int32 = 0, height: Int32 = 0, components: Int32 = 0, colorSpace: Int32 = 0
        guard cic_jpeg_read_header(jpeg, &width, &height, &components, &colorSpace) == 0 else {
            throw failure("reading header")
        }
        if cic_jpeg_hit_eof(jpeg) != 0 { throw failure("reading header") }
        try checkSize(.jpeg, Int(width), Int(height), maxPixels)
        // Pillow picks the mode from the frame's component count and asks libjpeg for it.
        let mode: DecodedImage.Mode
        let outSpace: J_COLOR_SPACE
        switch components {
        case 1: (mode, outSpace) = (.L, JCS_GRAYSCALE)
        case 3: (mode, outSpace) = (.RGB, JCS_RGB)
        case 4: (mode, outSpace) = (.CMYK, JCS_CMYK)
        default:
            throw .unsupported(format: .jpeg, detail: "\(components) components (Pillow reads 1, 3 or 4)")
        }
        var outComponents: Int32 = 0
        guard cic_jpeg_start(jpeg, Int32(bitPattern: outSpace.rawValue), &outComponents) == 0 else {
            throw failure("starting decompression")
        }
        guard Int(outComponents) == mode.bytesPerPixel else {
            throw .unsupported(format: .jpeg, detail: "libjpeg gave \(outComponents) components for mode \(mode.rawValue)")
        }
        let w = Int(width), h = Int(height)
        // The window, with one iMCU (16 pixels) of margin so that fancy upsampling at its edges sees real neighbours;
        // libjpeg aligns the column span further to iMCU boundaries.
        var x0: Int32 = 0, windowWidth = width, y0 = 0, y1 = h
        if let (columns, rows) = request?(w, h), !columns.isEmpty, !rows.isEmpty {
            let margin = 16
            let left = max(0, columns.lowerBound - margin), right = min(w, columns.upperBound + margin)
            if right - left < w {
                x0 = Int32(left)
                windowWidth = Int32(right - left)
                guard cic_jpeg_crop(jpeg, &x0, &windowWidth) == 0 else { throw failure("cropping scanlines") }
            }
            y0 = max(0, rows.lowerBound - margin)
            y1 = min(h, rows.upperBound + margin)
        }
        let stride = Int(windowWidth) * mode.bytesPerPixel
        guard cic_jpeg_skip_scanlines(jpeg, Int32(y0)) == 0 else { throw failure("skipping scanlines") }
        var status: Int32 = 0
        // libjpeg writes every byte (or the array is dropped with the error), so it starts uninitialised.
        var pixels = [UInt8](unsafeUninitializedCapacity: stride * (y1 - y0)) { buffer, initialized in
            status = cic_jpeg_read_scanlines(jpeg, buffer.baseAddress, stride, Int32(y1 - y0))
            initialized = buffer.count
        }
        guard status == 0 else { throw failure("decoding scanlines") }
        // Read through the remaining rows too: Pillow refuses a file that ends before its last scanline.
        guard cic_jpeg_skip_scanlines(jpeg, Int32(h - y1)) == 0 else { throw failure("skipping scanlines") }
        if cic_jpeg_hit_eof(jpeg) != 0 { throw failure("decoding scanlines") }
        if mode == .CMYK {
            // Pillow's rawmode CMYK;I: assume Adobe polarity and invert every channel.
            pixels.withUnsafeMutableBufferPointer { buffer in
                for i in buffer.indices { buffer[i] = 255 &- buffer[i] }
            }
        }
        return Window(
            image: DecodedImage(width: Int(windowWidth), height: y1 - y0, mode: mode, pixels: pixels),
            x: Int(x0), y: y0, fullWidth: w, fullHeight: h)
    }

    // MARK: PNG

    private static func decodePNG(_ data: UnsafePointer<UInt8>, count: Int, maxPixels: Int) throws(ImageError) -> DecodedImage {
        // Read IHDR's size ourselves first: libpng reports zero or huge sizes as generic errors.
        if count >= 24, data[12] == 0x49, data[13] == 0x48, data[14] == 0x44, data[15] == 0x52 {
            func be(_ i: Int) -> Int { Int(data[i]) << 24 | Int(data[i + 1]) << 16 | Int(data[i + 2]) << 8 | Int(data[i + 3]) }
            try checkSize(.png, be(16), be(20), maxPixels)
        }
        guard let png = cic_png_create(data, count) else {
            throw .corrupt(format: .png, detail: "libpng could not allocate a reader")
        }
        defer { cic_png_destroy(png) }
        func failure(_ stage: String) -> ImageError {
            let message = String(cString: cic_png_message(png))
            if message.contains("truncated") || message.contains("Not enough image data") {
                return .truncated(format: .png, detail: "\(stage): \(message)")
            }
            return .corrupt(format: .png, detail: "\(stage): \(message)")
        }
        var width: UInt32 = 0, height: UInt32 = 0
        var bitDepth: Int32 = 0, colorType: Int32 = 0, interlace: Int32 = 0
        guard cic_png_read_info(png, &width, &height, &bitDepth, &colorType, &interlace) == 0 else {
            throw failure("reading header")
        }
        let w = Int(width), h = Int(height), depth = Int(bitDepth)
        try checkSize(.png, w, h, maxPixels)
        let samples: Int
        switch colorType {
        case 0, 3: samples = 1
        case 2: samples = 3
        case 4: samples = 2
        case 6: samples = 4
        default: throw .unsupported(format: .png, detail: "colour type \(colorType)")
        }
        let bytesPerSample = depth == 16 ? 2 : 1
        let rowBytes = w * samples * bytesPerSample
        var raw = [UInt8](repeating: 0, count: rowBytes * h)
        let status = raw.withUnsafeMutableBufferPointer { cic_png_read_image(png, $0.baseAddress, rowBytes) }
        guard status == 0 else { throw failure("decoding rows") }

        // Repack into the mode Pillow's PngImagePlugin opens (its _MODES table).
        switch (depth, colorType) {
        case (1, 0):
            return DecodedImage(width: w, height: h, mode: .bilevel, pixels: raw.map { $0 != 0 ? 255 : 0 })
        case (2, 0), (4, 0), (8, 0):
            let scale: UInt8 = depth == 2 ? 85 : depth == 4 ? 17 : 1
            if scale != 1 { raw = raw.map { $0 &* scale } }
            return DecodedImage(width: w, height: h, mode: .L, pixels: raw, transparentColor: try grayKey(png, depth: depth))
        case (16, 0):
            var pixels = [UInt8](repeating: 0, count: w * h * 2)
            raw.withUnsafeBufferPointer { src in
                pixels.withUnsafeMutableBufferPointer { dst in
                    for i in 0..<(w * h) {
                        dst[2 * i] = src[2 * i + 1]
                        dst[2 * i + 1] = src[2 * i]
                    }
                }
            }
            return DecodedImage(width: w, height: h, mode: .I16, pixels: pixels)
        case (8, 2):
            return DecodedImage(width: w, height: h, mode: .RGB, pixels: raw, transparentColor: try rgbKey(png))
        case (16, 2), (16, 6):
            // RGB;16B and RGBA;16B keep each sample's high byte.
            return DecodedImage(
                width: w, height: h, mode: colorType == 2 ? .RGB : .RGBA, pixels: highBytes(raw),
                transparentColor: colorType == 2 ? try rgbKey(png) : nil)
        case (_, 3):
            var rgb: UnsafePointer<UInt8>? = nil
            var entries: Int32 = 0
            guard cic_png_palette(png, &rgb, &entries) == 0 else { throw failure("reading PLTE") }
            var palette = [UInt8](repeating: 0, count: 768)
            if let rgb {
                for i in 0..<(min(Int(entries), 256) * 3) { palette[i] = rgb[i] }
            }
            var alpha: UnsafePointer<UInt8>? = nil
            var alphaCount: Int32 = 0
            var g: UInt16 = 0, r: UInt16 = 0, gr: UInt16 = 0, b: UInt16 = 0
            var paletteAlpha: [UInt8]? = nil
            if cic_png_transparency(png, &alpha, &alphaCount, &g, &r, &gr, &b) == 1, let alpha {
                var table = [UInt8](repeating: 255, count: 256)
                for i in 0..<min(Int(alphaCount), 256) { table[i] = alpha[i] }
                paletteAlpha = table
            }
            return DecodedImage(width: w, height: h, mode: .P, pixels: raw, palette: palette, paletteAlpha: paletteAlpha)
        case (8, 4):
            return DecodedImage(width: w, height: h, mode: .LA, pixels: raw)
        case (16, 4):
            // Pillow opens 16-bit gray+alpha as RGBA through rawmode LA;16B.
            var pixels = [UInt8](repeating: 0, count: w * h * 4)
            raw.withUnsafeBufferPointer { src in
                pixels.withUnsafeMutableBufferPointer { dst in
                    for i in 0..<(w * h) {
                        let l = src[4 * i], a = src[4 * i + 2]
                        dst[4 * i] = l
                        dst[4 * i + 1] = l
                        dst[4 * i + 2] = l
                        dst[4 * i + 3] = a
                    }
                }
            }
            return DecodedImage(width: w, height: h, mode: .RGBA, pixels: pixels)
        case (8, 6):
            return DecodedImage(width: w, height: h, mode: .RGBA, pixels: raw)
        default:
            throw .unsupported(format: .png, detail: "bit depth \(depth) with colour type \(colorType)")
        }
    }

    private static func highBytes(_ raw: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: raw.count / 2)
        raw.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for i in dst.indices { dst[i] = src[2 * i] }
            }
        }
        return out
    }

    private static func grayKey(_ png: OpaquePointer, depth: Int) throws(ImageError) -> [Int]? {
        var alpha: UnsafePointer<UInt8>? = nil
        var count: Int32 = 0
        var g: UInt16 = 0, r: UInt16 = 0, gr: UInt16 = 0, b: UInt16 = 0
        guard cic_png_transparency(png, &alpha, &count, &g, &r, &gr, &b) == 1 else { return nil }
        // Pillow keeps the raw tRNS value; pixels were scaled to 8 bits by 255 / (2^depth - 1).
        let scale = depth == 2 ? 85 : depth == 4 ? 17 : 1
        return [Int(g) * scale]
    }

    private static func rgbKey(_ png: OpaquePointer) throws(ImageError) -> [Int]? {
        var alpha: UnsafePointer<UInt8>? = nil
        var count: Int32 = 0
        var g: UInt16 = 0, r: UInt16 = 0, gr: UInt16 = 0, b: UInt16 = 0
        guard cic_png_transparency(png, &alpha, &count, &g, &r, &gr, &b) == 1 else { return nil }
        return [Int(r), Int(gr), Int(b)]
    }

    // MARK: WebP

    private static func decodeWebP(_ data: UnsafePointer<UInt8>, count: Int, maxPixels: Int) throws(ImageError) -> DecodedImage {
        var features = WebPBitstreamFeatures()
        let status = WebPGetFeatures(data, count, &features)
        switch status {
        case VP8_STATUS_OK: break
        case VP8_STATUS_NOT_ENOUGH_DATA:
            throw .truncated(format: .webp, detail: "header ends early")
        default:
            throw .corrupt(format: .webp, detail: "libwebp status \(status.rawValue) reading features")
        }
        if features.has_animation != 0 {
            throw .unsupported(format: .webp, detail: "animated WebP")
        }
        let w = Int(features.width), h = Int(features.height)
        try checkSize(.webp, w, h, maxPixels)
        // Pillow decodes to RGBA and, without alpha, keeps RGB of RGBX.
        let mode: DecodedImage.Mode = features.has_alpha != 0 ? .RGBA : .RGB
        let stride = w * mode.bytesPerPixel
        var pixels = [UInt8](repeating: 0, count: stride * h)
        let ok = pixels.withUnsafeMutableBufferPointer { buffer -> Bool in
            let size = buffer.count
            if mode == .RGBA {
                return WebPDecodeRGBAInto(data, count, buffer.baseAddress, size, Int32(stride)) != nil
            }
            return WebPDecodeRGBInto(data, count, buffer.baseAddress, size, Int32(stride)) != nil
        }
        guard ok else {
            // The simple API does not say why; compare the RIFF size with the bytes we have.
            let riffSize = Int(data[4]) | Int(data[5]) << 8 | Int(data[6]) << 16 | Int(data[7]) << 24
            if riffSize + 8 > count {
                throw .truncated(format: .webp, detail: "RIFF declares \(riffSize + 8) bytes, got \(count)")
            }
            throw .corrupt(format: .webp, detail: "libwebp could not decode the \(w)x\(h) bitstream")
        }
        return DecodedImage(width: w, height: h, mode: mode, pixels: pixels)
    }
}
