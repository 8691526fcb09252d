"""The chain config: block time, gas price and backend."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from sum_abm.config import StrictModel


class ChainConfig(StrictModel):
    """Chain substrate: block time (seconds), gas price (token units per gas; 0 = free calls) and
    backend: ``"python"`` (the contract layer) or ``"evm"`` (the same, with every Deposit-Refund-Take
    transaction also run on the Vyper contracts on py-evm and compared: a slow spot check for small
    scenarios; needs the ``evm`` extra). ``chain = "evm"`` is short for ``chain.backend = "evm"``."""

    block_time_s: int = Field(1, ge=1)
    gas_price: int = Field(0, ge=0)
    backend: Literal["python", "evm"] = "python"

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return {"backend": data} if isinstance(data, str) else data
