// App state: the shared classifier (loaded once, off the main thread), the last photo, answer and benchmark, and
// this phone's coarse position (Core Location: works without network), used for the country when none is typed and
// the photo has no GPS position.
import CoreLocation
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
    @Published var positionNote = ""
    private var position: Location?
    private lazy var positions = PositionReader { [weak self] fix, note in
        if let fix { self?.position = Location(latitude: fix.coordinate.latitude, longitude: fix.coordinate.longitude) }
        self?.positionNote = note
    }

    private var classifier: Classifier?

    /// Asks for the position once per launch (When In Use, reduced accuracy: a country needs no more).
    func askPosition() {
        positions.start()
    }

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
            let position = self.position
            self.answer = try await Task.detached {
                try c.identify(image: data, country: country.isEmpty ? nil : country, topK: 3, location: position)
            }.value
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

/// One coarse fix from Core Location, reported on the main actor with a line for the screen when there is none.
final class PositionReader: NSObject, CLLocationManagerDelegate {
    private let manager = CLLocationManager()
    private let report: @MainActor (CLLocation?, String) -> Void

    init(report: @escaping @MainActor (CLLocation?, String) -> Void) {
        self.report = report
        super.init()
        manager.delegate = self
        manager.desiredAccuracy = kCLLocationAccuracyReduced
    }

    func start() {
        manager.requestWhenInUseAuthorization() // answered in locationManagerDidChangeAuthorization
    }

    func locationManagerDidChangeAuthorization(_ manager: CLLocationManager) {
        switch manager.authorizationStatus {
        case .authorizedWhenInUse, .authorizedAlways: manager.requestLocation()
        case .denied, .restricted: send(nil, "Position not allowed: type the country above.")
        default: break
        }
    }

    func locationManager(_ manager: CLLocationManager, didUpdateLocations locations: [CLLocation]) {
        send(locations.last, "")
    }

    func locationManager(_ manager: CLLocationManager, didFailWithError error: Error) {
        send(manager.location, manager.location == nil ? "Position not known yet: type the country above." : "")
    }

    private func send(_ fix: CLLocation?, _ note: String) {
        Task { @MainActor in report(fix, note) }
    }
}
