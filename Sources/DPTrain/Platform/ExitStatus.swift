/// What dptrain's exit status tells a scheduler, a restart loop or a shell, on every rank and, through
/// mpirun, for the whole job. `dptrain train --help` lists them.
public enum ExitStatus {
    /// Training finished (or the command did what it was asked).
    public static let success: Int32 = 0
    /// An error: the message, printed once, names the file, key or flag.
    public static let failure: Int32 = 1
    /// The watchdog stopped a rank that waited longer than `training.collective_timeout` in a
    /// collective: another rank is dead, stuck or unreachable.
    public static let collectiveTimeout: Int32 = 3
    /// Stopped by SIGTERM, SIGINT or SIGUSR1 after writing a checkpoint of the step it stopped
    /// at: run again with `--resume` (EX_TEMPFAIL: a temporary failure, worth retrying).
    public static let stoppedWithCheckpoint: Int32 = 75
    /// Stopped by a signal with no checkpoint directory to write to: 128 + the signal, as a
    /// process killed by it reports (143 for SIGTERM, 130 for SIGINT, 138 for SIGUSR1).
    public static func stoppedWithoutCheckpoint(signal: Int32) -> Int32 { 128 + signal }
}
