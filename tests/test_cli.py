"""The ``minitl`` command: ``info`` in a subprocess and in-process, and tiny ``pretrain`` /
``transfer`` runs on a fake 28x28 Fashion-MNIST written into a temporary directory."""
import json
import os
import subprocess
import sys

import pytest

import minitl
from minitl import cli, io
from tiny_tasks import write_fake_emnist, write_fake_fashion_mnist

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_info_as_python_dash_m():
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-m", "minitl", "info"], capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert f"minitl {minitl.__version__}" in proc.stdout
    assert "active kernels on cpu" in proc.stdout and "conv2d_forward" in proc.stdout
    assert "CUDA:" in proc.stdout and "fashion-mnist" in proc.stdout


def test_info_in_process(capsys):
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    for op, backend in minitl.kernels.active("cpu").items():
        assert any(line.split() == [op, backend] for line in out.splitlines()), op
    assert "C++ kernels" in out and "threads:" in out


def test_no_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main([])
    assert exc.value.code == 2


@pytest.fixture(scope="module")
def fake_root(tmp_path_factory):
    return write_fake_fashion_mnist(tmp_path_factory.mktemp("fake-fmnist"), n_train=20, n_test=8)


@pytest.fixture(scope="module")
def weights(fake_root, tmp_path_factory):
    path = str(tmp_path_factory.mktemp("w") / "mlp04.safetensors")
    code = cli.main(["pretrain", "--root", fake_root, "--classes", "0-4", "--model", "mlp:32", "--steps", "20",
                     "--batch-size", "16", "--out", path, "--quiet"])
    assert code == 0
    return path


def test_pretrain_writes_weights_with_provenance(weights):
    state, meta = io.load_with_metadata(weights)
    assert set(state) == {"layers.0.weight", "layers.0.bias", "layers.2.weight", "layers.2.bias"}
    assert state["layers.2.weight"].shape == (5, 32)
    assert meta["dataset"] == "fashion-mnist[0-4]" and json.loads(meta["steps"]) == 20
    assert meta["model"] == "mlp:32" and float(meta["test_acc"]) >= 0


def test_tiny_transfer_run(weights, fake_root, tmp_path, capsys):
    out = tmp_path / "t"
    code = cli.main(["transfer", "--weights", weights, "--root", fake_root, "--classes", "5-9",
                     "--strategies", "scratch,features,finetune:lr_mult=0.1", "--k", "2,4", "--seeds", "2",
                     "--steps", "8", "--batch-size", "16", "--out", str(out), "--quiet", "--no-plots"])
    assert code == 0
    printed = capsys.readouterr().out
    assert printed.startswith("| target | k | strategy") and "finetune:lr_mult=0.1" in printed
    assert "[  1/" not in printed  # --quiet: no per-run lines
    data = json.loads((out / "results.json").read_text())
    assert len(data["runs"]) == 3 * 2 * 2 and data["config"]["model"] == "mlp:32"
    assert {r["n_test"] for r in data["runs"]} == {5 * 8}
    assert (out / "results.csv").exists() and (out / "results.md").exists()


