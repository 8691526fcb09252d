"""``sum-abm gas``: gas per operation measured on a real EVM, fitted into the schedule, verified."""

from __future__ import annotations

from pathlib import Path

import typer

from sum_abm.errors import InputError


def register(app: typer.Typer) -> None:
    @app.command()
    def gas(
        verify: bool = typer.Option(False, "--verify", help="re-measure a sample; exit 1 if the shipped schedule is >10% off"),
        write: bool = typer.Option(False, "--write", help="write the fitted coefficients into the shipped schedule"),
        gas_price_gwei: float = typer.Option(20.0, min=0, help="gas price for the fee column (gwei)"),
        token_price: float = typer.Option(3000.0, min=0, help="price of one ether in your currency, for the fee column"),
    ) -> None:
        """Measure gas of deploy, add_data, refund, report and predict (DRT + sparse perceptron) on py-evm."""
        try:
            import boa  # noqa: F401
        except ImportError:
            raise InputError('the EVM tools are not installed: python3 -m pip install -e ".[evm]"') from None
        from rich.console import Console
        from rich.table import Table

        from sum_abm.evm.gas import FIT_FEATURES, fit, measure, verify as run_verify

        if verify:
            rows = run_verify()
            t = Table(title="shipped gas schedule vs a fresh EVM measurement (perceptron learners)")
            for c in ("op", "features", "measured gas", "schedule gas", "relative error"):
                t.add_column(c, justify="right")
            for r in rows:
                t.add_row(r["op"], str(r["n_features"]), f"{r['measured']:,}", f"{r['schedule']:,}", f"{r['rel_error']:.1%}")
            Console().print(t)
            worst = max(rows, key=lambda r: r["rel_error"])
            print(f"largest relative error: {worst['rel_error']:.2%} ({worst['op']}, {worst['n_features']} features)")
            if worst["rel_error"] > 0.10:
                raise typer.Exit(1)
            return
        ms = measure(FIT_FEATURES)
        coef = fit(ms)
        t = Table(title=f"gas per operation (DRT + sparse perceptron, py-evm); fee at {gas_price_gwei:g} gwei")
        for c in ("op", "features", "gas", "fee (ETH)", f"fee (x{token_price:g})"):
            t.add_column(c, justify="right")
        for m in ms:
            if m.op == "deploy" and m.n_features != ms[0].n_features:
                continue
            eth = m.gas * gas_price_gwei * 1e-9
            t.add_row(m.op, "-" if m.op == "deploy" else str(m.n_features), f"{m.gas:,}", f"{eth:.6f}", f"{eth * token_price:.2f}")
        Console().print(t)
        for op, (base, per) in sorted(coef.items()):
            print(f"fit {op}: {base:,} + {per:,} per feature")
        if write:
            from sum_abm.evm.gas import apply_fit

            path = Path(__file__).resolve().parents[1] / "chain" / "gas_schedule.json"
            apply_fit(path, coef)
            print(f"wrote {path}")
