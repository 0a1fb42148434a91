//! Compiles Skiff's own pull-progress protocol (the CRI protos come from `k8s-cri`).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/skiff/images/v1/progress.proto";
    println!("cargo:rerun-if-changed={proto}");
    tonic_prost_build::configure().compile_protos(&[proto], &["proto"])?;
    Ok(())
}
