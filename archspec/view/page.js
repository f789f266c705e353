// archspec interactive page. The drawings are Graphviz SVGs laid out in advance, one per set of
// open block instances; this script picks the one to show, pans and zooms it, finds module paths
// and shows what a box is. All spec text is inserted with textContent or parsed as XML, never as HTML.
(function () {
  "use strict";
  var DATA = JSON.parse(document.getElementById("archspec-data").textContent);
  var canvas = document.getElementById("canvas");
  var info = document.getElementById("info");
  var tip = document.getElementById("tip");
  var search = document.getElementById("search");
  var results = document.getElementById("results");
  var state = { key: null, svg: null, box: { x: 0, y: 0, w: 1, h: 1 }, vb: null, selected: null };

  // ---- numbers and text -------------------------------------------------------------------------
  function fmt(n) { return Number(n).toLocaleString("en-US"); }

  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }

  function facts(d) {
    // [term, value] rows describing a box, cluster or edge
    var rows = [];
    if (d.path) rows.push(["path", d.path]);
    if (d.instances && d.instances.length > 1) {
      rows.push(["instances", d.instances.length + ": " + d.instances[0] + " … " + d.instances[d.instances.length - 1]]);
    }
    if (d.text) rows.push(["op", d.text]);
    if (d.loc) rows.push(["YAML", d.loc]);
    if (d.params !== undefined) {
      rows.push(["params", fmt(d.params) + (d.count > 1 ? " each, " + fmt(d.params_total) + " in all" : "")]);
      rows.push(["MACs", fmt(d.macs) + (d.count > 1 ? " each, " + fmt(d.macs_total) + " in all" : "")]);
    }
    if (d.shape) rows.push(["output at " + DATA.input[1] + "×" + DATA.input[2], d.shape, "output"]);
    if (d.formula) rows.push(["output in H, W", d.formula, "formula"]);
    if (d.shortcut) rows.push(["edge", "shortcut (skip connection)"]);
    return rows;
  }

  function factList(d) {
    var dl = document.createElement("dl");
    facts(d).forEach(function (r) {
      var dt = el("dt", r[0]);
      var dd = el("dd", r[1]);
      dd.setAttribute("data-term", r[2] || r[0]);
      dl.appendChild(dt);
      dl.appendChild(dd);
    });
    return dl;
  }

  // ---- views --------------------------------------------------------------------------------------
  function keyOf(open) { return open.slice().sort().join("|"); }

  function bestView(open) {
    // the held view with exactly these blocks open, else the smallest that has them all open
    var want = keyOf(open);
    if (DATA.views[want]) return want;
    var best = null;
    Object.keys(DATA.views).forEach(function (k) {
      var have = DATA.views[k].open;
      var all = open.every(function (p) { return have.indexOf(p) >= 0; });
      if (all && (best === null || have.length < DATA.views[best].open.length)) best = k;
    });
    return best === null ? want : best;
  }

  function anchorOf(id) {
    // screen position of an element of the current drawing, to keep it in place across views
    var e = id && state.svg ? state.svg.getElementById(id) : null;
    if (!e) return null;
    var r = e.getBoundingClientRect();
    return { x: r.left + r.width / 2, y: r.top + Math.min(r.height / 2, 20) };
  }

  function show(key, anchor) {
    // anchor: {id, screen: {x, y}} keeps that element where it was; otherwise fit the width, top first
    var view = DATA.views[key];
    tip.hidden = true;
    var doc = new DOMParser().parseFromString(view.svg, "image/svg+xml");
    var svg = document.importNode(doc.documentElement, true);
    var vb = svg.viewBox.baseVal;
    state.box = { x: vb.x, y: vb.y, w: vb.width, h: vb.height };
    svg.removeAttribute("width");
    svg.removeAttribute("height");
    svg.setAttribute("preserveAspectRatio", "xMinYMin meet");
    canvas.textContent = "";
    canvas.appendChild(svg);
    state.svg = svg;
    state.key = key;
    canvas.setAttribute("data-view", key);
    canvas.setAttribute("data-open", view.open.join(" "));
    wire(svg, view);
    var placed = false;
    if (anchor && anchor.screen) {
      var target = svg.getElementById(anchor.id);
      if (target && state.vb) {
        var scale = canvas.clientWidth / state.vb.w;
        setViewBox({ x: state.box.x, y: state.box.y, w: state.vb.w, h: state.vb.h });
        var r = target.getBoundingClientRect();
        var c = canvas.getBoundingClientRect();
        var px = state.box.x + (r.left + r.width / 2 - c.left) / scale;
        var py = state.box.y + (r.top + Math.min(r.height / 2, 20) - c.top) / scale;
        setViewBox({ x: px - (anchor.screen.x - c.left) / scale, y: py - (anchor.screen.y - c.top) / scale,
          w: state.vb.w, h: state.vb.h });
        placed = true;
      }
    }
    if (!placed) fit();
    if (state.selected && svg.getElementById(state.selected)) select(state.selected);
  }

  function open(path, anchorId) {
    var now = DATA.views[state.key].open.slice();
    if (now.indexOf(path) < 0) now.push(path);
    var screen = anchorOf(anchorId);
    var frame = null;
    Object.keys(DATA.boxes).forEach(function (id) { if (DATA.boxes[id].fold === path) frame = id; });
    show(bestView(now), screen ? { id: frame, screen: screen } : null);
  }

  function fold(path, anchorId) {
    // closing a block closes the blocks inside it too
    var now = DATA.views[state.key].open.filter(function (p) { return p !== path && p.indexOf(path + ".") !== 0; });
    var screen = anchorOf(anchorId);
    var box = null;
    Object.keys(DATA.boxes).forEach(function (id) { if (DATA.boxes[id].open === path) box = id; });
    show(bestView(now), screen ? { id: box, screen: screen } : null);
  }

  // ---- pan and zoom -------------------------------------------------------------------------------
  function setViewBox(vb) {
    state.vb = vb;
    state.svg.setAttribute("viewBox", vb.x + " " + vb.y + " " + vb.w + " " + vb.h);
  }

  function fit() {
    // the whole width (never enlarged), from the top
    var cw = canvas.clientWidth || 800;
    var ch = canvas.clientHeight || 600;
    var scale = Math.min(1, cw / state.box.w);
    if (state.box.h * scale < ch) scale = Math.min(cw / state.box.w, ch / state.box.h, 1.5);
    setViewBox({ x: state.box.x, y: state.box.y, w: cw / scale, h: ch / scale });
  }

  function zoom(factor, cx, cy) {
    var c = canvas.getBoundingClientRect();
    var vb = state.vb;
    var fx = cx === undefined ? 0.5 : (cx - c.left) / c.width;
    var fy = cy === undefined ? 0.5 : (cy - c.top) / c.height;
    var w = vb.w / factor;
    var h = vb.h / factor;
    setViewBox({ x: vb.x + (vb.w - w) * fx, y: vb.y + (vb.h - h) * fy, w: w, h: h });
  }

  function centre(id) {
    var e = state.svg.getElementById(id);
    if (!e) return;
    var r = e.getBoundingClientRect();
    var c = canvas.getBoundingClientRect();
    var scale = c.width / state.vb.w;
    var dx = (r.left + r.width / 2 - (c.left + c.width / 2)) / scale;
    var dy = (r.top + r.height / 2 - (c.top + c.height / 2)) / scale;
    setViewBox({ x: state.vb.x + dx, y: state.vb.y + dy, w: state.vb.w, h: state.vb.h });
  }

  var drag = null;
  canvas.addEventListener("pointerdown", function (ev) {
    if (ev.button !== 0) return;
    drag = { x: ev.clientX, y: ev.clientY, vb: state.vb, moved: false };
  });
  window.addEventListener("pointermove", function (ev) {
    if (!drag) return;
    var scale = canvas.clientWidth / drag.vb.w;
    var dx = ev.clientX - drag.x;
    var dy = ev.clientY - drag.y;
    if (Math.abs(dx) + Math.abs(dy) > 3) {
      drag.moved = true;
      canvas.classList.add("dragging");
    }
    if (drag.moved) setViewBox({ x: drag.vb.x - dx / scale, y: drag.vb.y - dy / scale, w: drag.vb.w, h: drag.vb.h });
  });
  window.addEventListener("pointerup", function () {
    if (drag && drag.moved) canvas.setAttribute("data-dragged", "1");
    drag = null;
    canvas.classList.remove("dragging");
  });
  canvas.addEventListener("wheel", function (ev) {
    ev.preventDefault();
    zoom(ev.deltaY < 0 ? 1.15 : 1 / 1.15, ev.clientX, ev.clientY);
  }, { passive: false });

  // ---- boxes: hover, select, open, fold ----------------------------------------------------------
  function describe(id, view) {
    if (DATA.boxes[id]) return DATA.boxes[id];
    if (view.edges[id]) return view.edges[id];
    return null;
  }

  function wire(svg, view) {
    svg.querySelectorAll("g.node, g.cluster, g.edge").forEach(function (g) {
      var d = describe(g.id, view);
      if (!d) return;
      var title = g.querySelector("title");
      if (title) title.remove(); // the page's tooltip replaces the browser's
      g.addEventListener("mousemove", function (ev) { showTip(d, ev); });
      g.addEventListener("mouseleave", function () { tip.hidden = true; });
      g.addEventListener("click", function (ev) {
        if (canvas.getAttribute("data-dragged")) { canvas.removeAttribute("data-dragged"); return; }
        ev.stopPropagation();
        if (DATA.boxes[g.id]) select(g.id);
      });
      g.addEventListener("dblclick", function (ev) {
        ev.stopPropagation();
        if (d.open) open(d.open, g.id);
        else if (d.fold) fold(d.fold, g.id);
      });
    });
  }

  function showTip(d, ev) {
    tip.textContent = "";
    var head = el("strong", d.label ? d.label + (d.count > 1 ? " ×" + d.count : "") : (d.shape || ""));
    tip.appendChild(head);
    tip.appendChild(factList(d));
    tip.hidden = false;
    var x = ev.clientX + 14;
    var y = ev.clientY + 14;
    var w = tip.offsetWidth;
    var h = tip.offsetHeight;
    if (x + w > window.innerWidth) x = Math.max(0, ev.clientX - w - 14);
    if (y + h > window.innerHeight) y = Math.max(0, ev.clientY - h - 14);
    tip.style.left = x + "px";
    tip.style.top = y + "px";
  }

  function select(id) {
    var d = DATA.boxes[id];
    if (!d) return;
    state.svg.querySelectorAll(".selected").forEach(function (e) { e.classList.remove("selected"); });
    var g = state.svg.getElementById(id);
    if (g) g.classList.add("selected");
    state.selected = id;
    info.textContent = "";
    info.setAttribute("data-box", id);
    info.appendChild(el("h2", d.label + (d.count > 1 ? " ×" + d.count : "")));
    var found = canvas.getAttribute("data-found");
    if (found && found !== d.path && DATA.index[found] && DATA.index[found].box === id) {
      info.appendChild(el("p", "found " + found + (d.instances && d.instances.length > 1 ?
        ": repeats are drawn once, as the first instance" : ", inside this box"), "hint"));
    }
    info.appendChild(factList(d));
    if (d.open) {
      var b = el("button", "unfold " + d.path);
      b.type = "button";
      b.className = "unfold";
      b.addEventListener("click", function () { open(d.open, id); });
      info.appendChild(b);
    }
    if (d.fold) {
      var f = el("button", "fold " + d.path);
      f.type = "button";
      f.className = "fold";
      f.addEventListener("click", function () { fold(d.fold, id); });
      info.appendChild(f);
    }
    var opened = DATA.views[state.key].open;
    if (opened.length) {
      info.appendChild(el("h2", "Open blocks"));
      var ul = el("ul", null, "open-list");
      opened.forEach(function (p) {
        var li = el("li");
        var bt = el("button", "fold " + p);
        bt.type = "button";
        bt.addEventListener("click", function () { fold(p, "c-none"); });
        li.appendChild(bt);
        ul.appendChild(li);
      });
      info.appendChild(ul);
    }
  }

  // ---- search -------------------------------------------------------------------------------------
  var paths = Object.keys(DATA.index);
  var labels = [];
  Object.keys(DATA.boxes).forEach(function (id) {
    var d = DATA.boxes[id];
    if (d.path && d.label) labels.push([d.label.toLowerCase(), d.path]);
    if (d.path && d.text) labels.push([d.text.toLowerCase(), d.path]); // the op as the spec writes it
  });

  function matches(q) {
    q = q.trim().toLowerCase();
    if (!q) return [];
    var out = [];
    var seen = {};
    function add(p) { if (!seen[p]) { seen[p] = true; out.push(p); } }
    paths.forEach(function (p) { if (p.toLowerCase() === q) add(p); });
    paths.forEach(function (p) { if (p.toLowerCase().indexOf(q) === 0) add(p); });
    paths.forEach(function (p) { if (p.toLowerCase().indexOf(q) > 0) add(p); });
    labels.forEach(function (l) { if (l[0].indexOf(q) >= 0) add(l[1]); });
    return out.filter(function (p) { return DATA.index[p]; }).slice(0, 50);
  }

  function go(path) {
    var where = DATA.index[path];
    if (!where) return false;
    results.hidden = true;
    if (where.view !== state.key) show(where.view, null);
    state.svg.querySelectorAll(".found").forEach(function (e) { e.classList.remove("found"); });
    var g = state.svg.getElementById(where.box);
    if (g) {
      g.classList.add("found");
      centre(where.box);
    }
    canvas.setAttribute("data-found", path);
    if (DATA.boxes[where.box]) select(where.box);
    return true;
  }

  function listResults() {
    var found = matches(search.value);
    results.textContent = "";
    found.forEach(function (p, i) {
      var li = el("li");
      li.appendChild(el("span", p));
      var d = DATA.boxes[DATA.index[p].box];
      if (d && d.label) li.appendChild(el("span", d.label, "where"));
      if (i === 0) li.className = "active";
      li.addEventListener("mousedown", function (ev) { ev.preventDefault(); go(p); });
      results.appendChild(li);
    });
    results.hidden = found.length === 0;
    return found;
  }

  search.addEventListener("input", listResults);
  search.addEventListener("keydown", function (ev) {
    if (ev.key === "Enter") {
      var found = listResults();
      if (found.length) go(found[0]);
    } else if (ev.key === "Escape") {
      results.hidden = true;
    }
  });
  search.addEventListener("blur", function () { results.hidden = true; });

  // ---- buttons and start --------------------------------------------------------------------------
  document.getElementById("fold-all").addEventListener("click", function () { show(bestView([]), null); });
  document.getElementById("open-all").addEventListener("click", function () {
    var most = null;
    Object.keys(DATA.views).forEach(function (k) {
      if (most === null || DATA.views[k].open.length > DATA.views[most].open.length) most = k;
    });
    show(most, null);
  });
  document.getElementById("fit").addEventListener("click", fit);
  document.getElementById("zoom-in").addEventListener("click", function () { zoom(1.25); });
  document.getElementById("zoom-out").addEventListener("click", function () { zoom(1 / 1.25); });
  window.addEventListener("resize", fit);

  show(keyOf([]), null);
  window.archspecPage = { show: show, open: open, fold: fold, go: go, state: state, data: DATA };
})();
