//! Metrics computed per batch and averaged over an epoch: accuracy, top-k accuracy and mean
//! absolute error (the loss is always tracked).

use kiln_core::{no_grad, DType, Tensor};

/// A metric the trainer reports for training and validation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    /// Fraction of samples whose arg-max prediction equals the class label.
    Accuracy,
    /// Fraction of samples whose label is among the `k` highest scores.
    TopK(usize),
    /// Mean absolute error between outputs and float targets (regression).
    MeanAbsoluteError,
}

impl Metric {
    /// The key in logs and history (`accuracy`, `top5_accuracy`, `mae`).
    pub fn name(&self) -> String {
        match self {
            Metric::Accuracy => "accuracy".into(),
            Metric::TopK(k) => format!("top{k}_accuracy"),
            Metric::MeanAbsoluteError => "mae".into(),
        }
    }

    /// (sum over the batch, number of samples) so epoch averages weight batches by size.
    pub fn batch_sum(&self, output: &Tensor, target: &Tensor) -> (f64, usize) {
        no_grad(|| match self {
            Metric::Accuracy => {
                let pred = output.argmax(-1, false);
                let hits = pred
                    .eq(&target.to_dtype(DType::I64))
                    .to_dtype(DType::F64)
                    .sum_all();
                (hits.item::<f64>(), target.numel())
            }
            Metric::TopK(k) => {
                let n = output.shape()[0];
                let classes = output.size(-1);
                let k = (*k).min(classes);
                // A label is in the top k when fewer than k classes score strictly higher.
                let y = target.to_dtype(DType::I64).reshape([n as i64, 1]);
                let own = output.gather(-1, &y);
                let higher = output.gt(&own).to_dtype(DType::F64).sum([-1], false);
                let hits = higher.lt_scalar(k as f64).to_dtype(DType::F64).sum_all();
                (hits.item::<f64>(), n)
            }
            Metric::MeanAbsoluteError => {
                let t = target.to_dtype(output.dtype()).reshape(output.shape());
                let err = (output - &t).abs().to_dtype(DType::F64).sum_all();
                (err.item::<f64>(), output.numel())
            }
        })
    }
}

/// Running sums for the loss and each metric over one epoch.
#[derive(Clone, Debug)]
pub struct Meter {
    metrics: Vec<Metric>,
    loss_sum: f64,
    sums: Vec<f64>,
    counts: Vec<usize>,
    samples: usize,
}

impl Meter {
    /// A meter for `metrics`.
    pub fn new(metrics: &[Metric]) -> Meter {
        Meter {
            metrics: metrics.to_vec(),
            loss_sum: 0.0,
            sums: vec![0.0; metrics.len()],
            counts: vec![0; metrics.len()],
            samples: 0,
        }
    }

    /// Adds one batch: its mean loss and its outputs and targets.
    pub fn update(&mut self, loss: f64, output: &Tensor, target: &Tensor) {
        let n = output.shape().first().copied().unwrap_or(1);
        self.loss_sum += loss * n as f64;
        self.samples += n;
        for (i, m) in self.metrics.iter().enumerate() {
            let (s, c) = m.batch_sum(output, target);
            self.sums[i] += s;
            self.counts[i] += c;
        }
    }

    /// Adds everything `other` has seen (same metrics), so a batch's numbers are computed once
    /// and counted in both the batch logs and the epoch totals.
    pub fn merge(&mut self, other: &Meter) {
        debug_assert_eq!(self.metrics, other.metrics);
        self.loss_sum += other.loss_sum;
        self.samples += other.samples;
        for i in 0..self.sums.len() {
            self.sums[i] += other.sums[i];
            self.counts[i] += other.counts[i];
        }
    }

    /// Mean loss so far.
    pub fn loss(&self) -> f64 {
        self.loss_sum / self.samples.max(1) as f64
    }

    /// (name, value) of the loss and every metric so far.
    pub fn values(&self) -> Vec<(String, f64)> {
        let mut out = vec![("loss".to_string(), self.loss())];
        for (i, m) in self.metrics.iter().enumerate() {
            out.push((m.name(), self.sums[i] / self.counts[i].max(1) as f64));
        }
        out
    }

    /// Samples seen.
    pub fn samples(&self) -> usize {
        self.samples
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accuracy_and_top_k_by_hand() {
        let out = Tensor::from_vec(vec![0.1f32, 0.7, 0.2, 0.5, 0.3, 0.2, 0.2, 0.3, 0.5], [3, 3]);
        let y = Tensor::from_vec(vec![1i64, 1, 0], [3]);
        assert_eq!(Metric::Accuracy.batch_sum(&out, &y), (1.0, 3));
        // Row 2: label 1 is second → in top 2; row 3: label 0 is last → not in top 2.
        assert_eq!(Metric::TopK(2).batch_sum(&out, &y), (2.0, 3));
        let mae = Metric::MeanAbsoluteError.batch_sum(
            &Tensor::from_vec(vec![1.0f32, 2.0], [2, 1]),
            &Tensor::from_vec(vec![1.5f32, 1.0], [2]),
        );
        assert_eq!(mae, (1.5, 2));
    }

    #[test]
    fn merged_meters_equal_one_meter_over_both_batches() {
        let out = Tensor::from_vec(vec![0.1f32, 0.7, 0.2, 0.5, 0.3, 0.2], [2, 3]);
        let y = Tensor::from_vec(vec![1i64, 1], [2]);
        let mut whole = Meter::new(&[Metric::Accuracy]);
        whole.update(0.5, &out, &y);
        whole.update(1.5, &out.narrow(0, 0, 1), &y.narrow(0, 0, 1));
        let mut merged = Meter::new(&[Metric::Accuracy]);
        for (l, o, t) in [
            (0.5, out.clone(), y.clone()),
            (1.5, out.narrow(0, 0, 1), y.narrow(0, 0, 1)),
        ] {
            let mut b = Meter::new(&[Metric::Accuracy]);
            b.update(l, &o, &t);
            merged.merge(&b);
        }
        assert_eq!(merged.values(), whole.values());
        // (0.5·2 + 1.5·1) / 3 and 2 hits of 3.
        assert_eq!(
            whole.values(),
            vec![
                ("loss".to_string(), 2.5 / 3.0),
                ("accuracy".to_string(), 2.0 / 3.0)
            ]
        );
    }
}
