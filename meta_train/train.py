"""The meta-training loop: `train(config) -> TrainResult`.

    result = train(MetaTrainConfig(family="quadratic", outer_steps=300, out_dir="runs/q"))
    result = train(config, resume="runs/q")         # continue, bit-identical on CPU

A run directory holds ``config.json`` (the resolved config), ``metrics.csv`` and
``metrics.jsonl`` (one row every ``log_every`` steps and at held-out evaluations),
``checkpoint.msgpack`` (the whole `EstimatorState`, replaced atomically every
``ckpt_every`` steps, at the end and on SIGINT / SIGTERM; the one before is kept as
``checkpoint.prev.msgpack``) and ``theta.json`` + ``theta.msgpack`` (the final
meta-parameters via `l2o.save`, with provenance); with ``keep="best"`` also
``theta_best.*``, the best evaluated theta (`meta_train.selection`). Each outer step is one jitted call
(`ESGradientEstimator.step`); metrics stay on device until a logging step.

With several devices the particle axis is split over them (`meta_train.sharding`,
``config.shard`` / ``num_devices``); with ``config.coordinator`` the run spans several
processes (`meta_train.distributed`): every process computes, only process 0 writes files.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
from tqdm.auto import tqdm

from l2o.io import check_saveable
from meta_train import distributed
from meta_train.checkpoint import (
    CHECKPOINT, keep_previous, load_checkpoint, save_checkpoint, write_atomic,
)
from meta_train.config import MetaTrainConfig
from meta_train.evaluate import evaluate_theta, summarize
from meta_train.init_theta import initial_theta
from meta_train.inner import LearnedOptimizerSystem
from meta_train.interrupt import Interrupted, StopSignals
from meta_train.metrics_log import MetricsLog
from meta_train.mixture import MixtureEstimator, group_estimator
from meta_train.mixture_sharding import ShardedMixture
from meta_train.pes import ESGradientEstimator
from meta_train.run_dir import prepare_new, resume_step
from meta_train import selection
from meta_train.sharding import ShardedEstimator, particle_mesh, resolve_num_devices


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """What `train` returns.

    Attributes:
      theta: the kept meta-parameters (``config.keep``: the final ones, or the best).
      run_dir: the run directory; metrics_path: its ``metrics.csv``.
      theta_path: where the kept theta is (``.json`` + ``.msgpack`` written by `l2o.save`):
        ``run_dir / "theta"`` (the final one), or ``run_dir / "theta_best"``.
      steps: outer steps taken in total (including before a resume).
      final_eval: held-out summary for the final theta (``"trained"``) and the initial
        one (``"initial"``), see `meta_train.evaluate.summarize`; with ``keep="best"``
        also ``"kept"``, the kept theta's summary plus its ``"step"``.
      kept_step: the outer step of the kept theta (0: the initial one).
    """

    theta: Any
    run_dir: Path
    metrics_path: Path
    theta_path: Path
    steps: int
    final_eval: dict
    kept_step: int = -1


@dataclasses.dataclass(frozen=True)
class Components:
    """Everything built from a config (see `build`).

    ``family`` / ``system`` are the (first) training family and its inner system;
    ``families`` / ``systems`` hold one per mixture entry (one for a single family).
    ``estimator`` is an `ESGradientEstimator`, or a `MixtureEstimator` for a mixture.
    ``init_record`` says where ``theta_init`` came from with ``config.init_theta``
    (`meta_train.init_theta.initial_theta`; None for a fresh init).
    """

    lopt: Any
    family: Any
    heldout: Any
    system: LearnedOptimizerSystem
    estimator: Any
    theta_init: Any
    families: tuple = ()
    systems: tuple = ()
    init_record: dict | None = None


def build(
    config: MetaTrainConfig, family: Any = None, heldout: Any = None, lopt: Any = None,
    families: Any = None,
) -> Components:
    """Learned optimizer, families, inner system and estimator described by ``config``.

    ``family`` / ``heldout`` / ``lopt`` objects replace the ones the config names (for
    task families or optimizers that are not in the registries); ``config.family`` then
    only labels the run. The training family is ``tasks.registry.get(config.family,
    **config.family_kwargs())`` with ``config.augment``; the held-out one is the
    registered held-out split, without ``config.family_overrides``.

    With ``config.mixture`` the estimator is a `MixtureEstimator` with one group per
    entry (`build_entry`; ``families``, one per entry, replace them) and the held-out
    family defaults to the first entry's.
    """
    import l2o
    from tasks import registry

    mixture = config.mixture
    custom = (families if mixture is not None else family) is not None
    config.check_names(lopt=lopt is None, families=not custom or heldout is None)
    if lopt is None:
        lopt = l2o.registry.get(config.lopt, **config.lopt_config)
    if mixture is None:
        families = (build_family(config) if family is None else family,)
    elif families is None:
        families = tuple(build_entry(entry, i) for i, entry in enumerate(mixture))
    elif len(families) != len(mixture):
        raise ValueError(f"got {len(families)} families for a mixture of {len(mixture)} entries.")
    if heldout is None:
        default = config.family if mixture is None else mixture[0]["family"]
        heldout = registry.get(config.heldout_family or default, split="heldout")
    systems = tuple(
        LearnedOptimizerSystem(
            family=f, lopt=lopt, horizon=config.horizon, meta_loss=config.meta_loss,
            meta_loss_split=config.meta_loss_split, max_ratio=config.max_ratio,
            min_ratio=config.min_ratio,
            horizon_range=None if config.horizon_range is None else tuple(config.horizon_range),
            horizon_multiple=config.trunc_length,
        ) for f in families)
    theta_init, init_record = initial_theta(
        lopt, config.init_theta, jax.random.fold_in(jax.random.PRNGKey(config.seed), 1))
    low_high = max(abs(v) for v in _bounds(config))
    settings = dict(
        strategy=config.strategy, sigma=config.sigma, num_tasks=config.num_tasks,
        num_pairs=config.num_pairs, trunc_length=config.trunc_length, horizon=config.horizon,
        fitness_shaping_fn=config.fitness_shaping, fitness_clip=low_high,
        nan_fitness=_bounds(config)[1], stagger=config.stagger,
    )
    if mixture is None:
        estimator = ESGradientEstimator(systems[0], theta_init, outer_lr=config.outer_lr,
                                        outer_clip=config.outer_clip, **settings)
    else:
        estimator = MixtureEstimator(
            [group_estimator(s, theta_init, **settings) for s in systems],
            weights=[entry["weight"] for entry in mixture], outer_lr=config.outer_lr,
            outer_clip=config.outer_clip,
        )
    return Components(lopt, families[0], heldout, systems[0], estimator, theta_init,
                      families, systems, init_record)


def build_family(config: MetaTrainConfig) -> Any:
    """The ``"train"`` split of ``config.family`` with ``config.family_overrides`` and
    ``config.augment``.

    Raises:
      ValueError: an override key the family does not accept, or a value it rejects
        (the message names ``family_overrides``).
    """
    from tasks import augment, registry

    config.check_family_overrides()
    try:
        family = registry.get(config.family, **config.family_kwargs())
    except (TypeError, ValueError) as err:
        if not config.family_overrides:
            raise
        raise ValueError(f"task family {config.family!r} rejected family_overrides "
                         f"{config.family_overrides}: {err}") from err
    return augment.apply(family, config.augment) if config.augment else family


def build_entry(entry: dict, index: int = 0) -> Any:
    """The ``"train"`` family of mixture entry ``index`` (`tasks.mixtures.build`).

    Raises:
      ValueError: the family rejects the entry's overrides (the message names the entry).
    """
    from tasks import mixtures

    try:
        return mixtures.build(entry)
    except (KeyError, TypeError, ValueError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        raise ValueError(f"mixture entry {index} ({entry['family']!r}) was rejected: "
                         f"{message}") from err


def make_runner(config: MetaTrainConfig, estimator: Any) -> Any:
    """What runs the outer steps: ``estimator`` itself on one device, else a
    `ShardedEstimator` (`ShardedMixture` for a `MixtureEstimator`) over the first
    `resolve_num_devices` devices of all processes.

    Raises:
      ValueError: ``num_devices`` does not fit the devices or the particle axis, or a
        multi-process run cannot use every process's devices.
    """
    num_tasks, num_pairs = estimator.num_tasks, estimator.num_pairs
    num_devices = (resolve_num_devices(config.num_devices, num_tasks, num_pairs)
                   if config.shard else 1)
    if jax.process_count() > 1 and num_devices != jax.device_count():
        raise ValueError(
            f"a {jax.process_count()}-process run must shard over all {jax.device_count()} "
            f"devices, but shard={config.shard}, num_devices={config.num_devices} gives "
            f"{num_devices}; set shard=true and choose num_tasks*num_pairs so that "
            f"2*num_tasks*num_pairs is a multiple of {jax.device_count()}."
        )
    if num_devices == 1:
        return estimator
    mesh = particle_mesh(num_tasks, num_pairs, jax.devices()[:num_devices])
    if isinstance(estimator, MixtureEstimator):
        return ShardedMixture(estimator, mesh)
    return ShardedEstimator(estimator, mesh)


def _bounds(config: MetaTrainConfig) -> tuple[float, float]:
    from meta_train.objective import meta_loss_bounds

    return meta_loss_bounds(config.meta_loss, config.max_ratio, config.min_ratio)


def check_writable(run_dir: Path) -> None:
    """Create ``run_dir`` and make sure files can be written there (clear error otherwise)."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write-test"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as err:
        raise PermissionError(
            f"run directory {str(run_dir)!r} is not writable ({err.strerror or err}); "
            "pass another out_dir (--out) or fix its permissions."
        ) from None


