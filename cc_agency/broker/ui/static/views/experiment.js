// #/experiments/<id>: one experiment: its progress, its batches (a page at a time, by state), the timeline of
// their runs on the nodes, cancel all and resubmit the failed ones (when the API offers them).
import {del, get, offers} from '../api.js';
import {h, age, announce, dateTime, duration, number, replaceChildren, routeTo, setData, setText, shortId,
  syncRows} from '../dom.js';
import {STATES, TERMINAL, progressBar, setCounts, stateBadge, total, updateProgress} from '../states.js';
import {OUTCOMES, drawTimeline, lastRunSeconds} from '../timeline.js';
import {pager} from './pager.js';

const PAGE_SIZE = 50;

export function experimentView(main, {id, params}) {
  const page = Math.max(0, parseInt(params.get('page') || '0', 10) || 0);
  const stateFilter = STATES.includes(params.get('state')) ? params.get('state') : '';
  const go = (changes) => {
    location.hash = routeTo('/experiments/' + id, Object.assign({page, state: stateFilter}, changes));
  };

  const title = h('h1', {}, 'Experiment ', h('span', {class: 'mono', text: id}));
  const facts = h('dl', {class: 'facts'});
  const progress = progressBar();
  const summary = h('section', {class: 'summary', 'data-experiment-id': id, 'aria-label': 'Progress'}, progress);
  const actions = h('div', {class: 'actions'});
  const select = h('select', {id: 'filter-state', name: 'state'},
    h('option', {value: '', text: 'all states'}),
    STATES.map((state) => h('option', {value: state, text: state, selected: state === stateFilter})));
  select.addEventListener('change', () => go({state: select.value, page: 0}));
  const rows = h('tbody');
  const table = h('table', {class: 'list batches'},
    h('caption', {class: 'visually-hidden', text: 'Batches of this experiment'}),
    h('thead', {}, h('tr', {},
      ['Batch', 'State', 'Node', 'Attempts', 'Duration', 'Registered'].map((text) =>
        h('th', {scope: 'col', text})))),
    rows);
  const empty = h('p', {class: 'empty', hidden: true, text: 'No batches in this state.'});
  const paging = pager('Batch pages', (step) => go({page: Math.max(0, page + step)}));
  const plot = h('div', {class: 'plot'});
  const legend = h('ul', {class: 'plot-legend'},
    OUTCOMES.map((outcome) => h('li', {}, h('span', {class: 'swatch outcome-' + outcome}), outcome)));

  main.append(
    h('p', {class: 'crumbs'}, h('a', {href: '#/experiments', text: '← Experiments'})),
    title, facts, summary, actions,
    h('section', {'aria-labelledby': 'timeline-title'},
      h('h2', {id: 'timeline-title', text: 'Timeline of the batches on this page'}), plot, legend),
    h('section', {'aria-labelledby': 'batches-title'},
      h('h2', {id: 'batches-title', text: 'Batches'}),
      h('div', {class: 'tools'}, h('label', {for: 'filter-state', text: 'State'}), select),
      h('div', {class: 'table-wrap'}, table), empty, paging.element));

  let actionsShown = false;

  const showActions = async () => {
    actionsShown = true;
    const [cancelAll, resubmit] = await Promise.all([
      offers('DELETE', 'experiments/' + id), offers('POST', 'experiments/' + id + '/resubmit')]);
    const cancelButton = h('button', {type: 'button', class: 'danger', 'data-action': 'cancel-all',
      text: 'Cancel all batches'});
    cancelButton.addEventListener('click', async () => {
      if (!confirm('Cancel every batch of this experiment that has not ended?')) return;
      try {
        await del('experiments/' + id);
        announce('The experiment\'s batches are being cancelled.');
      } catch (error) {
        announce(error.message, true);
      }
    });
    const howTo = h('details', {class: 'howto'},
      h('summary', {text: 'How to resubmit the failed batches'}),
      h('p', {}, 'List them with ', h('code', {text: 'GET /batches?experimentId=' + id + '&state=failed'}),
        ' (the dashboard: choose the state "failed" below), read why each failed on its page, fix the cause, ' +
        'then POST a RED with the inputs of those batches to ', h('code', {text: '/red'}), '.'),
      // the stored credentials were overwritten when the batches ended: a resubmission carries the RED again
      resubmit ? h('p', {}, 'Or in one step: POST the same RED, with its credentials, to ',
        h('code', {text: 'experiments/' + id + '/resubmit'}), ' (add ', h('code', {text: '?states=failed,cancelled'}),
        ' to include the cancelled ones); the new experiment runs those batches again.') : null);
    replaceChildren(actions, cancelAll ? cancelButton : null, howTo);
  };

  const createRow = (batch) => h('tr', {'data-batch-id': batch._id},
    h('td', {}, h('a', {href: '#/batches/' + batch._id, class: 'mono', 'aria-label': 'batch ' + batch._id})),
    h('td'), h('td'), h('td', {class: 'col-num'}), h('td', {class: 'col-num'}), h('td'));
  const updateRow = (nowS) => (row, batch) => {
    const [link, state, node, attempts, took, registered] = row.children;
    setText(link.firstChild, shortId(batch._id));
    if (row.dataset.state !== batch.state) {
      replaceChildren(state, stateBadge(batch.state));
      setData(row, 'state', batch.state);
    }
    setText(node, batch.node || '—');
    setText(attempts, String(batch.attempts || 0));
    const seconds = lastRunSeconds(batch, nowS);
    setText(took, seconds === null ? '—' : duration(seconds));
    setText(registered, age(batch.registrationTime));
  };

  const showExperiment = (doc, shown) => {
    const counts = doc.batchCounts || {};
    updateProgress(progress, counts);
    setCounts(summary, counts);
    const settings = (doc.container || {}).settings || {};
    const image = settings.image || {};
    replaceChildren(facts,
      h('dt', {text: 'User'}), h('dd', {text: doc.username}),
      h('dt', {text: 'Image'}), h('dd', {class: 'mono', text: image.url || ''}),
      h('dt', {text: 'RAM per batch'}), h('dd', {text: number(settings.ram || 0) + ' MiB'}),
      h('dt', {text: 'Batches'}), h('dd', {text: number(doc.batchCount) +
        (doc.registrationComplete ? '' : ' (registration under way: ' + number(total(counts)) + ' so far)')}),
      h('dt', {text: 'Registered'}), h('dd', {text: dateTime(doc.registrationTime) + ' (' +
        age(doc.registrationTime) + ')'}),
      doc.doc ? [h('dt', {text: 'Description'}), h('dd', {text: doc.doc})] : null);
    for (const option of select.options) {
      if (option.value) setText(option, option.value + ' (' + number(counts[option.value] || 0) + ')');
      else setText(option, 'all states (' + number(total(counts)) + ')');
    }
    paging.update(page * PAGE_SIZE, shown, stateFilter ? counts[stateFilter] || 0 : total(counts));
    if (!actionsShown) showActions().catch((error) => announce(error.message, true));
    const anyActive = STATES.some((state) => !TERMINAL.has(state) && counts[state]);
    for (const button of actions.querySelectorAll('[data-action="cancel-all"]')) button.disabled = !anyActive;
    for (const button of actions.querySelectorAll('[data-action="resubmit"]')) button.disabled = !counts.failed;
  };

  return {
    async refresh() {
      // the page of batches comes back fast whatever the experiment's size; the counts cost what the database
      // takes to count its batches (cc_agency/batch_counts.py), so the rows are shown without waiting
      const batchesAnswer = get('batches', {experimentId: id, state: stateFilter || undefined,
        skip: page * PAGE_SIZE, limit: PAGE_SIZE, timeline: true});
      const experimentAnswer = get('experiments/' + id);
      experimentAnswer.catch(() => {});  // awaited below; not an unhandled rejection meanwhile
      const batches = await batchesAnswer;
      const nowS = Date.now() / 1000;
      syncRows(rows, batches, (b) => b._id, createRow, updateRow(nowS));
      empty.hidden = batches.length > 0;
      drawTimeline(plot, batches, nowS);
      showExperiment(await experimentAnswer, batches.length);
    },
  };
}
