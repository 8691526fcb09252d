# pragma version ~=0.4.3
"""
@title Multinomial Naive Bayes over binary features, by counts (sum_abm gas calibration)
@notice Written from the SUM design. ``x`` holds the indices of the present features, strictly
        increasing. An update adds one to the class's sample count, to its total feature count
        and to the count of every present feature. Predict picks the class with the largest
        class_count * prod_j (count_j + a) / (total + a*d) (a = smoothing / SCALE), computed for
        all classes in lockstep in fixed point, shifted left together whenever the largest falls
        below 2**96 so that long samples do not underflow (ties: the lowest class).
"""

MAX_FEATURES: constant(uint256) = 1024
MAX_CLASSES: constant(uint256) = 64
SCALE: constant(uint256) = 10**9

owner: public(address)
n_classes: public(uint256)
n_dims: public(uint256)
smoothing: public(uint256)  # alpha * SCALE
class_count: public(HashMap[uint256, uint256])
total_count: public(HashMap[uint256, uint256])
counts: public(HashMap[uint256, HashMap[uint256, uint256]])


@deploy
def __init__(n_classes: uint256, n_dims: uint256, smoothing: uint256):
    assert n_classes >= 2 and n_classes <= MAX_CLASSES, "bad_class_count"
    self.owner = msg.sender
    self.n_classes = n_classes
    self.n_dims = n_dims
    self.smoothing = smoothing


@external
def transfer_ownership(new_owner: address):
    assert msg.sender == self.owner, "only_owner"
    self.owner = new_owner


@external
def init_counts(y: uint256, samples: uint256, indices: DynArray[uint256, MAX_FEATURES], values: DynArray[uint256, MAX_FEATURES]):
    """Load (part of) an initial model, before ownership passes to the trainer."""
    assert msg.sender == self.owner, "only_owner"
    assert y < self.n_classes, "class_out_of_range"
    assert len(indices) == len(values), "length_mismatch"
    self.class_count[y] += samples
    total: uint256 = 0
    for i: uint256 in range(len(indices), bound=MAX_FEATURES):
        self.counts[y][indices[i]] = values[i]
        total += values[i]
    self.total_count[y] += total


@external
@view
def predict(x: DynArray[int256, MAX_FEATURES]) -> uint256:
    nc: uint256 = self.n_classes
    a: uint256 = self.smoothing
    ad: uint256 = a * self.n_dims
    p: DynArray[uint256, MAX_CLASSES] = []
    den: DynArray[uint256, MAX_CLASSES] = []
    for c: uint256 in range(nc, bound=MAX_CLASSES):
        p.append(self.class_count[c] << 96)
        den.append(self.total_count[c] * SCALE + ad)
    prev: int256 = -1
    for v: int256 in x:
        assert v > prev, "features_not_increasing"
        prev = v
        j: uint256 = convert(v, uint256)
        top: uint256 = 0
        for c: uint256 in range(nc, bound=MAX_CLASSES):
            q: uint256 = p[c] * (self.counts[c][j] * SCALE + a) // den[c]  # floors
            p[c] = q
            top = max(top, q)
        if top != 0 and top < 1 << 96:
            for c: uint256 in range(nc, bound=MAX_CLASSES):
                p[c] = p[c] << 64
    best: uint256 = 0
    for c: uint256 in range(1, MAX_CLASSES):
        if c >= nc:
            break
        if p[c] > p[best]:
            best = c
    return best


@external
def update(x: DynArray[int256, MAX_FEATURES], y: uint256):
    assert msg.sender == self.owner, "only_owner"
    assert y < self.n_classes, "class_out_of_range"
    self.class_count[y] += 1
    self.total_count[y] += len(x)
    prev: int256 = -1
    for v: int256 in x:
        assert v > prev, "features_not_increasing"
        prev = v
        self.counts[y][convert(v, uint256)] += 1
