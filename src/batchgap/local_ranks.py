"""Start a node's ranks by forking the job's process, and end them all if one fails.

Each forked rank runs the whole job (fit, test, records) with its own LOCAL_RANK, so Lightning
sees processes created outside it and never re-executes the command line; the parent only
waits. Forking is fast, hands the config over without pickling, and happens before CUDA is
initialized (see `batchgap.distributed`).
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import pickle
import signal
import sys
import time
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection, wait

from lightning.fabric.plugins.environments.lightning import find_free_network_port
from lightning.pytorch.utilities import rank_zero_only

from batchgap.distributed import Placement
from batchgap.errors import ConfigError

# Seconds the surviving ranks get to notice a failed peer and record the failure themselves.
FAILURE_GRACE_S = 10.0
_PR_SET_PDEATHSIG = 1


class RankFailure(RuntimeError):
    """A forked rank raised or was killed; the message names the rank and how it ended."""


def _die_with_parent() -> None:
    """Ask Linux to kill this rank if the parent dies, so no orphan holds the process group."""
    # Limitation: a parent killed outright (SIGKILL, SIGTERM) leaves summary.json at `running`.
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        # Limitation: off Linux an orphaned rank lives until its process group times out.
        return


def _run_rank(
    local_rank: int, environment: dict, report: Connection, job: Callable, args: tuple
) -> None:
    """Body of one forked rank: become that rank, run the job, report how it ended."""
    _die_with_parent()
    os.environ.update(environment)
    rank_zero_only.rank = int(environment["RANK"])
    try:
        result = job(*args)
    except ConfigError as err:
        _send(report, ("config", str(err)))
        sys.exit(2)
    except BaseException as err:
        traceback.print_exc()
        _send(report, ("error", f"{type(err).__name__}: {err}"))
        sys.exit(1)
    _send(report, ("ok", result))


def _send(report: Connection, message: tuple) -> None:
    # Plain pickle: multiprocessing's would pass tensors as shared memory that dies with the rank.
    report.send_bytes(pickle.dumps(message))


def _how_it_ended(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        return f"was killed by {signal.Signals(-exitcode).name}"
    return f"exited with code {exitcode}"


def _stop(processes: list) -> None:
    """Give live ranks a shared grace period to finish on their own, then kill them."""
    deadline = time.monotonic() + FAILURE_GRACE_S
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
    for process in processes:
        if process.is_alive():
            process.kill()
            process.join()


def _wait_for_first_failure(ranks: list, reports: list) -> tuple[int | None, list]:
    """Wait until every rank has ended or one has failed; collect the reports sent meanwhile.

    Returns the failed local rank (None when all succeeded) and each rank's report so far.
    """
    outcomes: list = [None] * len(ranks)
    ended = {process.sentinel: local for local, process in enumerate(ranks)}
    # Reports are read as they come, so a large one cannot block its sender's exit.
    unread = {report: local for local, report in enumerate(reports)}
    while ended:
        failures = []
        for ready in wait([*ended, *unread]):
            if ready in unread:
                local = unread.pop(ready)
                # EOF: the rank ended without a report (killed); its exit code tells the rest.
                with contextlib.suppress(EOFError):
                    outcomes[local] = pickle.loads(ready.recv_bytes())
                continue
            local = ended.pop(ready)
            ranks[local].join()
            if ranks[local].exitcode != 0:
                failures.append(local)
        if failures:
            # Of ranks ending together, one killed by a signal is the cause, not a casualty.
            return min(failures, key=lambda local: ranks[local].exitcode >= 0), outcomes
    for report, local in unread.items():
        with contextlib.suppress(EOFError):
            if report.poll():
                outcomes[local] = pickle.loads(report.recv_bytes())
    return None, outcomes


def start_local_ranks(placement: Placement, job: Callable, *args):
    """Run `job(*args)` once per local rank in forked processes; return local rank 0's result.

    Raises ConfigError when a rank rejected the config, RankFailure when a rank failed; in
    both cases every other rank is ended within FAILURE_GRACE_S seconds.
    """
    address = os.environ.get("MASTER_ADDR", "127.0.0.1")
    port = int(os.environ.get("MASTER_PORT") or find_free_network_port())
    context = multiprocessing.get_context("fork")
    ranks, reports = [], []
    for local_rank in range(placement.devices):
        receive, send = context.Pipe(duplex=False)
        environment = placement.rank_environment(local_rank, address, port)
        process = context.Process(
            target=_run_rank,
            args=(local_rank, environment, send, job, args),
            name=f"batchgap-rank{environment['RANK']}",
        )
        process.start()
        send.close()
        ranks.append(process)
        reports.append(receive)

    try:
        failed, outcomes = _wait_for_first_failure(ranks, reports)
    finally:
        _stop([process for process in ranks if process.is_alive()])
    if failed is None:
        return outcomes[0][1]

    kind, detail = outcomes[failed] or ("error", None)
    if kind == "config":
        raise ConfigError(detail)
    rank = placement.node_rank * placement.devices + failed
    ending = _how_it_ended(ranks[failed].exitcode)
    raise RankFailure(f"rank {rank} {ending}" + (f": {detail}" if detail else ""))
