/// What one worker thread of a rank trains with: a model that shares the rank's parameter
/// values but has activations and gradients of its own, and the labels and data-set indices of
/// the samples it gathers. Sized for `model.capacity` samples; allocated once.
final class Replica {
    let model: Model
    let labels: UnsafeMutablePointer<Int32>
    let sampleIndices: UnsafeMutablePointer<Int32>

    init(model: Model) {
        self.model = model
        labels = .allocate(capacity: model.capacity)
        labels.initialize(repeating: 0, count: model.capacity)
        sampleIndices = .allocate(capacity: model.capacity)
        sampleIndices.initialize(repeating: 0, count: model.capacity)
    }

    deinit {
        labels.deallocate()
        sampleIndices.deallocate()
    }

    /// This replica's share of a training step: gathers the samples `order[positions]` (and
    /// prefetches `order[next]`, its samples of the next step), runs forward, the loss (the mean
    /// over a global batch of `globalBatch`, so that shares add up) and backward. Leaves the
    /// parameter gradients in `model.store.gradients`, followed by the share's loss sum and
    /// correct-prediction count (written before backward, so they are final before any gradient
    /// is), and returns the seconds of each part. `done` is told, as backward goes, from which
    /// parameter on the gradients are final (`Model.backward`). `parametersNeeded`: see
    /// `StepContext`.
    func computeGradients(
        _ data: Dataset, order: UnsafePointer<Int32>, positions: Range<Int>, prefetching next: Range<Int>,
        globalBatch: Int, step: Int, seed: UInt64, done: ((Int) -> Void)? = nil,
        parametersNeeded: ((Range<Int>) -> Void)? = nil
    ) -> (gather: Double, forward: Double, backward: Double) {
        var clock = PhaseClock()
        BatchGatherer.gather(
            data, order: order, positions: positions, into: model.input, labels: labels, sampleIndices: sampleIndices)
        BatchGatherer.prefetch(data, order: order, positions: next)
        let gather = clock.lap()
        var context = StepContext(training: true, step: step, seed: seed, sampleIndices: sampleIndices)
        context.parametersNeeded = parametersNeeded
        model.forward(batch: positions.count, context: context)
        let (loss, correct) = model.head.evaluate(
            model.output, labels: labels, batch: positions.count,
            gradient: model.outputGradient, scale: 1 / Float(globalBatch))
        let statistics = model.store.gradients.pointer + model.store.count
        statistics[0] = Float(loss)
        statistics[1] = Float(correct)
        let forward = clock.lap()
        context.parametersNeeded = nil
        model.backward(batch: positions.count, context: context, done: done)
        return (gather, forward, clock.lap())
    }
}
