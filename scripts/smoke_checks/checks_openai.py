"""The OpenAI SDK, streaming from ``/v1`` as any OpenAI client would."""

from __future__ import annotations

from .run import Run, require


async def openai_sdk(run: Run) -> str:
    from openai import AsyncOpenAI

    client = AsyncOpenAI(
        base_url=run.target.function_url + "v1",
        api_key=run.target.key or "unused-auth-is-off",
        default_headers=run.target.headers(),
        max_retries=0,
        timeout=60,
    )
    try:
        models = [m.id async for m in client.models.list()]
        require(models, "GET /v1/models listed no model")
        model = next((m for m in models if m.startswith(f"{run.provider}/")), models[0])
        body = run.short()
        stream = await client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": str(body["message"])}], stream=True, max_tokens=120
        )
        parts, finish, completion_id = [], None, ""
        async for chunk in stream:
            completion_id = chunk.id
            for choice in chunk.choices:
                parts.append(choice.delta.content or "")
                finish = choice.finish_reason or finish
    finally:
        await client.close()
    require(sum(1 for p in parts if p) >= 2 and finish == "stop", f"{len(parts)} chunks, finish_reason {finish}")
    expected = run.expected()
    require(expected is None or "".join(parts) == expected, f"text {''.join(parts)[:80]!r}")
    run.completed[completion_id.removeprefix("chatcmpl-")] = "openai"
    return f"{model}: {sum(1 for p in parts if p)} chunks streamed, finish_reason stop"
