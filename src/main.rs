//! The `kiln` binary: parse arguments, set up output, run the command.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = kiln::cli::Cli::parse();
    kiln::ui::init(cli.verbose);
    match kiln::commands::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(report) => {
            kiln::ui::finish();
            eprintln!("{report:?}");
            std::process::ExitCode::FAILURE
        }
    }
}
