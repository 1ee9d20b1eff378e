"""PyTorch Lightning's Trainer.fit(train_dataloaders=TorchLoader(...))."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
L = pytest.importorskip("lightning.pytorch")

import stoker  # noqa: E402
from stoker.adapters.torch import TorchLoader  # noqa: E402
from tests import sources  # noqa: E402

pytestmark = [
    pytest.mark.timeout(120),
    # Lightning 2.6 builds torch pytree LeafSpecs, which torch 2.13 deprecates:
    # Lightning's own warning, for any input.
    pytest.mark.filterwarnings("ignore:.*LeafSpec.*is deprecated:FutureWarning"),
]


class Regression(L.LightningModule):
    """Records the batch indices of every training step."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)
        self.seen: list[int] = []
        self.validated: list[int] = []

    def training_step(self, batch, batch_idx):
        x, noise = batch
        self.seen.append(int(x[0]))
        return self.layer(noise.reshape(1, 4)).pow(2).mean()

    def validation_step(self, batch, batch_idx):
        self.validated.append(int(batch[0][0]))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def test_trainer_fit_takes_a_torch_loader_for_train_and_validation(tmp_path):
    model = Regression()
    train = TorchLoader(stoker.Loader(sources.Indexed(n=6), workers=2), device="cpu")
    val = TorchLoader(stoker.Loader(sources.Indexed(n=3), workers=2))
    trainer = L.Trainer(
        max_epochs=2,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=tmp_path,
    )
    with train, val:
        trainer.fit(model, train_dataloaders=train, val_dataloaders=val)
        assert trainer.num_training_batches == 6  # len() reached the trainer
        assert train.loader.epoch == 2
    assert model.seen == list(range(6)) * 2
    assert model.validated == list(range(3)) * 2
