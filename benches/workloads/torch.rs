//! The PyTorch side of the benchmark: `bench/torch_reference.py --serve` runs as a child
//! process, and each workload is timed there right after it is timed here, so both
//! figures come from the same minutes of the same machine.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

pub struct Torch {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    /// The header line the script printed (torch version, threads).
    pub header: String,
}

/// What the reference reported for one workload.
pub enum Reply {
    Timed {
        median_s: f64,
    },
    /// The script has no such workload, or it failed there.
    Missing(String),
}

impl Torch {
    /// Start the reference with `threads` intra-op threads. `Err` says why there is none.
    pub fn start(threads: usize) -> Result<Torch, String> {
        let python = std::env::var("PLIES_BENCH_PYTHON").unwrap_or_else(|_| "python3".into());
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/bench/torch_reference.py");
        let mut child = Command::new(&python)
            .arg(script)
            .arg("--serve")
            .arg("--threads")
            .arg(threads.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot run {python}: {e}"))?;
        let stdin = child.stdin.take().expect("piped stdin");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut header = String::new();
        stdout.read_line(&mut header).map_err(|e| format!("reading {script}: {e}"))?;
        if field(&header, "ready") != Some("true") {
            let _ = child.wait();
            let why = field(&header, "error").unwrap_or("the script exited without a header").to_string();
            return Err(why);
        }
        Ok(Torch { child, stdin, stdout, header: header.trim().to_string() })
    }

    /// Time workload `id` on the PyTorch side.
    pub fn run(&mut self, id: &str) -> Reply {
        if writeln!(self.stdin, "{id}").and_then(|_| self.stdin.flush()).is_err() {
            return Reply::Missing("the reference process is gone".into());
        }
        let mut line = String::new();
        match self.stdout.read_line(&mut line) {
            Ok(0) | Err(_) => return Reply::Missing("the reference process is gone".into()),
            Ok(_) => {}
        }
        if let Some(e) = field(&line, "error") {
            return Reply::Missing(e.to_string());
        }
        match field(&line, "median_s").and_then(|v| v.parse().ok()) {
            Some(median_s) => Reply::Timed { median_s },
            None => Reply::Missing(format!("unreadable reply {:?}", line.trim())),
        }
    }
}

impl Drop for Torch {
    fn drop(&mut self) {
        // Closing stdin ends the serve loop.
        let _ = writeln!(self.stdin, "quit");
        let _ = self.child.wait();
    }
}

/// The raw value of `key` in a flat one-line JSON object (strings without quotes). The
/// script writes only flat objects of numbers, booleans and plain strings.
pub fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let pat = format!("\"{key}\":");
    let rest = line[line.find(&pat)? + pat.len()..].trim_start();
    if let Some(s) = rest.strip_prefix('"') {
        return s.find('"').map(|e| &s[..e]);
    }
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    Some(rest[..end].trim())
}
