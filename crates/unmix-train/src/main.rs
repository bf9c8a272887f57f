//! `unmix`: pre-train and evaluate self-supervised models with Un-Mix.

use clap::Parser;

fn main() {
    let cli = unmix_train::cli::Cli::parse();
    if let Err(e) = unmix_train::cli::run(cli) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
