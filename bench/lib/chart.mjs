/**
 * A hand-written SVG of one bench run: the two throughput ratios (registry vs. its ceiling on the
 * same core) as bars, lookup latency at half the peak rate, and a line for capacity and churn.
 */
const WIDTH = 820;
const HEIGHT = 410;
const FONT = 'font-family="system-ui, -apple-system, Segoe UI, sans-serif"';

const esc = (text) => String(text).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export function formatRate(value) {
  if (!Number.isFinite(value)) return 'n/a';
  if (value >= 10_000) return `${(value / 1000).toFixed(0)}k`;
  if (value >= 1000) return `${(value / 1000).toFixed(1)}k`;
  return value.toFixed(0);
}

function text(x, y, content, { size = 12, anchor = 'start', weight = 'normal', fill = '#222' } = {}) {
  return (
    `<text x="${x.toFixed(1)}" y="${y.toFixed(1)}" font-size="${size}" text-anchor="${anchor}" ` +
    `font-weight="${weight}" fill="${fill}" ${FONT}>${esc(content)}</text>`
  );
}

function rect(x, y, w, h, fill) {
  return (
    `<rect x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${Math.max(0, w).toFixed(1)}" ` +
    `height="${Math.max(0, h).toFixed(1)}" fill="${fill}" rx="2"/>`
  );
}

/**
 * Horizontal bars on one scale. The first row is the ceiling the ratio is taken against; the
 * dashed line marks target x ceiling, so a bar past it meets the target.
 */
function barsPanel(x, y, w, { title, rows: allRows, ratioName, ratio, target }) {
  const rows = allRows.filter((r) => !r.optional || Number.isFinite(r.value));
  const out = [text(x, y, title, { size: 13, weight: 'bold' })];
  const top = y + 12;
  const barH = 20;
  const gap = 6;
  const labelW = 150;
  const scaleW = w - labelW - 60;
  const known = rows.filter((r) => Number.isFinite(r.value));
  const max = Math.max(1, ...known.map((r) => r.value));
  rows.forEach((row, i) => {
    const by = top + i * (barH + gap);
    const value = Number.isFinite(row.value) ? row.value : 0;
    out.push(text(x, by + barH / 2 + 4, row.label, { size: 11 }));
    out.push(rect(x + labelW, by, (value / max) * scaleW, barH, row.colour));
    out.push(
      text(x + labelW + (value / max) * scaleW + 4, by + barH / 2 + 4, `${formatRate(row.value)}/s`, { size: 11 }),
    );
  });
  const bottom = top + rows.length * (barH + gap);
  const ceiling = rows[0].value;
  if (Number.isFinite(ceiling)) {
    const tx = x + labelW + ((target * ceiling) / max) * scaleW;
    out.push(
      `<line x1="${tx.toFixed(1)}" y1="${top - 3}" x2="${tx.toFixed(1)}" y2="${bottom}" stroke="#d33" ` +
        `stroke-dasharray="3,2"/>`,
    );
    out.push(text(tx, bottom + 11, `target ${target}`, { size: 10, anchor: 'middle', fill: '#d33' }));
  }
  const pass = ratio >= target;
  out.push(
    text(x, bottom + 11, `${ratioName} ${Number.isFinite(ratio) ? ratio.toFixed(2) : 'n/a'}`, {
      size: 12,
      weight: 'bold',
      fill: pass ? '#18794e' : '#c22',
    }),
  );
  return out.join('\n');
}

