from pathlib import Path

import pytest

from consentry.policy import PolicyError, load_policy


def test_default_policy_defines_every_clause_with_an_explanation():
    policy = load_policy()
    for clause_id in ("CS-1", "II-1", "II-2", "II-3", "KM-1", "SX-1", "OK-1"):
        clause = policy.clause(clause_id)
        assert clause.explanation.strip()
    assert policy.clause("CS-1").permanent_suspension
    assert policy.clause("II-3").strike_weight == 2
    assert policy.enforcement.strike_expiry_days == 180


def test_malformed_policy_is_refused_with_the_file_named(tmp_path: Path):
    bad = tmp_path / "policy.yaml"
    bad.write_text("version: '2'\nname: x\nchallenge_age: 25\n")
    with pytest.raises(PolicyError, match=str(bad)):
        load_policy(bad)


def test_policy_missing_a_clause_is_refused(tmp_path: Path):
    text = (Path(__file__).parents[2] / "consentry/policy/default.yaml").read_text()
    cut = text.replace("  KM-1:", "  XX-9:")
    path = tmp_path / "p.yaml"
    path.write_text(cut)
    with pytest.raises(PolicyError, match="KM-1"):
        load_policy(path)


def test_unreadable_policy_path_is_a_clear_error(tmp_path: Path):
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy(tmp_path / "missing.yaml")
