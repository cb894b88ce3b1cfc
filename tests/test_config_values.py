"""Range checks of every setting, and the sweep expansion that runs them on each job up front."""

import pytest
from conftest import compose

from batchgap.cli_checks import JobComposer, check_jobs, sweep_jobs
from batchgap.config_values import check_values
from batchgap.errors import ConfigError


@pytest.mark.parametrize(
    "override, expected",
    [
        ("seed=abc", "seed='abc' is invalid; it must be an integer in [0, 4294967295]"),
        ("seed=-1", "seed=-1 is invalid; it must be an integer in [0, 4294967295]"),
        ("seed=4294967296", "seed=4294967296 is invalid"),
        ("num_threads=0", "num_threads=0 is invalid; it must be null or an integer >= 1"),
        ("data.eval_batch_size=0", "data.eval_batch_size=0 is invalid"),
        ("data.val_fraction=1.5", "data.val_fraction=1.5 is invalid"),
        ("data.val_fraction=0.5 data.test_fraction=0.5", "leave no training data"),
        ("model.width=0", "model.width=0 is invalid; it must be an integer >= 1"),
        ("model.depth=-1", "model.depth=-1 is invalid; it must be an integer >= 0"),
        ("model=convnet model.hidden=0", "model.hidden=0 is invalid"),
        ("model.dropout=1.0", "model.dropout=1.0 is invalid; it must be a number in [0, 1)"),
        ("optim.lr=inf", "optim.lr=inf is invalid; it must be a finite positive number"),
        ("optim.gradient_clip_norm=0", "optim.gradient_clip_norm=0 is invalid"),
        ("scaling.warmup_epochs=-1", "scaling.warmup_epochs=-1 is invalid"),
        ("early_stop.val_err_below=-1", "early_stop.val_err_below=-1 is invalid"),
        ("noise_scale.ema_decay=2", "noise_scale.ema_decay=2 is invalid"),
        ("trainer.precision=foo", "trainer.precision='foo' is invalid; it must be one of 32-true"),
        ("trainer=ddp_cpu data.global_batch_size=2", "needs at least 2 examples per device"),
        ("data.global_batch_size=0", "data.global_batch_size=0 is invalid"),
        ("data.global_batch_size=abc", "data.global_batch_size='abc' is invalid; it must be a"),
        ("data.global_batch_size=64x", "data.global_batch_size='64x' is invalid"),
    ],
)
def test_a_setting_out_of_range_is_one_line_naming_it(override, expected):
    with pytest.raises(ConfigError) as caught:
        check_values(compose(*override.split()))
    message = str(caught.value)
    assert expected in message and "\n" not in message


@pytest.mark.parametrize(
    "overrides",
    [
        [],
        ["experiment=hoffer_digits", "remedy=lb_lr_gbn_ra"],
        ["experiment=critical_batch_digits"],
        ["task=gan", "gan_objective=wgan_gp"],
        ["data=mnist", "model=f1"],
        ["trainer=ddp_cpu", "model.norm=ghost_bn", "model.ghost_batch_size=16"],
    ],
)
def test_the_presets_pass(overrides):
    check_values(compose(*overrides))


def test_sweep_jobs_follow_hydras_basic_sweeper():
    params = {"data.global_batch_size": "16,64", "seed": "0,1,2"}
    jobs = sweep_jobs(["seed=range(3,5)", "experiment=digits_sweep"], params)

    # The command line replaces the experiment's seeds; keys keep their first-seen order.
    assert jobs == [
        [f"data.global_batch_size={b}", f"seed={s}", "experiment=digits_sweep"]
        for b in (16, 64)
        for s in (3, 4)
    ]
    assert sweep_jobs(["hydra/launcher=parallel", "a=1"]) == [["a=1"]]
    assert sweep_jobs(["x=['a,b','c']"]) == [["x=['a,b','c']"]]


