"""`bountytree ipfs add|cat` as a user runs them."""

from conftest import run_cli


def test_add_then_cat(settings, tmp_path):
    path = tmp_path / "hello.txt"
    path.write_bytes(b"hello world\n")
    added = run_cli(settings, "ipfs", "add", str(path))
    assert added.returncode == 0, added.stderr
    assert added.stdout.decode().strip() == "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"
    cat = run_cli(settings, "ipfs", "cat", "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o")
    assert cat.returncode == 0 and cat.stdout == b"hello world\n"


def test_errors_are_one_line(settings, tmp_path):
    for args, message in [
        (("ipfs", "add", str(tmp_path / "missing")), "no such file"),
        (("ipfs", "cat", "not-a-cid"), "not a CIDv0"),
        (("ipfs", "cat", "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG"), "not in the store"),
    ]:
        result = run_cli(settings, *args)
        assert result.returncode == 2
        err = result.stderr.decode()
        assert message in err and err.count("\n") == 1 and "Traceback" not in err
