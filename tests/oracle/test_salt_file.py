"""The validator's salt never goes on a command line (every local user reads /proc/<pid>/cmdline):
it comes from a file only its owner can read, the environment, or the folder `task create` keeps."""

from __future__ import annotations

import os

from tests.conftest import run_cli


def test_no_salt_flag_and_a_salt_file_others_can_read_is_refused(settings, tmp_path):
    salt = tmp_path / "salt"
    salt.write_text(os.urandom(32).hex())
    common = ["validator", "--task", "1", "--validation", str(tmp_path / "v.csv")]
    old = run_cli(settings, *common, "--salt", "00" * 32, module="oracle")
    assert old.returncode == 2 and "unrecognized arguments: --salt" in old.stderr.decode()
    salt.chmod(0o644)
    shared = run_cli(settings, *common, "--salt-file", str(salt), module="oracle")
    assert shared.returncode == 2
    assert f"{salt} is readable by others (mode 644): chmod 600 {salt}" in shared.stderr.decode()
    assert "Traceback" not in shared.stderr.decode()
    salt.chmod(0o600)
    salt.write_text("not hex")
    bad = run_cli(settings, *common, "--salt-file", str(salt), module="oracle")
    assert bad.returncode == 2 and "does not hold a hex salt" in bad.stderr.decode()


def test_a_salt_file_that_is_a_link_or_a_fifo_is_refused_without_waiting(settings, tmp_path):
    real = tmp_path / "salt"
    real.write_text(os.urandom(32).hex())
    real.chmod(0o600)
    link = tmp_path / "link"
    link.symlink_to(real)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo, 0o600)
    common = ["validator", "--task", "1", "--validation", str(tmp_path / "v.csv")]
    linked = run_cli(settings, *common, "--salt-file", str(link), module="oracle")
    assert linked.returncode == 2 and str(link) in linked.stderr.decode()
    piped = run_cli(settings, *common, "--salt-file", str(fifo), module="oracle")  # no hang
    assert piped.returncode == 2 and "is not a regular file of yours" in piped.stderr.decode()
