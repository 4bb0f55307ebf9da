"""The ratio detectors with the old and the new general set side by side, scored on
the shipped checkpoints: what ``make run`` prints after its own table.

    python -m experiments.general_sets --workdir runs/general_sets \
        [--old runs/glow_fmnist] [--max_eval N]

The ``general_images`` chains (general Glow on about 231,000 crops of Debian's clip
art and wallpapers, ID and outlier-loss Glows fine-tuned from it; see
``experiments/configs/glow_fmnist.py``) are restored from
``experiments/checkpoints/`` and scored on FMNIST → MNIST-5k, FMNIST → Animal-MNIST
and MNIST-5k → FMNIST: the likelihood, the final scale, ``llr`` and ``llr_outlier``
with 95 % bootstrap intervals. The ``general_photos`` rows come from the finished
run directory ``--old`` (``make run``'s own run) when it is there. Nothing is
trained and the general set itself is not needed: 67 s on 2 CPU cores for the
51,000 log-likelihoods. Expect on FMNIST → MNIST-5k ``llr_outlier`` 0.797 against
0.492 with the old general set, and why it swings with the length of training, in
``experiments/README.md``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import jax

from experiments import configured, flow_pipeline, tables
from experiments.configs import glow_fmnist
from jaxood import flows, io

# (published name, config options, overrides): the runs of experiments/README.md's
# general-set comparison whose models are shipped.
CHAINS = (
    ("glow_fmnist_general_images", "general_images", {}),
    ("glow_mnist_5k_general_images_6000", "mnist_5k,general_images",
     {"id_steps": 6000}),
)  # fmt: skip
OLD = "glow_fmnist"  # make run's run: the general_photos chain


def restore(config, model, workdir: Path) -> dict:
    """The general, ID and outlier-loss params of ``config``, from its restore
    sources into ``workdir``; a missing checkpoint is an error, never trained."""
    template = jax.eval_shape(lambda: model.random_params(jax.random.key(0)))
    sources = configured.restore_sources(config)

    def refuse(stage):
        raise SystemExit(
            f"experiments.general_sets: no checkpoint of the {stage} stage of "
            f"{config.name} in {sources}; train it with the command in "
            "experiments/checkpoints/README.md."
        )

    return {s: io.train_or_restore(workdir / s, flow_pipeline.fingerprint(config, s),
                                   template, lambda s=s: refuse(s), sources)
            for s in flow_pipeline.STAGES}  # fmt: skip


def score_chain(config, workdir: Path) -> dict:
    """The chain's four detectors on its pairs of the comparison, shaped like a
    flow run's results (``training``, ``bpd`` and ``metrics``)."""
    model = flow_pipeline.build_model(config)
    params = restore(config, model, workdir)
    sets = flow_pipeline.evaluation_sets(config, oods=tables.PAIRED)
    log_probs = {stage: {n: flows.log_prob_images(model, p, x, desc=f"{stage} {n}")
                         for n, x in sets.items()}
                 for stage, p in params.items()}  # fmt: skip
    scores = {n: flow_pipeline.chain_scores(log_probs, n) for n in sets}
    oods = [n.removeprefix("ood/") for n in sets if n != "id_test"]
    bpd = flow_pipeline.mean_bits_per_dim(
        log_probs["id"]["id_test"], model.config.num_dims
    )
    summary = lambda d, o: flow_pipeline.auroc_summary(  # noqa: E731
        config, scores["id_test"][d], scores[f"ood/{o}"][d])  # fmt: skip
    return {
        "name": config.name,
        "training": {s: io.stage_summary(workdir / s) for s in params},
        "bpd": {"id": {"id_test": bpd}},
        "metrics": {d: {o: summary(d, o) for o in oods} for d in tables.COMPARED},
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m experiments.general_sets")
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--old", type=Path, help="a finished glow_fmnist run")
    parser.add_argument("--max_eval", type=int, help="fewer images per set")
    raw = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(raw)
    results = {}
    old = args.old / "results.json" if args.old else None
    if old is not None and old.is_file():
        results[OLD] = json.loads(old.read_text())
    for name, options, stages in CHAINS:
        config = glow_fmnist.get_config(options)
        config.stages.update(stages)
        if args.max_eval:
            config.data.max_eval = min(config.data.max_eval, args.max_eval)
        results[name] = score_chain(config, args.workdir / name)
    io.write_json(args.workdir / "results.json", results)
    table = tables.general_sets_table(results)
    command = shlex.join(["python", "-m", "experiments.general_sets", *raw])
    (args.workdir / "report.md").write_text(
        "# The old and the new general set\n\n"
        f"{tables.with_source(table, command, 'results.json')}\n"
    )
    print(f"The old and the new general set ({args.workdir / 'report.md'}):\n\n{table}")


if __name__ == "__main__":
    main()
