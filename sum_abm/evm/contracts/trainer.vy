# pragma version ~=0.4.3
"""
@title Collaborative trainer: the public entry points of a SUM contract
@notice Written from the SUM design. It holds the deposits and delegates to a data handler, an
        incentive mechanism and a classifier, separate contracts it owns (as in the reference
        design), so every call pays for those external calls. Features are int256 words: feature
        indices for the sparse learners, fixed-point values for the nearest centroid.
"""

MAX_FEATURES: constant(uint256) = 1024

interface DataHandler:
    def handle_add(key: bytes32, sender: address, cost: uint256): nonpayable
    def handle_refund(key: bytes32, submitter: address) -> (uint256, bool, uint256): view
    def handle_report(key: bytes32, reporter: address) -> (uint256, uint256, bool, uint256): view
    def update_claimable(key: bytes32, claimer: address, amount: uint256): nonpayable

interface IncentiveMechanism:
    def handle_add(msg_value: uint256) -> uint256: nonpayable
    def handle_refund(submitter: address, y: uint256, added_time: uint256, claimable: uint256, claimed_by_submitter: bool, prediction: uint256) -> uint256: nonpayable
    def handle_report(reporter: address, author: address, y: uint256, added_time: uint256, initial_deposit: uint256, claimable: uint256, claimed_by_reporter: bool, prediction: uint256) -> uint256: nonpayable

interface Classifier:
    def update(x: DynArray[int256, MAX_FEATURES], y: uint256): nonpayable
    def predict(x: DynArray[int256, MAX_FEATURES]) -> uint256: view

event AddData:
    sender: indexed(address)
    x: DynArray[int256, MAX_FEATURES]
    y: uint256
    t: uint256
    cost: uint256

event Refund:
    recipient: indexed(address)
    amount: uint256

event Report:
    recipient: indexed(address)
    amount: uint256

data_handler: public(DataHandler)
incentive_mechanism: public(IncentiveMechanism)
classifier: public(Classifier)


@deploy
def __init__(data_handler: address, incentive_mechanism: address, classifier: address):
    self.data_handler = DataHandler(data_handler)
    self.incentive_mechanism = IncentiveMechanism(incentive_mechanism)
    self.classifier = Classifier(classifier)


@internal
@pure
def _key(x: DynArray[int256, MAX_FEATURES], y: uint256, t: uint256, author: address) -> bytes32:
    return keccak256(abi_encode(x, y, t, author))


@external
@view
def predict(x: DynArray[int256, MAX_FEATURES]) -> uint256:
    """The model's class for ``x``."""
    return staticcall self.classifier.predict(x)


@external
@payable
def add_data(x: DynArray[int256, MAX_FEATURES], y: uint256):
    """Add a labelled sample; the deposit is taken from msg.value and any excess is sent back."""
    cost: uint256 = extcall self.incentive_mechanism.handle_add(msg.value)
    extcall self.data_handler.handle_add(self._key(x, y, block.timestamp, msg.sender), msg.sender, cost)
    extcall self.classifier.update(x, y)
    log AddData(sender=msg.sender, x=x, y=y, t=block.timestamp, cost=cost)
    if msg.value > cost:
        send(msg.sender, msg.value - cost)


@external
def refund(x: DynArray[int256, MAX_FEATURES], y: uint256, added_time: uint256):
    """The submitter takes back its deposit after the refund wait if the model agrees."""
    key: bytes32 = self._key(x, y, added_time, msg.sender)
    claimable: uint256 = 0
    claimed: bool = False
    num_claims: uint256 = 0
    claimable, claimed, num_claims = staticcall self.data_handler.handle_refund(key, msg.sender)
    prediction: uint256 = staticcall self.classifier.predict(x)
    amount: uint256 = extcall self.incentive_mechanism.handle_refund(msg.sender, y, added_time, claimable, claimed, prediction)
    extcall self.data_handler.update_claimable(key, msg.sender, amount)
    log Refund(recipient=msg.sender, amount=amount)
    send(msg.sender, amount)


@external
def report(x: DynArray[int256, MAX_FEATURES], y: uint256, added_time: uint256, author: address):
    """Take (part of) a deposit on data the model disagrees with, or all of it after the long wait."""
    key: bytes32 = self._key(x, y, added_time, author)
    initial_deposit: uint256 = 0
    claimable: uint256 = 0
    claimed: bool = False
    num_claims: uint256 = 0
    initial_deposit, claimable, claimed, num_claims = staticcall self.data_handler.handle_report(key, msg.sender)
    prediction: uint256 = staticcall self.classifier.predict(x)
    amount: uint256 = extcall self.incentive_mechanism.handle_report(msg.sender, author, y, added_time, initial_deposit, claimable, claimed, prediction)
    extcall self.data_handler.update_claimable(key, msg.sender, amount)
    log Report(recipient=msg.sender, amount=amount)
    send(msg.sender, amount)
