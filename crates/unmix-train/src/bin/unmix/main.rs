//! `unmix`: pre-train and evaluate self-supervised models with Un-Mix.

mod bench;
mod bench_layers;
mod check_backend;
mod cli;

use clap::Parser;

fn main() {
    // Burn 0.22 loads a saved optimiser state onto its default device (the state moves to the
    // parameters' device at the next step), and with CUDA compiled in that default is CUDA,
    // which panics on a machine without a GPU. The CPU is always there.
    if std::env::var_os("BURN_DEVICE").is_none() {
        // SAFETY: the first statement of `main`, before any thread is started.
        unsafe { std::env::set_var("BURN_DEVICE", "flex") };
    }
    let args = cli::Cli::parse();
    if let Err(e) = cli::run(args) {
        eprintln!("error: {e}");
        std::process::exit(e.exit_code());
    }
}
