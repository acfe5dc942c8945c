// The dashboard's charts: uPlot (vendored, /static/vendor/) on a time axis in UTC, with a
// tooltip of the values under the cursor. Loaded before app.js, which calls timeChart and
// lends it `el` and `utc` (both defined there, used only once the page has loaded).
"use strict";

// A chart is made once, then given new data; a new set of series makes it anew.
const charts = {};
// Steps between the time axis' ticks, in seconds: whole seconds, as the labels show them.
const TIME_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600,
  43200, 86400, 172800, 604800, 2592000];

function timeChart(id, series, data, valueText) {
  if (typeof uPlot === "undefined") return; // the library did not load: the tables remain
  const box = document.getElementById(id);
  const shape = series.map((s) => s.label).join("|");
  const chart = charts[id];
  if (chart && chart.shape === shape) {
    chart.plot.setData(data);
    return;
  }
  if (chart) chart.plot.destroy();
  const options = {
    width: Math.max(300, box.clientWidth - 2),
    height: 170,
    tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"),
    scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, Math.max(1, max) * 1.1] } },
    series: [{ label: "time (UTC)" }, ...series.map((s) => ({
      label: s.label, stroke: s.stroke, width: 2, spanGaps: true,
      points: { show: true, size: 6, fill: s.stroke },
      value: (_u, v) => (v === null || v === undefined ? "–" : valueText(v)),
    }))],
    axes: [
      { values: timeTicks, incrs: TIME_STEPS, space: 90 },
      { size: 80, values: (_u, ticks) => ticks.map(valueText) },
    ],
    legend: { live: false },
    plugins: [tooltip(valueText)],
  };
  box.replaceChildren();
  charts[id] = { shape, plot: new uPlot(options, data, box) };
}

// The time axis in UTC, as the tables write times: the clock within a day, else the day too.
function timeTicks(u, ticks) {
  const span = u.scales.x.max - u.scales.x.min;
  return ticks.map((t) => {
    const text = utc(new Date(t * 1000).toISOString());
    return span > 86400 ? text.slice(5, 16) : text.slice(11);
  });
}

// A floating box beside the cursor with the time and every series' value there.
function tooltip(valueText) {
  let tip = null;
  return {
    hooks: {
      init: (u) => {
        tip = el("div", { class: "chart-tip", role: "tooltip" });
        tip.hidden = true;
        u.over.append(tip);
      },
      setCursor: (u) => {
        const index = u.cursor.idx;
        if (index === null || index === undefined || u.cursor.left < 0) {
          tip.hidden = true;
          return;
        }
        const lines = [utc(new Date(u.data[0][index] * 1000).toISOString())];
        u.series.forEach((s, k) => {
          const value = k ? u.data[k][index] : null;
          if (value !== null && value !== undefined) lines.push(`${s.label}: ${valueText(value)}`);
        });
        tip.textContent = lines.join("\n");
        tip.hidden = false;
        // CSSOM, allowed by the CSP (no style attribute is written as text)
        tip.style.left = `${Math.min(u.cursor.left + 12, u.over.clientWidth - 160)}px`;
        tip.style.top = `${Math.max(0, u.cursor.top - 10)}px`;
      },
    },
  };
}
