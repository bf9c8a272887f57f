//! `unmix`: pre-train and evaluate self-supervised models with Un-Mix.

mod bench;
mod cli;

use clap::Parser;

fn main() {
    let args = cli::Cli::parse();
    if let Err(e) = cli::run(args) {
        eprintln!("error: {e}");
        std::process::exit(e.exit_code());
    }
}
