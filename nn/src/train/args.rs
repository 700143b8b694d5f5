//! The flags every example takes: `--device`, `--steps`, `--seed`, `--out`, `--save-every`,
//! `--resume`.
//!
//! An example with flags of its own flattens [`CommonArgs`] into its clap parser
//! (`#[command(flatten)] common: CommonArgs`); one without calls [`parse_common`].

use clap::{Args, CommandFactory, FromArgMatches, Parser};
use plies_autodiff::Device;
use std::path::PathBuf;

#[derive(Args, Clone, Debug, PartialEq)]
pub struct CommonArgs {
    /// Device to run on: cpu, gpu or gpu:N
    #[arg(long, env = "PLIES_DEVICE", default_value = "cpu", value_parser = parse_device)]
    pub device: Device,
    /// Training steps [default: the example's own]
    #[arg(long)]
    pub steps: Option<u64>,
    /// Seed for initialisation, shuffling and sampling
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Folder for metrics.jsonl and plots [default: runs/NAME, NAME being the example]
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Save the training state every N steps and after the last, into the output folder
    /// (state-STEP.safetensors; the last two are kept)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub save_every: Option<u64>,
    /// Go on from the newest loadable training state in DIR (a run's output folder), exactly
    /// as if the run had not stopped; --out defaults to DIR
    #[arg(long, value_name = "DIR")]
    pub resume: Option<PathBuf>,
}

fn parse_device(s: &str) -> Result<Device, String> {
    Device::parse(s).map_err(|e| e.to_string())
}

#[derive(Parser, Debug)]
struct CommonCli {
    #[command(flatten)]
    common: CommonArgs,
}

impl CommonArgs {
    /// `--steps`, or `default` when not given.
    pub fn steps_or(&self, default: u64) -> u64 {
        self.steps.unwrap_or(default)
    }

    /// `--out`, else the `--resume` folder, else `runs/<example>` (the folder `.gitignore`
    /// leaves out).
    pub fn out_dir(&self, example: &str) -> PathBuf {
        self.out.clone().or_else(|| self.resume.clone()).unwrap_or_else(|| PathBuf::from("runs").join(example))
    }

    /// Open `--device` and name it on stderr (the adapter for a GPU, the thread count for
    /// the CPU), so that a device that cannot be opened is an error before any model is
    /// built. [`parse_common`] calls it; an example with its own parser calls it after
    /// parsing.
    pub fn open_device(&self) -> plies_core::Result<()> {
        let backend = plies_core::backend(self.device)?;
        eprintln!("plies: using {}: {}", self.device, backend.name());
        Ok(())
    }

    /// [`open_device`](Self::open_device), or print why not and exit with code 1.
    pub fn open_device_or_exit(&self) {
        if let Err(e) = self.open_device() {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }

    /// Parse `args` (the first item is the program name); an `Err` holds clap's message.
    pub fn try_parse_from<I, T>(args: I) -> Result<CommonArgs, String>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        CommonCli::try_parse_from(args).map(|c| c.common).map_err(|e| e.to_string())
    }
}

/// Parse the common flags from the command line, with `about` as the `--help` text; prints the
/// usage and exits on bad flags, like any clap program, and exits with code 1 when the device
/// cannot be opened (register the GPU backend first: `plies::init()`).
pub fn parse_common(about: &'static str) -> CommonArgs {
    let name = std::env::args()
        .next()
        .and_then(|a| std::path::Path::new(&a).file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "example".into());
    let matches = CommonCli::command().bin_name(name).about(about).get_matches();
    let args = match CommonCli::from_arg_matches(&matches) {
        Ok(c) => c.common,
        Err(e) => e.exit(),
    };
    args.open_device_or_exit();
    args
}
