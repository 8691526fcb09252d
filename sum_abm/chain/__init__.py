"""The chain substrate: integer money, block time, gas, atomic transactions."""

from sum_abm.chain.chain import TX_FIELDS, Chain, logged_amount
from sum_abm.chain.clock import Clock
from sum_abm.chain.errors import Rejected
from sum_abm.chain.gas import GasSchedule
from sum_abm.chain.ledger import InsufficientFunds, Ledger, MoneyNotConserved

__all__ = [
    "TX_FIELDS",
    "Chain",
    "Clock",
    "GasSchedule",
    "InsufficientFunds",
    "Ledger",
    "MoneyNotConserved",
    "Rejected",
    "logged_amount",
]
