// The official OpenAI Node SDK (npm `openai`), unchanged but for its base URL, against
// `switchyard serve`: Chat Completions (whole, streamed, a tool round trip, a JSON schema) and the
// Responses API (whole, streamed through the SDK's accumulating helper, a tool round trip, a JSON
// schema) on every route named in SWITCHYARD_ROUTES. Prints one JSON object; tests/agents.rs
// checks it. A step that throws records its error instead of stopping the others.
const OpenAI = require('openai');

const base = process.env.SWITCHYARD_BASE;
const routes = (process.env.SWITCHYARD_ROUTES || 'chat').split(',');
const client = new OpenAI({ baseURL: base + '/v1', apiKey: process.env.SWITCHYARD_KEY, maxRetries: 0 });

const weather = {
  type: 'function',
  function: {
    name: 'weather',
    description: 'Weather of a city',
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
  },
};
const schema = {
  type: 'object',
  properties: { answer: { type: 'string' } },
  required: ['answer'],
  additionalProperties: false,
};

async function step(f) {
  try {
    return await f();
  } catch (e) {
    return { error: `${e.constructor.name}: ${e.message}` };
  }
}

async function chat(model) {
  const out = {};
  out.chat = await step(async () => {
    const c = await client.chat.completions.create({
      model,
      messages: [
        { role: 'developer', content: 'Be brief.' },
        { role: 'user', content: 'Hello there' },
      ],
      max_completion_tokens: 50,
    });
    return { model: c.model, text: c.choices[0].message.content, finish: c.choices[0].finish_reason };
  });
  out.chat_stream = await step(async () => {
    const stream = await client.chat.completions.create({
      model,
      messages: [{ role: 'user', content: 'Hello there' }],
      max_completion_tokens: 50,
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = '';
    let usage = null;
    let finish = null;
    for await (const chunk of stream) {
      if (chunk.choices[0]?.delta?.content) text += chunk.choices[0].delta.content;
      if (chunk.choices[0]?.finish_reason) finish = chunk.choices[0].finish_reason;
      if (chunk.usage) usage = chunk.usage.completion_tokens;
    }
    return { text, finish, usage };
  });
  out.chat_tools = await step(async () => {
    const messages = [{ role: 'user', content: 'Weather in Paris?' }];
    const first = await client.chat.completions.create({ model, messages, tools: [weather], tool_choice: 'required' });
    const call = first.choices[0].message.tool_calls[0];
    messages.push(first.choices[0].message);
    messages.push({ role: 'tool', tool_call_id: call.id, content: 'sunny, 21C' });
    const second = await client.chat.completions.create({ model, messages, tools: [weather] });
    return {
      finish: first.choices[0].finish_reason,
      name: call.function.name,
      args: JSON.parse(call.function.arguments),
      text: second.choices[0].message.content,
    };
  });
  out.chat_schema = await step(async () => {
    const c = await client.chat.completions.create({
      model,
      messages: [{ role: 'user', content: 'Answer in JSON' }],
      response_format: { type: 'json_schema', json_schema: { name: 'reply', schema, strict: true } },
    });
    return { text: c.choices[0].message.content };
  });
  out.responses = await step(async () => {
    const r = await client.responses.create({ model, instructions: 'Be brief.', input: 'Hello there', max_output_tokens: 50 });
    return { model: r.model, status: r.status, text: r.output_text };
  });
  out.responses_stream = await step(async () => {
    const types = [];
    const stream = client.responses.stream({ model, input: 'Hello there', max_output_tokens: 50 });
    let text = '';
    for await (const event of stream) {
      types.push(event.type);
      if (event.type === 'response.output_text.delta') text += event.delta;
    }
    const final = await stream.finalResponse();
    return { first: types[0], last: types[types.length - 1], text, output_text: final.output_text, status: final.status };
  });
  out.responses_tools = await step(async () => {
    const tools = [{ type: 'function', name: 'weather', description: 'Weather of a city', parameters: weather.function.parameters, strict: false }];
    const first = await client.responses.create({ model, input: 'Weather in Paris?', tools, tool_choice: 'required' });
    const call = first.output.find((o) => o.type === 'function_call');
    const second = await client.responses.create({
      model,
      tools,
      input: [
        { role: 'user', content: 'Weather in Paris?' },
        { type: 'function_call', call_id: call.call_id, name: call.name, arguments: call.arguments },
        { type: 'function_call_output', call_id: call.call_id, output: 'sunny, 21C' },
      ],
    });
    return { name: call.name, args: JSON.parse(call.arguments), text: second.output_text };
  });
  out.responses_schema = await step(async () => {
    const r = await client.responses.create({
      model,
      input: 'Answer in JSON',
      text: { format: { type: 'json_schema', name: 'reply', schema, strict: true } },
    });
    return { status: r.status, text: r.output_text };
  });
  return out;
}

(async () => {
  const results = await Promise.all(routes.map(chat));
  process.stdout.write(JSON.stringify(Object.fromEntries(routes.map((r, i) => [r, results[i]]))));
})();
