"""Loading run records: every unusable run is excluded with a reason, the rest still loads."""

import json

import pytest
from analysis_fixtures import hoffer_study, write_run

from batchgap_analysis.groups import group_runs
from batchgap_analysis.records import NoRunsError, load_records


def _reasons(records) -> dict:
    return {e.path.name: e.reason for e in records.excluded}


def test_hydra_multirun_is_read_and_grouped_without_seed_or_paths(tmp_path):
    hoffer_study(tmp_path, seeds=2)

    records = load_records([tmp_path])
    grouping = group_runs(records.runs)

    assert len(records.runs) == 10 and not records.excluded
    assert [g.label for g in grouping.groups] == [
        "B=16",
        "B=256",
        "B=256 rule=sqrt",
        "B=256 rule=sqrt ghost=16",
        "B=256 rule=sqrt ghost=16 regime=adapted",
    ]
    assert all(len(g.runs) == 2 for g in grouping.groups)
    assert not any(k.startswith(("paths.", "hydra.")) or k == "seed" for k in grouping.varying)
    reference, large = grouping.groups[0], grouping.groups[1]
    assert all(g.reference == reference.id for g in grouping.groups)
    assert [g.is_remedy for g in grouping.groups] == [False, False, True, True, True]
    assert all(g.baseline == large.id for g in grouping.groups[1:])


def test_names_of_conditions_do_not_split_the_study(tmp_path):
    # Hoffer-style sweeps name each row (`remedy: lb_lr`); a free-form tag works the same way.
    for job, (name, batch, rule) in enumerate(
        [("sb", 16, "none"), ("lb", 256, "none"), ("lb_lr", 256, "sqrt")]
    ):
        config = {"remedy": name, "tag": f"row-{name}", "scaling.rule": rule}
        write_run(tmp_path / str(job), batch_size=batch, config=config)
    write_run(tmp_path / "3", batch_size=16, seed=1, config={"remedy": "sb", "tag": "row-sb"})

    grouping = group_runs(load_records([tmp_path]).runs)

    assert sorted(grouping.label_keys) == ["remedy", "tag"]
    assert grouping.study_keys == []
    assert [g.label for g in grouping.groups] == ["B=16", "B=256", "B=256 rule=sqrt"]
    assert [len(g.runs) for g in grouping.groups] == [2, 1, 1]
    assert all(g.reference == 1 for g in grouping.groups)


def test_a_key_that_varies_at_one_batch_separates_studies(tmp_path):
    for job, (dataset, batch) in enumerate([("digits", 16), ("digits", 64), ("mnist", 16)]):
        write_run(tmp_path / str(job), batch_size=batch, config={"data.name": dataset})

    grouping = group_runs(load_records([tmp_path]).runs)

    assert grouping.study_keys == ["data.name"]
    labels = {g.label: grouping.by_id(g.reference).label for g in grouping.groups}
    assert labels == {
        "B=16 data=digits": "B=16 data=digits",
        "B=64 data=digits": "B=16 data=digits",
        "B=16 data=mnist": "B=16 data=mnist",
    }


def test_a_config_choice_stands_for_the_settings_it_fixes_in_labels(tmp_path):
    # A GAN study sweeps gan_objective; its betas and critic steps follow from that choice.
    objectives = {"wgan_gp": (5, 0.0), "non_saturating": (1, 0.5)}
    for job, (name, batch) in enumerate([(o, b) for o in objectives for b in (16, 64)]):
        n_critic, beta1 = objectives[name]
        config = {"gan_objective.name": name, "gan_objective.n_critic": n_critic}
        config["gan_objective.beta1"] = beta1
        write_run(tmp_path / str(job), batch_size=batch, config=config)

    grouping = group_runs(load_records([tmp_path]).runs)

    assert len(grouping.study_keys) == 3
    assert grouping.study_label_keys == ["gan_objective.name"]
    assert sorted(g.label for g in grouping.groups) == [
        "B=16 gan_objective=non_saturating",
        "B=16 gan_objective=wgan_gp",
        "B=64 gan_objective=non_saturating",
        "B=64 gan_objective=wgan_gp",
    ]


