import Foundation
import Synchronization

/// Synchronous data-parallel training: every rank runs the same steps; each step computes the
/// local gradient of its slice of the global batch, sums gradients over ranks (`GradientSum`),
/// and takes the same optimizer step. Rank 0 alone evaluates, writes metrics and checkpoints.
///
/// Within a rank, `threads` worker threads split its slice of the batch the same way ranks
/// split the global batch (worker `w` of rank `r` computes what rank `r * threads + w` of
/// `worldSize * threads` would), each on its own model replica with single-threaded BLAS; they
/// sum their gradients, and each updates a slice of the parameters; rank 0's workers evaluate a
/// part of the test set each. So one process with N threads follows exactly the trajectory of
/// N ranks with 1 thread each (on one machine or on N), without MPI. BLAS runs single-threaded in each worker (a step's
/// GEMMs are too small to split well across threads; OpenBLAS is set to one thread here).
public final class Trainer {
    public let config: TrainConfig
    public let comm: any Communicator
    /// Worker 0's replica: the one that holds the parameters, and that rank 0 evaluates.
    public let model: Model
    public let optimizer: any Optimizer
    public let schedule: EpochSchedule
    let train: Dataset
    let validation: Dataset?
    let test: Dataset?
    let configText: String
    let metrics: (any MetricsSink)?
    let checkpointer: Checkpointer?
    let log: (String) -> Void
    /// Called on rank 0 after every step with the position and the seconds since the epoch
    /// started (drives the progress bar; must be cheap).
    public var onStep: ((TrainingPosition, Double) -> Void)?
    /// Told the step in progress, for its timeout message (see `Watchdog`).
    public var watchdog: Watchdog?
    /// When set, a signal any rank receives stops the run after the step in progress, every
    /// rank at the same step (it travels in that step's allreduce), with a checkpoint of it.
    public var stopSignals: StopSignals?
    /// How many ranks had received a stop signal by the last step's allreduce (0: none).
    public private(set) var ranksAskingToStop = 0
    public private(set) var position = TrainingPosition()
    /// Seconds spent in each phase of the last step (read by `Benchmark`; costs six clock reads).
    public private(set) var lastStepPhases = StepPhases()
    /// With the gradient sent during backward: the seconds the communication thread worked on the
    /// last step (`OverlappedExchange`), of which only the allreduce phase was waited for; 0 without.
    public private(set) var lastStepCommunication = 0.0
    /// Allreduce seconds summed over the epoch in progress (reported per epoch).
    private var epochAllreduceSeconds = 0.0

    /// One replica per worker thread; `replicas[0].model` is `model`.
    private let replicas: [Replica]
    /// Whether the replicas' layers skip zero inputs (`Model.skipsZeroInputs`; default on).
    public var skipsZeroInputs: Bool {
        get { model.skipsZeroInputs }
        set { for replica in replicas { replica.model.skipsZeroInputs = newValue } }
    }
    let pool: WorkerPool
    /// Rank 0, with ranks of its machine lending it their cores: the evaluation's workers and their
    /// models (the training replicas' models first), made the first time they are lent.
    private var evaluators: (pool: WorkerPool, models: [Model])?
    /// Workers whose slice of the optimizer update met a NaN or infinite gradient.
    private let nonFiniteSlices = Atomic<Int>(0)
    /// Each worker's private buffer for a streamed update (`Optimizer.updateStreaming`): 16 KB,
    /// which stays in the core's first-level cache between computing and streaming a chunk.
    private lazy var updateChunks: [FloatBuffer] = (0..<pool.count).map { _ in FloatBuffer(count: 4096) }
    /// With several workers (threads, or ranks sharing a machine's parameters), each update is
    /// written here and the replicas then switch to it (the old values become the spare). In
    /// place, a worker's writes would first have to invalidate the copies of those values that the
    /// other workers' caches took in this step's forward pass; a buffer last read two steps ago
    /// mostly has none left (the performance document has the measurements). One worker alone
    /// updates in place (a second buffer there only adds traffic).
    private var spareValues: FloatBuffer?
    /// Whether each update into `spareValues` streams the new values past the caches.
    private var parameterStores = ParameterStoreChooser(.measured)
    /// How the last update outside a trial wrote the parameters: `.cached` or `.streamed`; nil where
    /// no other core reads them (one worker with a copy of its own), or where the communication
    /// thread updates them (`training.pipelined_update`), with plain stores.
    public var parameterStoresUsed: ParameterStores? {
        spareValues == nil || updatesWhileSending ? nil : parameterStores.streaming ? .streamed : .cached
    }
    /// Sums each step's gradient over the ranks; made by `synchronizeStart` (it is collective).
    private var gradientSum: (any GradientSum)?
    /// With `allreduce_compression: powersgd`: what compresses the machines' exchange.
    let powerSGD: PowerSGD?
    /// Whether the parameters and optimizer state are the machine's shared copy (see `synchronizeStart`).
    private var parametersShared = false
    /// Each worker's gradient buffer, for the communication thread (`OverlappedExchange`).
    private var workerGradients: [UnsafeMutablePointer<Float>] = []
    /// `training.pipelined_update` with the gradient sent during backward: the communication thread
    /// updates each bucket as its sum arrives, into the spare buffer, and a step ends without
    /// waiting for them: the next forward pass waits for each layer's parameters. `settle` waits
    /// for the update in flight.
    private var updatesWhileSending = false
    /// The first step (1-based) and epoch whose update, made on the communication thread, met a
    /// NaN or infinite gradient.
    private final class FailedUpdate: Sendable { let first = Mutex<(step: Int, epoch: Int)?>(nil) }
    private let failedUpdate = FailedUpdate()

