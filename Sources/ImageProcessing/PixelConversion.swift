/// Pillow's `convert()` formulas (`src/libImaging/Convert.c`, `AlphaComposite.c`) for the modes clipserve decodes.
enum PixelConversion {
    /// `MULDIV255`: `(a * b + 127) / 255`, rounded the way Pillow does.
    @inline(__always)
    static func mulDiv255(_ a: UInt32, _ b: UInt32) -> UInt32 {
        let t = a &* b &+ 128
        return ((t >> 8) &+ t) >> 8
    }

    /// RGBA -> RGBa and LA -> La: colour channels times alpha / 255.
    static func premultiplied(_ pixels: [UInt8], channels: Int) -> [UInt8] {
        var out = pixels
        out.withUnsafeMutableBufferPointer { p in
            var i = 0
            while i < p.count {
                let alpha = UInt32(p[i + channels - 1])
                for c in 0..<(channels - 1) { p[i + c] = UInt8(truncatingIfNeeded: mulDiv255(UInt32(p[i + c]), alpha)) }
                i += channels
            }
        }
        return out
    }

    /// RGBa -> RGBA and La -> LA: `CLIP8(255 * v / alpha)` unless alpha is 0 or 255.
    static func unpremultiply(_ pixels: inout [UInt8], channels: Int) {
        pixels.withUnsafeMutableBufferPointer { p in
            var i = 0
            while i < p.count {
                let alpha = Int(p[i + channels - 1])
                if alpha != 0 && alpha != 255 {
                    for c in 0..<(channels - 1) { p[i + c] = UInt8(min(255, 255 * Int(p[i + c]) / alpha)) }
                }
                i += channels
            }
        }
    }

    /// `cmyk2rgb`.
    @inline(__always)
    static func cmykToRGB(_ c: UInt8, _ m: UInt8, _ y: UInt8, _ k: UInt8) -> (UInt8, UInt8, UInt8) {
        let nk = 255 - Int(k)
        @inline(__always) func channel(_ v: UInt8) -> UInt8 {
            UInt8(clamping: nk - Int(mulDiv255(UInt32(v), UInt32(nk))))
        }
        return (channel(c), channel(m), channel(y))
    }

    /// Converts `region` (packed, in `image.mode`) to RGB and stores it in the planar `[3, size, size]` output at
    /// column `x`, row `y`.
    static func writeRGB(
        _ image: DecodedImage, region: UnsafeBufferPointer<UInt8>, width: Int, height: Int,
        into out: UnsafeMutableBufferPointer<UInt8>, size: Int, x: Int, y: Int, plane: Int? = nil
    ) {
        let plane = plane ?? size * size
        let bpp = image.mode.bytesPerPixel
        guard let src = region.baseAddress, let dst = out.baseAddress, width > 0, height > 0 else { return }

        @inline(__always)
        func convert(_ pixel: (UnsafePointer<UInt8>) -> (UInt8, UInt8, UInt8)) {
            for r in 0..<height {
                let o = dst + (y + r) * size + x
                var p = src + r * width * bpp
                for i in 0..<width {
                    let rgb = pixel(p)
                    o[i] = rgb.0
                    o[plane + i] = rgb.1
                    o[2 * plane + i] = rgb.2
                    p += bpp
                }
            }
        }

        switch image.mode {
        case .bilevel:
            convert { p in let v: UInt8 = p[0] != 0 ? 255 : 0; return (v, v, v) }
        case .L, .LA:
            convert { p in (p[0], p[0], p[0]) }
        case .P:
            image.palette.withUnsafeBufferPointer { palette in
                convert { p in let i = Int(p[0]) * 3; return (palette[i], palette[i + 1], palette[i + 2]) }
            }
        case .RGB, .RGBA:
            convert { p in (p[0], p[1], p[2]) }
        case .CMYK:
            convert { p in cmykToRGB(p[0], p[1], p[2], p[3]) }
        case .I16:
            // I16_RGB: values above 255 clamp.
            convert { p in let v = p[1] == 0 ? p[0] : 255; return (v, v, v) }
        }
    }