@pytest.mark.parametrize(
    "experiment", ["digits_sweep", "hoffer_digits", "critical_batch_digits", "gan_digits_sweep"]
)
def test_composed_once_per_choice_each_job_equals_hydras_own_compose(experiment):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module
    from omegaconf import OmegaConf

    with initialize_config_module(config_module="batchgap.conf", version_base="1.3"):
        first = hydra_compose(
            config_name="config", overrides=[f"experiment={experiment}"], return_hydra_config=True
        )
        params = OmegaConf.to_container(first.hydra.sweeper.params)
        jobs = sweep_jobs([f"experiment={experiment}", "optim.gradient_clip_norm=2.0"], params)
        composer = JobComposer()
        for job in jobs:
            fast = OmegaConf.to_container(composer(job), resolve=True)
            whole = hydra_compose(config_name="config", overrides=job)
            assert fast == OmegaConf.to_container(whole, resolve=True), job
    assert len(composer.bases) < len(jobs)


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["data.global_batchsize=64"], "no such setting; did you mean data.global_batch_size?"),
        (["optim.lrr=0.1"], "optim.lrr=0.1: no such setting; did you mean optim.lr?"),
        (["dat=digits"], "dat=digits: no such setting; did you mean data?"),
        (["-m", "model.widht=8,16"], "no such setting; did you mean model.width?"),
        (["remedy=lb"], "remedy=lb is chosen on top of experiment=hoffer_digits"),
        (["gan_objective=wgan"], "use task=gan gan_objective=wgan"),
        (["+data.global_batchsize=512"], "adds a setting batchgap never reads"),
        (["+foo=1"], "+foo=1 adds a setting batchgap never reads"),
        (["trainer.devcies=2"], "did you mean trainer.devices?"),
        (["optim.optimizer.nesterov=true"], "add it with +optim.optimizer.nesterov=true"),
        (["gan_objective.n_critic=2"], "use task=gan gan_objective.n_critic=2"),
        (["study.large_batch_size=256"], "on top of experiment=hoffer_digits"),
        (["+trainer.max_epochs=3"], "trainer.max_epochs is set by batchgap from regime.epochs"),
        (["trainer.max_epochs=3"], "trainer.max_epochs is set by batchgap from regime.epochs"),
        (["hydra.launcher.n_jobs=2"], "this launcher has no such setting"),
        (
            ["+optim.optimizer.nesterv=true"],
            "torch.optim.SGD takes no argument 'nesterv'; did you mean optim.optimizer.nesterov?",
        ),
        (["+trainer.profler=simple"], "Lightning's Trainer takes no argument 'profler'"),
        (
            ["-m", "hydra/launcher=parallel", "hydra.launcher.n_job=2", "seed=0,1"],
            "did you mean hydra.launcher.n_jobs?",
        ),
    ],
)
def test_a_misspelt_or_unread_key_is_one_line_naming_the_nearest(argv, expected):
    with pytest.raises(ConfigError) as caught:
        check_jobs(argv)
    assert expected in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize(
    "argv",
    [
        ["+optim.optimizer.nesterov=true"],  # reaches torch.optim.SGD through its _target_
        ["+trainer.profiler=simple"],  # reaches Lightning's Trainer
        ["++seed=3"],  # an existing key: an ordinary override
        ["experiment=hoffer_digits", "remedy=lb"],
        ["task=gan", "gan_objective=wgan"],
        ["task=gan", "+gan_objective.generator.optimizer.weight_decay=0.1"],
        ["-m", "hydra/launcher=parallel", "hydra.launcher.n_jobs=2", "seed=0,1"],
        ["-m", "hydra/launcher=slurm", "hydra.launcher.partition=gpu", "seed=0,1"],
    ],
)
def test_keys_that_something_reads_pass(argv):
    check_jobs(argv)


def test_a_glob_over_a_group_expands_to_its_options_as_hydra_does():
    jobs = sweep_jobs(["experiment=hoffer_digits", "remedy=glob(lb*)"])
    assert [job[1] for job in jobs] == [
        "remedy=lb",
        "remedy=lb_lr",
        "remedy=lb_lr_gbn",
        "remedy=lb_lr_gbn_ra",
    ]
    check_jobs(["-m", "experiment=hoffer_digits", "remedy=glob(lb*)"])