    /// The gradient buffer holds three extra floats that ride in the same allreduce: the step's
    /// loss sum, its correct-prediction count, and the number of ranks asked to stop.
    static let statisticSlots = 3

    /// The floats a step of `config` allreduces: every parameter's gradient and the statistics.
    public static func allreduceFloats(_ config: TrainConfig) throws -> Int {
        try MemoryPlan(config: config, threads: 1, capacity: 1, dataBytes: 0).parameters + statisticSlots
    }

    /// `train` is the whole training set: with `validationSplit` its last fraction (before any
    /// shuffling, as Keras does) is held out for validation by rank 0. No collective runs here,
    /// so a rank that fails to set up never leaves the others waiting (see `Communicator.agree`).
    public init(
        config: TrainConfig, configText: String = "", comm: any Communicator, threads: Int = 1, train: Dataset,
        test: Dataset?,
        metrics: (any MetricsSink)? = nil, checkpointer: Checkpointer? = nil, log: @escaping (String) -> Void = { _ in }
    ) throws {
        precondition(threads >= 1)
        try config.validate(worldSize: comm.worldSize)
        guard train.sampleShape == config.inputShape else {
            throw ConfigError.invalid(
                key: "model.input_shape",
                reason: "is \(config.inputShape) but the samples of \(train.source) are \(train.sampleShape)")
        }
        let held = Int(Double(train.count) * config.validationSplit)
        guard train.count - held >= 1 else {
            throw ConfigError.invalid(key: "training.validation_split", reason: "leaves no training samples")
        }
        var (training, validation, test) = (
            held > 0 ? train.subset(0..<train.count - held) : train,
            held > 0 && comm.isRoot ? train.subset(train.count - held..<train.count) : nil, test
        )
        if config.data.normalize == .standardize {
            // From the training part alone: the validation and test splits are not looked at.
            let standardize = Normalization.standardizing(training)
            training.normalization = standardize
            validation?.normalization = standardize
            test?.normalization = standardize
        }
        self.train = training
        self.validation = validation
        self.config = config
        self.configText = configText
        self.comm = comm
        self.test = test
        self.metrics = metrics
        self.checkpointer = checkpointer
        self.log = log
        schedule = EpochSchedule(
            sampleCount: self.train.count, globalBatch: config.batchSize, seed: config.seed, shuffle: config.shuffle)
        guard !config.epochs.multipliedReportingOverflow(by: schedule.stepsPerEpoch).overflow else {
            throw ConfigError.invalid(
                key: "training.epochs",
                reason: "\(config.epochs) epochs of \(schedule.stepsPerEpoch) steps overflow a step count")
        }
        let local = schedule.maxLocalBatch(worldSize: comm.worldSize * threads)
        let evalCount = max(test?.count ?? 0, validation?.count ?? 0)
        // Rank 0's workers, with a worker for each thread of the other ranks of its machine (which
        // lend it their cores), evaluate in chunks of up to eval_batch_size samples, fewer when
        // their models' buffers for that many would pass ~64 MB in all (the CNN's take 87 KB a
        // sample). So the chunks are those of one rank with as many threads.
        let perSample = try MemoryPlan.floatsPerSample(config)
        let evalWorkers = threads * (comm.isRoot ? max(comm.localSize, 1) : 1)
        let evalChunk = min(config.evalBatchSize, evalCount, (16 << 20) / max(perSample, 1) / evalWorkers)
        let capacity = comm.isRoot ? max(local, evalChunk) : local
        // Refuse what cannot fit before allocating any of it (the data sets are already read).
        // A mapped file's pages are the page cache's, shared by the ranks of the machine.
        var buffers: [ObjectIdentifier: Int] = [:]
        for d in [train, test].compactMap({ $0 }) where !d.buffer.isMapped {
            buffers[ObjectIdentifier(d.buffer)] = d.buffer.count
        }
        let dataBytes = buffers.values.reduce(0, +) + 4 * (train.count + (test?.count ?? 0))
        // Rank 0's evaluation models for lent cores are counted as workers: each has its own
        // gradient and activations.
        try MemoryPlan(config: config, threads: evalWorkers, capacity: capacity, dataBytes: dataBytes)
            .check(available: MemoryPlan.availableBytes(), localRanks: comm.localSize)
        let primary = try Model(
            specs: config.layers, inputShape: config.inputShape, loss: config.loss,
            capacity: capacity, extraGradientSlots: Self.statisticSlots)
        model = primary
        try Self.checkClasses(of: training, against: primary, config: config)
        replicas =
            try [Replica(model: primary)]
            + (1..<threads).map { _ in
                Replica(
                    model: try Model(
                        specs: config.layers, inputShape: config.inputShape, loss: config.loss, capacity: capacity,
                        extraGradientSlots: Self.statisticSlots, sharingParametersOf: primary))
            }
        optimizer = config.makeOptimizer(parameterCount: model.store.count)
        powerSGD =
            config.allreduceCompression == .powersgd
            ? try PowerSGD(
                store: model.store, rank: config.powerSGDRank, warmupSteps: config.powerSGDWarmupSteps,
                minimumSize: config.powerSGDMinimumSize, bf16: config.powerSGDBF16, seed: config.seed) : nil
        if comm.isRoot { model.initialize(seed: config.seed) }
        pool = WorkerPool(count: threads)
        spareValues = threads > 1 ? FloatBuffer(count: model.store.count) : nil  // see synchronizeStart
        BLASThreads.set(1)
        let (stores, warning) = ParameterStores.fromEnvironment()
        parameterStores = ParameterStoreChooser(stores)
        if let warning, comm.isRoot { log(warning) }
    }

