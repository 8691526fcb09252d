"""The data config: which data the market trades and how it is split."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from sum_abm.config import StrictModel

# Bundled scikit-learn data sets (loaded from scikit-learn's own files; nothing is downloaded).
SKLEARN_KINDS = ("breast_cancer", "digits", "iris", "wine")


class DataConfig(StrictModel):
    """Which data the market trades, and how it is split (rows are used in file order).

    ``kind`` picks the source: ``imdb_synthetic`` (generated, see REFERENCE_SCENARIOS.md),
    scikit-learn's bundled ``breast_cancer``/``digits``/``iris``/``wine``, or a user ``csv``/``parquet``.
    """

    kind: Literal["imdb_synthetic", "breast_cancer", "digits", "iris", "wine", "csv", "parquet"] = (
        "imdb_synthetic"
    )
    # imdb_synthetic generator parameters (reference defaults).
    n_rows: int = Field(50_000, ge=4)
    n_features: int = Field(1_000, ge=2)
    noise: float = Field(0.15, ge=0.0, le=0.5)
    data_seed: int = Field(0, ge=0)
    # user files
    path: str | None = None
    label_column: str = "label"
    text_column: str | None = None
    # split: the train part feeds the initial model and the pool; the test part is hidden.
    train_rows: int | None = Field(None, ge=1, description="use only the first N train rows")
    test_rows: int | None = Field(None, ge=1, description="use only the first N test rows")
    init_train_portion: float = Field(0.08, ge=0.0, le=1.0)
    init_train_rows: int | None = Field(None, ge=1, description="overrides init_train_portion")

    @model_validator(mode="after")
    def _user_file(self) -> DataConfig:
        if self.kind in ("csv", "parquet") and not self.path:
            raise ValueError(f"path: expected the {self.kind} file's path for kind {self.kind!r}")
        return self

    def unused(self) -> dict[str, str]:
        """The settings this kind of data does not read, each with why: the generator's (n_rows,
        noise; n_features unless a text column is hashed into it) for data that is read, a user
        file's (path, label_column, text_column) for bundled or generated data. A scenario may
        carry them from the kind it had (``--set data.kind=csv`` on a generated-data scenario);
        setting one explicitly is refused (:meth:`sum_abm.scenario.Scenario.with_overrides`)."""
        out: dict[str, str] = {}
        read = f"only generated data (kind 'imdb_synthetic') has it; kind {self.kind!r} is read as it is (train_rows and test_rows use fewer rows)"
        if self.kind != "imdb_synthetic":
            out["n_rows"] = out["noise"] = read
            if self.kind in SKLEARN_KINDS or not self.text_column:
                out["n_features"] = read.replace("has it;", "has it, or a text column's hashing;")
        if self.kind not in ("csv", "parquet"):
            for name in ("path", "label_column", "text_column"):
                out[name] = (
                    f"only a user's file (kind 'csv' or 'parquet') has it; kind {self.kind!r} is not one"
                )
        return out
