"""A judge model for the evaluation: is the answer correct against the reference? With a reason.

As the FAQ-bot recipe of ../shared/seeds/001 judges: the keywords and the numbers of the reference must be
in the answer; extra correct detail is fine, a contradiction is not. The reply is asked for as JSON through
the server's structured output when it honours it (the teacher's mechanism, examples/teacher/structured.py),
parsed strictly, asked once more when it is not a verdict, and counted as unjudged after that: never as
correct. judged + unjudged = questions, always. Replies are cached like the teacher's, so a rerun pays
nothing twice.
"""

from __future__ import annotations

from pathlib import Path

VERDICTS = ("correct", "incorrect")
SCHEMA = {"type": "object",
          "properties": {"reason": {"type": "string"}, "verdict": {"type": "string", "enum": list(VERDICTS)}},
          "required": ["reason", "verdict"], "additionalProperties": False}
PROMPT = """You grade an answer against a reference answer.

Question: {question}
Reference answer: {reference}
Answer to grade: {answer}

The answer is correct when it states what the reference states: its key words and its numbers must be there.
More correct detail is fine; anything that contradicts the reference makes it incorrect.
Reply with JSON only: {"reason": "<one sentence>", "verdict": "correct" or "incorrect"}."""
AGAIN = "\n\nYour last reply was not that JSON object. Reply with the JSON object only."


def judge_rows(rows: list[dict], cfg, cache_dir: Path) -> None:
    """Add {"judge": {"verdict", "reason"}} to each row (verdict None when unjudged), in place."""
    from ..examples.teacher.structured import ask_structured

    prompt = Path(cfg.prompt).read_text(encoding="utf-8") if cfg.prompt else PROMPT
    todo = list(range(len(rows)))
    for attempt in (0, 1):  # a malformed verdict is asked once more, with a reminder
        requests = [([{"role": "user", "content": _render(prompt, rows[i]) + (AGAIN if attempt else "")}],
                     f"judge {rows[i]['set']} {rows[i]['model']} {rows[i]['id']}") for i in todo]
        replies, _ = ask_structured(cfg.base_url, cfg.model, requests, SCHEMA, "judge", cache_dir,
                                    api_key_env=cfg.api_key_env, max_tokens=cfg.max_tokens,
                                    concurrency=cfg.concurrency, timeout=cfg.timeout)
        again = []
        for i, reply in zip(todo, replies):
            verdict = _verdict(reply)
            if verdict is None:
                again.append(i)
                why = reply if isinstance(reply, str) else (reply.why or "not a verdict")
                rows[i]["judge"] = {"verdict": None, "reason": f"unjudged: {why}"}
            else:
                rows[i]["judge"] = verdict
        todo = again
        if not todo:
            break


def _render(prompt: str, row: dict) -> str:
    from ..examples.teacher.prompts import render

    return render(prompt, question=row["question"], reference=row["reference"], answer=row["generation"])


def _verdict(reply) -> dict | None:
    """A well-formed verdict, or None: a failed request, a reply that is not the object, a verdict not in VERDICTS."""
    if isinstance(reply, str) or not isinstance(reply.value, dict):
        return None
    verdict, reason = reply.value.get("verdict"), reply.value.get("reason")
    if verdict not in VERDICTS or not isinstance(reason, str):
        return None
    return {"verdict": verdict, "reason": reason.strip()}


def judge_scores(rows: list[dict]) -> dict:
    judged = [r for r in rows if r.get("judge", {}).get("verdict") is not None]
    correct = sum(r["judge"]["verdict"] == "correct" for r in judged)
    return {"judge_accuracy": round(correct / len(judged), 4) if judged else None, "judged": len(judged),
            "unjudged": len(rows) - len(judged)}
