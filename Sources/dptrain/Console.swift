import DPTrain
import Foundation
import Logging

/// Human output: swift-log with the rank in every line (when there is more than one), to stderr,
/// and a Keras-style progress bar when stderr is a terminal.
struct RankLogHandler: LogHandler {
    let rank: Int
    let worldSize: Int
    var logLevel: Logger.Level
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let prefix = (worldSize > 1 ? "[rank \(rank)] " : "") + (event.level >= .warning ? "\(event.level): " : "")
        let text = event.message.description.split(separator: "\n", omittingEmptySubsequences: false).map {
            prefix + $0
        }.joined(separator: "\n")
        FileHandle.standardError.write(Data((text + "\n").utf8))
    }
}

enum Console {
    /// A logger for this rank: rank 0 at `level`, the others at warning unless `level` is more
    /// detailed than info (then every rank logs).
    static func logger(rank: Int, worldSize: Int, level: Logger.Level) -> Logger {
        let effective = rank == 0 || level < .info ? level : .warning
        return Logger(label: "dptrain") { _ in RankLogHandler(rank: rank, worldSize: worldSize, logLevel: effective) }
    }

    /// Whether what rank 0 writes to stderr reaches a terminal: stderr is one, or the launcher
    /// (Launch/mpirun.sh, whose stderr is one) says so, since mpirun gives the ranks pipes.
    static var stderrIsTerminal: Bool {
        isatty(STDERR_FILENO) == 1 || ProcessInfo.processInfo.environment["DPTRAIN_STDERR_IS_TERMINAL"] == "1"
    }
}

/// `  123/1875 [====>.........] 2s ETA 5s - loss 0.2931 - accuracy 0.9150 - 61234 samples/s`,
/// redrawn in place at most ten times a second; cleared before the epoch line is printed.
final class ProgressBar {
    private var lastDraw = 0.0
    private let stepsPerEpoch: Int
    private var drawn = false

    init(stepsPerEpoch: Int) { self.stepsPerEpoch = stepsPerEpoch }

    func update(_ p: TrainingPosition, elapsed: Double) {
        guard elapsed - lastDraw >= 0.1 || p.stepInEpoch == stepsPerEpoch else { return }
        lastDraw = elapsed
        let done = Double(p.stepInEpoch) / Double(stepsPerEpoch)
        let width = 30, filled = Int(done * Double(width))
        let bar =
            String(repeating: "=", count: filled)
            + (filled < width ? ">" + String(repeating: ".", count: width - filled - 1) : "")
        let samples = Double(max(p.epochSamples, 1))
        let eta = done > 0 ? elapsed / done - elapsed : 0
        let line = String(
            format: "\r%6d/%d [%@] %.0fs ETA %.0fs - loss %.4f - accuracy %.4f - %.0f samples/s\u{1B}[K",
            p.stepInEpoch, stepsPerEpoch, bar, elapsed, eta, p.epochLossSum / samples, p.epochCorrect / samples,
            Double(p.epochSamples) / max(elapsed, 1e-9))
        FileHandle.standardError.write(Data(line.utf8))
        drawn = true
    }

    /// Erases the bar so the next line starts clean.
    func clear() {
        if drawn { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
        drawn = false
        lastDraw = 0
    }
}
