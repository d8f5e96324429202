"""``minitl pretrain`` / ``transfer`` with ``--model resnet18:width=16`` on a fake 28x28 Fashion-MNIST."""
import json

from minitl import cli, io
from tiny_tasks import write_fake_fashion_mnist


def test_resnet18_pretrain_and_transfer_from_the_command_line(tmp_path, capsys):
    root = write_fake_fashion_mnist(tmp_path / "fake", n_train=6, n_test=2)
    weights = str(tmp_path / "r18.safetensors")
    assert cli.main(["pretrain", "--root", root, "--model", "resnet18:width=16", "--steps", "2",
                     "--batch-size", "8", "--out", weights, "--quiet"]) == 0
    state, meta = io.load_with_metadata(weights)
    assert meta["model"] == "resnet18:width=16"
    assert state["conv1.weight"].shape == (16, 1, 3, 3) and state["fc.weight"].shape == (5, 128)
    assert int(state["bn1.num_batches_tracked"]) == 2  # the buffers are in the weight file
    out = tmp_path / "t"
    assert cli.main(["transfer", "--weights", weights, "--root", root, "--model", "resnet18:width=16",
                     "--strategies", "features:head=mlp256,finetune:bn=frozen", "--k", "2", "--seeds", "1",
                     "--steps", "2", "--batch-size", "8", "--out", str(out), "--quiet", "--no-plots"]) == 0
    assert "finetune:bn=frozen" in capsys.readouterr().out
    runs = json.loads((out / "results.json").read_text())["runs"]
    assert [r["strategy"] for r in runs] == ["features:head=mlp256", "finetune:bn=frozen"]
    assert runs[0]["cached_features"] is True
