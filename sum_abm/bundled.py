"""The files shipped with sum_abm: ready scenario, sweep, game and design files.

They live in the package (``sum_abm/scenarios/``, package data of the wheel), so an installed
``sum-abm`` finds them by name wherever it runs; in a checkout the top-level ``scenarios`` is a link
to the same folder, so every documented path (``scenarios/quickstart.toml``) works too. This is the
one place that knows where they are.
"""

from __future__ import annotations

from pathlib import Path

from sum_abm.errors import InputError

#: Each kind of bundled file and its folder under ``sum_abm/scenarios``.
KINDS = {"scenario": ".", "sweep": "sweeps", "game": "games", "design": "designs"}


def bundled_dir(kind: str = "scenario") -> Path:
    """The folder of the bundled files of ``kind`` (it may not exist for a kind nothing ships)."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind of bundled file {kind!r}: expected one of {sorted(KINDS)}")
    return (Path(__file__).resolve().parent / "scenarios" / KINDS[kind]).resolve()


def bundled(kind: str = "scenario") -> list[Path]:
    """Every bundled TOML file of ``kind``, sorted by name."""
    return sorted(bundled_dir(kind).glob("*.toml"))


def resolve(name: str | Path, kind: str = "scenario") -> Path:
    """A file the user named: an existing path as given, else the bundled file of ``kind`` called
    ``name`` (with or without ``.toml``). Raises InputError (one line) when neither exists. A
    folder of that name (say the output folder of ``sum-abm run quickstart --out quickstart``)
    does not hide the bundled file."""
    p = Path(name)
    if p.is_file():
        return p
    text = str(name)
    cand = bundled_dir(kind) / (text if text.endswith(".toml") else f"{text}.toml")
    if cand.is_file():
        return cand
    if p.exists():
        return p  # a folder: its reader says what it is
    see = "see `sum-abm scenarios`" if kind == "scenario" else f"see {bundled_dir(kind)}"
    raise InputError(f"{text}: no such {kind} file (and no bundled {kind} of that name; {see})")


def resolve_any(name: str | Path) -> Path:
    """:func:`resolve` over every kind: an existing path as given, else the bundled scenario,
    sweep, game or design file called ``name`` (the first kind that has one). Raises InputError
    (one line) when none exists."""
    p = Path(name)
    if p.is_file():
        return p
    for kind in KINDS:
        try:
            found = resolve(name, kind)
        except InputError:
            continue
        if found.is_file():
            return found
    if p.exists():
        return p
    raise InputError(
        f"{name}: no such file (and no bundled scenario, sweep, game or design of that name; "
        f"see `sum-abm scenarios` and {bundled_dir('scenario')})"
    )


def resolve_base(base: str, file: str | Path, what: str) -> Path:
    """The base scenario a ``what`` (sweep, game, design) file names: a path relative to
    ``file``, else the name of a bundled scenario (as ``sum-abm run`` takes it). Raises
    InputError (one line) when neither exists."""
    f = Path(file)
    p = (f.parent / base).resolve()
    if p.is_file():
        return p
    cand = bundled_dir("scenario") / (base if base.endswith(".toml") else f"{base}.toml")
    if Path(base).name == base and cand.is_file():
        return cand
    raise InputError(
        f"{file}: base: no scenario file {base!r} (relative to the {what} file) and no bundled "
        f"scenario of that name"
    )
