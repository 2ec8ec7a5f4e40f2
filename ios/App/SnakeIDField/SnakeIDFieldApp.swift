// The SnakeID field app entry point: two tabs, Identify and Benchmark, over one shared model.
import SwiftUI

@main
struct SnakeIDFieldApp: App {
    @StateObject private var model = FieldModel()

    var body: some Scene {
        WindowGroup {
            TabView {
                IdentifyView().tabItem { Label("Identify", systemImage: "camera.viewfinder") }
                BenchmarkView().tabItem { Label("Benchmark", systemImage: "speedometer") }
            }
            .environmentObject(model)
            .task { await model.warmUp() }
        }
    }
}
