// Benchmark screen: the same numbers as `snakeid bench`, measured on this phone with the last photo.
import SwiftUI

struct BenchmarkView: View {
    @EnvironmentObject var model: FieldModel

    var body: some View {
        NavigationStack {
            Form {
                Section {
                    Text("Runs 30 identifications of the last photo.")
                    Button("Run benchmark") { Task { await model.benchmark() } }.disabled(model.busy)
                    if model.busy { ProgressView() }
                    if let error = model.error { Text(error).foregroundStyle(.red) }
                }
                if let r = model.report {
                    let s = r.stagesMs
                    Section("Results") {
                        row("cold start", String(format: "%.0f ms", r.coldStartMs))
                        row("first call", String(format: "%.0f ms", r.firstCallMs))
                        row("decode p50", String(format: "%.1f ms", s.decode.p50))
                        row("preprocess p50", String(format: "%.1f ms", s.preprocess.p50))
                        row("inference p50/p90/p99", String(format: "%.1f / %.1f / %.1f ms", s.inference.p50, s.inference.p90, s.inference.p99))
                        row("total p50/p90/p99", String(format: "%.1f / %.1f / %.1f ms", s.total.p50, s.total.p90, s.total.p99))
                        row("peak RSS", String(format: "%.0f MB", r.peakRssMb))
                        row("backend / threads", "\(r.backend) / \(r.threads)")
                    }
                }
            }
            .navigationTitle("Benchmark")
        }
    }

    private func row(_ key: String, _ value: String) -> some View {
        HStack { Text(key); Spacer(); Text(value).monospacedDigit() }
    }
}
