"""Run-level parity (issue 11): whole pre-training runs of ours (`unmix train` on
`configs/cifar10/<method>[_unmix].toml`, scaled to a CPU) and of our PyTorch reference of the
authors' code (`moco_demo_train.py`: the MoCo CIFAR demo; `siamese_demo_train.py`: htdt's
SimCLR and BYOL; `swav_demo_train.py`: the Un-Mix SwAV CIFAR script) on the same CIFAR-format
files with the same settings and seeds, with and without Un-Mix; writes one markdown table of
kNN top-1 (random init -> last epoch). `cargo xtask parity --runs [...]` builds `unmix` and runs
this.

    python3 run_parity.py --unmix-bin target/debug/unmix [--methods moco,simclr,byol,swav]
        [--seeds 0,1,2] [--epochs 10] [--width 8] [--batch 128] [--jobs 2]
        [--variants plain,unmix] [--knn-every EPOCHS] [--data target/parity-runs/fm-cifar]
        [--out target/parity-runs] [--same-init] [--reference-float-aug] [--ours-pil-u8]
        [--dry-run]

The data (if `--data` holds no CIFAR files): the first 5,000 Fashion-MNIST training images of
`datasets/fashion-mnist` and its 10,000 test images in CIFAR-10's binary layout
(`fashion_to_cifar.py`). Each run is single-threaded (`RAYON_NUM_THREADS=1`, `--threads 1`) and
`--jobs` run at once. A run whose result is already in `--out` is not run again, so an
interrupted harness resumes where it stopped. `--dry-run` prints the runs' commands only (no
torch needed).

`--same-init`: each reference run starts from the weights ours starts from at the same settings
and seed (its MoCo queue too): `unmix parity-step` records them, the reference script loads them
(`--init`). The random-init kNN is then the same on both sides, and what differs at the end is
the training alone. Those reference runs are kept apart (`<run>_sameinit`); ours are the same
runs as without it.

`--reference-float-aug` (MoCo only) runs the reference's augmentation on float tensors instead
of the demo's 8-bit PIL images, as ours does, with the same random draws; those runs are kept
apart (`<run>[_sameinit]_floataug`). A diagnostic: it tells the demo's rounding apart from the
rest of the training.

`--ours-pil-u8` (MoCo only) runs ours with the demo's 8-bit augmentation
(`data.augmentation.pixel_arithmetic = "pil_u8"`: Pillow's bytes after the crop and after each
colour step, `unmix_data::pil`); those runs are kept apart (`ours/<run>_pilu8`). With it, both
sides round as the demo does; without it, pair ours with `--reference-float-aug`.

`--variants plain` (or `unmix`) runs only the methods without (with) Un-Mix; the table leaves
the other columns empty. `--knn-every N` evaluates kNN every N epochs on both sides (default:
at random init and after the last epoch only), for the trajectories in each run's log.
"""

import argparse
import concurrent.futures
import csv
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
SCRIPTS = {"moco": "moco_demo_train.py", "simclr": "siamese_demo_train.py",
           "byol": "siamese_demo_train.py", "swav": "swav_demo_train.py"}


def run_name(a, method, unmix, seed):
    """A run's name, with every setting that varies, so that runs of other settings are kept."""
    return f"{method}{'_unmix' if unmix else ''}_w{a.width}_b{a.batch}_e{a.epochs}_s{seed}"


def ours_settings(a, method, unmix, seed):
    """`unmix` arguments for the run's config and its settings (`--config`, `--set`s)."""
    config = f"configs/cifar10/{method}{'_unmix' if unmix else ''}.toml"
    sets = {"data.path": a.data, "model.backbone.width": a.width, "optim.batch_size": a.batch,
            "optim.epochs": a.epochs, "eval.every_epochs": a.knn_every, "run.device": "cpu",
            "data.num_workers": 1, "run.seed": seed}
    args = ["--config", config]
    for key, value in sets.items():
        args += ["--set", f"{key}={json.dumps(value) if isinstance(value, str) else value}"]
    return args


def ours_job(a, method, unmix, seed):
    name = run_name(a, method, unmix, seed) + ("_pilu8" if a.ours_pil_u8 else "")
    out_dir = os.path.join(a.out, "ours", name)
    cmd = [a.unmix_bin, "train"] + ours_settings(a, method, unmix, seed)
    if a.ours_pil_u8:
        cmd += ["--set", 'data.augmentation.pixel_arithmetic="pil_u8"']
    cmd += ["--out-dir", out_dir, "--overwrite"]
    return {"side": "ours", "name": name, "method": method,
            "unmix": unmix, "seed": seed, "before": [], "cmd": cmd,
            "env": {"RAYON_NUM_THREADS": "1"}, "result": out_dir, "cwd": ROOT}