def resolve_resume(config: MetaTrainConfig, run_dir: Path) -> MetaTrainConfig:
    """``config`` as the resumption of ``run_dir`` (`FileNotFoundError` without its
    config.json, `ValueError` naming every recipe field that changed)."""
    saved_path = run_dir / "config.json"
    if not saved_path.is_file():
        raise FileNotFoundError(
            f"cannot resume from {str(run_dir)!r}: no config.json there; pass the directory "
            "of an earlier run."
        )
    saved = MetaTrainConfig.from_json(saved_path)
    if config.recipe != saved.recipe:
        changed = [f.name for f in dataclasses.fields(config.recipe)
                   if getattr(config, f.name) != getattr(saved, f.name)]
        diffs = ", ".join(f"{n}: {getattr(saved, n)!r} -> {getattr(config, n)!r}" for n in changed)
        raise ValueError(
            f"cannot resume {str(run_dir)!r} with a different recipe ({diffs}); only run "
            "settings (outer_steps, evaluation, logging, devices, processes) may change. "
            "Start a new run instead."
        )
    return dataclasses.replace(config, out_dir=str(run_dir))


def _eval(components: Components, config: MetaTrainConfig, theta: Any, key: jax.Array) -> dict:
    result = evaluate_theta(components.heldout, components.lopt, theta, key,
                            config.eval_tasks, config.horizon)
    return summarize(result)


