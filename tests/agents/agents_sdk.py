"""The OpenAI Agents SDK for Python (PyPI `openai-agents`), unchanged, against `switchyard serve`:
an agent with one function tool (the SDK declares it `strict: true`) run to its final answer on
every route named in SWITCHYARD_ROUTES, through the Responses API (the SDK's default, whole and
streamed) and through Chat Completions. The client is the SDK's documented one:
`set_default_openai_client(AsyncOpenAI(base_url=...))`; tracing is off (it would upload traces to
OpenAI, and there is no network). Prints one JSON object; tests/agents.rs checks it. A run that
raises records its error instead of stopping the others."""
import asyncio
import json
import os
import sys

from openai import AsyncOpenAI

from agents import (
    Agent,
    OpenAIChatCompletionsModel,
    Runner,
    function_tool,
    set_default_openai_client,
    set_tracing_disabled,
)

base = os.environ["SWITCHYARD_BASE"]
routes = os.environ.get("SWITCHYARD_ROUTES", "chat").split(",")
client = AsyncOpenAI(base_url=base + "/v1", api_key=os.environ["SWITCHYARD_KEY"], max_retries=0)
set_default_openai_client(client)
set_tracing_disabled(True)

calls = []


@function_tool
def lookup(input: str) -> str:
    """Look something up."""
    calls.append(input)
    return f"found: {input}"


async def run(agent, streamed):
    if streamed:
        result = Runner.run_streamed(agent, "/tool lookup Paris", max_turns=4)
        kinds = []
        async for event in result.stream_events():
            kinds.append(event.type)
        return {"final": result.final_output, "events": sorted(set(kinds))}
    result = await Runner.run(agent, "/tool lookup Paris", max_turns=4)
    return {"final": result.final_output, "items": [i.type for i in result.new_items]}


async def step(route, api, streamed):
    model = OpenAIChatCompletionsModel(model=route, openai_client=client) if api == "chat" else route
    agent = Agent(name="helper", instructions="Use the lookup tool.", tools=[lookup], model=model)
    before = len(calls)
    try:
        out = await run(agent, streamed)
    except Exception as e:  # noqa: BLE001 - the test reads the error
        return {"error": f"{type(e).__name__}: {e}"}
    out["tool_calls"] = calls[before:]
    return out


async def main():
    out = {}
    for route in routes:
        # one at a time: `calls` tells which run called the tool
        out[route] = {
            "responses": await step(route, "responses", False),
            "responses_stream": await step(route, "responses", True),
            "chat": await step(route, "chat", False),
        }
    json.dump(out, sys.stdout)


asyncio.run(main())