def reference_job(a, method, unmix, seed):
    name = run_name(a, method, unmix, seed) + ("_sameinit" if a.same_init else "")
    # The record of our initial weights is the same with or without --reference-float-aug.
    record = os.path.join(a.out, "reference", name + ".init.safetensors")
    name += "_floataug" if a.reference_float_aug else ""
    result = os.path.join(a.out, "reference", name + ".json")
    cmd = [sys.executable, os.path.join(HERE, SCRIPTS[method])]
    # siamese_demo_train.py runs two methods and takes the method's name first.
    cmd += ([method] if SCRIPTS[method] == "siamese_demo_train.py" else []) + [a.data, str(seed)]
    cmd += (["--unmix"] if unmix else []) + ["--epochs", str(a.epochs), "--width", str(a.width),
                                             "--batch", str(a.batch), "--knn-every",
                                             str(a.knn_every), "--threads", "1", "--out", result]
    cmd += ["--float-aug"] if a.reference_float_aug else []
    before = []
    if a.same_init:
        # Step 0's record holds the weights `unmix train` starts from at this seed (the same
        # seeded build); the reference loads its `init/` tensors.
        before = [[a.unmix_bin, "parity-step"] + ours_settings(a, method, unmix, seed)
                  + ["--out", record]]
        cmd += ["--init", record]
    return {"side": "reference", "name": name, "method": method, "unmix": unmix, "seed": seed,
            "before": before, "cmd": cmd, "env": {}, "result": result, "cwd": ROOT}


def ours_knn(out_dir, epochs):
    """(random init, last epoch) kNN from the run's metrics.csv, or None when unfinished."""
    for root, _, files in os.walk(out_dir):
        if "metrics.csv" in files:
            rows = [r for r in csv.DictReader(open(os.path.join(root, "metrics.csv")))
                    if r["knn_top1"]]
            by_epoch = {int(r["epoch"]): float(r["knn_top1"]) for r in rows}
            if 0 in by_epoch and epochs in by_epoch:
                return by_epoch[0], by_epoch[epochs]
    return None


def reference_knn(path, epochs):
    if not os.path.exists(path):
        return None
    for line in open(path):
        history = dict((int(e), k) for e, k in json.loads(line)["knn"])
        if 0 in history and epochs in history:
            return history[0], history[epochs]
    return None


def result_of(job, epochs):
    if job["side"] == "ours":
        return ours_knn(job["result"], epochs)
    return reference_knn(job["result"], epochs)


def run(job, epochs):
    # The reference writes its result when it ends; ours, interrupted, is moved aside by
    # `--overwrite` (`<run>.old-N`) and run again.
    log = job["result"].rstrip("/").removesuffix(".json") + ".log"
    os.makedirs(os.path.dirname(log), exist_ok=True)
    with open(log, "w") as f:
        for cmd in job["before"] + [job["cmd"]]:
            f.flush()
            code = subprocess.call(cmd, cwd=job["cwd"], stdout=f, stderr=subprocess.STDOUT,
                                   env=dict(os.environ, **job["env"]))
            if code != 0:
                break
    if code != 0 or result_of(job, epochs) is None:
        raise RuntimeError(f"{job['side']} {job['name']} "
                           f"failed (exit {code}); see {log}")


def mean_sd(values):
    """The mean and the sample standard deviation, "–" for the latter over one seed (undefined,
    not zero)."""
    sd = f"{statistics.stdev(values):.2f}" if len(values) > 1 else "–"
    return statistics.mean(values), sd