def train(
    config: MetaTrainConfig,
    resume: str | Path | None = None,
    progress: bool = True,
    components: Components | None = None,
    overwrite: bool = False,
    allow_fresh: bool = False,
) -> TrainResult:
    """Meta-train ``config.lopt`` on ``config.family`` with ``config.strategy``.

    Args:
      config: the run's config (``config.out_dir`` is the run directory).
      resume: an earlier run directory to continue from its latest checkpoint;
        ``config.recipe`` must equal the saved one (its run settings -- ``outer_steps``,
        logging, devices -- may change).
      progress: show a tqdm progress bar.
      components: prebuilt pieces (e.g. a custom family or optimizer not in the
        registries); default `build(config)`. They must agree with ``config``.
      overwrite: a new run may replace an earlier run in ``config.out_dir`` (whose files
        are deleted first); without it that raises `meta_train.run_dir.RunExists`.
      allow_fresh: a resume of a directory without a checkpoint starts from step 0 (else
        `meta_train.run_dir.NothingToResume`).

    Raises:
      meta_train.run_dir.AlreadyDone: the resumed run is already at ``outer_steps`` or
        beyond; no file was changed.
      meta_train.interrupt.Interrupted: SIGINT / SIGTERM arrived; the state of the last
        finished step was checkpointed first.

    With ``config.coordinator`` set, joins the process group first (before any JAX
    computation); all processes must call `train` with the same training fields, and
    resuming needs the run directory readable by all of them (shared filesystem).
    """
    distributed.initialize(config.coordinator, config.num_processes, config.process_id)
    if resume is not None:
        config = resolve_resume(config, Path(resume))
    primary, multi_process = distributed.is_primary(), jax.process_count() > 1
    run_dir = Path(config.out_dir)
    if resume is not None:
        resume_step(run_dir, config.outer_steps, allow_fresh)
    elif primary:
        prepare_new(run_dir, overwrite)
    if primary:
        check_writable(run_dir)
    components = build(config) if components is None else components
    check_saveable(components.lopt)
    estimator = components.estimator
    runner = make_runner(config, estimator)
    config_json = json.dumps(config.to_dict(), indent=2, sort_keys=True) + "\n"
    distributed.assert_same_everywhere(_training_fields(config), "the training config")
    if primary:
        write_atomic(run_dir / "config.json", config_json.encode())

    root_key = jax.random.PRNGKey(config.seed)
    state = runner.init(jax.random.fold_in(root_key, 0), components.theta_init)
    log = MetricsLog(run_dir) if primary else None
    start_step, wall_offset, nonfinite_since_log = 0, 0.0, jnp.int32(0)
    best = None  # the best periodic evaluation so far (`meta_train.selection`)
    checkpoint_path = run_dir / CHECKPOINT
    restoring = resume is not None and checkpoint_path.is_file()
    distributed.assert_same_everywhere(f"checkpoint found: {restoring}",
                                       f"whether {CHECKPOINT} exists in the resumed run directory")
    if restoring:
        template = distributed.to_host(state) if multi_process else state
        state, extra = load_checkpoint(checkpoint_path, template)
        if runner is not estimator:
            state = runner.place(state)
        start_step, wall_offset = int(extra["step"]), float(extra["wall_time"])
        nonfinite_since_log = jnp.int32(extra.get("nonfinite_since_log", 0))
        best = selection.from_extra(extra, components.theta_init)
        if log is not None:
            log.truncate(extra["metrics_offsets"])
    elif log is not None:
        log.truncate(None)

    # Every evaluation (periodic and final) uses the same held-out tasks and batches, so
    # the eval_* columns of metrics.csv are comparable across steps and with final_eval.
    eval_key = jax.random.fold_in(jax.random.fold_in(root_key, 2), -1 % (2**31))
    t_start = time.perf_counter()
    t_last, step_last = t_start, start_step
    bar = tqdm(total=config.outer_steps, initial=start_step, disable=not (progress and primary),
               desc="meta-train", unit="step")
    stop = StopSignals().install()
    try:
        for step in range(start_step + 1, config.outer_steps + 1):
            state, metrics = runner.step(state)
            nonfinite_since_log = nonfinite_since_log + metrics["num_nonfinite"]
            state.step.block_until_ready()  # the progress bar shows finished steps
            bar.update(1)
            do_log = config.log_every and step % config.log_every == 0
            do_eval = config.eval_every and step % config.eval_every == 0
            if primary and (do_log or do_eval or step == config.outer_steps):
                now = time.perf_counter()
                row = {k: float(v) for k, v in distributed.to_host(metrics).items()}
                row["num_nonfinite"] = int(nonfinite_since_log)
                row["step"] = step
                row["steps_per_s"] = (step - step_last) / max(now - t_last, 1e-9)
                row["wall_time"] = wall_offset + now - t_start
                t_last, step_last, nonfinite_since_log = now, step, jnp.int32(0)
                if do_eval:
                    theta = runner.theta(state)
                    evaluated = _eval(components, config, theta, eval_key)
                    row.update({f"eval_{k}": v for k, v in evaluated.items()})
                    best = selection.better(best, selection.candidate(step, theta, evaluated))
                log.write(row)
                bar.set_postfix(meta_loss=f"{row['meta_loss']:.4f}",
                                steps_per_s=f"{row['steps_per_s']:.2f}")
            interrupted = stop.signum is not None
            if (interrupted or (config.ckpt_every and step % config.ckpt_every == 0)
                    or step == config.outer_steps):
                host_state = distributed.to_host(state) if multi_process else state
                if primary:
                    keep_previous(checkpoint_path)
                    save_checkpoint(checkpoint_path, host_state, {
                        "step": step,
                        "wall_time": wall_offset + time.perf_counter() - t_start,
                        "metrics_offsets": log.offsets(),
                        "nonfinite_since_log": int(nonfinite_since_log),
                        **selection.to_extra(best),
                    })
            if interrupted:
                raise Interrupted(step, stop.signum, run_dir)
    finally:
        stop.restore()
        bar.close()
        if log is not None:
            log.close()

    wall_time = wall_offset + time.perf_counter() - t_start
    theta = runner.theta(state)
    final_eval = {
        "trained": _eval(components, config, theta, eval_key),
        "initial": _eval(components, config, components.theta_init, eval_key),
    }
    steps = int(distributed.to_host(state.step))
    theta_path, kept = run_dir / "theta", selection.candidate(steps, theta, final_eval["trained"])
    provenance = _provenance(config, steps, wall_time, final_eval, components.init_record)
    if config.keep == "best":
        initial = selection.candidate(0, components.theta_init, final_eval["initial"])
        kept = selection.choose(kept, best, initial)
        final_eval["kept"] = {**kept.evaluation, "step": kept.step}
    if primary:
        import l2o

        l2o.save(theta_path, components.lopt, theta, provenance)
        if config.keep == "best":
            theta_path = run_dir / "theta_best"
            l2o.save(theta_path, components.lopt, kept.theta, {
                **provenance, "heldout_eval": final_eval,
                "kept": selection.record(kept, config.keep, steps)})
        (run_dir / "final_eval.json").write_text(json.dumps(final_eval, indent=2) + "\n")
    elif config.keep == "best":
        theta_path = run_dir / "theta_best"
    return TrainResult(theta=kept.theta if config.keep == "best" else theta, run_dir=run_dir,
                       metrics_path=run_dir / "metrics.csv", theta_path=theta_path,
                       steps=steps, final_eval=final_eval, kept_step=kept.step)


