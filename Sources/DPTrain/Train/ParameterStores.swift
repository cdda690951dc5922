import Foundation

/// How the update writes new parameters that other cores read in the next forward pass (the
/// worker threads of a rank, or the ranks of a machine sharing one copy):
/// - `cached`: plain stores. Each first takes its line from the caches of the cores that read it
///   in this step's forward pass, and leaves the new values in this core's cache;
/// - `streamed`: non-temporal stores (`Optimizer.updateStreaming`), which go to memory without
///   taking the lines from anyone; the next forward pass reads them from memory;
/// - `measured` (the default): whichever `ParameterStoreChooser` finds faster.
/// Which is faster depends on the machine and on what else runs on it: on one host it changed
/// from hour to hour (docs/PERFORMANCE.md). The values are the same bit for bit either way. DPTRAIN_PARAMETER_STORES sets it, for benchmarks.
public enum ParameterStores: String, Sendable, CaseIterable {
    case measured, cached, streamed

    /// DPTRAIN_PARAMETER_STORES, or `measured`; a value that is none of them is named in `warning`.
    public static func fromEnvironment() -> (stores: ParameterStores, warning: String?) {
        guard let asked = ProcessInfo.processInfo.environment["DPTRAIN_PARAMETER_STORES"] else {
            return (.measured, nil)
        }
        if let stores = ParameterStores(rawValue: asked) { return (stores, nil) }
        let names = allCases.map(\.rawValue).joined(separator: ", ")
        return (.measured, "warning: DPTRAIN_PARAMETER_STORES=\(asked) is not one of \(names): using measured")
    }
}

/// Decides, step by step, whether the update streams the new parameters (`ParameterStores`).
/// Measured: from step `firstTrial` of every `period` steps, a trial of `trialSteps` steps
/// alternates cached (even steps) and streamed (odd steps); each update's cycle, from its start to
/// the next update's start, holds its stores and the forward and backward pass that read them. The
/// one with the shorter median cycle is kept until the next trial, by every rank that `agree`s
/// (the ranks sharing one copy of the parameters vote, and stream only if all found it faster).
/// `agree` is called at the same steps whatever the stores, so ranks set differently still meet.
struct ParameterStoreChooser {
    static let period = 2000, firstTrial = 10, trialSteps = 40

    let stores: ParameterStores
    /// What updates outside a trial do: the last trial's verdict, or what `stores` forces.
    private(set) var streaming: Bool
    /// The trial's cycles so far: cached, streamed.
    private var cycles: [[Double]] = [[], []]
    private var lastUpdate: (step: Int, started: Double, streamed: Bool)?

    init(_ stores: ParameterStores) {
        self.stores = stores
        streaming = stores == .streamed
    }

    /// Step `step`'s update starts at `time` (seconds): returns whether it streams. `agree` is
    /// called once, with this rank's verdict, at the step after each trial, and returns the verdict
    /// all agreed on.
    mutating func updateStarts(step: Int, at time: Double, agree: (Bool) -> Bool) -> Bool {
        if let last = lastUpdate, last.step == step - 1, Self.inTrial(last.step) {
            cycles[last.streamed ? 1 : 0].append(time - last.started)
        }
        if step % Self.period == Self.firstTrial + Self.trialSteps {
            let measuredBoth = !cycles[0].isEmpty && !cycles[1].isEmpty
            let verdict = agree(measuredBoth && Benchmark.median(cycles[1]) < Benchmark.median(cycles[0]))
            if stores == .measured { streaming = verdict }
            cycles = [[], []]
        }
        let streams = stores == .measured && Self.inTrial(step) ? step % 2 == 1 : streaming
        lastUpdate = (step, time, streams)
        return streams
    }

    static func inTrial(_ step: Int) -> Bool {
        (firstTrial..<firstTrial + trialSteps).contains(step % period)
    }
}
