"""SIGTERM (what ``timeout``, CI runners and schedulers send) and SIGINT in the middle of compress,
rom, gen, sim, verify and synth leave nothing behind: no output folder, no ``.NAME.*.tmp`` folder
beside it, nothing in the temporary folder, and the exit status says which signal it was."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from permdeal.cli import main

#: Exit status of each signal (128 + its number, as the shell reports it).
STATUS = {signal.SIGTERM: 143, signal.SIGINT: 130}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A float model big enough that compressing it takes seconds, its PD compression, a design."""
    d = tmp_path_factory.mktemp("signals")
    rng = np.random.default_rng(0)
    np.savez(d / "big.npz", **{"fc1.weight": rng.standard_normal((2048, 2048)),
                               "fc1.bias": np.zeros(2048)})
    np.savez(d / "m.npz", **{"fc1.weight": rng.standard_normal((64, 96)) * 0.2,
                             "fc1.bias": np.zeros(64)})
    np.save(d / "x.npy", rng.standard_normal((40, 96)))
    assert main(["compress", str(d / "m.npz"), "--p", "4", "-o", str(d / "pd")]) == 0
    assert main(["gen", "--model", str(d / "pd"), "--pes", "2", "--lanes", "2",
                 "-o", str(d / "design")]) == 0
    return d


def commands(d, out):
    return {
        "compress": ["compress", d / "big.npz", "--method", "smartdeal", "-o", out],
        "rom": ["rom", d / "pd", "--pes", "16", "--lanes", "64", "--allow-large", "-o", out],
        "gen": ["gen", "--pes", "16", "--lanes", "16", "--shape", "512x512", "--p", "2",
                "-o", out],
        "sim": ["sim", "--design", d / "design", "--inputs", d / "x.npy", "--sim", "verilator",
                "-o", out],
        "verify": ["verify", "--pes", "2", "--lanes", "2", "--sim", "icarus", "-o", out],
        "synth": ["synth", "--design", d / "design", "--target", "generic", "-o", out],
    }


def handles_sigterm(pid):
    """Whether process ``pid`` has a handler for SIGTERM (permdeal's ``main`` installs its SIGTERM
    and SIGINT handlers together; Python itself handles only SIGINT)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            caught = next(int(ln.split()[1], 16) for ln in f if ln.startswith("SigCgt:"))
    except (OSError, StopIteration):
        return True  # no /proc (not Linux): the time alone decides, as before
    return bool(caught >> (signal.SIGTERM - 1) & 1)


def leftovers(parent, tmp):
    here = sorted(p.name for p in parent.iterdir() if p.name.startswith("."))
    return here, sorted(p.name for p in tmp.iterdir())


@pytest.mark.sim
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("command", ["compress", "rom", "gen", "sim", "verify", "synth"])
def test_signal_mid_run_leaves_nothing(inputs, tmp_path, command, sig):
    parent, tmp = tmp_path / "out", tmp_path / "tmp"
    parent.mkdir()
    tmp.mkdir()
    out = parent / "result"
    argv = [str(a) for a in commands(inputs, out)[command]]
    env = {**os.environ, "TMPDIR": str(tmp), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "permdeal", *argv], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    # Mid-run: the output folder is under construction, or the command has run for a while;
    # either way past permdeal's start-up (its handlers installed), which on a loaded machine
    # can take longer than the 2.5 s (a signal before it is Python's default: status -15).
    t0 = time.monotonic()
    while proc.poll() is None:
        took = time.monotonic() - t0
        building = any(p.name.startswith(".result.") for p in parent.iterdir())
        if (took > 2.5 or (building and took > 1.5)) and handles_sigterm(proc.pid):
            break
        time.sleep(0.05)
    assert proc.poll() is None, f"{command} ended before the signal: {proc.communicate()}"
    proc.send_signal(sig)
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise AssertionError(f"{command} did not stop within 60 s of {sig.name}") from None
    assert proc.returncode == STATUS[sig], err
    assert err.strip().splitlines()[-1] == (
        f"permdeal {command}: {'terminated' if sig == signal.SIGTERM else 'interrupted'}"), err
    assert not out.exists()
    assert leftovers(parent, tmp) == ([], []), leftovers(parent, tmp)
    # no simulator, compiler or tool left running in the command's session (a process that has
    # exited but that no parent reaped yet, state Z, is not running)
    time.sleep(0.5)
    ps = subprocess.run(["ps", "-s", str(proc.pid), "-o", "stat=,args="], capture_output=True,
                        text=True).stdout
    running = [ln for ln in ps.splitlines() if ln.strip() and not ln.strip().startswith("Z")]
    assert running == [], f"processes left running: {running}"


def test_a_signal_raised_inside_a_finalizer_is_not_lost(monkeypatch, capsys):
    """Python drops an exception raised in a ``__del__``: a Ctrl-C that lands there (an unused
    Amaranth component's finalizer, say) is delivered again and still interrupts the command."""
    import time

    from permdeal import cli
    from permdeal.cli import commands

    class Finalized:
        def __del__(self):
            raise KeyboardInterrupt    # as the signal handler raises it there

    def command(args):
        Finalized()                    # dropped at once: its __del__ runs here
        for _ in range(500):           # the re-delivered signal lands in this loop
            time.sleep(0.01)
        return 0

    monkeypatch.setattr(commands, "cmd_rom", command)
    t0 = time.monotonic()
    assert cli.main(["rom", "model", "-o", "out"]) == 130
    assert time.monotonic() - t0 < 4
    assert "permdeal rom: interrupted" in capsys.readouterr().err
