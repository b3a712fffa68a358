//! What the user sees while kiln works: a spinner naming the output and
//! step on a terminal, plain log lines otherwise, or JSON lines
//! (`--log-style`, `--color`). Everything goes to stderr so that stdout
//! stays machine-readable (`--render-only`).

use std::io::{IsTerminal, Write};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

static BAR: OnceLock<Mutex<Option<ProgressBar>>> = OnceLock::new();
static JSON: OnceLock<bool> = OnceLock::new();

fn bar() -> &'static Mutex<Option<ProgressBar>> {
    BAR.get_or_init(|| Mutex::new(None))
}

fn json() -> bool {
    JSON.get().copied().unwrap_or(false)
}

/// `--log-style`: how log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogStyle {
    /// A spinner naming the output and step on a terminal; plain lines otherwise.
    Fancy,
    /// Plain lines, also on a terminal.
    Plain,
    /// One JSON object per line: `level` and `fields.message` (`fields.script` for build-script output).
    Json,
}

/// `--color`: whether log lines and errors use ANSI colors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Color {
    /// Always.
    Always,
    /// Never.
    Never,
    /// On a terminal, unless `NO_COLOR` is set or `CLICOLOR=0`; `CLICOLOR_FORCE` forces them.
    Auto,
}

impl Color {
    /// Whether to color stderr.
    pub fn enabled(self) -> bool {
        let set = |v: &str| std::env::var_os(v).is_some_and(|x| !x.is_empty() && x != "0");
        match self {
            Color::Always => true,
            Color::Never => false,
            Color::Auto if set("CLICOLOR_FORCE") => true,
            Color::Auto => {
                std::io::stderr().is_terminal()
                    && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                    && std::env::var_os("CLICOLOR").is_none_or(|v| v != "0")
            }
        }
    }
}

/// Set up logging (`KILN_LOG`/`-v` control the level) and the progress display.
pub fn init(verbose: u8, style: LogStyle, color: bool) {
    let level = match verbose {
        0 => "kiln=info",
        1 => "kiln=debug",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("KILN_LOG").unwrap_or_else(|_| level.into());
    let _ = JSON.set(style == LogStyle::Json);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .without_time()
        .with_writer(|| UiWriter);
    let _ = match style {
        LogStyle::Json => builder.json().with_ansi(false).try_init(),
        _ => builder.with_ansi(color).try_init(),
    };
    if style == LogStyle::Fancy && std::io::stderr().is_terminal() {
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
    if json() {
        let line = crate::redact::mask(line);
        let object = serde_json::json!({ "level": "INFO", "fields": { "message": line, "script": true } });
        emit(&object.to_string());
    } else {
        emit(&format!("  │ {line}"));
    }
}

/// Print a line above the progress display (secrets masked; with
/// `--log-style json`, as a JSON object).
pub fn print_line(line: &str) {
    print_at("INFO", line);
}

/// Print an error report (secrets masked; with `--log-style json`, as a
/// JSON object).
pub fn print_error(report: &str) {
    print_at("ERROR", report);
}

fn print_at(level: &str, text: &str) {
    if json() {
        // Masked before encoding: escaping would hide a secret from the mask.
        let text = crate::redact::mask(text);
        emit(&serde_json::json!({ "level": level, "fields": { "message": text } }).to_string());
    } else {
        emit(text);
    }
}

/// Write `line` to stderr above the progress display, secrets masked.
fn emit(line: &str) {
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
        let text = text.trim_end_matches('\n');
        match serde_json::from_str::<serde_json::Value>(text) {
            // A JSON event: masked value by value, then encoded again.
            Ok(mut v) if json() => {
                crate::redact::mask_json(&mut v);
                emit(&v.to_string());
            }
            _ => emit(text),
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
