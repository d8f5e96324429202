"""Every bad invocation of ``minitl pretrain/transfer/demo``: status 2, one line
``minitl: error: ...`` naming the problem, and no training started; ``--debug``
shows the traceback instead."""
from __future__ import annotations

import os
import pickle
import re

import numpy as np
import pytest

import minitl
from minitl import cli, io
from minitl.models import LeNet
from tiny_tasks import write_fake_fashion_mnist


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return write_fake_fashion_mnist(tmp_path_factory.mktemp("fmnist"), n_train=6, n_test=3)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("weights")
    minitl.manual_seed(0)
    good = LeNet(in_channels=1, num_classes=5, input_size=28)
    io.save(good, d / "lenet.safetensors")
    io.save(LeNet(in_channels=3, num_classes=5, input_size=32), d / "lenet3.safetensors")
    whole = (d / "lenet.safetensors").read_bytes()
    (d / "cut.safetensors").write_bytes(whole[:len(whole) // 2])
    np.savez(d / "pickled.npz", w=np.array([{"a": 1}], dtype=object))
    (d / "model.pt").write_bytes(pickle.dumps({"w": [1.0]}))
    (d / "plain.txt").write_text("not a directory")
    (d / "dir.safetensors").mkdir()
    return d


@pytest.fixture()
def no_training(monkeypatch):
    """Fail the test if an experiment or pretraining starts."""
    import minitl.experiments as E

    def trained(*a, **k):
        raise AssertionError("training started before the bad argument was found")
    monkeypatch.setattr(E, "run", trained)
    monkeypatch.setattr(E, "pretrain", trained)


def run(argv, capsys):
    """(exit status, stderr) of ``minitl argv``, in process."""
    try:
        code = cli.main(argv)
    except SystemExit as e:
        code = e.code
    return code, capsys.readouterr().err


def _pretrain(root, files, *extra):
    return ["pretrain", "--root", root, "--out", str(files / "out.safetensors"), "--quiet", *extra]


def _transfer(root, files, *extra):
    return ["transfer", "--root", root, "--weights", str(files / "lenet.safetensors"), "--quiet",
            "--no-plots", "--steps", "2", "--k", "1", "--seeds", "1", *extra]


PRETRAIN_CASES = [
    (["--dataset", "imagenet"], "unknown --dataset 'imagenet'"),
    (["--classes", "9-0"], "runs backwards"),
    (["--classes", "0-12"], "class 10 .* out of range"),
    (["--classes", "a-b"], "class 'a' in 'a-b' is not a class index"),
    (["--classes", ","], "no classes in ','"),
    (["--classes", "1,1"], "class 1 is given twice"),
    (["--classes", "3"], "at least 2 classes"),
    (["--steps", "-5"], "argument --steps: '-5' is not a whole number of at least 1"),
    (["--epochs", "0"], "argument --epochs"),
    (["--batch-size", "0"], "argument --batch-size"),
    (["--limit", "-5"], "argument --limit: '-5'"),
    (["--limit", "3"], "--limit 3 is below the number of classes"),
    (["--model", "resnet"], "unknown model 'resnet'"),
    (["--model", "mlp:0"], "hidden sizes"),
    (["--lr", "nan"], "argument --lr: 'nan' is not a finite number above 0"),
    (["--lr", "inf"], "argument --lr"),
    (["--lr", "-0.1"], "argument --lr"),
    (["--device", "tpu"], "unknown --device 'tpu'"),
]


@pytest.mark.parametrize("extra, problem", PRETRAIN_CASES)
def test_bad_pretrain(root, files, capsys, no_training, extra, problem):
    code, err = run(_pretrain(root, files, *extra), capsys)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("minitl: error: "), err
    assert re.search(problem, err), err


def test_bad_pretrain_out(root, files, capsys, no_training):
    for out, problem in ((files / "w.txt", "a weight file ends in .npz or .safetensors"),
                         (files / "plain.txt" / "w.safetensors", "is a file, so nothing can be written"),
                         (files / "dir.safetensors", "is a directory")):
        code, err = run(["pretrain", "--root", root, "--out", str(out), "--quiet"], capsys)
        assert code == 2 and err.startswith("minitl: error: ") and problem in err and err.count("\n") == 1, err


@pytest.mark.skipif(minitl.cuda.is_available(), reason="CUDA is available here")
def test_cuda_without_cuda(root, files, capsys, no_training):
    code, err = run(_pretrain(root, files, "--device", "cuda"), capsys)
    assert code == 2 and "--device cuda: CUDA is unavailable" in err and err.count("\n") == 1


TRANSFER_CASES = [
    (["--k", "100000"], "--k 100000: the smallest class .* has 6 training images"),
    (["--k", "0"], "argument --k: '0'"),
    (["--k", "five"], "argument --k: 'five'"),
    (["--seeds", "x"], "argument --seeds: 'x'"),
    (["--seeds", "0"], "argument --seeds: '0'"),
    (["--steps", "-1"], "argument --steps"),
    (["--strategies", "bogus"], "--strategies: unknown strategy 'bogus'"),
    (["--classes", "5-12"], "out of range"),
    (["--out", "{files}/plain.txt"], "is a file; expected a directory"),
    (["--out", "{files}/plain.txt/sub"], "is a file, so nothing can be written"),
    (["--weights", "{files}/missing.safetensors"], "--weights .*missing.safetensors: no such file"),
    (["--weights", "{files}/cut.safetensors"], "cut.safetensors: malformed safetensors file"),
    (["--weights", "{files}/lenet3.safetensors"], "do not fit inputs of shape \\(1, 28, 28\\)"),
    (["--weights", "{files}/pickled.npz"], "pickled.npz: .*dtype object"),
    (["--weights", "{files}/model.pt"], "unknown weight-file suffix '.pt'"),
]


@pytest.mark.parametrize("extra, problem", TRANSFER_CASES)
def test_bad_transfer(root, files, capsys, no_training, extra, problem):
    extra = [e.replace("{files}", str(files)) for e in extra]
    code, err = run(_transfer(root, files, *extra), capsys)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("minitl: error: "), err
    assert re.search(problem, err), err


def test_transfer_without_weights(root, capsys, no_training):
    code, err = run(["transfer", "--root", root, "--strategies", "finetune", "--quiet"], capsys)
    assert code == 2 and err == "minitl: error: --weights or --source-dataset is required for strategies other than scratch\n"


def test_bad_demo(files, capsys, no_training):
    for extra, problem in ((["--device", "tpu"], "unknown --device"),
                           (["--out", str(files / "plain.txt")], "is a file; expected a directory")):
        code, err = run(["demo", "--quiet", *extra], capsys)
        assert code == 2 and problem in err and err.count("\n") == 1, err


def test_debug_shows_the_traceback(root, files, capsys, no_training):
    with pytest.raises(ValueError, match="runs backwards"):
        cli.main(_pretrain(root, files, "--classes", "9-0", "--debug"))
    with pytest.raises(ValueError, match="runs backwards"):
        cli.main(["--debug", *_pretrain(root, files, "--classes", "9-0")])


def test_help_documents_debug(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    assert "--debug" in out and "traceback" in out and "minitl: error:" in out


def test_a_good_transfer_still_runs(root, files, capsys, tmp_path):
    code = cli.main(_transfer(root, files, "--classes", "5-9", "--strategies", "scratch,finetune",
                              "--out", str(tmp_path / "t")))
    assert code == 0 and (tmp_path / "t" / "results.json").exists()
    assert os.listdir(tmp_path / "t")
