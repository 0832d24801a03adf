"""scripts/guard_heldout.py: the guard beside tuned Adam and the optimizer alone, per setting."""

import json

import pytest
from helpers.scripts import load_script


def test_guard_heldout_on_a_training_family_records_every_setting(tmp_path):
    script = load_script("guard_heldout")
    assert script.main(["mlp-generalist-log", "--families", "quadratic", "--steps", "6",
                        "--seeds", "1", "--settings", "0.9:0.0025:0.1,0.9:0.0025:0.99",
                        "--out", str(tmp_path)]) == 0
    out = json.loads((tmp_path / "guard_heldout.json").read_text())
    assert out["alone_run"] is True and out["steps"] == 6 and len(out["settings"]) == 2
    rows = out["problems"]["quadratic"]
    adam = rows["adam"]["final_train_loss"]
    alone = rows["mlp-generalist-log"]["final_train_loss"]
    assert rows["adam"]["hparams"]["learning_rate"] > 0
    for i in range(2):
        guarded = rows[f"mlp-generalist-log+guard {i}"]
        assert guarded["settings"]["reset_gap"] == (0.1, 0.99)[i]
        assert guarded["vs_adam"] == pytest.approx(guarded["final_train_loss"] / adam)
        assert guarded["vs_learned"] == pytest.approx(guarded["final_train_loss"] / alone)
        # The guard ends at the better of its two references (here the optimizer alone).
        assert guarded["final_train_loss"] <= 1.01 * min(adam, alone)
        assert 0.0 <= guarded["ends_on_alone"] <= guarded["ends_on_learned"] <= 1.0
    table = (tmp_path / "guard_heldout.md").read_text()
    assert "### smoothing 0.9, switch_gap 0.0025, reset_gap 0.99" in table
    assert "| quadratic |" in table


def test_guard_heldout_rejects_bad_settings(tmp_path):
    script = load_script("guard_heldout")
    with pytest.raises(ValueError, match="switch_gap must be below reset_gap"):
        script.main(["mlp-generalist-log", "--families", "quadratic", "--settings",
                     "0.9:0.2:0.1", "--out", str(tmp_path)])
