//! The TaskManager gRPC API, generated from `proto/taskmanager.proto`.
//!
//! The proto is compiled by `protox` in `build.rs`, so no system `protoc` is needed.

pub mod codec;

/// Generated messages, the `TaskManager` client and the `TaskManager` server trait.
pub mod pb {
    #![allow(missing_docs, unreachable_pub, clippy::all, reason = "generated code")]
    tonic::include_proto!("proto");
}

/// The original system's API (`proto/original/taskmanager.proto`), unextended: the code an
/// existing client was generated from. Compatibility tests drive the current server with it.
pub mod original {
    #![allow(missing_docs, unreachable_pub, clippy::all, reason = "generated code")]
    include!(concat!(env!("OUT_DIR"), "/original/proto.rs"));
}

/// The encoded `FileDescriptorSet` of `taskmanager.proto`, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/taskmanager_descriptor.bin"));
