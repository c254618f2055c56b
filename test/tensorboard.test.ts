/**
 * `--log tensorboard` end to end, checked by a reader that shares no code with the writer: TFRecord frames whose
 * CRCs are recomputed with @node-rs/crc32's crc32c (the Rust crc32c crate: SSE4.2 instruction or slicing-by-8,
 * not the writer's byte-table loop), and Event protobufs decoded by protobufjs from the .proto text below
 * (TensorBoard's event.proto and summary.proto, tensorboard/compat/proto/: the same messages and field numbers;
 * HistogramProto, TensorProto and LogMessage, which colloquy never writes, are declared as `bytes`, which the
 * wire format makes equivalent). Every non-null scalar of every metrics line must come back as its float32.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { crc32c } from "@node-rs/crc32";
import protobuf from "protobufjs";
import { TRACKERS } from "../src/run/trackers.ts";
import { assertUserError, runCli, tmpDir, trainKilledAt } from "./support.ts";
import { saveTinyModel } from "./tiny.ts";

const EVENT_PROTO = `
syntax = "proto3";
package tensorboard;

message Event {
  double wall_time = 1;
  int64 step = 2;
  oneof what {
    string file_version = 3;
    bytes graph_def = 4;
    Summary summary = 5;
    bytes log_message = 6;
    SessionLog session_log = 7;
    TaggedRunMetadata tagged_run_metadata = 8;
    bytes meta_graph_def = 9;
  }
  SourceMetadata source_metadata = 10;
}
message SourceMetadata { string writer = 1; }
message SessionLog {
  enum SessionStatus { STATUS_UNSPECIFIED = 0; START = 1; STOP = 2; CHECKPOINT = 3; }
  SessionStatus status = 1;
  string checkpoint_path = 2;
  string msg = 3;
}
message TaggedRunMetadata { string tag = 1; bytes run_metadata = 2; }

message SummaryMetadata {
  message PluginData { string plugin_name = 1; bytes content = 2; }
  PluginData plugin_data = 1;
  string display_name = 2;
  string summary_description = 3;
  int32 data_class = 4;
}
message Summary {
  message Image { int32 height = 1; int32 width = 2; int32 colorspace = 3; bytes encoded_image_string = 4; }
  message Audio {
    float sample_rate = 1; int64 num_channels = 2; int64 length_frames = 3;
    bytes encoded_audio_string = 4; string content_type = 5;
  }
  message Value {
    string node_name = 7;
    string tag = 1;
    SummaryMetadata metadata = 9;
    oneof value {
      float simple_value = 2;
      bytes obsolete_old_style_histogram = 3;
      Image image = 4;
      bytes histo = 5;
      Audio audio = 6;
      bytes tensor = 8;
    }
  }
  repeated Value value = 1;
}
`;
const Event = protobuf.parse(EVENT_PROTO).root.lookupType("tensorboard.Event");

interface DecodedEvent {
  wallTime: number;
  step: number;
  fileVersion?: string;
  summary?: { value?: { tag: string; simpleValue?: number }[] };
}

/** TFRecord: u64 length, u32 masked crc32c(length), data, u32 masked crc32c(data). */
const masked = (b: Uint8Array) => {
  const c = crc32c(Buffer.from(b)) >>> 0;
  return (((c >>> 15) | (c << 17)) + 0xa282ead8) >>> 0;
};

function readEventFile(file: string): DecodedEvent[] {
  const buf = fs.readFileSync(file);
  const out: DecodedEvent[] = [];
  let at = 0;
  while (at < buf.length) {
    assert.ok(at + 12 <= buf.length, `${file}: a record header is cut at byte ${at}`);
    const len = Number(buf.readBigUInt64LE(at));
    assert.equal(buf.readUInt32LE(at + 8), masked(buf.subarray(at, at + 8)), `${file}: length CRC at byte ${at}`);
    assert.ok(at + 16 + len <= buf.length, `${file}: a record is cut at byte ${at}`);
    const data = buf.subarray(at + 12, at + 12 + len);
    assert.equal(buf.readUInt32LE(at + 12 + len), masked(data), `${file}: data CRC at byte ${at}`);
    out.push(Event.toObject(Event.decode(data), { longs: Number, defaults: false }) as DecodedEvent);
    at += 16 + len;
  }
  return out;
}

/** Every event file of a tb/ folder, in name order (TensorBoard's), checked for its header record. */
function readTb(dir: string): { files: string[]; events: DecodedEvent[] } {
  const files = fs
    .readdirSync(dir)
    .filter((f) => f.includes("tfevents"))
    .sort();
  const events: DecodedEvent[] = [];
  for (const f of files) {
    assert.match(f, /^events\.out\.tfevents\.\d{10}\.[^/]+$/);
    const [head, ...rest] = readEventFile(path.join(dir, f));
    assert.equal(head.fileVersion, "brain.Event:2", `${f}: first record`);
    assert.ok(Math.abs(head.wallTime - Number(f.split(".")[3])) < 1, `${f}: its name holds the first record's time`);
    events.push(...rest);
  }
  return { files, events };
}

