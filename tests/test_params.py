"""Strict parsing of the routes' query parameters (no TensorBoard needed)."""

import pytest
from tensorboard import errors

from tb_attention_plugin.serving import params


@pytest.mark.parametrize("text, number", [("0", 0), ("7", 7), ("-5", -5), ("9223372036854775807", 2**63 - 1),
                                          ("-9223372036854775808", -(2**63))])
def test_decimal_integers_parse(text, number):
    assert params.integer({"step": text}, "step") == number


@pytest.mark.parametrize("text", ["--5", "+5", " 5", "5 ", "1e3", "0x10", "5.0", "", "-", "-0", "007",
                                  "\u0663", "\u00b2", "1_000", "NaN", "99999999999999999999"])
def test_anything_else_is_a_400_that_names_the_parameter_and_the_value(text):
    with pytest.raises(errors.InvalidArgumentError) as raised:
        params.integer({"step": text}, "step")
    assert raised.value.http_code == 400
    assert "'step'" in str(raised.value)


def test_an_integer_outside_its_range_names_the_range():
    with pytest.raises(errors.InvalidArgumentError, match=r"'example' must be in 0\.\.9223372036854775807, got -1"):
        params.integer({"example": "-1"}, "example", minimum=0)
    with pytest.raises(errors.InvalidArgumentError, match="got 9223372036854775808"):
        params.integer({"step": "9223372036854775808"}, "step")


def test_missing_parameters():
    with pytest.raises(errors.InvalidArgumentError, match="missing parameter 'run'"):
        params.string({}, "run")
    with pytest.raises(errors.InvalidArgumentError, match="missing parameter 'step'"):
        params.integer({}, "step")
    assert params.integer({}, "head", required=False) is None
    assert params.choice({}, "mode", ("received", "given"), "received") == "received"


def test_run_names_are_taken_as_given():
    for name in ['q"uote', "back\\slash", "ctl\x01", "\u00fcn\u00efcode \u2713", " spaced "]:
        assert params.string({"run": name}, "run") == name


def test_a_choice_outside_the_list_names_the_choices_and_a_cut_value():
    with pytest.raises(errors.InvalidArgumentError) as raised:
        params.choice({"mode": "x" * 100}, "mode", ("received", "given"), "received")
    message = str(raised.value)
    assert "'received', 'given'" in message and "x" * 40 + "'..." in message and "x" * 41 not in message
