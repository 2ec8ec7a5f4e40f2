//! Prints the decluttered tract graph of a bundle's model, node by node (what the GPU backend lowers), or with
//! SNAKEID_OPTIMIZED=1 the optimised graph the CPU engine runs, or with SNAKEID_TYPED=1 the typed graph straight
//! from the importer (where the CPU engine swaps in its operators).
//! `cargo run --release -p snakeid --example graph -- [BUNDLE|-]`

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let bundle = match std::env::args().nth(1).filter(|a| a != "-") {
        Some(p) => snakeid::Bundle::load(std::path::Path::new(&p))?,
        None => snakeid::Bundle::embedded_default()?,
    };
    let (m, n) = (&bundle.manifest, bundle.manifest.model.num_classes);
    let typed = snakeid::internals::model::typed_model(bundle.model.clone(), m.input.width, m.input.height, n)?;
    // SNAKEID_OPTIMIZED=1: the graph the CPU engine runs (our operators swapped in, then optimised).
    let model = if std::env::var_os("SNAKEID_OPTIMIZED").is_some() {
        snakeid::internals::cpu::optimized_model(typed, snakeid::internals::cpu::OwnOps::ALL)?
    } else if std::env::var_os("SNAKEID_TYPED").is_some() {
        typed
    } else {
        typed.into_decluttered()?
    };
    for node in model.eval_order()? {
        let node = &model.nodes[node];
        let facts: Vec<String> = node.outputs.iter().map(|o| format!("{:?}", o.fact)).collect();
        println!(
            "#{} {} [{}] <- {:?} :: {} :: {}",
            node.id,
            node.name,
            node.op.name(),
            node.inputs,
            node.op.info()?.join("; "),
            facts.join(", ")
        );
    }
    Ok(())
}
