import InferenceCore

/// Turns one encoded image into the model's input, runs on the preprocessing pool.
public protocol ImagePreprocessing: Sendable {
    /// Decodes and preprocesses `bytes` into `3 × S × S` RGB bytes, planar, before `ToTensor`'s division by 255;
    /// the error's description is shown to the client.
    func pixelBytes(from bytes: [UInt8]) throws -> [UInt8]
    /// What turns those bytes into the model's normalised input.
    var normalization: PixelNormalization { get }
}
