"""What the console tells a user: override quoting, before Hydra's lexer error."""

import subprocess
import sys

import pytest

from conftest import REPO, compose_config
from medmap.runtime.console import unquoted_override_problem


@pytest.mark.parametrize(
    "argument",
    ["dataset.root=/data/my scans", "dataset.path=/données/blood.npz", "dataset.root=/a\tb"],
)
def test_an_unquoted_value_with_a_space_or_non_ascii_letter_is_named_with_its_fix(argument):
    problem = unquoted_override_problem(["experiment=smoke", argument])
    key, _, value = argument.partition("=")
    assert problem is not None and repr(argument) in problem
    assert f"'{key}=\"{value}\"'" in problem


@pytest.mark.parametrize(
    "argument",
    [
        'dataset.root="/data/my scans"',
        "dataset.root='/données'",
        "aug=default,rot90",
        "method.epochs=[1, 1, 3]",
        "dataset.root=/data/scans",
        "--cfg",
        "-m",
    ],  # fmt: skip
)
def test_quoted_and_plain_overrides_pass(argument):
    assert unquoted_override_problem([argument]) is None


def test_the_quoting_the_message_suggests_is_what_hydra_accepts():
    """The suggested form composes to the original path, spaces and accents kept."""
    path = "/data/my scans/données.npz"
    problem = unquoted_override_problem([f"dataset.path={path}"])
    suggested = problem.split("e.g. '")[1].split("' (")[0]
    assert compose_config(["dataset=npz", suggested]).dataset.path == path


def test_train_py_stops_with_the_message_not_a_lexer_error():
    result = subprocess.run(
        [sys.executable, "train.py", "dataset=npz", "dataset.path=/data/my scans/x.npz"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1
    assert "LexerNoViableAltException" not in result.stderr
    assert "Quote the value" in result.stderr
