//! Compiles `taskmanager.proto` with `protox` (a protobuf compiler written in Rust), so that
//! building the workspace never needs a system `protoc`. Also compiles the original API in
//! `original/`, which compatibility tests use as an unmodified old client.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    println!("cargo:rerun-if-changed=taskmanager.proto");
    println!("cargo:rerun-if-changed=original/taskmanager.proto");

    let descriptors = protox::compile(["taskmanager.proto"], ["."])?;
    // The descriptor set is kept for server reflection and for the wire-compatibility test.
    std::fs::write(
        out_dir.join("taskmanager_descriptor.bin"),
        prost::Message::encode_to_vec(&descriptors),
    )?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        // Small first buffers: idle status streams then cost little memory (src/codec.rs).
        .codec_path("crate::codec::Codec")
        .compile_fds(descriptors)?;

    let original_dir = out_dir.join("original");
    std::fs::create_dir_all(&original_dir)?;
    let original = protox::compile(["taskmanager.proto"], ["original"])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .out_dir(&original_dir)
        .compile_fds(original)?;
    Ok(())
}
