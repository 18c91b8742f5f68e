// The dashboard's shell: hash routes to views, the login gate, and the refresh loop that keeps the shown view
// live (every REFRESH_MS, so a change in the database shows within about two seconds, without a reload).
import {session, logout} from './api.js';
import {announce, routeParams} from './dom.js';
import {loginView} from './views/login.js';
import {experimentsView} from './views/experiments.js';
import {experimentView} from './views/experiment.js';
import {batchView} from './views/batch.js';
import {nodesView} from './views/nodes.js';

const REFRESH_MS = 1000;

const ROUTES = [
  [/^\/experiments$/, experimentsView, 'experiments'],
  [/^\/experiments\/([0-9a-f]{24})$/, experimentView, 'experiments'],
  [/^\/batches\/([0-9a-f]{24})$/, batchView, 'experiments'],
  [/^\/nodes$/, nodesView, 'nodes'],
];

let current = null;  // {view, timer, generation}
let generation = 0;

function stopCurrent() {
  if (current) {
    clearTimeout(current.timer);
    if (current.view.stop) current.view.stop();
  }
  current = null;
}

function header(user) {
  const nav = document.getElementById('nav');
  const who = document.getElementById('who');
  const logoutButton = document.getElementById('logout');
  nav.hidden = !user;
  logoutButton.hidden = !user;
  who.textContent = user ? user.username + (user.isAdmin ? ' (admin)' : '') : '';
}

function markSection(section) {
  for (const link of document.querySelectorAll('#nav a')) {
    if (link.dataset.section === section) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
}

async function refreshLoop(state) {
  if (state !== current) return;
  if (!document.hidden) {
    try {
      await state.view.refresh();
      state.main.classList.remove('stale');
    } catch (error) {
      if (state !== current) return;
      if (error.status === 401) return;  // cc-logged-out shows the login form
      state.main.classList.add('stale');
      announce(error.message, true);
    }
  }
  if (state === current) state.timer = setTimeout(() => refreshLoop(state), REFRESH_MS);
}

export function render(message) {
  stopCurrent();
  generation += 1;
  const main = document.getElementById('main');
  main.replaceChildren();
  const user = session();
  header(user);
  if (!user) {
    markSection(null);
    loginView(main, {message, onLogin: () => render()});
    return;
  }
  const {path, params} = routeParams();
  for (const [pattern, view, section] of ROUTES) {
    const match = pattern.exec(path);
    if (match) {
      markSection(section);
      const state = {view: view(main, {id: match[1], params, user}), main, timer: null, generation};
      current = state;
      refreshLoop(state);
      return;
    }
  }
  location.replace('#/experiments');
}

window.addEventListener('hashchange', () => {
  render();
  document.getElementById('main').focus({preventScroll: true});
});
window.addEventListener('cc-logged-out', (event) => render(event.detail));
document.addEventListener('visibilitychange', () => {
  if (!document.hidden && current) {
    clearTimeout(current.timer);
    refreshLoop(current);
  }
});
document.getElementById('logout').addEventListener('click', () => {
  logout();
  location.hash = '#/experiments';
  render('You are logged out.');
});
render();
