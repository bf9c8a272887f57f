//! `unmix export`: a checkpoint's backbone as safetensors under torchvision's names, to load in
//! PyTorch (`unmix_models::save_torchvision` says how).

use std::path::{Path, PathBuf};

use crate::error::TrainError;
use crate::method::Method;
use crate::methods::MethodTask;
use crate::run::checkpoint;

/// One file `export_checkpoint` wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportedBackbone {
    /// The trunk's name in the method (`backbone`; CMC's `l` and `ab`).
    pub name: &'static str,
    /// Where it was written.
    pub path: PathBuf,
    /// Tensors written (parameters and batch-norm statistics).
    pub tensors: usize,
    /// Width of its pooled features.
    pub feature_dim: usize,
}

/// Writes the backbone of the checkpoint in `dir` to `out` (safetensors, torchvision's names).
/// A method with several trunks (CMC) writes one file each, `<out stem>.<name>.safetensors`.
pub fn export_checkpoint(dir: &Path, out: &Path) -> Result<Vec<ExportedBackbone>, TrainError> {
    let config = checkpoint::config_of(dir)?;
    let (train_set, _) = config.data.load()?;
    // Weights are copied, not computed: on the CPU backend (named, so that a build without it
    // says so rather than failing to compile).
    let device = crate::device::parse_device("cpu")?;
    struct Export<'a> {
        dir: &'a Path,
        out: &'a Path,
    }
    impl MethodTask for Export<'_> {
        type Output = Vec<ExportedBackbone>;
        fn run<M: Method>(self, model: M) -> Result<Self::Output, TrainError> {
            let model = checkpoint::load_model(self.dir, model)?;
            let backbones = model.backbones();
            let several = backbones.len() > 1;
            let mut written = Vec::new();
            for (name, resnet) in backbones {
                let path = if several {
                    let stem = self.out.file_stem().unwrap_or_default().to_string_lossy();
                    self.out
                        .with_file_name(format!("{stem}.{name}.safetensors"))
                } else {
                    self.out.to_path_buf()
                };
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent).map_err(|e| TrainError::io(parent, e))?;
                }
                unmix_models::save_torchvision(resnet, &path)?;
                let last = resnet.layer4.last().expect("a ResNet has four stages");
                written.push(ExportedBackbone {
                    name,
                    tensors: unmix_models::named_tensors(resnet).len(),
                    feature_dim: last
                        .conv3
                        .as_ref()
                        .unwrap_or(&last.conv2)
                        .weight
                        .val()
                        .dims()[0],
                    path,
                });
            }
            Ok(written)
        }
    }
    config
        .method
        .build(&config.model, train_set.len(), &device, Export { dir, out })
}
