// #/nodes: the Docker engines: state, RAM and GPUs in use, the batches on each; cordon / uncordon for admins
// once the API offers it (PATCH /nodes/<name> with {"schedulable": ...}).
import {get, offers, patch} from '../api.js';
import {h, announce, age, number, replaceChildren, setData, setText, shortId, syncRows} from '../dom.js';
import {stateBadge} from '../states.js';

function meter(label) {
  const fill = h('span', {class: 'meter-fill'});
  const bar = h('div', {class: 'meter', role: 'meter', 'aria-label': label, 'aria-valuemin': 0}, fill);
  const text = h('div', {class: 'meter-text'});
  return {
    element: h('div', {class: 'meter-wrap'}, h('div', {class: 'meter-label', text: label}), bar, text),
    update(used, available, unit) {
      const share = available ? Math.min(1, used / available) : 0;
      fill.style.width = (100 * share) + '%';
      bar.setAttribute('aria-valuemax', available || 0);
      bar.setAttribute('aria-valuenow', used);
      const description = available ? number(used) + ' of ' + number(available) + ' ' + unit + ' in use'
        : (used ? number(used) + ' ' + unit + ' in use' : 'none');
      bar.setAttribute('aria-valuetext', description);
      setText(text, description);
    },
  };
}

export function nodesView(main, {user}) {
  const list = h('div', {class: 'nodes'});
  const empty = h('p', {class: 'empty', hidden: true, text: 'The controller has not reported any node yet.'});
  main.append(h('h1', {text: 'Nodes'}), empty, list);
  let cordonOffered = null;

  const create = (node) => {
    const ram = meter('RAM');
    const gpus = meter('GPUs');
    const card = h('section', {class: 'node-card', 'data-node': node.nodeName, 'aria-label': 'node ' + node.nodeName},
      h('div', {class: 'node-head'}, h('h2', {text: node.nodeName}), h('span', {class: 'node-state'}),
        h('span', {class: 'node-actions'})),
      h('p', {class: 'node-facts'}), ram.element, gpus.element,
      h('h3', {text: 'Batches'}), h('ul', {class: 'node-batches'}));
    card.meters = {ram, gpus};
    return card;
  };
  const update = (card, node) => {
    setData(card, 'state', node.state);
    const schedulable = node.schedulable !== false;
    setData(card, 'schedulable', schedulable);
    replaceChildren(card.querySelector('.node-state'), stateBadge(node.state),
      schedulable ? null : h('span', {class: 'badge cordoned', text: 'cordoned'}));
    const batches = node.currentBatches || [];
    const usedRam = batches.reduce((sum, batch) => sum + (batch.ramMiB || 0), 0);
    const usedGpus = batches.reduce((sum, batch) => sum + ((batch.usedGPUs || []).length), 0);
    card.meters.ram.update(usedRam, node.ramMiB, 'MiB');
    card.meters.gpus.update(usedGpus, (node.gpus || []).length, 'GPUs');
    setData(card, 'ram-used-mib', usedRam);
    setText(card.querySelector('.node-facts'), [node.cpus ? node.cpus + ' CPUs' : null,
      node.lastSeen ? 'last seen ' + age(node.lastSeen) : null].filter(Boolean).join(' · '));
    replaceChildren(card.querySelector('.node-batches'), batches.length ? batches.map((batch) =>
      h('li', {'data-batch-id': batch.batchId || undefined, 'data-state': batch.state}, stateBadge(batch.state), ' ',
        batch.batchId ? h('a', {href: '#/batches/' + batch.batchId, class: 'mono', text: shortId(batch.batchId),
          'aria-label': 'batch ' + batch.batchId}) : h('span', {text: 'a batch of another user'}),
        ' · ' + number(batch.ramMiB) + ' MiB')) : h('li', {class: 'empty', text: 'none'}));
    const actions = card.querySelector('.node-actions');
    if (cordonOffered && user.isAdmin) {
      const wanted = schedulable ? 'Cordon' : 'Uncordon';
      if (!actions.firstChild || actions.firstChild.textContent !== wanted) {
        const button = h('button', {type: 'button', 'data-action': 'cordon', text: wanted});
        button.addEventListener('click', async () => {
          button.disabled = true;
          try {
            await patch('nodes/' + encodeURIComponent(node.nodeName), {schedulable: !schedulable});
            announce('Node ' + node.nodeName + (schedulable ? ' cordoned.' : ' uncordoned.'));
          } catch (error) {
            announce(error.message, true);
            button.disabled = false;
          }
        });
        replaceChildren(actions, button);
      }
    }
  };

  return {
    async refresh() {
      const nodes = await get('nodes');
      if (cordonOffered === null && nodes.length && user.isAdmin) {
        cordonOffered = await offers('PATCH', 'nodes/' + encodeURIComponent(nodes[0].nodeName));
      }
      syncRows(list, nodes, (node) => node.nodeName, create, update);
      empty.hidden = nodes.length > 0;
    },
  };
}
