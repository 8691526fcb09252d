"""``sum-abm gas``: gas per operation measured on a real EVM, fitted into the schedule, verified."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from sum_abm.errors import InputError


def _parse_ints(text: str, what: str, lo: int, hi: int) -> tuple[int, ...]:
    try:
        vals = tuple(sorted({int(v) for v in text.split(",") if v.strip()}))
    except ValueError:
        raise InputError(f"--{what}: comma-separated integers expected, got {text!r}") from None
    if not vals or vals[0] < lo or vals[-1] > hi:
        raise InputError(f"--{what}: integers in {lo}..{hi} expected, got {text!r}")
    return vals


def _table(title: str, cols: list[str], rows: list[list[str]], markdown: bool) -> None:
    if markdown:
        print(f"\n**{title}**\n")
        print("| " + " | ".join(cols) + " |")
        print("|" + "|".join("---" if i < 3 else "---:" for i in range(len(cols))) + "|")
        for r in rows:
            print("| " + " | ".join(r) + " |")
        return
    from rich.console import Console
    from rich.table import Table

    t = Table(title=title)
    for i, c in enumerate(cols):
        t.add_column(c, justify="left" if i < 1 else "right")
    for r in rows:
        t.add_row(*r)
    con = Console()
    Console(width=max(con.width, 150)).print(t)  # never truncate figures


def register(app: typer.Typer) -> None:
    @app.command()
    def gas(
        verify: bool = typer.Option(
            False,
            "--verify",
            help="re-measure a sample off the fit grid; exit 1 if "
            "the schedule is more than 10% off for any operation",
        ),
        schedule: Path = typer.Option(
            None,
            help="gas-schedule JSON to verify or to start from "
            "(default: the one shipped with sum_abm)",
        ),
        write: bool = typer.Option(
            False, "--write", help="write the fit into the shipped gas schedule"
        ),
        out: Path = typer.Option(None, help="write the fitted gas schedule to this JSON file"),
        kinds: str = typer.Option(
            "perceptron,multinomial_nb,nearest_centroid", help="learner kinds to measure"
        ),
        features: str = typer.Option(
            "1,10,50,100,250,500,1000",
            help="feature counts to measure (1..1024): "
            "present features, or dimensions for the nearest centroid",
        ),
        gas_price_gwei: float = typer.Option(20.0, help="gas price for the fee table (gwei)"),
        token_price: float = typer.Option(
            3000.0, help="price of one ether in your currency, for the fee table"
        ),
        currency: str = typer.Option("USD", help="name of that currency"),
        markdown: bool = typer.Option(False, "--markdown", help="print the tables as Markdown"),
    ) -> None:
        """Measure gas of deploy, add_data, refund, report and predict for each learner on py-evm
        (titanoboa; offline), fit the gas schedule's coefficients and print gas and fees."""
        import math

        if not all(math.isfinite(v) and v >= 0 for v in (gas_price_gwei, token_price)):
            raise InputError(
                f"--gas-price-gwei, --token-price: finite values >= 0 expected, got {gas_price_gwei}, {token_price}"
            )
        if schedule is not None:
            if not schedule.is_file():
                raise InputError(f"{schedule}: no such gas-schedule file")
            from sum_abm.chain.gas import GasSchedule

            try:
                GasSchedule.load(schedule)  # a file that is no schedule: one line, before measuring
            except ValueError as exc:
                raise InputError(str(exc)) from None
        if out is not None and (out.is_dir() or not out.parent.is_dir()):
            why = (
                "is a folder"
                if out.is_dir()
                else f"{out.parent} is not a folder"
                if out.parent.exists()
                else f"no folder {out.parent}"
            )
            raise InputError(f"--out {out}: {why} (expected a JSON file's path)")
        try:
            import boa  # noqa: F401
        except ImportError:
            raise InputError(
                'the EVM tools are not installed: python3 -m pip install "sum_abm[evm]"'
                ' (or -e ".[evm]" in a checkout)'
            ) from None
        import json

        from sum_abm.evm import gas as g

        kind_list = [k.strip() for k in kinds.split(",") if k.strip()]
        bad = [k for k in kind_list if k not in g.KINDS]
        if bad or not kind_list:
            raise InputError(f"--kinds: some of {', '.join(g.KINDS)} expected, got {kinds!r}")

        def progress(kind: str, n: int, c: int) -> None:
            print(f"measured {kind}, {n} features, {c} classes", file=sys.stderr, flush=True)

        if verify:
            pts = {k: v for k, v in g.VERIFY_POINTS.items() if k in kind_list}
            rows = g.verify(pts, schedule, progress)
            _table(
                "gas schedule vs a fresh EVM measurement",
                [
                    "learner",
                    "operation",
                    "features",
                    "classes",
                    "measured gas",
                    "schedule gas",
                    "error",
                ],
                [
                    [
                        r["kind"],
                        r["op"],
                        str(r["n_features"]),
                        str(r["n_classes"]),
                        f"{r['gas']:,}",
                        f"{r['schedule']:,}",
                        f"{r['rel_error']:.1%}",
                    ]
                    for r in rows
                ],
                markdown,
            )
            worst = max(rows, key=lambda r: r["rel_error"])
            print(
                f"largest relative error: {worst['rel_error']:.2%} ({worst['kind']} {worst['op']}, "
                f"{worst['n_features']} features, {worst['n_classes']} classes)"
            )
            if worst["rel_error"] > g.TOLERANCE:
                raise typer.Exit(1)
            return

        feats = _parse_ints(features, "features", 1, 1024)
        if len(feats) < 2:  # one size cannot tell a fixed cost from a per-feature one
            raise InputError(
                f"--features: at least two different sizes expected (the fit separates a fixed "
                f"cost from a cost per feature), got {features!r}"
            )
        ms = g.measure(g.fit_grid(feats, kind_list), progress)
        coefs = g.fit(ms)
        by_point: dict[tuple, dict[str, int]] = {}
        for m in ms:
            by_point.setdefault((m.kind, m.n_classes, m.n_features), {})[m.op] = m.gas
        keys = sorted(by_point, key=lambda k: (kind_list.index(k[0]), k[1], k[2]))
        head = ["learner", "classes", "features"] + list(g.OPS)
        _table(
            "gas per transaction (py-evm)",
            head,
            [
                [k, str(c), str(n)] + [f"{by_point[(k, c, n)][op]:,}" for op in g.OPS]
                for k, c, n in keys
            ],
            markdown,
        )
        eth_per_gas = gas_price_gwei * 1e-9
        _table(
            f"fee in {currency} at {gas_price_gwei:g} gwei and {token_price:g} {currency}/ETH",
            head,
            [
                [k, str(c), str(n)]
                + [f"{by_point[(k, c, n)][op] * eth_per_gas * token_price:,.2f}" for op in g.OPS]
                for k, c, n in keys
            ],
            markdown,
        )
        fit_rows, worst_fit = [], 0.0
        for kind in kind_list:
            for op in g.OPS:
                cf = coefs[kind][op]
                errs = [
                    abs(g.terms(cf, m.n_features, m.n_classes) - m.gas) / m.gas
                    for m in ms
                    if m.kind == kind and m.op == op
                ]
                worst_fit = max(worst_fit, max(errs))
                fit_rows.append(
                    [
                        kind,
                        op,
                        f"{cf['base']:,}",
                        f"{cf['per_feature']:,}",
                        f"{cf['per_class']:,}",
                        f"{cf['per_class_feature']:,}",
                        f"{max(errs):.1%}",
                    ]
                )
        _table(
            "fit: gas = base + per_feature*n + per_class*c + per_class_feature*c*n",
            [
                "learner",
                "operation",
                "base",
                "per feature",
                "per class",
                "per class x feature",
                "worst error",
            ],
            fit_rows,
            markdown,
        )
        print(f"largest relative error of the fit on its own measurements: {worst_fit:.2%}")
        if write or out is not None:
            from sum_abm.atomic import write_text_atomic
            from sum_abm.chain.gas import _DEFAULT

            start = json.loads(Path(schedule or _DEFAULT).read_text())
            data = g.apply_fit(start, coefs, ms)
            for path in ([Path(_DEFAULT)] if write else []) + ([out] if out is not None else []):
                write_text_atomic(path, json.dumps(data, indent=2) + "\n")
                print(f"wrote {path}")
