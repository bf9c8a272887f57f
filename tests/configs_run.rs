//! Every CIFAR-10 and CIFAR-100 config in `configs/` runs end to end: its method, head,
//! augmentation, optimiser, schedule and Un-Mix settings as written, on CIFAR binary files.
//!
//! CIFAR cannot be downloaded here, so the files are written in CIFAR's exact binary format
//! from real Fashion-MNIST images (padded to 32×32, grey on three channels; the reader is
//! checked against the format in `unmix-data`'s tests). Only what makes a GPU job a CPU one
//! changes: the backbone's width (4), the batch (16, which every queue length divides), the
//! image count and the device (and a memory-bank method's background, which must fit the
//! smaller bank); one epoch runs while the schedules span the config's epochs.
//! The `fashion_mnist` configs are run in full by `learns.rs`.

use std::path::PathBuf;

use unmix_data::fashion_mnist::Split;
use unmix_train::TrainConfig;
use unmix_train::methods::MethodConfig;
use unmix_train::{RunOptions, train};

#[path = "support/cifar_files.rs"]
mod cifar_files;
use cifar_files::{cifar_shaped, root, write_cifar10_dir, write_cifar100_dir};

fn runs_every_config_of(dataset: &str) {
    let work = std::env::temp_dir().join(format!("unmix-configs-{dataset}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let (train_set, test_set) = (cifar_shaped(Split::Train, 8), cifar_shaped(Split::Test, 4));
    let data_dir = work.join("data");
    match dataset {
        "cifar10" => write_cifar10_dir(&data_dir, &train_set, &test_set),
        _ => write_cifar100_dir(&data_dir, &train_set, &test_set),
    }
    let mut names: Vec<PathBuf> = std::fs::read_dir(root().join("configs").join(dataset))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    assert!(names.len() >= 14, "{dataset}: {} configs", names.len());
    for path in names {
        let mut config = TrainConfig::load(&path).unwrap();
        config.data.path = data_dir.clone();
        config.data.train_per_class = None;
        config.data.test_per_class = None;
        config.data.num_workers = 1;
        config.model.backbone.width = 4;
        config.optim.batch_size = 16;
        // A memory-bank method's background must be smaller than the bank: 80 images here.
        if let MethodConfig::InvariancePropagation(m) = &mut config.method {
            m.n_background = 32;
        }
        config.run.out_dir = work.join("runs");
        // One run directory per config: a directory belongs to one run.
        config.run.name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let options = RunOptions {
            device: Some("cpu".into()),
            quiet: true,
            stop_after: Some(1),
            ..Default::default()
        };
        let what = path.display();
        let outcome = train(&config, &options).unwrap_or_else(|e| panic!("{what}: {e}"));
        let last = outcome.history.last().unwrap();
        assert_eq!(last.epoch, 1, "{what}");
        // 80 images, batch 16: five steps.
        assert_eq!(last.step, 5, "{what}");
        let loss = last.loss.unwrap();
        assert!(loss.is_finite(), "{what}: loss {loss}");
        assert_eq!(
            last.term("mixed").is_some(),
            config.unmix.enabled,
            "{what}: Un-Mix terms {:?} with Un-Mix {}",
            last.terms,
            config.unmix.enabled
        );
        assert!(
            outcome.knn_random_init.is_finite(),
            "{what}: kNN at random init {}",
            outcome.knn_random_init
        );
        assert!(
            outcome.run_dir.join("config.toml").is_file(),
            "{what}: no resolved config in {}",
            outcome.run_dir.display()
        );
    }
    let _ = std::fs::remove_dir_all(&work);
}

#[test]
fn every_cifar10_config_runs() {
    runs_every_config_of("cifar10");
}

#[test]
fn every_cifar100_config_runs() {
    runs_every_config_of("cifar100");
}