/** The tags a metrics line must give (README, "Trackers"), written out here rather than taken from the writer. */
function expectedScalars(line: Record<string, unknown>): Map<string, number> {
  const want = new Map<string, number>();
  for (const [k, v] of Object.entries(line)) {
    if (k === "iteration" || v === null) continue;
    const tag = k.startsWith("val_") ? `val/${k.slice("val_".length)}` : k;
    if (typeof v === "number") want.set(tag, v);
    else if (Array.isArray(v))
      for (const [i, x] of v.entries()) {
        if (typeof x === "number") want.set(`${tag}/agent${i}`, x);
        else if (Array.isArray(x)) {
          for (const [j, y] of x.entries()) if (y !== null) want.set(`${tag}/agent${i}_to_agent${j}`, y);
        } else assert.equal(x, null, `${k}[${i}]`);
      }
    else assert.fail(`metrics field ${k} is neither a number, an array nor null`);
  }
  return want;
}

/** One event per metrics line, at its iteration, holding exactly its non-null scalars as float32. */
function assertMatchesMetrics(events: DecodedEvent[], lines: Record<string, unknown>[]): number {
  assert.deepEqual(
    events.map((e) => e.step ?? 0),
    lines.map((l) => l.iteration),
    "one event per metrics line, in order, no step twice",
  );
  let checked = 0;
  for (const [n, line] of lines.entries()) {
    const got = new Map((events[n].summary?.value ?? []).map((v) => [v.tag, v.simpleValue]));
    const want = expectedScalars(line);
    assert.deepEqual([...got.keys()].sort(), [...want.keys()].sort(), `iteration ${line.iteration}: the tags`);
    for (const [tag, v] of want) {
      assert.equal(got.get(tag), Math.fround(v), `iteration ${line.iteration}, ${tag}: ${got.get(tag)} ≠ float32(${v})`);
      checked++;
    }
  }
  return checked;
}

const dir = tmpDir("colloquy-tb-");
const model = saveTinyModel(path.join(dir, "tiny"));
const smoke = (out: string, extra: string[] = []) => [
  "train",
  "--preset",
  "smoke",
  `--model=${model}`,
  "--out",
  out,
  "--quiet",
  "--log",
  "tensorboard",
  ...extra,
];
const metrics = (run: string): Record<string, unknown>[] =>
  fs
    .readFileSync(path.join(run, "metrics.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l));

test("a smoke run with --log tensorboard: the event files read back equal metrics.jsonl, value by value", (t) => {
  const out = path.join(dir, "run");
  const r = runCli(smoke(out));
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(JSON.parse(fs.readFileSync(path.join(out, "config.json"), "utf8")).config.log, ["tensorboard"]);
  const lines = metrics(out);
  assert.deepEqual(
    lines.map((l) => l.iteration),
    [0, 1, 2, 3],
  );
  const { files, events } = readTb(path.join(out, "tb"));
  assert.equal(files.length, 1);
  const checked = assertMatchesMetrics(events, lines);
  // per agent and per pair of agents, validation under val/
  const tags = new Set(events.flatMap((e) => (e.summary?.value ?? []).map((v) => v.tag)));
  for (const t of ["reward", "kl_coef", "information_gain/agent1", "talk/agent0_to_agent1", "val/information_gain", "time_train"])
    assert.ok(tags.has(t), `tag ${t}`);
  assert.ok(checked >= 60, `${checked} values checked`);
  t.diagnostic(`${checked} values of ${lines.length} metrics lines read back equal`);
});

test("a run killed mid-way and resumed: its event files hold each iteration once, equal to metrics.jsonl", async (t) => {
  const out = path.join(dir, "killed");
  await trainKilledAt(out, smoke(out, ["--iterations=4"]), 2);
  let before = "a torn record";
  try {
    before = readTb(path.join(out, "tb"))
      .events.map((e) => e.step ?? 0)
      .join(",");
  } catch {}
  t.diagnostic(`killed with metrics.jsonl iterations ${metrics(out).map((l) => l.iteration)} and events of steps ${before}`);
  const r = runCli(["train", "--resume", out, "--quiet"]);
  assert.equal(r.status, 0, r.stderr);
  const lines = metrics(out);
  assert.deepEqual(
    lines.map((l) => l.iteration),
    [0, 1, 2, 3, 4],
  );
  const { files, events } = readTb(path.join(out, "tb"));
  assert.equal(files.length, 2, "the resumed run appends to a new event file");
  assertMatchesMetrics(events, lines);
});

test("a resume drops the events of the iterations it repeats, and a torn last record", () => {
  const tb = path.join(dir, "trunc");
  const line = (iteration: number, reward: number) => ({ iteration, reward, information_gain: [reward, null], val_oracle_gain: null });
  const first = TRACKERS.tensorboard.open(tb, 0);
  for (let i = 0; i < 4; i++) first.write(line(i, i + 0.5));
  const [file] = fs.readdirSync(path.join(tb, "tb"));
  fs.appendFileSync(path.join(tb, "tb", file), Buffer.from([9, 0, 0, 0, 0, 0, 0, 0, 1, 2])); // killed mid-append
  const again = TRACKERS.tensorboard.open(tb, 2); // the checkpoint was iteration 1
  for (let i = 2; i < 4; i++) again.write(line(i, -i));
  const want = [line(0, 0.5), line(1, 1.5), line(2, -2), line(3, -3)];
  const { files, events } = readTb(path.join(tb, "tb"));
  assert.equal(files.length, 2);
  assertMatchesMetrics(events, want);
  TRACKERS.tensorboard.open(tb, 0); // a run started again from iteration 0 keeps nothing
  assert.deepEqual(fs.readdirSync(path.join(tb, "tb")), []);
});

test("--log takes only known trackers", () => {
  assertUserError(runCli(smoke(path.join(dir, "bad"), ["--log", "wandb"])), /--log=wandb: .*expected "tensorboard"/);
});
