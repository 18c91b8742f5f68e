// #/experiments: the user's experiments (an admin's: everyone's, or one user's), newest first, a page at a time,
// each with its progress by batch state, its image and its age.
import {get} from '../api.js';
import {h, age, number, routeTo, setText, shortId, syncRows} from '../dom.js';
import {progressBar, setCounts, total, updateProgress} from '../states.js';
import {pager} from './pager.js';

const PAGE_SIZE = 20;

export function experimentsView(main, {params, user}) {
  const page = Math.max(0, parseInt(params.get('page') || '0', 10) || 0);
  const username = params.get('username') || '';
  const go = (changes) => {
    location.hash = routeTo('/experiments', Object.assign({page, username}, changes));
  };

  const title = h('h1', {text: 'Experiments'});
  const tools = h('div', {class: 'tools'});
  if (user.isAdmin) {
    const input = h('input', {id: 'filter-username', name: 'username-filter', type: 'search', value: username,
      placeholder: 'everyone', autocomplete: 'off'});
    const form = h('form', {class: 'inline-form', role: 'search'},
      h('label', {for: 'filter-username', text: 'User'}), input,
      h('button', {type: 'submit', text: 'Filter'}));
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      go({username: input.value.trim(), page: 0});
    });
    tools.append(form);
  }
  const rows = h('tbody');
  const table = h('table', {class: 'list experiments'},
    h('caption', {class: 'visually-hidden', text: 'Experiments, newest first'}),
    h('thead', {}, h('tr', {},
      h('th', {scope: 'col', text: 'Experiment'}),
      user.isAdmin ? h('th', {scope: 'col', class: 'col-user', text: 'User'}) : null,
      h('th', {scope: 'col', class: 'col-progress', text: 'Progress'}),
      h('th', {scope: 'col', class: 'col-num', text: 'Batches'}),
      h('th', {scope: 'col', class: 'col-image', text: 'Image'}),
      h('th', {scope: 'col', text: 'Age'}))),
    rows);
  const empty = h('p', {class: 'empty', hidden: true, text: 'No experiments yet. Submit a RED with POST /red.'});
  const paging = pager('Experiment pages', (step) => go({page: Math.max(0, page + step)}));
  main.append(title, tools, h('div', {class: 'table-wrap'}, table), empty, paging.element);

  const create = (experiment) => {
    const link = h('a', {href: routeTo('/experiments/' + experiment._id), class: 'mono'});
    const row = h('tr', {'data-experiment-id': experiment._id},
      h('td', {}, link, h('div', {class: 'doc'})),
      user.isAdmin ? h('td', {class: 'col-user'}) : null,
      h('td', {class: 'col-progress'}, progressBar()),
      h('td', {class: 'col-num'}),
      h('td', {class: 'col-image mono'}),
      h('td', {class: 'age'}));
    return row;
  };
  const update = (row, experiment) => {
    const cells = row.children;
    let i = 0;
    const first = cells[i++];
    setText(first.firstChild, shortId(experiment._id));
    first.firstChild.setAttribute('aria-label', 'experiment ' + experiment._id);
    setText(first.lastChild, experiment.doc || '');
    if (user.isAdmin) setText(cells[i++], experiment.username);
    const counts = experiment.batchCounts || {};
    updateProgress(cells[i++].firstChild, counts);
    const registered = total(counts);
    setText(cells[i++], experiment.registrationComplete || registered === experiment.batchCount
      ? number(experiment.batchCount) : number(registered) + ' of ' + number(experiment.batchCount));
    const image = ((experiment.container || {}).settings || {}).image || {};
    setText(cells[i++], image.url || '');
    setText(cells[i++], age(experiment.registrationTime));
    setCounts(row, counts);
  };

  return {
    async refresh() {
      const filter = {username: username || undefined};
      const [experiments, count] = await Promise.all([
        get('experiments', Object.assign({skip: page * PAGE_SIZE, limit: PAGE_SIZE}, filter)),
        get('experiments/count', filter),
      ]);
      syncRows(rows, experiments, (e) => e._id, create, update);
      empty.hidden = experiments.length > 0;
      setText(title, username ? 'Experiments of ' + username : 'Experiments');
      paging.update(page * PAGE_SIZE, experiments.length, count.count);
    },
  };
}