def test_a_single_run_directory_is_valid_input(tmp_path):
    run = write_run(tmp_path / "one")
    records = load_records([run])
    assert [r.path for r in records.runs] == [run]


def test_corrupt_runs_are_excluded_with_reasons_and_the_rest_loads(tmp_path):
    for seed in range(2):
        write_run(tmp_path / f"good{seed}", seed=seed)
    (write_run(tmp_path / "notjson") / "summary.json").write_text("{'status': oops")
    weights = write_run(tmp_path / "cut") / "weights.csv"
    weights.write_bytes(weights.read_bytes()[:-7])
    short = write_run(tmp_path / "short") / "weights.csv"
    lines = short.read_text().splitlines(keepends=True)
    short.write_text("".join(lines[: len(lines) // 2]))
    (write_run(tmp_path / "noweights") / "weights.csv").unlink()
    header = write_run(tmp_path / "header") / "weights.csv"
    header.write_text(header.read_text().splitlines()[0] + "\n")
    write_run(tmp_path / "diverged", status="diverged")
    write_run(tmp_path / "running", status="running")
    (tmp_path / "empty").mkdir()

    records = load_records([tmp_path])

    assert sorted(r.path.name for r in records.runs) == ["good0", "good1"]
    reasons = _reasons(records)
    assert "not JSON" in reasons["notjson"]
    assert "truncated (last line incomplete)" in reasons["cut"]
    assert "truncated: ends at update" in reasons["short"]
    assert reasons["noweights"] == "no weights.csv"
    assert "no rows" in reasons["header"]
    assert reasons["diverged"] == "status 'diverged': loss is nan"
    assert reasons["running"].startswith("status 'running'")
    assert all("\n" not in r for r in reasons.values())


def test_a_summary_that_is_a_list_is_excluded(tmp_path):
    (write_run(tmp_path / "list") / "summary.json").write_text(json.dumps([1, 2]))
    write_run(tmp_path / "ok")
    assert _reasons(load_records([tmp_path])) == {"list": "summary.json is not a JSON object"}


def test_directory_without_runs_raises_a_one_line_error(tmp_path):
    (tmp_path / "nothing").mkdir()
    with pytest.raises(NoRunsError, match="no runs under") as err:
        load_records([tmp_path / "nothing"])
    assert "\n" not in str(err.value)


def test_an_empty_directory_beside_a_sweep_is_noted_not_fatal(tmp_path):
    write_run(tmp_path / "sweep" / "0")
    (tmp_path / "other").mkdir()
    records = load_records([tmp_path / "sweep", tmp_path / "other"])
    assert len(records.runs) == 1
    assert any("no runs found" in n for n in records.notes)


def test_missing_config_falls_back_to_summary_and_mismatched_keys_are_noted(tmp_path):
    write_run(tmp_path / "a", batch_size=16)
    write_run(tmp_path / "b", batch_size=64, write_config=False)
    write_run(tmp_path / "c", batch_size=64, config={"trainer.gradient_clip_val": 5.0})

    records = load_records([tmp_path])
    grouping = group_runs(records.runs)

    assert len(records.runs) == 3
    assert any("no config.yaml" in n for n in records.notes)
    assert any("mismatched config keys" in n for n in records.notes)
    # Keys only some runs have do not split groups: both batch-64 runs are one group.
    assert [(g.batch_size, len(g.runs)) for g in grouping.groups] == [(16, 1), (64, 2)]


def test_gan_runs_expose_one_curve_per_network(tmp_path):
    run = write_run(tmp_path / "gan", networks=("generator", "discriminator"))
    (loaded,) = load_records([run]).runs
    assert loaded.networks == ["generator", "discriminator"]


def test_groups_that_share_a_label_get_the_keys_they_differ_in(tmp_path):
    write_run(tmp_path / "0", batch_size=16, config={"regime.epochs": 3})
    write_run(tmp_path / "1", batch_size=16, config={"regime.epochs": 30})
    write_run(tmp_path / "2", batch_size=64, config={"regime.epochs": 30})

    grouping = group_runs(load_records([tmp_path]).runs)

    assert [g.label for g in grouping.groups] == ["B=16 epochs=3", "B=16 epochs=30", "B=64"]
    (note,) = grouping.notes
    assert "smallest batch 16 has 2 groups" in note and "\n" not in note


def test_a_repeated_run_is_excluded_not_counted_as_another_seed(tmp_path):
    # The same sweep launched twice: seeds 0 and 1 again, with other threads and output paths.
    for sweep, seeds in (("first", (0, 1, 2)), ("again", (0, 1))):
        for seed in seeds:
            config = {"num_threads": 1 + len(sweep), "output_root": f"/out/{sweep}"}
            write_run(tmp_path / sweep / str(seed), seed=seed, config=config)

    records = load_records([tmp_path / "first", tmp_path / "again"])
    (group,) = group_runs(records.runs).groups

    assert sorted(group.seeds) == [0, 1, 2]
    assert sorted(str(e.path.relative_to(tmp_path)) for e in records.excluded) == [
        "again/0",
        "again/1",
    ]
    assert all("a repeat of" in e.reason and "first" in e.reason for e in records.excluded)


def test_debug_runs_cut_short_are_noted(tmp_path):
    write_run(tmp_path / "0", config={"trainer.limit_train_batches": 3})
    records = load_records([tmp_path])
    assert any("trainer.limit_train_batches" in note for note in records.notes)


def test_a_key_only_some_runs_have_splits_their_group(tmp_path):
    # `+optim.optimizer.nesterov=true` on two seeds beside plain SGD on the same two seeds.
    for seed in (0, 1):
        write_run(tmp_path / f"plain{seed}", seed=seed)
        write_run(tmp_path / f"nesterov{seed}", seed=seed, config={"optim.nesterov": True})

    records = load_records([tmp_path])
    groups = group_runs(records.runs).groups

    assert not records.excluded
    assert sorted(sorted(r.path.name for r in g.runs) for g in groups) == [
        ["nesterov0", "nesterov1"],
        ["plain0", "plain1"],
    ]
    assert all(sorted(g.seeds) == [0, 1] for g in groups)
    assert any("grouped apart" in note for note in records.notes)


def test_runs_known_from_their_summary_alone_are_never_called_repeats(tmp_path):
    # Without config.yaml, runs that differ in settings the summary omits look alike.
    for name in ("a", "b"):
        write_run(tmp_path / name, seed=0, write_config=False)
    records = load_records([tmp_path])
    assert len(records.runs) == 2 and not records.excluded


def test_a_gan_studys_metric_classifier_is_not_read_as_a_study_run(tmp_path):
    write_run(tmp_path / "study" / "0")
    write_run(tmp_path / "metric_classifiers" / "digits-1", config={"experiment_name": "x"})
    summary_path = tmp_path / "metric_classifiers" / "digits-1" / "summary.json"
    summary = json.loads(summary_path.read_text())
    summary_path.write_text(json.dumps({**summary, "experiment_name": "metric_classifier"}))

    records = load_records([tmp_path])
    assert [r.path.name for r in records.runs] == ["0"]
    assert "metric classifier" in records.excluded[0].reason


def test_how_a_run_ran_never_splits_a_group(tmp_path):
    write_run(tmp_path / "0", seed=0, config={"trainer.enable_progress_bar": None})
    write_run(
        tmp_path / "1",
        seed=1,
        config={
            "trainer.enable_progress_bar": False,
            "checkpoint.every_n_epochs": 5,
            "num_threads": 2,
        },
    )
    (group,) = group_runs(load_records([tmp_path]).runs).groups
    assert sorted(group.seeds) == [0, 1]
