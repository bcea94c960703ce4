import Foundation
import InferenceCore
import SafeTensors
import Testing

/// A fresh path under the temporary directory; the file is removed when the test's scope ends.
final class TemporaryFile {
    let url: URL
    init(_ suffix: String = ".safetensors") {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("st-\(UUID().uuidString)\(suffix)")
    }
    func write(_ data: Data) throws { try data.write(to: url) }
    deinit { try? FileManager.default.removeItem(at: url) }
}

/// A file with a hand-written header (for lying about lengths and offsets).
func rawFile(header: String, data: [UInt8] = [], declaredLength: UInt64? = nil) -> Data {
    var out = Data()
    let json = Data(header.utf8)
    withUnsafeBytes(of: (declaredLength ?? UInt64(json.count)).littleEndian) { out.append(contentsOf: $0) }
    out.append(json)
    out.append(contentsOf: data)
    return out
}

func sampleWriter() -> SafeTensorsWriter {
    var writer = SafeTensorsWriter()
    writer.metadata = ["format": "pt", "note": "test"]
    writer.add("a.f32", shape: [2, 3], values: [1, -2, 3.5, 0, 1e-3, -7])
    writer.add("b.f16", shape: [4], values: [0.5, -1, 65504, 0.099975586], dtype: .f16)
    writer.add("c.bf16", shape: [2, 2], values: [1, -0.5, 256, 3.140625], dtype: .bf16)
    writer.add("d.i64", dtypeName: "I64", shape: [2], bytes: [1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0])
    writer.add("e.empty", shape: [0, 5], values: [])
    return writer
}

@Suite("SafeTensorsFile")
struct SafeTensorsFileTests {
    @Test func roundTripsEveryLoadableDType() throws {
        let file = TemporaryFile()
        try sampleWriter().write(to: file.url)
        let st = try SafeTensorsFile(url: file.url)
        #expect(st.names == ["a.f32", "b.f16", "c.bf16", "d.i64", "e.empty"])
        #expect(st.metadata == ["format": "pt", "note": "test"])
        #expect(try st.tensor("a.f32").floats() == [1, -2, 3.5, 0, 1e-3, -7])
        #expect(try st.tensor("a.f32").shape == [2, 3])
        #expect(try st.tensor("b.f16").floats() == [0.5, -1, 65504, 0.099975586])
        #expect(try st.tensor("b.f16").dtype == .f16)
        #expect(try st.tensor("c.bf16").floats() == [1, -0.5, 256, 3.140625])
        #expect(try st.tensor("e.empty").elementCount == 0)
        let info = try #require(st.info("d.i64"))
        #expect(info.dtypeName == "I64" && info.dtype == nil && info.shape == [2] && info.byteCount == 16)
    }

    @Test func tensorsAreViewsOfTheMapping() throws {
        let file = TemporaryFile()
        try sampleWriter().write(to: file.url)
        let tensor: TensorData
        do {
            let st = try SafeTensorsFile(url: file.url)
            tensor = try st.tensor("a.f32")
            let again = try st.tensor("a.f32")
            #expect(tensor.bytes.baseAddress == again.bytes.baseAddress)
            let ownedByFile = ObjectIdentifier(tensor.owner) == ObjectIdentifier(st)
            #expect(ownedByFile)
            let raw = try st.rawBytes("a.f32")
            #expect(raw.baseAddress == tensor.bytes.baseAddress)
        }
        // The view keeps the mapping alive after the file object's last named reference is gone.
        #expect(tensor.floats() == [1, -2, 3.5, 0, 1e-3, -7])
    }

