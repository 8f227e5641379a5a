"""Parameter schemas: defaults, coercion from CLI strings, and refusals that say what is allowed."""
import pytest

from m5ops.errors import ParameterError
from m5ops.models.params import Param, ParamSchema

SCHEMA = ParamSchema([
    Param("rounds", int, 100, low=1, high=1000, help="Boosting rounds."),
    Param("rate", float, 0.05, low=0.0, high=1.0),
    Param("loss", str, "poisson", choices=("poisson", "tweedie")),
    Param("bagging", bool, True),
])


def test_validate_fills_every_default():
    assert SCHEMA.validate({}) == {"rounds": 100, "rate": 0.05, "loss": "poisson", "bagging": True}
    assert SCHEMA.validate(None) == SCHEMA.defaults()


@pytest.mark.parametrize("raw, key, expected", [
    ({"rounds": "250"}, "rounds", 250),
    ({"rounds": " 7 "}, "rounds", 7),
    ({"rounds": 300.0}, "rounds", 300),          # JSON may give integral floats
    ({"rate": "0.1"}, "rate", 0.1),
    ({"rate": "1e-3"}, "rate", 0.001),
    ({"rate": 1}, "rate", 1.0),
    ({"loss": "tweedie"}, "loss", "tweedie"),
    ({"bagging": "false"}, "bagging", False),
    ({"bagging": "True"}, "bagging", True),
    ({"bagging": "0"}, "bagging", False),
    ({"bagging": "yes"}, "bagging", True),
])
def test_strings_and_compatible_numbers_are_coerced(raw, key, expected):
    value = SCHEMA.validate(raw)[key]
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize("raw, fragments", [
    ({"round": 5}, ["round", "known: rounds, rate, loss, bagging"]),
    ({"rounds": "ten"}, ["'rounds'", "'ten'", "an integer in [1, 1000]"]),
    ({"rounds": 2.5}, ["'rounds'", "2.5", "an integer"]),
    ({"rounds": True}, ["'rounds'", "True"]),
    ({"rounds": 0}, ["'rounds'", "0", "out of range", "[1, 1000]"]),
    ({"rounds": "5000"}, ["'rounds'", "5000", "out of range"]),
    ({"rate": "fast"}, ["'rate'", "'fast'", "a number in [0.0, 1.0]"]),
    ({"rate": "nan"}, ["'rate'", "'nan'"]),
    ({"rate": 1.5}, ["'rate'", "1.5", "out of range"]),
    ({"loss": "l2"}, ["'loss'", "'l2'", "['poisson', 'tweedie']"]),
    ({"loss": 3}, ["'loss'", "a string"]),
    ({"bagging": "maybe"}, ["'bagging'", "'maybe'", "true or false"]),
    ({"bagging": 2}, ["'bagging'", "2"]),
])
def test_bad_values_are_refused_naming_parameter_value_and_allowed(raw, fragments):
    with pytest.raises(ParameterError) as info:
        SCHEMA.validate(raw)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_every_problem_is_reported_at_once():
    with pytest.raises(ParameterError, match="'rounds'.*'rate'"):
        SCHEMA.validate({"rounds": 0, "rate": 2.0})


def test_schema_without_parameters_refuses_any_key():
    with pytest.raises(ParameterError, match="takes no parameters"):
        ParamSchema([]).validate({"window": 3})


def test_describe_gives_one_json_ready_dict_per_parameter():
    described = SCHEMA.describe()
    assert [d["name"] for d in described] == ["rounds", "rate", "loss", "bagging"]
    assert described[0] == {"name": "rounds", "type": "int", "default": 100, "low": 1,
                            "high": 1000, "choices": None, "help": "Boosting rounds."}
    assert described[2]["choices"] == ["poisson", "tweedie"]


@pytest.mark.parametrize("make", [
    lambda: Param("rounds", int, 0, low=1),                      # default out of its own range
    lambda: Param("mode", list, []),                             # unsupported type
    lambda: ParamSchema([Param("a", int, 1), Param("a", int, 2)]),  # duplicate name
])
def test_broken_declarations_fail_when_the_kind_is_defined(make):
    with pytest.raises((ParameterError, TypeError, ValueError)):
        make()
