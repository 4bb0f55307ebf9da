"""The one entry point of every experiment (flows, VAEs, diffusion, DoSE, LID).

    python -m experiments.main --config experiments/configs/glow_fmnist.py \
        --workdir runs/glow_fmnist --mode all

``--config FILE[:OPTIONS]`` names a ``get_config(arg)`` file; change a field with
``--config.FIELD=VALUE`` (the config is locked: unknown fields are an error).
Modes: ``train`` (every model of the config, resuming; finished ones are kept),
``score`` (``scores.npz``, ``results.json``), ``lid`` (flows: LID + likelihood dual
threshold), ``report`` (``report.md`` with plots, and the table on stdout), ``all``
(train, score, report). The logic lives in the pipeline module the config names
(``config.pipeline``): its ``train_models(config, workdir) -> trained``, ``score(config,
workdir, trained) -> results`` (a JSON-able dict), ``figures(config, workdir, trained,
results) -> {caption: png}`` (the plots of ``report.md``) and, for flows,
``lid(config, workdir) -> (results, figures)``; :func:`run` strings them together
and writes ``report.md`` with the results' block of :mod:`experiments.tables`.
"""

from __future__ import annotations

import importlib
import shlex
import sys
from pathlib import Path

import jax
import ml_collections
from absl import flags, logging
from ml_collections import config_flags

from experiments import tables
from jaxood import io, parallel

MODES = ("train", "score", "lid", "report", "all")


def parse(argv: list[str]):
    """``argv`` (program name first) -> ``(config, workdir, mode)``.

    A fresh set of flags per call, so that the tests drive this same parser.
    """
    fv = flags.FlagValues()
    config_flags.DEFINE_config_file("config", None, "ml_collections config file"
                                    "[:options].", flag_values=fv, lock_config=True,
                                    sys_argv=argv)  # fmt: skip
    flags.DEFINE_string("workdir", None, "Run directory.", flag_values=fv)
    flags.DEFINE_enum("mode", "all", MODES, "What to do.", flag_values=fv)
    if {"-h", "--help", "-help"} & set(argv):
        raise SystemExit(f"{__doc__}\n{fv.get_help()}")
    try:
        extra = fv(argv)[1:]
        config = fv.config
        if config is not None and not isinstance(config, ml_collections.ConfigDict):
            config.pipeline  # an unreadable file: raises its error  # noqa: B018
    except (KeyError, AttributeError) as error:
        raise SystemExit(
            f"experiments.main: no config field {str(error).strip(chr(34))}."
        ) from None
    except Exception as error:
        last = str(error).strip().splitlines()[-1]
        raise SystemExit(f"experiments.main: {last}") from None
    if extra or config is None or not fv.workdir:
        raise SystemExit(
            "usage: python -m experiments.main --config FILE[:OPTIONS] --workdir DIR "
            f"[--mode {{{','.join(MODES)}}}]"
            + (f"; unexpected {extra}" if extra else "")
        )
    workdir = Path(fv.workdir)
    if workdir.exists() and not workdir.is_dir():
        raise SystemExit(f"experiments.main: --workdir {workdir} is a file.")
    return config, workdir, fv.mode


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv if argv is None else argv)
    config, workdir, mode = parse(argv)
    logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
    workdir.mkdir(parents=True, exist_ok=True)
    command = shlex.join(["python", "-m", "experiments.main", *argv[1:]])
    pipeline = importlib.import_module(f"experiments.{config.pipeline}_pipeline")
    mesh = parallel.data_mesh(devices(config.mesh.devices))
    print(parallel.describe(mesh))
    with jax.set_mesh(mesh):  # batches split over the mesh, params replicated
        run(pipeline, config, workdir, mode, command)


def run(pipeline, config, workdir: Path, mode: str, command: str) -> None:
    """One mode of a pipeline module (see the module docstring)."""
    if mode == "lid":
        if not hasattr(pipeline, "lid"):
            raise SystemExit(
                f"--mode lid needs a flow config (glow_fmnist.py); {config.name} is a "
                f"{config.pipeline} config."
            )
        (results, figures), workdir = pipeline.lid(config, workdir), workdir / "lid"
    else:
        trained = pipeline.train_models(config, workdir)
        if mode == "train":
            return
        results = pipeline.score(config, workdir, trained) | {"command": command}
        io.write_json(workdir / "results.json", results)
        if mode == "score":
            return
        figures = pipeline.figures(config, workdir, trained, results)
    family = "lid" if mode == "lid" else config.pipeline
    print(tables.write_report(workdir, config.name, family, results, figures, command))


def devices(count: int) -> list:
    """The first ``count`` local devices (0: all of them)."""
    local = jax.local_devices()
    if not 0 <= count <= len(local):
        raise SystemExit(
            f"experiments.main: --config.mesh.devices={count}, but this process "
            f"sees {len(local)} device(s); use 0 (all) or 1..{len(local)}."
        )
    return local[:count] if count else local


if __name__ == "__main__":
    main()
