"""Sweeps and regressions on a Dask cluster (:mod:`permdeal.executor`): the same results, value
for value, as on this machine; a worker killed in the middle of a sweep costs only time;
Ctrl-C cancels what is left and leaves no output; a bad scheduler is one line, exit status 2."""

import json
import os
import re
import signal
import threading
import time

import pytest
from distributed import Client, LocalCluster

from permdeal import executor
from permdeal.api.synthesis import synth_sweep
from permdeal.api.verify import verify_config, verify_random
from permdeal.cli import main
from permdeal.synth.flow import SynthOptions

#: What differs from run to run whatever runs it: times, and the output's temporary folder.
TIMES = {"wall_seconds", "build_seconds", "run_seconds", "gen_s", "synth_s", "seconds",
         "yosys_seconds"}
SWEEP = dict(lanes=1, shape="8x8", p="2")
#: The tests that share the cluster run in one pytest-xdist worker (`make test`: --dist loadgroup).
ON_CLUSTER = pytest.mark.xdist_group("dask")


@pytest.fixture(scope="module")
def client():
    """Two worker processes of one thread each on this machine."""
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cluster, \
            Client(cluster, set_as_default=False) as c:
        yield c


def _out(text):
    """``text`` with the output's temporary folder (``/.../.NAME.XXXX.tmp``) as ``OUT``."""
    return re.sub(r"\S*/\.[\w-]+\.\w+\.tmp", "OUT", text)


def same(a, b, path="result", ignore=()):
    """``a`` and ``b`` equal value by value, but for :data:`TIMES` (and ``ignore``) and the
    output's temporary folder."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), path
        for k in a:
            if k not in TIMES and k not in ignore:
                same(a[k], b[k], f"{path}.{k}", ignore)
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            same(x, y, f"{path}[{i}]", ignore)
    elif isinstance(a, str):
        assert isinstance(b, str) and _out(a) == _out(b), (path, a, b)
    else:
        assert a == b, (path, a, b)


def tree(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def sweep(out, ex=None):
    rows, _, _, _, _ = synth_sweep("pes=1,2", {**SWEEP, "output": str(out)}, ["generic"],
                                   SynthOptions(), executor=ex)
    reports = [json.loads((out / "points" / f"pes-{v}" / "report.json").read_text())
               for v in (1, 2)]
    return rows, reports


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory):
    """The reference: the sweep on two local processes."""
    out = tmp_path_factory.mktemp("local") / "sweep"
    return out, sweep(out, executor.Local(2))


@pytest.mark.sim
@ON_CLUSTER
def test_random_configs_are_the_same_on_dask(client, tmp_path, capsys):
    here = verify_random(4, str(tmp_path / "here"), seed=7, jobs=2)
    assert len(here.records) == 4 and not here.failed
    # the command line's --dask, its own client to the cluster's scheduler
    assert main(["verify", "--random-configs", "4", "--seed", "7", "--dask",
                 client.scheduler.address, "-o", str(tmp_path / "there")]) == 0
    assert f"tasks on Dask at {client.scheduler.address}" in capsys.readouterr().out
    a, b = (json.loads((tmp_path / d / "summary.json").read_text()) for d in ("here", "there"))
    same(a, b, ignore={"command"})
    assert [r["command"].replace("/here-", "/there-") for r in a["runs"]] == \
        [r["command"] for r in b["runs"]]
    assert tree(tmp_path / "here") == tree(tmp_path / "there")


@ON_CLUSTER
def test_sweep_is_the_same_on_dask(client, local_sweep, tmp_path):
    out_a, (rows_a, reports_a) = local_sweep
    rows_b, reports_b = sweep(tmp_path / "sweep", executor.Dask(client=client))
    assert [r["status"] for r in rows_b] == ["ok", "ok"] and rows_b[1]["generic_cells"] > 0
    same(rows_a, rows_b)
    same(reports_a, reports_b)
    assert tree(out_a) == tree(tmp_path / "sweep")
    for v in (1, 2):  # the designs too, byte for byte
        rtl = f"points/pes-{v}/design/rtl/permdeal_engine.v"
        assert (out_a / rtl).read_bytes() == (tmp_path / "sweep" / rtl).read_bytes()


@pytest.mark.synth
@ON_CLUSTER
def test_a_worker_killed_mid_sweep_costs_only_time(client, local_sweep, tmp_path):
    killed = []

    def kill_one():  # the first worker seen running a point dies with it
        while not killed:
            busy = {w: keys for w, keys in client.processing().items() if keys}
            if busy:
                worker = next(iter(busy))
                pid = client.run(os.getpid, workers=[worker])[worker]
                os.kill(pid, signal.SIGKILL)
                killed.append((worker, busy[worker]))
            time.sleep(0.05)
    killer = threading.Thread(target=kill_one, daemon=True)
    killer.start()
    rows, reports = sweep(tmp_path / "sweep", executor.Dask(client=client))
    killer.join(timeout=1)
    assert killed and killed[0][1], "no worker was killed while it ran a point"
    out_a, (rows_a, reports_a) = local_sweep
    same(rows_a, rows)  # every point, with the same figures
    same(reports_a, reports)
    assert tree(out_a) == tree(tmp_path / "sweep")


@pytest.mark.sim
@ON_CLUSTER
def test_ctrl_c_cancels_the_rest_and_leaves_nothing(client, tmp_path):
    def interrupt(text):
        if text.startswith("... "):  # the first bench finished
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        verify_config({"pes": 1, "lanes": 2, "shape": "6x5", "p": "2"}, str(tmp_path / "r"),
                      sim="icarus", tests="perm_index,nz_detect,engine_layer", seed=3,
                      progress=interrupt, executor=executor.Dask(client=client))
    assert os.listdir(tmp_path) == []  # no output, no temporary folder
    left = lambda: client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks))
    for _ in range(100):  # the scheduler lets go of the cancelled tasks
        if left() == 0:
            break
        time.sleep(0.1)
    assert left() == 0


@pytest.mark.parametrize("argv, env, message", [
    (["--dask", "localhost:8786"], None,
     "--dask 'localhost:8786': not a scheduler address; give tcp://HOST:PORT"),
    (["--dask", "tcp://127.0.0.1:99999"], None, "not a scheduler address"),
    (["--dask", ""], None, "--dask '': not a scheduler address"),
    ([], "tcp//x", "$PERMDEAL_DASK_SCHEDULER 'tcp//x': not a scheduler address"),
    (["--dask", "tcp://127.0.0.1:9", "-j", "2"], None,
     "-j 2 runs the tasks on this machine and --dask on a Dask cluster; give one of them"),
    (["--dask", "tcp://127.0.0.1:9"], None,
     "--dask tcp://127.0.0.1:9: no Dask scheduler answers there"),
])
def test_bad_scheduler_is_one_line(monkeypatch, tmp_path, capsys, argv, env, message):
    monkeypatch.setattr(executor, "CONNECT_TIMEOUT", 1)
    if env is not None:
        monkeypatch.setenv(executor.ENV, env)
    code = main(["verify", "--random-configs", "1", *argv, "-o", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "r").exists()


def test_dask_not_installed_and_misplaced_flags(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(__import__("sys").modules, "distributed", None)  # import fails
    code = main(["synth", "--sweep", "pes=1,2", "--lanes", "1", "--dask", "tcp://h:8786",
                 "-o", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and "--dask: Dask is not installed; install permdeal[dask]" in err, err
    code = main(["synth", "--pes", "1", "--lanes", "1", "--dask", "tcp://h:8786",
                 "-o", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and "--dask applies to --sweep" in err, err
    assert not (tmp_path / "r").exists()
