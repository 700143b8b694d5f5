//! Faults outside any call: a lost device, or an error wgpu reported to no error scope.
//! Callbacks record them; the next op or readback turns them into an error.
use super::GpuBackend;
use plies_core::Result;
use std::sync::{Arc, Mutex};

/// What went wrong on the device outside any call: a lost device or an error that wgpu
/// reported to no scope. Surfaced by the next op or readback.
#[derive(Default)]
pub(crate) struct Faults {
    pub(crate) lost: Option<String>,
    uncaptured: Option<String>,
}

impl Faults {
    /// Install the device's lost and uncaptured-error callbacks; they fill the returned record.
    pub(crate) fn watch(device: &wgpu::Device) -> Arc<Mutex<Faults>> {
        let faults = Arc::new(Mutex::new(Faults::default()));
        {
            let faults = faults.clone();
            device.set_device_lost_callback(move |reason, msg| {
                let detail = if msg.is_empty() { String::new() } else { format!(": {msg}") };
                faults.lock().unwrap().lost.get_or_insert(format!("device lost ({reason:?}){detail}"));
            });
        }
        {
            let faults = faults.clone();
            device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
                let msg = match &e {
                    wgpu::Error::OutOfMemory { .. } => "out of GPU memory".to_string(),
                    other => other.to_string(),
                };
                faults.lock().unwrap().uncaptured.get_or_insert(msg);
            }));
        }
        faults
    }
}

impl GpuBackend {
    /// Fail fast on a lost device, and report an error wgpu raised outside any scope.
    pub(crate) fn check_faults(&self) -> Result<()> {
        let uncaptured = {
            let mut f = self.faults.lock().unwrap();
            if let Some(l) = &f.lost {
                return Err(self.err(format!("{} on {}", l, self.description)));
            }
            f.uncaptured.take()
        };
        let Some(e) = uncaptured else { return Ok(()) };
        // An error can be the first sign of a lost (or destroyed) device; wgpu announces the
        // loss while polling, so poll once and prefer that diagnosis.
        let _ = self.wgpu.poll(wgpu::PollType::Poll);
        if let Some(l) = &self.faults.lock().unwrap().lost {
            return Err(self.err(format!("{} on {} (first error: {e})", l, self.description)));
        }
        Err(self.err(format!("{e} (on {})", self.description)))
    }
}
