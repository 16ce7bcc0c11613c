"""The OpenAI request bodies the server accepts, and its errors in OpenAI's shape.

Fields OpenAI defines that change what a reply would be (n > 1, logprobs, tools, penalties, ...) are refused
with a 400 that names them, rather than ignored: a client asking for them would otherwise get an answer that
silently is not what it asked for. Fields that do not change the reply (user, metadata, store, ...) are
accepted and ignored, as OpenAI-compatible servers do, so existing clients work unchanged.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

MAX_STOP_STRINGS = 16


class APIError(Exception):
    def __init__(self, status: int, message: str, type: str = "invalid_request_error", code: str | None = None,
                 param: str | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.param = status, message, type, code, param

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: bool = False


class Sampling(BaseModel):
    """What both endpoints share: how to choose tokens and when to stop."""

    model_config = ConfigDict(extra="ignore")
    model: str
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    max_tokens: int | None = Field(None, ge=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    ignore_eos: bool = False  # vLLM's extension: generate max_tokens whatever the model says
    # refused unless left at what OpenAI does by default (see REFUSED)
    n: int | None = 1
    logprobs: Any = None
    top_logprobs: Any = None
    logit_bias: Any = None
    presence_penalty: float | None = 0
    frequency_penalty: float | None = 0
    response_format: Any = None
    tools: Any = None
    functions: Any = None
    best_of: int | None = 1
    echo: bool | None = False
    suffix: str | None = None

    def stop_strings(self) -> list[str]:
        stops = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        if len(stops) > MAX_STOP_STRINGS:
            raise APIError(400, f"stop: at most {MAX_STOP_STRINGS} stop strings", param="stop")
        return [s for s in stops if s]

    def include_usage(self) -> bool:
        return bool(self.stream and self.stream_options and self.stream_options.include_usage)


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[dict] | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        parts = []
        for part in self.content:
            if part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise APIError(400, f"messages: content parts of type {part.get('type')!r} are not supported "
                               "(text only)", param="messages")
            parts.append(part["text"])
        return "".join(parts)


class ChatRequest(Sampling):
    messages: list[Message] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)

    def chat(self) -> list[dict[str, str]]:
        # "developer" is what OpenAI's newer models call the system message; chat templates know "system"
        return [{"role": "system" if m.role == "developer" else m.role, "content": m.text()} for m in self.messages]

    def wanted_tokens(self) -> int | None:
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens


class CompletionRequest(Sampling):
    prompt: str | list[str]

    def text(self) -> str:
        if isinstance(self.prompt, str):
            return self.prompt
        if len(self.prompt) != 1:
            raise APIError(400, "prompt: one prompt per request (a list of one string, or a string)",
                           param="prompt")
        return self.prompt[0]

    def wanted_tokens(self) -> int | None:
        return self.max_tokens


# (field, the value that means "not used"); any other value is refused
REFUSED = [("n", 1), ("best_of", 1), ("logprobs", None), ("top_logprobs", None), ("logit_bias", None),
           ("presence_penalty", 0), ("frequency_penalty", 0), ("tools", None), ("functions", None),
           ("response_format", None), ("echo", False), ("suffix", None)]
ALSO_UNSET = {"logprobs": (False,), "n": (None,), "best_of": (None,), "presence_penalty": (None,),
              "frequency_penalty": (None,), "echo": (None,), "response_format": ({"type": "text"},),
              "tools": ([],)}


def parse(model: type[Sampling], body: Any) -> Sampling:
    if not isinstance(body, dict):
        raise APIError(400, f"the request body must be a JSON object, not {type(body).__name__}")
    try:
        request = model.model_validate(body)
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in err.errors())
        raise APIError(400, problems) from None
    for name, unused in REFUSED:
        value = getattr(request, name)
        if value != unused and value not in ALSO_UNSET.get(name, ()):
            raise APIError(400, f"{name}={value!r} is not supported by knowtune's server", param=name)
    return request


def usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def context_error(context: int, prompt: int, completion: int, where: str) -> APIError:
    # vLLM's wording, which clients and people already recognise
    return APIError(400, f"This model's maximum context length is {context} tokens. However, you requested "
                         f"{prompt + completion} tokens ({prompt} in the {where}, {completion} in the completion). "
                         f"Please reduce the length of the {where} or completion.",
                    code="context_length_exceeded")
