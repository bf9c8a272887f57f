/// An in-memory set of `u8` images stored channel-major (`[N, C, H, W]`), with optional labels.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageSet {
    /// Channels per image.
    pub channels: usize,
    /// Rows per image.
    pub height: usize,
    /// Columns per image.
    pub width: usize,
    /// `N·C·H·W` bytes.
    pub pixels: Vec<u8>,
    /// One class index per image, when the set is labelled.
    pub labels: Option<Vec<u16>>,
    /// Class names, indexed by label.
    pub class_names: Vec<String>,
}

impl ImageSet {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.pixels.len() / self.image_len().max(1)
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes per image.
    pub fn image_len(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// The bytes of image `i` (`[C, H, W]`).
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.image_len();
        &self.pixels[i * n..(i + 1) * n]
    }

    /// A new set with the images at `indices`, in that order.
    pub fn subset(&self, indices: &[usize]) -> ImageSet {
        let mut pixels = Vec::with_capacity(indices.len() * self.image_len());
        for &i in indices {
            pixels.extend_from_slice(self.image(i));
        }
        ImageSet {
            pixels,
            labels: self
                .labels
                .as_ref()
                .map(|l| indices.iter().map(|&i| l[i]).collect()),
            ..self.clone_meta()
        }
    }

    /// The first `per_class` images of every class, in file order (a class-balanced subset).
    pub fn balanced_head(&self, per_class: usize) -> Vec<usize> {
        let Some(labels) = &self.labels else {
            return (0..self.len().min(per_class)).collect();
        };
        let mut taken = vec![
            0usize;
            self.class_names
                .len()
                .max(1 + *labels.iter().max().unwrap_or(&0) as usize)
        ];
        let mut out = Vec::new();
        for (i, &l) in labels.iter().enumerate() {
            if taken[l as usize] < per_class {
                taken[l as usize] += 1;
                out.push(i);
            }
        }
        out
    }

    /// Grey images repeated on three channels (PIL's `convert("RGB")`); RGB sets are returned
    /// unchanged.
    pub fn to_rgb(&self) -> ImageSet {
        if self.channels != 1 {
            return self.clone();
        }
        let plane = self.height * self.width;
        let mut pixels = Vec::with_capacity(self.pixels.len() * 3);
        for img in self.pixels.chunks_exact(plane) {
            for _ in 0..3 {
                pixels.extend_from_slice(img);
            }
        }
        ImageSet {
            channels: 3,
            pixels,
            labels: self.labels.clone(),
            ..self.clone_meta()
        }
    }

    /// Images zero-padded evenly to `size × size` (e.g. 28 → 32 for a CIFAR-shaped copy).
    ///
    /// # Panics
    /// If an image is larger than `size`.
    pub fn pad_to(&self, size: usize) -> ImageSet {
        assert!(self.height <= size && self.width <= size);
        let (top, left) = ((size - self.height) / 2, (size - self.width) / 2);
        let mut pixels = vec![0u8; self.len() * self.channels * size * size];
        for i in 0..self.len() {
            let img = self.image(i);
            for c in 0..self.channels {
                for y in 0..self.height {
                    let src = (c * self.height + y) * self.width;
                    let dst = ((i * self.channels + c) * size + y + top) * size + left;
                    pixels[dst..dst + self.width].copy_from_slice(&img[src..src + self.width]);
                }
            }
        }
        ImageSet {
            height: size,
            width: size,
            pixels,
            labels: self.labels.clone(),
            ..self.clone_meta()
        }
    }

    fn clone_meta(&self) -> ImageSet {
        ImageSet {
            channels: self.channels,
            height: self.height,
            width: self.width,
            pixels: Vec::new(),
            labels: None,
            class_names: self.class_names.clone(),
        }
    }
}
