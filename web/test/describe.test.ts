import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { describeError } from "../src/describe.js";
import { clientError } from "../src/types.js";

describe("describeError", () => {
  test("every code the server sends since API keys, limits and timeouts has its own sentence", () => {
    const codes = ["upstream_timeout", "unauthorized", "forbidden", "model_not_allowed", "payload_too_large", "store_unavailable", "rate_limited", "upstream_rate_limited"];
    const sentences = codes.map((code) => describeError(clientError(code, "", false)));
    for (const [i, sentence] of sentences.entries()) {
      assert.ok(!sentence.includes(`(${codes[i]})`), `${codes[i]} falls back to the raw code: ${sentence}`);
      assert.match(sentence, /^[A-Z].*\.$/);
    }
    assert.equal(new Set(sentences).size, codes.length, "each code says something different");
    assert.match(sentences[0] ?? "", /took too long/);
  });

  test("the server's message is kept as details, once", () => {
    const error = clientError("model_not_allowed", "model: this API key may not use openai:gpt-4o", false, { field: "model" });
    assert.equal(
      describeError(error),
      "This API key may not use that model. Pick another one. Details: model: this API key may not use openai:gpt-4o.",
    );
  });

  test("the WebSocket's failures, and a stream lost to a restart, are said in plain words", () => {
    for (const code of ["connect_failed", "connection_lost", "resume_timeout", "stream_not_found"]) {
      const sentence = describeError(clientError(code, "", true));
      assert.ok(!sentence.includes(`(${code})`), `${code} falls back to the raw code`);
    }
    const lost = describeError(clientError("stream_not_found", "no stream with id 's-1'", false));
    assert.match(lost, /keeps no state across a restart/);
    assert.match(lost, /Send the message again/);
  });

  test("an unknown code shows the message and the code", () => {
    assert.equal(describeError(clientError("brand_new", "something new", false)), "something new (brand_new).");
  });

  test("invalid_request names the field", () => {
    assert.equal(
      describeError(clientError("invalid_request", "too long", false, { field: "message" })),
      "The request was rejected: message: too long.",
    );
  });
});
