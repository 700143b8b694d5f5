//! Training UX: progress bar, JSONL metrics log, PNG curves.
