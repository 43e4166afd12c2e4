"""Registry, Verdict helpers and answer extraction shared by every verifier."""
from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from verifiers import registry
from verifiers.base import Verifier, soft_timeout, VerifyTimeout
from verifiers.extract import answer_line, boxed_contents, last_boxed, last_code_block, strip_thinking
from verifiers.verdict import Verdict, make_verdict

BUILTINS = {"math", "code", "countdown", "multiple_choice", "reasoning_gym", "safety", "harm_judge"}


# ---------------------------------------------------------------- extraction

@pytest.mark.parametrize(
    "text, expected",
    [
        ("<think>x = 3?</think>The answer is 4", "The answer is 4"),
        ("<think>a</think>mid</think>tail", "tail"),  # the LAST </think>
        ("no tags at all", "no tags at all"),
        ("<think>never closed \\boxed{3}", ""),  # truncated trace: nothing to score
        ("", ""),
        ("reasoning without an opening tag</think>\\boxed{5}", "\\boxed{5}"),  # Qwen3 templates drop <think>
    ],
)
def test_strip_thinking(text, expected):
    assert strip_thinking(text) == expected


def test_boxed_extraction_matches_braces():
    text = r"so \boxed{\frac{1}{2}} and then \boxed{ \{1, 2\} } finally \fbox{x^{2}}"
    assert boxed_contents(text) == [r"\frac{1}{2}", r"\{1, 2\}", "x^{2}"]
    assert last_boxed(text) == "x^{2}"
    assert last_boxed(r"\boxed 7 is it") == "7"
    assert last_boxed(r"cut off \boxed{\frac{1}{2") is None
    assert last_boxed("nothing") is None


def test_last_python_block():
    text = "```python\nprint(1)\n```\ntext\n```\nplain\n```\n```py\nprint(2)\n```\n```python\nprint(3)"
    assert last_code_block(text) == "print(2)"  # the final block is unterminated (truncated)
    assert last_code_block("```\nprint(1)\n```") is None
    assert last_code_block("```Python\nx=1\n```") == "x=1"


def test_answer_line():
    assert answer_line("blah\nAnswer: (C)\nmore") == "(C)"
    assert answer_line("The final answer is B.") == "B."
    assert answer_line("nothing here") is None


# ---------------------------------------------------------------- verdict

def test_verdict_helpers_round_trip():
    v = make_verdict("correct", "x", "1", answer="a" * 5000, reason="r")
    assert v.score == 1.0 and v.correct and len(v.answer) == 2000 and v.answer.endswith("[clipped]")
    assert Verdict.from_dict(v.to_dict()) == v
    assert make_verdict("timeout", "x", "1").is_infrastructure
    assert not make_verdict("incorrect", "x", "1").is_infrastructure
    with pytest.raises(ValueError):
        make_verdict("maybe", "x", "1")


class _Boom(Verifier):
    name = "boom"

    def check(self, problem, response):
        if response == "slow":
            with soft_timeout(0.2):
                while True:
                    pass
        raise KeyError("reference has no 'answer'")


def test_verifier_never_raises():
    v = _Boom()
    out = v.verify(None, "x")
    assert out.status == "error" and "KeyError" in out.reason and out.duration_s >= 0
    assert v.verify(None, "slow").status == "timeout"
    assert v.verify(None, None).status == "error"  # type: ignore[arg-type]


def test_soft_timeout_not_swallowed_by_except_exception():
    with pytest.raises(VerifyTimeout):
        with soft_timeout(0.1):
            try:
                while True:
                    pass
            except Exception:  # what math-verify does internally
                pass


# ---------------------------------------------------------------- registry

def test_builtins_registered_through_pyproject_table():
    registry.clear_cache()
    assert BUILTINS <= set(registry.names())
    # the fallback reads the very table pyproject.toml declares: one list of built-ins
    table = {r.name for r in registry._pyproject_entries()}
    assert BUILTINS <= table
    for name in BUILTINS:
        v = registry.get_verifier(name)
        assert v.name == name and v.version


def test_unknown_verifier_names_the_known_ones():
    with pytest.raises(registry.RegistryError, match="unknown verifier 'nope'.*countdown"):
        registry.get_verifier("nope")


def _install_plugin(tmp: Path, dist: str, entries: dict[str, str], module: str, source: str) -> None:
    info = tmp / f"{dist}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    lines = "\n".join(f"{k} = {v}" for k, v in entries.items())
    (info / "entry_points.txt").write_text(f"[curate.verifiers]\n{lines}\n")
    (tmp / f"{module}.py").write_text(textwrap.dedent(source))


PLUGIN = '''
from verifiers.base import Verifier

class Shout(Verifier):
    """Correct when the response is in capitals."""
    name = "shout"
    domains = ("shouting",)

    def check(self, problem, response):
        return self.verdict("correct" if response.isupper() else "incorrect", answer=response)
'''


@pytest.fixture
def plugin_path(tmp_path):
    sys.path.insert(0, str(tmp_path))
    registry.clear_cache()
    yield tmp_path
    sys.path.remove(str(tmp_path))
    sys.modules.pop("shout_plugin", None)
    registry.clear_cache()