    deinit {
        pool.stop()
        evaluators?.pool.stop()
    }

    /// The model's output must have a unit for each class of the labels (one unit for two classes
    /// with binary cross-entropy or MSE), exactly as many when the labels say how many (one-hot).
    static func checkClasses(of data: Dataset, against model: Model, config: TrainConfig) throws {
        let outputs = model.outputSize, classes = data.numClasses
        let key =
            config.layers.lastIndex { if case .dense = $0 { return true } else { return false } }.map {
                "model.layers[\($0)].units"
            } ?? "model.layers"
        let fits =
            outputs == 1 && config.loss != .sparseCategoricalCrossentropy && config.loss != .categoricalCrossentropy
            ? classes <= 2 : outputs >= classes
        guard fits else {
            throw ConfigError.invalid(
                key: key,
                reason:
                    "the model has \(outputs) output unit(s), but the labels of \(data.source) have \(classes) classes "
                    + "(0-\(classes - 1)): give the last layer one unit per class"
                    + (outputs == 1 ? " (or use binary_crossentropy for two)" : ""))
        }
    }

    /// Rank 0: continue from `checkpoint` instead of the initial values (verified against the model).
    public func restore(from checkpoint: Checkpoint, path: String) throws {
        try checkpoint.restore(into: model, optimizer: optimizer, path: path)
        powerSGD?.read(checkpoint)
        let p = checkpoint.position
        if p.stepInEpoch > 0, let batch = checkpoint.integer("global_batch"), batch != config.batchSize {
            throw ConfigError.invalid(
                key: "training.batch_size",
                reason:
                    "is \(config.batchSize) but \(path) stopped mid-epoch with global batch \(batch); resume with --batch-size \(batch)"
            )
        }
        position = p
    }

