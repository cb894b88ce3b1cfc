"""Group runs that differ only in their seed, and find each group's small-batch reference."""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field

from batchgap_analysis.records import Run, how_it_ran

log = logging.getLogger(__name__)

# Keys that follow the batch size within one study: the lr by the scaling rule, epochs and
# milestones by regime adaptation, accumulation by the device count. Groups that differ only in
# these (and in remedies) are compared against each other. Warmup is not among them: under
# scaling.* it counts as a remedy (Goyal et al.'s gradual warmup).
BATCH_LEAVES = frozenset(
    {
        "global_batch_size",
        "per_device_batch_size",
        "batch_size",
        "lr",
        "max_epochs",
        "epochs",
        "max_steps",
        "milestones",
        "lr_milestones",
        "accumulate_grad_batches",
    }
)

# Limitation: an lr swept at one batch size reads as batch-dependent, not as a study of its own.

# Keys that switch a remedy on at a given batch size (Hoffer et al. 2017: sqrt-lr scaling, ghost
# batch norm, regime adaptation; per-device BN under DDP is a form of ghost BN).
REMEDY_ROOTS = frozenset({"scaling", "regime"})
REMEDY_LEAVES = frozenset({"norm", "ghost_batch_size", "sync_batchnorm", "devices", "num_nodes"})

# Names that label a condition without defining it. Any other key that the batch size and the
# remedies determine (one value per combination) is read as a label too.
LABEL_LEAVES = frozenset({"experiment_name", "remedy"})


@dataclass
class Group:
    """Runs that share every config value but the seed."""

    id: int
    label: str
    batch_size: int
    values: dict
    study: tuple
    remedy: tuple
    runs: list[Run] = field(default_factory=list)
    reference: int | None = None  # the smallest-batch group of the same study
    baseline: int | None = None  # the group at this batch with the reference's remedies

    @property
    def seeds(self) -> list:
        return [r.summary.get("seed", r.config.get("seed")) for r in self.runs]

    @property
    def is_reference(self) -> bool:
        return self.reference == self.id

    @property
    def is_remedy(self) -> bool:
        return self.baseline is not None and self.baseline != self.id


@dataclass
class Grouping:
    """All groups, the config keys that vary between runs, and how each key was read."""

    groups: list[Group]
    varying: list[str]
    study_keys: list[str] = field(default_factory=list)
    # The study keys labels show: a config group's `name` stands for the settings it fixes.
    study_label_keys: list[str] = field(default_factory=list)
    remedy_keys: list[str] = field(default_factory=list)
    label_keys: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def study_label(self, group: Group) -> str:
        """What sets a group's study apart from the others ("" when there is one study)."""
        return " ".join(f"{short_name(k)}={_show(group.values[k])}" for k in self.study_label_keys)

    def by_id(self, group_id: int | None) -> Group | None:
        return next((g for g in self.groups if g.id == group_id), None)


def is_ignored(key: str) -> bool:
    """Seeds and keys that only say how or where a run ran (paths.*, hydra.*, *dir, *path,
    *root, threads, loggers, checkpoints, progress bar) never define a group."""
    return key.split(".")[-1] == "seed" or how_it_ran(key)


def group_runs(runs: list[Run]) -> Grouping:
    """Group runs by every config key whose value differs between runs, except ignored ones."""
    configs = [set(r.config) for r in runs]
    if runs and all(r.has_config for r in runs):
        # Every run's whole config is known: a key only some runs have (a `+key` setting, a
        # GAN's objective beside a classifier, a debug run's batch limit) is a setting that
        # differs, read as none where it is absent. records.load_records notes such keys.
        pool = set.union(*configs)
    else:
        # Runs read from summary.json alone hold a few keys: group by those every run has.
        pool = set.intersection(*configs) if runs else set()
    keys = sorted(k for k in pool if not is_ignored(k))
    varying = [k for k in keys if len({_value(r, k) for r in runs}) > 1]
    batch_keys = [k for k in varying if _leaf(k) in BATCH_LEAVES]
    label_keys = [k for k in varying if _leaf(k) in LABEL_LEAVES and k not in batch_keys]
    remedy_keys = [
        k
        for k in varying
        if k not in batch_keys
        and k not in label_keys
        and (k.split(".")[0] in REMEDY_ROOTS or _leaf(k) in REMEDY_LEAVES)
    ]
    candidates = [k for k in varying if k not in {*batch_keys, *label_keys, *remedy_keys}]
    label_keys += [k for k in candidates if _determined(runs, k, remedy_keys)]
    study_keys = [k for k in candidates if k not in label_keys]

    members: dict[tuple, list[Run]] = defaultdict(list)
    for run in runs:
        members[(run.batch_size, *(_value(run, k) for k in varying))].append(run)

    groups = []
    for (batch, *values), same in members.items():
        named = dict(zip(varying, values, strict=True))
        groups.append(
            Group(
                id=0,
                label="",
                batch_size=batch,
                values=named,
                study=tuple(named[k] for k in study_keys),
                remedy=tuple(named[k] for k in remedy_keys),
                runs=sorted(same, key=lambda r: _sortable(r.summary.get("seed"))),
            )
        )
    # Within a study: by batch, then by how many remedies a group adds to the smallest batch's
    # settings, so tables read small batch, large batch, then the remedies in turn.
    smallest = {}
    for group in sorted(groups, key=lambda g: g.batch_size, reverse=True):
        smallest[_sortable(group.study)] = dict(zip(remedy_keys, group.remedy, strict=True))
    groups.sort(
        key=lambda g: (
            _sortable(g.study),
            g.batch_size,
            _distance(g.remedy, tuple(smallest[_sortable(g.study)].values())),
            _sortable(g.remedy),
        )
    )
    for number, group in enumerate(groups, start=1):
        group.id = number

    shown = _naming_keys(groups, study_keys)
    grouping = Grouping(groups, varying, study_keys, shown, remedy_keys, label_keys)
    others = [k for k in varying if _leaf(k) != "global_batch_size"]
    _label(groups, shown, remedy_keys, others, smallest)
    _link_references(grouping)
    log.info("%d runs in %d groups; varying keys: %s", len(runs), len(groups), varying or "none")
    return grouping


