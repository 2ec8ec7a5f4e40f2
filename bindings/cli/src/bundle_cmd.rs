//! `snakeid bundle`: create a bundle from your own model, pack a bundle directory into one file, unpack one,
//! describe a bundle, and sign bundles (key generation, signing, verification).

use crate::{load_bundle, read_file, write_file};
use snakeid::internals::manifest::{
    self, ChannelOrder, DecisionSpec, FileRef, InputSpec, Manifest, ModelSpec, Resize, View,
};
use snakeid::internals::prior::{PriorTable, DEFAULT_SMOOTHING};
use snakeid::internals::sha256_hex;
use snakeid::internals::signing::SecretKey;
use snakeid::{Bundle, Classifier, Error, PublicKey};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `snakeid bundle create`: your ONNX classifier + labels (+ prior) + preprocessing → a verified packed bundle.
#[derive(clap::Args)]
pub struct CreateArgs {
    /// The classifier, ending in logits (float or int8 QDQ ONNX; no Softmax at the end).
    #[arg(long)]
    onnx: PathBuf,
    /// labels.csv: class_index,label,scientific_name,genus,family,venomous,is_snake (one row per model output).
    #[arg(long)]
    labels: PathBuf,
    /// Species-by-country prior: a table compiled by `snakeid prior build`, or the SnakeCLEF-style CSV itself.
    #[arg(long)]
    prior: Option<PathBuf>,
    /// Smoothing when --prior is a CSV.
    #[arg(long, default_value_t = DEFAULT_SMOOTHING)]
    smoothing: f64,
    /// Model input side in pixels (square), e.g. 224, or WIDTHxHEIGHT, e.g. 456x456.
    #[arg(long)]
    size: String,
    /// `stretch` (resize straight to the input size, as SnakeCLEF 2020's BiT) or `crop` (resize the shorter side
    /// to --shorter-side, then centre-crop, as torchvision's evaluation transform).
    #[arg(long, default_value = "crop", value_parser = ["crop", "stretch"])]
    resize: String,
    /// Shorter side before the centre crop (default: the input side x 8/7, i.e. 256 for 224).
    #[arg(long)]
    shorter_side: Option<u32>,
    /// Per-channel mean of pixels scaled to [0, 1], e.g. 0.485,0.456,0.406 (BiT: 0.5,0.5,0.5).
    #[arg(long)]
    mean: String,
    /// Per-channel std, e.g. 0.229,0.224,0.225 (BiT: 0.5,0.5,0.5).
    #[arg(long)]
    std: String,
    /// The model expects BGR instead of RGB.
    #[arg(long)]
    bgr: bool,
    #[arg(long, default_value = "my-snake-model")]
    name: String,
    #[arg(long, default_value = "0.1.0")]
    version: String,
    #[arg(long, default_value = "")]
    description: String,
    /// Free text stored in the manifest, e.g. int8-qdq or float32.
    #[arg(long, default_value = "")]
    precision: String,
    /// Where to write the packed bundle (.snkb).
    #[arg(long)]
    out: PathBuf,
}

