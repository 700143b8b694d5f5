//! Where a tensor lives. The CPU backend is built in; GPU backends register themselves
//! with [`crate::backend::register_gpu`] so that this crate does not depend on wgpu.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Device {
    #[default]
    Cpu,
    /// The adapter with this index among those the GPU backend enumerates.
    Gpu(usize),
}

impl Device {
    pub fn is_cpu(self) -> bool {
        matches!(self, Device::Cpu)
    }

    /// Parse `cpu`, `gpu` or `gpu:N` (the syntax of `PLIES_DEVICE`).
    pub fn parse(s: &str) -> crate::Result<Device> {
        let s = s.trim().to_ascii_lowercase();
        match s.as_str() {
            "cpu" => Ok(Device::Cpu),
            "gpu" | "cuda" | "wgpu" => Ok(Device::Gpu(0)),
            _ => match s.strip_prefix("gpu:") {
                Some(n) => n
                    .parse()
                    .map(Device::Gpu)
                    .map_err(|_| crate::Error::msg(format!("bad device `{s}`: expected cpu, gpu or gpu:N"))),
                None => Err(crate::Error::msg(format!("bad device `{s}`: expected cpu, gpu or gpu:N"))),
            },
        }
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Gpu(i) => write!(f, "gpu:{i}"),
        }
    }
}

impl std::str::FromStr for Device {
    type Err = crate::Error;
    fn from_str(s: &str) -> crate::Result<Self> {
        Device::parse(s)
    }
}
