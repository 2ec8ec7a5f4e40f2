//! Prints the decluttered tract graph of a bundle's model, node by node (what the GPU backend lowers).
//! `cargo run --release -p snakeid --example graph -- [BUNDLE|-]`

use tract_onnx::prelude::*;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let bundle = match std::env::args().nth(1).filter(|a| a != "-") {
        Some(p) => snakeid::Bundle::load(std::path::Path::new(&p))?,
        None => snakeid::Bundle::embedded_default()?,
    };
    let (w, h) = (bundle.manifest.input.width as usize, bundle.manifest.input.height as usize);
    let model = tract_onnx::onnx().model_for_read(&mut std::io::Cursor::new(&bundle.model))?;
    let model = model.with_input_fact(0, f32::fact([1, 3, h, w]).into())?.into_typed()?.into_decluttered()?;
    let model = if std::env::var_os("SNAKEID_OPTIMIZED").is_some() { let mut m = model.into_optimized()?; snakeid::fakequant::fuse(&mut m)?; m } else { model };
    for node in model.eval_order()? {
        let node = &model.nodes[node];
        let facts: Vec<String> = node.outputs.iter().map(|o| format!("{:?}", o.fact)).collect();
        println!("#{} {} [{}] <- {:?} :: {} :: {}", node.id, node.name, node.op.name(), node.inputs, node.op.info()?.join("; "), facts.join(", "));
    }
    Ok(())
}
