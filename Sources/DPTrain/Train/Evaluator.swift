/// Loss and accuracy of a model on a data set, computed in chunks of the model's capacity with
/// dropout off. Run by rank 0 alone (with the cores its machine's other ranks lend it).
public struct Evaluation: Sendable {
    public var loss: Double
    public var accuracy: Double
    public var count: Int
    /// `confusion[truth][predicted]` sample counts.
    public var confusion: [[Int]]
    /// The workers (threads) that took a part of the data set each.
    public var workers: Int
}

public enum Evaluator {
    /// Evaluates `model` on every sample of `data`.
    public static func evaluate(_ model: Model, on data: Dataset) -> Evaluation {
        evaluate([model], on: data, pool: WorkerPool(count: 1))
    }

    /// Evaluates with one model per worker of `pool` (replicas that share their parameters):
    /// worker `w` takes the `w`-th contiguous part of `data`; the parts' sums are added in order.
    public static func evaluate(_ models: [Model], on data: Dataset, pool: WorkerPool) -> Evaluation {
        precondition(models.count == pool.count)
        // Labels past the model's outputs are counted as their own classes (never predicted).
        let classes = max(models[0].outputSize, 2, data.numClasses)
        let tallies = pool.map { w in
            let (lo, hi) = EpochSchedule.slice(count: data.count, part: w, of: pool.count)
            return Tally(classes: classes).adding(models[w], on: data, samples: lo..<hi)
        }
        var confusion = [[Int]](repeating: [Int](repeating: 0, count: classes), count: classes)
        for t in tallies {
            for i in 0..<classes { for j in 0..<classes { confusion[i][j] += t.confusion[i][j] } }
        }
        return Evaluation(
            loss: tallies.reduce(0) { $0 + $1.lossSum } / Double(data.count),
            accuracy: Double(tallies.reduce(0) { $0 + $1.correct }) / Double(data.count),
            count: data.count, confusion: confusion, workers: pool.count)
    }

    /// One worker's running sums.
    final class Tally {
        var lossSum = 0.0
        var correct = 0
        var confusion: [[Int]]

        init(classes: Int) { confusion = [[Int]](repeating: [Int](repeating: 0, count: classes), count: classes) }

        func adding(_ model: Model, on data: Dataset, samples: Range<Int>) -> Tally {
            let chunk = model.capacity
            var labels = [Int32](repeating: 0, count: chunk)
            var start = samples.lowerBound
            while start < samples.upperBound {
                let n = min(chunk, samples.upperBound - start)
                BatchGatherer.gather(data, indices: start..<start + n, into: model.input, labels: &labels)
                model.forward(batch: n, context: StepContext(training: false))
                let (loss, right) = labels.withUnsafeBufferPointer {
                    model.head.evaluate(model.output, labels: $0.baseAddress!, batch: n, gradient: nil, scale: 1)
                }
                lossSum += loss
                correct += right
                for r in 0..<n {
                    let predicted = model.head.predictedClass(model.output + r * model.outputSize)
                    confusion[Int(labels[r])][predicted] += 1
                }
                start += n
            }
            return self
        }
    }
}
