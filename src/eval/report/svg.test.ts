import assert from "node:assert/strict";
import { test } from "node:test";
import { jsonSection } from "./json-tables.ts";
import { PNG_SIGNATURE, pngRenderer } from "./png.ts";
import { dotChart, esc, fmtNum, heatmap, lineChart, niceTicks, standalone } from "./svg.ts";
import { fieldShape, matrixFigures, trainingFigures } from "./training.ts";

test("esc escapes markup and quotes", () => {
  assert.equal(esc(`<script>"a" & 'b'</script>`), "&lt;script&gt;&quot;a&quot; &amp; &#39;b&#39;&lt;/script&gt;");
});

test("niceTicks: steps of 1, 2 or 5 × 10^k that cover the data", () => {
  assert.deepEqual(niceTicks(0, 1).ticks, [0, 0.2, 0.4, 0.6, 0.8, 1]);
  const t = niceTicks(-0.173, 0.031);
  assert.ok(t.lo <= -0.173 && t.hi >= 0.031);
  assert.equal(t.step, 0.05);
  assert.deepEqual(niceTicks(3, 3).ticks.length > 1, true); // a flat series still gets an axis
  assert.equal(fmtNum(0.001), "0.001");
  assert.equal(fmtNum(null), "–");
  assert.equal(fmtNum(7.5e-5), "7.50e-5");
});

test("charts escape their text and carry the metric names", () => {
  const svg = lineChart({
    id: "c",
    title: "<b>t</b>",
    xLabel: "x",
    yLabel: "y",
    metrics: ["kl", "kl_coef"],
    series: [
      {
        name: "<script>",
        points: [
          { x: 0, y: 1 },
          { x: 1, y: null },
          { x: 2, y: 3, low: 2, high: 4 },
        ],
      },
    ],
  });
  assert.match(svg, /^<svg id="c"/);
  assert.match(svg, /data-metrics="kl kl_coef"/);
  assert.doesNotMatch(svg, /<script>|<b>/);
  assert.match(svg, /&lt;script&gt;/);
  assert.equal((svg.match(/<circle/g) ?? []).length, 2); // the null point is skipped
  assert.doesNotMatch(svg, /xmlns/); // inline in HTML
  assert.match(standalone(svg), /<svg xmlns="http:\/\/www.w3.org\/2000\/svg" id="c"/);
  const h = heatmap({
    id: "h",
    title: "m",
    matrix: [
      [null, -1],
      [0.5, 2],
    ],
    rowLabels: ["a", "b"],
    colLabels: ["0", "1"],
    rowTitle: "sender",
    colTitle: "recipient",
    diverging: true,
  });
  assert.equal((h.match(/<rect x=/g) ?? []).length, 4 + 9); // cells + colour scale
  assert.match(
    dotChart({ id: "d", title: "d", xLabel: "x", items: [{ label: "a", value: 0.5, low: 0.4, high: 0.6 }], reference: 0 }),
    /<circle/,
  );
});

test("pngRenderer renders a PNG", async () => {
  const png = (await pngRenderer(1))(
    lineChart({
      id: "p",
      title: "p",
      xLabel: "x",
      yLabel: "y",
      series: [
        {
          name: "s",
          points: [
            { x: 0, y: 0 },
            { x: 1, y: 1 },
          ],
        },
      ],
    }),
  );
  assert.deepEqual(png.subarray(0, 8), PNG_SIGNATURE);
  assert.equal(png.readUInt32BE(16), 640); // IHDR width
});

test("training figures: one per metric group with data, unknown metrics by shape, empty metrics listed", () => {
  const metrics = [
    { iteration: 0, reward: null, information_gain: [0.1, 0.2], kl: null, kl_coef: 0.02, talk: null, value_loss: null, novel: null },
    {
      iteration: 1,
      reward: 0.5,
      information_gain: [0.2, 0.1],
      kl: 0.01,
      kl_coef: 0.02,
      talk: [
        [0, 1],
        [2, 0],
      ],
      value_loss: null,
      novel: 3,
    },
  ];
  assert.equal(fieldShape(metrics, "information_gain"), "vector");
  assert.equal(fieldShape(metrics, "talk"), "matrix");
  assert.equal(fieldShape(metrics, "value_loss"), "empty");
  const { figures, empty } = trainingFigures(metrics, ["learner", "liar"]);
  assert.deepEqual(
    figures.map((f) => f.id),
    ["curve-reward", "curve-information_gain", "curve-kl", "curve-novel"],
  );
  assert.deepEqual(figures[2].metrics, ["kl", "kl_coef"]);
  assert.match(figures[1].svg, /agent 1 \(liar\)/);
  assert.deepEqual(empty, ["value_loss"]);
  const m = matrixFigures(metrics, ["learner", "liar"], 1);
  assert.deepEqual(
    m.map((f) => f.id),
    ["matrix-talk"],
  );
});

test("jsonSection: values with intervals, records as tables, a chart per measure with intervals, all escaped", () => {
  const { html, figures } = jsonSection("hh", {
    eval: "hh",
    accuracy: 0.6,
    accuracy_ci95: [0.5, 0.7],
    note: "<img src=x>",
    systems: [
      { system: "base", accuracy: 0.6, accuracy_ci95: [0.5, 0.7] },
      { system: "<i>a</i>", accuracy: 0.7, accuracy_ci95: [0.6, 0.8] },
    ],
  });
  assert.match(html, /0\.6 \[0\.5, 0\.7\]/);
  assert.doesNotMatch(html, /<img|<i>/);
  assert.equal(figures.length, 1);
  assert.match(figures[0].svg, /&lt;i&gt;a&lt;\/i&gt;/);
});
