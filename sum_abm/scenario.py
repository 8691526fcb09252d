"""Scenario files: a validated description of one market run.

Each component owns its config (chain: :mod:`sum_abm.chain.config`, data:
:mod:`sum_abm.data.config`, learner: :mod:`sum_abm.learners.config`, mechanisms:
:mod:`sum_abm.mechanisms`, agent groups: :mod:`sum_abm.policies`); this module composes them with
the run control (:class:`RunConfig`), reads files and applies overrides.

A scenario is a TOML file (data, not code: nothing in it is executed) validated by pydantic with
unknown keys rejected. Every error becomes one :class:`~sum_abm.errors.InputError` line naming the
file, the field and what was expected, e.g.
``scenarios/x.toml: agents[1].deposit: expected an integer >= 0, got 'abc'``.

Sweeps override fields by dotted path (``mechanism.cost_weight``, ``agents.1.count`` or
``agents[1].count``, ``agents.bad.count`` by group name) with :meth:`Scenario.with_overrides`, which
re-validates the whole scenario.
"""

from __future__ import annotations

import copy
import re
import tomllib
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from sum_abm.chain.config import ChainConfig
from sum_abm.config import StrictModel
from sum_abm.data.config import DataConfig
from sum_abm.errors import InputError
from sum_abm.learners.config import LearnerConfig
from sum_abm.mechanisms import default_mechanism_config, mechanism_config_union
from sum_abm.policies import POLICIES, GroupConfig, group_config_union


class RunConfig(StrictModel):
    """When the run stops and how often it samples (seconds of simulated time)."""

    max_time_s: int = Field(400 * 86_400, ge=1, description="hard stop")
    stop_when_done: bool = Field(
        True,
        description="stop when the pool is exhausted and nothing left in the book can ever be "
        "claimed (it is empty, or no active participant may claim what is left)",
    )
    first_sample_s: int = Field(10_000, ge=0)
    sample_interval_s: int = Field(200_000, ge=1)
    naive_claims: bool = Field(
        False,
        description="send every claim the reference would (rejected ones included) instead of "
        "skipping calls the state proves would be rejected; for equivalence tests",
    )


