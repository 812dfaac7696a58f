//! Compiles the LCP service protobuf with the pure-Rust `protox` compiler (no system protoc).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = ["proto/lcp.proto"];
    for f in files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["proto"])?;
    tonic_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
