"""Train: the curated dataset, tokenised with its loss mask, through TRL's SFTTrainer.

Nothing heavy is imported here: build and curate use train's chat template and
tokenisation without paying for transformers' trainer machinery.
"""


def run_train(*args, **kwargs):
    from .run import run_train as run

    return run(*args, **kwargs)
