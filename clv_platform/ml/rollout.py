"""How customers are split between the champion and the challenger: the rollout, pure and deterministic.

A rollout is a mode, the challenger's share and a salt, stored as tags of the registered model so the batch
job, the API and a scaled-out deployment read the same one (:func:`clv_platform.ml.registry.get_rollout`).

- ``none`` (the default): a candidate that passes the gates is promoted at once; every customer is ``champion``.
- ``shadow``: the passing candidate becomes the challenger only; it scores beside the champion, never served.
- ``canary`` / ``ab``: the challenger serves ``share`` of the customers (defaults 0.05 and 0.5).

A customer's arm is a salted SHA-256 of the customer id mapped to [0, 1): below ``share`` is the challenger.
It depends on nothing else, so every process (batch, API, another machine) assigns the same arm, and a new
salt draws a fresh split.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

MODES = ("none", "shadow", "canary", "ab")
SPLIT_MODES = ("canary", "ab")  # the modes in which the challenger serves some customers
DEFAULT_SHARES = {"canary": 0.05, "ab": 0.5}
CHAMPION_ARM, CHALLENGER_ARM = "champion", "challenger"
ARMS = (CHAMPION_ARM, CHALLENGER_ARM)
TAG_PREFIX = "rollout."


class RolloutError(ValueError):
    """A rollout that cannot be set as asked (a user error)."""


@dataclass(frozen=True)
class Rollout:
    """The rollout of a registered model: ``mode``, the challenger's ``share`` of customers, and the ``salt``.

    ``share`` is 0 outside :data:`SPLIT_MODES`.

    Examples
    --------
    >>> Rollout("canary", 0.05, "s1").describe()
    'canary: challenger share 0.05 (salt s1)'
    >>> Rollout("ab", 1.5, "s1")
    Traceback (most recent call last):
    ...
    clv_platform.ml.rollout.RolloutError: rollout share must be strictly between 0 and 1 in mode 'ab', got 1.5
    """

    mode: str = "none"
    share: float = 0.0
    salt: str = ""

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise RolloutError(f"rollout mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        share = self.share
        if isinstance(share, bool) or not isinstance(share, (int, float)) or share != share:
            raise RolloutError(f"rollout share must be a number, got {share!r}")
        if self.mode in SPLIT_MODES and not 0 < share < 1:
            raise RolloutError(f"rollout share must be strictly between 0 and 1 in mode {self.mode!r}, got {share}")
        if self.mode not in SPLIT_MODES and share != 0:
            raise RolloutError(f"rollout mode {self.mode!r} serves no customer with the challenger: give no share")
        object.__setattr__(self, "share", float(share))

    @property
    def splits(self) -> bool:
        """Whether the challenger serves some customers (canary or A/B)."""
        return self.mode in SPLIT_MODES

    @property
    def stages(self) -> bool:
        """Whether a candidate that passes the gates waits as challenger instead of being promoted at once."""
        return self.mode != "none"

    def describe(self) -> str:
        if self.splits:
            return f"{self.mode}: challenger share {self.share:g} (salt {self.salt})"
        return self.mode

    def to_tags(self) -> dict[str, str]:
        return {f"{TAG_PREFIX}mode": self.mode, f"{TAG_PREFIX}share": repr(self.share), f"{TAG_PREFIX}salt": self.salt}

    @classmethod
    def from_tags(cls, tags: Mapping[str, str]) -> Rollout:
        """The rollout the registered model's tags say; :class:`Rollout` ``none`` when they say nothing."""
        mode = tags.get(f"{TAG_PREFIX}mode") or "none"
        try:
            share = float(tags.get(f"{TAG_PREFIX}share") or 0.0)
        except ValueError:
            raise RolloutError(
                f"registered model tag {TAG_PREFIX}share is not a number: {tags[f'{TAG_PREFIX}share']!r}"
            ) from None
        return cls(mode, share if mode in SPLIT_MODES else 0.0, tags.get(f"{TAG_PREFIX}salt") or "")


def make_rollout(mode: str, share: float | str | None = None, salt: str | None = None, current: Rollout | None = None) -> Rollout:
    """The rollout a user asks for: the mode's default share when none is given, and the current salt (or a new one).

    Keeping the salt keeps each customer in their arm when only the share changes; a canary widened from
    5 % to 20 % keeps its first 5 %.

    >>> make_rollout("canary", salt="s").share, make_rollout("ab", salt="s").share, make_rollout("shadow").share
    (0.05, 0.5, 0.0)
    >>> make_rollout("none", share=0.2)
    Traceback (most recent call last):
    ...
    clv_platform.ml.rollout.RolloutError: rollout mode 'none' serves no customer with the challenger: give no share
    """
    mode = (mode or "").strip().lower()
    if isinstance(share, str):
        try:
            share = float(share)
        except ValueError:
            raise RolloutError(f"rollout share must be a number, got {share!r}") from None
    if share is None:
        share = DEFAULT_SHARES.get(mode, 0.0)
    if salt is not None and not salt.strip():
        raise RolloutError("rollout salt must be a non-empty text")
    salt = salt.strip() if salt else (current.salt if current is not None and current.salt else secrets.token_hex(4))
    return Rollout(mode, share, salt)


def buckets(customer_ids: Iterable, salt: str) -> np.ndarray:
    """Each customer id's point in [0, 1): the first 8 bytes of SHA-256 of ``salt:id`` over 2**64.

    >>> buckets(["12347"], "s1").round(6).tolist() == buckets(["12347"], "s1").round(6).tolist()
    True
    """
    prefix = f"{salt}:".encode()
    points = [int.from_bytes(hashlib.sha256(prefix + str(c).encode()).digest()[:8], "big") for c in customer_ids]
    return np.asarray(points, dtype="float64") / 2.0**64


def assign_arms(customer_ids: Iterable, rollout: Rollout) -> np.ndarray:
    """``'champion'`` or ``'challenger'`` for each customer id, in order: the challenger below the share in canary and A/B.

    >>> assign_arms(["1", "2"], Rollout("shadow")).tolist()
    ['champion', 'champion']
    """
    ids = list(customer_ids)
    arms = np.full(len(ids), CHAMPION_ARM, dtype=object)
    if rollout.splits and ids:
        arms[buckets(ids, rollout.salt) < rollout.share] = CHALLENGER_ARM
    return arms
