"""The official OpenAI and Anthropic Python SDKs against `switchyard serve`, unchanged but for
their base URL. Prints one JSON object with what each call returned; tests/sdk.rs checks it."""
import json
import os
import sys

import anthropic
import openai

base = os.environ["SWITCHYARD_BASE"]
out = {}

oa = openai.OpenAI(base_url=base + "/v1", api_key="sk-test", max_retries=0)
chat = oa.chat.completions.create(model="chat", messages=[{"role": "user", "content": "Hello there"}], max_completion_tokens=20)
out["chat"] = {"model": chat.model, "text": chat.choices[0].message.content, "usage": chat.usage.prompt_tokens}

deltas = []
stream = oa.chat.completions.create(
    model="chat", messages=[{"role": "user", "content": "Hello there"}], max_completion_tokens=20, stream=True,
    stream_options={"include_usage": True},
)
for chunk in stream:
    if chunk.choices and chunk.choices[0].delta.content:
        deltas.append(chunk.choices[0].delta.content)
out["chat_stream"] = {"text": "".join(deltas)}

resp = oa.responses.create(model="chat", instructions="Be brief.", input="Hello there", max_output_tokens=20)
out["responses"] = {"model": resp.model, "text": resp.output_text, "status": resp.status,
                    "usage": resp.usage.input_tokens if resp.usage else None}
# the second turn of a function-call round trip: the call and its output handed back as items
tools = [{"type": "function", "name": "weather", "description": "Weather of a city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]
resp2 = oa.responses.create(model="chat", tools=tools, input=[
    {"role": "user", "content": "Weather in Paris?"},
    {"type": "function_call", "call_id": "call_1", "name": "weather", "arguments": "{\"city\": \"Paris\"}"},
    {"type": "function_call_output", "call_id": "call_1", "output": "sunny, 21C"},
])
out["responses_tools"] = {"text": resp2.output_text, "items": [o.type for o in resp2.output]}
# streamed, on targets of every wire: events as they come, a function call and its round trip
# (the second turn streamed through the SDK's accumulating helper, which checks the sequence)
out["responses_stream"] = {}
for route in ["chat", "claude", "native"]:
    types, args, final = [], "", None
    for event in oa.responses.create(model=route, input="Weather in Paris?", tools=tools, tool_choice="required",
                                     stream=True):
        types.append(event.type)
        if event.type == "response.function_call_arguments.delta":
            args += event.delta
        if event.type == "response.completed":
            final = event.response
    call = [o for o in final.output if o.type == "function_call"][0]
    with oa.responses.stream(model=route, tools=tools, input=[
        {"role": "user", "content": "Weather in Paris?"},
        {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
        {"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21C"},
    ]) as s:
        text = "".join(e.delta for e in s if e.type == "response.output_text.delta")
        second = s.get_final_response()
    out["responses_stream"][route] = {
        "first": types[0], "last": types[-1], "args": args, "call_args": call.arguments, "name": call.name,
        "model": final.model, "text": text, "output_text": second.output_text, "second_model": second.model,
    }
try:
    oa.responses.create(model="chat", input="x", previous_response_id="resp_123")
    out["responses_previous"] = "accepted"
except openai.BadRequestError as e:
    out["responses_previous"] = str(e)

emb = oa.embeddings.create(model="embed", input=["first text", "second text"], dimensions=64)
out["embeddings"] = {"count": len(emb.data), "dims": len(emb.data[0].embedding), "model": emb.model,
                     "tokens": emb.usage.prompt_tokens}
emb64 = oa.embeddings.create(model="embed", input="x")  # the SDK asks for base64 and decodes it
out["embeddings_default"] = {"dims": len(emb64.data[0].embedding)}

an = anthropic.Anthropic(base_url=base, api_key="sk-test", max_retries=0)
msg = an.messages.create(model="claude", max_tokens=20, messages=[{"role": "user", "content": "Hello there"}])
out["messages"] = {"model": msg.model, "text": msg.content[0].text}
count = an.messages.count_tokens(model="claude", system="Be brief.", messages=[{"role": "user", "content": "Hello there"}])
out["count_tokens"] = {"input_tokens": count.input_tokens}
count = an.messages.count_tokens(model="chat", messages=[{"role": "user", "content": "Hello there"}])
out["count_tokens_openai"] = {"input_tokens": count.input_tokens}

json.dump(out, sys.stdout)
