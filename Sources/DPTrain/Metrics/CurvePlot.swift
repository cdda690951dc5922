import Foundation

/// Draws training curves from a metrics file as an SVG: loss (left) and accuracy (right) per
/// epoch, for training and for every evaluated split — for users without TensorBoard.
public enum CurvePlot {
    public struct Series {
        public var name: String
        public var points: [(x: Double, y: Double)]
    }

    /// Reads `epoch` and `eval` events of a JSON Lines metrics file into loss and accuracy series.
    public static func series(metricsPath path: String) throws -> (loss: [Series], accuracy: [Series]) {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw ConfigError.unreadable(path: path, reason: "no such file or not UTF-8")
        }
        var loss: [String: [(Double, Double)]] = [:], accuracy: [String: [(Double, Double)]] = [:]
        for (number, line) in text.split(separator: "\n").enumerated() {
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
                throw ConfigError.invalid(key: path, reason: "line \(number + 1) is not a JSON object")
            }
            guard let epoch = object["epoch"] as? Int else { continue }
            let name: String
            switch object["event"] as? String {
            case "epoch": name = "train"
            case "eval": name = object["split"] as? String ?? "eval"
            default: continue
            }
            if let l = object["loss"] as? Double { loss[name, default: []].append((Double(epoch), l)) }
            if let a = object["accuracy"] as? Double { accuracy[name, default: []].append((Double(epoch), a)) }
        }
        guard !loss.isEmpty else {
            throw ConfigError.invalid(
                key: path, reason: "holds no epoch or eval events (written by dptrain train --metrics-file?)")
        }
        func list(_ d: [String: [(Double, Double)]]) -> [Series] {
            d.keys.sorted().map { Series(name: $0, points: d[$0]!.map { (x: $0.0, y: $0.1) }) }
        }
        return (list(loss), list(accuracy))
    }

    /// Two panels side by side, `width` x `height` pixels.
    public static func svg(
        loss: [Series], accuracy: [Series], title: String, width: Int = 900, height: Int = 360
    ) -> String {
        let colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"]
        var out = [
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(width)\" height=\"\(height)\" font-family=\"sans-serif\" font-size=\"11\">",
            "<rect width=\"\(width)\" height=\"\(height)\" fill=\"white\"/>",
            "<text x=\"\(width / 2)\" y=\"16\" text-anchor=\"middle\" font-size=\"13\">\(escape(title))</text>",
        ]
        let margin = 50.0
        for (panel, (label, series)) in [("loss", loss), ("accuracy", accuracy)].enumerated() {
            let all = series.flatMap(\.points)
            guard !all.isEmpty else { continue }
            let x0 = margin + Double(panel * width / 2), pw = Double(width / 2) - 2 * margin,
                ph = Double(height) - 2 * margin
            let (xMin, xMax) = (all.map(\.x).min()!, max(all.map(\.x).max()!, all.map(\.x).min()! + 1))
            var (yMin, yMax) = (all.map(\.y).min()!, all.map(\.y).max()!)
            if yMax - yMin < 1e-9 { yMin -= 0.5; yMax += 0.5 }
            let pad = (yMax - yMin) * 0.05
            (yMin, yMax) = (yMin - pad, yMax + pad)
            func px(_ x: Double) -> Double { x0 + pw * (x - xMin) / (xMax - xMin) }
            func py(_ y: Double) -> Double { margin + ph - ph * (y - yMin) / (yMax - yMin) }
            out.append("<text x=\"\(x0)\" y=\"\(margin - 12)\" font-size=\"12\">\(label)</text>")
            out.append(
                String(
                    format: "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\"/>", x0, margin + ph,
                    x0 + pw, margin + ph))
            out.append(
                String(
                    format: "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\"/>", x0, margin, x0,
                    margin + ph))
            for t in 0...4 {
                let y = yMin + (yMax - yMin) * Double(t) / 4
                out.append(
                    String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.4g</text>", x0 - 4, py(y) + 4, y))
            }
            for e in Int(xMin.rounded(.up))...Int(xMax) {
                out.append(
                    String(
                        format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%d</text>", px(Double(e)),
                        margin + ph + 14, e))
            }
            out.append(
                String(
                    format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">epoch</text>", x0 + pw / 2,
                    margin + ph + 30))
            for (i, s) in series.enumerated() {
                let color = colors[i % colors.count]
                let points = s.points.map { String(format: "%.1f,%.1f", px($0.x), py($0.y)) }.joined(separator: " ")
                out.append("<polyline points=\"\(points)\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\"/>")
                for p in s.points {
                    out.append(
                        String(format: "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%@\"/>", px(p.x), py(p.y), color)
                    )
                }
                out.append(
                    String(
                        format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" fill=\"%@\">%@</text>", x0 + pw,
                        margin + 12 + 14 * Double(i), color, escape(s.name)))
            }
        }
        out.append("</svg>")
        return out.joined(separator: "\n")
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(
            of: ">", with: "&gt;")
    }
}