    /// Makes every rank start from rank 0's parameters, optimizer state and position, and sets up
    /// the gradient's summation (the first time): where the ranks of a machine share one copy of
    /// the parameters and optimizer state (`GradientSum.share`), every replica and the optimizer
    /// move to it.
    func synchronizeStart() {
        if gradientSum == nil {
            let sum = comm.makeGradientSum(
                count: model.store.count + Self.statisticSlots, statistics: Self.statisticSlots,
                stateBuffers: optimizer.state.count,
                buckets: config.overlapCommunication && model.store.count > config.bucketBytes / 4
                    ? OverlappedExchange.buckets(parameters: model.store.count, bucketFloats: config.bucketBytes / 4)
                    : nil,
                compression: config.allreduceCompression, powerSGD: powerSGD, pool: pool, log: log)
            if let buffer = sum.localBuffer { model.useGradients(buffer) }
            workerGradients = replicas.map { $0.model.store.gradients.pointer }
            if comm.isRoot && comm.worldSize > 1 { log("dptrain: gradients: \(sum.description)") }
            gradientSum = sum
            updatesWhileSending = sum.overlap != nil && config.pipelinedUpdate  // never with skipNonFinite
            if updatesWhileSending && spareValues == nil { spareValues = FloatBuffer(count: model.store.count) }
            // Rank 0 leads the first machine: it compresses whenever the run compresses.
            if let powerSGD, comm.isRoot && comm.worldSize > 1 {
                let (sent, whole) = powerSGD.wireFloats
                if powerSGD.isAttached {
                    log(
                        "dptrain: PowerSGD rank \(powerSGD.rank): \(sent) of \(whole) floats cross between machines a step, "
                            + "after \(powerSGD.warmupSteps) steps in \(powerSGD.bf16 ? "bfloat16 (the P factors too)" : "float32")"
                    )
                } else if sum is AllreduceGradientSum {
                    log(
                        "warning: PowerSGD compresses what machines exchange after summing in shared memory, and these "
                            + "ranks sum with MPI_Allreduce: the gradients cross uncompressed, in float32")
                } else {
                    log(
                        "dptrain: PowerSGD: every rank is on one machine, whose sum in shared memory is exact: nothing to compress"
                    )
                }
            }
        }
        if let message = powerSGD?.restore(comm: comm), comm.isRoot { log("dptrain: \(message)") }
        // Shared buffers receive through private copies: a rank must not write them while another
        // rank of the machine sends from them.
        func staged(_ buffer: FloatBuffer) -> FloatBuffer {
            guard parametersShared else { return buffer }
            let copy = FloatBuffer(count: buffer.count)
            copy.pointer.update(from: buffer.pointer, count: buffer.count)
            return copy
        }
        let values = staged(model.store.values)
        let state = optimizer.state.map { staged($0.buffer) }
        comm.broadcast(values, root: 0)
        for buffer in state { comm.broadcast(buffer, root: 0) }
        if let shared = gradientSum!.share(values: values, state: state) {
            for replica in replicas { replica.model.useValues(shared.values) }
            optimizer.useState(shared.state)
            spareValues = shared.spare
            parametersShared = true
        }
        var packed = position.packed
        packed.withUnsafeMutableBytes { comm.broadcast($0.baseAddress!, count: $0.count, root: 0) }
        position = TrainingPosition(packed: packed)
        optimizer.iterations = position.optimizerIterations
    }

    /// Trains until `config.epochs` epochs (or `config.maxSteps` steps) are done, or early
    /// stopping ends the run, and returns the summary.
    public func run() throws -> TrainSummary {
        synchronizeStart()
        let totalSteps = min(config.maxSteps ?? Int.max, config.epochs * schedule.stepsPerEpoch)
        let epochs = (totalSteps - 1) / schedule.stepsPerEpoch + 1
        var epochSeconds: [Double] = []
        var samplesSeen = 0, trainSeconds = 0.0
        var lastTest: Evaluation?
        var stoppedEarly = false

        while position.step < totalSteps && !stoppedEarly && ranksAskingToStop == 0 {
            let epoch = position.epoch
            let order = schedule.permutation(epoch: epoch)
            let started = Self.now()
            let samplesBefore = position.epochSamples
            while position.stepInEpoch < schedule.stepsPerEpoch && position.step < totalSteps && ranksAskingToStop == 0
            {
                try trainStep(order: order)
                onStep?(position, Self.now() - started)
                if let checkpointer, config.checkpointEverySteps > 0, position.step % config.checkpointEverySteps == 0 {
                    try saveCheckpoint(checkpointer)
                }
            }
            try settle()  // rank 0 evaluates the parameters; early stopping is broadcast
            let epochDone = position.stepInEpoch == schedule.stepsPerEpoch
            // Stopped by a signal mid-epoch: no epoch report; the checkpoint below resumes there.
            if ranksAskingToStop > 0 && !epochDone { break }
            let seconds = Self.now() - started
            let samples = position.epochSamples - samplesBefore
            epochSeconds.append(seconds)
            trainSeconds += seconds
            samplesSeen += samples
            let (e, stop) = endOfEpoch(epoch: epoch, of: epochs, seconds: seconds, samples: samples)
            lastTest = e ?? lastTest
            stoppedEarly = stop
            if epochDone { nextEpoch() }
            let last = position.step >= totalSteps || stoppedEarly || ranksAskingToStop > 0
            if let checkpointer,
                epochDone && !last && config.checkpointEveryEpochs > 0
                    && position.epoch % config.checkpointEveryEpochs == 0
            {
                try saveCheckpoint(checkpointer)
            }
        }
        let checksum = try verifyReplicas()
        if let checkpointer { try saveCheckpoint(checkpointer) }

        let summary = TrainSummary(
            testLoss: lastTest?.loss, testAccuracy: lastTest?.accuracy, epochs: epochSeconds.count,
            steps: position.step,
            epochSeconds: epochSeconds, samplesPerSecond: trainSeconds > 0 ? Double(samplesSeen) / trainSeconds : 0,
            worldSize: comm.worldSize, skippedSteps: position.skippedSteps, stoppedEarly: stoppedEarly,
            stoppedBySignal: ranksAskingToStop > 0, parameterChecksum: checksum)
        if comm.isRoot {
            metrics?.write(
                "summary",
                [
                    ("test_accuracy", summary.testAccuracy.map(JSONValue.number) ?? .string("n/a")),
                    ("test_loss", summary.testLoss.map(JSONValue.number) ?? .string("n/a")),
                    ("epochs", .int(summary.epochs)), ("steps", .int(summary.steps)),
                    ("epoch_seconds", .array(epochSeconds.map(JSONValue.number))),
                    ("samples_per_second", .number(summary.samplesPerSecond)),
                    ("world_size", .int(comm.worldSize)), ("global_batch", .int(config.batchSize)),
                    ("skipped_steps", .int(summary.skippedSteps)), ("stopped_early", .bool(stoppedEarly)),
                    ("stopped_by_signal", .bool(summary.stoppedBySignal)),
                    ("replicas_identical", .bool(true)), ("parameter_checksum", .string(String(checksum, radix: 16))),
                ])
        }
        return summary
    }

