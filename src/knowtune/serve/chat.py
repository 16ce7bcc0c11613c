"""A terminal chat with a trained model, through the chat template it was trained with."""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

from rich.console import Console
from rich.markup import escape

from ..progress import quiet_libraries
from ..chat import prompt_ids, stop_ids

HELP = "Type a message and press Enter. /reset starts over, /exit (or Ctrl-D) leaves."


def find_model(run_dir: Path) -> Path:
    """The exported model if there is one, else the trained one."""
    for candidate in (run_dir / "export" / "merged", run_dir / "train" / "model"):
        if (candidate / "config.json").is_file():
            return candidate
    raise FileNotFoundError(f"{run_dir}: no trained model (looked in export/merged and train/model); run `knowtune run` first")


def repl(model_dir: Path, max_new_tokens: int, system: str | None, stdin: TextIO, console: Console) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    quiet_libraries()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    model.eval()
    stops = stop_ids(tokenizer)
    start = [{"role": "system", "content": system}] if system else []
    history = list(start)
    interactive = stdin.isatty()
    console.print(f"[dim]{model_dir} · {HELP}[/dim]")
    while True:
        if interactive:
            console.print("[bold]you>[/bold] ", end="")
        line = stdin.readline()
        if not line:
            break
        text = line.strip()
        if not text:
            continue
        if text == "/exit":
            break
        if text == "/reset":
            history = list(start)
            console.print("[dim](conversation cleared)[/dim]")
            continue
        history.append({"role": "user", "content": text})
        ids = torch.tensor([prompt_ids(tokenizer, history)])
        with torch.no_grad():
            out = model.generate(
                input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                do_sample=False, eos_token_id=stops, pad_token_id=tokenizer.pad_token_id,
            )
        new = out[0, ids.shape[1]:].tolist()
        end = next((k for k, t in enumerate(new) if t in stops), len(new))
        reply = tokenizer.decode(new[:end], skip_special_tokens=True)
        history.append({"role": "assistant", "content": reply})
        console.print(f"[bold cyan]model>[/bold cyan] {escape(reply)}")