class Scenario(StrictModel):
    """One market run: data, learner, mechanism, chain, agent groups, run control and seed."""

    name: str = "scenario"
    description: str = ""
    seed: int = Field(1, ge=0, le=2**63 - 1, description="stored in Int64 result columns")
    data: DataConfig = Field(default_factory=DataConfig)
    learner: LearnerConfig = Field(default_factory=LearnerConfig)
    mechanism: mechanism_config_union() = Field(  # type: ignore[valid-type]
        default_factory=default_mechanism_config
    )
    chain: ChainConfig = Field(default_factory=ChainConfig)
    run: RunConfig = Field(default_factory=RunConfig)
    agents: list[group_config_union()] = Field(min_length=1)  # type: ignore[valid-type]

    @field_validator("name")
    @classmethod
    def _plain_name(cls, v: str) -> str:
        # The default output folder is runs/<name>-seed<N>: a name with a path in it would put a
        # run's files anywhere a shared scenario file chose.
        if not v or v in (".", "..") or any(c in v for c in "/\\\0"):
            raise ValueError(
                f"expected a plain name without / or \\ (it names the output folder "
                f"runs/<name>-seed<N>), got {v!r}"
            )
        return v

    @model_validator(mode="after")
    def _evm_backend(self) -> Scenario:
        if self.chain.backend == "evm" and not self.mechanism.evm_ready():
            raise ValueError(
                "chain.backend: 'evm' runs Deposit-Refund-Take with semantics 'solidity' only"
            )
        return self

    @model_validator(mode="after")
    def _unique_groups(self) -> Scenario:
        names = [g.name for g in self.agents]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"expected unique group names, got {sorted(dup)} more than once")
        return self

    # -- helpers ---------------------------------------------------------------------------
    @property
    def attacker_groups(self) -> list[str]:
        """Names of the groups that are attackers (explicit ``attacker`` or the policy's default)."""
        return [g.name for g in self.agents if g.is_attacker]

    def without_attackers(self) -> Scenario:
        """The clean baseline: the same scenario without its attacking groups."""
        keep = [g for g in self.agents if not g.is_attacker]
        if not keep:
            raise InputError(
                f"{self.name}: agents: a clean baseline needs at least one non-attacker group "
                "(without one, run with --no-baseline: baseline=False from Python)"
            )
        return self.model_copy(update={"agents": keep})

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON/TOML-ready), defaults included."""
        return self.model_dump(mode="json")

    def with_overrides(self, overrides: dict[str, Any], source: str | None = None) -> Scenario:
        """A new scenario with ``{dotted.path: value}`` applied and the whole re-validated.

        Raises :class:`InputError` naming the path when it names no field or the value is rejected.
        """
        data = self.to_dict()
        # ``chain = "evm"`` is short for ``chain.backend``: as that, so that other chain fields
        # may be set in the same call (set whole, the string replaced the chain table)
        overrides = {
            ("chain.backend" if split_path(p) == ["chain"] and isinstance(v, str) else p): v
            for p, v in overrides.items()
        }
        # Policy and mechanism switches first, so that the new one's own fields may be set in
        # the same call.
        switches = {p: v for p, v in overrides.items() if _is_policy_path(p)}
        switches.update(
            {p: v for p, v in overrides.items() if split_path(p) == ["mechanism", "kind"]}
        )
        for path, value in {**switches, **overrides}.items():
            if path not in switches:
                set_path(data, path, value, source or self.name)
            elif path.startswith("mechanism"):
                _switch_mechanism(data, value)
            else:
                _switch_policy(data, path, value, source or self.name)
        out = parse_scenario(data, source or self.name)
        # a data setting given here that the data's kind does not read would be ignored
        unused = out.data.unused()
        for path in overrides:
            parts = split_path(path)
            if len(parts) == 2 and parts[0] == "data" and parts[1] in unused:
                raise InputError(f"{source or self.name}: {path}: {unused[parts[1]]}")
        return out


_INDEX = re.compile(r"\[(\w+)\]")


def split_path(path: str) -> list[str]:
    """``agents[1].count`` -> ``['agents', '1', 'count']``."""
    return [p for p in _INDEX.sub(r".\1", path).split(".") if p != ""]


def set_path(data: dict[str, Any], path: str, value: Any, source: str) -> None:
    """Set ``value`` at dotted ``path`` in plain scenario data; agent groups by index or name.

    Only existing fields (or a group's known policy fields) may be set: a path that names nothing
    raises :class:`InputError`.
    """
    parts = split_path(path)
    if not parts:
        raise InputError(f"{source}: {path!r}: expected a dotted scenario path")
    node: Any = data
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        where = ".".join(parts[: i + 1])
        if isinstance(node, list):
            idx = _group_index(node, part)
            if idx is None:
                raise InputError(
                    f"{source}: {path}: no agent group {part!r} (index or name expected)"
                )
            if last:
                node[idx] = value
                return
            node = node[idx]
            continue
        # Learner params are free-form (validated by the learner itself): new keys are allowed there.
        free = i > 0 and parts[i - 1] == "params"
        if not isinstance(node, dict) or (part not in node and not free):
            raise InputError(f"{source}: {path}: names no scenario field (at {where!r})")
        if last:
            node[part] = value
            return
        if part not in node or node[part] is None:
            raise InputError(f"{source}: {path}: names no scenario field (at {where!r})")
        node = node[part]


def _switch_mechanism(data: dict[str, Any], kind: Any) -> None:
    """Set ``mechanism.kind``: the new mechanism's defaults, keeping each old field the new
    mechanism also has and accepts (e.g. the refund windows; not DRT's ``semantics = "solidity"``,
    which the prediction market does not have)."""
    old = data["mechanism"]
    if kind == old.get("kind"):
        return
    try:
        fresh = TypeAdapter(mechanism_config_union()).validate_python({"kind": kind})
    except ValidationError:
        data["mechanism"] = {"kind": kind}  # an unknown kind: validation names the choices
        return
    new = fresh.model_dump(mode="json")
    for key, value in old.items():
        if key in new and key != "kind":
            try:
                type(fresh).model_validate({**new, key: value})
                new[key] = value
            except ValidationError:
                pass
    data["mechanism"] = new


def _is_policy_path(path: str) -> bool:
    parts = split_path(path)
    return len(parts) == 3 and parts[0] == "agents" and parts[2] == "policy"


def _switch_policy(data: dict[str, Any], path: str, policy: Any, source: str) -> None:
    """Set ``agents.<group>.policy``: a new policy keeps the group's shared fields (those every
    :class:`~sum_abm.policies.GroupConfig` has) and drops the old policy's own ones (its defaults
    would be unknown keys to the new policy) and takes the new policy's defaults. Setting the
    policy a group already has changes nothing."""
    idx = _group_index(data["agents"], split_path(path)[1])
    before = None if idx is None else data["agents"][idx].get("policy")
    set_path(data, path, policy, source)  # names a missing group in its error
    if policy != before:
        group = data["agents"][idx]
        for key in [k for k in group if k not in GroupConfig.model_fields]:
            del group[key]
        if policy in POLICIES:  # the new policy's defaults, so that its fields can be set next
            try:
                group.update(POLICIES[policy].Config(**group).model_dump(mode="json"))
            except ValidationError:
                pass  # reported, naming the field, when the whole scenario is validated


def _group_index(groups: list[Any], part: str) -> int | None:
    if part.isdigit():
        i = int(part)
        return i if i < len(groups) else None
    for i, g in enumerate(groups):
        if isinstance(g, dict) and g.get("name") == part:
            return i
    return None


def _format_loc(loc: tuple[Any, ...], data: Any) -> str:
    """Pydantic location -> ``agents[1].deposit`` (drops the discriminator tags pydantic inserts)."""
    out: list[str] = []
    node = data
    for part in loc:
        if isinstance(part, int):
            out.append(f"[{part}]")
            node = node[part] if isinstance(node, list) and part < len(node) else None
            continue
        if isinstance(node, dict) and part not in node and node.get("kind") == part:
            continue  # union tag (mechanism kind)
        if isinstance(node, dict) and part not in node and node.get("policy") == part:
            continue  # union tag (agent policy)
        out.append(("." if out else "") + str(part))
        node = node.get(part) if isinstance(node, dict) else None
    return "".join(out) or "(top level)"


def _num(bound: Any) -> Any:
    """A bound as written: 0 for a float field's 0.0."""
    return int(bound) if isinstance(bound, float) and bound.is_integer() else bound


