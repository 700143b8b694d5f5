//! One error type for the whole engine. Every variant names the op (or file) involved
//! and the values that were wrong, so a message is enough to act on.

use crate::{DType, Device, Shape};
use std::fmt;

#[derive(Debug, Clone)]
pub enum Error {
    // === Shape errors ===
    /// Two operands whose shapes cannot be combined.
    ShapeMismatch {
        op: &'static str,
        lhs: Shape,
        rhs: Shape,
    },
    /// Shapes that do not broadcast under numpy rules.
    Broadcast {
        op: &'static str,
        lhs: Shape,
        rhs: Shape,
    },
    /// An axis outside `-rank..rank`.
    AxisOutOfRange {
        op: &'static str,
        axis: i64,
        rank: usize,
    },
    /// An index outside `0..size` (or a slice past the end).
    IndexOutOfRange {
        op: &'static str,
        index: i64,
        size: usize,
    },
    /// A reshape whose element counts differ.
    ElementCount {
        op: &'static str,
        from: Shape,
        to: Shape,
    },
    /// Anything else wrong with the arguments of an op.
    Invalid {
        op: &'static str,
        msg: String,
    },

    // === Type and device errors ===
    DTypeMismatch {
        op: &'static str,
        lhs: DType,
        rhs: DType,
    },
    UnsupportedDType {
        op: &'static str,
        dtype: DType,
        device: Device,
    },
    DeviceMismatch {
        op: &'static str,
        lhs: Device,
        rhs: Device,
    },
    /// No backend is registered or available for a device.
    NoDevice {
        device: Device,
        msg: String,
    },
    /// An allocation past what the device allows.
    TooLarge {
        op: &'static str,
        bytes: u64,
        limit: u64,
        what: &'static str,
    },
    /// An error reported by a device backend (lost device, out of memory, ...).
    Backend {
        device: Device,
        msg: String,
    },

    // === Autodiff ===
    NoGradient {
        op: &'static str,
        msg: String,
    },
    /// With anomaly detection on: the first op whose output (forward) or input gradient
    /// (backward) holds a NaN or Inf although what it computed from was finite. `op` is the
    /// forward op, also for a backward anomaly (the op that recorded the node).
    Anomaly {
        op: &'static str,
        pass: Pass,
        inputs: Vec<Shape>,
        msg: String,
    },

    // === Files ===
    Io {
        path: String,
        msg: String,
    },
    /// A malformed file: which file, and where in it.
    Format {
        path: String,
        at: String,
        msg: String,
    },

    Msg(String),
}

pub type Result<T> = std::result::Result<T, Error>;

/// Which half of autodiff an [`Error::Anomaly`] was found in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    Forward,
    Backward,
}

impl Error {
    pub fn msg(m: impl Into<String>) -> Self {
        Error::Msg(m.into())
    }
    pub fn invalid(op: &'static str, msg: impl Into<String>) -> Self {
        Error::Invalid { op, msg: msg.into() }
    }
    pub fn io(path: impl AsRef<std::path::Path>, e: impl fmt::Display) -> Self {
        Error::Io { path: path.as_ref().display().to_string(), msg: e.to_string() }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::ShapeMismatch { op, lhs, rhs } => {
                write!(f, "shape mismatch in {op}: lhs {lhs}, rhs {rhs}")
            }
            Error::Broadcast { op, lhs, rhs } => {
                write!(f, "cannot broadcast shapes in {op}: lhs {lhs}, rhs {rhs}")
            }
            Error::AxisOutOfRange { op, axis, rank } => {
                write!(f, "axis {axis} out of range in {op} for a tensor of rank {rank}")
            }
            Error::IndexOutOfRange { op, index, size } => {
                write!(f, "index {index} out of range in {op} for a dimension of size {size}")
            }
            Error::ElementCount { op, from, to } => write!(
                f,
                "cannot {op} shape {from} ({} elements) into {to} ({} elements)",
                from.elem_count(),
                to.elem_count()
            ),
            Error::Invalid { op, msg } => write!(f, "invalid arguments to {op}: {msg}"),
            Error::DTypeMismatch { op, lhs, rhs } => {
                write!(f, "dtype mismatch in {op}: lhs {lhs}, rhs {rhs}")
            }
            Error::UnsupportedDType { op, dtype, device } => {
                write!(f, "{op} does not support dtype {dtype} on {device}")
            }
            Error::DeviceMismatch { op, lhs, rhs } => {
                write!(f, "device mismatch in {op}: lhs on {lhs}, rhs on {rhs}")
            }
            Error::NoDevice { device, msg } => write!(f, "device {device} is not available: {msg}"),
            Error::TooLarge { op, bytes, limit, what } => {
                write!(f, "{op} needs a buffer of {bytes} bytes, over the device's {what} of {limit} bytes")
            }
            Error::Backend { device, msg } => write!(f, "{device}: {msg}"),
            Error::NoGradient { op, msg } => write!(f, "{op}: {msg}"),
            Error::Anomaly { op, pass, inputs, msg } => {
                let shapes: Vec<String> = inputs.iter().map(|s| s.to_string()).collect();
                let shapes = shapes.join(", ");
                match pass {
                    Pass::Forward => write!(f, "anomaly detected in forward: {op} (input shapes {shapes}) {msg}"),
                    Pass::Backward => write!(
                        f,
                        "anomaly detected in backward: the gradient rule of {op} (the node recorded by forward \
                         op {op}, input shapes {shapes}) {msg}"
                    ),
                }
            }
            Error::Io { path, msg } => write!(f, "{path}: {msg}"),
            Error::Format { path, at, msg } => write!(f, "{path}: at {at}: {msg}"),
            Error::Msg(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Error {}

/// Return early with an `Error::Invalid` for `op`.
#[macro_export]
macro_rules! bail {
    ($op:expr, $($arg:tt)*) => {
        return Err($crate::Error::Invalid { op: $op, msg: format!($($arg)*) })
    };
}