    /// One global step: each worker gathers its slice of the global batch, runs forward, loss and
    /// backward; the workers sum their gradients and statistics in worker order, the ranks sum
    /// theirs (`GradientSum`: in shared memory within a machine, then between machines), then
    /// every rank takes the same optimizer step (each worker updating a slice). With the gradient
    /// sent during backward, the communication thread adds the workers' gradients and sums them
    /// over the machines, and with `updatesWhileSending` updates them too.
    func trainStep(order: [Int32]) throws {
        watchdog?.setStep(position.step)
        let n = model.store.count
        let grads = model.store.gradients.pointer
        let batch = schedule.batchRange(step: position.stepInEpoch)
        let (step, stepInEpoch, seed) = (position.step, position.stepInEpoch, config.seed)
        let (threads, parts, firstPart) = (pool.count, comm.worldSize * pool.count, comm.rank * pool.count)
        var clock = PhaseClock()
        // Rides with the statistics, which the communication thread may send once the loss is known.
        grads[n + 2] = stopSignals?.received == nil ? 0 : 1
        let overlap = gradientSum!.overlap
        let inFlight = updatesWhileSending ? beginUpdateInFlight(overlap!) : nil
        if inFlight == nil { overlap?.begin(gradients: workerGradients) }
        order.withUnsafeBufferPointer { order in
            pool.run { w in
                let positions = schedule.localRange(step: stepInEpoch, rank: firstPart + w, worldSize: parts)
                let next =
                    stepInEpoch + 1 < schedule.stepsPerEpoch
                    ? schedule.localRange(step: stepInEpoch + 1, rank: firstPart + w, worldSize: parts) : 0..<0
                let phases = replicas[w].computeGradients(
                    train, order: order.baseAddress!, positions: positions, prefetching: next,
                    globalBatch: batch.count, step: step, seed: seed,
                    done: overlap.map { overlap in { overlap.ready(worker: w, from: $0) } },
                    parametersNeeded: inFlight == nil ? nil : { overlap!.waitForParameters($0, worker: w) })
                if w == 0 { (lastStepPhases.gather, lastStepPhases.forward, lastStepPhases.backward) = phases }
            }
        }
        // Worker 0's phases are its own share; the rest, until the slowest worker is done, is
        // counted with the sum, as the barrier that waits for the slowest rank is.
        let waitForWorkers = max(
            0, clock.lap() - lastStepPhases.gather - lastStepPhases.forward - lastStepPhases.backward)
        if threads > 1 && overlap == nil {
            // In a fixed order, so the sum does not depend on which worker finished first.
            pool.run { w in
                let range = pool.slice(w, of: n + Self.statisticSlots)
                for r in 1..<threads {
                    let g = replicas[r].model.store.gradients.pointer
                    for i in range { grads[i] += g[i] }
                }
            }
        }
        // Before the sum: where ranks share the parameters, another rank may update its slice
        // of them as soon as its part of the sum is done.
        let penalty = model.regularizers.isEmpty ? 0 : model.regularizationPenalty()
        if let inFlight, let overlap {
            try endStepWithUpdateInFlight(
                inFlight, overlap, penalty: penalty, batch: batch.count, waitForWorkers: waitForWorkers, clock: &clock)
        } else {
            try sumAndUpdate(penalty: penalty, batch: batch.count, waitForWorkers: waitForWorkers, clock: &clock)
        }
        position.epochSamples += batch.count
        position.step += 1
        position.stepInEpoch += 1
        if comm.isRoot, config.logEvery > 0, position.step % config.logEvery == 0 {
            metrics?.write(
                "step",
                [
                    ("step", .int(position.step)), ("epoch", .int(position.epoch + 1)),
                    ("loss", .number(lastStepLoss)),
                    ("learning_rate", .number(Double(config.optimizer.schedule.rate(step: position.step - 1)))),
                ])
        }
        if config.consistencyCheckEvery > 0, position.step % config.consistencyCheckEvery == 0 {
            _ = try verifyReplicas()
        }
    }