#[derive(clap::Subcommand)]
pub enum BundleCommand {
    /// Make a verified bundle from your own ONNX model, labels and prior (the model is compiled to check it).
    Create(Box<CreateArgs>),
    /// Verify a bundle directory and pack it into a single file.
    Pack {
        dir: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
    /// Verify a packed bundle (default: the embedded one) and write its files into a directory.
    Unpack {
        #[arg(long)]
        bundle: Option<PathBuf>,
        #[arg(long)]
        out: PathBuf,
    },
    /// Verify a bundle (default: the embedded one) and describe it.
    Info {
        #[arg(long)]
        bundle: Option<PathBuf>,
    },
    /// Make a signing key pair: the secret key (hex) goes to --out, the public key (hex) to stdout.
    Keygen {
        #[arg(long)]
        out: PathBuf,
    },
    /// Sign a bundle (packed file or directory) with a secret key from `bundle keygen`; writes a packed bundle.
    Sign {
        bundle: PathBuf,
        #[arg(long)]
        key: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
    /// Check a bundle's digests and that its signature verifies with one of the given public keys.
    Verify {
        bundle: PathBuf,
        /// An ed25519 public key, 64 hex digits (repeat for several).
        #[arg(long = "trusted-key", value_name = "HEX", required = true)]
        trusted_keys: Vec<String>,
    },
}

pub fn run(cmd: BundleCommand) -> snakeid::Result<ExitCode> {
    match cmd {
        BundleCommand::Create(args) => create(&args)?,
        BundleCommand::Pack { dir, out } => {
            let bytes = Bundle::pack_dir(&dir)?;
            write_file(&out, &bytes)?;
            eprintln!("wrote {} ({} bytes)", out.display(), bytes.len());
        }
        BundleCommand::Unpack { bundle, out } => {
            let bytes = match bundle {
                Some(p) => read_file(&p)?,
                None => snakeid::Bundle::embedded_default_bytes()?.to_vec(),
            };
            Bundle::unpack_to_dir(&bytes, &out)?;
            eprintln!("unpacked into {}", out.display());
        }
        BundleCommand::Info { bundle } => {
            let b = load_bundle(bundle.as_ref(), &[])?;
            let m = &b.manifest;
            println!("{} {} ({})", m.name, m.version, m.model.precision);
            println!("{}", m.description);
            println!(
                "input {}x{} {:?}, {} classes, {} species",
                m.input.width,
                m.input.height,
                m.input.resize,
                b.labels.len(),
                b.species().count()
            );
            for l in b.species() {
                println!(
                    "  {:>4}  {:<34} {:<28} {}",
                    l.class_index,
                    l.label,
                    l.scientific_name,
                    if l.venomous { "venomous" } else { "" }
                );
            }
            if let Some(p) = &b.prior {
                println!("prior: {} countries, smoothing {}", p.countries().count(), p.smoothing());
            }
            if let Some(p) = bundle.filter(|p| p.is_file()) {
                let signed = Bundle::is_signed_packed(&read_file(&p)?)?;
                println!(
                    "signature: {}",
                    if signed { "present (check it with `snakeid bundle verify`)" } else { "none" }
                );
            }
        }
        BundleCommand::Keygen { out } => {
            let mut seed = [0u8; 32];
            std::fs::File::open("/dev/urandom")
                .and_then(|mut rng| std::io::Read::read_exact(&mut rng, &mut seed))
                .map_err(|e| Error::Io { path: "/dev/urandom".into(), source: e })?;
            let key = SecretKey::from_seed(seed);
            write_secret(&out, &key.to_hex())?;
            println!("{}", key.public_key().to_hex());
            eprintln!(
                "secret key written to {} (keep it off devices); public key above (compile it into the app)",
                out.display()
            );
        }
        BundleCommand::Sign { bundle, key, out } => {
            let key = SecretKey::from_hex(&String::from_utf8_lossy(&read_file(&key)?))?;
            let packed = if bundle.is_dir() { Bundle::pack_dir(&bundle)? } else { read_file(&bundle)? };
            let signed = Bundle::sign_packed(&packed, &key)?;
            write_file(&out, &signed)?;
            eprintln!("wrote {} signed by {}", out.display(), key.public_key().to_hex());
        }
        BundleCommand::Verify { bundle, trusted_keys } => {
            let b = Bundle::load_signed(&bundle, &PublicKey::from_hex_all(&trusted_keys)?)?;
            println!("{}: digests and signature verify ({} {})", bundle.display(), b.manifest.name, b.manifest.version);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes a secret key readable by its owner only.
fn write_secret(path: &Path, hex: &str) -> snakeid::Result<()> {
    use std::io::Write;
    let io = |e| Error::Io { path: path.to_path_buf(), source: e };
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    opts.open(path).and_then(|mut f| f.write_all(format!("{hex}\n").as_bytes())).map_err(io)
}

fn bad(msg: String) -> Error {
    Error::InvalidBundle(msg)
}

fn triple(what: &str, s: &str) -> snakeid::Result<[f32; 3]> {
    let v: Vec<f32> = s
        .split(',')
        .map(|x| x.trim().parse::<f32>())
        .collect::<Result<_, _>>()
        .map_err(|_| bad(format!("--{what} must be three numbers like 0.5,0.5,0.5, got {s:?}")))?;
    let arr: [f32; 3] = v.try_into().map_err(|_| bad(format!("--{what} must be three numbers, got {s:?}")))?;
    if what == "std" && arr.iter().any(|x| *x <= 0.0) {
        return Err(bad(format!("--std must be positive, got {s:?}")));
    }
    Ok(arr)
}

fn size(s: &str) -> snakeid::Result<(u32, u32)> {
    let parse =
        |x: &str| x.trim().parse::<u32>().map_err(|_| bad(format!("--size must be like 224 or 456x456, got {s:?}")));
    match s.split_once(['x', 'X']) {
        Some((w, h)) => Ok((parse(w)?, parse(h)?)),
        None => parse(s).map(|n| (n, n)),
    }
}

fn create(a: &CreateArgs) -> snakeid::Result<()> {
    let (width, height) = size(&a.size)?;
    let resize = match a.resize.as_str() {
        "stretch" => Resize::Stretch,
        _ => Resize::ShorterSideCenterCrop {
            shorter_side: a.shorter_side.unwrap_or((width.max(height) * 8).div_ceil(7)),
        },
    };
    let model = read_file(&a.onnx)?;
    let labels_bytes = read_file(&a.labels)?;
    let labels = snakeid::internals::labels::parse(&labels_bytes)?;
    let prior_bytes = match &a.prior {
        None => None,
        Some(p) => {
            let bytes = read_file(p)?;
            Some(if bytes.starts_with(b"SNKPRIOR") {
                PriorTable::from_bytes(&bytes)?;
                bytes
            } else {
                let (table, _) = PriorTable::build_from_csv(bytes.as_slice(), a.smoothing)?;
                table.to_bytes()
            })
        }
    };
    let file_ref = |file: &str, data: &[u8]| FileRef { file: file.into(), sha256: sha256_hex(data) };
    let manifest = Manifest {
        format: manifest::FORMAT.into(),
        format_version: manifest::FORMAT_VERSION,
        name: a.name.clone(),
        version: a.version.clone(),
        description: a.description.clone(),
        model: ModelSpec {
            file: "model.onnx".into(),
            sha256: sha256_hex(&model),
            num_classes: labels.len(),
            precision: a.precision.clone(),
            temperature: 1.0,
        },
        input: InputSpec {
            width,
            height,
            resize,
            mean: triple("mean", &a.mean)?,
            std: triple("std", &a.std)?,
            channel_order: if a.bgr { ChannelOrder::Bgr } else { ChannelOrder::Rgb },
            views: vec![View::Primary],
        },
        labels: file_ref("labels.csv", &labels_bytes),
        prior: prior_bytes.as_deref().map(|p| file_ref("prior.bin", p)),
        decision: DecisionSpec::default(),
    };
    manifest.validate()?;
    let mut files = BTreeMap::new();
    files.insert("manifest.json".to_string(), serde_json::to_vec_pretty(&manifest).expect("manifest serialises"));
    files.insert("model.onnx".to_string(), model);
    files.insert("labels.csv".to_string(), labels_bytes);
    if let Some(p) = prior_bytes {
        files.insert("prior.bin".to_string(), p);
    }
    let (bundle, packed) = Bundle::pack_files(files)?;
    // Compile it once: an unsupported operator, a non-logit output or a label count that differs from the
    // model's outputs is refused here, not on a phone in the field.
    let classifier = Classifier::new(bundle)?;
    write_file(&a.out, &packed)?;
    eprintln!(
        "wrote {} ({} bytes): {} classes, {} species, input {}x{}, model compiled in {:.0} ms",
        a.out.display(),
        packed.len(),
        labels.len(),
        classifier.bundle().species().count(),
        width,
        height,
        classifier.cold_start_ms()
    );
    Ok(())
}
