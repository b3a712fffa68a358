//! The `kiln` binary: parse arguments, set up output, run the command.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = kiln::cli::Cli::parse();
    // Long messages carry `file:line:column`; never wrap them mid-path.
    let _ = miette::set_hook(Box::new(|_| {
        Box::new(miette::MietteHandlerOpts::new().wrap_lines(false).build())
    }));
    kiln::ui::init(cli.verbose);
    match kiln::commands::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(report) => {
            kiln::ui::finish();
            eprintln!("{}", kiln::redact::mask(&format!("{report:?}")));
            std::process::ExitCode::FAILURE
        }
    }
}