    /// The step's loss (the mean over the global batch, with the L2 penalty), for the metrics.
    private var lastStepLoss = 0.0

    /// The sum over ranks, then the update, each worker a slice (see `trainStep`). `waitForWorkers`:
    /// the seconds this thread waited for the other workers' gradients, counted in the allreduce phase.
    private func sumAndUpdate(penalty: Double, batch: Int, waitForWorkers: Double, clock: inout PhaseClock) throws {
        let model = self.model, sum = gradientSum!
        let grads = model.store.gradients.pointer
        powerSGD?.step = position.step
        // The sum over ranks, with the L2 penalty's gradient added to it (each rank its part).
        let summed = sum.sum(grads) { sum, range in
            if !model.regularizers.isEmpty { model.applyRegularization(to: sum, range: range) }
        }
        let (gradient, statistics, range) = (summed.gradient, summed.statistics, sum.updateRange)
        ranksAskingToStop = Int(statistics[2])
        lastStepPhases.allreduce = clock.lap() + waitForWorkers
        lastStepCommunication = sum.overlap?.lastStepSeconds ?? 0
        epochAllreduceSeconds += lastStepPhases.allreduce
        defer { lastStepPhases.optimizer = clock.lap() }
        // Other cores read the new parameters (the worker threads, or the ranks sharing one copy):
        // stream them or not, as measured (`ParameterStoreChooser`). Every rank sharing them comes
        // here at every step, skipped or not, as their `agree` needs.
        let streams =
            spareValues != nil
            && parameterStores.updateStarts(step: position.step, at: Self.now()) { verdict in
                parametersShared ? sum.agree(verdict) : verdict
            }
        let stepLoss = Double(statistics[0]) / Double(batch) + penalty
        lastStepLoss = stepLoss
        // Non-finite numbers: with on_nonfinite: skip, check before updating and skip the step;
        // otherwise the optimizer checks the gradients in its own pass and training stops. Every
        // rank reaches the same verdict (`agree`: each checks the part it updates).
        let skip =
            !stepLoss.isFinite
            || (config.skipNonFinite
                && !sum.agree(FiniteCheck.allFinite(gradient + range.lowerBound, count: range.count)))
        if skip {
            guard config.skipNonFinite else {
                throw TrainingError.nonFinite(step: position.step + 1, epoch: position.epoch + 1)
            }
            if !stepLoss.isFinite { _ = sum.agree(true) }  // the step's one call after the sum
            position.skippedSteps += 1
            log(
                "warning: skipped global step \(position.step + 1): non-finite loss or gradient (\(position.skippedSteps) skipped so far)"
            )
        } else {
            optimizer.iterations += 1
            let current = model.store.values
            let (updated, rate) = (spareValues ?? current, config.optimizer.schedule.rate(step: position.step))
            nonFiniteSlices.store(0, ordering: .relaxed)
            let chunks = updateChunks
            pool.run { w in
                let slice = pool.slice(w, of: range.count)
                let mine = range.lowerBound + slice.lowerBound..<range.lowerBound + slice.upperBound
                let finite =
                    streams
                    ? optimizer.updateStreaming(
                        parameters: current.pointer, into: updated.pointer, gradients: gradient, range: mine,
                        learningRate: rate, chunk: chunks[w])
                    : optimizer.update(
                        parameters: current.pointer, into: updated.pointer, gradients: gradient, range: mine,
                        learningRate: rate)
                if !finite { nonFiniteSlices.add(1, ordering: .relaxed) }
            }
            if updated !== current {
                for replica in replicas { replica.model.useValues(updated) }
                spareValues = current
            }
            guard sum.agree(nonFiniteSlices.load(ordering: .relaxed) == 0) else {
                throw TrainingError.nonFinite(step: position.step + 1, epoch: position.epoch + 1)
            }
            position.epochLossSum += stepLoss * Double(batch)
            position.epochCorrect += Double(statistics[1])
        }
        position.optimizerIterations = optimizer.iterations
    }

    /// `updatesWhileSending`: hands the communication thread this step's update (L2 penalty's
    /// gradient, then the optimizer, from the current values into the spare buffer), made over each
    /// bucket once its sum has arrived. It sets the optimizer's count itself: this thread may have
    /// gone on to the next step meanwhile.
    private func beginUpdateInFlight(_ overlap: OverlappedExchange) -> (current: FloatBuffer, updated: FloatBuffer) {
        let (model, optimizer, failed) = (self.model, self.optimizer, failedUpdate)
        let (current, updated, gradient) = (model.store.values, spareValues!, model.store.gradients.pointer)
        let (iteration, rate) = (position.optimizerIterations + 1, config.optimizer.schedule.rate(step: position.step))
        let (step, epoch) = (position.step + 1, position.epoch + 1)
        overlap.begin(gradients: workerGradients) { range in
            optimizer.iterations = iteration
            if !model.regularizers.isEmpty {
                // Of the values this step started from: the replicas may have moved on to `updated`.
                model.applyRegularization(to: gradient, range: range, values: current.pointer)
            }
            if !optimizer.update(
                parameters: current.pointer, into: updated.pointer, gradients: gradient, range: range,
                learningRate: rate)
            {
                failed.first.withLock { $0 = $0 ?? (step, epoch) }
            }
        }
        return (current, updated)
    }

