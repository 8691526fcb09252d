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
        # A generator setting on data that is read, not generated, would be ignored: refused
        # instead (changed from its default; a round trip of a dumped config keeps defaults).
        unused = ["noise", "n_rows"] if self.kind != "imdb_synthetic" else []
        if self.kind in SKLEARN_KINDS or (self.kind in ("csv", "parquet") and not self.text_column):
            unused.append("n_features")  # (a text column is hashed into n_features columns)
        if self.kind not in ("csv", "parquet"):
            unused += ["path", "label_column", "text_column"]  # (a user file's settings)
        fields = type(self).model_fields
        for name in unused:
            if getattr(self, name) != fields[name].default:
                if name in ("path", "label_column", "text_column"):
                    raise ValueError(
                        f"{name}: only a user's file (kind 'csv' or 'parquet') has it; kind"
                        f" {self.kind!r} is a bundled data set"
                    )
                raise ValueError(
                    f"{name}: only generated data (kind 'imdb_synthetic') has it"
                    + (", or a text column's hashing" if name == "n_features" else "")
                    + f"; kind {self.kind!r} is read as it is (train_rows and test_rows use fewer"
                    " rows)"
                )
        return self
