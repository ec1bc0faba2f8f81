"""OvsdbError's offending syntax: a JSON null is a value, "no syntax" is NO_SYNTAX."""

from __future__ import annotations

import copy
import pickle

import pytest

from hwvtep.ovsdb.errors import NO_SYNTAX, OvsdbError, syntax_error
from hwvtep.ovsdb.log import LogError, error_to_string


def test_null_syntax_is_kept() -> None:
    e = syntax_error("expected string", None)
    assert e.has_syntax
    assert e.to_json() == {"error": "syntax error", "syntax": "null",
                           "details": "expected string"}
    assert error_to_string(e) == 'syntax "null": syntax error: expected string'


@pytest.mark.parametrize("err", [
    OvsdbError("aborted", "aborted by request"),
    syntax_error("Parsing ovsdb operation 1 of 1 failed: Object expected."),
    OvsdbError("syntax error", "x", NO_SYNTAX),
    LogError("syntax error", "f: parse error"),
])
def test_no_syntax(err: OvsdbError) -> None:
    assert not err.has_syntax
    assert "syntax" not in err.to_json()
    assert not error_to_string(err).startswith("syntax \"")


@pytest.mark.parametrize(("value", "text"), [
    (None, "null"), (False, "false"), (0, "0"), ("", '""'), ([], "[]"), ({}, "{}"),
    ({"b": 1, "a": [None]}, '{"a":[null],"b":1}'),
])
def test_every_json_value_is_syntax(value: object, text: str) -> None:
    assert syntax_error("d", value).to_json()["syntax"] == text


def test_no_syntax_survives_copy_and_pickle() -> None:
    assert copy.deepcopy(NO_SYNTAX) is NO_SYNTAX
    assert pickle.loads(pickle.dumps(NO_SYNTAX)) is NO_SYNTAX
    assert repr(NO_SYNTAX) == "NO_SYNTAX"