    @Test func unsupportedDTypeIsListedButNotLoadable() throws {
        let file = TemporaryFile()
        try sampleWriter().write(to: file.url)
        let st = try SafeTensorsFile(url: file.url)
        #expect(st.contains("d.i64"))
        #expect(throws: SafeTensorsError.unsupportedDType(path: file.url.path, tensor: "d.i64", dtype: "I64")) {
            try st.tensor("d.i64")
        }
        let message = describeError { try st.tensor("d.i64") }
        #expect(message.contains("d.i64") && message.contains("I64") && message.contains(file.url.path))
    }

    @Test func missingTensorNamesFileAndTensor() throws {
        let file = TemporaryFile()
        try sampleWriter().write(to: file.url)
        let st = try SafeTensorsFile(url: file.url)
        #expect(throws: SafeTensorsError.tensorNotFound(path: file.url.path, tensor: "nope")) { try st.tensor("nope") }
    }

    @Test func missingFileAndDirectoryAreOpenErrors() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("absent-\(UUID()).safetensors").path
        let error = try #require(openError(path))
        guard case .cannotOpen(let p, _) = error else { Issue.record("got \(error)"); return }
        #expect(p == path)
        let dir = try #require(openError(FileManager.default.temporaryDirectory.path))
        guard case .cannotOpen = dir else { Issue.record("got \(dir)"); return }
    }

    @Test func everyTruncationIsAnErrorNotACrash() throws {
        let full = sampleWriter().data()
        let file = TemporaryFile()
        for length in 0..<full.count {
            try file.write(full.prefix(length))
            let error = openError(file.url.path)
            #expect(error != nil, "truncated to \(length) of \(full.count) bytes opened without error")
            if let error, length < 8 + 8 {
                guard case .truncated = error else { Issue.record("length \(length): \(error)"); continue }
            }
        }
        try file.write(full)
        #expect(openError(file.url.path) == nil)
    }

    @Test func corruptedHeaderBytesNeverCrash() throws {
        let full = sampleWriter().data()
        let headerLength = Int(full.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        let file = TemporaryFile()
        var opened = 0
        for position in 0..<(8 + headerLength) {
            for replacement: UInt8 in [0x00, 0xFF, UInt8(ascii: "}"), UInt8(ascii: "\""), UInt8(ascii: "9")] {
                var corrupt = full
                corrupt[position] = replacement
                try file.write(corrupt)
                if let st = try? SafeTensorsFile(url: file.url) {
                    opened += 1
                    // Whatever survived must still be readable within the file.
                    for name in st.names where st.info(name)?.dtype != nil { _ = try st.tensor(name).floats() }
                }
            }
        }
        #expect(opened < (8 + headerLength) * 5)
    }

    @Test(arguments: [
        ("header length beyond the limit", rawFile(header: "{}", declaredLength: 1 << 40), "exceeds"),
        ("header length beyond the file", rawFile(header: "{}", declaredLength: 4096), "truncated"),
        ("header length too short for the JSON", rawFile(header: #"{"a":{"dtype":"F32","shape":[],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0], declaredLength: 20), "JSON"),
        ("not an object", rawFile(header: "[1, 2, 3]"), "'{'"),
        ("not JSON", rawFile(header: "{not json}"), "JSON"),
        ("shape disagrees with offsets", rawFile(header: #"{"t":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, data: Array(repeating: 0, count: 8)), "needs 12 bytes"),
        ("offsets past the data", rawFile(header: #"{"t":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#, data: Array(repeating: 0, count: 8)), "past the end"),
        ("reversed offsets", rawFile(header: #"{"t":{"dtype":"F32","shape":[0],"data_offsets":[8,4]}}"#, data: Array(repeating: 0, count: 8)), "not ordered"),
        ("overlapping tensors", rawFile(header: #"{"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"u":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#, data: Array(repeating: 0, count: 12)), "overlap"),
        ("negative dimension", rawFile(header: #"{"t":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0]), "negative"),
        ("fractional dimension", rawFile(header: #"{"t":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0]), "non-integer"),
        ("huge shape overflows", rawFile(header: #"{"t":{"dtype":"F32","shape":[4611686018427387904,4611686018427387904],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0]), "overflow"),
        ("unknown dtype", rawFile(header: #"{"t":{"dtype":"Q4","shape":[1],"data_offsets":[0,1]}}"#, data: [0]), "unknown dtype"),
        ("missing dtype", rawFile(header: #"{"t":{"shape":[1],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0]), "dtype"),
        ("entry not an object", rawFile(header: #"{"t":[1,2]}"#), "not a JSON object"),
        ("metadata not strings", rawFile(header: #"{"__metadata__":{"a":1}}"#), "__metadata__"),
        ("offsets not a pair", rawFile(header: #"{"t":{"dtype":"F32","shape":[1],"data_offsets":[0]}}"#, data: [0, 0, 0, 0]), "data_offsets"),
    ])
    func lyingHeadersAreRejected(_ label: String, _ data: Data, _ expected: String) throws {
        let file = TemporaryFile()
        try file.write(data)
        let error = try #require(openError(file.url.path), "\(label): opened without error")
        #expect(error.description.contains(expected), "\(label): \(error)")
        #expect(error.description.contains(file.url.path), "\(label): \(error)")
    }

    @Test func entryErrorsNameTheTensor() throws {
        let file = TemporaryFile()
        try file.write(rawFile(header: #"{"visual.proj":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, data: Array(repeating: 0, count: 8)))
        let error = try #require(openError(file.url.path))
        #expect(error.description.contains("'visual.proj'"))
    }

    @Test func unalignedDataStillReadsCorrectly() throws {
        // A 3-byte header shifts the data to offset 11: views are unaligned, reads must not trap.
        let value: Float = 1.25
        var bytes: [UInt8] = []
        withUnsafeBytes(of: value.bitPattern.littleEndian) { bytes.append(contentsOf: $0) }
        let header = #"{"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#
        let file = TemporaryFile()
        try file.write(rawFile(header: header + " ", data: bytes))
        let st = try SafeTensorsFile(url: file.url)
        #expect(try st.tensor("t").floats() == [1.25])
        #expect(try st.tensor("t").withFloats { Array($0) } == [1.25])
    }
}

func openError(_ path: String) -> SafeTensorsError? {
    do {
        _ = try SafeTensorsFile(path: path)
        return nil
    } catch let error as SafeTensorsError {
        return error
    } catch {
        Issue.record("unexpected error type \(error)")
        return nil
    }
}

func describeError<T>(_ body: () throws -> T) -> String {
    do {
        _ = try body()
        return ""
    } catch {
        return "\(error)"
    }
}
