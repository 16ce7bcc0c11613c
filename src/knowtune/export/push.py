"""`knowtune export --push REPO`: the export folder to the Hugging Face Hub, when that can be done."""

from __future__ import annotations

import os
from pathlib import Path


def push_export(folder: Path, repo: str, console) -> bool:
    """Upload `folder` to `repo`; when offline or without a token, say so and leave everything where it is."""
    from huggingface_hub import get_token

    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes"):
        console.print(f"export: not pushed to {repo}: HF_HUB_OFFLINE is set; everything is in {folder}")
        return False
    if not get_token():
        console.print(f"export: not pushed to {repo}: no Hugging Face token (set HF_TOKEN or run `hf auth login`); "
                      f"everything is in {folder}")
        return False
    from huggingface_hub import HfApi

    try:
        api = HfApi()
        api.create_repo(repo, exist_ok=True)
        api.upload_folder(folder_path=str(folder), repo_id=repo, commit_message="knowtune export")
    except Exception as err:  # the network, a permission, a name taken: the message says which
        console.print(f"export: not pushed to {repo}: {type(err).__name__}: {str(err).splitlines()[0]}; "
                      f"everything is in {folder}")
        return False
    console.print(f"export: pushed {folder} to https://huggingface.co/{repo}")
    return True