def _link_references(grouping: Grouping) -> None:
    studies: dict[tuple, list[Group]] = defaultdict(list)
    for group in grouping.groups:
        studies[_sortable(group.study)].append(group)

    for members in studies.values():
        smallest = min(g.batch_size for g in members)
        candidates = [g for g in members if g.batch_size == smallest]
        ambiguous = set()
        for group in members:
            # The closest settings first, then the most seeds, then the first in table order.
            ranked = sorted(
                candidates,
                key=lambda c: (_distance(c.remedy, group.remedy), -len(c.runs), c.id),
            )
            group.reference = ranked[0].id
            tied = [c for c in ranked if _distance(c.remedy, group.remedy) == 0]
            if len(ranked) > 1 and len(tied) != 1:
                ambiguous.add(ranked[0].id)
        if ambiguous:
            names = ", ".join(repr(c.label) for c in candidates)
            used = ", ".join(repr(grouping.by_id(i).label) for i in sorted(ambiguous))
            grouping.notes.append(
                f"the smallest batch {smallest} has {len(candidates)} groups ({names}) and "
                f"the remedies do not pick one; compared against {used}"
            )

        for group in members:
            reference = grouping.by_id(group.reference)
            plain = [
                g
                for g in members
                if g.batch_size == group.batch_size and g.remedy == reference.remedy
            ]
            group.baseline = plain[0].id if len(plain) == 1 else None


def _label(groups: list[Group], study_keys, remedy_keys, other_keys, smallest) -> None:
    # Short labels name the batch, the study, and only the remedies a group adds to its study's
    # smallest batch ("B=512 rule=sqrt"); groups that still share a label get the keys in which
    # they differ ("epochs=3").
    names = [short_name(k) for k in other_keys]
    short = {k: (short_name(k) if names.count(short_name(k)) == 1 else k) for k in other_keys}
    remedy_keys = sorted(remedy_keys, key=_remedy_order)

    def make(group: Group, keys) -> str:
        parts = [f"B={group.batch_size}"]
        parts += [f"{short[k]}={_show(group.values[k])}" for k in keys]
        return " ".join(parts)

    def basic(group: Group) -> list[str]:
        base = smallest[_sortable(group.study)]
        return [*study_keys, *(k for k in remedy_keys if group.values[k] != base[k])]

    clashes: dict[str, list[Group]] = defaultdict(list)
    for group in groups:
        clashes[make(group, basic(group))].append(group)
    for same in clashes.values():
        extra = [k for k in other_keys if len({_sortable(g.values[k]) for g in same}) > 1]
        for group in same:
            keys = basic(group)
            group.label = make(group, keys + [k for k in extra if k not in keys])

    labels = [g.label for g in groups]
    for group in groups:
        if labels.count(group.label) > 1:
            group.label += f" #{group.id}"


def short_name(key: str) -> str:
    """A key's name in labels: its leaf, or its parent for `*.name` (regime.name -> regime)."""
    parts = key.split(".")
    if parts[-1] == "name" and len(parts) > 1:
        return parts[-2]
    return _SHORT.get(parts[-1], parts[-1])


_SHORT = {"ghost_batch_size": "ghost", "global_batch_size": "B"}


def _remedy_order(key: str) -> tuple:
    # The order Hoffer et al. add remedies in: lr scaling, ghost batch norm, regime adaptation.
    root, leaf = key.split(".")[0], key.split(".")[-1]
    rank = 0 if root == "scaling" else 1 if leaf in REMEDY_LEAVES else 2 if root == "regime" else 3
    return rank, key


def _naming_keys(groups: list[Group], keys: list[str]) -> list[str]:
    """The `*.name` keys among `keys`, and the keys whose values those names do not fix."""
    names = [k for k in keys if _leaf(k) == "name"]

    def named_by_choice(key: str) -> bool:
        seen: dict[tuple, object] = {}
        for group in groups:
            cell = tuple(_sortable(group.values[n]) for n in names)
            value = _sortable(group.values[key])
            if seen.setdefault(cell, value) != value:
                return False
        return True

    return [k for k in keys if k in names or not (names and named_by_choice(k))]


def _determined(runs: list[Run], key: str, by: list[str]) -> bool:
    """Whether the batch size and the `by` keys fix the value of key in every run."""
    seen: dict[tuple, object] = {}
    for run in runs:
        cell = (run.batch_size, *(_value(run, k) for k in by))
        if seen.setdefault(cell, _value(run, key)) != _value(run, key):
            return False
    return True


def _distance(a: tuple, b: tuple) -> int:
    return sum(x != y for x, y in zip(a, b, strict=True))


def _value(run: Run, key: str):
    return run.config.get(key)


def _leaf(key: str) -> str:
    return key.split(".")[-1]


def _show(value) -> str:
    if value is None:
        return "none"
    if isinstance(value, tuple):
        return "[" + ",".join(_show(v) for v in value) + "]"
    return str(value)


def _sortable(value):
    # Config values mix None, numbers and strings; sort by type name first so they compare.
    if isinstance(value, tuple):
        return tuple(_sortable(v) for v in value)
    if isinstance(value, bool | int | float):
        return ("0", float(value), "")
    return ("1" if value is None else "2", 0.0, str(value))
