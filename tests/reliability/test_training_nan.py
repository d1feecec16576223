"""Issue 12 item 12: the advice after a diverged run works.

"Lower the learning rate and resume" needs a checkpoint worth resuming from and a learning rate
override that the checkpoint does not silently replace; and a run never exports non-finite
weights with exit 0.
"""

from __future__ import annotations

import math

import pytest
import tiny_anime_plugin
import torch
from safetensors.torch import load_file

from anime_core.errors import TrainingError
from anime_core.training import checkpoint
from anime_core.training.loop import train


def _finite(path) -> bool:
    return all(t.isfinite().all() and t.abs().max() < checkpoint.MAX_WEIGHT for t in load_file(path).values())


def test_a_diverged_run_resumes_from_its_last_good_checkpoint_with_the_lower_rate(
    tiny_registry, train_data, tmp_path, capsys, metric_rows
):
    run = tmp_path / "run"
    with pytest.raises(TrainingError, match="interrupted at step 2"):  # a run of 6 steps stopped after 2
        train(
            "tiny",
            overrides=[*train_data, f"output_dir={run}", "train.max_steps=6", "train.checkpoint_every=1",
                       "optim.interrupt_at=3"],
            progress=False,
        )

    # A far too high rate on resume must take effect (the checkpoint's optimizer state held 1e-3) and blow up.
    with pytest.raises(TrainingError, match=r"at step 3; .*resume from the last good checkpoint \(step 2\)"):
        train("tiny", overrides=["optim.interrupt_at=0", "optim.lr=1e30"], resume=run, progress=False)
    assert [c.step for c in checkpoint.checkpoints(run)] == [1, 2]  # the diverged step was not checkpointed
    assert all(_finite(c.path / "model.safetensors") for c in checkpoint.checkpoints(run))
    assert _finite(run / "generator.safetensors")  # the export of step 2, not of the diverged weights

    # Following the advice works: the lower rate replaces the checkpoint's, and the log says so.
    capsys.readouterr()
    train("tiny", overrides=["optim.interrupt_at=0", "train.max_steps=4", "optim.lr=1e-4"], resume=run, progress=False)
    out = capsys.readouterr().out
    assert "learning rate of 'generator' set to 0.0001 by the config (the checkpoint had 0.001)" in out
    rows = metric_rows(run)
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]
    # the core's decay from the new base rate, over the 4 steps of this run: 1e-4 x (1 - 3/4) after step 3
    assert float(rows[2]["lr_generator"]) == pytest.approx(2.5e-5)
    assert _finite(run / "generator.safetensors")


@pytest.mark.parametrize(
    ("poison", "said"), [(math.inf, "not finite"), (1e10, r"at step 1, the weights of 'generator' reached 1e\+10")]
)
def test_non_finite_or_diverged_weights_are_never_exported(
    poison, said, tiny_registry, train_data, tmp_path, monkeypatch
):
    """The last update leaves inf (or huge) weights while the step's losses were still finite."""
    step = tiny_anime_plugin.TinyTask.step

    def poisoned(self, batch, ctx):  # type: ignore[no-untyped-def]
        logs = step(self, batch, ctx)
        with torch.no_grad():
            self.nets["generator"].body[0].weight[0, 0, 0, 0] = poison
        return logs

    monkeypatch.setattr(tiny_anime_plugin.TinyTask, "step", poisoned)
    run = tmp_path / "run"
    with pytest.raises(TrainingError, match=said) as stopped:
        train("tiny", overrides=[*train_data, f"output_dir={run}", "train.max_steps=1"], progress=False)
    assert stopped.value.exit_code == 1
    assert not (run / "generator.safetensors").exists()
    assert checkpoint.latest(run) is None


def test_a_nan_loss_names_the_step_and_the_checkpoint_to_resume(tiny_registry, train_data, tmp_path):
    run = tmp_path / "run"
    with pytest.raises(TrainingError, match=r"loss 'g' became nan at step 4; .*\(step 2\): anime train tiny --resume"):
        train(
            "tiny",
            overrides=[
                *train_data,
                f"output_dir={run}",
                "train.max_steps=6",
                "train.checkpoint_every=2",
                "optim.explode_at=4",
            ],
            progress=False,
        )
    assert math.isfinite(checkpoint.latest(run).step)
