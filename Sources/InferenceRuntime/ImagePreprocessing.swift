/// Turns one encoded image into the model's normalised input, `3 × S × S` floats; runs on the preprocessing pool.
public protocol ImagePreprocessing: Sendable {
    /// Decodes and preprocesses `bytes`; the error's description is shown to the client.
    func pixels(from bytes: [UInt8]) throws -> [Float]
}