def test_third_party_plugin_is_found_by_entry_point(plugin_path):
    _install_plugin(plugin_path, "shout_plugin", {"shout": "shout_plugin:Shout"}, "shout_plugin", PLUGIN)
    assert "shout" in registry.names() and "countdown" in registry.names()
    v = registry.get_verifier("shout")
    assert v.verify(None, "YES").status == "correct"
    listing = {d["name"]: d for d in registry.describe_all()}
    assert listing["shout"]["origin"] == "shout_plugin"
    # built-ins come from the installed distribution, or from the checkout's pyproject.toml when not installed
    assert listing["countdown"]["origin"] in ("curate", "pyproject.toml")

    class P:
        source, domain, metadata = "whatever", "shouting", {}
    assert registry.verifier_for(P()) == "shout"


def test_duplicate_name_is_an_error(plugin_path):
    _install_plugin(plugin_path, "shout_plugin", {"countdown": "shout_plugin:Shout"}, "shout_plugin", PLUGIN)
    with pytest.raises(registry.RegistryError, match="registered twice"):
        registry.names()


def test_verifier_chosen_from_source_then_domain():
    class P:
        def __init__(self, source, domain, metadata=None):
            self.source, self.domain, self.metadata = source, domain, metadata or {}

    registry.clear_cache()
    assert registry.verifier_for(P("countdown", "game")) == "countdown"
    assert registry.verifier_for(P("math500", "math")) == "math"
    assert registry.verifier_for(P("humaneval", "code")) == "code"
    assert registry.verifier_for(P("reasoning_gym/leg_counting", "logic")) == "reasoning_gym"
    assert registry.verifier_for(P("gpqa_diamond", "science")) == "multiple_choice"
    assert registry.verifier_for(P("hex-phi", "safety")) == "safety"
    # what curate/tasks writes: hyphenated sources and metadata["verifier"] names
    assert registry.verifier_for(P("reasoning-gym/chain_sum", "math", {"verifier": "reasoning-gym"})) == "reasoning_gym"
    assert registry.verifier_for(P("reasoning-gym/chain_sum", "math")) == "reasoning_gym"  # source beats domain
    assert registry.verifier_for(P("gpqa-diamond", "science")) == "multiple_choice"
    assert registry.verifier_for(P("x", "math", {"verifier": "countdown"})) == "countdown"
    assert registry.get_verifier("reasoning-gym").name == "reasoning_gym"
    assert registry.verifier_for(P("x", "poetry")) is None


FUSSY = PLUGIN + '''

class Needy(Verifier):
    """Needs a word list to judge against."""
    name = "needy"

    def __init__(self, words, limit=None, width: int = 3):
        self.words, self.total = words, sum(limit or [])  # a limit of strings fails here, inside the constructor
        self.pad = " " * width

    def check(self, problem, response):
        return self.verdict("correct" if response in self.words else "incorrect")


class Broken(Verifier):
    """Raises a TypeError of its own with no options at all."""
    name = "broken"

    def __init__(self):
        len(None)
'''


def test_option_errors_name_the_real_cause(plugin_path):
    """A name the constructor has no parameter for is "does not accept"; a needed option left out is named as
    missing; a TypeError from inside the constructor is the value's problem, naming the option and the message."""
    _install_plugin(plugin_path, "shout_plugin", {"needy": "shout_plugin:Needy", "broken": "shout_plugin:Broken"},
                    "shout_plugin", FUSSY)
    with pytest.raises(registry.RegistryError, match=r"does not accept options \['nope'\]") as e:
        registry.get_verifier("needy", words=["a"], nope=1)
    assert not isinstance(e.value, registry.OptionsError)

    with pytest.raises(registry.OptionsError, match="needs option 'words'") as e:
        registry.get_verifier("needy")
    assert e.value.missing == "words"

    with pytest.raises(registry.OptionsError) as e:  # the default is None: every option given is named
        registry.get_verifier("needy", words=["a"], limit=["x"])
    assert str(e.value).startswith("verifier 'needy': cannot use options words=['a'], limit=['x']: TypeError: ")
    assert "unsupported operand" in str(e.value) and "does not accept" not in str(e.value) and e.value.missing is None

    with pytest.raises(registry.OptionsError, match="option width='3' is of type str, not int like its default 3: "
                                                    "TypeError: can't multiply sequence"):
        registry.get_verifier("needy", words=["a"], width="3")
    assert registry.get_verifier("needy", words=["a"], width=2).pad == "  "

    with pytest.raises(registry.RegistryError, match="verifier 'broken' cannot be built: TypeError") as e:
        registry.get_verifier("broken")
    assert not isinstance(e.value, registry.OptionsError)
    listing = {d["name"]: d["description"] for d in registry.describe_all()}
    assert "broken" in listing["broken"] and listing["needy"] == "Needs a word list to judge against."


def test_a_built_in_value_of_the_wrong_type_is_named_not_refused():
    with pytest.raises(registry.OptionsError, match="option batch_size='4' is of type str, not int like its default 8: "
                                                    "TypeError: '<' not supported") as e:
        registry.get_verifier("reward_model", model="org/reward-model", batch_size="4")
    assert "does not accept" not in str(e.value)
    assert registry.get_verifier("reward_model", model="org/reward-model", threshold=1).threshold == 1.0  # int for a float
