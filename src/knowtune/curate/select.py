"""Selection on the training split: quotas per source, a mix of example kinds, top-k by length, sampling.

Only training examples are ever selected from: val, test and knowledge stay
whole, so a selection can be compared with another on the same evaluation.
"""

from __future__ import annotations

import random

from ..config import SelectConfig
from ..records import Example, to_dict
from .steps import Dropped, StepResult


def mix_kind(e: Example) -> str:
    """The kind a mixing ratio speaks of: chat data read as it is counts as "external"."""
    return "external" if e.metadata.get("origin") == "external" else e.kind


def select(examples: list[Example], cfg: SelectConfig, lengths: dict[str, int], seed: int) -> StepResult:
    train = [e for e in examples if e.split == "train"]
    result = StepResult([e for e in examples if e.split != "train"])
    rng = random.Random(seed)

    def drop(keep: list[Example], reason: str) -> list[Example]:
        kept_ids = {e.id for e in keep}
        result.dropped.extend(Dropped("select", reason, to_dict(e)) for e in train_now if e.id not in kept_ids)
        return keep

    train_now = train
    if cfg.quotas:
        train_now = drop(_quotas(train_now, cfg.quotas, rng), "over its source's quota")
    if cfg.mix:
        train_now = drop(_mix(train_now, cfg.mix, rng), "over its kind's share of the mix")
    if cfg.top_k is not None:
        ranked = sorted(train_now, key=lambda e: (-lengths[e.id], e.id))
        train_now = drop(ranked[: cfg.top_k], f"not among the {cfg.top_k} longest")
    if cfg.sample is not None:
        k = int(cfg.sample) if cfg.sample >= 1 else round(cfg.sample * len(train_now))
        if k < len(train_now):
            train_now = drop(rng.sample(sorted(train_now, key=lambda e: e.id), k), "not in the random sample")
    keep = {e.id for e in train_now}
    result.kept += [e for e in train if e.id in keep]
    return result


def _quotas(train: list[Example], quotas: dict[str, int], rng: random.Random) -> list[Example]:
    keep, groups = [], {}
    for e in train:
        source = e.metadata.get("source", "")
        key = source if source in quotas else source.split(":")[0] if source.split(":")[0] in quotas else None
        if key is None:
            keep.append(e)
        else:
            groups.setdefault(key, []).append(e)
    for key, group in sorted(groups.items()):
        group = sorted(group, key=lambda e: e.id)
        keep += group if len(group) <= quotas[key] else rng.sample(group, quotas[key])
    return keep


def _mix(train: list[Example], mix: dict[str, float], rng: random.Random) -> list[Example]:
    """Downsample kinds so each named kind is its share of the result (kinds not named are left out)."""
    by_kind: dict[str, list[Example]] = {}
    for e in train:
        by_kind.setdefault(mix_kind(e), []).append(e)
    # A named kind with no examples at all is left out of the mix rather than emptying every other kind.
    named = {k: v for k, v in mix.items() if v > 0 and by_kind.get(k)}
    total = sum(named.values())
    shares = {k: v / total for k, v in named.items()}
    # The largest total every kind can still fill at its share.
    size = min((len(by_kind.get(k, [])) / s for k, s in shares.items()), default=0)
    keep = []
    for kind, share in sorted(shares.items()):
        group = sorted(by_kind.get(kind, []), key=lambda e: e.id)
        keep += rng.sample(group, min(len(group), round(size * share)))
    return keep
