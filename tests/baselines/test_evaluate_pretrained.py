"""scripts/evaluate_pretrained.py: which comparisons it runs and the summary it writes."""

import json

import pytest
from helpers.scripts import load_script as _load


def load_script():
    return _load("evaluate_pretrained")


def fake_entry(names, tasks, steps):
    row = {"final_train_loss": 0.25, "tail_train_loss": 0.5, "speedup_median": 1.5,
           "win_rate": 0.75, "divergences": 0, "num_runs": 4}
    return {"tasks": tasks, "steps": steps, "device": "cpu",
            "rows": {"adam": row, **{n: row for n in names}}}


def test_optimizers_trained_on_one_family_share_each_comparison(tmp_path, monkeypatch):
    script = load_script()
    calls = []

    def run_one(names, family, split, steps, out, args):
        calls.append((tuple(names), family, split, steps, out.name))
        return fake_entry(names, family + ("" if split == "train" else f"-{split}"), steps)

    monkeypatch.setattr(script, "run_one", run_one)
    assert script.main(["--out", str(tmp_path)]) == 0
    image, quadratic = ("mlp-image", "lstm-image"), ("mlp-quadratic", "lstm-quadratic")
    assert calls == [
        (image, "mlp-digits", "train", 200, "mlp-digits"),
        (image, "mlp-digits", "heldout", 200, "mlp-digits"),
        (image, "conv-digits", "train", 200, "mlp-digits"),
        (image, "rosenbrock", "train", 200, "mlp-digits"),
        (quadratic, "quadratic", "train", 100, "quadratic"),
        (quadratic, "quadratic", "heldout", 100, "quadratic"),
        (quadratic, "rosenbrock", "train", 100, "quadratic"),
    ]
    entries = json.loads((tmp_path / "mlp-digits" / "summary.json").read_text())
    assert [e["tasks"] for e in entries] == [
        "mlp-digits", "mlp-digits-heldout", "conv-digits", "rosenbrock"]
    summary = (tmp_path / "summary.md").read_text()
    assert "## Trained on mlp-digits" in summary and "## Trained on quadratic" in summary
    assert "| conv-digits | 200 | lstm-image | 0.25 | 0.5 | 1.50x | 0.75 | 0/4 |" in summary


def test_summary_reads_entries_written_before_the_losses_were_named():
    old = {"tasks": "quadratic", "steps": 100, "rows": {"adam": {
        "final_loss": 0.5, "speedup_median": 1.0, "win_rate": 0.5, "divergences": 0,
        "num_runs": 4}}}
    text = load_script().summary_markdown({"quadratic": [old]})
    assert "| quadratic | 100 | adam | n/a | 0.5 | 1.00x | 0.50 | 0/4 |" in text


def test_no_ood_and_a_single_name(tmp_path, monkeypatch):
    script = load_script()
    calls = []
    monkeypatch.setattr(script, "run_one", lambda names, family, split, steps, out, args: (
        calls.append((tuple(names), family, split)) or fake_entry(names, family, steps)))
    script.main(["mlp-quadratic", "--no-ood", "--out", str(tmp_path)])
    assert calls == [(("mlp-quadratic",), "quadratic", "train")]


def test_unknown_name_is_refused(tmp_path):
    with pytest.raises(SystemExit, match=r"no evaluation suite for \['adam'\]"):
        load_script().main(["adam", "--out", str(tmp_path)])


@pytest.mark.slow
def test_one_real_comparison_writes_its_report(tmp_path):
    script = load_script()
    script.main(["mlp-quadratic", "--no-ood", "--tasks", "2", "--seeds", "1",
                 "--out", str(tmp_path)])
    report = tmp_path / "quadratic" / "quadratic"
    assert {p.name for p in report.iterdir()} >= {"report.md", "results.json",
                                                  "loss_curves.png"}
    rows = json.loads((tmp_path / "quadratic" / "summary.json").read_text())[0]["rows"]
    assert set(rows) == {"adam", "lion", "lookahead", "mlp-quadratic", "mlp-quadratic+guard"}
    assert all(r["num_runs"] == 2 for r in rows.values())


@pytest.mark.parametrize("tasks, expected", [
    (8, {"num_seeds": 5, "num_tasks": 4, "tune_seeds": 2, "tune_tasks": 2}),
    (1, {"num_seeds": 5, "num_tasks": 1, "tune_seeds": 2, "tune_tasks": 1}),
])
def test_conv_budget_is_capped_never_raised(tmp_path, monkeypatch, tasks, expected):
    import baselines.compare
    import baselines.report

    script = load_script()
    seen = {}

    def fake_compare(optimizers, family, steps, **kwargs):
        seen.update(kwargs)
        raise RuntimeError("stop")

    monkeypatch.setattr(baselines.compare, "compare", fake_compare)
    args = script.argparse.Namespace(seeds=5, tasks=tasks, seed=7)
    with pytest.raises(RuntimeError, match="stop"):
        script.run_one(["mlp-image"], "conv-digits", "train", 200, tmp_path, args)
    assert {k: seen[k] for k in expected} == expected
