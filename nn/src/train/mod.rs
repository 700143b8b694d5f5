//! Training UX: a progress bar with loss and examples/s, a JSONL metrics log, PNG line plots
//! (drawn without system fonts), the common example flags, and [`Run`], which ties them
//! together for a training loop.

mod args;
mod glyphs;
mod metrics;
mod plot;
mod progress;
mod run;

pub use args::{parse_common, CommonArgs};
pub use metrics::{json_object, MetricsLog, Value};
pub use plot::{LinePlot, Series};
pub use progress::{Progress, ProgressMode};
pub use run::Run;
