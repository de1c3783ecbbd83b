//! Generates the tfplugin6 and go-plugin gRPC code with the protoc shipped in
//! the `protoc-bin-vendored` crate, so a fresh machine needs no protoc install.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let well_known = protoc_bin_vendored::include_path()?;
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc);
    let proto_dir = PathBuf::from("proto");
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_with_config(
            config,
            &[
                proto_dir.join("tfplugin6.proto"),
                proto_dir.join("plugin.proto"),
            ],
            &[proto_dir, well_known],
        )?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
