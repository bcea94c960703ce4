/// Decoded pixels in the mode Pillow's `Image.open` gives for the same file.
public struct DecodedImage: Sendable {
    /// Pillow image modes clipserve meets when decoding JPEG, PNG and WebP.
    public enum Mode: String, Sendable, Hashable {
        /// 1-bit, stored one byte per pixel as 0 or 255.
        case bilevel = "1"
        case L
        case LA
        /// Palette indices; `palette` holds the colours.
        case P
        case RGB
        case RGBA
        /// Pillow's inverted ("Adobe") CMYK, as `JpegImagePlugin` reads it with rawmode `CMYK;I`.
        case CMYK
        /// 16-bit unsigned gray, two bytes per pixel, little-endian.
        case I16 = "I;16"

        /// Bytes per pixel in `pixels`.
        public var bytesPerPixel: Int {
            switch self {
            case .bilevel, .L, .P: 1
            case .LA, .I16: 2
            case .RGB: 3
            case .RGBA, .CMYK: 4
            }
        }
    }

    /// Width in pixels.
    public var width: Int
    /// Height in pixels.
    public var height: Int
    /// Pixel layout of `pixels`.
    public var mode: Mode
    /// Row-major, channel-interleaved, `width * mode.bytesPerPixel` bytes a row.
    public var pixels: [UInt8]
    /// Mode P: 256 RGB triples (entries the file does not define are zero).
    public var palette: [UInt8]
    /// Mode P with a tRNS chunk: 256 alpha values (255 past the chunk's end); nil without tRNS.
    public var paletteAlpha: [UInt8]?
    /// Modes L and RGB with a tRNS chunk: the fully transparent colour (Pillow's `info["transparency"]`).
    public var transparentColor: [Int]?

    public init(
        width: Int, height: Int, mode: Mode, pixels: [UInt8], palette: [UInt8] = [],
        paletteAlpha: [UInt8]? = nil, transparentColor: [Int]? = nil
    ) {
        self.width = width
        self.height = height
        self.mode = mode
        self.pixels = pixels
        self.palette = palette
        self.paletteAlpha = paletteAlpha
        self.transparentColor = transparentColor
    }
}
