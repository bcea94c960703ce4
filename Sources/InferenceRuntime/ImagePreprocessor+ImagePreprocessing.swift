import ImageProcessing

extension ImagePreprocessor: ImagePreprocessing {
    /// open_clip's preprocessing of one encoded image.
    public func pixels(from bytes: [UInt8]) throws -> [Float] {
        try process(bytes)
    }
}
