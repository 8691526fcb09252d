"""The contract layer: trainer, data handler and incentive mechanisms. Imports neither Mesa nor Ray."""

from sum_abm.contract.data_handler import DataHandler, StoredData, key_of
from sum_abm.contract.drt import DepositRefundTake
from sum_abm.contract.points import Points
from sum_abm.contract.prediction_market import PredictionMarket, hash_piece
from sum_abm.contract.trainer import CollaborativeTrainer

__all__ = [
    "CollaborativeTrainer",
    "DataHandler",
    "DepositRefundTake",
    "Points",
    "PredictionMarket",
    "StoredData",
    "hash_piece",
    "key_of",
]