    /// The RGB colour of a pixel filled with `value` in every channel of the image's mode (torchvision's pad fill).
    static func fillRGB(_ image: DecodedImage, _ value: UInt8) -> [UInt8] {
        let pixel = DecodedImage(
            width: 1, height: 1, mode: image.mode,
            pixels: image.mode == .I16 ? [value, 0] : [UInt8](repeating: value, count: image.mode.bytesPerPixel),
            palette: image.palette.isEmpty ? [UInt8](repeating: 0, count: 768) : image.palette)
        var out = [UInt8](repeating: 0, count: 3)
        pixel.pixels.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                writeRGB(pixel, region: src, width: 1, height: 1, into: dst, size: 1, x: 0, y: 0)
            }
        }
        return out
    }

    /// transformers' `convert_to_rgb`: images with alpha or a tRNS colour are converted to RGBA and composited over
    /// opaque white (`Image.alpha_composite`); others go through `convert("RGB")`.
    static func huggingFaceRGB(_ image: DecodedImage) -> DecodedImage {
        let n = image.width * image.height
        if image.mode == .RGB && image.transparentColor == nil { return image }
        var rgb = [UInt8](repeating: 0, count: n * 3)
        let hasAlpha =
            image.mode == .LA || image.mode == .RGBA || image.paletteAlpha != nil
            || (image.transparentColor != nil && (image.mode == .L || image.mode == .RGB))
        image.pixels.withUnsafeBufferPointer { src in
            rgb.withUnsafeMutableBufferPointer { dst in
                // Plain conversion first (drops alpha), reusing the planar writer one row at a time.
                var row = [UInt8](repeating: 0, count: image.width * 3)
                let bpp = image.mode.bytesPerPixel
                for y in 0..<image.height {
                    let slice = UnsafeBufferPointer(rebasing: src[(y * image.width * bpp)..<((y + 1) * image.width * bpp)])
                    row.withUnsafeMutableBufferPointer { planar in
                        writeRGB(
                            image, region: slice, width: image.width, height: 1, into: planar, size: image.width,
                            x: 0, y: 0, plane: image.width)
                    }
                    for x in 0..<image.width {
                        dst[(y * image.width + x) * 3] = row[x]
                        dst[(y * image.width + x) * 3 + 1] = row[x + image.width]
                        dst[(y * image.width + x) * 3 + 2] = row[x + 2 * image.width]
                    }
                }
                guard hasAlpha else { return }
                for i in 0..<n {
                    let alpha: UInt32
                    switch image.mode {
                    case .LA: alpha = UInt32(src[2 * i + 1])
                    case .RGBA: alpha = UInt32(src[4 * i + 3])
                    case .P: alpha = UInt32(image.paletteAlpha?[Int(src[i])] ?? 255)
                    case .L:
                        alpha = Int(src[i]) == image.transparentColor?[0] ? 0 : 255
                    case .RGB:
                        let key = image.transparentColor ?? []
                        alpha = key.count == 3 && Int(src[3 * i]) == key[0] && Int(src[3 * i + 1]) == key[1]
                            && Int(src[3 * i + 2]) == key[2] ? 0 : 255
                    default: alpha = 255
                    }
                    for c in 0..<3 { dst[3 * i + c] = compositeOverWhite(UInt32(dst[3 * i + c]), alpha) }
                }
            }
        }
        return DecodedImage(width: image.width, height: image.height, mode: .RGB, pixels: rgb)
    }

    /// `ImagingAlphaComposite` with an opaque white destination, 7 bits of extra precision.
    @inline(__always)
    static func compositeOverWhite(_ value: UInt32, _ alpha: UInt32) -> UInt8 {
        if alpha == 0 { return 255 }
        let precision: UInt32 = 7
        let blend = 255 * (255 - alpha)
        let outA255 = alpha * 255 + blend
        let coef1 = alpha * 255 * 255 * (1 << precision) / outA255
        let coef2 = 255 * (1 << precision) - coef1
        let tmp = value * coef1 + 255 * coef2 + (0x80 << precision)
        return UInt8(truncatingIfNeeded: (((tmp >> 8) + tmp) >> 8) >> precision)
    }
}
