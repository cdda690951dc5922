/// Loss and accuracy of a model on a data set, computed in chunks of the model's capacity with
/// dropout off. Run by rank 0 alone.
public struct Evaluation: Sendable {
    public var loss: Double
    public var accuracy: Double
    public var count: Int
    /// `confusion[truth][predicted]` sample counts.
    public var confusion: [[Int]]
}

public enum Evaluator {
    /// Evaluates `model` on every sample of `data`.
    public static func evaluate(_ model: Model, on data: Dataset) -> Evaluation {
        let classes = max(model.outputSize, 2)
        var confusion = [[Int]](repeating: [Int](repeating: 0, count: classes), count: classes)
        var lossSum = 0.0
        var correct = 0
        let chunk = model.capacity
        var labels = [UInt8](repeating: 0, count: chunk)
        var start = 0
        while start < data.count {
            let n = min(chunk, data.count - start)
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
        return Evaluation(loss: lossSum / Double(data.count), accuracy: Double(correct) / Double(data.count),
                          count: data.count, confusion: confusion)
    }
}
