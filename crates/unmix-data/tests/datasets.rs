//! Dataset formats and the loader, on the Fashion-MNIST images embedded in `datasets/`.

use std::path::PathBuf;
use std::sync::Arc;

use unmix_data::cifar::{
    Cifar100Label, read_cifar10, read_cifar100, write_cifar10, write_cifar100,
};
use unmix_data::fashion_mnist::{self, Split};
use unmix_data::{AugmentationConfig, DataError, ImageSet, MultiViewLoader, ViewTransform};

fn embedded() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../datasets/fashion-mnist")
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("unmix-data-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn embedded_fashion_mnist_is_balanced_and_verified() {
    let train = fashion_mnist::load(&embedded(), Split::Train).unwrap();
    let test = fashion_mnist::load(&embedded(), Split::Test).unwrap();
    assert_eq!((train.len(), test.len()), (10_000, 10_000));
    assert_eq!((train.channels, train.height, train.width), (1, 28, 28));
    for set in [&train, &test] {
        let mut counts = [0usize; 10];
        set.labels
            .as_ref()
            .unwrap()
            .iter()
            .for_each(|&l| counts[l as usize] += 1);
        assert_eq!(counts, [1000; 10]);
    }
    // Real images: mean pixel close to Fashion-MNIST's 0.286.
    let mean =
        train.pixels.iter().map(|&p| p as f64).sum::<f64>() / train.pixels.len() as f64 / 255.0;
    assert!((mean - 0.286).abs() < 0.01, "{mean}");
}

#[test]
fn a_replaced_file_fails_its_checksum_with_its_name() {
    let dir = tmp("sha");
    for (name, _) in fashion_mnist::FILES {
        std::fs::copy(embedded().join(name), dir.join(name)).unwrap();
    }
    let victim = dir.join(fashion_mnist::FILES[3].0);
    let mut bytes = std::fs::read(&victim).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&victim, bytes).unwrap();
    let err = fashion_mnist::load(&dir, Split::Test).unwrap_err();
    assert!(matches!(err, DataError::Checksum { .. }));
    assert!(
        err.to_string().contains("t10k-labels-idx1-ubyte.gz"),
        "{err}"
    );
}

#[test]
fn cifar10_binary_round_trip_in_the_exact_format() {
    let test = fashion_mnist::load(&embedded(), Split::Test).unwrap();
    let idx: Vec<usize> = (0..250).collect();
    // A CIFAR-shaped copy of real images: padded to 32×32, grey on three channels.
    let set = test.subset(&idx).pad_to(32).to_rgb();
    let dir = tmp("cifar");
    let (a, b) = (dir.join("data_batch_1.bin"), dir.join("data_batch_2.bin"));
    write_cifar10(&a, &set.subset(&(0..200).collect::<Vec<_>>())).unwrap();
    write_cifar10(&b, &set.subset(&(200..250).collect::<Vec<_>>())).unwrap();
    assert_eq!(std::fs::metadata(&a).unwrap().len(), 200 * 3073);
    let raw = std::fs::read(&a).unwrap();
    // Record 0: label byte, then the red plane row by row; pixel (row 2, col 2) of the red
    // plane is the original (0, 0) pixel after the 2-pixel pad.
    assert_eq!(raw[0] as u16, set.labels.as_ref().unwrap()[0]);
    assert_eq!(raw[1 + 2 * 32 + 2], test.image(0)[0]);
    assert_eq!(raw[1 + 1024 + 2 * 32 + 2], test.image(0)[0]);
    let back = read_cifar10(&[&a, &b]).unwrap();
    assert_eq!(back.pixels, set.pixels);
    assert_eq!(back.labels, set.labels);
    assert_eq!(back.class_names[9], "truck");

    // CIFAR-100 records carry (coarse, fine) label bytes.
    let c100 = dir.join("train.bin");
    let three = ImageSet {
        labels: Some(vec![50, 51, 52]),
        ..set.subset(&[0, 1, 2])
    };
    write_cifar100(&c100, &three, &[0, 1, 2]).unwrap();
    let raw100 = std::fs::read(&c100).unwrap();
    assert_eq!(raw100.len(), 3 * 3074);
    // Record 1: coarse byte, fine byte, then the pixels.
    assert_eq!(&raw100[3074..3076], &[1, 51]);
    assert_eq!(&raw100[3076..2 * 3074], set.image(1));
    let err = write_cifar100(&c100, &three, &[0, 1, 20])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("train.bin") && err.contains("coarse label 20"),
        "{err}"
    );
    let fine = read_cifar100(&[&c100], Cifar100Label::Fine).unwrap();
    let coarse = read_cifar100(&[&c100], Cifar100Label::Coarse).unwrap();
    assert_eq!(fine.image(2), set.image(2));
    assert_eq!(fine.labels.unwrap(), vec![50, 51, 52]);
    assert_eq!(coarse.labels.unwrap(), vec![0, 1, 2]);

    // A truncated file is an error naming it.
    std::fs::write(&b, &raw[..3000]).unwrap();
    let err = read_cifar10(&[&b]).unwrap_err().to_string();
    assert!(
        err.contains("data_batch_2.bin") && err.contains("3073-byte"),
        "{err}"
    );
}

fn small_loader(set: &Arc<ImageSet>, workers: usize, seed: u64) -> MultiViewLoader {
    let t = ViewTransform::new(AugmentationConfig {
        crop_size: 28,
        ..Default::default()
    })
    .unwrap();
    MultiViewLoader::new(set.clone(), vec![t.clone(), t], 16, workers, seed).unwrap()
}

