"""The search for the CPU preset: configurations of the CIFAR-10 trainer at equal compute, scored by one judge.

    python bench/cifar_cpu_recipe.py screen --encoder runs/s16/enc16/encoder.pt --cpu-minutes 2 [--only a b]
    python bench/cifar_cpu_recipe.py score                 # judge the runs not judged yet (when the judge is ready)
    python bench/cifar_cpu_recipe.py snapshot-fid --run runs/cpu --step 1000   # FID-2k of an EMA snapshot
    python bench/cifar_cpu_recipe.py final --run runs/cpu --name cpu          # the record of a full-length run
    python bench/cifar_cpu_recipe.py table                 # the table from the records in docs/results/cifar_cpu/

``screen`` trains each configuration of ``SCREEN`` (overrides of the CPU preset) on the JPEG training images
with a shared, already trained encoder, for the same budget of *process CPU time* (one thread each, so that two
runs side by side, or other work on the machine, do not change what a configuration gets), then scores the EMA
weights with ``bench/cifar_judge.py``: the judge's class agreement (conditional runs), the run's own encoder's
agreement, and the Frechet distance in the judge's features (judge-FD, 2,000 samples against the 10,000 test
images). Each result is written as a JSON record to ``docs/results/cifar_cpu/screen-NAME.json``. Runs that
differ in the encoder (``enc8``) train their own first, and its CPU time is counted apart (``setup_cpu_s``).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cifar_judge  # noqa: E402

from course.pages import write_between  # noqa: E402
from drifting_min.cifar.config import CifarConfig  # noqa: E402
from drifting_min.cifar.train import train  # noqa: E402
from drifting_min.runtime import set_threads  # noqa: E402

RECORDS = Path(__file__).resolve().parents[1] / "docs" / "results" / "cifar_cpu"

# the starting point of the screen (the CPU preset was then chosen from these results)
BASE = {"conditional": True, "gen_width": 16, "noise_dim": 64, "batch_gen": 80, "batch_real": 80, "lr": 1e-3,
        "warmup": 50, "decay": "cosine", "ema": 0.99, "gen_steps": 100000, "ckpt_every": 100000,
        "grid_every": 100000, "log_every": 20, "device": "cpu"}
SCREEN: dict[str, dict] = {
    "base": {},
    "uncond": {"conditional": False, "batch_gen": 64, "batch_real": 64},
    "width32": {"gen_width": 32},
    "lr3e-4": {"lr": 3e-4},
    "batch160": {"batch_gen": 160, "batch_real": 160},
    "no-loc": {"locations": False},
    "stages12": {"feature_stages": (1, 2)},
    "no-raw": {"raw_feature": False},
    "taus-05-2": {"taus": (0.05, 0.2)},
    "enc8": {"encoder_width": 8, "encoder_epochs": 1.0},
}


def run_one(name: str, overrides: dict, args) -> dict:
    settings = {**BASE, **overrides, "data": args.data, "test_data": args.test}
    own_encoder = "encoder_width" in overrides
    if not own_encoder:
        settings["encoder"] = args.encoder
    cfg = CifarConfig(**settings)
    out = Path(args.runs) / name
    budget = 60 * args.cpu_minutes
    start = {"cpu": None, "wall": None}

    def on_step(trainer):  # the generator's budget is counted from its first step (after the encoder stage)
        if start["cpu"] is None:
            start["cpu"], start["wall"] = time.process_time(), time.monotonic()
        if time.process_time() - start["cpu"] > budget:
            os.kill(os.getpid(), signal.SIGTERM)  # the trainer saves and stops after this step

    cpu0 = time.process_time()
    summary = train(cfg, out, progress=False, on_step=on_step)
    gen_cpu = time.process_time() - (start["cpu"] or cpu0)
    gen_wall = time.monotonic() - (start["wall"] or time.monotonic())
    record = {"name": name, "overrides": {k: list(v) if isinstance(v, tuple) else v for k, v in overrides.items()},
              "config": cfg.to_dict(), "run": str(out), "steps": summary["step"],
              "generator_cpu_s": round(gen_cpu, 1), "generator_wall_s": round(gen_wall, 1),
              "images_per_cpu_s": round(summary["step"] * cfg.batch_gen / max(gen_cpu, 1e-9), 1),
              "encoder_test_accuracy": summary.get("test_accuracy"),
              "setup_cpu_s": round((start["cpu"] or cpu0) - cpu0, 1),  # data, and the encoder if trained here
              "date": time.strftime("%Y-%m-%d"), "threads": 1,
              "command": f"python bench/cifar_cpu_recipe.py screen --only {name} --cpu-minutes {args.cpu_minutes}"}
    RECORDS.mkdir(parents=True, exist_ok=True)
    (RECORDS / f"screen-{name}.json").write_text(json.dumps(record, indent=1) + "\n")
    if Path(args.judge).exists():
        record = score_record(RECORDS / f"screen-{name}.json", args)
    return record


def score_record(path: Path, args) -> dict:
    """Add the judge's scores of the record's run (its EMA weights) to the record."""
    record = json.loads(path.read_text())
    score = cifar_judge.score(argparse.Namespace(judge=args.judge, run=record["run"], n=args.n, seed=1,
                                                 test=args.test, data=args.data, cache=None, floor=False))
    record.update({k: v for k, v in score.items() if k != "run"})
    path.write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps({k: record.get(k) for k in ("name", "steps", "judge_fd", "judge_agreement",
                                                 "own_encoder_agreement")}), flush=True)
    return record


def snapshot_fid(args) -> dict:
    """FID of one EMA snapshot of a run, by the trainer's own ``fid`` command: the snapshot is copied to
    RUN/at_step_NNNNNN/ema.pt, and the command appends its result to that folder's log, where ``final`` finds
    it."""
    import shutil

    from drifting_min.cifar.__main__ import main as command

    run = Path(args.run)
    folder = run / f"at_step_{args.step:06d}"
    folder.mkdir(exist_ok=True)
    shutil.copyfile(run / "snapshots" / f"ema_step_{args.step:06d}.pt", folder / "ema.pt")
    return command(["fid", "--out", str(folder), "--n", str(args.n), "--inception", args.inception,
                    "--ref-stats", args.ref_stats, "--no-progress", "--threads", "1"])


def _fids(folder: Path) -> list[dict]:
    log = folder / "log.jsonl"
    lines = [json.loads(ln) for ln in log.read_text().splitlines() if ln.strip()] if log.exists() else []
    return [ln for ln in lines if ln.get("event") == "fid"]


def final_record(args) -> dict:
    """The record of a full-length run (the preset's, or the GAN peer's): timing from its log or summary, the
    judge's scores at every EMA snapshot and at the end, FID from its log (``python -m drifting_min.cifar fid
    --out RUN`` appends it there), and three grids copied next to the record for the site."""
    import shutil

    run = Path(args.run)
    lines = [json.loads(ln) for ln in (run / "log.jsonl").read_text().splitlines() if ln.strip()]
    points = sorted(run.glob("snapshots/ema_step_*.pt"))
    final_step = torch.load(run / "ema.pt", map_location="cpu", weights_only=False)["step"]
    if not points or not points[-1].name.endswith(f"_{final_step:06d}.pt"):
        points.append(run / "ema.pt")  # the end of the run, unless its snapshot is there already
    judged = []
    for path in points:
        cached = path.with_name(path.name + f".judge-n{args.n}.json")  # the judge's scores of this file, kept
        if cached.exists() and cached.stat().st_mtime > path.stat().st_mtime:
            score = json.loads(cached.read_text())
        else:
            score = cifar_judge.score(argparse.Namespace(judge=args.judge, run=str(path), n=args.n, seed=1,
                                                         test=args.test, data=args.data, cache=None,
                                                         floor=path == points[-1]))
            cached.write_text(json.dumps(score))
        judged.append({k: v for k, v in score.items() if k != "run"})
        fids = _fids(run / f"at_step_{score['step']:06d}") + (_fids(run) if score["step"] == final_step else [])
        judged[-1]["fid"] = [{k: f[k] for k in ("fid", "n", "reference") if k in f} for f in fids]
        print(json.dumps(judged[-1]), flush=True)
    steps = [ln for ln in lines if "loss" in ln or "d_loss" in ln]
    record = {"name": args.name, "run": str(run), "kind": args.kind, "date": time.strftime("%Y-%m-%d"),
              "config": json.loads((run / "config.json").read_text()) if (run / "config.json").exists() else
              json.loads((run / "summary.json").read_text()),
              "steps": judged[-1]["step"], "log": steps,
              "fid": [ln for ln in lines if ln.get("event") == "fid" or "fid" in ln and "n" in ln],
              "judged": judged, "command": args.command_line,
              "cpu_time_s": args.cpu_s, "wall_time_s": args.wall_s, "notes": args.notes}
    RECORDS.mkdir(parents=True, exist_ok=True)
    (RECORDS / f"final-{args.name}.json").write_text(json.dumps(record, indent=1) + "\n")
    grids = sorted(run.glob("grids/step_*.png"))
    for g in grids[-3:] if len(grids) <= 3 else [grids[len(grids) // 3 - 1], grids[2 * len(grids) // 3 - 1],
                                                   grids[-1]]:
        shutil.copyfile(g, RECORDS / f"{args.name}-{g.name}")
    return record


FLOOR_2K = 16.19  # FID of 2,000 real JPEG training images against the JPEG test statistics (the data's README)
BEGIN = "<!-- cifar-cpu-tables: begin (bench/cifar_cpu_recipe.py table --write) -->"
END = "<!-- cifar-cpu-tables: end -->"


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def tables(records: Path = RECORDS) -> str:
    """The markdown tables of the screen and of the full-length runs, made from the records alone."""
    rows = [json.loads(p.read_text()) for p in sorted(records.glob("screen-*.json"))]
    rows = sorted((r for r in rows if "judge_fd" in r), key=lambda r: r["judge_fd"])
    out = ["| configuration | change from the start | steps in 2 CPU min | images / CPU s | judge-FD (2k) | "
           "judge's agreement | own encoder's |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        change = ", ".join(f"`{k}` {v}" for k, v in r["overrides"].items()) or "(the starting point)"
        out.append(f"| {r['name']} | {change} | {r['steps']} | {r['images_per_cpu_s']:.0f} | {r['judge_fd']:.2f} | "
                   f"{_fmt(r.get('judge_agreement'), '.3f')} | {_fmt(r.get('own_encoder_agreement'), '.3f')} |")
    finals = [json.loads(p.read_text()) for p in sorted(records.glob("final-*.json"))]
    out += ["", "| run | CPU min | steps | point | FID-2k (floor 16.19) | judge's agreement | own encoder's | "
            "judge-FD (2k) |", "|---|---|---|---|---|---|---|---|"]
    for r in finals:
        for j in r["judged"]:
            fid = next((f["fid"] for f in j.get("fid", []) if f.get("n") == 2000), None)
            out.append(f"| {r['name']} | {_fmt(r.get('cpu_time_s') and r['cpu_time_s'] / 60, '.1f')} | "
                       f"{r['steps']} | step {j['step']} | {_fmt(fid, '.1f')} | "
                       f"{_fmt(j.get('judge_agreement'), '.3f')} | {_fmt(j.get('own_encoder_agreement'), '.3f')} | "
                       f"{j['judge_fd']:.2f} |")
    return "\n".join(out)


def table(args) -> str:
    text = tables()
    if args.write:
        write_between(args.write, BEGIN, END, text)
    print(text)
    return text


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("screen")
    s.add_argument("--encoder", default="runs/s16/enc16/encoder.pt", help="the shared encoder (encoder.pt)")
    s.add_argument("--judge", default="runs/judge.pt")
    s.add_argument("--data", default="data/cifar10-jpeg/train.zip")
    s.add_argument("--test", default="data/cifar10-jpeg/test.zip")
    s.add_argument("--runs", default="runs/screen")
    s.add_argument("--cpu-minutes", type=float, default=2.0, help="generator budget of each run (CPU minutes)")
    s.add_argument("--n", type=int, default=2000, help="samples scored")
    s.add_argument("--only", nargs="+", default=None, choices=list(SCREEN))
    sc = sub.add_parser("score", help="score the records that have no judge scores yet")
    for a in ("judge", "data", "test", "n"):
        sc._add_action(next(x for x in s._actions if x.dest == a))
    f = sub.add_parser("final", help="the record of a full-length run")
    for a in ("judge", "data", "test", "n"):
        f._add_action(next(x for x in s._actions if x.dest == a))
    f.add_argument("--run", required=True)
    f.add_argument("--name", required=True)
    f.add_argument("--kind", default="drifting", choices=["drifting", "gan"])
    f.add_argument("--command-line", default="", help="the command that trained the run")
    f.add_argument("--cpu-s", type=float, default=None, help="process CPU seconds of the whole run")
    f.add_argument("--wall-s", type=float, default=None, help="wall seconds of the whole run")
    f.add_argument("--notes", default="")
    sf = sub.add_parser("snapshot-fid", help="FID of one EMA snapshot of a run (the trainer's fid command)")
    sf.add_argument("--run", required=True)
    sf.add_argument("--step", type=int, required=True)
    sf.add_argument("--n", type=int, default=2000)
    sf.add_argument("--inception", default="data/fid/inception-2015-12-05-fp16.pt")
    sf.add_argument("--ref-stats", default="data/fid/cifar10-jpeg-test-stats.npz")
    tb = sub.add_parser("table", help="print the tables made from the records (--write: into a page's markers)")
    tb.add_argument("--write", default=None, help="a markdown page with the table markers, e.g. docs/results.md")
    args = p.parse_args(argv)
    if args.command == "snapshot-fid":
        return snapshot_fid(args)
    if args.command == "final":
        set_threads(1)
        return final_record(args)
    if args.command == "table":
        return table(args)
    set_threads(1)
    if args.command == "score":
        for path in sorted(RECORDS.glob("screen-*.json")):
            record = json.loads(path.read_text())
            if "judge_fd" not in record or (record["config"]["conditional"] and
                                            record.get("own_encoder_agreement") is None):
                score_record(path, args)
        return
    for name in args.only or SCREEN:
        run_one(name, SCREEN[name], args)


if __name__ == "__main__":
    main()
