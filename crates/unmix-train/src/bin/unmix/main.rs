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
    // The commands run on a worker of rayon's pool (`on_compute_pool`), not on this thread:
    // give the workers this thread's usual 8 MiB of stack instead of a spawned thread's 2 MiB.
    if let Err(e) = rayon::ThreadPoolBuilder::new()
        .stack_size(8 << 20)
        .build_global()
    {
        eprintln!("warning: rayon's pool keeps its own settings: {e}");
    }
    let args = cli::Cli::parse();
    // Every command's kernels then split their loops from a pool worker (`on_compute_pool`).
    if let Err(e) = unmix_train::run::on_compute_pool(|| cli::run(args)) {
        eprintln!("error: {e}");
        std::process::exit(e.exit_code());
    }
}
