// The status line: a notice (no data yet), or the short error of each view
// whose last load failed; a view's error goes when that view loads.

import { el } from './dom.js';

export class StatusLine {
  constructor() {
    this.element = el('div', { id: 'status', className: 'status' });
    this.notice = '';
    this.failures = new Map(); // view -> short error of its last load
  }

  setNotice(text) {
    this.notice = text;
    this.show();
  }

  failed(view, error) {
    this.failures.set(view, error.message);
    this.show();
  }

  loaded(view) {
    if (this.failures.delete(view)) this.show();
  }

  show() {
    const failures = [...this.failures].map(([view, message]) => `Could not load ${view}: ${message}`);
    this.element.textContent = failures.length ? failures.join(' | ') : this.notice;
    this.element.classList.toggle('error', failures.length > 0);
  }
}
