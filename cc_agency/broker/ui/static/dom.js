// Building and updating the page: elements from plain data (text is always set as text, never parsed as HTML),
// rows kept by key so a refresh updates them in place and keyboard focus stays where it was.

export function h(tag, attributes, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === 'class') element.className = value;
    else if (name.startsWith('on')) element.addEventListener(name.slice(2), value);
    else if (name === 'text') element.textContent = value;
    else element.setAttribute(name, value === true ? '' : String(value));
  }
  append(element, children);
  return element;
}

export function append(element, children) {
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

export function replaceChildren(element, ...children) {
  element.replaceChildren();
  return append(element, children);
}

export function setText(element, text) {
  if (element.textContent !== text) element.textContent = text;
}

// Rows of `container` for `items`, one element per key: existing ones are updated (`update(element, item)`),
// new ones made (`create(item)` then update), missing ones removed, all put in the order of `items`.
export function syncRows(container, items, keyOf, create, update) {
  const existing = new Map();
  for (const child of Array.from(container.children)) existing.set(child.dataset.key, child);
  let previous = null;
  for (const item of items) {
    const key = String(keyOf(item));
    let element = existing.get(key);
    if (element) existing.delete(key);
    else {
      element = create(item);
      element.dataset.key = key;
    }
    update(element, item);
    const next = previous ? previous.nextSibling : container.firstChild;
    if (next !== element) container.insertBefore(element, next);
    previous = element;
  }
  for (const element of existing.values()) element.remove();
}

export function setData(element, name, value) {
  const text = value === undefined || value === null ? '' : String(value);
  if (element.getAttribute('data-' + name) !== text) element.setAttribute('data-' + name, text);
}

const NUMBER = new Intl.NumberFormat('en');
export const number = (n) => NUMBER.format(n);

export function age(epochSeconds, nowMs = Date.now()) {
  return duration(Math.max(0, nowMs / 1000 - epochSeconds)) + ' ago';
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return '—';
  if (seconds < 60) return seconds.toFixed(seconds < 10 ? 1 : 0) + ' s';
  if (seconds < 3600) return Math.floor(seconds / 60) + ' min ' + Math.floor(seconds % 60) + ' s';
  if (seconds < 86400) return Math.floor(seconds / 3600) + ' h ' + Math.floor((seconds % 3600) / 60) + ' min';
  return Math.floor(seconds / 86400) + ' d ' + Math.floor((seconds % 86400) / 3600) + ' h';
}

export function dateTime(epochSeconds) {
  return new Date(epochSeconds * 1000).toLocaleString();
}

export function shortId(id) {
  return id ? id.slice(-8) : '';
}

// The parameters of the page's hash route (#/path?key=value).
export function routeParams() {
  const hash = location.hash.replace(/^#/, '');
  const [path, query] = hash.split('?');
  return {path: path || '/experiments', params: new URLSearchParams(query || '')};
}

export function routeTo(path, params) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params || {})) {
    if (value !== undefined && value !== null && value !== '' && value !== 0) query.set(key, String(value));
  }
  const text = query.toString();
  return '#' + path + (text ? '?' + text : '');
}

let statusTimer = null;
export function announce(message, isError = false) {
  const region = document.getElementById('status');
  region.textContent = message;
  region.classList.toggle('error', isError);
  clearTimeout(statusTimer);
  statusTimer = setTimeout(() => { region.textContent = ''; }, 6000);
}
