"""Parsing the result check's JSON judgement: the shapes models answer in, and what is refused."""

from __future__ import annotations

import pytest

from pgmcp.ask.result_check import ResultCheck, parse_judgement
from pgmcp.errors import GenerationFailed

GOOD = [
    ('{"confidence": 0.8, "explanation": "Right table."}', 0.8, "Right table."),
    ('```json\n{"confidence": 1, "explanation": "Exact."}\n```', 1.0, "Exact."),
    ('Sure! {"confidence": "0.25", "explanation": " Wrong join. "} Hope it helps.', 0.25, "Wrong join."),
    ('{"confidence": 85, "explanation": "as a percentage"}', 0.85, "as a percentage"),
    ('{"confidence": "40%", "explanation": "percent string"}', 0.4, "percent string"),
    ('{"confidence": 7000, "explanation": "clamped"}', 1.0, "clamped"),
    ('{"confidence": -1, "explanation": "clamped"}', 0.0, "clamped"),
    ('{"confidence": 0.5}', 0.5, ""),
]
BAD = [
    ("Looks right to me.", "not JSON"),
    ('{"confidence": 0.5, "explanation": ', "not JSON"),
    ('{"confidence": 0.5, explanation: x}', "not valid JSON"),
    ('{"explanation": "fine"}', "no numeric 'confidence'"),
    ('{"confidence": true}', "no numeric 'confidence'"),
    ('{"confidence": "high"}', "no numeric 'confidence'"),
]


@pytest.mark.parametrize(("answer", "confidence", "explanation"), GOOD)
def test_judgements_are_parsed(answer: str, confidence: float, explanation: str) -> None:
    judged = parse_judgement(answer)
    assert isinstance(judged, ResultCheck)
    assert judged.confidence == pytest.approx(confidence)
    assert judged.explanation == explanation


@pytest.mark.parametrize(("answer", "message"), BAD)
def test_unusable_judgements_are_generation_failed(answer: str, message: str) -> None:
    with pytest.raises(GenerationFailed, match=message):
        parse_judgement(answer)
