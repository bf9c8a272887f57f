"""Random-init kNN over many seeds, ours' initial weights against the reference's own (issue 11,
item 3: "the random-init kNN of both sides then agrees within the seeds' spread").

    python3 random_init_knn.py --unmix-bin target/debug/unmix [--method simclr] [--seeds 0-19]
        [--width 8] [--batch 128] [--jobs 2] [--data target/parity-runs/fm-cifar]
        [--out target/parity-runs/random-init]

For each seed: `unmix parity-step` records the weights `unmix train` starts from at the settings
of `run_parity.py`'s run of that method and seed (10 epochs; the weights do not depend on the
length); the reference script (`run_parity.py`'s, with `--epochs 0`) measures the kNN of its own
draw at that seed and, with `--init RECORD`, of ours. Both kNN use the same code, data and
evaluation, so the two columns differ by the weights' draw alone. Prints both columns per seed,
mean ± sd, and the difference of the means with its standard error (Welch). Results stay in
`--out`, one JSON per (seed, side), so a rerun only adds missing seeds.
"""

import argparse
import concurrent.futures
import json
import os
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run_parity import HERE, ROOT, SCRIPTS, ours_settings  # noqa: E402


def seeds_of(text):
    """"0-19" or "0,3,5" -> a list of seeds."""
    if "-" in text:
        lo, hi = text.split("-")
        return list(range(int(lo), int(hi) + 1))
    return [int(s) for s in text.split(",")]


def measure(a, seed, side):
    """kNN at random init of `side` ("reference": its own draw; "ours": our weights) at `seed`."""
    result = os.path.join(a.out, f"{a.method}_w{a.width}_s{seed}_{side}.json")
    if not os.path.exists(result):
        cmd = [sys.executable, os.path.join(HERE, SCRIPTS[a.method])]
        cmd += ([a.method] if SCRIPTS[a.method] == "siamese_demo_train.py" else [])
        cmd += [a.data, str(seed), "--epochs", "0", "--width", str(a.width), "--threads", "1",
                "--out", result + ".part"]
        if side == "ours":
            record = os.path.join(a.out, f"{a.method}_w{a.width}_s{seed}.init.safetensors")
            settings = argparse.Namespace(data=a.data, width=a.width, batch=a.batch, epochs=10)
            subprocess.run([a.unmix_bin, "parity-step"]
                           + ours_settings(settings, a.method, False, seed) + ["--out", record],
                           cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
                           env=dict(os.environ, RAYON_NUM_THREADS="1"))
            cmd += ["--init", record]
        subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        os.replace(result + ".part", result)
    return dict(json.loads(open(result).readline())["knn"])[0]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--unmix-bin", required=True)
    p.add_argument("--method", default="simclr", choices=sorted(SCRIPTS))
    p.add_argument("--seeds", default="0-19")
    p.add_argument("--width", type=int, default=8)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--data", default=os.path.join(ROOT, "target", "parity-runs", "fm-cifar"))
    p.add_argument("--out", default=os.path.join(ROOT, "target", "parity-runs", "random-init"))
    a = p.parse_args()
    a.unmix_bin, a.data, a.out = (os.path.abspath(x) for x in (a.unmix_bin, a.data, a.out))
    os.makedirs(a.out, exist_ok=True)
    if not os.path.exists(os.path.join(a.data, "test_batch.bin")):
        subprocess.check_call([sys.executable, os.path.join(HERE, "fashion_to_cifar.py"),
                               os.path.join(ROOT, "datasets", "fashion-mnist"), a.data, "5000"])
    seeds = seeds_of(a.seeds)
    with concurrent.futures.ThreadPoolExecutor(a.jobs) as pool:
        futures = {(s, side): pool.submit(measure, a, s, side)
                   for s in seeds for side in ("ours", "reference")}
        knn = {key: f.result() for key, f in futures.items()}
    print(f"{a.method}, width {a.width}: kNN top-1 at random init (k 200, t 0.1)\n")
    print("| seed | ours | reference |\n|---|---|---|")
    for s in seeds:
        print(f"| {s} | {knn[s, 'ours']:.2f} | {knn[s, 'reference']:.2f} |")
    cols = {side: [knn[s, side] for s in seeds] for side in ("ours", "reference")}
    stats = {side: (statistics.mean(v), statistics.stdev(v) if len(v) > 1 else 0.0)
             for side, v in cols.items()}
    print("| mean ± sd | {:.2f} ± {:.2f} | {:.2f} ± {:.2f} |".format(*stats["ours"],
                                                                   *stats["reference"]))
    diff = stats["ours"][0] - stats["reference"][0]
    se = (stats["ours"][1] ** 2 / len(seeds) + stats["reference"][1] ** 2 / len(seeds)) ** 0.5
    print(f"\nours - reference: {diff:+.2f} ± {se:.2f} (standard error; "
          f"{abs(diff) / se if se else float('inf'):.1f} SE), {len(seeds)} seeds a side")


if __name__ == "__main__":
    main()