def _describe(err: dict[str, Any]) -> str:
    typ = err["type"]
    ctx = err.get("ctx") or {}
    got = err.get("input")
    got_s = repr(got) if not isinstance(got, (dict, list)) else type(got).__name__
    if typ == "extra_forbidden":
        return "unknown key"
    if typ == "missing":
        return "required field is missing"
    if typ in ("int_parsing", "int_type", "int_from_float"):
        base = "expected an integer"
    elif typ in ("float_parsing", "float_type"):
        base = "expected a number"
    elif typ == "finite_number":
        base = "expected a finite number"
    elif typ in ("bool_parsing", "bool_type"):
        base = "expected true or false"
    elif typ in ("string_type",):
        base = "expected a string"
    elif typ == "literal_error":
        base = f"expected one of {ctx.get('expected')}"
    elif typ == "union_tag_invalid":
        return f"expected one of {ctx.get('expected_tags')}, got {ctx.get('tag')!r}"
    elif typ == "union_tag_not_found":
        return f"missing discriminator {ctx.get('discriminator')}"
    elif typ == "greater_than_equal":
        base = f"expected a value >= {_num(ctx.get('ge'))}"
    elif typ == "greater_than":
        base = f"expected a value > {_num(ctx.get('gt'))}"
    elif typ == "less_than_equal":
        base = f"expected a value <= {_num(ctx.get('le'))}"
    elif typ == "less_than":
        base = f"expected a value < {_num(ctx.get('lt'))}"
    elif typ == "string_too_short":
        base = f"expected at least {ctx.get('min_length')} character(s)"
    elif typ == "too_short":
        base = f"expected at least {ctx.get('min_length')} item(s)"
    elif typ == "value_error":
        return str(ctx.get("error", err["msg"]))
    else:
        base = err["msg"]
    return f"{base}, got {got_s}"


def parse_scenario(data: dict[str, Any], source: str = "<scenario>") -> Scenario:
    """Validate plain data as a :class:`Scenario`; the first problem raises one-line InputError."""
    if not isinstance(data, dict):
        raise InputError(f"{source}: expected a TOML table at the top level")
    return validate_file_model(Scenario, data, source)


def validate_file_model(model: type[BaseModel], data: Any, source: str) -> Any:
    """Validate ``data`` read from ``source`` as ``model`` (scenario, sweep and game files alike);
    the first problem becomes one InputError line: ``source: field.path: what was expected, got …``."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]  # the first problem, as one line
        loc = _format_loc(tuple(err["loc"]), data)
        if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
            disc = str((err.get("ctx") or {}).get("discriminator", "")).strip("'")
            loc = f"{loc}.{disc}" if loc != "(top level)" else disc
        msg = _describe(err)
        if loc.endswith(("deposit", "balance")) and "expected an integer" in msg:
            msg = msg.replace("expected an integer", "expected an integer >= 0", 1)
        if loc == "(top level)" and err["type"] == "value_error":
            raise InputError(f"{source}: {msg}") from None  # the message names its fields
        raise InputError(f"{source}: {loc}: {msg}") from None


def read_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML file; a missing or malformed file raises a one-line InputError."""
    p = Path(path)
    try:
        with p.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, expected a TOML file") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a text file") from None


def load_scenario(path: str | Path, overrides: dict[str, Any] | None = None) -> Scenario:
    """Load and validate a scenario TOML file, optionally with ``{dotted.path: value}`` overrides.

    A relative ``data.path`` is resolved against the scenario file's folder.
    """
    data = read_toml(path)
    source = str(path)
    data_path = (data.get("data") or {}).get("path") if isinstance(data.get("data"), dict) else None
    if isinstance(data_path, str) and not Path(data_path).is_absolute():
        data["data"]["path"] = str((Path(path).parent / data_path).resolve())
    if overrides:
        data = copy.deepcopy(data)
        # Validate first so override paths are checked against a complete (defaults-filled) tree.
        base = parse_scenario(data, source)
        return base.with_overrides(overrides, source)
    return parse_scenario(data, source)


def parse_set_options(items: list[str] | None, source: str = "--set") -> dict[str, Any]:
    """``["mechanism.cost_weight=2", "agents.bad.count=3"]`` -> overrides; values parsed as TOML."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise InputError(f"{source}: {item!r}: expected path=value")
        key, raw = item.split("=", 1)
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw  # a bare word is a string
        out[key.strip()] = value
    return out
