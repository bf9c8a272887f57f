//! Linear evaluation with train-time augmentation on a frozen trunk, the two recipes of the
//! papers' own code (algorithms.md §6.1), run by [`super::classifier`]:
//!
//! - [`moco`]: MoCo's and Un-Mix's `main_lincls.py` — head `N(0, 0.01)`, bias 0; SGD lr 30,
//!   momentum 0.9, no weight decay; 100 epochs, ×0.1 at epochs 60 and 80; batch 256; a
//!   random-resized crop (area 0.08–1) and a flip.
//! - [`swav`]: SwAV's `eval_linear.py` (its CIFAR version in the Un-Mix repo) — the same head;
//!   SGD lr 0.3, momentum 0.9, weight decay 1e-6; cosine to 0 over 100 epochs; batch 32 (the
//!   CIFAR script's, one GPU); the same augmentation.
//!
//! Both keep the trunk in evaluation mode (frozen batch-norm statistics). The test images go
//! through the run's evaluation transform (the references' `Resize` + `CenterCrop` on
//! ImageNet; none on CIFAR).

use super::classifier::{ClassifierRecipe, EpochSchedule, HeadInit};

/// `main_lincls.py`'s recipe.
pub fn moco() -> ClassifierRecipe {
    ClassifierRecipe {
        epochs: 100,
        batch_size: 256,
        head_lr: 30.0,
        trunk_lr: 0.0,
        momentum: 0.9,
        weight_decay: 0.0,
        schedule: EpochSchedule::Steps {
            milestones: vec![60, 80],
            gamma: 0.1,
        },
        head_init: HeadInit::Normal001,
        crop_scale: [0.08, 1.0],
    }
}

/// SwAV's `eval_linear.py` recipe (CIFAR batch).
pub fn swav() -> ClassifierRecipe {
    ClassifierRecipe {
        epochs: 100,
        batch_size: 32,
        head_lr: 0.3,
        trunk_lr: 0.0,
        momentum: 0.9,
        weight_decay: 1e-6,
        schedule: EpochSchedule::Cosine,
        head_init: HeadInit::Normal001,
        crop_scale: [0.08, 1.0],
    }
}