#[test]
fn loader_is_reproducible_whatever_the_worker_count_and_resumes_mid_epoch() {
    let train = fashion_mnist::load(&embedded(), Split::Train).unwrap();
    let set = Arc::new(train.subset(&(0..100).collect::<Vec<_>>()));
    let one: Vec<_> = small_loader(&set, 1, 7).epoch(3, 0).collect();
    let two: Vec<_> = small_loader(&set, 2, 7).epoch(3, 0).collect();
    assert_eq!(one.len(), 6); // 100 / 16, last incomplete batch dropped
    for (a, b) in one.iter().zip(&two) {
        assert_eq!(a.indices, b.indices);
        assert_eq!(a.views, b.views);
    }
    // The two views of a sample differ; another epoch has another order.
    assert_ne!(one[0].views[0], one[0].views[1]);
    let other: Vec<_> = small_loader(&set, 2, 7).epoch(4, 0).collect();
    assert_ne!(one[0].indices, other[0].indices);
    // Resuming at batch 4 yields batches 4 and 5 exactly.
    let tail: Vec<_> = small_loader(&set, 2, 7).epoch(3, 4).collect();
    assert_eq!(tail.len(), 2);
    assert_eq!(tail[0].views, one[4].views);
    assert_eq!(tail[1].indices, one[5].indices);
    // Views are normalised 3×28×28 images.
    assert_eq!(one[0].views[0].len(), 16 * 3 * 28 * 28);
}

/// The dataset-level image mixture in the loader, on real images: batches stay a function of
/// `(seed, epoch, sample)` whatever the worker count, a sample keeps its own index, and with
/// every attempt forced to fire (`g_prob = r_prob = 1`) no sample equals its unmixed views.
#[test]
fn loader_with_image_mixture_is_reproducible_and_mixes_every_view() {
    use unmix_ops::{ImageMixture, ImageMixtureConfig};
    let train = fashion_mnist::load(&embedded(), Split::Train).unwrap();
    let set = Arc::new(train.subset(&(0..100).collect::<Vec<_>>()));
    let always = ImageMixture::new(ImageMixtureConfig {
        enabled: true,
        g_prob: 1.0,
        r_prob: 1.0,
        ..Default::default()
    })
    .unwrap();
    let mixed = |workers| {
        small_loader(&set, workers, 7)
            .with_image_mixture(always.clone())
            .unwrap()
            .epoch(3, 0)
            .collect::<Vec<_>>()
    };
    let (one, three) = (mixed(1), mixed(3));
    let plain: Vec<_> = small_loader(&set, 1, 7).epoch(3, 0).collect();
    for ((a, b), p) in one.iter().zip(&three).zip(&plain) {
        assert_eq!(a.views, b.views);
        assert_eq!(a.indices, p.indices);
        let len = 3 * 28 * 28;
        for row in 0..a.len() {
            for v in 0..2 {
                let rows = row * len..(row + 1) * len;
                assert_ne!(
                    a.views[v][rows.clone()],
                    p.views[v][rows],
                    "sample {row} view {v}"
                );
            }
        }
    }
    // Disabled, the mixture changes nothing.
    let off = small_loader(&set, 2, 7)
        .with_image_mixture(ImageMixture::new(ImageMixtureConfig::default()).unwrap())
        .unwrap();
    assert_eq!(off.epoch(3, 0).next().unwrap().views, plain[0].views);
}

#[test]
fn image_mixture_needs_views_of_one_size_when_enabled() {
    use unmix_ops::{ImageMixture, ImageMixtureConfig};
    let train = fashion_mnist::load(&embedded(), Split::Train).unwrap();
    let set = Arc::new(train.subset(&(0..40).collect::<Vec<_>>()));
    let view = |crop_size| {
        ViewTransform::new(AugmentationConfig {
            crop_size,
            ..Default::default()
        })
        .unwrap()
    };
    let loader = MultiViewLoader::new(set, vec![view(28), view(12)], 16, 1, 0).unwrap();
    // Off (the default), it is accepted with any views: multi-crop methods run as before.
    let off = ImageMixture::new(ImageMixtureConfig::default()).unwrap();
    let loader = loader.with_image_mixture(off).unwrap();
    let on = ImageMixture::new(ImageMixtureConfig {
        enabled: true,
        ..Default::default()
    })
    .unwrap();
    let err = loader
        .clone()
        .with_image_mixture(on)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("ImageMixtureConfig.enabled = true (views of sizes [28, 12])"),
        "{err}"
    );
    // A Cutout mask kept inside a 12-pixel crop cannot be 50 pixels: named by its field.
    let small = MultiViewLoader::new(
        Arc::new(train.subset(&(0..40).collect::<Vec<_>>())),
        vec![view(12), view(12)],
        16,
        1,
        0,
    )
    .unwrap();
    let inside = ImageMixture::new(ImageMixtureConfig {
        enabled: true,
        kind: unmix_ops::ImageMixtureKind::Cutout,
        cutout_inside: true,
        ..Default::default()
    })
    .unwrap();
    let err = small.with_image_mixture(inside).unwrap_err().to_string();
    assert!(
        err.starts_with("ImageMixtureConfig.mask_size = 50"),
        "{err}"
    );
}
