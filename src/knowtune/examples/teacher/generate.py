"""Teacher generation: one request per chunk; its pairs checked, judged and given closed-book rivals.

A worker takes a chunk through all of its steps before it takes the next, so
when the budget runs out the chunks already started are finished, not half
of every chunk judged. The judge and the closed-book answers of one chunk
overlap with other chunks' first requests, so with follow-up steps there are
twice as many workers as teacher slots: the slots stay full while some
workers wait on the judge.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ...config import JudgeConfig, TeacherConfig
from ...records import Chunk, Document, Example, stable_id
from .cache import ReplyCache
from .client import BudgetReached, Endpoint, RequestFailed, Tally, ask, open_client
from .judge import judge_pair
from .parse import parse_pairs
from .preference import closed_book_answer, preference_example, same_answer, teacher_metadata
from .prompts import render, teacher_prompts


@dataclass
class TeacherResult:
    examples: list[Example] = field(default_factory=list)  # kind "qa"
    preference: list[Example] = field(default_factory=list)  # kind "preference", only when asked for
    rejected: list[dict] = field(default_factory=list)  # {"chunk_id", "question"?, "reason"}
    usage: dict = field(default_factory=dict)


@dataclass
class _Steps:
    """What every chunk's steps share: the endpoints and the prompts."""

    teacher: Endpoint
    judge: Endpoint | None
    closed: Endpoint | None
    prompts: dict[str, str]
    pairs: int


def generate(chunks: list[Chunk], docs: dict[str, Document], teacher: TeacherConfig, judge: JudgeConfig | None,
             cache_dir: Path, preference: bool = False, progress: Callable[[int, int], None] | None = None,
             prompts: dict[str, str] | None = None) -> TeacherResult:
    """Question-answer pairs for `chunks`; `progress(done, total)` is called as each chunk is finished.

    `prompts`: the texts to send by step (`teacher_prompts`; the examples stage passes those its manifest
    hashed), else read from the configs' prompt files now."""
    for chunk in chunks:
        if chunk.document_id not in docs:
            raise ValueError(f"chunk {chunk.id}: its document {chunk.document_id} is not among the documents given")
    prompts = prompts if prompts is not None else teacher_prompts(teacher, judge, preference)
    # The event loop lives only inside this call: callers see a plain function.
    return asyncio.run(_generate(chunks, docs, teacher, judge, Path(cache_dir), prompts, progress))


async def _generate(chunks, docs, teacher, judge, cache_dir, prompts, progress) -> TeacherResult:
    start = time.monotonic()
    tally = Tally(budget=teacher.budget_tokens)
    clients = [open_client(teacher.base_url, teacher.api_key_env, teacher.timeout, "teacher")]
    caches = [ReplyCache(cache_dir / "qa.jsonl")]
    try:
        steps = _Steps(
            teacher=Endpoint(clients[0], teacher.model, teacher.temperature, teacher.max_tokens, teacher.max_retries,
                             teacher.timeout, asyncio.Semaphore(teacher.concurrency), caches[0], tally),
            judge=None, closed=None, prompts=prompts, pairs=teacher.pairs_per_chunk,
        )
        if "closed_book" in prompts:
            caches.append(ReplyCache(cache_dir / "closed_book.jsonl"))
            # Same server, model and slots as the teacher; only the cache file differs.
            steps.closed = dataclasses.replace(steps.teacher, cache=caches[-1])
        if judge is not None:
            steps.judge = _judge_endpoint(judge, teacher, tally, clients, caches, cache_dir)

        outcomes: list[TeacherResult | None] = [None] * len(chunks)
        todo = iter(enumerate(chunks))  # shared by the workers: each chunk is taken once
        done = 0

        async def worker() -> None:
            nonlocal done
            for i, chunk in todo:
                outcomes[i] = await _one_chunk(steps, chunk, docs[chunk.document_id])
                done += 1
                if progress is not None:
                    progress(done, len(chunks))

        workers = teacher.concurrency * (2 if len(prompts) > 1 else 1)
        try:
            async with asyncio.TaskGroup() as group:  # an error in one worker (disk full) cancels the others
                for _ in range(min(workers, len(chunks))):
                    group.create_task(worker())
        except ExceptionGroup as errors:
            raise errors.exceptions[0] from None  # the error itself, not a group of one
    finally:
        for cache in caches:
            cache.close()
        for client in clients:
            await client.close()

    result = TeacherResult()
    for outcome in outcomes:  # in chunk order, whatever order the replies came in
        result.examples += outcome.examples
        result.preference += outcome.preference
        result.rejected += outcome.rejected
    result.usage = tally.usage(time.monotonic() - start)
    return result


