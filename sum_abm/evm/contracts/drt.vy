# pragma version ~=0.4.3
"""
@title Deposit, Refund and Take (self-assessment) with the Solidity integer rules
@notice Written from the SUM design and sum_abm's conformance rules (TRACE_FORMAT.md section 4),
        checks in that order. The deposit falls with the time since the last update:
        cost_weight*3600 // isqrt(dt) (dt = 0 divides by 1; 0 when cost_weight is 0). A refund
        needs age >= refund_time_s and a model that agrees; a take before the any-address wait
        needs a disagreeing model and verified good data, and gets
        initial_deposit*num_good//total_good (0 or more than claimable: all that is claimable).
        Only the owner (the trainer) may call the handlers.
"""

owner: public(address)
refund_time_s: public(uint256)
any_address_claim_wait_time_s: public(uint256)
cost_weight: public(uint256)
last_update_time_s: public(uint256)
total_good: public(uint256)
num_good: public(HashMap[address, uint256])


@deploy
def __init__(refund_time_s: uint256, any_address_claim_wait_time_s: uint256, cost_weight: uint256):
    self.owner = msg.sender
    self.refund_time_s = refund_time_s
    self.any_address_claim_wait_time_s = any_address_claim_wait_time_s
    self.cost_weight = cost_weight
    self.last_update_time_s = block.timestamp


@external
def transfer_ownership(new_owner: address):
    assert msg.sender == self.owner, "only_owner"
    self.owner = new_owner


@internal
@view
def _cost() -> uint256:
    if self.cost_weight == 0:
        return 0
    dt: uint256 = block.timestamp - self.last_update_time_s
    d: uint256 = 1
    if dt > 0:
        d = isqrt(dt)
    return self.cost_weight * 3600 // d  # floors, as Solidity


@external
@view
def required_deposit() -> uint256:
    """The deposit (wei) an add needs in the current block."""
    return self._cost()


@external
def handle_add(msg_value: uint256) -> uint256:
    """Check the sent value and start a new cost clock; returns the cost (wei)."""
    assert msg.sender == self.owner, "only_owner"
    cost: uint256 = self._cost()
    assert cost <= msg_value, "insufficient_value"
    self.last_update_time_s = block.timestamp
    return cost


@external
def handle_refund(submitter: address, y: uint256, added_time: uint256, claimable: uint256,
                  claimed_by_submitter: bool, prediction: uint256) -> uint256:
    """The submitter takes its deposit back; returns the amount (wei)."""
    assert msg.sender == self.owner, "only_owner"
    assert not claimed_by_submitter, "already_claimed_by_submitter"
    assert claimable > 0, "nothing_left_to_claim"
    assert block.timestamp - added_time >= self.refund_time_s, "too_early"
    assert prediction == y, "model_disagrees"
    self.num_good[submitter] += 1
    self.total_good += 1
    return claimable


@external
def handle_report(reporter: address, author: address, y: uint256, added_time: uint256,
                  initial_deposit: uint256, claimable: uint256, claimed_by_reporter: bool,
                  prediction: uint256) -> uint256:
    """A take of data the model disagrees with (or of anything after the long wait); returns wei."""
    assert msg.sender == self.owner, "only_owner"
    assert claimable > 0, "nothing_left_to_claim"
    age: uint256 = block.timestamp - added_time
    if age >= self.any_address_claim_wait_time_s:
        return claimable
    assert reporter != author, "own_deposit"
    assert not claimed_by_reporter, "already_claimed_by_reporter"
    assert age >= self.refund_time_s, "too_early"
    assert prediction != y, "model_agrees"
    ng: uint256 = self.num_good[reporter]
    assert ng > 0, "reporter_has_no_good_data"
    amount: uint256 = initial_deposit * ng // self.total_good  # floors, as Solidity
    if amount == 0 or amount > claimable:
        amount = claimable
    return amount
