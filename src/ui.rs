//! What the user sees while kiln works: a spinner naming the output and
//! step on a terminal, plain log lines otherwise. Everything goes to stderr
//! so that stdout stays machine-readable (`--render-only`).

use std::io::{IsTerminal, Write};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

static BAR: OnceLock<Mutex<Option<ProgressBar>>> = OnceLock::new();

fn bar() -> &'static Mutex<Option<ProgressBar>> {
    BAR.get_or_init(|| Mutex::new(None))
}

/// Set up logging (`RUST_LOG`/`-v` control the level) and the progress display.
pub fn init(verbose: u8) {
    let level = match verbose {
        0 => "kiln=info",
        1 => "kiln=debug",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("KILN_LOG").unwrap_or_else(|_| level.into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .without_time()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(|| UiWriter)
        .try_init();
    if std::io::stderr().is_terminal() {
        let pb = ProgressBar::new_spinner();
        pb.set_style(ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}").expect("static template"));
        pb.enable_steady_tick(Duration::from_millis(120));
        *bar().lock().expect("ui lock") = Some(pb);
    }
}

/// Announce the current step of an output's build.
pub fn step(output: &str, step: &str) {
    let guard = bar().lock().expect("ui lock");
    match guard.as_ref() {
        Some(pb) => pb.set_message(format!("{output}: {step}")),
        None => {
            drop(guard);
            tracing::info!("{output}: {step}");
        }
    }
}

/// Show how far a download of `what` got (on a terminal only).
pub fn transfer(what: &str, done: u64, total: Option<u64>) {
    let guard = bar().lock().expect("ui lock");
    if let Some(pb) = guard.as_ref() {
        let mb = |b: u64| b as f64 / 1e6;
        pb.set_message(match total {
            Some(t) if t > 0 => format!(
                "downloading {what}: {:.1} / {:.1} MB ({}%)",
                mb(done),
                mb(t),
                done * 100 / t
            ),
            _ => format!("downloading {what}: {:.1} MB", mb(done)),
        });
    }
}

/// Print a line of build-script output.
pub fn script_line(line: &str) {
    print_line(&format!("  │ {line}"));
}

/// Print a line above the progress display (secrets masked).
pub fn print_line(line: &str) {
    let line = crate::redact::mask(line);
    let guard = bar().lock().expect("ui lock");
    match guard.as_ref() {
        Some(pb) => pb.suspend(|| eprintln!("{line}")),
        None => eprintln!("{line}"),
    }
}

/// Remove the progress display.
pub fn finish() {
    if let Some(pb) = bar().lock().expect("ui lock").take() {
        pb.finish_and_clear();
    }
}

struct UiWriter;

impl Write for UiWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        print_line(text.trim_end_matches('\n'));
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
