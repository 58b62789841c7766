// dom.js -- the one way the console builds DOM: elements from data.
//
// h(tag, attrs, ...children): attributes are set with setAttribute (values
// converted to strings; null, undefined and false leave them out; true sets
// an empty attribute), keys starting with "on" add event listeners, and
// children are nodes or strings, strings becoming text nodes.  Nothing here
// parses HTML: user data can only ever become text.

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') {
      el.addEventListener(k.slice(2), v);
    } else {
      el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  append(el, children);
  return el;
}

// Append children (nodes, strings, numbers, nested arrays; null skipped).
export function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

// Replace every child of el.
export function replace(el, ...children) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return append(el, children);
}

// Set an element's text (textContent only).
export function text(el, s) {
  el.textContent = s;
  return el;
}

// A labelled form field: <label for=id>label</label> + control.
let ids = 0;
export function field(label, control, hint) {
  const id = control.id || 'f' + ++ids;
  control.setAttribute('id', id);
  const msg = h('p', { class: 'field-error', id: id + '-err', hidden: true });
  control.setAttribute('aria-describedby', msg.id);
  return h('div', { class: 'field' },
    h('label', { for: id }, label), control, hint ? h('p', { class: 'hint' }, hint) : null, msg);
}

// Show or clear a field's own error (the API's message, or ours).
export function fieldError(control, message) {
  const msg = document.getElementById(control.id + '-err');
  if (!msg) return;
  if (message) {
    control.setAttribute('aria-invalid', 'true');
    msg.hidden = false;
    text(msg, message);
  } else {
    control.removeAttribute('aria-invalid');
    msg.hidden = true;
    text(msg, '');
  }
}

export function select(attrs, options, value) {
  return h('select', attrs, options.map(([v, label]) =>
    h('option', { value: v, selected: v === value }, label)));
}

// "2026-12-03T13:50:43Z" as the reader's local date and time.
export function when(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return d.toLocaleString(undefined, {
    year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit',
  });
}

export function time(iso) {
  return h('time', { datetime: iso, title: iso }, when(iso));
}
