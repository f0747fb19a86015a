//! Generates the gRPC code for `proto/cachet/v1/cache.proto` with a vendored `protoc`,
//! so a fresh machine needs no system protobuf compiler.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    std::env::set_var("PROTOC", protoc);
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .codec_path("crate::proto::StrictCodec")
        .file_descriptor_set_path(out_dir.join("cachet_v1_descriptor.bin"))
        .compile_protos(&["proto/cachet/v1/cache.proto"], &["proto"])?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