def table(a, jobs):
    """The markdown table: per seed, random init -> last epoch for the four columns; then the
    means and the Un-Mix gain over the plain run of the same seed (mean ± sd over seeds)."""
    got = {(j["side"], j["method"], j["unmix"], j["seed"]): result_of(j, a.epochs) for j in jobs}
    lines = [f"kNN top-1 (k 200, t 0.1), random init -> epoch {a.epochs}; width {a.width}, "
             f"batch {a.batch}, seeds {a.seeds}"
             + ("; the reference from our initial weights" if a.same_init else ""), "",
             "| method | seed | ours | ours + Un-Mix | reference | reference + Un-Mix |",
             "|---|---|---|---|---|---|"]
    cols = [("ours", False), ("ours", True), ("reference", False), ("reference", True)]
    cell = lambda r: "–" if r is None else f"{r[0]:.2f} → {r[1]:.2f}"  # noqa: E731
    for method in a.methods:
        for seed in a.seeds:
            row = [cell(got.get((s, method, u, seed))) for s, u in cols]
            lines.append(f"| {method} | {seed} | " + " | ".join(row) + " |")
        finals = [[got.get((s, method, u, seed)) for seed in a.seeds] for s, u in cols]
        # A column's mean when all its seeds finished; with `--variants` some never run.
        means = [mean_sd([r[1] for r in col]) if all(r is not None for r in col) else None
                 for col in finals]
        if all(m is None for m in means):
            continue
        lines.append(f"| {method} | mean ± sd | " + " | ".join(
            "–" if m is None else f"**{m[0]:.2f}** ± {m[1]}" for m in means) + " |")
        gains = []
        for side, (plain, mixed) in (("ours", (0, 1)), ("reference", (2, 3))):
            if means[plain] is None or means[mixed] is None:
                gains.append("–")
                continue
            diffs = [got[(side, method, True, s)][1] - got[(side, method, False, s)][1]
                     for s in a.seeds]
            gains.append("{:+.2f} ± {}".format(*mean_sd(diffs)))
        lines.append(f"| {method} | Un-Mix gain | {gains[0]} | | {gains[1]} | |")
        gap = ["–" if means[o] is None or means[r] is None else f"{means[o][0] - means[r][0]:+.2f}"
               for o, r in ((0, 2), (1, 3))]
        lines.append(f"| {method} | ours − reference | {gap[0]} | {gap[1]} | | |")
    return "\n".join(lines) + "\n"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--unmix-bin", required=True)
    p.add_argument("--methods", default="moco,simclr,byol,swav")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--width", type=int, default=8)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--variants", default="plain,unmix",
                   help="plain (without Un-Mix), unmix (with it), or both")
    p.add_argument("--knn-every", type=int, default=0,
                   help="kNN every N epochs on both sides (default: random init and the end)")
    p.add_argument("--data", default=os.path.join(ROOT, "target", "parity-runs", "fm-cifar"))
    p.add_argument("--out", default=os.path.join(ROOT, "target", "parity-runs"))
    p.add_argument("--same-init", action="store_true",
                   help="start each reference run from the weights ours starts from")
    p.add_argument("--reference-float-aug", action="store_true",
                   help="the reference augments float tensors, as ours does, instead of the "
                        "demo's 8-bit PIL images (a diagnostic; MoCo only)")
    p.add_argument("--ours-pil-u8", action="store_true",
                   help="ours augments as the demo's 8-bit PIL images (pixel_arithmetic "
                        "pil_u8; MoCo only)")
    p.add_argument("--dry-run", action="store_true")
    a = p.parse_args()
    a.methods = a.methods.split(",")
    if a.reference_float_aug and a.methods != ["moco"]:
        p.error("--reference-float-aug: only the MoCo reference has it; expected --methods moco")
    if a.ours_pil_u8 and a.methods != ["moco"]:
        p.error("--ours-pil-u8: measured for MoCo only; expected --methods moco")
    a.seeds = [int(s) for s in a.seeds.split(",")]
    a.unmix_bin, a.data, a.out = (os.path.abspath(x) for x in (a.unmix_bin, a.data, a.out))
    for m in a.methods:
        if m not in SCRIPTS:
            p.error(f"--methods: unknown method {m!r}; expected some of {sorted(SCRIPTS)}")
    variants = a.variants.split(",")
    for v in variants:
        if v not in ("plain", "unmix"):
            p.error(f"--variants: unknown variant {v!r}; expected plain, unmix or plain,unmix")
    # Un-Mix first: the longer runs start first (below).
    unmix_settings = [u for u, v in ((True, "unmix"), (False, "plain")) if v in variants]
    if a.knn_every < 0 or (a.knn_every and a.epochs % a.knn_every):
        p.error(f"--knn-every {a.knn_every}: expected a divisor of --epochs {a.epochs}, so "
                "that both sides evaluate the last epoch")
    a.knn_every = a.knn_every or a.epochs
    # Longest first, so that the last runs to finish are short ones.
    jobs = [make(a, m, u, s) for make in (ours_job, reference_job) for u in unmix_settings
            for m in a.methods for s in a.seeds]
    if a.dry_run:
        for j in jobs:
            for cmd in j["before"] + [j["cmd"]]:
                print(" ".join(f"{k}={v}" for k, v in j["env"].items()), " ".join(cmd))
        return
    if not os.path.exists(os.path.join(a.data, "test_batch.bin")):
        subprocess.check_call([sys.executable, os.path.join(HERE, "fashion_to_cifar.py"),
                               os.path.join(ROOT, "datasets", "fashion-mnist"), a.data, "5000"])
    todo = [j for j in jobs if result_of(j, a.epochs) is None]
    print(f"{len(jobs) - len(todo)} of {len(jobs)} runs already done; running {len(todo)}, "
          f"{a.jobs} at a time", flush=True)
    failed = []
    with concurrent.futures.ThreadPoolExecutor(a.jobs) as pool:
        futures = {pool.submit(run, j, a.epochs): j for j in todo}
        for f in concurrent.futures.as_completed(futures):
            j = futures[f]
            try:
                f.result()
                print(f"done: {j['side']} {j['name']}",
                      flush=True)
            except RuntimeError as e:
                failed.append(str(e))
                print(f"error: {e}", flush=True)
    text = table(a, jobs)
    with open(os.path.join(a.out, "table.md"), "w") as f:
        f.write(text)
    print(text + f"\nwritten to {os.path.join(a.out, 'table.md')}")
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
