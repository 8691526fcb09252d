"""``sum-abm replay FILE...``: conformance replay of trace files."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def replay(
        files: list[Path] = typer.Argument(..., help="trace files (sum-abm-trace/1 JSON)"),
        max_shown: int = typer.Option(50, min=0, help="mismatches shown per file"),
    ) -> None:
        """Replay conformance traces; exit 0 when no step mismatches, 1 when some do, 2 for a bad file."""
        from sum_abm.replay import load_trace_file, replay_file

        for (
            f
        ) in files:  # validate every file before running any, so bad input never looks half done
            load_trace_file(f)
        bad = 0
        for f in files:
            rep = replay_file(f)
            print(rep.headline())
            for m in rep.mismatches[:max_shown]:
                print(f"  {m}")
            if len(rep.mismatches) > max_shown:
                print(f"  ... {len(rep.mismatches) - max_shown} more")
            bad += rep.mismatching_steps
        if bad:
            raise typer.Exit(1)
