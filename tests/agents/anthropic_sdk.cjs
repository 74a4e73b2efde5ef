// The official Anthropic Node SDK (npm `@anthropic-ai/sdk`), unchanged but for its base URL,
// against `switchyard serve`: messages (whole, streamed through the SDK's MessageStream, a tool
// round trip, a JSON schema through `output_config.format`) on every route named in
// SWITCHYARD_ROUTES. Prints one JSON object; tests/agents.rs checks it. A step that throws records
// its error instead of stopping the others.
const Anthropic = require('@anthropic-ai/sdk');

const base = process.env.SWITCHYARD_BASE;
const routes = (process.env.SWITCHYARD_ROUTES || 'claude').split(',');
const client = new Anthropic({ baseURL: base, apiKey: process.env.SWITCHYARD_KEY, maxRetries: 0 });

const weather = {
  name: 'weather',
  description: 'Weather of a city',
  input_schema: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
};
const schema = {
  type: 'object',
  properties: { answer: { type: 'string' } },
  required: ['answer'],
  additionalProperties: false,
};
const text = (m) => m.content.filter((b) => b.type === 'text').map((b) => b.text).join('');

async function step(f) {
  try {
    return await f();
  } catch (e) {
    return { error: `${e.constructor.name}: ${e.message}` };
  }
}

async function messages(model) {
  const out = {};
  out.messages = await step(async () => {
    const m = await client.messages.create({
      model,
      max_tokens: 50,
      system: 'Be brief.',
      messages: [{ role: 'user', content: 'Hello there' }],
    });
    return { model: m.model, text: text(m), stop_reason: m.stop_reason };
  });
  out.messages_stream = await step(async () => {
    const stream = client.messages.stream({ model, max_tokens: 50, messages: [{ role: 'user', content: 'Hello there' }] });
    const types = [];
    let deltas = '';
    stream.on('streamEvent', (e) => types.push(e.type));
    stream.on('text', (t) => {
      deltas += t;
    });
    const final = await stream.finalMessage();
    return { first: types[0], last: types[types.length - 1], text: deltas, final_text: text(final), stop_reason: final.stop_reason };
  });
  out.messages_tools = await step(async () => {
    const history = [{ role: 'user', content: 'Weather in Paris?' }];
    const first = await client.messages.create({ model, max_tokens: 100, tools: [weather], tool_choice: { type: 'any' }, messages: history });
    const call = first.content.find((b) => b.type === 'tool_use');
    history.push({ role: 'assistant', content: first.content });
    history.push({ role: 'user', content: [{ type: 'tool_result', tool_use_id: call.id, content: 'sunny, 21C' }] });
    const second = await client.messages.create({ model, max_tokens: 100, tools: [weather], messages: history });
    return { stop_reason: first.stop_reason, name: call.name, input: call.input, text: text(second) };
  });
  out.messages_schema = await step(async () => {
    const m = await client.messages.create({
      model,
      max_tokens: 100,
      messages: [{ role: 'user', content: 'Answer in JSON' }],
      output_config: { format: { type: 'json_schema', schema } },
    });
    return { text: text(m) };
  });
  return out;
}

(async () => {
  const results = await Promise.all(routes.map(messages));
  process.stdout.write(JSON.stringify(Object.fromEntries(routes.map((r, i) => [r, results[i]]))));
})();
