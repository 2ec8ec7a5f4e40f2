// XCTest cases for the Swift package: identify, typed errors, threads, bundle info, benchmark.
// Run on macOS after build-xcframework.sh: `swift test` (host) or `xcodebuild test -scheme SnakeID -destination 'platform=iOS Simulator,name=iPhone 15'`.
import Foundation
import XCTest
@testable import SnakeID

final class SnakeIDTests: XCTestCase {
    static let classifier = try! Classifier()

    func photo(_ name: String) throws -> Data {
        let url = try XCTUnwrap(Bundle.module.url(forResource: name, withExtension: nil, subdirectory: "Photos"))
        return try Data(contentsOf: url)
    }

    func testIdentifyRanksSpecies() throws {
        let answer = try Self.classifier.identify(image: try photo("chelsea.png"), country: "IN", topK: 3)
        XCTAssertEqual(answer.predictions.count, 3)
        XCTAssertEqual(answer.country, "IN")
        XCTAssertTrue(answer.priorApplied)
        let probs = answer.predictions.map(\.probability)
        XCTAssertEqual(probs, probs.sorted(by: >))
        XCTAssertGreaterThan(answer.timingsMs.inference, 0)
    }

    func testBadImageThrowsInvalidImage() throws {
        XCTAssertThrowsError(try Self.classifier.identify(image: Data("not an image".utf8), country: nil, topK: 3)) { error in
            guard case SnakeIdError.InvalidImage(let message) = error else { return XCTFail("got \(error)") }
            XCTAssertFalse(message.isEmpty)
        }
        // The classifier keeps working after an error.
        XCTAssertFalse(try Self.classifier.identify(image: try photo("rocket.jpg"), country: nil, topK: 1).predictions.isEmpty)
    }

    func testUnknownCountrySuggests() throws {
        XCTAssertThrowsError(try Self.classifier.identify(image: try photo("chelsea.png"), country: "Indai", topK: 3)) { error in
            guard case SnakeIdError.UnknownCountry(let message) = error else { return XCTFail("got \(error)") }
            XCTAssertTrue(message.contains("did you mean IN"), message)
        }
    }

    func testTamperedBundleIsRefused() throws {
        XCTAssertThrowsError(try Classifier.fromBundleBytes(bytes: Data("SNAKEIDB garbage".utf8))) { error in
            guard case SnakeIdError.InvalidBundle = error else { return XCTFail("got \(error)") }
        }
    }

    func testBundleInfo() {
        let info = Self.classifier.bundleInfo()
        XCTAssertEqual(info.species.count, 17)
        XCTAssertTrue(info.species.contains { $0.scientificName == "Naja naja" && $0.venomous })
        XCTAssertTrue(info.countries.contains("IN"))
    }

    func testManyThreadsShareOneClassifier() throws {
        let data = try photo("coffee.png")
        let want = try Self.classifier.identify(image: data, country: "US", topK: 5).predictions
        var answers = [[Prediction]](repeating: [], count: 8)
        let lock = NSLock()
        DispatchQueue.concurrentPerform(iterations: 8) { i in
            let got = (try? Self.classifier.identify(image: data, country: "US", topK: 5).predictions) ?? []
            lock.lock(); answers[i] = got; lock.unlock()
        }
        XCTAssertTrue(answers.allSatisfy { $0 == want })
    }

    func testBenchmark() throws {
        let r = try Self.classifier.benchmark(image: try photo("rocket.jpg"), iterations: 10)
        XCTAssertEqual(r.iterations, 10)
        XCTAssertGreaterThan(r.coldStartMs, 0)
        XCTAssertLessThanOrEqual(r.stagesMs.total.p50, r.stagesMs.total.p99)
        print(String(format: "snakeid bench: total p50 %.2f ms, inference p50 %.2f ms, peak RSS %.0f MB",
                     r.stagesMs.total.p50, r.stagesMs.inference.p50, r.peakRssMb))
    }
}
