"""The results schema: every frame sum_abm writes, its columns, their polars types and meaning.

One home for what a result file holds. Writers build frames through :func:`frame` (declared types,
declared column order), the dashboards read the file names from :data:`RUN_FRAMES`, tests build
their frames through it, and the README's "Result files" section is :func:`markdown` (a test keeps
the two equal; ``python3 -m sum_abm.schema`` prints it).

Money columns are token units (integers on chain; floats where a balance or profit is summed or a
reference-python reward is fractional), times are simulated seconds, accuracies are fractions of the
test set. This module sits at the bottom of the layers: it imports only polars.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl


@dataclass(frozen=True)
class Column:
    """One column: name, polars type, meaning, and when it is present (empty: always)."""

    name: str
    dtype: Any
    meaning: str
    when: str = ""


@dataclass(frozen=True)
class Frame:
    """One result frame: where it is written, what one row is, its columns in file order.

    ``extra``: columns that depend on the input (sweep parameters, named by their dotted paths),
    described in words. A column whose every value is missing keeps its declared type (files of
    two runs concatenate).
    """

    name: str
    file: str
    row: str
    columns: tuple[Column, ...]
    extra: str = ""
    _by_name: dict[str, Column] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._by_name.update({c.name: c for c in self.columns})
        if len(self._by_name) != len(self.columns):
            raise ValueError(f"frame {self.name}: a column is declared twice")

    def __getitem__(self, name: str) -> Column:
        return self._by_name[name]

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]


C = Column
_BASE = "with attackers and a clean baseline run"
_PM = "prediction market"
_EVM = '`chain.backend = "evm"`'

TRANSACTIONS = (
    C("time_s", pl.Int64, "block time of the call (simulated seconds)"),
    C(
        "sender",
        pl.String,
        "the address that sent the call (agent, Sybil address, bounty provider)",
    ),
    C("call", pl.String, "contract entry point: add_data, refund, report, predict, market steps"),
    C("accepted", pl.Boolean, "whether the contract accepted the call"),
    C("reason", pl.String, "rejection code (sum_abm.chain.errors.REASONS); null when accepted"),
    C(
        "value",
        pl.Int64,
        "tokens offered with the call (msg.value); an add keeps only its cost (`amount`), the"
        " rest stays with the sender",
    ),
    C("gas", pl.Int64, "gas charged, also for a rejected call"),
    C(
        "fee",
        pl.Int64,
        "gas x gas price rounded up, paid by the sender to the fee sink (token units)",
    ),
    C(
        "amount",
        pl.Float64,
        "what an accepted call returned: an add's cost (the deposit or stake taken), a claim's"
        " payout; null for a rejected call, the prediction market's steps and a paid prediction"
        " (of its value the verified contributors get floored shares, the caller keeps the rest)",
    ),
)
TIMESERIES = (
    C("time_s", pl.Int64, "sample time (simulated seconds)"),
    C("accuracy", pl.Float64, "the model's accuracy on the test set at that time"),
    C("agent_id", pl.String, "agent (one row per agent and sample time)"),
    C("group", pl.String, "the agent's group in the scenario"),
    C("balance", pl.Float64, "the agent's balance, all its addresses together (token units)"),
)
AGENTS = (
    C("agent_id", pl.String, "agent (a Sybil's addresses share one id)"),
    C("group", pl.String, "the agent's group in the scenario"),
    C("policy", pl.String, "the group's policy"),
    C("attacker", pl.Boolean, "whether the group is marked as attacker"),
    C("addresses", pl.Int64, "how many addresses the agent sends from"),
    C("start_balance", pl.Float64, "balance at the start (token units)"),
    C("end_balance", pl.Float64, "balance at the end (token units)"),
    C("profit", pl.Float64, "end_balance - start_balance (token units)"),
    C("roi", pl.Float64, "profit / start_balance (0 with no start balance)"),
    C("fees", pl.Int64, "gas fees paid (token units)"),
    C(
        "deposits_paid",
        pl.Int64,
        "deposits and stakes the contract took for accepted adds (token units)",
    ),
    C("adds_accepted", pl.Int64, "contributions the contract accepted"),
    C("refunded", pl.Int64, "own contributions refunded"),
    C(
        "taken",
        pl.Int64,
        "reports accepted against its own contributions (takes after the any-address wait included)",
    ),
    C("reports_won", pl.Int64, "accepted reports that paid out"),
    C(
        "predictions",
        pl.Int64,
        "predictions made (model users): paid calls, or free view calls where the mechanism has "
        "no paid predictions (the prediction market)",
    ),
    C("points", pl.Int64, "points scored (Points mechanism; 0 otherwise)"),
)
SUMMARY = (
    C("scenario", pl.String, "scenario name"),
    C("seed", pl.Int64, "the run's seed"),
    C("mechanism", pl.String, "incentive mechanism kind"),
    C(
        "semantics",
        pl.String,
        "the mechanism's semantics (solidity, reference-python, corrected); n/a for a mechanism"
        " without (Points)",
    ),
    C("learner", pl.String, "on-chain learner kind"),
    C("n_agents", pl.Int64, "participants (agents, not addresses)"),
    C("end_time_s", pl.Int64, "simulated time at the end (seconds)"),
    C("days", pl.Float64, "end_time_s in days"),
    C("calls", pl.Int64, "contract calls sent"),
    C("calls_rejected", pl.Int64, "calls the contract rejected"),
    C("adds_accepted", pl.Int64, "contributions accepted"),
    C("pool_used", pl.Float64, "share of the contribution pool used"),
    C("accuracy_initial", pl.Float64, "accuracy of the initially trained model"),
    C("accuracy_final", pl.Float64, "accuracy at the end"),
    C("accuracy_min", pl.Float64, "lowest sampled accuracy"),
    C("accuracy_time_weighted", pl.Float64, "accuracy averaged over simulated time"),
    C("accuracy_all_data", pl.Float64, "accuracy of the learner trained on all the data"),
    C("money_conserved", pl.Boolean, "the sum of all accounts never changed"),
    C("fees_total", pl.Int64, "gas fees paid by everyone (token units)"),
    C("pm_state", pl.String, "the market's phase at the end", _PM),
    C("pm_process_calls", pl.Int64, "reward-processing calls sent", _PM),
    C("bounty", pl.Int64, "the bounty provider's bounty (token units)", _PM),
    C("bounty_paid_fraction", pl.Float64, "bounty paid beyond returned stakes / bounty", _PM),
    C(
        "bounty_withdrawn",
        pl.Float64,
        "unused bounty the provider took back at the end (corrected rules; token units)",
        _PM,
    ),
    C("evm_calls", pl.Int64, "calls mirrored on the EVM", _EVM),
    C("evm_classifier", pl.String, "the EVM's classifier: perceptron or oracle", _EVM),
    C("evm_agrees", pl.Boolean, "every mirrored call agreed with the Python contract", _EVM),
    C("evm_gas_total", pl.Int64, "gas the EVM measured over the accepted calls", _EVM),
    C("evm_gas_error_median", pl.Float64, "median relative error of the gas schedule", _EVM),
    C("evm_gas_error_max", pl.Float64, "largest relative error of the gas schedule", _EVM),
    C("honest_profit", pl.Float64, "profit of every non-attacker together (token units)"),
    C("attacker_profit", pl.Float64, "profit of the attackers together; null without any"),
    C("baseline_accuracy_final", pl.Float64, "final accuracy of the clean baseline", _BASE),
    C("accuracy_drop_final", pl.Float64, "baseline_accuracy_final - accuracy_final", _BASE),
    C(
        "accuracy_drop_max",
        pl.Float64,
        "largest drop below the baseline: each sample against the baseline's nearest in time,"
        " and the two final accuracies",
        _BASE,
    ),
    C("attacker_roi", pl.Float64, "attackers' profit / their start balance", _BASE),
    C(
        "attacker_spend_per_point",
        pl.Float64,
        "attackers' loss (their fees in it) per accuracy point destroyed; null when none is",
        _BASE,
    ),
    C("baseline_honest_profit", pl.Float64, "honest profit in the clean baseline", _BASE),
)
EVM = (
    C("time_s", pl.Int64, "block time of the call (simulated seconds)"),
    C("sender", pl.String, "the address that sent the call"),
    C("call", pl.String, "contract entry point"),
    C("accepted", pl.Boolean, "whether both contracts accepted the call"),
    C("reason", pl.String, "rejection code; null when accepted"),
    C("amount", pl.Int64, "tokens paid out by the call"),
    C("n_features", pl.Int64, "non-zero features of the call's data"),
    C("schedule_gas", pl.Int64, "gas the schedule predicts"),
    C("evm_gas", pl.Int64, "gas py-evm measured; null for a rejected call"),
)
SWEEP_META = (
    C("run_id", pl.String, "the run's id (a hash of its parameters and replication)"),
    C("replication", pl.Int32, "replication index"),
    C("seed", pl.Int64, "the run's seed"),
)
_PARAMS = "one column per swept parameter, named by its dotted path (e.g. `mechanism.cost_weight`)"
SWEEP_FAILURES = (
    C("run_id", pl.String, "the run's id"),
    C("replication", pl.Int64, "replication index"),
    C("seed", pl.Int64, "the run's seed"),
    C("parameters", pl.String, "the run's overrides as JSON"),
    C("error_type", pl.String, "the exception's class"),
    C("message", pl.String, "the exception's message"),
    C("traceback", pl.String, "the traceback"),
)
_POP = "population games"
_PROF = "games over profiles"
GAME_PAYOFFS = (
    C("profile", pl.String, 'the profile, "role=strategy | role=strategy"'),
    C("profile_index", pl.List(pl.Int64), "each role's strategy index", _PROF),
    C("profile_id", pl.Int64, "the profile's index", _POP),
    C("role", pl.String, "the role this row's payoff belongs to"),
    C("strategy", pl.String, "the role's strategy in the profile"),
    C("count", pl.Int64, "players of the role on this strategy", _POP),
    C("mean", pl.Float64, "mean payoff per agent over replications (NaN when none ran)"),
    C("stderr", pl.Float64, "standard error of the mean (0 with one replication)"),
    C("n", pl.Int64, "replications behind the mean"),
    C("payoff", pl.String, "what the payoff measures: profit, roi, or an accuracy"),
)
GAME_REGRET = (
    C("profile", pl.String, "the profile"),
    C("regret", pl.Float64, "max(0, gain): 0 at an equilibrium of the means"),
    C("best_deviation_role", pl.String, "the role whose deviation gains most"),
    C("best_deviation_strategy", pl.String, "the strategy it deviates to"),
    C("gain", pl.Float64, "that deviation's gain (payoff units)"),
    C(
        "gain_ci_low",
        pl.Float64,
        "lower end of the gain's 95 % Welch interval (-inf: 1 replication)",
    ),
    C(
        "gain_ci_high",
        pl.Float64,
        "upper end of the gain's 95 % Welch interval (inf: 1 replication)",
    ),
    C("significant", pl.Boolean, "the gain is positive at 95 %"),
    C("deviations_measured", pl.Int64, "unilateral deviations that were run", _PROF),
    C("plausible_equilibrium", pl.Boolean, "no deviation gains at 95 %", _PROF),
)
GAME_EQUILIBRIA = (
    C("kind", pl.String, "pure, mixed, symmetric or symmetric pure"),
    C("method", pl.String, "how it was found"),
    C("profile", pl.String, "the profile (pure equilibria)"),
    C("mix", pl.String, "each role's strategy weights as JSON"),
    C("regret", pl.Float64, "largest gain of a pure deviation from it (~0)"),
)
FRONTIER = (
    C("across", pl.String, "value of the --across parameter (null without one)"),
    C("low", pl.Float64, "the crossing lies above this at 95 %"),
    C("high", pl.Float64, "the crossing lies below this at 95 %"),
    C("estimate", pl.Float64, "middle of the final bisection bracket; null when not found"),
    C("best_attack", pl.String, "the best attack nearest the crossing"),
    C(
        "evaluations",
        pl.String,
        "every (x, mean ROI, stderr) measured, as JSON (without a crossing: the range's two ends)",
    ),
    C("found", pl.Boolean, "whether the best attack's ROI crosses zero in the range"),
)
_DESIGN = (
    "one column per design parameter (its dotted path); per attacker strategy `<name>.attacker_roi`, "
    "`<name>.attacker_roi_lo`, `<name>.attacker_roi_hi` (mean and 95 % interval over the "
    "replications), `<name>.honest_roi` (mean) and `<name>.runs` (runs measured); per constraint "
    "`constraint_<i>` (the value compared with its bound: the metric's mean, or its one-sided "
    "bound with a `confidence`; for `attacker_roi` the worst over the covered strategies) and "
    "`violation_<i>` (how far it misses: > 0 violated, inf when unmeasured)"
)
DESIGNS = (
    C("candidate", pl.Int64, "candidate number (row order of the search)"),
    C("origin", pl.String, "how it was proposed: grid, tpe or nsga2 (Optuna)"),
    C("best_response", pl.String, "the covered strategy with the highest mean attacker ROI"),
    C("best_response_roi", pl.Float64, "its mean attacker ROI (profit / start balance)"),
    C(
        "best_response_roi_lo",
        pl.Float64,
        "lower end of its 95 % Student-t interval (at least -1: an ROI is never below -100 %)",
    ),
    C("best_response_roi_hi", pl.Float64, "upper end of its 95 % Student-t interval"),
    C("attacker_roi", pl.Float64, "mean attacker ROI under the best response"),
    C("honest_roi", pl.Float64, "mean honest ROI under the best response"),
    C("honest_profit", pl.Float64, "mean honest profit under the best response (token units)"),
    C("honest_fees", pl.Float64, "mean fees paid by honest groups (token units)"),
    C("fees_total", pl.Float64, "mean fees paid by everyone (token units)"),
    C("accuracy_final", pl.Float64, "mean final accuracy under the best response"),
    C("accuracy_min", pl.Float64, "mean lowest accuracy under the best response"),
    C("accuracy_time_weighted", pl.Float64, "mean time-weighted accuracy"),
    C("pool_used", pl.Float64, "mean share of the honest data pool contributed"),
    C("violation", pl.Float64, "sum of the constraints' positive violations (0: feasible)"),
    C("feasible", pl.Boolean, "every constraint holds"),
    C("valid", pl.Boolean, "the setting makes a valid scenario (false: never run)"),
    C("pareto", pl.Boolean, "on the Pareto front of the objectives among feasible candidates"),
    C("recommended", pl.Boolean, "the recommended setting (at most one row)"),
)
del C

FRAMES: dict[str, Frame] = {
    f.name: f
    for f in (
        Frame("transactions", "transactions.parquet", "contract call", TRANSACTIONS),
        Frame("timeseries", "timeseries.parquet", "agent and sample time", TIMESERIES),
        Frame("agents", "agents.parquet", "agent", AGENTS),
        Frame("summary", "summary.parquet", "run", SUMMARY),
        Frame(
            "baseline_timeseries",
            "baseline_timeseries.parquet",
            "agent and sample time of the clean baseline run (runs with attackers)",
            TIMESERIES,
        ),
        Frame("evm", "evm.parquet", f"call mirrored on the EVM ({_EVM})", EVM),
        Frame(
            "sweep_runs",
            "runs/<run_id>.parquet",
            "run of the sweep: its id, parameters and summary",
            SWEEP_META + tuple(c for c in SUMMARY if c.name != "seed"),
            extra=_PARAMS,
        ),
        Frame(
            "sweep_agents",
            "agents/<run_id>.parquet",
            "agent of each run of the sweep",
            SWEEP_META + AGENTS,
            extra=_PARAMS,
        ),
        Frame("sweep_failures", "failures.parquet", "sweep run that raised", SWEEP_FAILURES),
        Frame("game_payoffs", "payoffs.parquet", "role in each profile", GAME_PAYOFFS),
        Frame("game_regret", "regret.parquet", "profile whose payoffs were measured", GAME_REGRET),
        Frame("game_equilibria", "equilibria.parquet", "equilibrium found", GAME_EQUILIBRIA),
        Frame(
            "frontier", "frontier.parquet", "value of --across (a single row without it)", FRONTIER
        ),
        Frame(
            "designs", "designs.parquet", "candidate setting of `sum-abm design`", DESIGNS, _DESIGN
        ),
        Frame(
            "pareto",
            "pareto.parquet",
            "candidate on the Pareto front (the rows of `designs` with `pareto` true)",
            DESIGNS,
            _DESIGN,
        ),
    )
}

RUN_FRAMES = ("transactions", "timeseries", "agents", "summary")
"""The frames every run writes (``evm`` and ``baseline_timeseries`` only in some runs)."""


def dtypes(name: str, columns: Iterable[str] | None = None) -> dict[str, Any]:
    """``{column: polars type}`` of a frame in file order (only ``columns``, when given)."""
    f = FRAMES[name]
    keep = None if columns is None else set(columns)
    return {c.name: c.dtype for c in f.columns if keep is None or c.name in keep}


def frame(
    name: str, data: Iterable[Mapping[str, Any]] | Iterable[tuple] | Mapping[str, Any]
) -> pl.DataFrame:
    """Build the frame ``name`` with its declared types, columns in declared order, from rows of
    dicts (the columns present), rows of tuples (every column, in declared order) or a dict of
    columns (the columns present). A column that is not declared raises ValueError."""
    f = FRAMES[name]
    if isinstance(data, Mapping):
        _check_declared(f, data)
        return pl.DataFrame({c: data[c] for c in f.names if c in data}, schema=dtypes(name, data))
    rows = list(data)
    if rows and not isinstance(rows[0], Mapping):
        return pl.DataFrame(rows, schema=dtypes(name), orient="row")
    seen: dict[str, None] = {}
    for r in rows:
        seen.update(dict.fromkeys(r))
    _check_declared(f, seen)
    return pl.DataFrame(rows, schema=dtypes(name, seen) if rows else dtypes(name))


def _check_declared(f: Frame, names: Iterable[str]) -> None:
    unknown = [k for k in names if k not in f]
    if unknown:
        raise ValueError(
            f"frame {f.name}: undeclared columns {unknown} (declare them in sum_abm.schema)"
        )


def problems(name: str, df: pl.DataFrame) -> list[str]:
    """What in ``df`` does not match the declared frame: undeclared columns, wrong types, columns
    out of declared order (extra parameter columns of sweep frames are skipped). Empty: it matches."""
    f = FRAMES[name]
    out = []
    declared = [c for c in df.columns if c in f]
    if not f.extra:  # a sweep's parameter columns are the input's, not the schema's
        out += [f"{name}: undeclared column {c!r}" for c in df.columns if c not in f]
    for c in declared:
        want, got = f[c].dtype, df.schema[c]
        if got != want:
            out.append(f"{name}.{c}: {got}, declared {want}")
    order = [n for n in f.names if n in set(declared)]
    if declared != order:
        out.append(f"{name}: columns out of declared order")
    return out


def read_json_object(path: Any) -> dict[str, Any]:
    """The JSON object in the file ``path`` (``run.json``, ``sweep.json``); a file that cannot be
    read or holds no JSON object raises a one-line :class:`~sum_abm.errors.InputError`."""
    from sum_abm.errors import InputError, first_line

    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not a readable JSON file ({first_line(exc)})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def read_frame(path: Any, name: str) -> pl.DataFrame:
    """The result frame ``name`` read from the file ``path``, checked against its declaration: a
    file that is no Parquet, lacks a column the frame always has, or holds one of another type
    raises a one-line :class:`~sum_abm.errors.InputError` (what a report or a loader shows
    instead of a traceback)."""
    from sum_abm.errors import InputError, first_line

    try:
        df = pl.read_parquet(path)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise InputError(f"{path}: not a readable {name} file ({first_line(exc)})") from None
    f = FRAMES[name]
    missing = [c.name for c in f.columns if not c.when and c.name not in df.columns]
    if missing:
        raise InputError(f"{path}: not a valid {name} file: no column {', '.join(missing)}")
    wrong = [p for p in problems(name, df) if not p.endswith("out of declared order")]
    if wrong:
        raise InputError(f"{path}: not a valid {name} file: {wrong[0]}")
    return df


def markdown() -> str:
    """The README's description of the result files: one table per frame."""
    parts = []
    described: dict[tuple[Column, ...], str] = {}  # input-dependent frames already tabled
    for f in FRAMES.values():
        parts.append(f"**`{f.file}`** (`{f.name}`): one row per {f.row}.")
        if f.extra and f.columns in described:
            parts[-1] += f" Columns: those of `{described[f.columns]}`."
            continue
        if f.extra and f.columns[: len(SWEEP_META)] == SWEEP_META:
            # the sweep parts: a run's frame with the run's id and parameters in front
            meta = ", ".join(f"`{c.name}` ({c.dtype})" for c in SWEEP_META)
            rest = "`summary` (but its `seed`)" if "runs" in f.name else "`agents`"
            parts[-1] += f" Columns: {meta}, {f.extra}, then those of {rest}."
            continue
        lines = ["| column | type | meaning |", "|---|---|---|"]
        for c in f.columns:
            when = f" ({c.when})" if c.when else ""
            lines.append(f"| `{c.name}` | {c.dtype} | {c.meaning}{when} |")
        parts.append("\n".join(lines))
        if f.extra:
            parts.append(f"Also, between these: {f.extra}.")
            described[f.columns] = f.file
    return "\n\n".join(parts) + "\n"


if __name__ == "__main__":  # python3 -m sum_abm.schema: the README section
    print(markdown(), end="")
