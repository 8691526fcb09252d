# pragma version ~=0.4.3
"""
@title Deposit, Refund and Take with an on-chain sparse perceptron (sum_abm gas calibration)
@notice Written from the SUM design (Solidity semantics of sum_abm's contract layer): a deposit
        that falls with the time since the last update, refunds after the refund wait when the
        model agrees, takes of data the model disagrees with in proportion to the reporter's
        verified contributions, and anyone may take what is left after the long wait. The model
        is a perceptron with integer weights over binary features (indices), updated on mistakes.
"""

MAX_FEATURES: constant(uint256) = 256

struct Stored:
    claimable: uint256
    initial_deposit: uint256
    exists: bool

refund_time_s: public(uint256)
any_address_claim_wait_time_s: public(uint256)
cost_weight: public(uint256)
last_update_time_s: public(uint256)
total_good: public(uint256)
num_good: public(HashMap[address, uint256])
stored: HashMap[bytes32, Stored]
claimed: HashMap[bytes32, HashMap[address, bool]]
weights: public(HashMap[uint256, int256])
bias: public(int256)


@deploy
def __init__(refund_time_s: uint256, any_address_claim_wait_time_s: uint256, cost_weight: uint256):
    self.refund_time_s = refund_time_s
    self.any_address_claim_wait_time_s = any_address_claim_wait_time_s
    self.cost_weight = cost_weight
    self.last_update_time_s = block.timestamp


@internal
@view
def _score(x: DynArray[uint256, MAX_FEATURES]) -> int256:
    s: int256 = self.bias
    for i: uint256 in x:
        s += self.weights[i]
    return s


@external
@view
def predict(x: DynArray[uint256, MAX_FEATURES]) -> uint256:
    if self._score(x) > 0:
        return 1
    return 0


@external
@view
def required_deposit() -> uint256:
    if self.cost_weight == 0:
        return 0
    dt: uint256 = block.timestamp - self.last_update_time_s
    if dt == 0:
        return self.cost_weight * 3600
    return self.cost_weight * 3600 // isqrt(dt)


@internal
@pure
def _key(x: DynArray[uint256, MAX_FEATURES], y: uint256, t: uint256, author: address) -> bytes32:
    return keccak256(abi_encode(x, y, t, author))


@external
@payable
def add_data(x: DynArray[uint256, MAX_FEATURES], y: uint256):
    cost: uint256 = 0
    if self.cost_weight != 0:
        dt: uint256 = block.timestamp - self.last_update_time_s
        d: uint256 = 1
        if dt > 0:
            d = isqrt(dt)
        cost = self.cost_weight * 3600 // d
    assert msg.value >= cost, "insufficient_value"
    k: bytes32 = self._key(x, y, block.timestamp, msg.sender)
    old: Stored = self.stored[k]
    assert not old.exists or old.claimable == 0, "duplicate_data"
    self.last_update_time_s = block.timestamp
    self.stored[k] = Stored(claimable=cost, initial_deposit=cost, exists=True)
    # learn when the margin is not positive (a mistake, or a score of exactly 0 for class 0: the
    # perceptron rule sum_abm's Perceptron shares with scikit-learn)
    s: int256 = self._score(x)
    if y == 1 and s <= 0:
        for i: uint256 in x:
            self.weights[i] += 1
        self.bias += 1
    elif y == 0 and s >= 0:
        for i: uint256 in x:
            self.weights[i] -= 1
        self.bias -= 1
    if msg.value > cost:
        send(msg.sender, msg.value - cost)


@external
def refund(x: DynArray[uint256, MAX_FEATURES], y: uint256, added_time: uint256):
    k: bytes32 = self._key(x, y, added_time, msg.sender)
    d: Stored = self.stored[k]
    assert d.exists, "data_not_found"
    assert not self.claimed[k][msg.sender], "already_claimed_by_submitter"
    assert d.claimable > 0, "nothing_left_to_claim"
    assert block.timestamp - added_time >= self.refund_time_s, "too_early"
    p: uint256 = 0
    if self._score(x) > 0:
        p = 1
    assert p == y, "model_disagrees"
    amount: uint256 = d.claimable
    self.stored[k].claimable = 0
    self.claimed[k][msg.sender] = True
    self.num_good[msg.sender] += 1
    self.total_good += 1
    send(msg.sender, amount)


@external
def report(x: DynArray[uint256, MAX_FEATURES], y: uint256, added_time: uint256, author: address):
    k: bytes32 = self._key(x, y, added_time, author)
    d: Stored = self.stored[k]
    assert d.exists, "data_not_found"
    assert d.claimable > 0, "nothing_left_to_claim"
    amount: uint256 = d.claimable
    if block.timestamp - added_time < self.any_address_claim_wait_time_s:
        assert msg.sender != author, "own_deposit"
        assert not self.claimed[k][msg.sender], "already_claimed_by_reporter"
        assert block.timestamp - added_time >= self.refund_time_s, "too_early"
        p: uint256 = 0
        if self._score(x) > 0:
            p = 1
        assert p != y, "model_agrees"
        assert self.num_good[msg.sender] > 0, "reporter_has_no_good_data"
        amount = d.initial_deposit * self.num_good[msg.sender] // self.total_good
        if amount == 0 or amount > d.claimable:
            amount = d.claimable
    self.claimed[k][msg.sender] = True
    self.stored[k].claimable = d.claimable - amount
    send(msg.sender, amount)
