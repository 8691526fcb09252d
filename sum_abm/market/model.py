"""The market: a Mesa model in which policies trade through the contract layer in event time.

Time is integer seconds (block timestamps). Each participant schedules its next wake-up after a
random wait; the model evaluates the hidden-test accuracy on the reference's schedule (first when the
clock passes ``first_sample_s``, then every ``sample_interval_s``), and records balances then. All
randomness comes from the model's seeded generator (``self.rng``). Every state change goes through
the contract layer (``sum_abm.contract``); this module only decides *which* calls to send.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from typing import Any

import numpy as np

import sum_abm.learners._compiled as _compiled
from sum_abm.chain import TX_FIELDS
from sum_abm.data import load_dataset
from sum_abm.errors import InputError
from sum_abm.learners.base import _margins
from sum_abm.market.agents import Participant, Unsent
from sum_abm.market.claims import SCORE_TOL, ClaimBook, _max, csr_bitsets
from sum_abm.market.contract_setup import MarketContract, build_contract
from sum_abm.market.events import EventQueue
from sum_abm.market.mesa_core import AgentSet, Model
from sum_abm.market.recording import TxLog
from sum_abm.policies import BlockNormals, Policy, WalkRules, make_policy
from sum_abm.scenario import Scenario

_NO_DRIFT = np.zeros((1, 3))  # Learner.margin_drift since the start of the drift count
_WAKE = Participant.wake  # the callback of a participant's wake-up (see _skip_idle)
# a policy's wait unless it has its own (see _skip_idle)
_NEXT_WAIT, _DRAW_WAIT = Policy.next_wait, Policy.draw_wait
_I64_MAX = 2**63 - 1
_EVERY = np.ones(8, dtype=bool)  # a walk's table that takes every live slot, whatever its code
#: The incremental claim walk is used while the window holds at least this many slots per slot the
#: book logged as possibly flipped since the walker's last walk (else the full walk: same result).
WALK_FLIP_RATIO = 16
#: A book that tracks classes (ClaimBook.tracked) passes over them at least every this many
#: updates, so that new slots are tracked before a walk needs them...
TRACK_PASS_EVERY = 16
#: ...and at each pass re-predicts the slots whose margin the learner's drift may use up within
#: about this many updates (at the rate of the last ones). In S2 (seed 1): a pass every 5.8
#: updates, 81 rows each (4: 4.3 updates, 50 rows; 16: 6.6 updates, 149 rows).
TRACK_LOOKAHEAD = 8


def age_runs(ages_desc: list[int]) -> list[tuple[int, int]]:
    """Distinct ages (seconds, descending) as runs of consecutive ones: (oldest, youngest) each,
    oldest run first."""
    runs: list[tuple[int, int]] = []
    for age in ages_desc:
        if runs and runs[-1][1] == age + 1:
            runs[-1] = (runs[-1][0], age)
        else:
            runs.append((age, age))
    return runs


class MarketModel(Model):
    """A SUM market for one scenario and seed.

    ``MarketModel(scenario=..., seed=...)`` builds data, learner, contract and agents; ``run()``
    runs to the scenario's stop condition; ``run_until(t)`` / ``step()`` advance in event time (the
    interactive server uses those). Keyword-only parameters, so SolaraViz can rebuild it.
    """

    def __init__(self, *, scenario: Scenario, seed: int | None = None, dataset: Any = None) -> None:
        seed = scenario.seed if seed is None else int(seed)
        super().__init__(rng=np.random.SeedSequence(seed))
        self.scenario = scenario
        self.seed_value = seed
        self.events = EventQueue()
        self.finished = False
        self.naive = scenario.run.naive_claims

        self.data = (
            dataset
            if dataset is not None
            else load_dataset(scenario.data, scenario.learner.kind, scenario.name)
        )
        self.pool_y = np.asarray(self.data.y_pool, dtype=np.int64)
        self.n_pool = len(self.pool_y)
        self.n_classes = int(self.data.n_classes)
        self.cursor = 0
        # Pool row -> its Sample, made once (list-indexed: the walks read one per claim sent).
        self._samples: list[Any] = [None] * self.n_pool

        # Transaction log: one record per contract call (fields: sum_abm.chain.TX_FIELDS), kept
        # as columns; it reads like a list of tuples.
        self.tx_rows = TxLog()
        self.contract: MarketContract = build_contract(
            scenario,
            self.data,
            self.tx_rows.append,
            self.tx_rows.append_repeated,
            self.tx_rows.extend_accepted,
        )
        self.ledger = self.contract.ledger
        self.clock = self.contract.chain.clock
        self.learner = self.contract.learner
        # A linear two-class learner on 0/1 features: the book keeps every pending slot's score
        # current through the updates (ClaimBook.shift), so a walk reads its predictions.
        # (Not for a contract without a claim book: the prediction market's adds skip it.)
        linear = (
            self.contract.uses_claim_book
            and getattr(self.learner, "linear_delta", False)
            and self.n_classes == 2
            and isinstance(getattr(self.learner, "w", None), np.ndarray)
        )
        words = -(-int(self.data.n_features) // 64)
        self.book = ClaimBook(binary_words=words if linear and words <= 64 else 0)
        self.book.scored_version = self.learner.version
        # Otherwise, for a learner that asks for it, the book follows each slot's class through
        # the updates by the learner's margin bound (_follow_classes).
        self.book.tracked = (
            self.contract.uses_claim_book and not self.book.scored and self.learner.follow_margins
        )
        self.book.track_epoch = self.learner.drift_epoch
        # Between two passes over the tracked classes (_track_pass): the learner's drift at the
        # last pass, how far any tracked slot's bound may grow before one could lapse (the
        # budget), the largest max-|value| and sum-|value| of any slot, and the updates since.
        self._track_base = self.learner.drift.tolist()
        self._track_budget = np.inf
        self._track_xmax = [0.0, 0.0]
        self._track_updates = 0
        if self.book.scored:
            self.book.w_bound = float(np.abs(self.learner.w).max(initial=0.0))
            self.book.b_bound = abs(float(self.learner.b))
        # Whether every pool value is 1 (the book then needs no pass over an added row's values),
        # and every pool row's bitset, built once per data set when so (None otherwise).
        self._pool_binary = self._binary_pool()
        self._pool_bits = self._binary_pool_bits(words) if self.book.scored else None
        # (address index, walk rules) -> when its last walk found nothing: (learner version,
        # walker had verified data, pool not empty, valid until); see claim_walk.
        self._idle_walks: dict[tuple, tuple] = {}
        # The participants whose dry wake-ups the compiled loop of _skip_idle draws (single
        # address, the Policy's own wait rule), by wake-up callback: (agent, address, whether its
        # dry walk is the reference one, rank, policy config), for the run.
        self._dry_wakers: dict[Any, tuple] = {}
        # The ages (seconds) at which a claim rule or the walk can change its answer.
        c = self.contract
        # The age past which the walk takes every live slot (``age > it`` for the reference walk,
        # ``>=`` for the others): the any-address wait when the mechanism has a take; without
        # one, never (such a contribution is walked as a younger one: refund own, report others').
        self._take_age = c.any_wait_s if c.has_take else _I64_MAX
        self._crossing_ages = np.array(
            sorted(
                {
                    c.refund_time_s,
                    c.min_claim_age,
                    c.any_wait_s,
                    c.any_wait_s + 1,
                    min(c.refund_time_s, c.any_wait_s),
                },
                reverse=True,
            ),
            dtype=np.int64,
        )
        # With gas, a claim the rules accept may still be more than the wallet pays (not sent):
        # a walk refused whole then stays refused only while the walker's balance stays too.
        self._priced = bool(self.contract.chain.gas_price)
        self._rule_tables: dict[tuple, tuple] = {}
        self._rules_ids: dict[WalkRules, int] = {}  # see _rules_id
        self._last_rules: WalkRules | None = None
        self._last_rules_id = -1
        self._good_count = self.contract.mech.num_good  # verified data of an address (a view)
        self._crossing_asc = sorted(self._crossing_ages.tolist())
        self._crossing_desc = self._crossing_ages.tolist()  # see _segments, _next_crossing
        # The reference rules' thresholds come in pairs (a, a + 1), whose crossings _crossed
        # finds as one span.
        self._crossing_runs = age_runs(self._crossing_desc)
        # (address index, walk rules) -> after a walk that left nothing claimable to its walker:
        # (book flip epoch, walker had verified data, pool not empty, time); see claim_walk.
        self._walk_state: dict[tuple, tuple] = {}
        # A scored book's classes (and whether they equal the labels) per slot for one learner
        # version: (version, book compactions, first slot, end slot); see _kept_scored_predictions.
        self._kept = (-1, -1, 0, 0)
        # Once the pool is dry, whether the book can still be claimed (see _book_dead): (learner
        # version, book compactions, first slot not known to be dead for good, the claimable slot
        # last found or None); the time its answer may change (the skip of idle wake-ups stops
        # there); per age piece, whether its author (an active other address) could ever claim a
        # contribution, by agreement.
        self._dead_scan: tuple | None = None
        self._dead_until: float = np.inf
        self._ever: list[tuple] | None = None
        self._kept_pred = np.zeros(0, dtype=bool)
        self._kept_agree = np.zeros(0, dtype=bool)

        # Participants are Mesa agents: creating one registers it in the model's AgentSet
        # (``self.agents``; in creation order). Addresses are stable names: group, or group-i
        # when count > 1.
        self.addr_index: dict[str, int] = {}
        self.addr_owner: dict[str, Participant] = {}
        for g in scenario.agents:
            for i in range(g.count):
                base = g.name if g.count == 1 else f"{g.name}-{i}"
                n_addr = getattr(g, "addresses", 1)
                addrs = [base] if n_addr == 1 else [f"{base}.{j}" for j in range(n_addr)]
                agent = Participant(self, g, make_policy(g), addrs)
                for j, a in enumerate(addrs):
                    share = g.start_balance // n_addr + (g.start_balance % n_addr if j == 0 else 0)
                    self.contract.fund(a, share)
                    self.addr_index[a] = len(self.addr_index)
                    self.addr_owner[a] = agent
        self.addresses = list(self.addr_index)
        self._owners = [self.addr_owner[a] for a in self.addresses]  # by address index
        self.contract.start(
            self.rng
        )  # e.g. the prediction market's bounty and test-set commitments
        self.ledger_total = self.ledger.total()
        if self.ledger_total > _I64_MAX:
            raise InputError(
                f"{scenario.name}: money: the market starts with {self.ledger_total:,} token units"
                f" in all (start balances x counts, and any bounty); results hold money as 64-bit"
                f" integers: expected at most {_I64_MAX:,} (2**63 - 1)"
            )

        # Accuracy on the reference's schedule; the decisions use the last evaluated value.
        self.accuracy = self.contract.accuracy()
        self.accuracy_initial = self.accuracy
        self.next_eval = scenario.run.first_sample_s
        self.samples: dict[str, list[Any]] = {
            k: [] for k in ("time_s", "accuracy", "agent_id", "group", "balance")
        }
        self.acc_series: list[tuple[int, float]] = []
        self._sample()

        # Wake order: shuffled like the reference; ties at equal times broken by address.
        everyone = list(self.participants)
        order = [everyone[i] for i in self.rng.permutation(len(everyone))]
        ranks = {a.address: r for r, a in enumerate(sorted(everyone, key=lambda a: a.address))}
        for agent in order:
            agent.rank = ranks[agent.address]
            self.schedule_event(
                agent.wake, after=agent.policy.first_wait(agent), priority=agent.rank
            )

    @property
    def participants(self) -> AgentSet:
        """The market's participants: Mesa's AgentSet of :class:`Participant` (creation order)."""
        return self.agents_by_type[Participant]

    # -- Mesa 3.5-style time API ------------------------------------------------------------
    @property
    def time(self) -> int:  # type: ignore[override]
        return self.events.time

    @time.setter
    def time(self, value: int) -> None:  # Mesa's base __init__ assigns time = 0
        if hasattr(self, "events"):
            self.events.time = int(value)

    def schedule_event(
        self, fn, *, at: int | None = None, after: int | None = None, priority: int = 0
    ) -> None:
        """Schedule ``fn`` at ``at`` or ``after`` seconds (integer simulated time)."""
        self.events.schedule_event(fn, at=at, after=after, priority=priority)

    def run_until(self, t_end: int) -> None:
        """Process every event up to simulated time ``t_end`` (seconds), or until the run is done."""
        max_t, stop = self.scenario.run.max_time_s, self.scenario.run.stop_when_done
        peek, pop, advance = self.events.peek_time, self.events.pop, self.clock.advance_to
        skip = self.contract.uses_claim_book and not self.naive  # the naive market wakes each
        while not self.finished:
            # (_done is False while data is left: checked here first, once per event)
            if stop and self.cursor >= self.n_pool and self._done():
                self._finish()
                break
            t = peek()
            if t is None or t > max_t:
                self._finish()
                break
            if t > t_end:
                break
            if (
                skip
                and self.cursor >= self.n_pool
                and self._skip_idle(min(t_end, max_t, self._dead_until))
            ):
                continue
            _, fn = pop()
            advance(t)  # transactions land in the block containing t
            if t > self.next_eval:
                self.accuracy = self.contract.accuracy()
                self.next_eval += self.scenario.run.sample_interval_s
                self._sample()
            fn()

    def _stop_age(self, reference: bool, dry: bool) -> int:
        """The age (seconds) a contribution needs before a walk goes on to it: the refund wait;
        for the reference walk once the pool is ``dry``, the longer of it and the any-address
        wait (see WalkRules; the reference's stop rule whether or not the mechanism has a take:
        without one the walk refunds and reports there)."""
        c = self.contract
        return max(c.refund_time_s, c.any_wait_s) if reference and dry else c.refund_time_s

    def _skip_idle(self, limit: int) -> bool:
        """Process, without waking them, the wake-ups next in the queue that can only draw their
        next wait: at times up to ``limit`` and the next accuracy sample (seconds), of
        participants whose policy declares its dry-pool wake-up to be only its claim walk
        (``Policy.dry_walk``), while the pool is dry and that walk stops at once (claim_walk's
        first test: the oldest live contribution is younger than the walk's stop age). Nothing
        else can happen meanwhile, so the book and the balances stay as they are. Each such
        wake-up draws its next wait as waking it would (the same draws, in the same order), or
        ends the participant's turns when its balance is not positive. True when any was
        processed. On 1,000 agents three wake-ups in four are these (benchmarks/scale.py)."""
        b = self.book
        if len(b) == 0 or b.head >= b.n:
            return False
        q, bt = self.events, self.clock.block_time_s
        # Walks at blocks before t0 + stop age find nothing; as event times: before the first
        # block at or after it (by rules.reference: other rules, the reference walk's).
        t0 = int(b.times[b.head])
        horizon = [-(-(t0 + self._stop_age(ref, True)) // bt) * bt for ref in (False, True)]
        limit = min(limit, self.next_eval)
        bal = self.ledger.balances()
        n = 0
        # Per participant, once per call (balances cannot change meanwhile): its horizon, 0
        # without a positive balance, 2 when its wait is the Policy's own rule (drawn here, see
        # below; 3 when by the compiled loop too), else 1, and its rank.
        seen: dict[Participant, tuple[int, int, int]] = {}
        # Nothing but the waits draws from the model's generator here: they are taken ahead in
        # blocks (the same values, and the generator left where single draws leave it).
        kernel, dry = _compiled.dry_wakes, self._dry_wakers
        # (the compiled loop's limit and horizons as 64-bit ints: no event time reaches past them)
        bounds = [min(x, _I64_MAX) for x in (limit, *horizon)]
        normals = BlockNormals(self.rng, first_block=64 if kernel is not None else 8)
        head = q.head()
        try:
            while head is not None:
                t, fn = head
                if t > limit or getattr(fn, "__func__", None) is not _WAKE:
                    break
                agent = fn.__self__
                info = seen.get(agent)
                if info is None:
                    policy = agent.policy
                    rules = policy.dry_walk
                    if rules is None:
                        break
                    cls = policy.__class__
                    rule = cls.next_wait is _NEXT_WAIT and cls.draw_wait is _DRAW_WAIT
                    keep = 0 if agent.balance <= 0 else 2 if rule else 1
                    if keep == 2 and kernel is not None and len(agent.addresses) == 1:
                        keep = 3
                        dry[fn] = (agent, agent.address, rules.reference, agent.rank, policy.config)
                    info = seen[agent] = (horizon[rules.reference], keep, agent.rank)
                h, keep, rank = info
                if t >= h:
                    break
                if keep == 3 and agent.active:
                    # this wake-up and the next ones like it in one compiled loop (the same
                    # checks, draws and queue), up to one it leaves to the lines below
                    block, pos = normals.block()
                    k, pos, more = q.reschedule_heads(kernel, dry, bal, block, pos, *bounds)
                    normals.advance(pos)
                    if k or more:
                        n += k
                        head = q.head()
                        continue
                n += 1
                if not agent.active:
                    q.pop()  # wake() returns at once
                elif keep:
                    if keep >= 2:
                        after = agent.policy.draw_wait(normals)
                    else:  # a policy's own wait may draw anything: from the generator itself
                        normals.close()
                        after = agent.policy.next_wait(agent)
                    if after.__class__ is int and after >= 0:
                        head = q.reschedule_head(after, rank)
                        continue
                    q.pop()  # schedule_after's conversions and checks
                    q.schedule_after(fn, after, rank)
                else:
                    q.pop()
                    agent.active = False
                    break  # the run may be done now (_book_dead): checked before the next event
                head = q.head()
        finally:
            normals.close()
        if n:
            self.clock.advance_to(q.time)
        return n > 0

    def step(self) -> None:
        """Advance by one sampling interval of simulated time (the interactive server's step), or
        to the next event when that interval holds none (see :meth:`_next_stop`)."""
        self.run_until(self._next_stop())

    def _next_stop(self) -> int:
        """Where a step ends (seconds): one sampling interval on, or the next event's time when
        the interval holds none. The model's time moves only with its events, so a step over an
        empty interval would leave it where it was: with agents that wait longer than the
        interval, a stepping loop never got past that gap (``sum-abm run``'s progress loop)."""
        end = self.time + self.scenario.run.sample_interval_s
        nxt = self.events.peek_time()
        return end if nxt is None else max(end, nxt)

    def run(self, progress: Any = None) -> MarketModel:
        """Run to the scenario's stop condition.

        ``progress(fraction)`` (0..1, the share of the pool contributed) is called after every
        sampling interval of simulated time, for progress bars.
        """
        if progress is None:
            self.run_until(self.scenario.run.max_time_s)
        else:
            while not self.finished:
                self.run_until(self._next_stop())
                progress(self.cursor / max(1, self.n_pool))
        if not self.finished:
            self._finish()
        return self

    # -- stop condition ---------------------------------------------------------------------
    def _done(self) -> bool:
        if not self.scenario.run.stop_when_done:
            return False
        if self.data_left():
            return False
        return not self.contract.uses_claim_book or len(self.book) == 0 or self._book_dead()

    def _book_dead(self) -> bool:
        """Whether no contribution left in the book can ever be claimed (asked once the pool is
        dry: no add can be made, so the model no longer changes, and no claim changes it).

        Participants claim only by their claim walks, which refund their own contributions and
        report others' (and take every one past the any-address wait, for a mechanism with a
        take). A live contribution can still be claimed only by its author while its participant
        is active and its policy's ``claim_rules`` allow the refund (or take) that the
        mechanism's rules accept at its age or a later one; or by an address of another active
        participant whose ``claim_rules`` allow the report (or take) they accept at its age or a
        later one, for a reporter with verified data that has not claimed it yet (an upper
        bound). The rules read the model's class, which no longer changes. A book of none of
        these would keep the run going to ``run.max_time_s`` with nothing left to happen: e.g.
        under Points with one contributor, its own data the model disagrees with (Points lets
        nobody take it, and its author cannot report it). Dead is for good (the live set only
        shrinks, participants only stop, ages only grow, the model stays): the slots found dead
        are not examined again, and the claimable slot found last is examined again only once
        it is claimed, its claimer stops or its age reaches a rule's threshold (``_dead_until``,
        where the skip of idle wake-ups stops so that this is asked there as when waking each)."""
        b, L = self.book, self.learner
        key = (L.version, b.compactions)
        st = self._dead_scan
        pos = b.head if st is None or st[0] != key else max(st[1], b.head)
        now = self.clock.now
        if st is not None and st[0] == key and st[2] is not None:
            slot, until, who = st[2]
            if b.live[slot] and now < until and who.active:
                return False
        ever = self._ever if self._ever is not None else self._ever_tables()
        asc, owners = self._crossing_asc, self._owners
        times, author, live, label = b.times, b.author, b.live, b.label
        # per kind of claim (0 refund, 1 own take, 2 report, 3 others' take): up to two active
        # addresses whose policy may send it, found when needed
        found: dict[int, list[int]] = {}

        def able(kind: int) -> list[int]:
            got = found.get(kind)
            if got is None:
                got = found[kind] = []
                for i, p in enumerate(owners):
                    r = p.policy.claim_rules
                    if p.active and r is not None and (r.report if kind == 2 else r.take):
                        got.append(i)
                        if len(got) == 2:
                            break
            return got

        for slot in range(pos, b.n):
            if not live[slot]:
                continue
            age = now - times[slot]
            k = bisect_right(asc, age)
            a = author.item(slot)
            owner = owners[a]
            r = owner.policy.claim_rules if owner.active else None
            # who may claim it when the model disagrees / agrees: (participant, or None) each
            by = [None, None]
            for kind, allowed in enumerate(ever[k]):
                if not (allowed[0] or allowed[1]):
                    continue
                if kind < 2:
                    if r is None or not (r.refund if kind == 0 else r.take):
                        continue
                    claimer = owner
                else:
                    other = next((i for i in able(kind) if i != a), None)
                    if other is None:
                        continue
                    claimer = owners[other]
                for g in (0, 1):
                    if allowed[g] and by[g] is None:
                        by[g] = claimer
            if by[0] is None and by[1] is None:
                continue
            if by[0] is not None and by[0] is by[1]:
                who = by[0]  # whatever the model's class (no prediction)
            else:
                row = b.row.item(slot)
                agrees = int(self.learner.predict_one(self.sample(row))) == label.item(slot)
                who = by[agrees]
                if who is None:
                    continue
            until = times[slot] + asc[k] if k < len(asc) else np.inf
            self._dead_scan = (key, slot, (slot, until, who))
            self._dead_until = until
            return False
        self._dead_scan = (key, b.n, None)
        self._dead_until = np.inf
        return True

    def _ever_tables(self) -> list[tuple]:
        """Per age piece (between two of the rules' threshold ages, see _crossing_asc), by the
        model's agreement ((disagrees, agrees) each): whether the mechanism's rules accept, at
        some age from there on, the author's refund, the author's take, another address's report
        (with verified data, not having claimed it) and another's take, each where the walk
        sends it (a take from the take age on, see _take_age, both walks' sides of it counted;
        the rest before it)."""
        im = self.contract.im
        agree = np.array([False, True])
        yes, no = np.ones(2, dtype=bool), np.zeros(2, dtype=bool)
        take_age = self._take_age
        now = []
        for age in [0, *self._crossing_asc]:  # one age of each piece (the rules are constant)
            a = np.int64(age)
            take, walked = age >= take_age, age <= take_age  # (age == take age: either walk)
            own = np.asarray(im.reportable(a, agree, yes, no, yes), dtype=bool)
            theirs = np.asarray(im.reportable(a, agree, no, no, yes), dtype=bool)
            refund = np.asarray(im.refundable(a, agree), dtype=bool)
            now.append((refund & walked, own & take, theirs & walked, theirs & take))
        ever, acc = [], [no.copy() for _ in range(4)]
        for row in reversed(now):
            acc = [x | y for x, y in zip(acc, row, strict=True)]
            ever.append(tuple(tuple(x.tolist()) for x in acc))
        self._ever = ever[::-1]
        return self._ever

    def _finish(self) -> None:
        if self.finished:
            return
        # e.g. the prediction market's reward phase and collections, in address order
        for addr in self.contract.finish(self.addresses, self.sample):
            self.addr_owner[addr].refunded += 1
        self.finished = True
        self.accuracy = self.contract.accuracy()
        self._sample()
        self.ledger.check_conserved()

    def _binary_pool(self) -> bool:
        """Whether the pool is sparse with every stored value 1; kept in the data set's cache."""
        cache = self.data.cache
        if "pool_binary" not in cache:
            cache["pool_binary"] = self.data.sparse and bool((self.data.X_pool.data == 1.0).all())
        return cache["pool_binary"]

    def _binary_pool_bits(self, words: int) -> np.ndarray | None:
        """The pool's rows as bitsets (rows x ``words``) when every pool value is 1, else None;
        kept in the data set's cache (the clean baseline and the run share it)."""
        key = ("pool_bitsets", words)
        if key not in self.data.cache:
            X = self.data.X_pool
            ok = self._binary_pool()
            self.data.cache[key] = csr_bitsets(X.indptr, X.indices, words) if ok else None
        return self.data.cache[key]

    # -- sampling ---------------------------------------------------------------------------
    def _sample(self) -> None:
        t = self.time
        self.acc_series.append((t, float(self.accuracy)))
        s = self.samples
        for a in self.participants:
            s["time_s"].append(t)
            s["accuracy"].append(float(self.accuracy))
            s["agent_id"].append(
                a.address if len(a.addresses) == 1 else a.address.rsplit(".", 1)[0]
            )
            s["group"].append(a.group.name)
            s["balance"].append(float(a.balance))  # (reference-python balances have fractions)

    @property
    def tx(self) -> dict[str, list[Any]]:
        """The transaction log as columns (fields: ``sum_abm.chain.TX_FIELDS``)."""
        cols: dict[str, list[Any]] = {k: [] for k in TX_FIELDS}
        for row in self.tx_rows:
            for k, v in zip(TX_FIELDS, row, strict=False):
                cols[k].append(v)
        return cols

    # -- queries the policies use (free view calls) ------------------------------------------
    def data_left(self) -> bool:
        return self.cursor < self.n_pool

    def accepting_data(self) -> bool:
        return self.data_left() and self.contract.accepting_data()

    def next_row(self) -> int | None:
        return self.cursor if self.data_left() else None

    def random_row(self) -> int:
        return int(self.rng.integers(self.n_pool))

    def pool_label(self, row: int) -> int:
        return int(self.pool_y[row])

    def flip_label(self, y: int) -> int:
        """The wrong label a flipper submits: ``1 - y`` for two classes, the next class otherwise."""
        return 1 - y if self.n_classes == 2 else (y + 1) % self.n_classes

    def sample(self, row: int) -> Any:
        """Pool row ``row`` as a Sample (made once per run)."""
        if row < 0:
            raise IndexError(f"pool row {row} < 0")
        s = self._samples[row]
        if s is None:
            s = self._samples[row] = self.data.sample(row)
        return s

    def model_predict(self, row: int) -> int:
        return int(self.learner.predict_one(self.sample(row)))

    def margin(self, row: int) -> float:
        """Distance of a pool row from the decision boundary (smaller = nearer), for attackers."""
        fn = getattr(self.learner, "decision_margin", None)
        if fn is not None:
            return float(fn(self.sample(row)))
        return 0.0 if self.model_predict(row) != self.pool_label(row) else 1.0

    def required_deposit(self) -> int:
        return self.contract.required_deposit(self.clock.now)

    def num_good(self, address: str) -> int:
        return self.contract.num_good(address)

    def address_balance(self, address: str) -> int:
        return self.ledger.balance(address)

    def has_claims(self, agent: Participant) -> bool:
        """True while some contribution of the agent's is still in the claim book."""
        by = self.book.live_by_author
        return any(by.get(self.addr_index[a], 0) > 0 for a in agent.addresses)

    def can_continue(self, agent: Participant) -> bool:
        """Whether a contributor should keep waking: it can still add, or has something to claim."""
        can_add = self.accepting_data() and (agent.balance > 0 or self.contract.free_adds)
        return can_add or self.has_claims(agent)

    def spendable(
        self,
        agent: Participant,
        row: int,
        y: int = 0,
        address: str | None = None,
        call: str = "add_data",
    ) -> int:
        """What ``address`` (default: the agent's own) can send with ``call`` (``add_data`` of
        pool ``row`` labelled ``y``, or ``predict`` of ``row``): its balance less the call's fee
        (token units; the balance when calls are free)."""
        addr = address or agent.address
        balance = self.ledger.balance(addr)
        if not self._priced:
            return balance
        x = self.sample(row)
        c = self.contract
        return balance - (c.predict_fee(addr, x) if call == "predict" else c.add_fee(addr, x, y))

    def locked_deposits(self, agent: Participant) -> int:
        """Deposits of the agent still held by the contract (token units, approximated from the book)."""
        return self.contract.locked_for(agent.addresses)

    # -- actions (each one contract call) ----------------------------------------------------
    def add_data(
        self, agent: Participant, row: int, y: int, value: int, address: str | None = None
    ) -> bool:
        """Contribute pool ``row`` with label ``y`` offering ``value`` tokens; True when accepted.

        A call the state proves would be rejected (too little value, same-second add in the
        reference-python rules, not the participation phase) is not sent.
        """
        addr = address or agent.address
        x = self.sample(row)
        # (a wallet that cannot pay the value and the fee does not sign: nothing sent, no fee)
        fee = self.contract.add_fee(addr, x, y) if self._priced else 0
        if not self.naive and not self.contract.add_would_succeed(addr, value, self.clock.now, fee):
            if not agent.adds_accepted:  # (see unsent_add)
                self._refused_add(agent, addr, value, fee)
            return False
        b, L = self.book, self.learner
        v0 = L.version
        if b.scored:
            ix = x.indices.astype(np.intp)  # numpy converts int32 indices at every gather
            w0, off0 = L.w[ix], L.b
        ok, cost = self.contract.add_data(addr, value, x, y)
        if not ok:
            return False
        bits = None
        if b.scored:
            pb = self._pool_bits
            bits = pb[row] if pb is not None else b.bitset(x.indices)
            if L.version != v0:
                self._follow_update(ix, bits, w0, off0, v0)
        agent.adds_accepted += 1
        agent.deposits_paid += int(cost)
        if row == self.cursor:
            self.cursor += 1
        if self.contract.uses_claim_book:
            binary = True if self._pool_binary else None
            slot = b.add(
                self.clock.now, self.addr_index[addr], row, y, x.indices, x.values, bits, binary
            )
            if not cost and not self.contract.claimable_left(addr, x, y, self.clock.now):
                b.mark_empty(slot)  # (a deposit of 0: see _drop_empty)
            if b.scored:
                # w·x + b to rounding; the allowance's w_bound * sum|x| + b_bound covers its terms.
                # An add that left the model as it was (most do) has its score from the update's
                # own test (the same dot product: see _Linear.decision_one).
                last = getattr(L, "last_decision", None)
                if L.version == v0 and last is not None and last[0] is x:
                    b.set_scores(slot, last[1], 0.0)
                else:
                    b.set_scores(slot, float(L.w[ix] @ x.values + L.b), 0.0)
            elif b.tracked and L.version != v0:
                self._follow_classes(v0)
        else:
            self.contract.note_contribution(addr, row, y, self.clock.now)
        return True

    def unsent_add(
        self,
        agent: Participant,
        reason: str,
        offered: int = 0,
        spendable: int | None = None,
        required: int | None = None,
    ) -> None:
        """Record an add ``agent`` did not send, and why (``reason``: ``cap``, its policy's
        ``max_deposit`` below the required deposit, offered as ``offered``; ``fee``, the add's fee
        above its wallet; ``deposit``, ``balance``, ``closed``, ``refused``: see
        :meth:`_refused_add`), with the deposit required now and what it could spend beyond the
        fee (token units). Only for the notes of a finished run, which speak of groups that got
        no add in: kept until the agent's first accepted add (a market of 1,000 agents leaves
        ~270,000 adds unsent, mostly after its agents' first ones)."""
        if agent.adds_accepted:
            return
        if required is None:
            required = self.contract.required_deposit(self.clock.now)
        if spendable is None:
            spendable = self.ledger.balance(agent.address)
        rec = agent.unsent.get(reason)
        if rec is None:
            rec = agent.unsent[reason] = Unsent()
        rec.note(int(required), int(offered), int(spendable))

    def _refused_add(self, agent: Participant, addr: str, value: int, fee: int) -> None:
        """Why the state proved an add offering ``value`` and paying ``fee`` would be refused:
        ``closed`` (the mechanism takes no data now), ``balance`` (the wallet less the fee is below
        the required deposit), ``deposit`` (the offer is, the wallet is not), else ``refused``."""
        can = self.ledger.balance(addr) - fee
        required = self.contract.required_deposit(self.clock.now)
        if not self.contract.accepting_data():
            reason = "closed"
        elif can < required:
            reason = "balance"
        elif value < required:
            reason = "deposit"
        else:
            reason = "refused"
        self.unsent_add(agent, reason, value, can, required)

    def predict(self, agent: Participant, row: int, value: int) -> int | None:
        """Pay ``value`` tokens for a prediction of pool ``row``; None when refused (or not sent:
        a wallet that cannot pay the value and the fee does not sign)."""
        x = self.sample(row)
        addr = agent.address
        if self._priced and not self.contract.chain.can_pay(
            addr, value, self.contract.predict_fee(addr, x)
        ):
            return None
        out = self.contract.predict(addr, x, value)
        if out is not None:
            agent.predictions += 1
        return out

    def claim_walk(self, agent: Participant, rules: WalkRules, address: str | None = None) -> None:
        """Claim what can be claimed, oldest first (see :mod:`sum_abm.market.claims`)."""
        if not self.contract.uses_claim_book or len(self.book) == 0:
            return
        addr = address or agent.address
        me = self.addr_index[addr]
        b = self.book
        now = self.clock.now
        lo = b.head
        t_max = now - self._stop_age(rules.reference, not self.data_left())
        # Most wake-ups find nothing old enough: the oldest live slot tells, in O(1).
        if lo >= b.n or b.times[lo] > t_max:
            return
        hi = b.slots_older_than(t_max)
        if self.naive:
            self._naive_walk(agent, addr, me, lo, hi, rules)
            return
        if b.empty_live:
            self._drop_empty(me, lo, hi, rules, now)
            lo = b.head
            if lo >= hi:
                return
        # An idle walk stays idle until the model changes, a contribution crosses an age the
        # rules look at, the walker gains verified data or the pool runs dry (the rest only
        # shrinks: contributions are claimed or emptied, never refilled).
        L = self.learner
        good = self._good_count(addr) > 0
        left = self.data_left()
        key = (me, self._rules_id(rules))
        memo = self._idle_walks.get(key)
        if (
            memo is not None
            and memo[:3] == (L.version, good, left)
            and now < memo[3]
            and (memo[4] is None or memo[4] == self.ledger.balance(addr))
        ):
            return
        # The window splits at the ages where a rule can change its answer (as in _next_crossing);
        # within a segment every rule is a function of (agrees, own, claimed) alone, tabulated
        # once from the mechanism's own elementwise rules.
        # Incremental walk (scored book): the last walk left nothing this walker could claim and
        # no live slot's class has changed since, so only slots whose age crossed a threshold
        # since then (or entered the window) can hold a new candidate; the rest only shrinks.
        # Only for a walker with verified data: one without may gain it by a refund in this walk,
        # which opens reports anywhere in the window.
        ranges = [(lo, hi)]
        st = self._walk_state.pop(key, None) if b.follows else None
        flipped = None
        if good and st is not None and st[1:3] == (good, left) and b.scored_version == L.version:
            # Worth it only while the slots to re-examine are few beside the window: with many
            # walkers each walks rarely, so many model changes pass between its walks and the
            # full walk (numpy over the window) is cheaper than gathering them (benchmarks/scale.py).
            n_flip = b.flip_count(st[0])
            if n_flip is not None and n_flip * WALK_FLIP_RATIO <= hi - lo:
                flipped = b.flipped_since(st[0])
        if flipped is not None:
            ranges = self._crossed(st[3], now, lo, hi, flipped)
            if not ranges:
                self._walk_state[key] = (b.flip_epoch, good, left, now)
                return
            # a few slots: plain Python is cheaper (one range, mostly: no generator for it)
            r0, r1 = ranges[0]
            if (r1 - r0 if len(ranges) == 1 else sum(y - x for x, y in ranges)) <= 8:
                self._walk_few(agent, addr, me, rules, ranges, key, left)
                return
        version0 = L.version
        segs = []
        for r_lo, r_hi in ranges:
            segs += self._segments(now, r_lo, r_hi, rules) or []
        if not segs:
            if b.follows:
                self._walk_state[key] = (b.flip_epoch, good, left, now)
            return
        # Predictions, where a rule reads them (the model does not change during a walk).
        need = [sg for sg in segs if sg[3] is not None and sg[3][2]]
        pred = agree = None
        p_lo = p_hi = hi
        if need:
            p_lo, p_hi = need[0][0], need[-1][1]
            if b.scored:
                pred, agree = self._kept_scored_predictions(p_lo, p_hi)
            else:
                if b.tracked:
                    pred = self._tracked_predictions(p_lo, p_hi)
                else:
                    pred = self._predictions(p_lo, p_hi, b.live[p_lo:p_hi])
                agree = pred == b.label[p_lo:p_hi]
        slots, good = self._walk_candidates(segs, me, good, agree, p_lo, rules)
        if not len(slots):
            self._idle_walks[key] = (L.version, good, left, self._next_crossing(now), None)
            if b.follows:
                self._walk_state[key] = (b.flip_epoch, good, left, now)
            return
        # (a walker's own slots before the take branch's end are taken, not refunded)
        take_end = lo
        for _, s1, take, _ in segs:
            if take and s1 > take_end:
                take_end = s1
        claims, slot_list, authors = self._walk_claims(slots, me, take_end, pred, p_lo, p_hi)
        # One batch to the contract, which sends each claim only if accepted, in order (so a
        # refund verifies data for the reports after it; a report it still rejects, e.g. by a
        # walker without verified data, leaves the walk unresolved).
        resolved, accepted = self._send_claims(addr, me, slot_list, authors, claims)
        if not accepted:
            self._refused_walk(key, addr, left, now)
            return
        good_end = self._good_count(addr) > 0
        if b.follows and resolved and good_end == good and L.version == version0:
            self._walk_state[key] = (b.flip_epoch, good, left, now)

    def _walk_claims(
        self,
        slots: np.ndarray,
        me: int,
        take_end: int,
        pred: np.ndarray | None,
        p_lo: int,
        p_hi: int,
    ) -> tuple[list[tuple], list[int], list[int]]:
        """A walk's batch for its candidate ``slots`` (in order): one ``(call, x, y, t, author's
        address, prediction)`` per slot, a refund for the walker's (address index ``me``) own slots
        from ``take_end`` on and else a report (a take is a report call), with the slots and their
        authors' indices as lists. ``prediction``: ``pred[slot - p_lo]`` (the book's class, where
        a rule read it) for slots in [max(p_lo, take_end), p_hi), else None (the contract
        predicts if it must). One compiled pass when built (:func:`_compiled.walk_claims`: at
        1,000 agents ~150,000 batches of ~17), else this."""
        b = self.book
        if _compiled.walk_claims is not None:
            return _compiled.walk_claims(
                slots, b.row, b.label, b.time, b.author, me, take_end, pred, p_lo, p_hi,
                self._samples, self.sample, self.addresses, "refund", "report",
            )  # fmt: skip
        # The candidates' fields as Python values once (not one numpy scalar per read).
        slot_list = slots.tolist()
        rows, labels = b.row[slots].tolist(), b.label[slots].tolist()
        times, authors = b.time[slots].tolist(), b.author[slots].tolist()
        preds: list = [None] * len(slot_list)
        if pred is not None:
            i0 = bisect_left(slot_list, max(p_lo, take_end))
            i1 = bisect_left(slot_list, p_hi, i0)
            if i1 > i0:
                got = pred[slots[i0:i1] - p_lo]
                preds[i0:i1] = (got.view(np.uint8) if got.dtype == bool else got).tolist()
        # (a book slot's row was sampled when it was added: its Sample is made, read from the list)
        xs, sample, names = self._samples, self.sample, self.addresses
        claims = [
            (
                "refund" if author == me and slot >= take_end else "report",
                xs[row] if xs[row] is not None else sample(row),
                y, t, names[author], p,
            )
            for slot, row, y, t, author, p in zip(
                slot_list, rows, labels, times, authors, preds, strict=True
            )
        ]  # fmt: skip
        return claims, slot_list, authors

    def _walk_candidates(
        self,
        segs: list,
        me: int,
        good: bool,
        agree: np.ndarray | None,
        p_lo: int,
        rules: WalkRules,
    ) -> tuple[np.ndarray, bool]:
        """The walk's candidate slots in ``segs`` (see _segments), in slot order, and whether the
        walker (address index ``me``) has verified data: ``good`` already, or by a refund it can
        claim in the walk. Each live slot's code is looked up in its segment's tables (``agree``:
        the predictions' agreement from slot ``p_lo`` on, where a table reads it); in one compiled
        pass per segment when built (:func:`_compiled.walk_scan`), else in numpy (the same slots)."""
        b = self.book
        scan = _compiled.walk_scan
        if scan is not None:
            author, live = b.author, b.live
            marks, bits = b.marks(me)
            # (the segments are in slot order: their span holds them all)
            out = np.empty(segs[-1][1] - segs[0][0], dtype=np.int64)
            for s0, s1, _take, tab in segs:
                if good:
                    break
                if tab is not None:
                    ag, mk = agree if tab[2] else None, marks if tab[3] else None
                    good = scan(author, me, s0, s1, ag, p_lo, mk, bits, live, tab[0], out, 1) > 0
            n = 0
            for s0, s1, take, tab in segs:
                if tab is None:
                    if take and rules.take:  # every live slot
                        n += scan(
                            author, me, s0, s1, None, 0, None, False, live, _EVERY, out[n:], s1
                        )
                    continue
                ag, mk = agree if tab[2] else None, marks if tab[3] else None
                table = tab[1 if good else 4]
                n += scan(
                    author, me, s0, s1, ag, p_lo, mk, bits, live, table, out[n:] if n else out, s1
                )
            return out[:n], good
        codes = []
        for s0, s1, _take, tab in segs:
            if tab is None:
                codes.append(None)
                continue
            code = (b.author[s0:s1] == me).view(np.uint8) << 1
            if tab[2]:
                code |= agree[s0 - p_lo : s1 - p_lo].view(np.uint8) << 2
            if tab[3]:
                code |= b.claimed_by(me, s0, s1).view(np.uint8)
            codes.append(code)
            if not good and tab[0][code].any(where=b.live[s0:s1]):
                good = True  # a refund earlier in the walk verifies data
        parts = []
        for (s0, s1, take, tab), code in zip(segs, codes, strict=True):
            if tab is None:
                if take and rules.take:
                    parts.append(np.flatnonzero(b.live[s0:s1]) + s0)
                continue
            cand = tab[1 if good else 4][code]
            cand &= b.live[s0:s1]
            parts.append(np.flatnonzero(cand) + s0)
        return (np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)), good

    def _send_claims(
        self, addr: str, me: int, slots: list[int], authors: list[int], claims: list[tuple]
    ) -> tuple[bool, bool]:
        """Send a walk's ``claims`` (``(call, x, y, t, author address, prediction)`` of book
        ``slots`` by author index ``authors``) as one batch, each only if accepted, in order,
        and do _claimed's book-keeping with the counters and claimed marks added up once.
        Returns (resolved: every claim was accepted and no slot can be claimed again by
        ``addr``; whether any claim was accepted)."""
        b = self.book
        results = self.contract.claims(addr, claims)
        resolved = True  # every candidate claimed and no longer claimable by this walker
        owners, won, n_refunds = self._owners, [], 0
        for slot, author, claim, (ok, _, rest) in zip(slots, authors, claims, results, strict=True):
            refund = claim[0] == "refund"
            if ok:
                if refund:
                    n_refunds += 1
                else:
                    won.append(slot)
                    owners[author].taken += 1
            if rest is not None and rest <= 0:
                b.remove(slot)
                resolved = resolved and ok
            else:
                resolved = resolved and ok and not refund
        walker = self.addr_owner[addr]
        if n_refunds:
            walker.refunded += n_refunds
            walker.points += n_refunds * self.contract.points_per_refund
        if won:
            walker.reports_won += len(won)
            b.mark_claimed_many(won, me)
        return resolved, bool(won or n_refunds)

    def _refused_walk(self, key: tuple, addr: str, left: bool, now: int) -> None:
        """After a walk whose every claim the contract refused: nothing changed, so the same
        walk is refused again until the model, the walker's verified data or the pool changes or
        a contribution reaches a rule's age (a refusal never turns into an acceptance otherwise:
        contributions are only claimed or emptied); idle until then, as a walk that found
        nothing. Without it a walk of claims the mechanism refuses (e.g. the reference walk's
        takes under Points, where the model agrees) re-sent them all at every wake-up. With gas
        a claim may also be one the walker's balance does not pay: idle while the balance stays."""
        good = self._good_count(addr) > 0
        balance = self.ledger.balance(addr) if self._priced else None
        self._idle_walks[key] = (
            self.learner.version, good, left, self._next_crossing(now), balance
        )  # fmt: skip

    def _walk_few(
        self,
        agent: Participant,
        addr: str,
        me: int,
        rules: WalkRules,
        ranges: list[tuple[int, int]],
        key: tuple,
        left: bool,
    ) -> None:
        """The incremental walk over a few slots, examined one at a time: the same candidates,
        order and predictions as the array walk (the walker has verified data, see
        claim_walk), sent as one batch (_send_claims)."""
        b, L = self.book, self.learner
        now = self.clock.now
        aw = self._take_age
        version0 = L.version
        # Read per slot examined (S1: ~36,000 per run): the arrays, tables and marks bound once,
        # a table looked up as _rule_table keys it (key[1] is the rules' id), fields read by
        # item() (a Python number, without a numpy scalar first).
        ref, take = rules.reference, rules.take
        live, times, author, label = b.live, b.times, b.author, b.label
        tables, asc, rid = self._rule_tables, self._crossing_asc, key[1]
        marks, marks_are_bits = b.marks(me)
        class_of = self._scored_class if b.scored else self._tracked_class
        cands = []
        for r0, r1 in ranges:
            for slot in range(r0, r1):
                if not live[slot]:
                    continue
                t = times[slot]
                age = now - t
                a = author.item(slot)
                if (age > aw) if ref else (age >= aw):
                    if take:
                        cands.append((slot, a, "report", None, t))  # a take is a report call
                    continue
                tab = tables.get((bisect_right(asc, age), rid)) or self._rule_table(age, rules)
                own = a == me
                code = 2 if own else 0
                p = None
                if tab[2]:
                    p = class_of(slot)
                    if p == label.item(slot):
                        code |= 4
                if tab[3] and marks is not None:
                    if marks[slot >> 3] >> (slot & 7) & 1 if marks_are_bits else marks[slot]:
                        code |= 1
                if tab[1][code]:
                    cands.append((slot, a, "refund" if own else "report", p, t))
        if cands:
            sample, names, row = self.sample, self.addresses, b.row
            slots = [c[0] for c in cands]
            authors = [c[1] for c in cands]
            claims = [
                (call, sample(row.item(slot)), label.item(slot), t, names[a], p)
                for slot, a, call, p, t in cands
            ]
            resolved, accepted = self._send_claims(addr, me, slots, authors, claims)
            if not accepted:
                self._refused_walk(key, addr, left, now)
                return
            if not resolved:
                return
        if L.version == version0:
            self._walk_state[key] = (b.flip_epoch, True, left, now)

    def _scored_class(self, slot: int) -> int:
        """The model's class of one slot from its incremental score (re-scored exactly first
        when within its rounding allowance of zero), as :meth:`_scored_predictions`."""
        b = self.book
        s = b.score.item(slot)
        tol = SCORE_TOL * (b.mag.item(slot) + b.w_bound * b.x_l1.item(slot) + b.b_bound)
        if abs(s) <= tol:
            self._rescore(np.array([slot]))
            s = b.score.item(slot)
        return int(s > 0)

    def _crossed(
        self, t_prev: int, now: int, lo: int, hi: int, flipped: list[int]
    ) -> list[tuple[int, int]]:
        """Slot ranges within [lo, hi) whose age crossed a rule threshold in (t_prev, now], and
        the ``flipped`` slots there (whose class may have changed), merged in slot order."""
        # Called at most wake-ups (S1: 27,000 times), mostly to find one span or none: binary
        # searches of the book's times as a Python list (numpy's dispatch costs more).
        times = self.book.times
        spans = []
        if now > t_prev:
            # A slot's age crossed one of the ages a..b (consecutive, a <= b) in (t_prev, now]
            # when t_prev - b < time <= now - a, for integer times: one span per run of ages,
            # the union of the runs' single-age spans.
            for oldest, youngest in self._crossing_runs:
                x = bisect_right(times, t_prev - oldest, lo, hi)
                y = bisect_right(times, now - youngest, lo, hi)
                if y > x:
                    spans.append((x, y))
        if flipped:
            spans += [(x, x + 1) for x in flipped if lo <= x < hi]
        if len(spans) < 2:
            return spans
        out: list[tuple[int, int]] = []
        for x, y in sorted(spans):
            if out and x <= out[-1][1]:
                out[-1] = (out[-1][0], max(out[-1][1], y))
            else:
                out.append((x, y))
        return out

    def _segments(self, now: int, lo: int, hi: int, rules: WalkRules) -> list | None:
        """Slots [lo, hi) cut where an age crosses a rule's threshold: (start, end, take, table)
        per segment, oldest first; ``table`` (None for the take branch) is
        (refund by code, candidate by code when good, whether the rules read ``agrees``, whether
        they read ``claimed``, candidate by code when not good), ``code`` = agrees * 4 + own * 2
        + claimed. None when no segment can hold a candidate."""
        if hi <= lo:
            return None
        times = self.book.times  # binary searches of a Python list (see _crossed)
        asc = self._crossing_asc
        # Ages fall in slot order, so when the oldest and the youngest slot are on the same side
        # of every threshold (most walks: no slot crosses one), the window is one segment.
        if bisect_right(asc, now - times[lo]) == bisect_right(asc, now - times[hi - 1]):
            bounds = [lo, hi]
        else:
            cuts = [bisect_right(times, now - age, lo, hi) for age in self._crossing_desc]
            bounds = sorted({lo, hi, *cuts})
        segs = []
        aw = self._take_age
        useful = False
        for s0, s1 in zip(bounds, bounds[1:], strict=False):
            age = now - times[s0]
            take = age > aw if rules.reference else age >= aw
            tab = None if take else self._rule_table(age, rules)
            useful = useful or (take and rules.take) or (tab is not None and tab[5])
            segs.append((s0, s1, take, tab))
        return segs if useful else None

    def _rule_table(self, age: int, rules: WalkRules) -> tuple:
        """The walk's claim choice at ``age`` as lookup tables over ``code`` (see _segments),
        from the mechanism's elementwise rules; cached per side of every threshold (the key
        _walk_few also reads the cache with, per slot, before calling this)."""
        # the side of every threshold
        key = (bisect_right(self._crossing_asc, age), self._rules_id(rules))
        tab = self._rule_tables.get(key)
        if tab is None:
            im = self.contract.im
            code = np.arange(8)
            agree, own, claimed = (code & 4) > 0, (code & 2) > 0, (code & 1) > 0
            a = np.int64(age)
            refund = own & im.refundable(a, agree) if rules.refund else np.zeros(8, dtype=bool)
            refund = np.asarray(refund, dtype=bool)  # the compiled walk reads bools

            def cand(good: bool) -> np.ndarray:
                c = refund.copy()
                if rules.report:
                    c |= ~own & im.reportable(a, agree, own, claimed, np.bool_(good))
                return np.asarray(c, dtype=bool)

            c_good, c_bad = cand(True), cand(False)
            reads_agree = any(
                not np.array_equal(t[code & 3], t[(code & 3) | 4]) for t in (refund, c_good, c_bad)
            )
            reads_claimed = any(
                not np.array_equal(t[code & 6], t[(code & 6) | 1]) for t in (refund, c_good, c_bad)
            )
            tab = (refund, c_good, reads_agree, reads_claimed, c_bad, bool(c_good.any()))
            self._rule_tables[key] = tab
        return tab

    def _rules_id(self, rules: WalkRules) -> int:
        """A small int per distinct walk rules, for the walk's memo keys (an int hashes faster
        than the dataclass; policies pass the same rules object on every walk)."""
        if rules is self._last_rules:
            return self._last_rules_id
        rid = self._rules_ids.setdefault(rules, len(self._rules_ids))
        self._last_rules, self._last_rules_id = rules, rid
        return rid

    def _next_crossing(self, now: int) -> float:
        """The first time (seconds) a contribution in the book, or one added from ``now`` on,
        reaches an age at which a walk or a claim rule changes its answer."""
        b = self.book
        times, head, n = b.times, b.head, b.n
        first = now + self._crossing_asc[0]
        # a few binary searches of the times as a Python list (numpy's dispatch costs more)
        for age in self._crossing_desc:
            k = bisect_right(times, now - age, head, n)
            if k < n:
                first = min(first, times[k] + age)
        return first

    def _drop_empty(self, me: int, lo: int, hi: int, rules: WalkRules, now: int) -> None:
        """Drop from the book the live slots in [lo, hi) that hold nothing to claim and that this
        walk (by address index ``me``) would claim, as the naive walk does when its claim of one
        is refused with nothing left (_claimed): the same slots leave the book at the same walk,
        so the run ends when the naive one does. Nothing is sent: every such claim is refused."""
        b = self.book
        for slot in (np.flatnonzero(b.empty[lo:hi] & b.live[lo:hi]) + lo).tolist():
            if self._walk_claim(now - b.times[slot], b.author.item(slot), me, rules):
                b.remove(slot)

    def _walk_claim(self, age: int, author: int, me: int, rules: WalkRules) -> str | None:
        """The claim a walk by address index ``me`` with ``rules`` sends for a live contribution
        ``age`` seconds old by address index ``author``, as the reference walk chooses it: past
        the take age a take, else its own a refund, another's a report; None when the rules
        send none of that kind."""
        aw = self._take_age
        if (age > aw) if rules.reference else (age >= aw):
            return "take" if rules.take else None
        if author == me:
            return "refund" if rules.refund else None
        return "report" if rules.report else None

    def _naive_walk(
        self, agent: Participant, addr: str, me: int, lo: int, hi: int, rules: WalkRules
    ) -> None:
        """The reference's walk with every call sent, rejected ones included (equivalence tests)."""
        b = self.book
        now = self.clock.now
        for slot in range(lo, hi):
            if not b.live[slot]:
                continue
            kind = self._walk_claim(now - int(b.time[slot]), int(b.author[slot]), me, rules)
            if kind is not None:
                self._claim(agent, addr, slot, kind, check=False)

    def _follow_update(
        self, ix: np.ndarray, bits: np.ndarray, w0: np.ndarray, off0: float, v0: int
    ) -> None:
        """Carry the book's scores through the update just made (weights ``w0`` and intercept
        ``off0`` at the sample's features ``ix`` before it, learner version ``v0``; ``bits``:
        the sample's bitset)."""
        b, L = self.book, self.learner
        if b.scored_version != v0 or L.version != v0 + 1 or not len(ix):
            return  # the scores were already stale: the next walk re-scores them
        w1 = L.w[ix]
        dw = w1 - w0
        step = float(dw[0])
        dw -= step  # (in place: the temporaries are fresh copies, one add in three updates)
        slack = float(_max(np.abs(dw, out=dw)))
        if slack > 1e-6 * abs(step):
            return  # not one step for every feature: re-scored at the next walk
        b.w_bound = max(b.w_bound, float(_max(np.abs(w1, out=w1))))
        b.b_bound = max(b.b_bound, abs(L.b))
        b.shift(bits, step, float(L.b - off0), slack)
        b.scored_version = L.version

    def _rescore(self, slots: np.ndarray) -> None:
        """Exact scores of book ``slots`` by the learner's kernel (the arithmetic of predict)."""
        b, L = self.book, self.learner
        if not len(slots):
            return
        idx, val, starts, lens = b.features_of(slots)
        indptr = np.append(starts, starts[-1] + lens[-1]) if len(starts) else np.zeros(1, int)
        scores = L.kernel_scores(indptr, idx, val, self._pool_binary)
        b.w_bound = max(b.w_bound, float(np.abs(L.w).max()))
        b.b_bound = max(b.b_bound, abs(L.b))
        b.set_scores(slots, scores, 0.0)

    def _kept_scored_predictions(self, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        """(:meth:`_scored_predictions`, whether each equals the slot's label) for slots [lo,
        hi), kept per learner version for every slot from the book's head: the many walks
        between two model changes (S1 with 1,000 agents: ~26) read them, and only slots added
        since are predicted. (A kept class is exact for its version: proven by its score's
        margin or re-scored exactly.)"""
        b, L = self.book, self.learner
        ver, comp, first, end = self._kept
        if ver != L.version or comp != b.compactions or lo < first or b.scored_version != ver:
            first = end = b.head
        if len(self._kept_pred) < len(b.score):  # the book grew: same slot numbers
            pred = np.zeros(len(b.score), dtype=bool)
            agree = np.zeros(len(b.score), dtype=bool)
            pred[first:end] = self._kept_pred[first:end]
            agree[first:end] = self._kept_agree[first:end]
            self._kept_pred, self._kept_agree = pred, agree
        if hi > end:
            n = b.n
            p = self._kept_pred[end:n]
            p[:] = self._scored_predictions(end, n)
            np.equal(p, b.label[end:n], out=self._kept_agree[end:n])
            end = n
        self._kept = (L.version, b.compactions, first, end)
        return self._kept_pred[lo:hi], self._kept_agree[lo:hi]

    def _scored_predictions(self, lo: int, hi: int) -> np.ndarray:
        """The model's class of slots [lo, hi) from the book's incremental scores; a score within
        its rounding allowance of zero is re-scored exactly first, so this equals predict."""
        b, L = self.book, self.learner
        if b.scored_version != L.version:  # changed other than by an add the book followed
            self._rescore(np.flatnonzero(b.live[b.head : b.n]) + b.head)
            b.scored_version = L.version
            b.unlogged_flip()
        s = b.score[lo:hi]
        a = np.abs(s)
        wl = b.w_bound * b.x_l1_max + b.b_bound
        if a.min(initial=np.inf) <= SCORE_TOL * (b.mag[lo:hi].max(initial=0.0) + wl):
            # some score may be within its rounding allowance of zero: check slot by slot
            tol = SCORE_TOL * (b.mag[lo:hi] + b.w_bound * b.x_l1[lo:hi] + b.b_bound)
            unsure = np.flatnonzero(a <= tol)
            if len(unsure):
                self._rescore(unsure + lo)
                s = b.score[lo:hi]
        return s > 0

    def _follow_classes(self, v0: int) -> None:
        """Carry the tracked classes through the update just made (learner version ``v0``
        before it): when the learner's drift since the last pass may have used up some tracked
        slot's margin, a new pass (_track_pass); else no tracked class changed (O(1)). A new
        slot is tracked from the next pass on (or when a walk needs it)."""
        b, L = self.book, self.learner
        if b.scored_version != v0 or L.version != v0 + 1 or b.track_epoch != L.drift_epoch:
            return  # the classes were already stale: the next walk starts them afresh
        b.scored_version = L.version
        self._track_updates += 1
        if self._track_growth() * (1 + 2e-9) < self._track_budget:
            if self._track_updates < TRACK_PASS_EVERY:
                return  # every tracked class is proven (see _track_pass); new slots can wait
        self._track_pass()

    def _track_growth(self) -> float:
        """An upper bound on how far any tracked slot's drift bound has grown since the last
        pass (``_track_xmax`` is at least every tracked slot's max-|value| and sum-|value|)."""
        d, base, xm = self.learner.drift.tolist(), self._track_base, self._track_xmax
        return (d[0] - base[0]) + (d[1] - base[1]) * xm[0] + (d[2] - base[2]) * xm[1]

    def _track_widen(self, slots: np.ndarray) -> None:
        """``slots`` become tracked: keep ``_track_xmax`` above their values."""
        b, xm = self.book, self._track_xmax
        xm[0] = max(xm[0], float(_max(b.x_inf[slots])))
        xm[1] = max(xm[1], float(_max(b.x_l1[slots])))

    def _track_budgets(self, total_base: np.ndarray, cap: np.ndarray) -> np.ndarray:
        """How far each slot's bound may grow past the last pass (drift bound ``total_base``
        then) while its class stays proven: the test of _predictions, ``total * (1 + 1e-9) +
        1e-12 < cap``, with twice the allowance for the rounding of the growth bound."""
        return cap - total_base * (1 + 2e-9) - 2e-12

    def _track_pass(self) -> None:
        """Re-predict every live slot not tracked yet and every tracked one whose margin the
        drift bound may use up within about TRACK_PASS_EVERY updates (at the rate of the last
        ones); log the tracked ones whose class changed (ClaimBook.log_flips). Until the drift
        grows past the smallest budget left (or new slots pile up), no class can change."""
        b, L = self.book, self.learner
        lo, hi = b.head, b.n
        e = L.drift_epoch
        rate = self._track_growth() / max(1, self._track_updates)
        if _compiled.track_select is not None and self._pool_binary and L.n_classes == 2:
            self._track_pass_compiled(lo, hi, e, TRACK_LOOKAHEAD * rate)
            return
        total = self._drift_total(lo, hi)
        budget = self._track_budgets(total, b.cap[lo:hi])  # infinite where not tracked or live
        redo = budget < TRACK_LOOKAHEAD * rate  # (lapsed: budget <= 0)
        redo |= b.live[lo:hi] & (b.epoch_at[lo:hi] != e)
        j = np.flatnonzero(redo)[::-1]  # descending (see below), from lo
        if len(j):
            idx = j + lo
            # the rows in place: interleaved pointers whose odd rows run backwards, so empty (as
            # in evaluation._interleave); of the indices' dtype (no copy)
            ap = np.empty(2 * len(idx), dtype=b.fidx.dtype)
            ap[0::2] = b.fptr[idx]
            ap[1::2] = b.fptr[idx + 1]
            scores = L.kernel_scores(ap, b.fidx, b.fval, self._pool_binary)[0::2]
            labels = L._labels(scores)
            total_j = total[j]
            cap = _margins(scores)
            cap += total_j
            self._track_widen(idx)
            flipped = idx[(b.epoch_at[idx] == e) & (labels != b.pred[idx])]
            b.pred[idx] = labels
            b.cap[idx] = cap
            b.epoch_at[idx] = e
            budget[j] = self._track_budgets(total_j, cap)
            if len(flipped):
                b.log_flips(flipped[::-1])
        self._track_budget = float(np.minimum.reduce(budget)) if len(budget) else np.inf
        self._track_base = L.drift.tolist()
        self._track_updates = 0

    def _track_pass_compiled(self, lo: int, hi: int, e: int, threshold: float) -> None:
        """:meth:`_track_pass` for a two-class model on a 0/1 pool in two compiled passes
        (:func:`_compiled.track_select`, :func:`_compiled.track_apply`): the same slots
        re-predicted, the same scores, classes, caps, flips and smallest budget, bit for bit;
        about ten numpy calls over the window fewer (S2 makes ~4,000 passes per run)."""
        b, L = self.book, self.learner
        d0, d1, d2 = L.drift.tolist()
        idx, total = np.empty(hi - lo, dtype=np.int64), np.empty(hi - lo)
        n, budget = _compiled.track_select(
            lo, hi, b.x_inf, b.x_l1, b.cap, b.live, b.epoch_at, e, d0, d1, d2, threshold, idx, total
        )
        if n:
            w, off = L.score_params()
            if w.ndim != 1:
                raise RuntimeError("a two-class model gave one score per class")
            xm, flipped = self._track_xmax, np.empty(n, dtype=np.int64)
            nf, budget, xm[0], xm[1] = _compiled.track_apply(
                idx, n, total, b.fptr, b.fidx, w, float(off), b.pred, b.cap, b.epoch_at, e,
                b.x_inf, b.x_l1, flipped, budget, xm[0], xm[1],
            )  # fmt: skip
            if nf:
                b.log_flips(flipped[:nf])
        self._track_budget = budget
        self._track_base = L.drift.tolist()
        self._track_updates = 0

    def _drift_total(self, lo: int, hi: int) -> np.ndarray:
        """The learner's margin drift bound since its start for slots [lo, hi)."""
        b = self.book
        d0, d1, d2 = self.learner.drift.tolist()
        total = b.x_inf[lo:hi] * d1
        total += b.x_l1[lo:hi] * d2
        total += d0
        return total

    def _tracked_predictions(self, lo: int, hi: int) -> np.ndarray:
        """The model's class of slots [lo, hi) (live ones) from the tracked classes; slots not
        tracked yet are predicted (and tracked from then on)."""
        b, L = self.book, self.learner
        if b.scored_version != L.version or b.track_epoch != L.drift_epoch:
            # changed other than by an update the book followed: every class is unknown
            b.epoch_at[b.head : b.n] = -1
            b.cap[b.head : b.n] = np.inf
            b.scored_version, b.track_epoch = L.version, L.drift_epoch
            b.unlogged_flip()
            self._track_base, self._track_budget = L.drift.tolist(), np.inf
            self._track_updates = 0
        sl = slice(lo, hi)
        stale = b.live[sl] & (b.epoch_at[sl] != L.drift_epoch)
        idx = np.flatnonzero(stale) + lo
        if len(idx):
            if 2 * len(idx) >= hi - lo:  # a contiguous slice beats gathering scattered rows
                labels, margins = L.predict_segments(
                    *b.features(lo, hi), margins=True, ones=self._pool_binary
                )
                labels, margins = labels[idx - lo], margins[idx - lo]
            else:
                labels, margins = L.predict_segments(
                    *b.features_of(idx), margins=True, ones=self._pool_binary
                )
            b.pred[idx] = labels
            b.cap[idx] = margins + self._drift_total(lo, hi)[idx - lo]
            b.epoch_at[idx] = L.drift_epoch
            self._track_widen(idx)
            # tracked from now on: their budgets count from the last pass, as the others'
            d0, d1, d2 = self._track_base
            base = b.x_inf[idx] * d1 + b.x_l1[idx] * d2 + d0
            budget = self._track_budgets(base, b.cap[idx]).min()
            self._track_budget = min(self._track_budget, float(budget))
        return b.pred[sl]

    def _tracked_class(self, slot: int) -> int:
        """The model's class of one live slot, as :meth:`_tracked_predictions`."""
        b, L = self.book, self.learner
        e = L.drift_epoch
        if b.epoch_at.item(slot) == e and b.scored_version == L.version and b.track_epoch == e:
            return b.pred.item(slot)
        return int(self._tracked_predictions(slot, slot + 1)[0])

    def _predictions(self, lo: int, hi: int, need: np.ndarray) -> np.ndarray:
        """The model's class for each slot in [lo, hi) where ``need``; cached, and re-predicted only
        where the learner has changed by more than the slot's margin (Learner.margin_drift)."""
        b = self.book
        L = self.learner
        sl = slice(lo, hi)
        stale = need & (b.pred_ver[sl] != L.version)
        if not stale.any():
            return b.pred[sl]
        # Within its margin a cached class is proven right. The drift bound is linear in the
        # learner's cumulative drift, so "bound since prediction < margin" is "bound since the
        # start < cap" with cap = margin + the bound since the start when predicted; the
        # relative allowance (a larger bound) covers the rounding of the two large sums.
        total = L.margin_drift(_NO_DRIFT, b.x_inf[sl], b.x_l1[sl])
        safe = stale & (b.epoch_at[sl] == L.drift_epoch)
        safe &= total * (1 + 1e-9) + 1e-12 < b.cap[sl]
        b.pred_ver[sl][safe] = L.version
        stale &= ~safe
        idx = np.flatnonzero(stale) + lo
        if len(idx):
            if 2 * len(idx) >= hi - lo:  # a contiguous slice beats gathering scattered rows
                labels, margins = L.predict_segments(
                    *b.features(lo, hi), margins=True, ones=self._pool_binary
                )
                idx = np.arange(lo, hi)
                b.cap[idx] = margins + total
            else:
                labels, margins = L.predict_segments(
                    *b.features_of(idx), margins=True, ones=self._pool_binary
                )
                b.cap[idx] = margins + total[idx - lo]
            b.pred[idx] = labels
            b.pred_ver[idx], b.epoch_at[idx] = L.version, L.drift_epoch
        return b.pred[sl]

    def _claim(
        self,
        agent: Participant,
        addr: str,
        slot: int,
        kind: str,
        check: bool,
        prediction: int | None = None,
        fields: tuple[int, int, int, int] | None = None,
    ) -> bool:
        """Send (or, with ``check``, send only if accepted) the claim of book ``slot``;
        ``fields``: the slot's (row, label, time, author index) when the caller has them.
        True when the claim was accepted and the slot can no longer be claimed by ``addr``
        (emptied, or reported by it)."""
        b = self.book
        if fields is None:
            fields = (int(b.row[slot]), int(b.label[slot]), int(b.time[slot]), int(b.author[slot]))
        row, y, t, author = fields
        author_addr = self.addresses[author]
        x = self.sample(row)
        if kind == "refund":
            ok, amount, left = self.contract.refund(
                addr, x, y, t, check=check, prediction=prediction
            )
        else:
            ok, amount, left = self.contract.report(
                addr, x, y, t, author_addr, check=check, prediction=prediction
            )
        return self._claimed(addr, slot, kind, author_addr, ok, left)

    def _claimed(
        self, addr: str, slot: int, kind: str, author_addr: str, ok: bool, left: Any
    ) -> bool:
        """Book-keeping after the claim of book ``slot`` (counters, claimed marks, removal);
        True when it was accepted and the slot can no longer be claimed by ``addr``."""
        b = self.book
        if ok:
            owner = self.addr_owner[addr]
            if kind == "refund":
                owner.refunded += 1
                owner.points += self.contract.points_per_refund
            else:
                owner.reports_won += 1
                self.addr_owner[author_addr].taken += 1
                b.mark_claimed(slot, self.addr_index[addr])
        if left is not None and left <= 0:
            b.remove(slot)
            return ok
        return ok and kind != "refund"
