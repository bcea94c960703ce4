/// Why an image could not be turned into model input.
public enum ImageError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The request carried no bytes.
    case empty
    /// The bytes start with none of the JPEG, PNG or WebP signatures.
    case unknownFormat(prefix: [UInt8])
    /// The data ends before the image does (Pillow refuses these unless `LOAD_TRUNCATED_IMAGES`).
    case truncated(format: ImageFormat, detail: String)
    /// The codec rejected the data.
    case corrupt(format: ImageFormat, detail: String)
    /// A valid file using a feature clipserve does not decode (animation, unusual channel counts).
    case unsupported(format: ImageFormat, detail: String)
    /// The header declares a width or height of zero.
    case zeroSize(format: ImageFormat, width: Int, height: Int)
    /// The header declares more pixels than allowed; refused before any pixel memory is allocated.
    case tooLarge(format: ImageFormat, width: Int, height: Int, limit: Int)
    /// Fitting the image to the square would make a side zero pixels long (Pillow raises for this too).
    case degenerateResize(width: Int, height: Int, resizedWidth: Int, resizedHeight: Int)
    /// The caller's output buffer has the wrong number of floats.
    case outputSize(expected: Int, got: Int)
    /// The preprocessing configuration cannot be honoured.
    case invalidConfig(String)

    public var description: String {
        switch self {
        case .empty:
            return "image is empty (0 bytes)"
        case .unknownFormat(let prefix):
            let hex = prefix.prefix(8).map { ($0 < 16 ? "0" : "") + String($0, radix: 16, uppercase: true) }.joined(separator: " ")
            return "unknown image format (first bytes: \(hex)); expected JPEG, PNG or WebP"
        case .truncated(let format, let detail):
            return "truncated \(format) image: \(detail)"
        case .corrupt(let format, let detail):
            return "corrupt \(format) image: \(detail)"
        case .unsupported(let format, let detail):
            return "unsupported \(format) image: \(detail)"
        case .zeroSize(let format, let width, let height):
            return "\(format) image has zero size (\(width)x\(height))"
        case .tooLarge(let format, let width, let height, let limit):
            let (pixels, overflow) = width.multipliedReportingOverflow(by: height)
            let count = overflow ? "more than \(Int.max)" : "\(pixels)"
            return "\(format) image is \(width)x\(height) = \(count) pixels, over the limit of \(limit)"
        case .degenerateResize(let width, let height, let resizedWidth, let resizedHeight):
            return "a \(width)x\(height) image would be resized to \(resizedWidth)x\(resizedHeight); both sides must be at least 1"
        case .outputSize(let expected, let got):
            return "output buffer holds \(got) floats, preprocessing writes \(expected)"
        case .invalidConfig(let detail):
            return "invalid preprocessing configuration: \(detail)"
        }
    }
}
