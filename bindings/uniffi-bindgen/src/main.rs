//! The UniFFI bindings generator, pinned to the runtime's version:
//! `cargo run --bin uniffi-bindgen -- generate --library target/release/libsnakeid_ffi.so --language kotlin --out-dir DIR`.

fn main() {
    uniffi::uniffi_bindgen_main()
}
