// #/batches/<id>: one batch: its state, its history as a timeline with each entry's debugInfo, the stdout and
// stderr of its command (followed while it runs), and cancel.
import {ApiError, del, get, getText} from '../api.js';
import {h, announce, dateTime, duration, replaceChildren, routeTo, setData, setText} from '../dom.js';
import {TERMINAL, stateBadge} from '../states.js';

function outputPanel(stream) {
  const follow = h('input', {type: 'checkbox', id: 'follow-' + stream, checked: true});
  const text = h('pre', {class: 'output', id: 'output-' + stream, tabindex: 0, 'aria-label': stream,
    'data-stream': stream});
  const note = h('p', {class: 'note'});
  const followLabel = h('label', {for: 'follow-' + stream, class: 'check'}, follow, ' follow the end');
  const section = h('section', {'aria-labelledby': 'title-' + stream},
    h('div', {class: 'output-head'}, h('h2', {id: 'title-' + stream, text: stream}), followLabel),
    note, text);
  return {
    section,
    show(content, message, running) {
      setText(note, message || '');
      followLabel.hidden = !running;  // nothing more will come once the batch ended
      text.hidden = content === null;
      if (content === null) return;
      if (text.textContent !== content) {
        text.textContent = content;
        if (follow.checked) text.scrollTop = text.scrollHeight;
      }
    },
  };
}

function historyItem(entry, previous) {
  const took = previous ? ' (after ' + duration(entry.time - previous.time) + ')' : '';
  return h('li', {class: 'event state-line-' + entry.state, 'data-state': entry.state},
    h('div', {class: 'event-head'}, stateBadge(entry.state),
      h('time', {datetime: new Date(entry.time * 1000).toISOString(), text: dateTime(entry.time) + took}),
      entry.node ? h('span', {class: 'node', text: 'on ' + entry.node}) : null),
    entry.debugInfo && entry.debugInfo.length
      ? h('pre', {class: 'debug', text: [].concat(entry.debugInfo).join('\n')}) : null);
}

export function batchView(main, {id}) {
  const title = h('h1', {}, 'Batch ', h('span', {class: 'mono', text: id}));
  const crumbs = h('p', {class: 'crumbs'});
  const facts = h('dl', {class: 'facts'});
  const card = h('section', {class: 'summary', 'data-batch-id': id, 'aria-label': 'State'}, facts);
  const cancel = h('button', {type: 'button', class: 'danger', 'data-action': 'cancel', text: 'Cancel batch',
    hidden: true});
  const history = h('ol', {class: 'history'});
  const stdout = outputPanel('stdout');
  const stderr = outputPanel('stderr');
  main.append(crumbs, title, card, h('div', {class: 'actions'}, cancel),
    h('section', {'aria-labelledby': 'history-title'}, h('h2', {id: 'history-title', text: 'History'}), history),
    h('div', {class: 'outputs'}, stdout.section, stderr.section));

  let outputsFinal = false;  // read once more after the batch ended, then no more
  cancel.addEventListener('click', async () => {
    cancel.disabled = true;
    try {
      await del('batches/' + id);
      announce('Batch cancelled.');
    } catch (error) {
      announce(error.message, true);
    }
  });

  async function output(stream) {
    try {
      return {content: await getText('batches/' + id + '/' + stream)};
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) return {content: null};
      throw error;
    }
  }

  return {
    async refresh() {
      const batch = await get('batches/' + id);
      replaceChildren(crumbs, h('a', {href: routeTo('/experiments/' + batch.experimentId),
        text: '← Experiment ' + batch.experimentId}));
      setData(card, 'state', batch.state);
      replaceChildren(facts,
        h('dt', {text: 'State'}), h('dd', {}, stateBadge(batch.state)),
        h('dt', {text: 'Node'}), h('dd', {text: batch.node || '—'}),
        h('dt', {text: 'Attempts'}), h('dd', {text: String(batch.attempts || 0)}),
        h('dt', {text: 'User'}), h('dd', {text: batch.username}),
        h('dt', {text: 'Registered'}), h('dd', {text: dateTime(batch.registrationTime)}));
      const ended = TERMINAL.has(batch.state);
      cancel.hidden = ended;
      if (!ended) cancel.disabled = false;
      const entries = batch.history || [];
      if (history.children.length !== entries.length) {
        replaceChildren(history, entries.map((entry, i) => historyItem(entry, entries[i - 1])));
      }
      if (!outputsFinal) {
        const [out, err] = await Promise.all([output('stdout'), output('stderr')]);
        const message = ended ? '' : 'The batch is ' + batch.state + '; this follows its output.';
        const none = ended ? 'None: the batch ended without output of its command.'
          : 'Not available yet: the batch is ' + batch.state + '.';
        stdout.show(out.content, out.content === null ? none : message, !ended);
        stderr.show(err.content, err.content === null ? none : message, !ended);
        outputsFinal = ended;
      }
    },
  };
}
