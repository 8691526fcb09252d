"""``sum-abm design``: a Stackelberg search over the designer's settings.

The designer commits to a setting; the attacker best-responds. Each candidate setting is run
against every attacker strategy on the same seeds (common random numbers), its best response and
objectives are measured (:mod:`sum_abm.design.evaluate`), and the search keeps the settings that
satisfy the constraints at the best objectives. The whole grid is run when the parameters are finite
and few enough (``budget``); otherwise Optuna searches (TPE for one objective, NSGA-II for several,
both with the constraints), seeded, its study stored in the output folder so that ``resume``
continues where a killed search stopped and gives what an uninterrupted one would.

Runs go through the sweep engine (local Ray, in-process, or a cluster at ``address``) into
``DIR/sweep``; the only coupling to the engine is :class:`EngineMeasure`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from sum_abm import schema
from sum_abm.atomic import write_parquet_atomic, write_text_atomic
from sum_abm.design.evaluate import closest, evaluate_candidate, recommend, run_metrics
from sum_abm.design.spec import METRICS, Design, load_design
from sum_abm.errors import InputError

_STRATEGY_KEYS = ("attacker_roi", "attacker_roi_lo", "attacker_roi_hi", "honest_roi")
VERIFY_REPLICATION = 1_000_000  # verification runs' replication numbers start here (fresh run ids)


@dataclass(frozen=True)
class Request:
    """One run to measure: a candidate setting against one attacker strategy on one seed."""

    setting: tuple[tuple[str, Any], ...]  # sorted (dotted path, value) pairs
    strategy: str
    replication: int
    seed: int


# A measure runs the requests and returns each one's metrics (None for a run that failed).
Measure = Callable[[Design, list[Request]], list[dict[str, float] | None]]


def crn_seeds(root: int, n: int, stream: int = 0) -> list[int]:
    """``n`` seeds shared by every setting and strategy (common random numbers): stream 0 for the
    search, stream 1 for verification, so verification seeds were never used in the search."""
    return [
        int(
            np.random.SeedSequence(root, spawn_key=(stream, r)).generate_state(1, dtype=np.uint64)[
                0
            ]
            >> 1
        )
        for r in range(n)
    ]


def _key(setting: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted(setting.items()))


class EngineMeasure:
    """A :data:`Measure` that runs the requests through the sweep engine into ``out`` (resumable:
    a finished run is never repeated). The one place that knows the engine's interface: one
    executor serves every batch of the search (this process beside warm Ray workers, as a local
    sweep; this process alone when ``workers == 1``; the cluster's workers with ``address``) and
    :meth:`close` stops it."""

    def __init__(
        self,
        out: Path,
        *,
        address: str | None = None,
        workers: int | None = None,
        progress: Any = None,
        notify: Callable[[str], None] | None = None,
    ) -> None:
        from sum_abm.sweeps.executors import AutoExecutor, SerialExecutor

        self.out, self.progress, self.notify = out, progress, notify
        serial = workers == 1 and address is None
        self.executor = (
            SerialExecutor() if serial else AutoExecutor(address, workers, notify=notify)
        )

    def __call__(self, design: Design, requests: list[Request]) -> list[dict[str, float] | None]:
        from sum_abm.sweeps.engine import execute, load_agents, load_runs
        from sum_abm.sweeps.spec import RunSpec, run_id

        ids: list[str] = []
        specs: dict[str, RunSpec] = {}
        for r in requests:
            ov = {**dict(r.setting), **design.strategy_overrides(r.strategy)}
            rid = run_id(ov, r.replication)  # the seed is a function of the replication (CRN)
            ids.append(rid)
            specs.setdefault(rid, RunSpec(rid, ov, r.replication, r.seed))
        execute(
            design.base,
            list(specs.values()),
            self.out,
            sweep_text=design.text,
            source=design.source,
            resume=True,  # one folder holds every batch of the search
            executor=self.executor,
            baseline=False,
            progress=self.progress,
            notify=self.notify,
        )
        want = pl.Series(list(specs))
        runs = load_runs(self.out).filter(pl.col("run_id").is_in(want)).collect()
        agents = load_agents(self.out).filter(pl.col("run_id").is_in(want)).collect()
        by_run = {row["run_id"]: row for row in runs.iter_rows(named=True)}
        ag = agents.partition_by("run_id", as_dict=True) if agents.height else {}
        results: list[dict[str, float] | None] = []
        for rid in ids:
            row = by_run.get(rid)
            a = ag.get((rid,))
            results.append(
                None
                if row is None or a is None
                else run_metrics(a, row, design.attacker_groups, design.honest)
            )
        return results

    def close(self) -> None:
        self.executor.close()


def evaluate_settings(
    design: Design,
    settings: list[dict[str, Any]],
    seeds: list[int],
    measure: Measure,
    rep0: int = 0,
) -> list[dict[str, Any]]:
    """Run every setting against every strategy on ``seeds`` (one measure call: all in parallel)
    and evaluate each; a setting that makes no valid scenario is infeasible without running."""
    requests: list[Request] = []
    valid: list[bool] = []
    for s in settings:
        try:
            design.base.with_overrides(s, source=design.source)
            valid.append(True)
        except InputError:
            valid.append(False)
            continue
        for name in design.strategies:
            for r, seed in enumerate(seeds):
                requests.append(Request(_key(s), name, rep0 + r, seed))
    got = measure(design, requests) if requests else []
    rows: dict[tuple, list[dict[str, Any]]] = {}
    for req, m in zip(requests, got, strict=True):
        rec = {"strategy": req.strategy, "replication": req.replication, "seed": req.seed}
        rec.update(m if m is not None else dict.fromkeys(METRICS, math.nan))
        rows.setdefault(req.setting, []).append(rec)
    out = []
    for s, ok in zip(settings, valid, strict=True):
        if not ok:  # the same columns as a measured candidate, every value missing
            nan = math.nan
            ev = {f"{n}.{k}": nan for n in design.strategies for k in _STRATEGY_KEYS}
            ev.update({f"{n}.runs": 0 for n in design.strategies})
            ev.update(
                {
                    "best_response": None,
                    "best_response_roi": nan,
                    "best_response_roi_lo": nan,
                    "best_response_roi_hi": nan,
                    **dict.fromkeys(METRICS, nan),
                    **{f"constraint_{i}": nan for i in range(len(design.spec.constraints))},
                    "violation": math.inf,
                    "feasible": False,
                    "_violations": [math.inf] * len(design.spec.constraints),
                    "valid": False,
                }
            )
        else:
            frame = pl.DataFrame(
                rows[_key(s)],
                schema={
                    "strategy": pl.String,
                    "replication": pl.Int64,
                    "seed": pl.Int64,
                    **dict.fromkeys(METRICS, pl.Float64),
                },
            )
            ev = {**evaluate_candidate(frame, design.spec), "valid": True}
        out.append(ev)
    return out


# -- the search ----------------------------------------------------------------------------------


def _distributions(design: Design) -> dict[str, Any]:
    import optuna.distributions as d

    out: dict[str, Any] = {}
    for key, p in design.spec.parameters.items():
        if p.values is not None:
            out[key] = d.CategoricalDistribution(p.values)
        elif p.type == "int":
            out[key] = d.IntDistribution(int(p.low), int(p.high), log=p.log, step=p.step or 1)
        else:
            out[key] = d.FloatDistribution(float(p.low), float(p.high), log=p.log)
    return out


def _sampler(design: Design, n: int) -> Any:
    """The sampler for trial ``n``: seeded by (design seed, n), so a trial's proposal depends only
    on the stored history, which makes a resumed search equal an uninterrupted one."""
    import optuna

    seed = int(np.random.SeedSequence(design.spec.seed, spawn_key=(2, n)).generate_state(1)[0])
    if len(design.spec.objectives) == 1:
        return optuna.samplers.TPESampler(seed=seed)
    return optuna.samplers.NSGAIISampler(seed=seed, population_size=max(2, design.spec.batch))


def optuna_search(
    design: Design, out: Path, seeds: list[int], measure: Measure, notify: Callable[[str], None]
) -> tuple[list[dict[str, Any]], str]:
    """Ask, evaluate and tell candidates in batches of ``batch`` until ``budget`` trials are told;
    returns the trials' settings in order and the method's name."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = JournalStorage(JournalFileBackend(str(out / "optuna.journal")))
    spec = design.spec
    name = spec.name
    directions = [o.direction for o in spec.objectives]
    optuna.create_study(
        storage=storage, study_name=name, directions=directions, load_if_exists=True
    )
    dists = _distributions(design)
    while True:
        study = optuna.load_study(study_name=name, storage=storage)
        trials = study.get_trials(deepcopy=False)
        running = [t for t in trials if t.state == TrialState.RUNNING]
        n = len(trials)
        if not running and n >= spec.budget:
            break
        b = spec.batch
        end = min(spec.budget, -(-n // b) * b) if running else min(spec.budget, n + b)
        while n < end:  # finish asking the batch first: a resumed batch sees what it saw before
            study = optuna.load_study(study_name=name, storage=storage, sampler=_sampler(design, n))
            study.ask(dists)
            n += 1
        study = optuna.load_study(study_name=name, storage=storage, sampler=_sampler(design, n))
        todo = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.RUNNING]
        evs = evaluate_settings(design, [dict(t.params) for t in todo], seeds, measure)
        for t, ev in zip(todo, evs, strict=True):
            viol = [v if math.isfinite(v) else 1e9 for v in ev["_violations"]]
            trial = optuna.trial.Trial(study, t._trial_id)
            for i, v in enumerate(viol):  # <= 0 is feasible, as Optuna's samplers read it
                trial.set_constraint(f"constraint_{i}", v)
            values = [ev.get(o.metric, math.nan) for o in spec.objectives]
            if any(v is None or not math.isfinite(v) for v in values):
                study.tell(t.number, state=TrialState.FAIL)
            else:
                study.tell(t.number, values)
        told = min(n, spec.budget)
        # a sampler may propose a setting again (NSGA-II does): the summary counts distinct ones
        distinct = len(_dedupe([dict(t.params) for t in study.get_trials(deepcopy=False)]))
        again = "" if distinct == told else f" ({told - distinct} repeated an earlier one)"
        notify(f"{name}: {told} of {spec.budget} candidates evaluated{again}")
    study = optuna.load_study(study_name=name, storage=storage)
    settings = [dict(t.params) for t in sorted(study.get_trials(), key=lambda t: t.number)]
    return settings, "tpe" if len(spec.objectives) == 1 else "nsga2"


# -- the answer ----------------------------------------------------------------------------------


def toml_value(v: Any) -> str:
    """A value as TOML text, as ``--set path=value`` parses it."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, dict):
        return (
            "{" + ", ".join(f"{k} = {toml_value(x)}" for k, x in v.items() if x is not None) + "}"
        )
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    raise TypeError(f"no TOML form for {v!r}")


def set_args(overrides: dict[str, Any]) -> list[str]:
    """``--set`` arguments for ``sum-abm run`` (each ``path=value``)."""
    return [f"{k}={toml_value(v)}" for k, v in overrides.items()]


def _designs_frame(
    design: Design, settings: list[dict[str, Any]], evs: list[dict[str, Any]], origin: str
) -> pl.DataFrame:
    rows = []
    for i, (s, ev) in enumerate(zip(settings, evs, strict=True)):
        row: dict[str, Any] = {"candidate": i, "origin": origin}
        row.update({k: s[k] for k in design.spec.parameters})
        row.update({k: v for k, v in ev.items() if not k.startswith("_")})
        for j, v in enumerate(ev.get("_violations", [])):
            row[f"violation_{j}"] = v
        rows.append(row)
    df = pl.DataFrame(rows, infer_schema_length=None, strict=False)
    # the declared types even where a column's values cannot show them (e.g. all missing)
    return df.cast(schema.dtypes("designs", df.columns))


def _dedupe(settings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen, out = set(), []
    for s in settings:
        k = json.dumps(_key(s), default=str)
        if k not in seen:
            seen.add(k)
            out.append(s)
    return out


def _strategy_summary(design: Design, row: dict[str, Any], names: list[str]) -> dict[str, Any]:
    return {
        n: {
            "attacker_roi": row.get(f"{n}.attacker_roi"),
            "attacker_roi_low": row.get(f"{n}.attacker_roi_lo"),
            "attacker_roi_high": row.get(f"{n}.attacker_roi_hi"),
            "honest_roi": row.get(f"{n}.honest_roi"),
        }
        for n in names
    }


def _setting_of(design: Design, row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in design.spec.parameters}


def check_out_dir(design: Design, out: Path, resume: bool) -> None:
    """Refuse a folder holding another design's search, or any search unless resuming."""
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder (expected a design output folder)")
    mine = out / "design.json"
    if not mine.exists():
        if resume and out.exists() and any(out.iterdir()):
            raise InputError(f"{out}: holds no design search to resume (no design.json)")
        return
    if not resume:
        raise InputError(
            f"{out}: already holds a design search; use --resume to complete it or choose another --out"
        )
    old = json.loads(mine.read_text())
    if old.get("spec") != json.loads(design.spec.model_dump_json()):
        raise InputError(
            f"{out}: holds a search of another design file (or the same file changed); "
            f"choose another --out"
        )


def run_design(
    path: str | Path,
    out: str | Path,
    *,
    address: str | None = None,
    workers: int | None = None,
    resume: bool = False,
    verify: int = 0,
    measure: Measure | None = None,
    progress: Any = None,
    notify: Callable[[str], None] = lambda line: None,
) -> dict[str, Any]:
    """Search the design file ``path`` into ``out``; returns the answer (also ``out/answer.json``).

    Writes ``designs.parquet`` (one row per candidate), ``pareto.parquet`` (the feasible Pareto
    front), ``answer.json`` and ``design.json`` (the validated design, for ``resume``); the runs
    live in ``out/sweep``. ``verify`` > 0 re-runs the recommended setting on that many fresh seeds.
    ``measure`` replaces the market (tests inject a payoff function); ``progress(done, failed,
    total)`` hears the engine's runs and ``notify(line)`` each finished batch.
    """
    design = load_design(path)
    out = Path(out)
    check_out_dir(design, out, resume)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(
        out / "design.json",
        json.dumps(
            {"source": design.source, "spec": json.loads(design.spec.model_dump_json())},
            indent=1,
            sort_keys=True,
        ),
    )
    own = measure is None
    if measure is None:
        measure = EngineMeasure(
            out / "sweep", address=address, workers=workers, progress=progress, notify=notify
        )
    try:
        return _search(design, out, measure, verify, notify)
    finally:
        if own:
            measure.close()  # type: ignore[union-attr]


def _search(
    design: Design, out: Path, measure: Measure, verify: int, notify: Callable[[str], None]
) -> dict[str, Any]:
    spec = design.spec
    seeds = crn_seeds(spec.seed, spec.replications)
    grid = design.grid()
    if grid is not None:
        settings, method = grid, "grid"
    else:
        settings, method = optuna_search(design, out, seeds, measure, notify)
        settings = _dedupe(settings)
    evs = evaluate_settings(design, settings, seeds, measure)
    designs = _designs_frame(design, settings, evs, method)
    best, pareto = recommend(designs, spec)
    designs = designs.with_columns(
        pl.Series("pareto", pareto), pl.Series("recommended", np.arange(designs.height) == best)
    )
    write_parquet_atomic(designs, out / "designs.parquet")
    write_parquet_atomic(designs.filter(pl.col("pareto")), out / "pareto.parquet")
    answer = _answer(design, designs, best, method, seeds)
    if verify > 0 and best is not None:
        answer["verify"] = verify_setting(design, answer["recommended"], verify, measure, seeds)
    write_text_atomic(out / "answer.json", json.dumps(answer, indent=1, default=_json))
    return answer


def _json(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, (np.integer, np.floating)):
        return v.item()
    return str(v)


def _clean(v: Any) -> Any:
    """NaN/inf become None (JSON has neither)."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_clean(x) for x in v]
    return v


def _answer(
    design: Design, designs: pl.DataFrame, best: int | None, method: str, seeds: list[int]
) -> dict[str, Any]:
    spec = design.spec
    constrained = spec.attacker.constrained_names
    beside = [n for n in design.strategies if n not in constrained]
    pick = best if best is not None else closest(designs)
    row = designs.row(pick, named=True) if pick is not None else {}
    answer: dict[str, Any] = {
        "design": spec.name,
        "design_file": design.source,
        "base": str(design.base_path),
        "base_set": spec.set,
        "attacker_group": ", ".join(design.attacker_groups),
        "attacker_groups": design.attacker_groups,
        "honest_groups": design.honest,
        "search": method,
        "candidates": designs.height,
        "replications": spec.replications,
        "seeds": seeds,
        "feasible_found": best is not None,
        "recommended": _setting_of(design, row) if best is not None else None,
        "closest": _setting_of(design, row) if best is None and row else None,
        "strategies": {n: design.strategy_overrides(n) for n in constrained},
        "strategies_beside": {n: design.strategy_overrides(n) for n in beside},
        "best_response": None,
        "objectives": {},
        "constraints": [],
        "attacker": {},
        "beside": {},
    }
    if row:
        answer["best_response"] = {
            "strategy": row.get("best_response"),
            "attacker_roi": row.get("best_response_roi"),
            "attacker_roi_low": row.get("best_response_roi_lo"),
            "attacker_roi_high": row.get("best_response_roi_hi"),
            "level": 0.95,
        }
        answer["objectives"] = {
            o.metric: {"direction": o.direction, "value": row.get(o.metric)}
            for o in spec.objectives
        }
        # (under the best response) a market nobody could use is safe and useless: said below
        answer["pool_used"] = row.get("pool_used")
        answer["constraints"] = [
            {
                "constraint": c.label,
                "value": row.get(f"constraint_{i}"),
                "holds": bool(row.get(f"violation_{i}", math.inf) <= 0),
            }
            for i, c in enumerate(spec.constraints)
        ]
        answer["attacker"] = _strategy_summary(design, row, constrained)
        answer["beside"] = _strategy_summary(design, row, beside)
    return _clean(answer)


def verify_setting(
    design: Design, setting: dict[str, Any], k: int, measure: Measure, search_seeds: list[int]
) -> dict[str, Any]:
    """Re-run ``setting`` against every strategy on ``k`` fresh seeds (never used in the search)
    and say whether each constraint still holds out of sample."""
    seeds = crn_seeds(design.spec.seed, k, stream=1)
    assert not set(seeds) & set(search_seeds)  # distinct streams; a collision would be a bug
    ev = evaluate_settings(design, [setting], seeds, measure, rep0=VERIFY_REPLICATION)[0]
    names = design.strategies
    return _clean(
        {
            "seeds": seeds,
            "feasible": ev["feasible"],
            "best_response": ev.get("best_response"),
            "constraints": [
                {
                    "constraint": c.label,
                    "value": ev.get(f"constraint_{i}"),
                    "holds": ev["_violations"][i] <= 0,
                }
                for i, c in enumerate(design.spec.constraints)
            ],
            "strategies": {
                n: {
                    "attacker_roi": ev.get(f"{n}.attacker_roi"),
                    "attacker_roi_low": ev.get(f"{n}.attacker_roi_lo"),
                    "attacker_roi_high": ev.get(f"{n}.attacker_roi_hi"),
                    "honest_roi": ev.get(f"{n}.honest_roi"),
                }
                for n in names
            },
        }
    )


def _pct(v: Any) -> str:
    return "n/a" if v is None else f"{v:+.1%}"


def plain_answer(answer: dict[str, Any]) -> str:
    """The answer in plain words (several lines)."""
    lines = []
    if answer["feasible_found"]:
        rec = ", ".join(f"{k}={v}" for k, v in answer["recommended"].items())
        lines.append(
            f"Recommended setting ({answer['candidates']} candidates, {answer['search']}, "
            f"{answer['replications']} seeds each): {rec}."
        )
    else:
        rec = ", ".join(f"{k}={v}" for k, v in (answer["closest"] or {}).items())
        lines.append(
            f"No candidate of {answer['candidates']} met the constraints; the closest was {rec}."
        )
    br = answer.get("best_response")
    if br:
        lines.append(
            f"Against it the attacker's best response is {br['strategy']}: ROI "
            f"{_pct(br['attacker_roi'])} (95 % interval {_pct(br['attacker_roi_low'])} .. "
            f"{_pct(br['attacker_roi_high'])})."
        )
    for c in answer.get("constraints", []):
        lines.append(
            f"  constraint {c['constraint']}: {c['value'] if c['value'] is None else round(c['value'], 4)}"
            f" — {'holds' if c['holds'] else 'VIOLATED'}"
        )
    for m, o in answer.get("objectives", {}).items():
        v = o["value"]
        lines.append(f"  objective {o['direction']} {m}: {'n/a' if v is None else f'{v:.4g}'}")
    for n, s in answer.get("attacker", {}).items():
        lines.append(
            f"  {n}: attacker ROI {_pct(s['attacker_roi'])}, honest ROI {_pct(s['honest_roi'])}"
        )
    for n, s in answer.get("beside", {}).items():
        lines.append(
            f"  beside the constraint — {n}: its ROI {_pct(s['attacker_roi'])}, "
            f"honest ROI {_pct(s['honest_roi'])}"
        )
    if answer.get("pool_used") == 0:
        lines.append(
            "  note: at this setting the honest groups contributed nothing (pool_used 0): a safe, "
            "useless market (e.g. fees no balance pays); a pool_used constraint (min) rules it out"
        )
    v = answer.get("verify")
    if v:
        held = all(c["holds"] for c in v["constraints"])
        lines.append(
            f"Out of sample ({len(v['seeds'])} fresh seeds): the constraints "
            f"{'all hold' if held else 'do NOT all hold'}"
            + "".join(f"; {n} {_pct(s['attacker_roi'])}" for n, s in v["strategies"].items())
            + "."
        )
    return "\n".join(lines)
