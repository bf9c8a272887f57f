//! solo-learn's online linear probe: during pre-training a linear classifier learns, step by
//! step, from the labels and the detached backbone features of each batch's first view, so a
//! run shows how linearly separable its features are without a separate evaluation. Reported as
//! `online_probe_train_top1` (the batches' accuracy before each update, over the epoch) and
//! `online_probe_test_top1` (the test images, at each evaluated epoch): never under the name of
//! the offline protocols (`unmix eval --protocol linear|linear-swav|wmse-linear`), which train a
//! fresh head on a finished encoder.
//!
//! As solo-learn (`solo/methods/base.py`): the features are detached, so the probe never changes
//! the encoder; its own SGD (momentum 0.9, no weight decay) at `eval.online_probe_lr` with the
//! run's schedule shape; cross-entropy. One difference, said here: solo-learn takes the features
//! from the training forward (batch norm in training mode); ours come from a separate forward of
//! the encoder in evaluation mode, because the methods' steps do not return their backbone
//! features and a training-mode forward would move the running statistics. It costs one
//! forward of one view per step. A run without labels has no probe. Its weights and optimiser
//! state are saved with each checkpoint (`probe.bpk`, `probe_optim.bpk`), so a resumed run
//! reports what an uninterrupted one does.

use std::path::Path;

use burn::module::Module;
use burn::nn::loss::{CrossEntropyLoss, CrossEntropyLossConfig};
use burn::nn::{Linear, LinearConfig};
use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsParams, ModuleOptimizer, SgdConfig};
use burn::prelude::*;
use burn::store::ModuleRecord;
use unmix_data::{ImageSet, MultiViewBatch, ViewTransform};

use crate::error::TrainError;
use crate::eval::{FeatureKind, knn};
use crate::method::Method;

/// The probe and its optimiser, with the epoch's running accuracy (kept on the device).
pub(crate) struct OnlineProbe {
    head: Linear,
    optim: ModuleOptimizer,
    lr: f64,
    loss: CrossEntropyLoss,
    correct: Option<Tensor<1, Int>>,
    seen: usize,
}

fn optimiser() -> ModuleOptimizer {
    SgdConfig::new()
        .with_momentum(Some(MomentumConfig {
            momentum: 0.9,
            dampening: 0.0,
            nesterov: false,
        }))
        .init()
}

impl OnlineProbe {
    /// A probe from `dim` features to `classes` classes (PyTorch's default initialisation),
    /// trained at `lr` times the run's schedule factor.
    pub(crate) fn new(dim: usize, classes: usize, lr: f64, device: &Device) -> Self {
        let device = device.clone().without_autodiff().autodiff();
        Self {
            head: LinearConfig::new(dim, classes).init(&device),
            optim: optimiser(),
            loss: CrossEntropyLossConfig::new().init(&device),
            lr,
            correct: None,
            seen: 0,
        }
    }

    /// One update on `batch`'s first view with `model` as it is before the step's update; the
    /// batch's accuracy (before the update) is added to the epoch's. `schedule` is the run's
    /// learning rate over its base rate at this step.
    pub(crate) fn step<M: Method>(&mut self, model: &M, batch: &MultiViewBatch, schedule: f64) {
        let Some(labels) = &batch.labels else { return };
        let images = batch.views[0].clone().without_autodiff();
        let features = model.valid().features(images).0.autodiff();
        let device = features.device();
        let targets = Tensor::<1, Int>::from_data(
            TensorData::new(labels.iter().map(|&l| l as i64).collect(), [labels.len()]),
            &device,
        );
        let logits = self.head.forward(features);
        let hits = logits
            .clone()
            .detach()
            .argmax(1)
            .squeeze_dim::<1>(1)
            .equal(targets.clone())
            .int()
            .sum();
        let hits = hits.without_autodiff();
        self.correct = Some(match self.correct.take() {
            Some(c) => c.add(hits),
            None => hits,
        });
        self.seen += labels.len();
        let loss = self.loss.forward(logits, targets);
        let grads = GradientsParams::from_grads(loss.backward(), &self.head);
        self.head = self
            .optim
            .step(self.lr * schedule, self.head.clone(), grads);
    }

    /// The epoch's training accuracy (%) so far, read back once, and a fresh count.
    pub(crate) fn take_train_top1(&mut self) -> Option<f64> {
        let correct = self.correct.take()?;
        let seen = std::mem::take(&mut self.seen).max(1);
        Some(100.0 * correct.into_scalar::<i64>() as f64 / seen as f64)
    }

    /// Top-1 (%) of the probe on `test` with `model`'s backbone features (evaluation mode).
    pub(crate) fn test_top1<M: Method>(
        &self,
        model: &M,
        test: &ImageSet,
        transform: &ViewTransform,
        device: &Device,
    ) -> Option<f64> {
        let labels = test.labels.as_ref()?;
        let f = knn::extract_features(model, test, transform, FeatureKind::Backbone, false, device);
        let plain = device.clone().without_autodiff();
        let head = self.head.valid();
        let mut hits = 0usize;
        for (chunk, ids) in f.data.chunks(4096 * f.dim).zip(labels.chunks(4096)) {
            let rows = chunk.len() / f.dim;
            let x = Tensor::<2>::from_data(TensorData::new(chunk.to_vec(), [rows, f.dim]), &plain);
            let predicted: Vec<i64> = head
                .forward(x)
                .argmax(1)
                .into_data()
                .convert::<i64>()
                .try_to_vec()
                .expect("class ids");
            hits += predicted
                .iter()
                .zip(ids)
                .filter(|(p, l)| **p == **l as i64)
                .count();
        }
        Some(100.0 * hits as f64 / labels.len().max(1) as f64)
    }

    /// Writes the probe's weights and optimiser state into a checkpoint folder.
    pub(crate) fn save(&self, dir: &Path) -> Result<(), TrainError> {
        let fail = |path: &Path, e: String| TrainError::Checkpoint {
            path: path.to_path_buf(),
            message: e,
        };
        let p = dir.join("probe.bpk");
        self.head
            .clone()
            .into_record()
            .save(&p)
            .map_err(|e| fail(&p, e.to_string()))?;
        let p = dir.join("probe_optim.bpk");
        self.optim.save(&p).map_err(|e| fail(&p, e.to_string()))
    }

    /// The probe of a checkpoint folder, when it has one (a checkpoint written without a probe
    /// leaves this one fresh).
    pub(crate) fn load(mut self, dir: &Path) -> Result<Self, TrainError> {
        let p = dir.join("probe.bpk");
        if !p.exists() {
            return Ok(self);
        }
        let fail = |path: &Path, e: String| TrainError::Checkpoint {
            path: path.to_path_buf(),
            message: e,
        };
        let record = ModuleRecord::load(&p).map_err(|e| fail(&p, e.to_string()))?;
        self.head = self
            .head
            .try_load_record(record)
            .map_err(|e| fail(&p, format!("does not match the probe: {e}")))?;
        let p = dir.join("probe_optim.bpk");
        self.optim = self.optim.load(&p).map_err(|e| fail(&p, e.to_string()))?;
        Ok(self)
    }
}
