// archspec interactive page. The drawings are Graphviz SVGs laid out in advance, one per set of
// open containers; this script picks the one to show, scrolls and zooms it, finds module paths and
// shows what a box is. All spec text is inserted with textContent or parsed as XML, never as HTML.
// Navigation follows maps, netron and PDF viewers: the wheel scrolls (Shift+wheel sideways),
// Ctrl/Cmd+wheel or a pinch zooms at the pointer, arrows / PageUp / PageDown / Home / End move,
// + / − / 0 zoom and fit; the page opens with the whole drawing in view.
(function () {
  "use strict";
  var DATA = null;
  var canvas = document.getElementById("canvas");
  var info = document.getElementById("info");
  var infoHint = info.textContent.trim();
  var tip = document.getElementById("tip");
  var search = document.getElementById("search");
  var results = document.getElementById("results");
  var mini = document.getElementById("minimap");
  var state = { key: null, svg: null, box: { x: 0, y: 0, w: 1, h: 1 }, vb: null, selected: null };
  var MAX_SCALE = 4;
  var READABLE = 0.8; // a found box is shown at least this large (1 = Graphviz's points)

  // ---- numbers and text -------------------------------------------------------------------------
  function fmt(n) { return Number(n).toLocaleString("en-US"); }

  function natural(a, b) {
    // features.2 before features.10, denselayer2 before denselayer10
    var x = String(a).split(/(\d+)/);
    var y = String(b).split(/(\d+)/);
    for (var i = 0; i < Math.min(x.length, y.length); i++) {
      if (x[i] === y[i]) continue;
      var nx = i % 2 ? Number(x[i]) : NaN;
      var ny = i % 2 ? Number(y[i]) : NaN;
      if (!isNaN(nx) && !isNaN(ny)) return nx - ny;
      return x[i] < y[i] ? -1 : 1;
    }
    return x.length - y.length;
  }

  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }

  function title(d) {
    if (!d.label) return d.shape || "";
    return d.label + (d.count > 1 ? " ×" + d.count : "") + (d.note ? " (" + d.note + ")" : "");
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
    // the held view with exactly these containers open, else the smallest that has them all open
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

  function rectOf(id) {
    // an element's rectangle in drawing coordinates (the SVG's user space)
    var e = id && state.svg ? state.svg.getElementById(id) : null;
    if (!e || !e.getBBox) return null;
    var b = e.getBBox();
    var m = e.getCTM();
    var root = state.svg.getCTM();
    if (!m || !root) return { x: b.x, y: b.y, w: b.width, h: b.height };
    var inv = root.inverse().multiply(m);
    var p = new DOMPoint(b.x, b.y).matrixTransform(inv);
    var q = new DOMPoint(b.x + b.width, b.y + b.height).matrixTransform(inv);
    return { x: Math.min(p.x, q.x), y: Math.min(p.y, q.y), w: Math.abs(q.x - p.x), h: Math.abs(q.y - p.y) };
  }

  function scaleNow() { return canvas.clientWidth / state.vb.w; }

  function anchorOf(id) {
    // where an element of the current drawing is on screen (pixels from the canvas's corner)
    var r = rectOf(id);
    if (!r || !state.vb) return null;
    var s = scaleNow();
    return { x: (r.x + r.w / 2 - state.vb.x) * s, y: (r.y + Math.min(r.h / 2, 20) - state.vb.y) * s, scale: s };
  }

  function show(key, anchor) {
    // anchor: {id, screen: {x, y, scale}} puts that element where the reader was looking, at the
    // same scale, then brings it wholly into the viewport; otherwise the whole drawing is fitted
    var view = DATA.views[key];
    tip.hidden = true;
    var doc = new DOMParser().parseFromString(view.svg, "image/svg+xml");
    var svg = document.importNode(doc.documentElement, true);
    var vb = svg.viewBox.baseVal;
    state.box = { x: vb.x, y: vb.y, w: vb.width, h: vb.height };
    svg.removeAttribute("width");
    svg.removeAttribute("height");
    svg.setAttribute("preserveAspectRatio", "xMinYMin meet");
    canvas.querySelectorAll("svg").forEach(function (old) { old.remove(); });
    canvas.insertBefore(svg, canvas.firstChild);
    state.svg = svg;
    state.key = key;
    canvas.setAttribute("data-view", key);
    canvas.setAttribute("data-open", view.open.join(" "));
    wire(svg, view);
    if (anchor && anchor.screen && anchor.id && svg.getElementById(anchor.id)) {
      var s = anchor.screen.scale;
      setViewBox({ x: state.box.x, y: state.box.y, w: canvas.clientWidth / s, h: canvas.clientHeight / s });
      var r = rectOf(anchor.id);
      var px = r.x + r.w / 2;
      var py = r.y + Math.min(r.h / 2, 20);
      setViewBox({ x: px - anchor.screen.x / s, y: py - anchor.screen.y / s, w: state.vb.w, h: state.vb.h });
      reveal(anchor.id);
    } else {
      fit();
    }
    if (state.selected) {
      var sel = svg.getElementById(state.selected) ? state.selected : counterpart(state.selected);
      if (sel) select(sel);
      else unselect();
    }
    buildMinimap();
  }

  function frameOf(path) {
    var frame = null;
    Object.keys(DATA.boxes).forEach(function (id) { if (DATA.boxes[id].fold === path) frame = id; });
    return frame;
  }

  function counterpart(id) {
    // a selected box unfolded is now its frame, a selected frame folded is now its box
    var d = DATA.boxes[id];
    var other = null;
    if (d && d.open) other = frameOf(d.open);
    if (d && d.fold) Object.keys(DATA.boxes).forEach(function (k) { if (DATA.boxes[k].open === d.fold) other = k; });
    return other && state.svg.getElementById(other) ? other : null;
  }

  function unselect() {
    state.selected = null;
    info.textContent = "";
    info.removeAttribute("data-box");
    info.appendChild(el("p", infoHint, "hint"));
  }

  function open(path, anchorId) {
    var now = DATA.views[state.key].open.slice();
    if (now.indexOf(path) < 0) now.push(path);
    var key = bestView(now);
    var inner = DATA.views[key] && DATA.views[key].chain;
    if (inner && now.indexOf(inner) < 0) { // a stage that is one folded run: open the run with it
      now.push(inner);
      if (DATA.views[bestView(now)]) key = bestView(now);
    }
    var screen = anchorOf(anchorId);
    show(key, screen ? { id: frameOf(path), screen: screen } : null);
  }

  function fold(path, anchorId) {
    // closing a container closes the ones inside it too
    var now = DATA.views[state.key].open.filter(function (p) { return p !== path && p.indexOf(path + ".") !== 0; });
    var screen = anchorOf(anchorId) || anchorOf(frameOf(path));
    var box = null;
    Object.keys(DATA.boxes).forEach(function (id) { if (DATA.boxes[id].open === path) box = id; });
    show(bestView(now), screen ? { id: box, screen: screen } : null);
  }

  // ---- scroll and zoom ----------------------------------------------------------------------------
  function setViewBox(vb) {
    state.vb = vb;
    state.svg.setAttribute("viewBox", vb.x + " " + vb.y + " " + vb.w + " " + vb.h);
    drawMinimapFrame();
  }

  function fitRect(r, margin, most) {
    // show rectangle r (drawing coordinates) whole and centred, no larger than scale `most`
    var cw = canvas.clientWidth || 800;
    var ch = canvas.clientHeight || 600;
    var s = Math.min((cw - 2 * margin) / r.w, (ch - 2 * margin) / r.h, most);
    var w = cw / s;
    var h = ch / s;
    setViewBox({ x: r.x + r.w / 2 - w / 2, y: r.y + r.h / 2 - h / 2, w: w, h: h });
  }

  function fit() { fitRect(state.box, 4, 1.5); } // the whole drawing, both dimensions

  function zoom(factor, cx, cy) {
    // zoom by factor about a point of the canvas (pixels), by default its centre
    var vb = state.vb;
    var fx = cx === undefined ? 0.5 : cx / canvas.clientWidth;
    var fy = cy === undefined ? 0.5 : cy / canvas.clientHeight;
    var s = Math.min(Math.max(scaleNow() * factor, 0.02), MAX_SCALE);
    var w = canvas.clientWidth / s;
    var h = canvas.clientHeight / s;
    setViewBox({ x: vb.x + (vb.w - w) * fx, y: vb.y + (vb.h - h) * fy, w: w, h: h });
  }

  function scroll(dx, dy) {
    // move by screen pixels, never further than to leave part of the drawing in view
    var s = scaleNow();
    var vb = state.vb;
    var b = state.box;
    var x = Math.min(Math.max(vb.x + dx / s, b.x - vb.w * 0.9), b.x + b.w - vb.w * 0.1);
    var y = Math.min(Math.max(vb.y + dy / s, b.y - vb.h * 0.9), b.y + b.h - vb.h * 0.1);
    setViewBox({ x: x, y: y, w: vb.w, h: vb.h });
  }

  function reveal(id) {
    // bring an element wholly into the viewport: zoom out if it is larger, else move the least
    var r = rectOf(id);
    if (!r) return;
    var vb = state.vb;
    var m = 8 / scaleNow();
    if (r.w + 2 * m > vb.w || r.h + 2 * m > vb.h) {
      fitRect(r, 8, scaleNow());
      return;
    }
    var x = Math.min(Math.max(vb.x, r.x + r.w + m - vb.w), r.x - m);
    var y = Math.min(Math.max(vb.y, r.y + r.h + m - vb.h), r.y - m);
    setViewBox({ x: x, y: y, w: vb.w, h: vb.h });
  }

  function centre(id) {
    // the element in the middle of the viewport, large enough to read
    var r = rectOf(id);
    if (!r) return;
    var s = Math.max(scaleNow(), Math.min(READABLE, (canvas.clientWidth - 16) / r.w, (canvas.clientHeight - 16) / r.h));
    var w = canvas.clientWidth / s;
    var h = canvas.clientHeight / s;
    setViewBox({ x: r.x + r.w / 2 - w / 2, y: r.y + r.h / 2 - h / 2, w: w, h: h });
  }

  var drag = null;
  canvas.addEventListener("pointerdown", function (ev) {
    if (ev.button !== 0 || !state.svg) return;
    drag = { x: ev.clientX, y: ev.clientY, vb: state.vb, moved: false };
  });
  window.addEventListener("pointermove", function (ev) {
    if (!drag) return;
    var s = canvas.clientWidth / drag.vb.w;
    var dx = ev.clientX - drag.x;
    var dy = ev.clientY - drag.y;
    if (Math.abs(dx) + Math.abs(dy) > 3) {
      drag.moved = true;
      canvas.classList.add("dragging");
    }
    if (drag.moved) setViewBox({ x: drag.vb.x - dx / s, y: drag.vb.y - dy / s, w: drag.vb.w, h: drag.vb.h });
  });
  window.addEventListener("pointerup", function () {
    if (drag && drag.moved) canvas.setAttribute("data-dragged", "1");
    drag = null;
    canvas.classList.remove("dragging");
  });
  canvas.addEventListener("wheel", function (ev) {
    if (!state.svg) return;
    ev.preventDefault();
    var unit = ev.deltaMode === 1 ? 16 : ev.deltaMode === 2 ? canvas.clientHeight : 1;
    var c = canvas.getBoundingClientRect();
    if (ev.ctrlKey || ev.metaKey) { // Ctrl/Cmd+wheel, and a trackpad's pinch, zoom at the pointer
      zoom(Math.exp(-ev.deltaY * unit * 0.002), ev.clientX - c.left, ev.clientY - c.top);
    } else if (ev.shiftKey && !ev.deltaX) {
      scroll(ev.deltaY * unit, 0);
    } else {
      scroll(ev.deltaX * unit, ev.deltaY * unit);
    }
  }, { passive: false });

  document.addEventListener("keydown", function (ev) {
    if (!state.svg || ev.target === search || ev.altKey || ev.ctrlKey || ev.metaKey) return;
    var page = canvas.clientHeight * 0.9;
    var step = 60;
    var keys = {
      ArrowUp: function () { scroll(0, -step); },
      ArrowDown: function () { scroll(0, step); },
      ArrowLeft: function () { scroll(-step, 0); },
      ArrowRight: function () { scroll(step, 0); },
      PageUp: function () { scroll(0, -page); },
      PageDown: function () { scroll(0, page); },
      Home: function () { setViewBox({ x: state.vb.x, y: state.box.y - 4 / scaleNow(), w: state.vb.w, h: state.vb.h }); },
      End: function () {
        setViewBox({ x: state.vb.x, y: state.box.y + state.box.h - state.vb.h + 4 / scaleNow(), w: state.vb.w, h: state.vb.h });
      },
      "+": function () { zoom(1.25); },
      "=": function () { zoom(1.25); },
      "-": function () { zoom(1 / 1.25); },
      "0": fit,
    };
    var f = keys[ev.key];
    if (f) {
      ev.preventDefault();
      f();
    }
  });

  // ---- the overview (minimap) ----------------------------------------------------------------------
  function buildMinimap() {
    mini.textContent = "";
    var copy = state.svg.cloneNode(true);
    copy.removeAttribute("id");
    copy.setAttribute("viewBox", state.box.x + " " + state.box.y + " " + state.box.w + " " + state.box.h);
    copy.setAttribute("preserveAspectRatio", "xMidYMin meet");
    copy.querySelectorAll("[id]").forEach(function (e) { e.removeAttribute("id"); });
    copy.querySelectorAll("text").forEach(function (e) { e.remove(); });
    var frame = document.createElementNS("http://www.w3.org/2000/svg", "rect");
    frame.setAttribute("class", "minimap-frame");
    copy.appendChild(frame);
    mini.appendChild(copy);
    drawMinimapFrame();
  }

  function drawMinimapFrame() {
    var frame = mini.querySelector(".minimap-frame");
    if (!frame || !state.vb) return;
    var vb = state.vb;
    var b = state.box;
    frame.setAttribute("x", vb.x);
    frame.setAttribute("y", vb.y);
    frame.setAttribute("width", vb.w);
    frame.setAttribute("height", vb.h);
    // the overview is shown while part of the drawing lies outside the viewport
    var whole = vb.x <= b.x + 1 && vb.y <= b.y + 1 && vb.x + vb.w >= b.x + b.w - 1 && vb.y + vb.h >= b.y + b.h - 1;
    mini.hidden = whole;
  }

  function miniMove(ev) {
    var svg = mini.querySelector("svg");
    var r = svg.getBoundingClientRect();
    var b = state.box;
    var s = Math.min(r.width / b.w, r.height / b.h);
    var ox = (r.width - b.w * s) / 2; // xMidYMin
    var x = b.x + (ev.clientX - r.left - ox) / s;
    var y = b.y + (ev.clientY - r.top) / s;
    setViewBox({ x: x - state.vb.w / 2, y: y - state.vb.h / 2, w: state.vb.w, h: state.vb.h });
  }
  var miniDrag = false;
  mini.addEventListener("pointerdown", function (ev) { ev.stopPropagation(); miniDrag = true; miniMove(ev); });
  window.addEventListener("pointermove", function (ev) { if (miniDrag) miniMove(ev); });
  window.addEventListener("pointerup", function () { miniDrag = false; });
  mini.addEventListener("wheel", function (ev) { ev.stopPropagation(); }, { passive: true });

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
    tip.appendChild(el("strong", title(d)));
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

  function button(text, cls, action) {
    var b = el("button", text, cls);
    b.type = "button";
    b.addEventListener("click", action);
    return b;
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
    info.appendChild(el("h2", title(d)));
    var found = canvas.getAttribute("data-found");
    if (found && found !== d.path && DATA.index[found] && DATA.index[found].box === id) {
      info.appendChild(el("p", "found " + found + (d.count > 1 ?
        ": repeats are drawn once, as the first instance" : ", inside this box"), "hint"));
    }
    info.appendChild(factList(d));
    if (d.open) info.appendChild(button("unfold " + d.path, "unfold", function () { open(d.open, id); }));
    if (d.fold) info.appendChild(button("fold " + d.path, "fold", function () { fold(d.fold, id); }));
    // the outermost open containers (folding one folds those inside it), in natural order
    var all = DATA.views[state.key].open;
    var opened = all.filter(function (p) {
      return !all.some(function (q) { return q !== p && p.indexOf(q + ".") === 0; });
    }).sort(natural);
    if (opened.length) {
      info.appendChild(el("h2", "Open blocks"));
      var ul = el("ul", null, "open-list");
      opened.forEach(function (p) {
        var li = el("li");
        li.appendChild(button("fold " + p, null, function () { fold(p, null); }));
        ul.appendChild(li);
      });
      info.appendChild(ul);
      if (all.length > opened.length) info.appendChild(el("p", "and " + (all.length - opened.length) + " inside them", "hint"));
    }
  }

  // ---- search -------------------------------------------------------------------------------------
  var paths = [];
  var labels = [];

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
  window.addEventListener("resize", function () { if (state.svg) fit(); });

  function start(data) {
    DATA = data;
    paths = Object.keys(DATA.index).sort(natural);
    Object.keys(DATA.boxes).forEach(function (id) {
      var d = DATA.boxes[id];
      if (d.path && d.label) labels.push([d.label.toLowerCase(), d.path]);
      if (d.path && d.text) labels.push([d.text.toLowerCase(), d.path]); // the op as the spec writes it
    });
    labels.sort(function (a, b) { return natural(a[1], b[1]); });
    show(keyOf([]), null);
    window.archspecPage = { show: show, open: open, fold: fold, go: go, fit: fit, state: state, data: DATA };
  }

  // the data is JSON, gzip-compressed and base64-encoded (archspec.view.packed)
  var packedData = document.getElementById("archspec-data").textContent.trim();
  var bytes = Uint8Array.from(atob(packedData), function (c) { return c.charCodeAt(0); });
  var stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
  new Response(stream).text().then(function (text) { start(JSON.parse(text)); }, function (e) {
    canvas.textContent = "this page needs a browser with DecompressionStream (2023 or later): " + e;
  });
})();
