//! `LabeledData`: examples with f32 features of one shape and an i32 class label each,
//! held on the host and moved to a device batch by batch.

use super::{Batch, Dataset};
use plies_autodiff::{Device, Error, Result, Tensor};
use plies_core::rng::Rng;

#[derive(Clone, Debug, PartialEq)]
pub struct LabeledData {
    features: Vec<f32>,
    feature_shape: Vec<usize>,
    labels: Vec<i32>,
    num_classes: usize,
}

impl LabeledData {
    /// `features` holds `labels.len()` examples of `feature_shape` each, row-major;
    /// every label must lie in `0..num_classes`.
    pub fn new(features: Vec<f32>, feature_shape: &[usize], labels: Vec<i32>, num_classes: usize) -> Result<Self> {
        let per: usize = feature_shape.iter().product();
        if features.len() != per * labels.len() {
            return Err(Error::invalid(
                "LabeledData::new",
                format!(
                    "{} feature values for {} examples of shape {feature_shape:?} ({} expected)",
                    features.len(),
                    labels.len(),
                    per * labels.len()
                ),
            ));
        }
        if let Some((i, l)) = labels.iter().enumerate().find(|(_, &l)| l < 0 || l as usize >= num_classes) {
            return Err(Error::invalid(
                "LabeledData::new",
                format!("label {l} of example {i} is outside 0..{num_classes}"),
            ));
        }
        Ok(LabeledData { features, feature_shape: feature_shape.to_vec(), labels, num_classes })
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The shape of one example's features (a batch is `[batch, ..feature_shape]`).
    pub fn feature_shape(&self) -> &[usize] {
        &self.feature_shape
    }

    /// Feature values per example.
    pub fn feature_len(&self) -> usize {
        self.feature_shape.iter().product()
    }

    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// All features, example after example.
    pub fn features(&self) -> &[f32] {
        &self.features
    }

    pub fn labels(&self) -> &[i32] {
        &self.labels
    }

    /// The features and label of example `i` (panics if `i >= len()`).
    pub fn example(&self, i: usize) -> (&[f32], i32) {
        let n = self.feature_len();
        (&self.features[i * n..(i + 1) * n], self.labels[i])
    }

    /// How many examples each class has.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.num_classes];
        for &l in &self.labels {
            counts[l as usize] += 1;
        }
        counts
    }

    /// Multiply every feature by `factor` (for example `1.0 / 16.0` to bring digits to 0..1).
    pub fn scaled(mut self, factor: f32) -> Self {
        self.features.iter_mut().for_each(|v| *v *= factor);
        self
    }

    /// View each example's features with another shape of the same size (e.g. `[1, 8, 8]`).
    pub fn reshaped(mut self, feature_shape: &[usize]) -> Result<Self> {
        let n: usize = feature_shape.iter().product();
        if n != self.feature_len() {
            return Err(Error::invalid(
                "LabeledData::reshaped",
                format!("cannot view features of shape {:?} as {feature_shape:?}", self.feature_shape),
            ));
        }
        self.feature_shape = feature_shape.to_vec();
        Ok(self)
    }

    /// The examples at `indices`, in that order.
    pub fn subset(&self, indices: &[usize]) -> Result<LabeledData> {
        let n = self.feature_len();
        let mut features = Vec::with_capacity(indices.len() * n);
        let mut labels = Vec::with_capacity(indices.len());
        for &i in indices {
            if i >= self.len() {
                return Err(Error::IndexOutOfRange { op: "LabeledData::subset", index: i as i64, size: self.len() });
            }
            let (x, y) = self.example(i);
            features.extend_from_slice(x);
            labels.push(y);
        }
        Ok(LabeledData { features, feature_shape: self.feature_shape.clone(), labels, num_classes: self.num_classes })
    }

    /// A seeded, stratified split into `(train, test)`.
    ///
    /// Each class puts `round(test_fraction * its count)` of its examples, chosen by a seeded
    /// shuffle, into the test set and the rest into the training set, so both sets keep the
    /// class proportions. Both keep the original order of the examples. The same seed gives the
    /// same split on every machine.
    pub fn split(&self, test_fraction: f64, seed: u64) -> Result<(LabeledData, LabeledData)> {
        if !(0.0..=1.0).contains(&test_fraction) {
            return Err(Error::invalid(
                "LabeledData::split",
                format!("test_fraction {test_fraction} is outside 0..=1"),
            ));
        }
        let mut rng = Rng::new(seed);
        let mut in_test = vec![false; self.len()];
        for class in 0..self.num_classes as i32 {
            let members: Vec<usize> = (0..self.len()).filter(|&i| self.labels[i] == class).collect();
            let take = (test_fraction * members.len() as f64).round() as usize;
            for &p in rng.permutation(members.len()).iter().take(take) {
                in_test[members[p]] = true;
            }
        }
        let test: Vec<usize> = (0..self.len()).filter(|&i| in_test[i]).collect();
        let train: Vec<usize> = (0..self.len()).filter(|&i| !in_test[i]).collect();
        Ok((self.subset(&train)?, self.subset(&test)?))
    }

    /// Every example as one batch (for evaluation on small sets).
    pub fn to_batch(&self, device: Device) -> Result<Batch> {
        let all: Vec<usize> = (0..self.len()).collect();
        self.batch(&all, device)
    }
}

impl Dataset for LabeledData {
    fn len(&self) -> usize {
        self.labels.len()
    }

    /// Inputs `[b, ..feature_shape]` f32, targets `[b]` i32.
    fn batch(&self, indices: &[usize], device: Device) -> Result<Batch> {
        let part = self.subset(indices)?;
        let mut shape = vec![indices.len()];
        shape.extend_from_slice(&self.feature_shape);
        Ok(Batch {
            inputs: Tensor::try_from_vec(part.features, shape, device)?,
            targets: Tensor::try_from_vec(part.labels, [indices.len()], device)?,
        })
    }
}
