# pragma version ~=0.4.3
"""
@title Nearest centroid with integer fixed-point means (sum_abm gas calibration)
@notice Written from the SUM design. ``x`` is a dense vector of n_dims fixed-point values. An
        update moves the class's centroid to the running mean, c = (c*n + x) // (n+1) per
        dimension (signed division rounds toward zero), then n += 1: every dimension is written.
        Predict: the class with the smallest squared Euclidean distance (ties: the lowest class).
"""

MAX_FEATURES: constant(uint256) = 1024
MAX_CLASSES: constant(uint256) = 64

owner: public(address)
n_classes: public(uint256)
n_dims: public(uint256)
data_count: public(HashMap[uint256, uint256])
centroids: public(HashMap[uint256, HashMap[uint256, int256]])


@deploy
def __init__(n_classes: uint256, n_dims: uint256):
    assert n_classes >= 2 and n_classes <= MAX_CLASSES, "bad_class_count"
    assert n_dims <= MAX_FEATURES, "too_many_dimensions"
    self.owner = msg.sender
    self.n_classes = n_classes
    self.n_dims = n_dims


@external
def transfer_ownership(new_owner: address):
    assert msg.sender == self.owner, "only_owner"
    self.owner = new_owner


@external
def init_centroid(y: uint256, centroid: DynArray[int256, MAX_FEATURES], count: uint256):
    """Load a class's initial centroid, before ownership passes to the trainer."""
    assert msg.sender == self.owner, "only_owner"
    assert y < self.n_classes, "class_out_of_range"
    assert len(centroid) == self.n_dims, "wrong_dimensions"
    for j: uint256 in range(len(centroid), bound=MAX_FEATURES):
        self.centroids[y][j] = centroid[j]
    self.data_count[y] = count


@external
@view
def predict(x: DynArray[int256, MAX_FEATURES]) -> uint256:
    assert len(x) == self.n_dims, "wrong_dimensions"
    best: uint256 = 0
    best_d: uint256 = max_value(uint256)
    for c: uint256 in range(self.n_classes, bound=MAX_CLASSES):
        d: uint256 = 0
        for j: uint256 in range(len(x), bound=MAX_FEATURES):
            diff: int256 = x[j] - self.centroids[c][j]
            d += convert(diff * diff, uint256)
        if d < best_d:
            best_d = d
            best = c
    return best


@external
def update(x: DynArray[int256, MAX_FEATURES], y: uint256):
    assert msg.sender == self.owner, "only_owner"
    assert y < self.n_classes, "class_out_of_range"
    assert len(x) == self.n_dims, "wrong_dimensions"
    n: int256 = convert(self.data_count[y], int256)
    for j: uint256 in range(len(x), bound=MAX_FEATURES):
        self.centroids[y][j] = (self.centroids[y][j] * n + x[j]) // (n + 1)
    self.data_count[y] += 1
