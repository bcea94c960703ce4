import ImageProcessing

extension ImagePreprocessor: ImagePreprocessing {
    /// open_clip's preprocessing of one encoded image, up to (not including) ToTensor and Normalize.
    public func pixelBytes(from bytes: [UInt8]) throws -> [UInt8] {
        try unnormalizedPixels(bytes)
    }
}
