//! NVPTX specifics `cubecl-cuda` reads even when its C++ compiler is selected.

/// The PTX ISA version choice.
pub mod ptx_version {
    use core::fmt;

    /// A PTX ISA version as the NVPTX target spells it (8.7 is `87`).
    ///
    /// `cubecl-cuda` asks for one at device start-up and uses it only for the LLVM path (the
    /// PTX it would emit, and that path's cache namespace). Nothing is emitted here, so no
    /// version is ever chosen: [`PtxVersion::for_driver`] answers `None`, which `cubecl-cuda`
    /// reads as "leave LLVM's default".
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct PtxVersion(u32);

    impl PtxVersion {
        /// The PTX version to emit for a driver of CUDA `driver` (12.8 is `12080`): always
        /// `None` in this build, which emits no PTX (NVRTC chooses its own).
        pub fn for_driver(driver: i32) -> Option<Self> {
            let _ = driver;
            None
        }
    }

    impl fmt::Display for PtxVersion {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "ptx{}", self.0)
        }
    }
}
