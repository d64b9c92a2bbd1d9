"""A stage's error is one line naming what to fix; an interrupt exits 2; VQALAB_DEBUG=1 shows the traceback."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import ROOT


def stage(args, tmp_path, **env):
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=120)


def test_a_user_error_is_one_line_and_exit_code_1(tmp_path):
    missing = tmp_path / "preprocess.json"
    out = stage(["stages/preprocess.py", "--params", str(missing), "--raw", str(tmp_path), "--out",
                 str(tmp_path / "out"), "--stats", str(tmp_path / "stats.json")], tmp_path)
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert lines == [f"error: {missing} not found: run from the project root (params.yaml is composed from conf/ by "
                     f"`dvc exp run` or `vqalab compose`)  (VQALAB_DEBUG=1 shows the traceback)"]
    debug = stage(["stages/preprocess.py", "--params", str(missing), "--raw", str(tmp_path), "--out",
                   str(tmp_path / "out"), "--stats", str(tmp_path / "stats.json")], tmp_path, VQALAB_DEBUG="1")
    assert debug.returncode == 1 and "Traceback (most recent call last)" in debug.stderr


def test_a_bad_parameter_is_one_line_naming_it_within_seconds(tmp_path):
    params = tmp_path / "params.yaml"
    (tmp_path / "conf").symlink_to(ROOT / "conf")
    params.write_text((ROOT / "params.yaml").read_text().replace("  lr: 0.002", "  lr: fast", 1))
    start = time.perf_counter()
    out = stage(["stages/features.py", "--params", str(params), "--data", str(tmp_path), "--out", str(tmp_path / "f")],
                tmp_path, DVC_EXP_BASELINE_REV="abc")  # as in `dvc exp run -S model.lr=fast`
    elapsed = time.perf_counter() - start
    assert out.returncode == 1
    assert out.stderr.strip().splitlines()[-1].startswith("error: params: model.lr = 'fast' should be of type float")
    assert "Traceback" not in out.stderr and not (tmp_path / "f").exists()
    print(f"\nfailed in {elapsed:.2f} s")


def wait_until_blocked_on_fifo(pid: int, timeout_s: float = 120.0) -> None:
    """Until the process waits in opening the FIFO, past its imports (a fixed sleep only guessed how
    long the imports take)."""
    wchan = Path(f"/proc/{pid}/wchan")
    if not wchan.exists():  # no procfs: the imports take ~1 s on an idle machine
        time.sleep(5)
        return
    deadline = time.monotonic() + timeout_s
    while wchan.read_text() not in ("wait_for_partner", "fifo_open"):  # the kernel's FIFO-open waits
        assert time.monotonic() < deadline, f"the stage never reached the FIFO read (wchan {wchan.read_text()!r})"
        time.sleep(0.1)


def test_an_interrupt_exits_2_without_a_traceback(tmp_path):
    fifo = tmp_path / "params.yaml"
    os.mkfifo(fifo)  # reading it blocks until a writer comes: the stage waits there
    # The child starts with SIGINT at its default, as from a shell: an ignored SIGINT is inherited
    # through exec (a test run started in the background has one), and Python then keeps ignoring it.
    process = subprocess.Popen([sys.executable, "stages/download.py", "--params", str(fifo), "--out", str(tmp_path / "p"),
                                "--downloads", str(tmp_path / "d")],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    wait_until_blocked_on_fifo(process.pid)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 2
    assert stderr.strip().splitlines()[-1] == "interrupted" and "Traceback" not in stderr
