import ArgumentParser
import DPTrain
import Foundation

/// `dptrain plot`: loss and accuracy curves from a metrics file, as SVG.
struct PlotCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plot",
        abstract: "Draw loss and accuracy per epoch from a metrics file (train --metrics-file) as SVG.")

    @Argument(help: ArgumentHelp("The JSON Lines metrics file.", valueName: "metrics"))
    var metrics: String

    @Option(name: .shortAndLong, help: ArgumentHelp("The SVG file to write.", valueName: "file"))
    var output: String = "curves.svg"

    func run() throws {
        do {
            let (loss, accuracy) = try CurvePlot.series(metricsPath: metrics)
            let svg = CurvePlot.svg(loss: loss, accuracy: accuracy, title: (metrics as NSString).lastPathComponent)
            guard FileManager.default.createFile(atPath: output, contents: Data(svg.utf8)) else {
                throw ValidationError("cannot write \(output)")
            }
            print(
                "wrote \(output): \(loss.map(\.name).joined(separator: ", ")) over \(loss.map { $0.points.count }.max() ?? 0) epochs"
            )
        } catch {
            Launch.fail(error, comm: SingleProcessCommunicator())
        }
    }
}
