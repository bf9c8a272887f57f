//! unmix's stand-in for `cubecl-llvm` 0.11.3, without LLVM.
//!
//! `cubecl-cuda` 0.11 always compiles two kernel compilers: CUDA C++ handed to NVRTC at run time
//! (`cubecl-cpp`), and pliron → LLVM → PTX (`cubecl-llvm`). The second one's build downloads a
//! prebuilt LLVM bundle (`tracel-llvm-bundler`), which machines without internet access cannot
//! get, so `cargo build --features cuda` failed there. The workspace replaces the crate with this
//! one through `[patch.crates-io]`; `unmix-train`'s `cuda` feature turns on `cubecl-cuda`'s `cpp`
//! feature, which makes NVRTC the compiler every CUDA device uses.
//!
//! What is here is exactly what `cubecl-cuda` names (`compiler.rs`, `runtime.rs`,
//! `compute/context.rs`), written for this project against those call sites: the types keep
//! their names and fields, and the LLVM path answers every kernel with a
//! [`CompilationError`] that says why, rather than pretending to compile.
//!
//! Built with `cubecl-cuda` *without* its `cpp` feature (a crate that enables `burn/cuda` on
//! its own and not `unmix-train/cuda`), the runtime would pick the LLVM path, and the first
//! kernel would fail with that message.

pub mod nvptx;
pub mod shared;
pub mod target;

#[cfg(feature = "nvptx")]
pub use shared::NvptxModule;
pub use shared::{PlironArtifact, PlironCompiler, PlironOptions};
pub use target::LlvmTarget;
