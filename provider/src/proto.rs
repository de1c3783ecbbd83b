//! Generated gRPC code (see `build.rs` and `proto/`). Only `server` and the
//! in-process tests look in here: the engine works on native types.

#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod tfplugin6 {
    tonic::include_proto!("tfplugin6");
}

#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod plugin {
    tonic::include_proto!("plugin");
}
