// Identify screen: take or pick a photo, country override (else the photo's GPS, else this phone's position), top-3 with probabilities and venom warnings.
import PhotosUI
import SnakeID
import SwiftUI

struct IdentifyView: View {
    @EnvironmentObject var model: FieldModel
    @State private var picked: PhotosPickerItem?
    @State private var showCamera = false

    var body: some View {
        NavigationStack {
            Form {
                Section {
                    HStack {
                        Button("Take photo") { showCamera = true }
                            .disabled(!UIImagePickerController.isSourceTypeAvailable(.camera) || model.busy)
                        Spacer()
                        PhotosPicker("Pick photo", selection: $picked, matching: .images).disabled(model.busy)
                    }
                    TextField("Country (ISO code or name; empty = where this phone is)", text: $model.country)
                        .textInputAutocapitalization(.characters)
                    if !model.positionNote.isEmpty { Text(model.positionNote).font(.footnote) }
                }
                if model.busy { ProgressView() }
                if let error = model.error { Text(error).foregroundStyle(.red) }
                if let a = model.answer { AnswerSection(answer: a) }
            }
            .navigationTitle("SnakeID")
        }
        .task { model.askPosition() }
        .onChange(of: picked) { item in
            Task {
                if let data = try? await item?.loadTransferable(type: Data.self) { await model.identify(data) }
            }
        }
        .sheet(isPresented: $showCamera) {
            CameraPicker { image in
                if let data = image.jpegData(compressionQuality: 0.95) { Task { await model.identify(data) } }
            }
        }
    }
}

struct AnswerSection: View {
    let answer: Identification

    /// "Philippines (from this phone's location)": the country's name in the phone's language, and its source.
    private var place: String {
        guard let code = answer.country else { return "country unknown" }
        let name = Locale.current.localizedString(forRegionCode: code) ?? code
        switch answer.countrySource {
        case .photoGps: return name + " (from the photo's GPS)"
        case .deviceLocation: return name + " (from this phone's location)"
        default: return name
        }
    }

    private var verdict: String {
        let p = String(format: "%.0f%%", answer.snakeProbability * 100)
        switch answer.snakeVerdict {
        case .snake: return "Snake (\(p))"
        case .possible: return "Possibly a snake (\(p))"
        case .noSnake: return "No snake recognised in this photo (\(p))"
        }
    }

    private var named: String {
        answer.warningSpecies.map { String(format: "%@ %.0f%%", $0.label, $0.probability * 100) }.joined(separator: ", ")
    }

    var body: some View {
        Section("Answer") {
            Text(verdict).bold()
            if answer.venomousWarning {
                Text("POSSIBLY VENOMOUS (\(named)) — seek medical care")
                    .bold().foregroundStyle(.white).padding(8).frame(maxWidth: .infinity).background(.red)
            }
            if answer.uncertain {
                Text("Uncertain — treat as venomous and seek care").bold().foregroundStyle(.red)
            }
            // "None" reads as none: no species (and no "venomous") under "no snake".
            if answer.snakeVerdict == .noSnake {
                Text("If there is a snake, photograph it whole, closer and in focus, and try again.")
            }
            ForEach(answer.snakeVerdict == .noSnake ? [] : answer.predictions, id: \.classIndex) { p in
                HStack {
                    VStack(alignment: .leading) {
                        Text(p.label).bold()
                        Text(p.scientificName).italic()
                    }
                    Spacer()
                    Text(String(format: "%.1f%%", p.probability * 100) + (p.venomous ? " venomous" : ""))
                }
            }
            Text(place + (answer.priorApplied ? " · range prior applied" : "") + " · "
                 + String(format: "%.0f ms", answer.timingsMs.total) + " · \(answer.backend)")
                .font(.footnote)
        }
    }
}

/// The system camera, wrapped for SwiftUI.
struct CameraPicker: UIViewControllerRepresentable {
    let onImage: (UIImage) -> Void
    @Environment(\.dismiss) private var dismiss

    func makeUIViewController(context: Context) -> UIImagePickerController {
        let picker = UIImagePickerController()
        picker.sourceType = .camera
        picker.delegate = context.coordinator
        return picker
    }

    func updateUIViewController(_ controller: UIImagePickerController, context: Context) {}

    func makeCoordinator() -> Coordinator { Coordinator(self) }

    final class Coordinator: NSObject, UIImagePickerControllerDelegate, UINavigationControllerDelegate {
        let parent: CameraPicker
        init(_ parent: CameraPicker) { self.parent = parent }

        func imagePickerController(_ picker: UIImagePickerController, didFinishPickingMediaWithInfo info: [UIImagePickerController.InfoKey: Any]) {
            if let image = info[.originalImage] as? UIImage { parent.onImage(image) }
            parent.dismiss()
        }
    }
}
