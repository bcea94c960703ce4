import InferenceCore
import SafeTensors

/// Reads tensors of one checkpoint under a name prefix, checking each shape (candle's `vs.pp`).
struct WeightReader {
    let file: SafeTensorsFile
    let prefix: String

    /// A reader whose names are prefixed with `component.`.
    func scoped(_ component: String) -> WeightReader {
        WeightReader(file: file, prefix: prefix + component + ".")
    }

    /// Tensor `prefix + name`, which must have exactly `shape`.
    func callAsFunction(_ name: String, _ shape: [Int]) throws -> TensorData {
        let full = prefix + name
        guard let info = file.info(full) else {
            throw ModelLoadError.missingTensor(file: file.path, tensor: full, expectedShape: shape)
        }
        guard info.shape == shape else {
            throw ModelLoadError.shapeMismatch(file: file.path, tensor: full, expected: shape, found: info.shape)
        }
        do {
            return try file.tensor(full)
        } catch let error as SafeTensorsError {
            throw ModelLoadError.checkpoint(error)
        }
    }
}
