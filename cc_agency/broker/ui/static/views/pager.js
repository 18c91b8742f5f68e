// Previous / next for a paged list, with "41–60 of 1,234"; the page lives in the route, so back works.
import {h, number, setText} from '../dom.js';

export function pager(label, onPage) {
  const previous = h('button', {type: 'button', text: '← Previous', onclick: () => onPage(-1)});
  const next = h('button', {type: 'button', text: 'Next →', onclick: () => onPage(1)});
  const where = h('span', {class: 'pager-where'});
  const nav = h('nav', {class: 'pager', 'aria-label': label}, previous, where, next);
  return {
    element: nav,
    update(skip, shown, count) {
      previous.disabled = skip <= 0;
      next.disabled = skip + shown >= count;
      setText(where, count ? number(skip + 1) + '–' + number(skip + shown) + ' of ' + number(count)
        : 'none');
    },
  };
}
