import ArgumentParser
import Foundation
import ImageProcessing
import InferenceCore

/// `clipserve bench preprocess`: decode + preprocess throughput over a folder of images.
struct BenchPreprocessCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "preprocess",
        abstract: "Measure image decode + preprocessing throughput (images/s) on the files of a folder."
    )

    @Option(name: .long, help: "Folder of JPEG, PNG and WebP files (read into memory before timing).")
    var images: String

    @Option(name: .long, help: "Seconds to run (after a one-pass warm-up).")
    var seconds: Double = 5

    @Option(name: .long, help: "Worker threads, each preprocessing images one at a time.")
    var threads: Int = 1

    @Option(name: .long, help: "Output side in pixels.")
    var size: Int = 224

    @Option(name: .long, help: "Resize mode: shortest, longest or squash.")
    var resizeMode: String = "shortest"

    @Flag(name: .long, help: "Print one JSON object instead of text.")
    var json = false

    func run() async throws {
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
        guard seconds > 0 else { throw ValidationError("--seconds must be positive") }
        guard let mode = ResizeMode(rawValue: resizeMode) else {
            throw ValidationError("--resize-mode must be shortest, longest or squash")
        }
        let files = try Self.loadImages(in: images)
        guard !files.isEmpty else { throw ValidationError("no JPEG, PNG or WebP files in \(images)") }
        let preprocessor = ImagePreprocessor(config: PreprocessConfig(size: size, resizeMode: mode))

        // Warm-up pass, which also finds files that cannot be preprocessed (they are skipped, and counted).
        var usable: [[UInt8]] = []
        var rejected: [String] = []
        for (name, bytes) in files {
            do {
                _ = try preprocessor.process(bytes)
                usable.append(bytes)
            } catch {
                rejected.append("\(name): \(error)")
            }
        }
        guard !usable.isEmpty else { throw ValidationError("no file could be preprocessed: \(rejected)") }

        let result = await Self.measure(
            preprocessor, inputs: usable, threads: threads, duration: Duration.seconds(seconds))
        let imagesPerSecond = Double(result.count) / result.elapsed
        let cpuMilliseconds = 1000 * result.cpuSeconds / Double(result.count)
        if json {
            let object: [String: Any] = [
                "images_per_second": imagesPerSecond, "images": result.count, "seconds": result.elapsed,
                "threads": threads, "files": usable.count, "rejected": rejected.count, "size": size,
                "resize_mode": resizeMode, "ms_per_image_per_thread": 1000 * result.elapsed * Double(threads) / Double(result.count),
                "cpu_ms_per_image": cpuMilliseconds, "images_per_cpu_second": 1000 / cpuMilliseconds,
            ]
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            print("files: \(usable.count) (\(rejected.count) rejected), threads: \(threads), size: \(size), mode: \(resizeMode)")
            for line in rejected { print("  rejected \(line)") }
            print(String(format: "%.1f images/s (%d images in %.2f s, %.3f ms/image/thread); CPU %.3f ms/image = %.1f images/CPU-s",
                imagesPerSecond, result.count, result.elapsed, 1000 * result.elapsed * Double(threads) / Double(result.count),
                cpuMilliseconds, 1000 / cpuMilliseconds))
        }
    }

    /// Reads every regular file in `path` whose bytes look like JPEG, PNG or WebP.
    static func loadImages(in path: String) throws -> [(String, [UInt8])] {
        let url = URL(fileURLWithPath: path)
        let names = try FileManager.default.contentsOfDirectory(atPath: path).sorted()
        var files: [(String, [UInt8])] = []
        for name in names {
            let fileURL = url.appendingPathComponent(name)
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: fileURL.path, isDirectory: &isDirectory), !isDirectory.boolValue
            else { continue }
            let bytes = try [UInt8](Data(contentsOf: fileURL))
            if bytes.withUnsafeBytes({ ImageFormat.sniff($0) }) != nil { files.append((name, bytes)) }
        }
        return files
    }

    /// Runs `threads` dedicated threads, each cycling through `inputs` until `duration` has passed.
    static func measure(
        _ preprocessor: ImagePreprocessor, inputs: [[UInt8]], threads: Int, duration: Duration
    ) async -> (count: Int, elapsed: Double, cpuSeconds: Double) {
        let clock = ContinuousClock()
        let start = clock.now
        let deadline = start.advanced(by: duration)
        let totals = await withTaskGroup(of: (Int, Double).self) { group in
            for worker in 0..<threads {
                group.addTask {
                    await withCheckedContinuation { (continuation: CheckedContinuation<(Int, Double), Never>) in
                        // Preprocessing blocks, so it runs on its own thread rather than the cooperative pool.
                        let thread = Thread {
                            let cpuStart = Self.threadCPUSeconds()
                            var output = [Float](repeating: 0, count: preprocessor.outputCount)
                            var done = 0
                            var index = worker % inputs.count
                            while clock.now < deadline {
                                inputs[index].withUnsafeBytes { raw in
                                    output.withUnsafeMutableBufferPointer { out in
                                        do throws(ImageError) { try preprocessor.process(raw, into: out) } catch {}
                                    }
                                }
                                done += 1
                                index = (index + 1) % inputs.count
                            }
                            continuation.resume(returning: (done, Self.threadCPUSeconds() - cpuStart))
                        }
                        thread.start()
                    }
                }
            }
            var total = (0, 0.0)
            for await (count, cpu) in group { total = (total.0 + count, total.1 + cpu) }
            return total
        }
        let elapsed = start.duration(to: clock.now)
        return (totals.0, Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18, totals.1)
    }

    /// CPU time of the calling thread: on a shared machine, the fair single-thread comparison.
    static func threadCPUSeconds() -> Double {
        var spec = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &spec)
        return Double(spec.tv_sec) + Double(spec.tv_nsec) * 1e-9
    }
}
