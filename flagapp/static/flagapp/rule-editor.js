/* flagapp visual targeting editor (progressive enhancement; flagapp/admin/editor.py says why).
 *
 * The textarea stays the field the server reads. This script draws rule rows (conditions,
 * a served variant or a split in %), or prerequisite rows, from the pieces the server put in
 * data-model, and writes the textarea's text back on every edit by joining those pieces the
 * way flagapp.admin.syntax.format_rules does. "Text (advanced)" shows the textarea itself;
 * coming back, the text is read by the server's parser (data-parse-url), never by a second
 * grammar here. Without JavaScript the textarea works as before.
 */
(function (root, factory) {
  "use strict";
  var api = factory();
  if (typeof module === "object" && module.exports) {
    module.exports = api;
  } else {
    root.FlagappEditor = api;
    if (document.readyState === "loading") {
      document.addEventListener("DOMContentLoaded", function () { api.init(document); });
    } else {
      api.init(document);
    }
  }
})(this, function () {
  "use strict";

  var BASIS = 10000; // a split is stored in basis points: 100.00 % = 10000

  // --- text from pieces (kept identical to flagapp.admin.syntax) -----------------------
  function conditionLine(c) {
    if (c.raw !== undefined) return c.raw;
    var line = c.op;
    if (c.attr !== null && c.attr !== undefined) line = c.attr + " " + line + (c.ci ? "/i" : "");
    if (c.values && c.values.length) line = line + " " + c.values.join(", ");
    return c.negate ? "not " + line : line;
  }

  function serveText(s) {
    if (s.weights) {
      return s.weights.map(function (w) { return w.variant + ":" + w.weight; })
        .concat(s.options || []).join(" ");
    }
    return s.variant || "";
  }

  function formatRules(items) {
    return items.map(function (r) {
      var when = r.when.map(conditionLine).join("; ");
      return ("[" + r.id + "] " + when + " => " + serveText(r.serve)).replace("]  =>", "] =>");
    }).join("\n");
  }

  function formatPrerequisites(items) {
    return items.map(function (p) { return p.flag + ": " + p.variants.join(", "); }).join("\n");
  }

  // A value typed into a chip, as the text syntax reads it: numbers, true/false and null are
  // literals (type "42" with quotes for a string), a text with a separator is quoted.
  var LITERAL = /^(?:-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|true|false|null)$/;
  function chipToken(typed) {
    var text = typed.trim();
    if (!text) return null;
    if (text.charAt(0) === '"') return text; // already a quoted string
    if (LITERAL.test(text)) return text;
    if (/[,;"]/.test(text)) return JSON.stringify(text);
    return text;
  }

  // --- percentages ------------------------------------------------------------------------
  function totalOf(weights) {
    return weights.reduce(function (sum, w) { return sum + (Number(w.weight) || 0); }, 0);
  }
  function percentOf(weight, total) {
    return total > 0 ? (weight * 100 / total).toFixed(2) : "0.00";
  }
  function toBasisPoints(percentText) {
    var n = Number(String(percentText).replace(",", "."));
    if (!isFinite(n) || n < 0) return null;
    return Math.round(n * 100);
  }
  /** Rescale a split to basis points (what the % inputs edit), keeping its shares. */
  function normalise(weights) {
    var total = totalOf(weights);
    if (total === BASIS) return;
    weights.forEach(function (w) { w.weight = total > 0 ? Math.round(w.weight * BASIS / total) : 0; });
  }

  // --- DOM helpers --------------------------------------------------------------------------
  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") node.textContent = attrs[k];
      else if (k === "class") node.className = attrs[k];
      else if (k.slice(0, 2) === "on") node.addEventListener(k.slice(2), attrs[k]);
      else if (attrs[k] !== null && attrs[k] !== undefined && attrs[k] !== false) node.setAttribute(k, attrs[k] === true ? "" : attrs[k]);
    });
    (children || []).forEach(function (c) { if (c) node.appendChild(typeof c === "string" ? document.createTextNode(c) : c); });
    return node;
  }
  function button(label, title, onclick, extra) {
    // The accessible name holds the visible words (WCAG 2.5.3 "label in name", axe
    // label-content-name-mismatch: a voice user says what they see); symbols (↑ ✕) are not
    // words, so those buttons are named by their title alone.
    var name = /[A-Za-z]/.test(label) ? label.replace(/^\+\s*/, "") + " (" + title + ")" : title;
    return el("button", Object.assign({ type: "button", class: "flagapp-editor-btn", title: title, "aria-label": name, onclick: onclick }, extra || {}), [label]);
  }
  var uid = 0;
  function nextId(prefix) { uid += 1; return "flagapp-ed-" + prefix + "-" + uid; }

  function csrfToken(form) {
    var input = form && form.querySelector("input[name=csrfmiddlewaretoken]");
    if (input) return input.value;
    var m = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return m ? decodeURIComponent(m[1]) : "";
  }

  var optionsPromise = null;
  function loadOptions(url) {
    if (!optionsPromise) {
      optionsPromise = fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { return r.ok ? r.json() : { segments: [], flags: {} }; })
        .catch(function () { return { segments: [], flags: {} }; });
    }
    return optionsPromise;
  }

  // --- one editor ---------------------------------------------------------------------------
  function Editor(textarea) {
    this.textarea = textarea;
    this.kind = textarea.getAttribute("data-flagapp-editor");
    this.operators = JSON.parse(textarea.getAttribute("data-operators") || "[]");
    this.opByName = {};
    var self = this;
    this.operators.forEach(function (op) { self.opByName[op.name] = op; });
    this.options = { segments: [], flags: {} };
    this.flagId = textarea.getAttribute("data-flag-id");
    var model = JSON.parse(textarea.getAttribute("data-model") || '{"items": []}');
    this.items = model.items || [];
    this.written = textarea.value;
    this.root = el("div", { class: "flagapp-editor", "data-kind": this.kind });
    this.status = el("p", { class: "flagapp-editor-status", role: "status", "aria-live": "polite" });
    this.visual = el("div", { class: "flagapp-editor-visual" });
    var label = this.kind === "rules" ? "Rules editor mode" : "Prerequisites editor mode";
    this.visualBtn = button("Visual", "Edit as rows", function () { self.toVisual(); }, { "aria-pressed": "true" });
    this.textBtn = button("Text (advanced)", "Edit the text syntax", function () { self.toText(); }, { "aria-pressed": "false" });
    this.root.appendChild(el("div", { class: "flagapp-editor-modes", role: "group", "aria-label": label }, [this.visualBtn, this.textBtn]));
    this.root.appendChild(this.status);
    this.root.appendChild(this.visual);
    textarea.parentNode.insertBefore(this.root, textarea);
    this.datalists();
    if (model.error) {
      this.mode = "visual";
      this.toText("The text has a syntax error (" + model.error + "): fix it here, then go back to Visual.");
    } else {
      this.mode = "text";
      this.toVisual(true);
    }
    loadOptions(textarea.getAttribute("data-options-url")).then(function (opts) {
      self.options = opts;
      self.fillDatalists();
    });
    this.showServerErrors();
  }

  Editor.prototype.datalists = function () {
    this.segmentList = el("datalist", { id: nextId("segments") });
    this.variantList = el("datalist", { id: nextId("variants") });
    this.flagList = el("datalist", { id: nextId("flags") });
    this.attrList = el("datalist", { id: nextId("attrs") });
    ["targetingKey", "email", "plan", "country", "groups", "is_staff", "is_superuser", "app_version"].forEach(function (a) {
      this.attrList.appendChild(el("option", { value: a }));
    }, this);
    this.root.appendChild(this.segmentList);
    this.root.appendChild(this.variantList);
    this.root.appendChild(this.flagList);
    this.root.appendChild(this.attrList);
  };

  Editor.prototype.fillDatalists = function () {
    var opts = this.options;
    var fill = function (list, values) {
      list.textContent = "";
      values.forEach(function (v) { list.appendChild(el("option", { value: v })); });
    };
    fill(this.segmentList, opts.segments || []);
    var flags = opts.flags || {};
    var own = this.flagId && flags[this.flagId] ? flags[this.flagId].variants : [];
    fill(this.variantList, own);
    fill(this.flagList, Object.keys(flags).filter(function (id) {
      return id !== this.flagId && !flags[id].archived;
    }, this).map(function (id) { return flags[id].key; }));
  };

  Editor.prototype.variantsOfFlag = function (key) {
    var flags = this.options.flags || {};
    for (var id in flags) { if (flags[id].key === key) return flags[id].variants; }
    return [];
  };

  Editor.prototype.write = function () {
    var text = this.kind === "rules" ? formatRules(this.items) : formatPrerequisites(this.items);
    this.textarea.value = text;
    this.written = text;
  };

  Editor.prototype.changed = function (redraw) {
    this.write();
    if (redraw) this.render();
  };

  Editor.prototype.setMode = function (mode) {
    this.mode = mode;
    var visual = mode === "visual";
    this.visual.hidden = !visual;
    this.textarea.hidden = visual;
    this.textarea.style.display = visual ? "none" : "";
    this.visualBtn.setAttribute("aria-pressed", String(visual));
    this.textBtn.setAttribute("aria-pressed", String(!visual));
  };

  Editor.prototype.toText = function (message) {
    this.setMode("text");
    this.status.textContent = message || "";
    this.status.className = "flagapp-editor-status" + (message ? " flagapp-editor-error" : "");
  };

  Editor.prototype.toVisual = function (initial) {
    var self = this;
    if (initial || this.textarea.value === this.written) {
      this.status.textContent = "";
      this.status.className = "flagapp-editor-status";
      this.setMode("visual");
      this.render();
      return Promise.resolve(true);
    }
    var body = new URLSearchParams();
    body.set("kind", this.kind);
    body.set("text", this.textarea.value);
    return fetch(this.textarea.getAttribute("data-parse-url"), {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrfToken(this.textarea.form), "Content-Type": "application/x-www-form-urlencoded", Accept: "application/json" },
      body: body.toString()
    }).then(function (r) { return r.json(); }).then(function (model) {
      if (model.error) {
        self.toText(model.error);
        return false;
      }
      self.items = model.items;
      self.written = self.textarea.value;
      self.status.textContent = "";
      self.status.className = "flagapp-editor-status";
      self.setMode("visual");
      self.render();
      return true;
    }).catch(function () {
      self.toText("The text could not be checked (network): it is kept as typed and saved as text.");
      return false;
    });
  };

  Editor.prototype.render = function () {
    this.visual.textContent = "";
    if (this.kind === "rules") this.renderRules();
    else this.renderPrerequisites();
  };

  Editor.prototype.move = function (from, to) {
    if (to < 0 || to >= this.items.length || from === to) return;
    var item = this.items.splice(from, 1)[0];
    this.items.splice(to, 0, item);
    this.changed(true);
  };

  // --- rules --------------------------------------------------------------------------------
  Editor.prototype.renderRules = function () {
    var self = this;
    var list = el("ol", { class: "flagapp-editor-rules" });
    if (!this.items.length) {
      this.visual.appendChild(el("p", { class: "flagapp-editor-note", text: "No rules: everyone gets the fallthrough." }));
    }
    this.items.forEach(function (rule, index) { list.appendChild(self.ruleCard(rule, index)); });
    this.visual.appendChild(list);
    this.visual.appendChild(button("+ Add rule", "Add a rule", function () {
      self.items.push({ id: "", when: [], serve: { variant: self.defaultVariant() } });
      self.changed(true);
      var cards = self.visual.querySelectorAll(".flagapp-editor-rule");
      var last = cards[cards.length - 1];
      if (last) { var first = last.querySelector("input, select"); if (first) first.focus(); }
    }, { class: "flagapp-editor-btn flagapp-editor-add" }));
  };

  Editor.prototype.defaultVariant = function () {
    var flags = this.options.flags || {};
    var own = this.flagId && flags[this.flagId] ? flags[this.flagId].variants : [];
    return own[0] || "on";
  };

  Editor.prototype.ruleCard = function (rule, index) {
    var self = this;
    var card = el("li", { class: "flagapp-editor-rule", draggable: "true", "data-index": String(index) });
    card.addEventListener("dragstart", function (e) {
      e.dataTransfer.effectAllowed = "move";
      e.dataTransfer.setData("text/plain", String(index));
      card.classList.add("flagapp-editor-dragging");
    });
    card.addEventListener("dragend", function () { card.classList.remove("flagapp-editor-dragging"); });
    card.addEventListener("dragover", function (e) { e.preventDefault(); e.dataTransfer.dropEffect = "move"; });
    card.addEventListener("drop", function (e) {
      e.preventDefault();
      var from = Number(e.dataTransfer.getData("text/plain"));
      if (!isNaN(from)) self.move(from, index);
    });
    var idInput = el("input", { type: "text", class: "flagapp-editor-id", value: rule.id, placeholder: "id (generated)", "aria-label": "Rule " + (index + 1) + " id", size: "14" });
    idInput.addEventListener("input", function () { rule.id = idInput.value.trim(); self.changed(false); });
    card.appendChild(el("div", { class: "flagapp-editor-rule-head" }, [
      el("span", { class: "flagapp-editor-handle", title: "Drag to reorder", "aria-hidden": "true", text: "⠿" }),
      el("strong", { text: "Rule " + (index + 1) }),
      idInput,
      button("↑", "Move rule " + (index + 1) + " up", function () { self.move(index, index - 1); }, { disabled: index === 0 }),
      button("↓", "Move rule " + (index + 1) + " down", function () { self.move(index, index + 1); }, { disabled: index === self.items.length - 1 }),
      button("✕", "Remove rule " + (index + 1), function () { self.items.splice(index, 1); self.changed(true); })
    ]));
    var conds = el("div", { class: "flagapp-editor-conditions" });
    if (!rule.when.length) conds.appendChild(el("p", { class: "flagapp-editor-note", text: "Everyone (no condition)." }));
    rule.when.forEach(function (cond, ci) {
      conds.appendChild(self.conditionRow(rule, cond, ci, index));
    });
    conds.appendChild(button("+ condition", "Add a condition to rule " + (index + 1), function () {
      rule.when.push({ negate: false, attr: "", op: "in", ci: false, values: [] });
      self.changed(true);
    }));
    card.appendChild(el("div", { class: "flagapp-editor-label", text: rule.when.length > 1 ? "When all of:" : "When:" }));
    card.appendChild(conds);
    card.appendChild(el("div", { class: "flagapp-editor-label", text: "Serve:" }));
    card.appendChild(this.serveEditor(rule.serve, "Rule " + (index + 1)));
    card.appendChild(el("div", { class: "flagapp-editor-row-errors", "aria-live": "polite" }));
    return card;
  };

  Editor.prototype.conditionRow = function (rule, cond, ci, ri) {
    var self = this;
    var where = "Rule " + (ri + 1) + ", condition " + (ci + 1);
    var row = el("div", { class: "flagapp-editor-condition", "data-condition": String(ci) });
    var remove = button("✕", "Remove " + where.toLowerCase(), function () { rule.when.splice(ci, 1); self.changed(true); });
    if (cond.raw !== undefined) {
      row.appendChild(el("code", { class: "flagapp-editor-raw", text: cond.raw, title: "A condition written as JSON: edit it in Text (advanced) mode" }));
      row.appendChild(remove);
      return row;
    }
    var op = this.opByName[cond.op] || { uses_attr: true, needs_values: true };
    var not = el("input", { type: "checkbox", "aria-label": where + ": not" });
    not.checked = !!cond.negate;
    not.addEventListener("change", function () { cond.negate = not.checked; self.changed(false); });
    row.appendChild(el("label", { class: "flagapp-editor-not" }, [not, " not"]));
    if (op.uses_attr) {
      var attr = el("input", { type: "text", value: cond.attr || "", placeholder: "attribute", list: this.attrList.id, "aria-label": where + ": attribute", size: "12", required: true });
      attr.addEventListener("input", function () { cond.attr = attr.value.trim(); self.changed(false); });
      row.appendChild(attr);
    }
    var select = el("select", { "aria-label": where + ": operator" });
    this.operators.forEach(function (o) {
      var option = el("option", { value: o.name, text: o.name.replace(/_/g, " ") });
      if (o.name === cond.op) option.selected = true;
      select.appendChild(option);
    });
    select.addEventListener("change", function () {
      var next = self.opByName[select.value];
      cond.op = select.value;
      if (!next.uses_attr) { cond.attr = null; cond.ci = false; } else if (cond.attr === null || cond.attr === undefined) { cond.attr = ""; }
      if (!next.needs_values) cond.values = [];
      self.changed(true);
    });
    row.appendChild(select);
    if (op.uses_attr && op.needs_values) {
      var ciBox = el("input", { type: "checkbox", "aria-label": where + ": ignore case" });
      ciBox.checked = !!cond.ci;
      ciBox.addEventListener("change", function () { cond.ci = ciBox.checked; self.changed(false); });
      row.appendChild(el("label", { class: "flagapp-editor-ci", title: "Ignore case" }, [ciBox, " Aa"]));
    }
    if (op.needs_values) {
      row.appendChild(this.chips(cond.values, where + ": values", op.uses_attr ? null : this.segmentList.id, op.uses_attr ? "value, Enter" : "segment, Enter"));
    }
    row.appendChild(remove);
    return row;
  };

  /** Values as chips: Enter or comma adds the typed value, Backspace on empty removes. */
  Editor.prototype.chips = function (values, label, listId, placeholder) {
    var self = this;
    var box = el("span", { class: "flagapp-editor-chips", role: "group", "aria-label": label });
    values.forEach(function (token, i) {
      box.appendChild(el("span", { class: "flagapp-editor-chip" }, [
        el("span", { text: token }),
        button("×", "Remove " + token, function () { values.splice(i, 1); self.changed(true); }, { class: "flagapp-editor-chip-x" })
      ]));
    });
    var input = el("input", { type: "text", placeholder: placeholder, list: listId, "aria-label": label + " (type one, then Enter)", size: "12" });
    var add = function () {
      var token = chipToken(input.value);
      if (token === null) return false;
      input.value = ""; // re-rendering blurs the input: its change event must find it empty
      values.push(token);
      self.changed(true);
      var again = self.findInput(label);
      if (again) again.focus();
      return true;
    };
    input.addEventListener("keydown", function (e) {
      if (e.key === "Enter" || (e.key === "," && input.value.charAt(0) !== '"')) {
        e.preventDefault();
        add();
      } else if (e.key === "Backspace" && !input.value && values.length) {
        values.pop();
        self.changed(true);
        var again = self.findInput(label);
        if (again) again.focus();
      }
    });
    input.addEventListener("change", function () { if (input.isConnected && input.value.trim()) add(); });
    box.appendChild(input);
    return box;
  };

  Editor.prototype.findInput = function (label) {
    var inputs = this.visual.querySelectorAll("input[aria-label]");
    for (var i = 0; i < inputs.length; i++) {
      if (inputs[i].getAttribute("aria-label") === label + " (type one, then Enter)") return inputs[i];
    }
    return null;
  };

  Editor.prototype.serveEditor = function (serve, where) {
    var self = this;
    var box = el("div", { class: "flagapp-editor-serve" });
    var name = nextId("serve");
    var isSplit = !!serve.weights;
    var variantRadio = el("input", { type: "radio", name: name, value: "variant", "aria-label": where + ": serve one variant" });
    var splitRadio = el("input", { type: "radio", name: name, value: "split", "aria-label": where + ": serve a percentage split" });
    variantRadio.checked = !isSplit;
    splitRadio.checked = isSplit;
    variantRadio.addEventListener("change", function () {
      var first = serve.weights && serve.weights[0] ? serve.weights[0].variant : self.defaultVariant();
      delete serve.weights; delete serve.options;
      serve.variant = first;
      self.changed(true);
    });
    splitRadio.addEventListener("change", function () {
      var v = serve.variant || self.defaultVariant();
      delete serve.variant;
      var others = (self.options.flags[self.flagId] || { variants: [] }).variants.filter(function (x) { return x !== v; });
      serve.weights = [{ variant: v, weight: 5000 }, { variant: others[0] || "off", weight: 5000 }];
      serve.options = [];
      self.changed(true);
    });
    box.appendChild(el("div", { class: "flagapp-editor-serve-kind" }, [
      el("label", {}, [variantRadio, " one variant"]),
      el("label", {}, [splitRadio, " split by %"])
    ]));
    if (!isSplit) {
      var input = el("input", { type: "text", value: serve.variant || "", list: this.variantList.id, placeholder: "variant", "aria-label": where + ": variant", size: "12", required: true });
      input.addEventListener("input", function () { serve.variant = input.value.trim(); self.changed(false); });
      box.appendChild(input);
      return box;
    }
    var total = totalOf(serve.weights);
    var remaining = el("span", { class: "flagapp-editor-remaining", "aria-live": "polite" });
    var showRemaining = function () {
      var t = totalOf(serve.weights);
      var left = serve.bp ? (BASIS - t) / 100 : 0;
      remaining.textContent = "Remaining: " + left.toFixed(2) + " %";
      remaining.classList.toggle("flagapp-editor-error", serve.bp === true && t !== BASIS);
    };
    var table = el("div", { class: "flagapp-editor-split" });
    serve.weights.forEach(function (w, i) {
      var shareWhere = where + ", share " + (i + 1);
      var variant = el("input", { type: "text", value: w.variant, list: self.variantList.id, "aria-label": shareWhere + ": variant", size: "10", required: true });
      variant.addEventListener("input", function () { w.variant = variant.value.trim(); self.changed(false); });
      var pct = el("input", { type: "number", min: "0", max: "100", step: "0.01", value: percentOf(w.weight, total), "aria-label": shareWhere + ": percent", class: "flagapp-editor-pct" });
      pct.addEventListener("input", function () {
        var bp = toBasisPoints(pct.value);
        if (bp === null) return;
        if (!serve.bp) { normalise(serve.weights); serve.bp = true; }
        w.weight = bp;
        self.changed(false);
        showRemaining();
      });
      table.appendChild(el("div", { class: "flagapp-editor-share" }, [
        variant, pct, el("span", { text: "%" }),
        button("✕", "Remove " + shareWhere.toLowerCase(), function () {
          serve.weights.splice(i, 1);
          if (!serve.weights.length) { delete serve.weights; delete serve.options; serve.variant = self.defaultVariant(); }
          self.changed(true);
        }, { disabled: serve.weights.length <= 1 })
      ]));
    });
    box.appendChild(table);
    box.appendChild(el("div", { class: "flagapp-editor-split-foot" }, [
      button("+ share", "Add a share to " + where.toLowerCase(), function () {
        if (!serve.bp) { normalise(serve.weights); serve.bp = true; }
        serve.weights.push({ variant: "", weight: Math.max(0, BASIS - totalOf(serve.weights)) });
        self.changed(true);
      }),
      remaining
    ]));
    // bucket by: the by= option (salt= and hash= are kept as they are)
    var by = (serve.options || []).filter(function (o) { return o.indexOf("by=") === 0; })[0];
    var byInput = el("input", { type: "text", value: by ? by.slice(3) : "", placeholder: "targetingKey", list: this.attrList.id, "aria-label": where + ": bucket by attribute", size: "12" });
    byInput.addEventListener("input", function () {
      var rest = (serve.options || []).filter(function (o) { return o.indexOf("by=") !== 0; });
      var value = byInput.value.trim();
      serve.options = value && value !== "targetingKey" ? ["by=" + value].concat(rest) : rest;
      self.changed(false);
    });
    box.appendChild(el("label", { class: "flagapp-editor-by" }, ["bucket by ", byInput]));
    showRemaining();
    return box;
  };

  // --- prerequisites ----------------------------------------------------------------------------
  Editor.prototype.renderPrerequisites = function () {
    var self = this;
    var list = el("ul", { class: "flagapp-editor-prereqs" });
    this.items.forEach(function (p, index) {
      var where = "Prerequisite " + (index + 1);
      var flag = el("input", { type: "text", value: p.flag, list: self.flagList.id, placeholder: "flag key", "aria-label": where + ": flag", size: "20", required: true });
      flag.addEventListener("input", function () { p.flag = flag.value.trim(); self.changed(false); });
      var chips = self.chips(p.variants, where + ": variants", null, "variant, Enter");
      var row = el("li", { class: "flagapp-editor-prereq" }, [
        flag, el("span", { text: " is " }), chips,
        button("✕", "Remove " + where.toLowerCase(), function () { self.items.splice(index, 1); self.changed(true); }),
        el("div", { class: "flagapp-editor-row-errors", "aria-live": "polite" })
      ]);
      list.appendChild(row);
    });
    if (!this.items.length) this.visual.appendChild(el("p", { class: "flagapp-editor-note", text: "No prerequisites." }));
    this.visual.appendChild(list);
    this.visual.appendChild(button("+ Add prerequisite", "Add a prerequisite", function () {
      self.items.push({ flag: "", variants: [] });
      self.changed(true);
    }, { class: "flagapp-editor-btn flagapp-editor-add" }));
  };

  // --- server errors onto rows -----------------------------------------------------------------
  /** The server's messages ("staging: Rule 2, serve, variant: ...") shown on their row.
   *  Messages inside this state's block are ours; page-level ones are ours when they name
   *  this block's environment (or when this is the only editor of its kind on the page). */
  Editor.prototype.showServerErrors = function () {
    var self = this;
    var block = this.textarea.closest(".inline-related") || this.textarea.form || document;
    var heading = block.querySelector && block.querySelector("h3");
    var label = heading ? heading.textContent.trim().toLowerCase() : "";
    var alone = document.querySelectorAll('textarea[data-flagapp-editor="' + this.kind + '"]').length === 1;
    var pattern = this.kind === "rules" ? /\b(?:rule|line) (\d+)/i : /\bprerequisite (\d+)/i;
    var cards = this.visual.querySelectorAll(this.kind === "rules" ? ".flagapp-editor-rule" : ".flagapp-editor-prereq");
    Array.prototype.forEach.call(document.querySelectorAll(".errorlist li"), function (li) {
      var text = li.textContent.trim();
      var inside = block !== document && block.contains(li);
      if (!inside) {
        var prefix = text.match(/^([^:]+): /);
        var named = prefix && label && label.indexOf(prefix[1].trim().toLowerCase()) !== -1;
        if (!named && !alone) return;
      }
      if (self.kind === "rules" && /prerequisite/i.test(text)) return;
      var m = text.match(pattern);
      if (!m) return;
      var card = cards[Number(m[1]) - 1];
      if (!card) return;
      card.classList.add("flagapp-editor-invalid");
      var box = card.querySelector(".flagapp-editor-row-errors") || card;
      box.appendChild(el("p", { class: "flagapp-editor-error", text: text }));
      var c = text.match(/condition (\d+)/i);
      if (c) {
        var cond = card.querySelectorAll(".flagapp-editor-condition")[Number(c[1]) - 1];
        if (cond) { cond.classList.add("flagapp-editor-invalid"); cond.setAttribute("aria-invalid", "true"); }
      }
    });
  };

  /** Before the form is sent: a split edited in % must add up to 100 %. */
  Editor.prototype.check = function () {
    if (this.mode !== "visual" || this.kind !== "rules") return true;
    var ok = true;
    var cards = this.visual.querySelectorAll(".flagapp-editor-rule");
    this.items.forEach(function (rule, i) {
      var s = rule.serve;
      if (s.weights && s.bp && totalOf(s.weights) !== BASIS) {
        ok = false;
        var card = cards[i];
        if (card) {
          card.classList.add("flagapp-editor-invalid");
          var box = card.querySelector(".flagapp-editor-row-errors");
          box.textContent = "";
          box.appendChild(el("p", { class: "flagapp-editor-error", text: "Rule " + (i + 1) + ", split: the shares add up to " + (totalOf(s.weights) / 100).toFixed(2) + " %, not 100 %." }));
        }
      }
    });
    return ok;
  };

  function init(scope) {
    var editors = [];
    Array.prototype.forEach.call(scope.querySelectorAll("textarea[data-flagapp-editor]"), function (textarea) {
      if (textarea.getAttribute("data-flagapp-ready")) return;
      textarea.setAttribute("data-flagapp-ready", "1");
      var editor = new Editor(textarea);
      editors.push(editor);
      if (textarea.form && !textarea.form.getAttribute("data-flagapp-guard")) {
        textarea.form.setAttribute("data-flagapp-guard", "1");
        textarea.form.addEventListener("submit", function (e) {
          var all = (textarea.form.flagappEditors || []).every(function (ed) { return ed.check(); });
          if (!all) {
            e.preventDefault();
            var bad = textarea.form.querySelector(".flagapp-editor-invalid");
            if (bad) bad.scrollIntoView({ block: "center" });
          }
        });
      }
      if (textarea.form) (textarea.form.flagappEditors = textarea.form.flagappEditors || []).push(editor);
    });
    return editors;
  }

  return {
    conditionLine: conditionLine,
    serveText: serveText,
    formatRules: formatRules,
    formatPrerequisites: formatPrerequisites,
    chipToken: chipToken,
    percentOf: percentOf,
    toBasisPoints: toBasisPoints,
    normalise: normalise,
    init: init
  };
});
