# pragma version ~=0.4.3
"""
@title Oracle classifier for tests: predicts what it was last told, never learns
@notice The conformance traces' model. Anyone may set the prediction: never deploy it for real.
"""

MAX_FEATURES: constant(uint256) = 1024

owner: public(address)
prediction: public(uint256)


@deploy
def __init__():
    self.owner = msg.sender


@external
def transfer_ownership(new_owner: address):
    assert msg.sender == self.owner, "only_owner"
    self.owner = new_owner


@external
def set_prediction(p: uint256):
    self.prediction = p


@external
@view
def predict(x: DynArray[int256, MAX_FEATURES]) -> uint256:
    return self.prediction


@external
def update(x: DynArray[int256, MAX_FEATURES], y: uint256):
    assert msg.sender == self.owner, "only_owner"
