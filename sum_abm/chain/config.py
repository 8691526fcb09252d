"""The chain config: block time, gas price and backend."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_serializer, field_validator, model_validator

from sum_abm.config import StrictModel


class ChainConfig(StrictModel):
    """Chain substrate: block time (seconds), gas price (token units per gas, fractions allowed,
    each fee rounded up to a whole token; 0 = free calls) and
    backend: ``"python"`` (the contract layer) or ``"evm"`` (the same, with every Deposit-Refund-Take
    transaction also run on the Vyper contracts on py-evm and compared: a slow spot check for small
    scenarios; needs the ``evm`` extra). ``chain = "evm"`` is short for ``chain.backend = "evm"``."""

    block_time_s: int = Field(1, ge=1)
    gas_price: float = Field(
        0,
        ge=0,
        description="token units per gas; a fraction as the decimal written (1e-05: an add of "
        "~1.3 M gas costs 13 tokens), each fee rounded up to a whole token",
    )
    backend: Literal["python", "evm"] = "python"

    @field_validator("gas_price", mode="wrap")
    @classmethod
    def _ints_stay_ints(cls, value: Any, handler: Any) -> Any:
        # validated as a number (errors say "expected a number"), an int kept exact
        out = handler(value)
        return value if type(value) is int else out

    @field_serializer("gas_price")
    def _dump_as_given(self, value: float) -> Any:
        return value  # an int stays an int in files (run.json, sweep tables)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return {"backend": data} if isinstance(data, str) else data