function latencyPanel(x, y, w, h, { p50, p99, rate }) {
  const out = [
    text(x, y, 'Lookup latency', { size: 13, weight: 'bold' }),
    text(x, y + 15, `open loop at ${formatRate(rate)}/s, half the peak`, { size: 11, fill: '#555' }),
  ];
  const top = y + 34;
  const chartH = h - 60;
  const max = Math.max(Number(p99) || 0, Number(p50) || 0, 1) * 1.15;
  const bars = [
    ['p50', p50, '#2f6fdf'],
    ['p99', p99, '#1d4796'],
  ];
  const barW = 60;
  out.push(`<line x1="${x}" y1="${top + chartH}" x2="${x + w - 20}" y2="${top + chartH}" stroke="#999"/>`);
  bars.forEach(([label, value, colour], i) => {
    const bx = x + 30 + i * (barW + 50);
    const known = Number.isFinite(value);
    const bh = known ? (value / max) * chartH : 0;
    out.push(rect(bx, top + chartH - bh, barW, bh, colour));
    out.push(
      text(bx + barW / 2, top + chartH - bh - 5, known ? `${value.toFixed(2)} ms` : 'n/a', {
        size: 11,
        anchor: 'middle',
      }),
    );
    out.push(text(bx + barW / 2, top + chartH + 15, label, { size: 11, anchor: 'middle' }));
  });
  return out.join('\n');
}

export function renderChart(results) {
  const m = results.metrics;
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    text(
      20,
      26,
      `Registry bench: ${results.machine.cpus} CPUs, ${results.machine.cpuModel}, Node ${results.machine.node}, ws ` +
        `${results.machine.ws}${results.mode === 'smoke' ? ' (smoke run)' : ''}`,
      { size: 13, weight: 'bold' },
    ),
    text(
      20,
      44,
      'Server (or baseline) pinned to one core, load generators to the other; every ratio is taken within the ' +
        'same run.',
      { size: 11, fill: '#555' },
    ),
    barsPanel(20, 72, 470, {
      title: 'Lookups vs. bare ws echo (same client, same frame sizes)',
      rows: [
        { label: 'ws echo baseline', value: m.echoBaselinePerSec, colour: '#9aa5b1' },
        { label: 'registry lookups', value: m.lookupsPerSec, colour: '#2f6fdf' },
        { label: 'echo, 1 in flight', value: m.echoUnpipelinedPerSec, colour: '#c3cad2', optional: true },
        { label: 'lookups, 1 in flight', value: m.lookupsUnpipelinedPerSec, colour: '#8fb0ee', optional: true },
      ],
      ratioName: 'lookupVsEcho',
      ratio: m.lookupVsEcho,
      target: 0.7,
    }),
    barsPanel(20, 228, 470, {
      title: 'Registrations vs. raw Ed25519 verify (one core)',
      rows: [
        { label: 'verify, sync loop', value: m.verifyPerSec, colour: '#9aa5b1' },
        { label: 'bare ws connect cycle', value: m.connectCycleBaselinePerSec, colour: '#c3cad2', optional: true },
        { label: 'registry cycle (lookup)', value: m.registryCyclePerSec, colour: '#8fb0ee', optional: true },
        { label: 'registrations', value: m.registrationsPerSec, colour: '#2f6fdf' },
      ],
      ratioName: 'registrationVsVerify',
      ratio: m.registrationVsVerify,
      target: 0.5,
    }),
    latencyPanel(540, 72, 260, 250, { p50: m.lookupP50Ms, p99: m.lookupP99Ms, rate: m.lookupLatencyRatePerSec }),
    text(
      20,
      HEIGHT - 8,
      `Held ${m.peersHeld ?? 'n/a'} heart-beating peers${fdLimitNote(results.phases.capacity)}, ` +
        `${!Number.isFinite(m.rssBytesPerPeer) ? 'n/a' : (m.rssBytesPerPeer / 1024).toFixed(1)} KiB RSS each ` +
        `(${m.serverRssMb ?? 'n/a'} MB total) · churn ${formatRate(m.churnEventsPerSec)} events/s delivered, lost ` +
        `${m.churnLost ?? 'n/a'}`,
      { size: 12 },
    ),
    '</svg>',
  ];
  return `${parts.join('\n')}\n`;
}

/** Said when the peers held stopped at the host's file descriptor limit. */
function fdLimitNote(capacity) {
  return capacity?.fdLimited ? ` (the host's fd limit is ${capacity.serverFdLimit})` : '';
}
