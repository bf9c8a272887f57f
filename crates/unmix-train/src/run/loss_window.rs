//! The loss and its named terms, summed on the device over a window of steps and read back once
//! per window: reading a value waits for the device, so reading every step would stall a GPU's
//! queue at each step (issue 14, "a hot path without stalls"). `run.read_loss_every_steps` is
//! the window; the loop also reads at the end of each epoch.

use burn::prelude::*;

/// Device-side sums of the steps since the last read.
pub(crate) struct LossWindow {
    every: u64,
    steps: usize,
    loss: Option<Tensor<1>>,
    terms: Vec<(String, Tensor<1>)>,
}

/// What one read gives: the window's step count and the sums of its losses and terms.
pub(crate) struct WindowSums {
    pub steps: usize,
    pub loss: f64,
    pub terms: Vec<(String, f64)>,
}

impl LossWindow {
    /// A window of `every` steps (at least 1).
    pub(crate) fn new(every: u64) -> Self {
        Self {
            every: every.max(1),
            steps: 0,
            loss: None,
            terms: Vec::new(),
        }
    }

    /// Adds a step's loss and terms, detached (nothing is read).
    pub(crate) fn add(&mut self, loss: Tensor<1>, terms: Vec<(&str, Tensor<1>)>) {
        let sum = |acc: Option<Tensor<1>>, t: Tensor<1>| match acc {
            Some(a) => a + t.detach(),
            None => t.detach(),
        };
        self.loss = Some(sum(self.loss.take(), loss));
        for (name, t) in terms {
            match self.terms.iter_mut().find(|(n, _)| n == name) {
                Some((_, acc)) => *acc = acc.clone() + t.detach(),
                None => self.terms.push((name.to_string(), t.detach())),
            }
        }
        self.steps += 1;
    }

    /// Whether the window ends with step `step` (0-based).
    pub(crate) fn due(&self, step: u64) -> bool {
        (step + 1).is_multiple_of(self.every)
    }

    /// Reads the sums back in one transfer and starts a new window; `None` when empty.
    pub(crate) fn read(&mut self) -> Option<WindowSums> {
        let loss = self.loss.take()?;
        let names: Vec<String> = self.terms.iter().map(|(n, _)| n.clone()).collect();
        let mut all = vec![loss.reshape([1])];
        all.extend(self.terms.drain(..).map(|(_, t)| t.reshape([1])));
        let values = Tensor::cat(all, 0)
            .into_data()
            .convert::<f64>()
            .try_into_vec::<f64>()
            .unwrap_or_default();
        let steps = std::mem::take(&mut self.steps);
        Some(WindowSums {
            steps,
            loss: values.first().copied().unwrap_or(f64::NAN),
            terms: names.into_iter().zip(values.into_iter().skip(1)).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_are_read_once_per_window_and_restart() {
        let device = Device::flex();
        let t = |v: f32| Tensor::<1>::from_floats([v], &device);
        let mut w = LossWindow::new(2);
        assert!(!w.due(0) && w.due(1) && !w.due(2) && w.due(3));
        w.add(t(1.0), vec![("plain", t(0.5)), ("mixed", t(0.25))]);
        w.add(t(2.0), vec![("plain", t(1.5)), ("mixed", t(0.75))]);
        let s = w.read().unwrap();
        assert_eq!((s.steps, s.loss), (2, 3.0));
        assert_eq!(
            s.terms,
            vec![("plain".to_string(), 2.0), ("mixed".to_string(), 1.0)]
        );
        assert!(w.read().is_none());
        w.add(t(f32::NAN), vec![]);
        assert!(w.read().unwrap().loss.is_nan());
    }
}
