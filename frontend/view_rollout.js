// Attention rollout through the layer's self-attention stack at the current
// step, on one scale for every step. Hidden for layers without rollout.

import * as api from './api.js';
import { barsBox, renderBars, servedIndex, seriesMax } from './charts.js';
import { el } from './dom.js';

export class RolloutView {
  constructor({ status }) {
    this.status = status;
    this.bars = el('div', { id: 'rollout-bars', className: 'bars' });
    this.barsMore = el('div', { id: 'rollout-bars-more', className: 'clip-note', hidden: true });
    barsBox(this.bars, this.barsMore);
    this.element = el('section', { id: 'rollout', className: 'panel', hidden: true }, [
      el('h3', { text: 'Attention rollout through the self-attention stack (this step)' }), this.bars, this.barsMore,
    ]);
    this.rollout = null;
  }

  clear() {
    this.rollout = null;
    this.loading = null;
    this.element.hidden = true;
  }

  async load(state, layer) {
    const key = JSON.stringify([state.run, state.tag, state.example]);
    this.loading = key;
    let rollout = null;
    try {
      if (layer.has_rollout) rollout = await api.fetchRollout(state.run, state.tag, state.example);
    } catch (e) {
      if (this.loading === key) this.status.failed('rollout', e);
      return;
    }
    if (this.loading !== key) return;
    this.status.loaded('rollout');
    this.rollout = rollout && { ...rollout, max: seriesMax(rollout.values) };
    this.showStep(state.step);
  }

  showStep(step) {
    const rollout = this.rollout;
    this.element.hidden = !rollout;
    if (!rollout) return;
    if (rollout.steps.length) renderBars(this.bars, rollout.tokens, rollout.values[servedIndex(rollout.steps, step)], { max: rollout.max });
  }
}
