"""Wall time and learner steps of the main job, ``python evaluate.py --train`` (README "The main job").

Runs the job as its CLI does, in a fresh process writing to a temporary ``--out`` (nothing reused), and reports:
the wall time and CPU time (the job and its workers; less sensitive to other load on the machine), the training
phase's share of the wall time (until the last learner's ``summary.json`` is written), the total learner steps (read
from every run's ``checkpoints/state.json``: PPO rounds each learner up to whole rollouts) and learner steps per
second of wall time over the training phase. Extra arguments go to evaluate.py.

    python benchmarks/main_job.py [-- --train-timesteps 20000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("extra", nargs="*", help="more evaluate.py arguments (after --)")
    args = p.parse_args()
    out = Path(tempfile.mkdtemp(prefix="main_job_"))
    command = [sys.executable, str(ROOT / "evaluate.py"), "--train", "--out", str(out), "--no-progress", *args.extra]
    print("running:", " ".join(command), flush=True)
    start, wall_start = time.perf_counter(), time.time()
    subprocess.run(
        command, check=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL
    )
    wall = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # the job and its worker processes
    cpu = usage.ru_utime + usage.ru_stime

    runs = sorted((out / "runs").iterdir())
    steps = {r.name: json.loads((r / "checkpoints" / "state.json").read_text())["model_steps"] for r in runs}
    total = sum(n for learners in steps.values() for n in learners.values())
    training = max((r / "summary.json").stat().st_mtime for r in runs) - wall_start
    learners = sum(len(v) for v in steps.values())
    print(
        f"main job: {wall:.0f} s wall ({training:.0f} s training, {wall - training:.0f} s evaluation and report), "
        f"{cpu:.0f} CPU seconds; "
        f"{len(runs)} mechanisms x {learners // max(1, len(runs))} learners = {learners} learners, "
        f"{total:,} learner steps ({total / training:,.0f} per second of training wall time); "
        f"{len(os.sched_getaffinity(0))} core(s) allowed"
    )
    print(
        json.dumps(
            {
                "benchmark": "main_job",
                "wall_seconds": wall,
                "cpu_seconds": cpu,
                "training_seconds": training,
                "learner_steps": total,
                "learner_steps_per_training_second": total / training,
                "steps": steps,
                "out": str(out),
            }
        )
    )


if __name__ == "__main__":
    main()
