import assert from "node:assert/strict";
import { test } from "node:test";
import { SseStream, TextStream, safeEnd } from "./sse.ts";

test("TextStream never sends what a stop string may still cut, nor half a character", () => {
  assert.equal(safeEnd("hello wo", ["world"]), 6);
  assert.equal(safeEnd("hello world", ["world"]), 6);
  assert.equal(safeEnd("abc\uFFFD", []), 3);
  const s = new TextStream(["\nUser:"]);
  const sent = ["Hi", "Hi the", "Hi there\n", "Hi there\nUs", "Hi there\nUser: x"].map((t) => s.update(t));
  assert.deepEqual(sent, ["Hi", " the", "re", "", ""]);
  assert.equal(s.finish("Hi there"), "");
  const t = new TextStream(["END"]);
  t.update("abcE");
  assert.equal(t.finish("abcEF"), "EF"); // the final text is what counts
});

test("SseStream writes data chunks and [DONE]; an error becomes an error chunk", async () => {
  const s = new SseStream();
  s.send({ a: 1 });
  s.fail(new Error("boom"));
  s.send({ late: true }); // after the end: dropped
  const text = await s.response.text();
  const parts = text.split("\n\n").filter(Boolean);
  assert.equal(parts[0], 'data: {"a":1}');
  assert.match(parts[1], /^data: \{"error":\{"message":".*boom/);
  assert.equal(parts[2], "data: [DONE]");
  assert.equal(parts.length, 3);
  assert.equal(s.response.headers.get("content-type"), "text/event-stream; charset=utf-8");
});