def _training_fields(config: MetaTrainConfig) -> str:
    """JSON of the fields every process of a run must share (all but its own identity)."""
    own = ("out_dir", "process_id")
    return json.dumps({k: v for k, v in config.to_dict().items() if k not in own}, sort_keys=True)


def _provenance(config: MetaTrainConfig, steps: int, wall_time: float, final_eval: dict,
                init_record: dict | None = None) -> dict:
    device = jax.devices()[0]
    if config.mixture is None:
        family, overrides, first = config.family, config.family_overrides, config.family
    else:  # the mixture's entries are recorded below; ``config.family`` is unused
        names = list(dict.fromkeys(entry["family"] for entry in config.mixture))
        family, overrides, first = f"mixture of {', '.join(names)}", None, names[0]
    return {
        "family": family,
        "family_overrides": overrides,
        "heldout_family": config.heldout_family or f"{first} (heldout split)",
        "outer_steps": steps,
        "strategy": config.strategy,
        "sigma": config.sigma,
        "outer_lr": config.outer_lr,
        "horizon": config.horizon,
        "trunc_length": config.trunc_length,
        "num_tasks": config.num_tasks,
        "num_pairs": config.num_pairs,
        "meta_loss": config.meta_loss,
        "seed": config.seed,
        "mixture": config.mixture,
        "augment": config.augment,
        "horizon_range": config.horizon_range,
        "init_theta": init_record,
        "wall_time_s": float(f"{wall_time:.6g}"),  # a tiny run can take under 5 ms
        "train_device": f"{device.platform}:{device.device_kind} x{jax.device_count()}"
                        + (f" ({jax.process_count()} processes)" if jax.process_count() > 1 else ""),
        "heldout_eval": final_eval,
        "config": config.to_dict(),
    }
