// App state: the shared classifier (loaded once, off the main thread), the last photo, answer and benchmark.
import Foundation
import SnakeID

@MainActor
final class FieldModel: ObservableObject {
    // Empty: no prior. Never the locale's region, which says the language, not where the phone is (issue 35).
    @Published var country: String = ""
    @Published var photo: Data?
    @Published var answer: Identification?
    @Published var report: BenchmarkReport?
    @Published var error: String?
    @Published var busy = false

    private var classifier: Classifier?

    /// Loads (compiles) the embedded model in the background so that the first photo is answered quickly.
    func warmUp() async {
        _ = try? await shared()
    }

    private func shared() async throws -> Classifier {
        if let c = classifier { return c }
        let c = try await Task.detached(priority: .userInitiated) { try Classifier() }.value
        classifier = c
        return c
    }

    func identify(_ data: Data) async {
        photo = data
        await run {
            let c = try await self.shared()
            let country = self.country.trimmingCharacters(in: .whitespaces)
            self.answer = try await Task.detached { try c.identify(image: data, country: country.isEmpty ? nil : country, topK: 3) }.value
        }
    }

    func benchmark() async {
        guard let data = photo else { error = "Take or pick a photo first."; return }
        await run {
            let c = try await self.shared()
            self.report = try await Task.detached { try c.benchmark(image: data, iterations: 30) }.value
        }
    }

    private func run(_ body: () async throws -> Void) async {
        busy = true
        error = nil
        defer { busy = false }
        do { try await body() } catch { self.error = (error as? LocalizedError)?.errorDescription ?? "\(error)" }
    }
}
