"""``sum-abm data``: load a data set exactly as a run would and describe its splits."""

from __future__ import annotations

from pathlib import Path

import typer

from sum_abm.errors import InputError

KINDS = ("imdb_synthetic", "breast_cancer", "digits", "iris", "wine")


def register(app: typer.Typer) -> None:
    @app.command()
    def data(
        source: str = typer.Argument(
            ...,
            help="a scenario (file or bundled name), a data kind "
            f"({', '.join(KINDS)}), or a .csv/.parquet file",
        ),
        learner: str = typer.Option(
            "", help="check the data for this learner kind (e.g. multinomial_nb)"
        ),
        set_: list[str] = typer.Option(
            None,
            "--set",
            help="a data field: name=value, e.g. n_rows=6000 or label_column=target (repeatable)",
        ),
    ) -> None:
        """Load a data set (generated data comes from the on-disk cache when present) and print
        its splits: rows, features, non-zeros per row, class shares."""
        import numpy as np
        import scipy.sparse as sp

        from sum_abm.data import DataConfig, load_dataset
        from sum_abm.learners import LEARNERS
        from sum_abm.scenario import load_scenario, parse_set_options, validate_file_model

        if learner and learner not in LEARNERS:
            raise InputError(f"--learner: expected one of {sorted(LEARNERS)}, got {learner!r}")

        overrides = {k.removeprefix("data."): v for k, v in parse_set_options(set_).items()}
        p = Path(source)
        sc = None
        if source in KINDS:
            spec, where = {"kind": source, **overrides}, source
        elif p.suffix.lower() in (".csv", ".parquet"):
            if not p.is_file():
                raise InputError(f"{source}: no such file")
            spec, where = {"kind": p.suffix.lower()[1:], "path": str(p), **overrides}, source
        else:
            from sum_abm.bundled import resolve

            sc = load_scenario(resolve(source), {f"data.{k}": v for k, v in overrides.items()})
            spec, where = sc.data.model_dump(), str(source)
            learner = learner or sc.learner.kind
        cfg = validate_file_model(DataConfig, spec, where)
        if sc is None:  # (a scenario's overrides were checked as it loaded)
            unused = cfg.unused()
            for name in overrides:
                if name in unused:
                    raise InputError(f"{where}: --set {name}: {unused[name]}")
        ds = load_dataset(cfg, learner, where)
        if sc is not None:  # what a run refuses of this data: the scenario's needs, its first fit
            from sum_abm.market.contract_setup import check_setup

            check_setup(sc, ds)
        print(
            f"{ds.name}: {ds.n_features} features, {ds.n_classes} classes, "
            f"{'sparse (CSR)' if ds.sparse else 'dense'}"
        )
        for split, X, y in (
            ("init", ds.X_init, ds.y_init),
            ("pool", ds.X_pool, ds.y_pool),
            ("test", ds.X_test, ds.y_test),
        ):
            n = X.shape[0]
            nnz = X.getnnz() if sp.issparse(X) else int(np.count_nonzero(X))
            shares = np.bincount(y, minlength=ds.n_classes) / max(n, 1)
            print(
                f"  {split:4s} {n:7d} rows  {nnz / max(n, 1):8.2f} non-zeros/row  class shares "
                + " ".join(f"{s:.3f}" for s in shares)
            )
