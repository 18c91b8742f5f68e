// The timeline plot of an experiment's batches: one lane per node, one bar per run of a batch (from the moment
// it started processing to the moment it ended), coloured by how the run ended; drawn as inline SVG.
import {duration, shortId} from './dom.js';

const SVG = 'http://www.w3.org/2000/svg';
const WIDTH = 1000;
const LABEL_WIDTH = 120;
const ROW_HEIGHT = 16;
const ROW_GAP = 3;
const LANE_GAP = 10;
const AXIS_HEIGHT = 24;
const TICKS = 5;

function svg(tag, attributes, ...children) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes || {})) element.setAttribute(name, String(value));
  for (const child of children) element.append(child instanceof Node ? child : document.createTextNode(child));
  return element;
}

// The runs of one batch from its timeline [{state, time, node}] (pure): a run starts when the batch enters
// `processing` and ends with the next entry; its outcome is that entry's state (`registered`: the attempt
// failed and the batch was queued again), or `processing` while it still runs.
export function runsOf(batch, nowS) {
  const entries = (batch.timeline || []).slice().sort((a, b) => a.time - b.time);
  const runs = [];
  for (let i = 0; i < entries.length; i++) {
    if (entries[i].state !== 'processing') continue;
    const end = entries[i + 1];
    runs.push({batchId: batch._id, node: entries[i].node || batch.node || '?', start: entries[i].time,
      end: end ? end.time : nowS, outcome: end ? (end.state === 'registered' ? 'retried' : end.state) : 'processing'});
  }
  return runs;
}

// The last run's duration in seconds, or null when the batch never ran.
export function lastRunSeconds(batch, nowS) {
  const runs = runsOf(batch, nowS);
  return runs.length ? runs[runs.length - 1].end - runs[runs.length - 1].start : null;
}

// Lanes per node, each a list of rows of runs that do not overlap (greedy, by start time).
function pack(runs) {
  const lanes = new Map();
  for (const run of runs.slice().sort((a, b) => a.start - b.start)) {
    if (!lanes.has(run.node)) lanes.set(run.node, []);
    const rows = lanes.get(run.node);
    let row = rows.find((candidate) => candidate.end <= run.start);
    if (!row) {
      row = {end: -Infinity, runs: []};
      rows.push(row);
    }
    row.runs.push(run);
    row.end = run.end;
  }
  return new Map(Array.from(lanes.entries()).sort(([a], [b]) => a.localeCompare(b)));
}

export function drawTimeline(container, batches, nowS) {
  const runs = batches.flatMap((batch) => runsOf(batch, nowS));
  if (!runs.length) {
    const note = document.createElement('p');
    note.className = 'empty';
    note.textContent = 'No batch of this page has run yet.';
    container.replaceChildren(note);
    return;
  }
  const first = Math.min(...runs.map((run) => run.start));
  const last = Math.max(...runs.map((run) => run.end), first + 1);
  const lanes = pack(runs);
  let height = AXIS_HEIGHT;
  for (const rows of lanes.values()) height += rows.length * (ROW_HEIGHT + ROW_GAP) + LANE_GAP;
  const plotWidth = WIDTH - LABEL_WIDTH - 10;
  const x = (time) => LABEL_WIDTH + (time - first) / (last - first) * plotWidth;

  const root = svg('svg', {viewBox: '0 0 ' + WIDTH + ' ' + height, class: 'timeline', role: 'group',
    'aria-label': 'Runs of the batches of this page on the nodes over time'});
  for (let i = 0; i <= TICKS; i++) {
    const time = first + (last - first) * i / TICKS;
    root.append(svg('line', {x1: x(time), x2: x(time), y1: 0, y2: height - AXIS_HEIGHT, class: 'grid'}));
    root.append(svg('text', {x: x(time), y: height - 8, class: 'tick', 'text-anchor': i === 0 ? 'start'
      : i === TICKS ? 'end' : 'middle'}, i === 0 ? new Date(first * 1000).toLocaleTimeString()
      : '+' + duration(time - first)));
  }
  let y = 0;
  for (const [node, rows] of lanes) {
    const laneHeight = rows.length * (ROW_HEIGHT + ROW_GAP);
    root.append(svg('rect', {x: 0, y, width: WIDTH, height: laneHeight, class: 'lane'}));
    root.append(svg('text', {x: 6, y: y + Math.min(laneHeight, ROW_HEIGHT) - 4, class: 'lane-label'}, node));
    rows.forEach((row, index) => {
      for (const run of row.runs) {
        const label = 'batch ' + shortId(run.batchId) + ' on ' + node + ': ' + run.outcome + ', '
          + duration(run.end - run.start);
        const link = svg('a', {href: '#/batches/' + run.batchId, 'aria-label': label},
          svg('rect', {x: x(run.start), y: y + index * (ROW_HEIGHT + ROW_GAP),
            width: Math.max(2, x(run.end) - x(run.start)), height: ROW_HEIGHT, rx: 2,
            class: 'run outcome-' + run.outcome}, svg('title', {}, label)));
        root.append(link);
      }
    });
    y += laneHeight + LANE_GAP;
  }
  container.replaceChildren(root);
}

export const OUTCOMES = ['processing', 'succeeded', 'failed', 'cancelled', 'retried'];
