// The dashboard's events per second over the last minute: a small Chart.js line chart of
// events accepted, retries answered duplicate and webhooks refused, one point a second,
// so a person sees a fault's dip and the recovery after it.

/** Seconds of history shown. */
export const RATE_HISTORY_S = 60;

const SERIES = [
  { label: 'Accepted', colour: '--delivered' },
  { label: 'Duplicates', colour: '--retrying' },
  { label: 'Refused', colour: '--failed' },
];

/** The chart on `canvas`, or null when Chart.js did not load. */
export function createRateChart(canvas) {
  const { Chart } = window;
  if (!Chart) return null;
  const css = getComputedStyle(document.documentElement);
  const labels = Array.from({ length: RATE_HISTORY_S }, (_, i) =>
    (i === RATE_HISTORY_S - 1 ? 'now' : `-${RATE_HISTORY_S - 1 - i}s`));
  return new Chart(canvas, {
    type: 'line',
    data: {
      labels,
      datasets: SERIES.map(({ label, colour }) => ({
        label,
        data: labels.map(() => 0),
        borderColor: css.getPropertyValue(colour).trim(),
        backgroundColor: css.getPropertyValue(colour).trim(),
        borderWidth: 2,
        pointRadius: 0,
        tension: 0.2,
      })),
    },
    options: {
      responsive: true,
      maintainAspectRatio: false,
      animation: false,
      interaction: { mode: 'index', intersect: false },
      plugins: { legend: { position: 'top', align: 'end', labels: { boxWidth: 10 } } },
      scales: {
        x: { ticks: { maxTicksLimit: 4, maxRotation: 0 } },
        y: { beginAtZero: true, ticks: { precision: 0, maxTicksLimit: 3 } },
      },
    },
  });
}

/** Adds one second's point: `[accepted, duplicates, refused]`, dropping the oldest. */
export function pushRate(chart, values) {
  if (!chart) return;
  chart.data.datasets.forEach((dataset, i) => {
    dataset.data.push(values[i]);
    dataset.data.shift();
  });
  chart.update(document.hidden ? 'none' : undefined);
}
