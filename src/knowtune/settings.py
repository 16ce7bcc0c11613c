"""What each stage depends on: one settings value per stage, built from the config in one place.

The value a stage's function receives is the value its manifest hashes, so a
setting cannot change a stage's output without rerunning it: nothing else of
the config reaches the stage. Defaults that come from other settings
(`build.chunk_tokens` and `curate.max_tokens` from
`train.max_length`) are derived here, on every run, and never written back
into the config the user wrote.
"""

from __future__ import annotations

from pydantic import Field

from .config import (Config, CurateConfig, EvalConfig, ExecutorConfig, ExportConfig, JudgeConfig, RedactConfig,
                     Source, Strict, TeacherConfig, TokenizerConfig, chunk_tokens)


class IngestSettings(Strict):
    sources: list[Source]
    redact: RedactConfig


class BaseSettings(Strict):
    base_model: str  # a GGUF file is converted once; anything else is loaded where it is needed


class TokenizerSettings(Strict):
    base_model: str
    system_prompt: str | None
    tokenizer: TokenizerConfig  # a model from scratch only


class ChunkSettings(Strict):
    chunk_tokens: int
    chunk_overlap: int


class ExamplesSettings(Strict):
    raw: bool
    instructions: bool
    qa: bool
    phrasings: int
    preference: bool
    teacher: TeacherConfig | None
    judge: JudgeConfig | None
    # The texts of the prompts, not their paths: editing a prompt file reruns generation (the teacher's
    # cache still answers every request whose prompt did not change).
    prompts: dict[str, str]


class CurateSettings(Strict):
    curate: CurateConfig
    allow: list[str]  # ingest.redact.allow: the leak check rescans with ingest's detector and its allow-list
    # Where the work runs, not what it computes: the dataset is the same bytes on any executor (tests show
    # it), so changing it reruns nothing. The one setting a stage reads that its hash leaves out.
    executor: ExecutorConfig = Field(exclude=True)


def stage_settings(cfg: Config) -> dict:
    """Each stage's settings, by stage name."""
    from .examples.stage import prompt_texts

    b, train = cfg.build, cfg.train
    return {
        "ingest": IngestSettings(sources=cfg.sources, redact=cfg.ingest.redact),
        "base": BaseSettings(base_model=train.base_model),
        "tokenizer": TokenizerSettings(base_model=train.base_model, system_prompt=train.system_prompt,
                                       tokenizer=b.tokenizer),
        "chunk": ChunkSettings(chunk_tokens=chunk_tokens(cfg), chunk_overlap=b.chunk_overlap),
        "examples": ExamplesSettings(raw=b.raw, instructions=b.instructions, qa=b.qa, phrasings=b.phrasings,
                                     preference=b.preference,
                                     teacher=b.teacher, judge=b.judge, prompts=prompt_texts(b)),
        "curate": CurateSettings(
            curate=cfg.curate.model_copy(update={"max_tokens": cfg.curate.max_tokens or train.max_length}),
            allow=cfg.ingest.redact.allow, executor=cfg.executor),
        "train": train,
        "eval": EvalSettings(eval=cfg.eval, base_model=train.base_model),
        "export": ExportSettings(export=cfg.export, name=cfg.name, base_model=train.base_model,
                                 system_prompt=train.system_prompt, max_length=train.max_length),
    }


class ExportSettings(Strict):
    export: ExportConfig
    name: str  # the run's, for the model card and the commands it prints
    base_model: str
    system_prompt: str | None  # the Modelfile's SYSTEM
    max_length: int  # the Modelfile's num_ctx: the length the model was trained at


class EvalSettings(Strict):
    eval: EvalConfig
    base_model: str  # the base model answers the same questions (not for a model from scratch)
