//! The `kiln` binary: parse arguments, set up output, run the command.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = kiln::cli::Cli::parse();
    let color = cli.color.enabled();
    let wrap = cli.wrap_log_lines.unwrap_or(false);
    let json = cli.log_style == kiln::ui::LogStyle::Json;
    // Long messages carry `file:line:column`; wrap them only when asked.
    let _ = miette::set_hook(Box::new(move |_| {
        let opts = miette::MietteHandlerOpts::new().wrap_lines(wrap).color(color && !json);
        Box::new(if json { opts.unicode(false) } else { opts }.build())
    }));
    kiln::ui::init(cli.verbose, cli.log_style, color);
    match kiln::commands::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(report) => {
            kiln::ui::finish();
            kiln::ui::print_error(&format!("{report:?}"));
            std::process::ExitCode::FAILURE
        }
    }
}