def test_transfer_from_another_dataset(tmp_path, monkeypatch, capsys):
    # MNIST -> EMNIST letters, both fake: pretrained inside the run, one backbone per seed, a 26-class head.
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("MINITL_DATA", raising=False)
    root = tmp_path / "data"
    write_fake_fashion_mnist(root / "mnist", n_train=6, n_test=2)  # 10 classes under MNIST's file names
    write_fake_emnist(root)
    out = tmp_path / "x"
    code = cli.main(["transfer", "--source-dataset", "mnist", "--dataset", "emnist-letters", "--model", "mlp:16",
                     "--root", str(root), "--strategies", "scratch,finetune", "--k", "2", "--seeds", "2",
                     "--steps", "4", "--pretrain-epochs", "1", "--batch-size", "16", "--out", str(out), "--quiet",
                     "--no-plots"])
    assert code == 0
    data = json.loads((out / "results.json").read_text())
    assert data["config"]["sources"] == ["mnist[0-9]"] and data["config"]["targets"] == ["emnist-letters[0-25]"]
    assert data["config"]["pretrain_per_seed"] is True and len(data["pretrain"]["mnist[0-9]"]["draws"]) == 2
    assert {r["n_test"] for r in data["runs"]} == {26 * 2} and data["config"]["transform"].startswith("Normalize")
    assert "emnist-letters[0-25]" in capsys.readouterr().out
    # One draw for every seed when asked.
    code = cli.main(["transfer", "--source-dataset", "mnist", "--dataset", "emnist-letters", "--model", "mlp:16",
                     "--root", str(root), "--strategies", "finetune", "--k", "2", "--seeds", "2", "--steps", "2",
                     "--pretrain-epochs", "1", "--out", str(tmp_path / "y"), "--quiet", "--no-plots",
                     "--no-pretrain-per-seed"])
    assert code == 0
    data = json.loads((tmp_path / "y" / "results.json").read_text())
    assert data["config"]["pretrain_per_seed"] is False and len(data["pretrain"]["mnist[0-9]"]["draws"]) == 1


def test_transfer_across_datasets_of_other_shapes_fails_before_training():
    from minitl.experiments.grid import Grid, Source, check_shapes
    from minitl.data.tasks import Task
    from tiny_tasks import synthetic_dataset

    small = Task("a", synthetic_dataset(2, size=8), synthetic_dataset(2, size=8))
    big = Task("b", synthetic_dataset(2, size=28), synthetic_dataset(2, size=28))
    with pytest.raises(ValueError, match="transfer needs the same input shape"):
        check_shapes(Grid(sources=[], targets=[], model="mlp"), [Source("a", task=small)], [big])


def test_meta_command(fake_root, tmp_path, capsys):
    out = tmp_path / "m"
    code = cli.main(["meta", "--root", fake_root, "--model", "mlp:16", "--quick", "--ways", "2", "--shots", "2",
                     "--query", "3", "--adapt-steps", "2", "--out", str(out), "--quiet"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "held-out 2-way 2-shot tasks from fashion-mnist[5-9]" in printed and "| reptile − scratch |" in printed
    data = json.loads((out / "meta.json").read_text())
    assert len(data["tasks"]) == 4 and set(data["acc"]) == {"scratch", "pretrain", "reptile", "fomaml"}
    assert all(set(t) <= set(range(5)) for t in data["tasks"])


def test_transfer_lists_strategies(capsys):
    assert cli.main(["transfer", "--list"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("scratch") and "l2sp" in out


def test_transfer_needs_weights_for_transfer_strategies(fake_root, capsys):
    assert cli.main(["transfer", "--root", fake_root, "--strategies", "finetune", "--quiet"]) == 2
    assert "minitl: error: --weights or --source-dataset is required" in capsys.readouterr().err


def test_missing_data_names_the_command_to_get_it(tmp_path, monkeypatch, capsys):
    # KMNIST is not installed here and HOME is empty: nothing can be found.
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("MINITL_DATA", raising=False)
    code = cli.main(["pretrain", "--dataset", "kmnist", "--root", str(tmp_path), "--out",
                     str(tmp_path / "w.safetensors"), "--quiet"])
    assert code == 2
    err = capsys.readouterr().err
    assert "not found" in err and "--download" in err


def test_demo_without_data_says_how_to_get_it(tmp_path, monkeypatch, capsys):
    import dataclasses

    from minitl.data import catalog

    # Hide every place Fashion-MNIST could be: no system directory, an empty HOME, no $MINITL_DATA.
    info = catalog.CATALOG["fashion-mnist"]
    monkeypatch.setitem(catalog.CATALOG, "fashion-mnist", dataclasses.replace(info, system_dirs=()))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("MINITL_DATA", raising=False)
    assert cli.main(["demo", "--out", str(tmp_path / "demo"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "FashionMNIST (train split) not found" in err
    assert "apt-get install dataset-fashion-mnist" in err and "--download" in err
    assert not (tmp_path / "demo").exists()
