# pragma version ~=0.4.3
"""
@title Sparse perceptron with integer weights over binary features (sum_abm gas calibration)
@notice Written from the SUM design. ``x`` holds the indices of the present features, strictly
        increasing. Class 1 when w.x + b > 0. On a mistake (a margin that is not positive, so a
        score of exactly 0 also teaches class 0: the rule sum_abm's Perceptron shares with
        scikit-learn) every present feature's weight and the intercept move by the learning rate.
"""

MAX_FEATURES: constant(uint256) = 1024

owner: public(address)
learning_rate: public(int256)
weights: public(HashMap[uint256, int256])
intercept: public(int256)


@deploy
def __init__(learning_rate: int256, intercept: int256):
    self.owner = msg.sender
    self.learning_rate = learning_rate
    self.intercept = intercept


@external
def transfer_ownership(new_owner: address):
    assert msg.sender == self.owner, "only_owner"
    self.owner = new_owner


@external
def init_weights(indices: DynArray[uint256, MAX_FEATURES], values: DynArray[int256, MAX_FEATURES]):
    """Load (part of) an initial model, before ownership passes to the trainer."""
    assert msg.sender == self.owner, "only_owner"
    assert len(indices) == len(values), "length_mismatch"
    for i: uint256 in range(len(indices), bound=MAX_FEATURES):
        self.weights[indices[i]] = values[i]


@internal
@view
def _score(x: DynArray[int256, MAX_FEATURES]) -> int256:
    s: int256 = self.intercept
    prev: int256 = -1
    for v: int256 in x:
        assert v > prev, "features_not_increasing"
        prev = v
        s += self.weights[convert(v, uint256)]
    return s


@external
@view
def n_classes() -> uint256:
    return 2


@external
@view
def predict(x: DynArray[int256, MAX_FEATURES]) -> uint256:
    if self._score(x) > 0:
        return 1
    return 0


@external
def update(x: DynArray[int256, MAX_FEATURES], y: uint256):
    assert msg.sender == self.owner, "only_owner"
    assert y < 2, "class_out_of_range"
    s: int256 = self._score(x)
    step: int256 = 0
    if y == 1 and s <= 0:
        step = self.learning_rate
    elif y == 0 and s >= 0:
        step = -self.learning_rate
    if step == 0:
        return
    for v: int256 in x:
        self.weights[convert(v, uint256)] += step
    self.intercept += step
