# pragma version ~=0.4.3
"""
@title Data handler: the record of every contribution (sum_abm gas calibration)
@notice Written from the SUM design. A contribution is keyed by the hash of (features, label, added
        time, author), computed by the trainer; the features themselves travel in calldata and in
        the trainer's AddData event, not in storage. Only the owner (the trainer) may write.
"""

struct Stored:
    sender: address
    initial_deposit: uint256
    claimable: uint256
    num_claims: uint256

owner: public(address)
stored: public(HashMap[bytes32, Stored])
claimed_by: public(HashMap[bytes32, HashMap[address, bool]])


@deploy
def __init__():
    self.owner = msg.sender


@external
def transfer_ownership(new_owner: address):
    assert msg.sender == self.owner, "only_owner"
    self.owner = new_owner


@external
def handle_add(key: bytes32, sender: address, cost: uint256):
    """Store a new contribution; a key may be reused once nothing is claimable on it (Solidity
    keeps the old claimers: mappings are never cleared)."""
    assert msg.sender == self.owner, "only_owner"
    old: Stored = self.stored[key]
    assert old.sender == empty(address) or old.claimable == 0, "duplicate_data"
    self.stored[key] = Stored(sender=sender, initial_deposit=cost, claimable=cost, num_claims=0)


@external
@view
def handle_refund(key: bytes32, submitter: address) -> (uint256, bool, uint256):
    """(claimable, already claimed by the submitter, number of claims) of the submitter's data."""
    d: Stored = self.stored[key]
    assert d.sender != empty(address), "data_not_found"
    return d.claimable, self.claimed_by[key][submitter], d.num_claims


@external
@view
def handle_report(key: bytes32, reporter: address) -> (uint256, uint256, bool, uint256):
    """(initial deposit, claimable, already claimed by the reporter, number of claims)."""
    d: Stored = self.stored[key]
    assert d.sender != empty(address), "data_not_found"
    return d.initial_deposit, d.claimable, self.claimed_by[key][reporter], d.num_claims


@external
def update_claimable(key: bytes32, claimer: address, amount: uint256):
    """Record a claim: ``amount`` (wei) leaves the contribution and ``claimer`` has claimed."""
    assert msg.sender == self.owner, "only_owner"
    self.stored[key].claimable -= amount
    self.stored[key].num_claims += 1
    self.claimed_by[key][claimer] = True
