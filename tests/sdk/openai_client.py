"""Drives cachet's OpenAI-compatible front door with the official `openai` SDK.

Run by tests/openai_sdk.rs against a live sidecar: `python openai_client.py BASE_URL`. Only the
base URL differs from calling the provider; cachet's own knobs travel in `extra_headers`.
Every check raises on failure; the last line printed is a JSON summary the Rust test reads.
"""

import json
import sys

import openai
from openai import OpenAI

base_url = sys.argv[1]
# The key is the provider's business: cachet holds its own. The SDK insists on one.
client = OpenAI(base_url=base_url, api_key="sk-unused-by-cachet", max_retries=0)
SYSTEM = {"role": "system", "content": "Answer briefly."}


def ask(question, **kwargs):
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-test", messages=[SYSTEM, {"role": "user", "content": question}], **kwargs
    )
    return raw.headers, raw.parse()


headers, first = ask(
    "How do I reset my password?",
    extra_headers={"x-cachet-tenant": "acme", "x-cachet-department": "sdk"},
)
assert headers["x-cachet-status"] == "miss", headers
assert first.usage.total_tokens > 0, first.usage
answer = first.choices[0].message.content

headers, again = ask("How do I reset my password?", extra_headers={"x-cachet-tenant": "acme"})
assert headers["x-cachet-status"] == "hit_exact", headers
assert again.choices[0].message.content == answer
assert again.usage.total_tokens == 0, again.usage
assert int(headers["x-cachet-tokens-saved"]) == first.usage.total_tokens

headers, paraphrase = ask("How can I reset my password?", extra_headers={"x-cachet-tenant": "acme"})
assert headers["x-cachet-status"] == "hit_semantic", headers
assert paraphrase.choices[0].message.content == answer

# Streaming: the hit is replayed chunk by chunk, with a usage chunk when asked for.
stream = client.chat.completions.create(
    model="gpt-test",
    messages=[SYSTEM, {"role": "user", "content": "How do I reset my password?"}],
    stream=True,
    stream_options={"include_usage": True},
    extra_headers={"x-cachet-tenant": "acme"},
)
pieces, usage = [], None
for chunk in stream:
    if chunk.choices:
        pieces.append(chunk.choices[0].delta.content or "")
    if chunk.usage is not None:
        usage = chunk.usage
assert "".join(pieces) == answer, pieces
assert len(pieces) > 2, pieces
assert usage is not None and usage.total_tokens == 0, usage

# A trap: another order number must not be served the first one's answer.
ask("Where is my order 48213?", extra_headers={"x-cachet-tenant": "acme"})
headers, trap = ask("Where is my order 48231?", extra_headers={"x-cachet-tenant": "acme"})
assert headers["x-cachet-status"] == "miss", headers
assert "48231" in trap.choices[0].message.content

# Errors come back as the SDK's own exception types.
try:
    ask("Hello?", extra_headers={"x-cachet-tenant": "initech"})
    raise AssertionError("an unknown tenant was served")
except openai.PermissionDeniedError as err:
    assert "initech" in str(err), err
try:
    client.chat.completions.create(
        model="gpt-test",
        messages=[{"role": "user", "content": "What's the weather?"}],
        tools=[{"type": "function", "function": {"name": "weather", "parameters": {}}}],
        extra_headers={"x-cachet-tenant": "acme"},
    )
    raise AssertionError("a tools request was accepted")
except openai.BadRequestError as err:
    assert "tools" in str(err), err

print(json.dumps({"sdk": openai.__version__, "answer": answer, "spent": first.usage.total_tokens}))
