import Foundation
import InferenceRuntime
import ServiceLifecycle

#if canImport(Glibc)
import Glibc
#endif

/// Reads the gauges once a second (queue depth; GPU utilisation and memory from the runtime's telemetry, else the
/// process's CPU utilisation) into the status recorder. A service of the app's group: it sleeps on the recorder's
/// clock between readings and ends at graceful shutdown.
struct StatusSampler: Service {
    let recorder: StatusRecorder
    /// Images waiting for a batch, now.
    let queueDepth: @Sendable () -> Int
    /// NVML readings (nil on the CPU: the process's CPU time is used instead).
    let telemetry: (any DeviceTelemetry)?

    func run() async throws {
        try? await cancelWhenGracefulShutdown {
            var cpu = CPUUtilization(at: recorder.uptime)
            while !Task.isCancelled {
                _ = try await recorder.sleepUntilNextSecond()
                recorder.recordGauges(read(&cpu))
            }
        }
    }

    /// One reading of every gauge.
    func read(_ cpu: inout CPUUtilization) -> StatusGauges {
        let cpuFraction = cpu.next(at: recorder.uptime)
        if let devices = telemetry?.samples(), !devices.isEmpty {
            let utilization = devices.compactMap(\.utilization)
            let memory = devices.compactMap(\.memoryUsedBytes)
            return StatusGauges(
                queueDepth: queueDepth(),
                utilization: utilization.isEmpty ? nil : utilization.reduce(0, +) / Double(utilization.count),
                memoryUsedBytes: memory.isEmpty ? nil : memory.reduce(0, +))
        }
        return StatusGauges(queueDepth: queueDepth(), utilization: cpuFraction)
    }
}

/// The process's CPU time between two readings as a fraction of every core it may use (0...1).
struct CPUUtilization {
    private var lastCPUSeconds: Double
    private var lastWallSeconds: Double
    /// Cores the fraction is taken of.
    static let cores = max(1, ProcessInfo.processInfo.activeProcessorCount)

    /// Starts measuring at `wallSeconds`.
    init(at wallSeconds: Double) {
        lastCPUSeconds = Self.processCPUSeconds()
        lastWallSeconds = wallSeconds
    }

    /// The fraction since the previous reading, with `wallSeconds` the time now (nil if no time passed).
    mutating func next(at wallSeconds: Double) -> Double? {
        let cpuSeconds = Self.processCPUSeconds()
        defer {
            lastCPUSeconds = cpuSeconds
            lastWallSeconds = wallSeconds
        }
        guard wallSeconds > lastWallSeconds else { return nil }
        let fraction = (cpuSeconds - lastCPUSeconds) / (wallSeconds - lastWallSeconds) / Double(Self.cores)
        return min(max(fraction, 0), 1)
    }

    /// User + system time of every thread of the process.
    static func processCPUSeconds() -> Double {
        var time = timespec()
        guard clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &time) == 0 else { return 0 }
        return Double(time.tv_sec) + Double(time.tv_nsec) * 1e-9
    }
}
