//! Datasets, loaders, seeded shuffling and batching.
