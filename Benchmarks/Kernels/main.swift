// dptrain-kernels: where the Dense layer's own products beat sgemm on this CPU and build.
//
//   swift run -c release dptrain-kernels            # the MLP's and the CNN's Dense layers
//   swift run -c release dptrain-kernels --quick    # fewer repeats
//
// For a Dense layer of the MLP (784 -> 128) and of the CNN (5408 -> 128), at 16, 32 and 64 rows
// (a worker's share of a batch) and inputs 10-60% nonzero, one thread, it times each product
// both ways and prints the sparse path's time over sgemm's (below 1: the sparse path wins):
//   forward         x W, only the nonzero inputs (SparseRows) against sgemm;
//   kernel grad     x^T dz, the lists transposed, against sgemm (after a sparse forward pass);
//   input grad      dz W^T, DenseInputGradient against sgemm, on inputs half nonzero and on
//                   inputs with 30% of columns zero in every row (after a ReLU those need no
//                   gradient: DenseInputGradient leaves them out).
// Each figure is the median of the repeats' ratios, the two ways run alternately. The last
// lines give the densities up to which each sparse product wins at every size measured, to
// set against `DenseTuning.forThisBuild` (this build's vector width). Prints figures; never fails.
import DPTrain
import Foundation

let quick = CommandLine.arguments.contains("--quick")
let repeats = quick ? 7 : 21
let densities: [Double] = [0.1, 0.2, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6]
let rowCounts = [16, 32, 64]
let layers = [(inputs: 784, units: 128), (inputs: 5408, units: 128)]
BLASThreads.set(1)

func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) * 1e-9 }
func median(_ v: [Double]) -> Double { v.sorted()[v.count / 2] }

/// Seconds per call of `body`, over enough calls to take about 2 ms.
func time(_ body: () -> Void) -> Double {
    body()
    var calls = 1
    while true {
        let t0 = now()
        for _ in 0..<calls { body() }
        let t = now() - t0
        if t > 0.002 { return t / Double(calls) }
        calls *= 2
    }
}

/// The sparse path's time over sgemm's, for one product: `run(sparse)` runs it once.
func ratio(_ run: (Bool) -> Void) -> Double {
    median((0..<repeats).map { _ in time { run(true) } / time { run(false) } })
}

/// Runs the sweep and prints it.
func sweep() {
    print(
        "dptrain-kernels: built for \(InstructionSet.compiled.level); CPU has \(InstructionSet.cpu.level); "
            + "OpenBLAS kernels \(BLASThreads.coreName); one thread; sparse time / sgemm time, median of \(repeats)")
    var forwardWins: [Double: Bool] = [:], kernelGradientWins: [Double: Bool] = [:]
    for (inputs, units) in layers {
        for rows in rowCounts {
            let dense = Dense(name: "dense", inputs: inputs, units: units, activation: .relu)
            let store = ParameterStore(entries: [
                .init(name: "dense.kernel", shape: [inputs, units], offset: 0),
                .init(name: "dense.bias", shape: [units], offset: inputs * units),
            ])
            dense.bind(store)
            var rng = SplitMix64(seed: 1)
            for i in 0..<store.count { store.values.pointer[i] = rng.uniform(-0.1, 0.1) }
            dense.prepare(capacity: rows)
            let x = FloatBuffer(count: rows * inputs), y = FloatBuffer(count: rows * units)
            let dy = FloatBuffer(count: rows * units), dx = FloatBuffer(count: rows * inputs)
            let context = StepContext(training: true)
            var line = String(format: "%4d -> %3d, %2d rows:", inputs, units, rows)
            for density in densities {
                for i in 0..<x.count { x.pointer[i] = rng.uniform(0, 1) < Float(density) ? rng.uniform(0, 1) : 0 }
                func forward(_ sparse: Bool) {
                    dense.tuning.forwardDensityLimit = sparse ? 1 : 0
                    dense.forward(x.pointer, y.pointer, batch: rows, context: context)
                }
                func kernelGradient(_ sparse: Bool) {
                    forward(true)
                    dense.tuning.kernelGradientDensityLimit = sparse ? 1 : 0
                    for i in 0..<dy.count { dy.pointer[i] = 0.01 }
                    dense.backward(
                        input: x.pointer, output: y.pointer, outputGradient: dy.pointer, inputGradient: nil,
                        batch: rows, context: context)
                }
                let f = ratio(forward), k = ratio(kernelGradient)
                forwardWins[density, default: true] = forwardWins[density, default: true] && f < 1
                kernelGradientWins[density, default: true] = kernelGradientWins[density, default: true] && k < 1
                line += String(format: "  %2.0f%%: fwd %.2f kgrad %.2f", density * 100, f, k)
            }
            // The input gradient alone: a backward pass with it less one without, each way; on
            // inputs half nonzero, and on inputs whose columns are zero in every row 30% of the
            // time (after a ReLU: DenseInputGradient then leaves those columns out).
            func inputGradient(deadColumns: Double) -> Double {
                for k in 0..<inputs {
                    let dead = rng.uniform(0, 1) < Float(deadColumns)
                    for r in 0..<rows {
                        x.pointer[r * inputs + k] = !dead && rng.uniform(0, 1) < 0.5 ? rng.uniform(0, 1) : 0
                    }
                }
                dense.zeroInputsNeedNoGradient = deadColumns > 0
                dense.tuning.forwardDensityLimit = 0
                func backward(_ own: Bool, _ withInputGradient: Bool) {
                    dense.tuning.ownInputGradient = own
                    dense.forward(x.pointer, y.pointer, batch: rows, context: context)
                    for i in 0..<dy.count { dy.pointer[i] = 0.01 }
                    dense.backward(
                        input: x.pointer, output: y.pointer, outputGradient: dy.pointer,
                        inputGradient: withInputGradient ? dx.pointer : nil, batch: rows, context: context)
                }
                return median(
                    (0..<repeats).map { _ in
                        (time { backward(true, true) } - time { backward(true, false) })
                            / (time { backward(false, true) } - time { backward(false, false) })
                    })
            }
            let (plain, skipping) = (inputGradient(deadColumns: 0), inputGradient(deadColumns: 0.3))
            print(line + String(format: "  | input grad %.2f, with 30%% dead columns %.2f", plain, skipping))
        }
    }
    func lastWinning(_ wins: [Double: Bool]) -> String {
        let upTo = densities.prefix { wins[$0] == true }.last
        return upTo.map { String(format: "%.0f%%", $0 * 100) } ?? "never"
    }
    print(
        "sparse forward wins at every size up to \(lastWinning(forwardWins)) nonzero; sparse kernel gradient up to \(lastWinning(kernelGradientWins))"
    )
}

sweep()