    /// `updatesWhileSending`: the step ends once its statistics are summed; the replicas move to
    /// the buffer the update is arriving in, whose layers the next forward pass waits for.
    private func endStepWithUpdateInFlight(
        _ inFlight: (current: FloatBuffer, updated: FloatBuffer), _ overlap: OverlappedExchange, penalty: Double,
        batch: Int, waitForWorkers: Double, clock: inout PhaseClock
    ) throws {
        // The last step's update is complete: this step's forward pass needed all of it.
        if failedUpdate.first.withLock({ $0 }) != nil { try settle() }
        let waited = overlap.takeParameterWait()
        overlap.waitForStatistics()
        let statistics = model.store.gradients.pointer + model.store.count
        ranksAskingToStop = Int(statistics[2])
        // What the step waited for communication: the statistics, and the parameters before layers.
        lastStepPhases.forward -= waited
        lastStepPhases.allreduce = clock.lap() + waited + waitForWorkers
        lastStepCommunication = overlap.lastStepSeconds
        epochAllreduceSeconds += lastStepPhases.allreduce
        defer { lastStepPhases.optimizer = clock.lap() }
        let stepLoss = Double(statistics[0]) / Double(batch) + penalty
        lastStepLoss = stepLoss
        guard stepLoss.isFinite else {
            overlap.finish()
            throw TrainingError.nonFinite(step: position.step + 1, epoch: position.epoch + 1)
        }
        for replica in replicas { replica.model.useValues(inFlight.updated) }
        spareValues = inFlight.current
        position.optimizerIterations += 1
        position.epochLossSum += stepLoss * Double(batch)
        position.epochCorrect += Double(statistics[1])
    }

    /// Waits for an update still arriving on the communication thread (`updatesWhileSending`) and
    /// throws if one met a NaN or infinite gradient: before anything reads the parameters or the
    /// optimizer's state, or calls MPI from this thread.
    func settle() throws {
        gradientSum?.overlap?.finish()
        if let failed = failedUpdate.first.withLock({ $0 }) {
            throw TrainingError.nonFinite(step: failed.step, epoch: failed.epoch)
        }
    }

    /// Rank 0 reports the epoch, evaluates (with the cores of its machine's other ranks), and
    /// decides on early stopping (broadcast to all).
    func endOfEpoch(epoch: Int, of epochs: Int, seconds: Double, samples: Int) -> (Evaluation?, Bool) {
        var testEval: Evaluation?
        var stop: Int32 = 0
        lendCoresToRoot { lent in
            let kept = Double(max(position.epochSamples, 1))
            let (loss, accuracy) = (position.epochLossSum / kept, position.epochCorrect / kept)
            let rate = Double(samples) / seconds
            var line = String(format: "epoch %d/%d  loss %.4f  accuracy %.4f", epoch + 1, epochs, loss, accuracy)
            metrics?.write(
                "epoch",
                [
                    ("epoch", .int(epoch + 1)), ("step", .int(position.step)), ("loss", .number(loss)),
                    ("accuracy", .number(accuracy)), ("seconds", .number(seconds)),
                    ("samples", .int(samples)), ("samples_per_second", .number(rate)),
                    (
                        "allreduce_ms",
                        .number(epochAllreduceSeconds * 1e3 / Double(max(samples / max(config.batchSize, 1), 1)))
                    ),
                ])
            for (split, data) in [("validation", validation), ("test", test)] {
                guard let data else { continue }
                let started = Self.now()
                let e = evaluate(on: data, lent: lent)
                metrics?.write(
                    "eval",
                    [
                        ("epoch", .int(epoch + 1)), ("step", .int(position.step)), ("split", .string(split)),
                        ("loss", .number(e.loss)), ("accuracy", .number(e.accuracy)),
                        ("samples", .int(e.count)), ("seconds", .number(Self.now() - started)),
                    ])
                let prefix = split == "test" ? "test" : "val"
                line += String(format: "  %@_loss %.4f  %@_accuracy %.4f", prefix, e.loss, prefix, e.accuracy)
                if split == "test" { testEval = e }
                if split == "validation", let patience = config.earlyStoppingPatience {
                    if e.loss < position.bestValidationLoss - config.earlyStoppingMinDelta {
                        position.bestValidationLoss = e.loss
                        position.epochsWithoutImprovement = 0
                    } else {
                        position.epochsWithoutImprovement += 1
                        if position.epochsWithoutImprovement > patience { stop = 1 }
                    }
                }
            }
            line += String(format: "  %.2fs  %.0f samples/s", seconds, rate)
            log(line)
            if stop == 1 {
                log("early stopping: validation loss has not improved for \(position.epochsWithoutImprovement) epochs")
            }
        }
        if config.earlyStoppingPatience != nil {
            comm.broadcast(&stop, count: 4, root: 0)
        }
        return (testEval, stop == 1)
    }

