"""An evaluation every N steps while training: knowledge gained against general knowledge kept.

Gekhman et al. (2024) found that facts a model did not know are learned late and, once learned, raise
hallucination elsewhere. Asking a fixed small sample of knowledge questions and general questions every N
steps plots both against the steps, so a user sees where to stop. It lives here, with the other questions
and scores, and the pipeline hands it to the train stage as a callback.
"""

from __future__ import annotations

import json
import random
from contextlib import nullcontext
from pathlib import Path

from transformers import TrainerCallback

from ..records import atomic_write
from .general import general_correct
from .generate import generate
from .metrics import f1
from .questions import general_questions

FILE = "during.jsonl"


class DuringTraining(TrainerCallback):
    def __init__(self, knowledge: list, general: list, tokenizer, every: int, out: Path, attention: str,
                 bf16: bool, max_new_tokens: int = 48):
        self.knowledge, self.general, self.tokenizer = knowledge, general, tokenizer
        self.every, self.out, self.attention, self.bf16 = every, out, attention, bf16
        self.max_new_tokens = max_new_tokens
        self.rows: list[dict] = []

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step % self.every or not state.is_world_process_zero or model is None:
            return control
        self.rows.append({"step": state.global_step, **self.ask(model)})
        atomic_write(self.out / FILE, "".join(json.dumps(r) + "\n" for r in self.rows))
        return control

    def ask(self, model) -> dict:
        import torch

        from ..train.attention import hf_model

        base = hf_model(model)
        kernel = base.config._attn_implementation
        was_training = model.training
        # generation attends as the model does outside training (the packed-batch kernel needs packed batches)
        base.set_attn_implementation(self.attention)
        model.eval()
        try:
            with torch.autocast("cpu", dtype=torch.bfloat16) if self.bf16 else nullcontext():
                known = generate(model, self.tokenizer, [q.messages for q in self.knowledge], self.max_new_tokens, 16,
                                 "asking during training")
                general = generate(model, self.tokenizer, [q.messages for q in self.general], 24, 16,
                                   "asking during training")
        finally:
            base.set_attn_implementation(kernel)
            model.train(was_training)
        return {
            "knowledge_f1": round(sum(f1(g.text, q.reference) for q, g in zip(self.knowledge, known))
                                  / max(1, len(known)), 4),
            "general_exact_match": round(sum(general_correct(g.text, list(q.answers), q.messages[-1]["content"])
                                             for q, g in zip(self.general, general)) / max(1, len(general)), 4),
        }


def during_training(settings, dataset: Path, tokenizer_dir: Path, out: Path) -> list[TrainerCallback]:
    """The callback for `train.during_training`, or none when it is off."""
    if settings.during_training is None:
        return []
    from ..chat import load_tokenizer
    from ..curate import load_split
    from ..train.model import precision_of
    from .questions import _one_per_fact, _question

    tokenizer, precision = load_tokenizer(tokenizer_dir), precision_of(settings)
    rng = random.Random(0)
    pool = _one_per_fact([e for e in load_split(dataset, "knowledge") if e.messages])
    knowledge = [_question(e, "knowledge") for e in rng.sample(pool, min(len(pool), settings.during_training.samples))]
    general = general_questions(settings.during_training.samples, rng)
    return [DuringTraining(knowledge, general, tokenizer, settings.during_training.every, out, settings.attention,
                           precision == "bf16")]
