// The explorable's page: plain JavaScript, no network. Every state was drawn when the folder was built; this
// script only loads the small data file of a (model, block) when a control first needs it (a <script> tag, which
// works from file:// where fetch() of JSON does not) and swaps the PNGs. Nothing is computed here.
"use strict";
(function () {
  const VIEWS = ["overlay", "heads", "fields", "saa"];
  const KEEP_CHUNKS = 16;        // data files kept in memory (least recently used dropped)
  const chunks = new Map();      // key -> Promise of the chunk's states
  const waiting = new Map();     // key -> resolve function of a chunk being loaded
  const timings = [];            // {control, ms}: event to the new images painted
  let manifest = null;
  let seq = 0;
  const state = { image: 0, model: 0, block: 0, mask: "none" };
  const $ = (id) => document.getElementById(id);

  window.explorableTimings = timings;

  window.explorableChunk = function (payload) {
    const resolve = waiting.get(payload.key);
    if (resolve) {
      waiting.delete(payload.key);
      resolve(payload.states);
    }
  };

  function loadChunk(key) {
    if (chunks.has(key)) {
      const p = chunks.get(key);
      chunks.delete(key);
      chunks.set(key, p);
      return p;
    }
    const p = new Promise(function (resolve, reject) {
      waiting.set(key, resolve);
      const s = document.createElement("script");
      s.src = "data/" + key + ".js";
      s.onload = function () { s.remove(); };
      s.onerror = function () {
        s.remove();
        chunks.delete(key);
        reject(new Error("could not load data/" + key + ".js: is the folder complete?"));
      };
      document.head.appendChild(s);
    });
    chunks.set(key, p);
    while (chunks.size > KEEP_CHUNKS) chunks.delete(chunks.keys().next().value);
    return p;
  }

  function model() { return manifest.models[state.model]; }
  function block() { return model().blocks[state.block]; }
  function chunkKey(m, b) { return "m" + m + "-b" + b; }
  function maskText(mask) { return mask === "none" ? "no head masked" : "head " + mask.slice(1) + " masked"; }

  function fillBlocks() {
    const sel = $("block");
    const old = sel.value;
    sel.textContent = "";
    model().blocks.forEach(function (b, i) {
      const o = document.createElement("option");
      o.value = String(i);
      o.textContent = b.label;
      o.dataset.name = b.name;
      sel.appendChild(o);
    });
    const keep = model().blocks.findIndex(function (b) { return b.name === old; });
    state.block = keep >= 0 ? keep : Math.min(state.block, model().blocks.length - 1);
    sel.value = String(state.block);
  }

  function fillMasks() {
    const box = $("mask");
    const heads = block().heads;
    const have = box.querySelectorAll("input").length;
    if (have === heads + 1) return;
    box.querySelectorAll("label").forEach(function (l) { l.remove(); });
    const options = [["none", "none"]];
    for (let h = 1; h <= heads; h++) options.push(["h" + h, "head " + h + " (" + block().kernels[h - 1] + "×" + block().kernels[h - 1] + ")"]);
    if (!options.some(function (o) { return o[0] === state.mask; })) state.mask = "none";
    options.forEach(function (o) {
      const label = document.createElement("label");
      const input = document.createElement("input");
      input.type = "radio";
      input.name = "mask";
      input.value = o[0];
      input.checked = o[0] === state.mask;
      label.appendChild(input);
      label.appendChild(document.createTextNode(" " + o[1]));
      box.appendChild(label);
    });
  }

  function alts(st) {
    const name = manifest.images[state.image].name;
    const where = block().label + ", " + model().label + ", " + maskText(state.mask);
    return {
      overlay: "Modulator of " + where + " over " + name + " (brighter: stronger modulation). Top-1: " +
        st.top5[0][0] + " " + st.top5[0][1] + ".",
      heads: "Mean absolute output of each MHMC head of " + where + ", for " + name + ".",
      fields: "Receptive field of each head of " + block().label + ", " + model().label + ", for " + name + ".",
      saa: "SAA input and output (modulator) of " + where + " for " + name +
        ", and their relative log amplitude against frequency.",
    };
  }

  function top5(st) {
    const truth = manifest.images[state.image].truth;
    let h = "<table><caption><b>top-5</b>" + (truth ? " (true class: " + esc(truth) + ")" : "") +
      "</caption><tbody>";
    st.top5.forEach(function (r) {
      h += "<tr><td>" + esc(r[0]) + "</td><td class='p'>" + esc(r[1]) + "</td></tr>";
    });
    return h + "</tbody></table>";
  }

  function esc(s) {
    return String(s).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }

  function stateName() { return chunkKey(state.model, state.block) + "/i" + state.image + "-" + state.mask; }

  async function show(control, t0) {
    const token = ++seq;
    let states;
    try {
      states = await loadChunk(chunkKey(state.model, state.block));
    } catch (e) {
      $("status").textContent = e.message;
      return;
    }
    if (token !== seq) return;
    const st = states["i" + state.image + "-" + state.mask];
    if (!st) {
      $("status").textContent = "this state was not built: " + stateName();
      return;
    }
    const alt = alts(st);
    const waits = [];
    VIEWS.forEach(function (v) {
      const img = $(v);
      const url = "data/" + st.src[v];
      img.alt = alt[v];
      if (img.getAttribute("src") !== url) {
        img.width = st.size[v][0];
        img.height = st.size[v][1];
        img.src = url;
        waits.push(img.decode().catch(function () { throw new Error("could not load " + url); }));
      }
    });
    $("explanation").textContent = st.explanation;
    $("readout").textContent = st.readout;
    $("top5").innerHTML = top5(st);
    $("image-name").textContent = manifest.images[state.image].name;
    try {
      await Promise.all(waits);
    } catch (e) {
      $("status").textContent = e.message;
      return;
    }
    await new Promise(function (r) { requestAnimationFrame(function () { r(); }); });
    if (token !== seq) return;
    $("status").textContent = "";
    if (control) timings.push({ control: control, ms: performance.now() - t0 });
    document.body.dataset.state = stateName();
    prefetch(states);
  }

  // what one key press away shows, loaded and decoded ahead: the previous and next image and mask of this
  // (model, block), and the same image of the neighbouring blocks and models (their data scripts too)
  const warm = [];
  function decodeAhead(st) {
    if (!st) return;
    VIEWS.forEach(function (v) {
      const im = new Image();
      im.src = "data/" + st.src[v];
      im.decode().catch(function () {});
      warm.push(im);
    });
  }

  function prefetch(states) {
    warm.length = 0;
    const masks = ["none"];
    for (let h = 1; h <= block().heads; h++) masks.push("h" + h);
    const m = masks.indexOf(state.mask);
    [state.image - 1, state.image + 1].forEach(function (i) { decodeAhead(states["i" + i + "-" + state.mask]); });
    // radio groups wrap around with the arrow keys: the last one's neighbour is the first
    const around = function (k, n) { return [(k - 1 + n) % n, (k + 1) % n]; };
    around(m, masks.length).forEach(function (k) { decodeAhead(states["i" + state.image + "-" + masks[k]]); });
    const near = [];
    [state.block - 1, state.block + 1].forEach(function (b) {
      if (b >= 0 && b < model().blocks.length) near.push([state.model, b]);
    });
    around(state.model, manifest.models.length).forEach(function (mi) {
      if (mi === state.model) return;
      const b = manifest.models[mi].blocks.findIndex(function (x) { return x.name === block().name; });
      near.push([mi, b >= 0 ? b : 0]);
    });
    const image = state.image, mask = state.mask, token = seq;
    setTimeout(function () {
      near.forEach(function (mb) {
        loadChunk(chunkKey(mb[0], mb[1])).then(function (s) {
          if (token === seq) decodeAhead(s["i" + image + "-" + mask] || s["i" + image + "-none"]);
        }, function () {});
      });
    }, 0);
  }

  // timings start at the key press or click that caused a change (its event comes a little before the change's)
  let pressed = -Infinity;
  function since(e) { return e.timeStamp - pressed < 1000 ? pressed : e.timeStamp; }

  function bind() {
    ["keydown", "pointerdown"].forEach(function (type) {
      document.addEventListener(type, function (e) { pressed = e.timeStamp; }, true);
    });
    $("image").addEventListener("input", function (e) {
      state.image = Number(e.target.value);
      show("image", since(e));
    });
    $("block").addEventListener("change", function (e) {
      state.block = Number(e.target.value);
      fillMasks();
      show("block", since(e));
    });
    $("model").addEventListener("change", function (e) {
      state.model = Number(e.target.value);
      fillBlocks();
      fillMasks();
      show("model", since(e));
    });
    $("mask").addEventListener("change", function (e) {
      state.mask = e.target.value;
      show("mask", since(e));
    });
  }

  window.explorableManifest = function (m) {
    manifest = m;
    state.model = m.first_model || 0;
    const range = $("image");
    range.max = String(m.images.length - 1);
    range.setAttribute("aria-valuetext", m.images[0].name);
    const box = $("model");
    m.models.forEach(function (md, i) {
      const label = document.createElement("label");
      const input = document.createElement("input");
      input.type = "radio";
      input.name = "model";
      input.value = String(i);
      input.checked = i === state.model;
      label.appendChild(input);
      label.appendChild(document.createTextNode(" " + md.label));
      box.appendChild(label);
    });
    $("image").addEventListener("input", function (e) {
      e.target.setAttribute("aria-valuetext", m.images[Number(e.target.value)].name);
    });
    fillBlocks();
    fillMasks();
    bind();
    show(null, 0);
  };
})();
