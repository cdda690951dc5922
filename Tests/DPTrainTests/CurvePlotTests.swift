@testable import DPTrain
import Foundation
import Testing

@Suite("Curve plots")
struct CurvePlotTests {
    @Test func drawsOneLinePerSplitWithAPointPerEpoch() throws {
        let path = Support.temporaryDirectory() + "/m.jsonl"
        let lines = (1...3).flatMap { e in
            [
                #"{"event":"epoch","epoch":\#(e),"loss":\#(1.0 / Double(e)),"accuracy":\#(0.8 + 0.05 * Double(e))}"#,
                #"{"event":"eval","epoch":\#(e),"split":"test","loss":\#(1.2 / Double(e)),"accuracy":\#(0.75 + 0.05 * Double(e))}"#,
                #"{"event":"step","step":\#(e),"loss":0.5}"#,
            ]
        }
        try lines.joined(separator: "\n").write(toFile: path, atomically: true, encoding: .utf8)
        let (loss, accuracy) = try CurvePlot.series(metricsPath: path)
        #expect(loss.map(\.name) == ["test", "train"] && accuracy.count == 2)
        #expect(loss[1].points.map(\.y) == [1.0, 0.5, 1.0 / 3])
        let svg = CurvePlot.svg(loss: loss, accuracy: accuracy, title: "m")
        #expect(svg.components(separatedBy: "<polyline").count - 1 == 4)
        #expect(svg.components(separatedBy: "<circle").count - 1 == 12)
    }

    @Test func aFileWithoutEpochsIsAClearError() throws {
        let path = Support.temporaryDirectory() + "/m.jsonl"
        try #"{"event":"step","step":1,"loss":0.5}"#.write(toFile: path, atomically: true, encoding: .utf8)
        #expect(throws: ConfigError.self) { try CurvePlot.series(metricsPath: path) }
        try "not json".write(toFile: path, atomically: true, encoding: .utf8)
        do { _ = try CurvePlot.series(metricsPath: path); Issue.record("must fail") } catch {
            #expect("\(error)".contains("line 1"))
        }
    }
}
