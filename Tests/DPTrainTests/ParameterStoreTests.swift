@testable import DPTrain
import Testing

@Suite("Parameter stores")
struct ParameterStoreTests {
    typealias Chooser = ParameterStoreChooser

    /// Runs `steps` updates from `first`, each cycle lasting `cycle(step, streamed)` seconds;
    /// returns whether each streamed, and the steps at which `agree` was asked (and what).
    static func drive(
        _ chooser: inout Chooser, steps: Range<Int>, agree: (Bool) -> Bool = { $0 },
        cycle: (Int, Bool) -> Double
    ) -> (streamed: [Bool], asked: [(step: Int, verdict: Bool)]) {
        var (time, streamed, asked) = (0.0, [Bool](), [(step: Int, verdict: Bool)]())
        for step in steps {
            let streams = chooser.updateStarts(step: step, at: time) { verdict in
                asked.append((step, verdict))
                return agree(verdict)
            }
            streamed.append(streams)
            time += cycle(step, streams)
        }
        return (streamed, asked)
    }

    /// Until the first trial, updates store as usual; the trial alternates, cached first; after
    /// it, the faster one stays, and the next period's trial measures again (here the other way).
    @Test func theTrialAlternatesAndTheFasterStays() {
        var chooser = Chooser(.measured)
        let (first, end) = (Chooser.firstTrial, Chooser.firstTrial + Chooser.trialSteps)
        let run = Self.drive(&chooser, steps: 0..<Chooser.period + end + 5) { step, streamed in
            // Streaming is faster in the first period, slower in the second; with noise that
            // the medians see through (one cycle in ten three times as long).
            let base = step % 10 == 3 ? 3e-3 : 1e-3
            return streamed == (step < Chooser.period) ? base * 0.8 : base
        }
        #expect(run.streamed[0..<first].allSatisfy { !$0 })
        for step in first..<end { #expect(run.streamed[step] == (step % 2 == 1), "step \(step) of the trial") }
        #expect(run.streamed[end..<Chooser.period + first].allSatisfy { $0 }, "streaming measured faster")
        #expect(run.streamed[(Chooser.period + end)...].allSatisfy { !$0 }, "streaming measured slower")
        #expect(run.asked.map(\.step) == [end, Chooser.period + end])
        #expect(run.asked.map(\.verdict) == [true, false])
    }

    /// What the ranks agree on wins over this rank's verdict: one that found streaming faster
    /// stores as usual when another did not.
    @Test func theAgreedVerdictWins() {
        var chooser = Chooser(.measured)
        let run = Self.drive(&chooser, steps: 0..<100, agree: { _ in false }) { _, streamed in streamed ? 1e-3 : 2e-3 }
        #expect(run.asked.count == 1 && run.asked[0].verdict == true)
        #expect(!chooser.streaming && !run.streamed.last!)
    }

    /// Set by DPTRAIN_PARAMETER_STORES, every update stores that way, no trial alternates, and
    /// `agree` is still asked at the same steps (so ranks set differently still meet).
    @Test(arguments: [ParameterStores.cached, .streamed])
    func aForcedStoreNeverAlternates(stores: ParameterStores) {
        var chooser = Chooser(stores)
        let run = Self.drive(&chooser, steps: 0..<Chooser.period + 100) { _, streamed in
            streamed == (stores == .cached) ? 1e-3 : 2e-3  // the forced one measures slower
        }
        #expect(run.streamed.allSatisfy { $0 == (stores == .streamed) })
        #expect(
            run.asked.map(\.step) == [
                Chooser.firstTrial + Chooser.trialSteps, Chooser.period + Chooser.firstTrial + Chooser.trialSteps,
            ])
    }

    /// A run resumed at the end of a trial measures only the cycles it saw, and one with no
    /// cycle of one kind keeps storing as usual.
    @Test func aResumedRunJudgesOnlyWhatItMeasured() {
        var chooser = Chooser(.measured)
        let end = Chooser.firstTrial + Chooser.trialSteps
        let run = Self.drive(&chooser, steps: end - 1..<end + 3) { _, streamed in streamed ? 1e-3 : 2e-3 }
        #expect(run.asked.count == 1 && run.asked[0].verdict == false, "one streamed cycle, no cached one")
        #expect(run.streamed == [true, false, false, false], "the trial's last step streams; then as usual")
    }
}