def _judge_endpoint(judge: JudgeConfig, teacher: TeacherConfig, tally: Tally, clients: list, caches: list,
                    cache_dir: Path) -> Endpoint:
    base_url = judge.base_url or teacher.base_url
    # The teacher's key is sent only to the teacher's server: a judge elsewhere names its own.
    key_env = judge.api_key_env
    if key_env is None and base_url == teacher.base_url:
        key_env = teacher.api_key_env
    timeout = judge.timeout or teacher.timeout
    clients.append(open_client(base_url, key_env, timeout, "judge"))
    caches.append(ReplyCache(cache_dir / "judge.jsonl"))
    # Temperature 0: the same pair should get the same verdict every time it is asked.
    return Endpoint(clients[-1], judge.model or teacher.model, 0.0, judge.max_tokens, teacher.max_retries, timeout,
                    asyncio.Semaphore(judge.concurrency or teacher.concurrency), caches[-1], tally)


def qa_messages(template: str, chunk: Chunk, doc: Document, pairs: int) -> list[dict[str, str]]:
    about = chunk.metadata.get("about") or doc.metadata.get("title") or doc.path
    prompt = render(template, pairs=pairs, path=doc.path, about=about, passage=chunk.text)
    return [{"role": "user", "content": prompt}]


async def _one_chunk(steps: _Steps, chunk: Chunk, doc: Document) -> TeacherResult:
    out = TeacherResult()

    def reject(reason: str, question: str | None = None) -> None:
        out.rejected.append({"chunk_id": chunk.id, **({"question": question} if question else {}), "reason": reason})

    try:
        reply = await ask(steps.teacher, qa_messages(steps.prompts["qa"], chunk, doc, steps.pairs), chunk.id)
    except BudgetReached:
        reject("budget reached")
        return out
    except RequestFailed as err:
        reject(str(err))
        return out
    pairs, dropped = parse_pairs(reply.content, chunk.text)
    for row in dropped:
        cut = reply.finish_reason == "length" and "question" not in row
        reject(row["reason"] + (" (the reply was cut off at max_tokens)" if cut else ""), row.get("question"))

    kept: list[tuple[dict, str | None]] = [(pair, None) for pair in pairs]
    if steps.judge is not None:
        verdicts = await asyncio.gather(*(
            judge_pair(steps.judge, steps.prompts["judge"], pair, chunk.text, chunk.id) for pair in pairs))
        kept = []
        for pair, (keep, reason) in zip(pairs, verdicts):
            if keep:
                kept.append((pair, reason))
            else:
                reject(reason, pair["question"])
    out.examples = [qa_example(chunk, doc, pair, steps.teacher.model, reason) for pair, reason in kept]

    if steps.closed is not None:
        answers = await asyncio.gather(*(
            closed_book_answer(steps.closed, steps.prompts["closed_book"], pair["question"], chunk.id)
            for pair, _ in kept))
        for (pair, _), (answer, why) in zip(kept, answers):
            if answer is None:
                reject(f"no preference pair: {why}", pair["question"])
            elif same_answer(answer, pair["answer"]):
                reject("no preference pair: the closed-book answer is the same as the grounded one", pair["question"])
            else:
                out.preference.append(preference_example(chunk, doc, pair, answer, steps.teacher.model))
    return out


def qa_example(chunk: Chunk, doc: Document, pair: dict[str, str], model: str, judge_reason: str | None) -> Example:
    metadata = teacher_metadata(chunk, doc, pair, model)
    if judge_reason is not None:
        metadata["judge_reason"] = judge_reason
    return Example(
        id=stable_id("qa", "teacher", chunk.id, pair["question"]),
        kind="qa",
        document_id=chunk.document_id,
        provenance=[chunk.id],
        messages=[{"role": "user", "content": pair["question"]}, {"role": "assistant", "content": pair["answer"]}],
        metadata=metadata,
    )
