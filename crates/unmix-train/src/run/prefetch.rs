//! The next batch on the device while the current step computes (issue 14, item 4): a thread
//! takes the loader's batches in order, makes each step's Un-Mix mixture on the host
//! ([`super::host_mixture`]) and uploads both, one batch ahead of the loop. What reaches the
//! loop is exactly what it would have built itself, in the same order; only the thread differs.

use std::sync::mpsc::{Receiver, sync_channel};
use std::thread::JoinHandle;

use burn::prelude::*;
use unmix_data::{EpochIter, MultiViewBatch};
use unmix_ops::{MixedBatch, UnMix};

use super::host_mixture;

/// One step's input on the device: the views and, with Un-Mix, the mixture of view 0.
pub(crate) type DeviceBatch = (MultiViewBatch, Option<MixedBatch>);

/// The batches of one epoch on the device, uploaded one ahead on their own thread.
pub(crate) struct DeviceBatches {
    received: Option<Receiver<DeviceBatch>>,
    uploader: Option<JoinHandle<()>>,
}

impl DeviceBatches {
    /// Uploads `batches` to `device`, the `i`-th with the mixture of step `first_step + i`.
    pub(crate) fn new(batches: EpochIter, unmix: &UnMix, first_step: u64, device: &Device) -> Self {
        // One batch waits on the device while the loop's step runs: more would only hold memory.
        let (send, received) = sync_channel(1);
        let (unmix, device) = (unmix.clone(), device.clone());
        let uploader = std::thread::spawn(move || {
            for (step, host) in (first_step..).zip(batches) {
                let mixed = host_mixture(&unmix, &host, step).map(|m| m.to_device(&device));
                if send.send((host.to_device(&device), mixed)).is_err() {
                    return; // the loop stopped early
                }
            }
        });
        Self {
            received: Some(received),
            uploader: Some(uploader),
        }
    }
}

impl Iterator for DeviceBatches {
    type Item = DeviceBatch;

    fn next(&mut self) -> Option<DeviceBatch> {
        match self.received.as_ref()?.recv() {
            Ok(batch) => Some(batch),
            Err(_) => {
                // The thread ended: the epoch is over, or it panicked, which must not pass for
                // a short epoch.
                self.received = None;
                if let Some(Err(panic)) = self.uploader.take().map(JoinHandle::join) {
                    std::panic::resume_unwind(panic);
                }
                None
            }
        }
    }
}

impl Drop for DeviceBatches {
    fn drop(&mut self) {
        // Dropping the receiver makes a blocked send fail, so the thread ends.
        self.received = None;
        if let Some(uploader) = self.uploader.take() {
            let _ = uploader.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::sync::Arc;

    use unmix_data::{MultiViewLoader, ViewTransform};

    use super::*;
    use crate::TrainConfig;

    /// The embedded Fashion-MNIST, 4 images per class, in MoCo + Un-Mix's two views, batches of
    /// 8 (5 per epoch).
    fn loader_and_unmix() -> (MultiViewLoader, UnMix) {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut config = TrainConfig::load(&root.join("configs/fashion_mnist/moco_unmix.toml"))
            .expect("the config loads");
        config.data.path = root.join("datasets/fashion-mnist");
        config.data.train_per_class = Some(4);
        let (train_set, _) = config.data.load().expect("the embedded set loads");
        let view = ViewTransform::new(config.data.augmentation.clone()).unwrap();
        let loader =
            MultiViewLoader::new(Arc::new(train_set), vec![view.clone(), view], 8, 2, 3).unwrap();
        (loader, UnMix::new(config.unmix.clone(), 5).unwrap())
    }

    fn values(t: &Tensor<4>) -> Vec<f32> {
        t.to_data().try_to_vec::<f32>().unwrap()
    }

    #[test]
    fn uploads_what_the_loop_would_build_in_order() {
        let device = Device::flex();
        let (loader, unmix) = loader_and_unmix();
        let first_step = 7;
        let direct: Vec<unmix_data::HostBatch> = loader.epoch(1, 0).collect();
        let uploaded: Vec<DeviceBatch> =
            DeviceBatches::new(loader.epoch(1, 0), &unmix, first_step, &device).collect();
        assert_eq!(uploaded.len(), 5);
        assert_eq!(direct.len(), 5);
        for (i, (host, (batch, mixed))) in direct.iter().zip(&uploaded).enumerate() {
            assert_eq!(batch.indices, host.indices, "batch {i}");
            for (v, view) in batch.views.iter().enumerate() {
                assert_eq!(values(view), host.views[v], "batch {i}, view {v}");
            }
            // The mixture of step `first_step + i`, made from the same host batch.
            let expected = host_mixture(&unmix, host, first_step + i as u64).unwrap();
            let mixed = mixed.as_ref().expect("Un-Mix is on");
            assert_eq!(mixed.lambda, expected.lambda, "batch {i}");
            assert_eq!(values(&mixed.images), expected.images, "batch {i}");
        }
    }

    #[test]
    fn a_loop_that_stops_early_ends_the_thread() {
        let device = Device::flex();
        let (loader, unmix) = loader_and_unmix();
        let mut batches = DeviceBatches::new(loader.epoch(0, 0), &unmix, 0, &device);
        assert!(batches.next().is_some());
        drop(batches); // joins the thread: returns only if it ended
    }
}
