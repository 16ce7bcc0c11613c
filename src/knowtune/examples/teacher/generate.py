"""Teacher generation: one request per chunk; its pairs checked, judged, reworded and given closed-book rivals.

A worker takes a chunk through all of its steps before it takes the next, so
when the budget runs out the chunks already started are finished, not half
of every chunk judged. The judge and the closed-book answers of one chunk
overlap with other chunks' first requests, so with follow-up steps there are
twice as many workers as teacher slots: the slots stay full while some
workers wait on the judge.

Before the first chunk, each server is probed once for structured output
(structured.py) and the build log says which path it took. With
`teacher.batch` the same steps run in passes around Batch API jobs (batch.py).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ...config import JudgeConfig, TeacherConfig
from ...progress import console
from ...records import Chunk, Document, Example, stable_id
from .batch import BatchQueue
from .cache import ReplyCache
from .client import BudgetReached, Deferred, Endpoint, RequestFailed, Tally, open_client
from .judge import judge_pair
from .paraphrase import ask_rewordings, check_rewordings
from .parse import check_pairs, question_key
from .preference import closed_book_answer, preference_example, same_answer, teacher_metadata
from .prompts import render, teacher_prompts
from .structured import pairs_schema, probe, structured_reply


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
    reword: Endpoint | None
    prompts: dict[str, str]
    pairs: int
    paraphrases: int


def generate(chunks: list[Chunk], docs: dict[str, Document], teacher: TeacherConfig, judge: JudgeConfig | None,
             cache_dir: Path, preference: bool = False, progress: Callable[[int, int], None] | None = None,
             prompts: dict[str, str] | None = None, log: Callable[[str], None] | None = None) -> TeacherResult:
    """Question-answer pairs for `chunks`; `progress(done, total)` is called as each chunk is finished.

    `prompts`: the texts to send by step (`teacher_prompts`; the examples stage passes those its manifest
    hashed), else read from the configs' prompt files now. `log`: where the lines for the build log go
    (which output path each server took, batch progress); the console by default."""
    for chunk in chunks:
        if chunk.document_id not in docs:
            raise ValueError(f"chunk {chunk.id}: its document {chunk.document_id} is not among the documents given")
    prompts = prompts if prompts is not None else teacher_prompts(teacher, judge, preference)
    log = log if log is not None else console.print
    # The event loop lives only inside this call: callers see a plain function.
    return asyncio.run(_generate(chunks, docs, teacher, judge, Path(cache_dir), prompts, progress, log))


async def _generate(chunks, docs, teacher, judge, cache_dir, prompts, progress, log) -> TeacherResult:
    start = time.monotonic()
    tally = Tally(budget=teacher.budget_tokens)
    clients = [open_client(teacher.base_url, teacher.api_key_env, teacher.timeout, "teacher")]
    caches = {"qa": ReplyCache(cache_dir / "qa.jsonl"), "probe": ReplyCache(cache_dir / "probe.jsonl")}
    paths: dict[str, str] = {}
    try:
        steps = _Steps(
            teacher=Endpoint(clients[0], teacher.model, teacher.temperature, teacher.max_tokens, teacher.max_retries,
                             teacher.timeout, asyncio.Semaphore(teacher.concurrency), caches["qa"], tally),
            judge=None, closed=None, reword=None, prompts=prompts, pairs=teacher.pairs_per_chunk,
            paraphrases=teacher.paraphrases if "paraphrase" in prompts else 0,
        )
        if chunks and teacher.structured:
            paths["teacher_path"] = await probe(steps.teacher, teacher.base_url, caches["probe"])
            log(f"teacher {teacher.model} at {teacher.base_url}: {paths['teacher_path']}")
        elif chunks:
            paths["teacher_path"] = "prompt path (teacher.structured is off)"
        # Same server, model and slots as the teacher, and so the same output path; only the cache file differs.
        if "closed_book" in prompts:
            caches["closed_book"] = ReplyCache(cache_dir / "closed_book.jsonl")
            steps.closed = dataclasses.replace(steps.teacher, cache=caches["closed_book"])
        if steps.paraphrases:
            caches["paraphrase"] = ReplyCache(cache_dir / "paraphrase.jsonl")
            steps.reword = dataclasses.replace(steps.teacher, cache=caches["paraphrase"])
        if judge is not None:
            steps.judge = _judge_endpoint(judge, teacher, tally, clients, caches, cache_dir)
            if chunks and (judge.structured if judge.structured is not None else teacher.structured):
                base_url = judge.base_url or teacher.base_url
                paths["judge_path"] = await probe(steps.judge, base_url, caches["probe"])
                log(f"judge {steps.judge.model} at {base_url}: {paths['judge_path']}")
            elif chunks:
                paths["judge_path"] = "prompt path (judge.structured is off)"

        workers = teacher.concurrency * (2 if len(prompts) > 1 else 1)
        if teacher.batch:
            outcomes = await _batched(steps, chunks, docs, teacher, clients[0], caches, cache_dir, workers, progress,
                                      log)
        else:
            outcomes = await _one_pass(steps, chunks, docs, workers, progress)
    finally:
        for cache in caches.values():
            cache.close()
        for client in clients:
            await client.close()

    result = TeacherResult()
    for outcome in outcomes:  # in chunk order, whatever order the replies came in
        result.examples += outcome.examples
        result.preference += outcome.preference
        result.rejected += outcome.rejected
    result.usage = tally.usage(time.monotonic() - start) | paths
    return result


async def _one_pass(steps: _Steps, chunks: list[Chunk], docs: dict[str, Document], workers: int,
                    progress) -> list[TeacherResult | None]:
    """Every chunk through its steps; None for a chunk whose steps wait for a batch."""
    outcomes: list[TeacherResult | None] = [None] * len(chunks)
    todo = iter(enumerate(chunks))  # shared by the workers: each chunk is taken once
    done = 0

    async def worker() -> None:
        nonlocal done
        for i, chunk in todo:
            try:
                outcomes[i] = await _one_chunk(steps, chunk, docs[chunk.document_id])
            except Deferred:
                continue
            done += 1
            if progress is not None:
                progress(done, len(chunks))

    try:
        async with asyncio.TaskGroup() as group:  # an error in one worker (disk full) cancels the others
            for _ in range(min(workers, len(chunks))):
                group.create_task(worker())
    except ExceptionGroup as errors:
        raise errors.exceptions[0] from None  # the error itself, not a group of one
    return outcomes


async def _batched(steps: _Steps, chunks, docs, teacher: TeacherConfig, client, caches, cache_dir: Path,
                   workers: int, progress, log) -> list[TeacherResult]:
    """Passes over every chunk, each followed by the batch of the requests it could not find in the cache."""
    tally = steps.teacher.tally
    queue = BatchQueue(client, cache_dir, caches, tally, teacher.batch_poll_seconds, teacher.max_retries, log)
    for ep in (steps.teacher, steps.closed, steps.reword):
        if ep is not None:
            ep.batch = queue  # the judge, on a server of its own or with a model of its own, is asked directly
    await queue.resume()
    while True:
        # Each pass walks every chunk from its first step: what the budget sees is this pass's replies.
        tally.spent = tally.cached = 0
        outcomes = await _one_pass(steps, chunks, docs, workers, None)
        if not queue.pending:
            break
        await queue.flush()
    if progress is not None:
        progress(len(chunks), len(chunks))
    return outcomes


def _judge_endpoint(judge: JudgeConfig, teacher: TeacherConfig, tally: Tally, clients: list, caches: dict,
                    cache_dir: Path) -> Endpoint:
    base_url = judge.base_url or teacher.base_url
    # The teacher's key is sent only to the teacher's server: a judge elsewhere names its own.
    key_env = judge.api_key_env
    if key_env is None and base_url == teacher.base_url:
        key_env = teacher.api_key_env
    timeout = judge.timeout or teacher.timeout
    clients.append(open_client(base_url, key_env, timeout, "judge"))
    caches["judge"] = ReplyCache(cache_dir / "judge.jsonl")
    # Temperature 0: the same pair should get the same verdict every time it is asked.
    return Endpoint(clients[-1], judge.model or teacher.model, 0.0, judge.max_tokens, teacher.max_retries, timeout,
                    asyncio.Semaphore(judge.concurrency or teacher.concurrency), caches["judge"], tally)


def qa_messages(template: str, chunk: Chunk, doc: Document, pairs: int) -> list[dict[str, str]]:
    about = chunk.metadata.get("about") or doc.metadata.get("title") or doc.path
    prompt = render(template, pairs=pairs, path=doc.path, about=about, passage=chunk.text)
    return [{"role": "user", "content": prompt}]


async def _settle(*aws):
    """gather that lets every request finish (or join the batch) before the first error is raised, so one
    Deferred does not leave a sibling request uncollected until the next pass."""
    results = await asyncio.gather(*aws, return_exceptions=True)
    for r in results:
        if isinstance(r, BaseException):
            raise r
    return results


async def _one_chunk(steps: _Steps, chunk: Chunk, doc: Document) -> TeacherResult:
    out = TeacherResult()

    def reject(reason: str, question: str | None = None) -> None:
        out.rejected.append({"chunk_id": chunk.id, **({"question": question} if question else {}), "reason": reason})

    messages = qa_messages(steps.prompts["qa"], chunk, doc, steps.pairs)
    try:
        got = await structured_reply(steps.teacher, messages, pairs_schema(steps.pairs), "qa", chunk.id)
    except BudgetReached:
        reject("budget reached")
        return out
    except RequestFailed as err:
        reject(str(err))
        return out
    if got.value is None:
        reject(got.why)
        return out
    pairs, dropped = check_pairs(got.value, chunk.text)
    for row in dropped:
        cut = got.reply.finish_reason == "length" and "question" not in row
        reject(row["reason"] + (" (the reply was cut off at max_tokens)" if cut else ""), row.get("question"))

    kept: list[tuple[dict, str | None]] = [(pair, None) for pair in pairs]
    if steps.judge is not None:
        verdicts = await _settle(*(
            judge_pair(steps.judge, steps.prompts["judge"], pair, chunk.text, chunk.id) for pair in pairs))
        kept = []
        for pair, (keep, reason) in zip(pairs, verdicts):
            if keep:
                kept.append((pair, reason))
            else:
                reject(reason, pair["question"])

    # Rewordings and closed-book answers of every kept pair at once: in batch mode they share one batch.
    reworded = [_reword(steps, pair["question"], chunk.id) for pair, _ in kept] if steps.reword else []
    closed = [closed_book_answer(steps.closed, steps.prompts["closed_book"], pair["question"], chunk.id)
              for pair, _ in kept] if steps.closed else []
    answers = await _settle(*reworded, *closed)
    reworded, closed = answers[: len(reworded)], answers[len(reworded):]

    taken = {question_key(pair["question"]) for pair, _ in kept}  # a rewording must not repeat another question
    for k, (pair, reason) in enumerate(kept):
        fact = stable_id(chunk.id, pair["question"])
        out.examples.append(qa_example(chunk, doc, pair, steps.teacher.model, reason, fact, 0))
        if not reworded:
            continue
        got, why = reworded[k]
        if got is None:
            reject(f"no rewordings: {why}", pair["question"])
            continue
        texts, dropped = check_rewordings(got, pair["question"], steps.paraphrases, taken)
        for row in dropped:
            reject(row["reason"], row.get("question") or pair["question"])
        for i, text in enumerate(texts, 1):
            reworded_pair = {**pair, "question": text}
            out.examples.append(qa_example(chunk, doc, reworded_pair, steps.teacher.model, reason, fact, i))

    for (pair, _), (answer, why) in zip(kept, closed):
        if answer is None:
            reject(f"no preference pair: {why}", pair["question"])
        elif same_answer(answer, pair["answer"]):
            reject("no preference pair: the closed-book answer is the same as the grounded one", pair["question"])
        else:
            out.preference.append(preference_example(chunk, doc, pair, answer, steps.teacher.model))
    return out


async def _reword(steps: _Steps, question: str, label: str):
    """(the reply, "") or (None, why there is none): one pair's failed request does not fail the chunk."""
    try:
        return await ask_rewordings(steps.reword, steps.prompts["paraphrase"], question, steps.paraphrases, label), ""
    except BudgetReached:
        return None, "budget reached before the rewordings"
    except RequestFailed as err:
        return None, f"rewording request failed: {err}"


def qa_example(chunk: Chunk, doc: Document, pair: dict[str, str], model: str, judge_reason: str | None,
               fact: str, phrasing: int) -> Example:
    metadata = teacher_metadata(chunk, doc, pair, model)
    if judge_reason is not None:
        metadata["judge_reason"] = judge_reason
    # One fact in every wording of it (paraphrase.py): the curate stage holds out facts, not strings.
    metadata["fact"] = fact
    metadata["phrasing"] = phrasing
    return Example(
        id=stable_id("qa", "teacher", chunk.id, pair["question"]),
        kind="qa",
        document_id=chunk.document_id,
        provenance=[chunk.id],
        messages=[{"role": "user", "content": pair["question"]}, {"role": "assistant", "content": pair["answer"]}],
        metadata=metadata,
    )