    /// Rank 0's loss and accuracy on `data`, each worker taking a part; with other ranks of the
    /// machine lending their cores (`lendCoresToRoot`), with a worker for each of their threads
    /// too, on their cores: the parts, and so the bits, of one rank with as many threads.
    public func evaluate(on data: Dataset, lent: LentCores = .none) -> Evaluation {
        gradientSum?.overlap?.finish()  // an update in flight (see `settle`, which the trainer calls first)
        let workers = pool.count * (1 + lent.ranks)
        guard workers > pool.count, let evaluators = makeEvaluators(workers, cpus: lent.cpus) else {
            return Evaluator.evaluate(replicas.map(\.model), on: data, pool: pool)
        }
        for extra in evaluators.models.dropFirst(pool.count) { extra.useValues(model.store.values) }
        return Evaluator.evaluate(evaluators.models, on: data, pool: evaluators.pool)
    }

    /// `workers` models and a pool of as many threads, allowed on `cpus`, made once (the machine's
    /// ranks do not change during a run); nil where the models cannot be made.
    private func makeEvaluators(_ workers: Int, cpus: cpu_set_t?) -> (pool: WorkerPool, models: [Model])? {
        if let evaluators { return evaluators }
        let primary = model
        guard
            let extra = try? (pool.count..<workers).map({ _ in
                try Model(
                    specs: config.layers, inputShape: config.inputShape, loss: config.loss, capacity: primary.capacity,
                    sharingParametersOf: primary)
            })
        else { return nil }
        // Idle between evaluations, the threads sleep at once rather than spin.
        evaluators = (WorkerPool(count: workers, spinSeconds: 0, cpus: cpus), replicas.map(\.model) + extra)
        return evaluators
    }

    /// Runs `work` on rank 0 while the other ranks of its machine wait without spinning; `work`
    /// learns how many they are (see `GradientSum.lendCoresToRoot`). Every rank calls it at the
    /// same point.
    func lendCoresToRoot(_ work: (LentCores) -> Void) {
        guard let gradientSum else { return comm.isRoot ? work(.none) : () }
        gradientSum.lendCoresToRoot(work)
    }

    /// Moves the position to the start of the next epoch.
    func nextEpoch() {
        epochAllreduceSeconds = 0
        position.epoch += 1
        position.stepInEpoch = 0
        position.epochLossSum = 0
        position.epochCorrect = 0
        position.epochSamples = 0
    }

    func saveCheckpoint(_ checkpointer: Checkpointer) throws {
        try settle()
        let errors = powerSGD?.gatherErrors() ?? []  // collective: every machine's error feedback
        guard comm.isRoot else { return }
        let started = Self.now()
        let path = checkpointer.path(step: position.step)
        guard FiniteCheck.allFinite(model.store.values.pointer, count: model.store.count) else {
            throw CheckpointError.writeFailed(
                path: path,
                reason: "the parameters hold NaN or infinity at global step \(position.step); not saving them")
        }
        let c = Checkpoint.capture(
            model: model, optimizer: optimizer, position: position, config: config,
            configText: configText, worldSize: comm.worldSize, normalization: train.normalization,
            classes: train.classes, extraTensors: powerSGD?.tensors(errors: errors) ?? [],
            extraMetadata: errors.isEmpty ? [:] : ["powersgd_machines": "\(errors.count)"])
        let (_, bytes) = try checkpointer.save(c, step: position.step)
        metrics?.write(
            "checkpoint",
            [
                ("step", .int(position.step)), ("path", .string(path)), ("bytes", .int(bytes)),
                ("seconds", .number(Self.now() - started)),
            ])
    }

    /// Throws naming the ranks whose parameters differ from rank 0's; returns the checksum.
    func verifyReplicas() throws -> UInt64 {
        try settle()
        let checksum = Checksum.fnv1a(UnsafeRawBufferPointer(model.store.values.buffer))
        let all = comm.allgather(Int32(truncatingIfNeeded: checksum))
        let differing = all.indices.filter { all[$0] != all[0] }
        guard differing.isEmpty else { throw TrainingError.replicasDiverged(step: position.step, ranks: differing) }
        return checksum
    }

    static func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) * 1e-9 }
}
