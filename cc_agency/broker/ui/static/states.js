// Batch states in life-cycle order (cc_agency/states.py says the same for the server), and the progress bar
// that shows how many batches of an experiment are in each.
import {h, number, setData, setText} from './dom.js';

export const STATES = ['registered', 'scheduled', 'processing', 'succeeded', 'failed', 'cancelled'];
export const TERMINAL = new Set(['succeeded', 'failed', 'cancelled']);

export function total(counts) {
  return STATES.reduce((sum, state) => sum + ((counts && counts[state]) || 0), 0);
}

export function stateBadge(state) {
  return h('span', {class: 'badge state-' + state, text: state});
}

export function progressBar() {
  const bar = h('div', {class: 'progress', role: 'img'},
    STATES.map((state) => h('span', {class: 'segment state-' + state, 'data-segment': state})));
  const legend = h('div', {class: 'legend'});
  return h('div', {class: 'progress-wrap'}, bar, legend);
}

// Updates a progressBar() element; `counts` is {state: n} (batchCounts of the API).
export function updateProgress(wrap, counts) {
  const sum = total(counts);
  const [bar, legend] = wrap.children;
  const parts = [];
  for (const state of STATES) {
    const n = (counts && counts[state]) || 0;
    const segment = bar.querySelector('[data-segment="' + state + '"]');
    const width = sum ? (100 * n / sum) + '%' : '0%';
    if (segment.style.width !== width) segment.style.width = width;
    if (n) parts.push(number(n) + ' ' + state);
  }
  const text = parts.length ? parts.join(' · ') : 'no batches registered yet';
  bar.setAttribute('aria-label', text);
  setText(legend, text);
}

export function setCounts(element, counts) {
  for (const state of STATES) setData(element, 'count-' + state, (counts && counts[state]) || 0);
}
