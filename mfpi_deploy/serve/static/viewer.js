/* mfpi-serve viewer: OpenSeadragon over the server's Deep Zoom tiles.
 *
 * One viewer holds the input and the 11 planes as tiled images laid over each other; only the
 * shown one is opaque, so only its tiles are fetched (OpenSeadragon skips invisible images), and
 * a new plane stays on top of the old one until its tiles are in (no blank flash while focusing).
 * Side by side adds a second viewer with the planes, kept on the same view as the first.
 * URL parameters: slide, plane, mode (input|refocused|side), format (jpeg|png),
 * view=x,y,w (full-resolution pixels: left, top, width shown), drawer (canvas|webgl), smooth=0,
 * throttle=0 (draw every frame while tiles load, as OpenSeadragon does).
 */
(function () {
  "use strict";
  const params = new URLSearchParams(location.search);
  const format = params.get("format") === "png" ? "png" : "jpeg";
  const $ = (id) => document.getElementById(id);
  const state = { slide: null, plane: 5, mode: "refocused" };
  const views = { left: null, right: null }; // {viewer, items: {key: TiledImage}, shown: key, ready}
  let syncing = false;

  function message(text) {
    const box = $("message");
    box.textContent = text;
    box.hidden = !text;
  }

  function dzi(plane) {
    return "/slides/" + encodeURIComponent(state.slide.name) + "/" + plane + ".dzi" + (format === "png" ? "?format=png" : "");
  }

  // WebGL where a GPU draws it; the 2D canvas where WebGL would be drawn in software (SwiftShader,
  // llvmpipe: no GPU, or headless), which takes the CPU cores the engine needs (measured with
  // benchmarks/serve/browser_zoom.py: results/browser-zoom/browser-zoom-4096-int8.md).
  function defaultDrawer() {
    try {
      const gl = document.createElement("canvas").getContext("webgl");
      if (!gl) return ["canvas", "html"];
      const info = gl.getExtension("WEBGL_debug_renderer_info");
      const renderer = info ? String(gl.getParameter(info.UNMASKED_RENDERER_WEBGL)) : "";
      const lose = gl.getExtension("WEBGL_lose_context");
      if (lose) lose.loseContext(); // the probe's context is not kept
      if (/swiftshader|llvmpipe|softpipe|software|basic render/i.test(renderer)) return ["canvas", "html"];
    } catch (e) {
      return ["canvas", "html"];
    }
    return ["webgl", "canvas", "html"];
  }

  // OpenSeadragon redraws every frame while tiles wait for a loader slot (it queues them again
  // each frame); on a live slide that is every frame until the engine has them all, which in a
  // software-drawn browser takes CPU the engine needs (benchmarks/serve/browser_zoom.py counts the
  // draws). While the view is still, draw at most every 100 ms; moves draw every frame as before
  // (OpenSeadragon draws animated frames whatever needsDraw says). ?throttle=0: every frame.
  function throttleIdleDraws(viewer) {
    if (params.get("throttle") === "0") return; // as OpenSeadragon draws (benchmarks compare)
    const world = viewer.world;
    const needsDraw = world.needsDraw.bind(world);
    let last = 0;
    world.needsDraw = function () {
      if (!needsDraw()) return false;
      const now = performance.now();
      if (now - last < 100) return false;
      last = now;
      return true;
    };
  }

  function makeViewer(element, keys) {
    const viewer = OpenSeadragon({
      element: element,
      prefixUrl: "/static/openseadragon/images/",
      drawer: params.get("drawer") || defaultDrawer(),
      imageSmoothingEnabled: params.get("smooth") !== "0",
      showNavigator: element.id === "left",
      navigatorPosition: "BOTTOM_RIGHT",
      maxZoomPixelRatio: 4,
      visibilityRatio: 0.3,
      timeout: 300000,
      tileRetryMax: 5,
      tileRetryDelay: 1000,
      imageLoaderLimit: 8,
      // OpenSeadragon starts 1 tile load per frame by default (after a first burst): a focus step
      // (35-49 tiles, all computed) then took up to 0.89 s in the browser for under 100 ms on the
      // server; up to 8 a frame keeps the loader full (benchmarks/serve/results/browser-zoom/focus-*).
      maxTilesPerFrame: 8,
      preserveImageSizeOnResize: true,
      gestureSettingsMouse: { clickToZoom: false },
      keyboardNavEnabled: true,
    });
    throttleIdleDraws(viewer);
    const view = { viewer: viewer, items: {}, shown: null, element: element, ready: false };
    keys.forEach(function (key) {
      viewer.addTiledImage({
        tileSource: dzi(key),
        opacity: 0,
        preload: false,
        success: function (event) {
          view.items[key] = event.item;
          refresh();
          if (Object.keys(view.items).length === keys.length) onAllOpen(view);
        },
        error: function (event) {
          message("cannot open " + dzi(key) + ": " + (event.message || "error"));
        },
      });
    });
    viewer.addHandler("viewport-change", function () {
      syncTo(view);
      drawScale();
    });
    return view;
  }

  function onAllOpen(view) {
    const v = params.get("view");
    if (v && view.element.id === "left") {
      const [x, y, w] = v.split(",").map(Number);
      const W = state.slide.width;
      const size = view.viewer.viewport.getContainerSize();
      view.viewer.viewport.fitBounds(new OpenSeadragon.Rect(x / W, y / W, w / W, (w * size.y) / size.x / W), true);
    }
    view.ready = true;
    if (view.element.id === "right") syncTo(views.left);
    refresh();
  }

  function syncTo(source) {
    if (syncing || state.mode !== "side") return;
    const other = source === views.left ? views.right : views.left;
    if (!other) return;
    syncing = true;
    const from = source.viewer.viewport;
    other.viewer.viewport.zoomTo(from.getZoom(true), null, true);
    other.viewer.viewport.panTo(from.getCenter(true), true);
    syncing = false;
  }

  // Show `key` in `view`: on top, opaque; the others go transparent once its tiles are in.
  function show(view, key) {
    if (!view) return;
    view.shown = key;
    const item = view.items[key];
    if (!item) return;
    const world = view.viewer.world;
    world.setItemIndex(item, world.getItemCount() - 1);
    item.setOpacity(1);
  }

  function hideCovered(view) {
    if (!view || view.shown === null) return;
    const item = view.items[view.shown];
    if (!item || !item.getFullyLoaded()) return;
    Object.keys(view.items).forEach(function (key) {
      if (String(key) !== String(view.shown)) view.items[key].setOpacity(0);
    });
  }

  function refresh() {
    const slide = state.slide;
    const side = state.mode === "side";
    $("right").hidden = !side;
    if (side && !views.right) views.right = makeViewer($("right"), planeKeys());
    if (!side && views.right) {
      views.right.viewer.destroy();
      views.right = null;
    }
    const leftKey = state.mode === "refocused" || !slide.has_input ? state.plane : "input";
    show(views.left, leftKey);
    show(views.right, state.plane);
    if (side) syncTo(views.left);
    ["input", "refocused", "side"].forEach(function (m) {
      $("mode-" + m).classList.toggle("on", state.mode === m);
    });
    $("mode-input").disabled = !slide.has_input;
    $("mode-side").disabled = !slide.has_input;
    $("focus").value = state.plane;
    const z = slide.planes_um[state.plane];
    const steps = slide.z_unit !== "µm"; // a model whose training stack had no z spacing: plane steps
    $("focus-label").textContent =
      "plane " + state.plane + ", z = " + (z > 0 ? "+" : "") + (steps ? z : z.toFixed(1)) + " " + slide.z_unit;
    $("focus-box").style.opacity = state.mode === "input" ? 0.4 : 1;
    const query = new URLSearchParams(location.search);
    query.set("slide", slide.name);
    query.set("plane", state.plane);
    query.set("mode", state.mode);
    history.replaceState(null, "", "?" + query.toString());
    drawScale();
  }

  function planeKeys() {
    return Array.from({ length: state.slide.planes }, (_, i) => i);
  }

  function setPlane(z) {
    state.plane = Math.max(0, Math.min(state.slide.planes - 1, z));
    if (state.mode === "input") state.mode = "refocused";
    refresh();
  }

  // Scale bar: full-resolution pixels per screen pixel from the viewport, times the pixel size.
  function drawScale() {
    const slide = state.slide;
    const bar = $("scalebar");
    if (!slide || !views.left || !slide.pixel_size_um) {
      bar.hidden = true;
      return;
    }
    const vp = views.left.viewer.viewport;
    const bounds = vp.getBounds(true);
    const size = vp.getContainerSize();
    const umPerScreenPx = (slide.width * bounds.width * slide.pixel_size_um) / size.x;
    const target = umPerScreenPx * 120;
    const power = Math.pow(10, Math.floor(Math.log10(target)));
    const nice = [1, 2, 5, 10].map((m) => m * power).filter((v) => v <= target).pop() || power;
    bar.hidden = false;
    $("scalebar-line").style.width = nice / umPerScreenPx + "px";
    $("scalebar-text").textContent = nice >= 1000 ? nice / 1000 + " mm" : nice >= 1 ? nice + " µm" : nice * 1000 + " nm";
  }

  // Spinner: the shown images' tiles are not all in yet (on a live slide: being computed).
  let lastStats = 0;
  function tick() {
    let loading = false;
    [views.left, views.right].forEach(function (view) {
      if (!view) return;
      const item = view.items[view.shown];
      if (!view.ready || !item || !item.getFullyLoaded()) loading = true;
      hideCovered(view);
    });
    $("busy").hidden = !loading;
    document.body.dataset.loaded = loading ? "0" : "1";
    const now = Date.now();
    if (now - lastStats > (loading ? 1000 : 5000)) {
      lastStats = now;
      fetch("/stats")
        .then((r) => r.json())
        .then(function (s) {
          const live = state.slide && state.slide.kind === "live";
          $("busy-text").textContent = live ? "computing… " + s.queued + " engine tiles queued" : "loading tiles…";
          $("stats").textContent =
            s.engine_tiles_computed + " engine tiles computed, " + s.cache_hits + " cache hits, " +
            (s.cache_bytes / 1048576).toFixed(0) + " MB cached";
        })
        .catch(function () {});
    }
  }

  function sharpest() {
    const view = views.right || views.left;
    const b = view.viewer.viewport.getBounds(true);
    const W = state.slide.width;
    const box = [b.x * W, b.y * W, b.width * W, b.height * W].map(Math.round);
    const x = Math.max(0, box[0]), y = Math.max(0, box[1]);
    const w = Math.min(state.slide.width, box[0] + box[2]) - x, h = Math.min(state.slide.height, box[1] + box[3]) - y;
    if (w <= 0 || h <= 0) return;
    $("sharpest").disabled = true;
    fetch("/slides/" + encodeURIComponent(state.slide.name) + "/sharpest?x=" + x + "&y=" + y + "&w=" + w + "&h=" + h)
      .then((r) => (r.ok ? r.json() : r.text().then((t) => Promise.reject(new Error(t)))))
      .then((res) => setPlane(res.plane))
      .catch((e) => message(String(e.message || e)))
      .finally(() => ($("sharpest").disabled = false));
  }

  function bindControls() {
    $("focus").addEventListener("input", (e) => setPlane(Number(e.target.value)));
    ["input", "refocused", "side"].forEach(function (m) {
      $("mode-" + m).addEventListener("click", function () {
        state.mode = m;
        refresh();
      });
    });
    $("sharpest").addEventListener("click", sharpest);
    $("slide").addEventListener("change", function (e) {
      const query = new URLSearchParams(location.search);
      query.set("slide", e.target.value);
      query.delete("view");
      location.search = query.toString();
    });
    window.addEventListener(
      "keydown",
      function (e) {
        if (e.target && e.target.tagName === "SELECT") return;
        const keys = { PageUp: 1, PageDown: -1 };
        let handled = true;
        if (e.key in keys) setPlane(state.plane + keys[e.key]);
        else if (e.key === "i" || e.key === "I") { if (state.slide.has_input) { state.mode = "input"; refresh(); } }
        else if (e.key === "r" || e.key === "R") { state.mode = "refocused"; refresh(); }
        else if (e.key === "s" || e.key === "S") { if (state.slide.has_input) { state.mode = "side"; refresh(); } }
        else if (e.key === "f" || e.key === "F") sharpest();
        else handled = false;
        if (handled) {
          e.preventDefault();
          e.stopPropagation();
        }
      },
      true
    );
  }

  fetch("/slides")
    .then((r) => (r.ok ? r.json() : r.text().then((t) => Promise.reject(new Error(t)))))
    .then(function (data) {
      const slides = data.slides;
      if (!slides.length) throw new Error("no slides served");
      const select = $("slide");
      slides.forEach(function (s) {
        const opt = document.createElement("option");
        opt.value = opt.textContent = s.name;
        select.appendChild(opt);
      });
      state.slide = slides.find((s) => s.name === params.get("slide")) || slides[0];
      select.value = state.slide.name;
      select.hidden = slides.length < 2;
      const plane = Number(params.get("plane"));
      state.plane = Number.isInteger(plane) && params.has("plane") ? Math.max(0, Math.min(state.slide.planes - 1, plane))
        : Math.floor(state.slide.planes / 2);
      const mode = params.get("mode");
      state.mode = ["input", "refocused", "side"].includes(mode) ? mode : "refocused";
      if (!state.slide.has_input) state.mode = "refocused";
      $("focus").max = state.slide.planes - 1;
      const keys = (state.slide.has_input ? ["input"] : []).concat(planeKeys());
      views.left = makeViewer($("left"), keys);
      bindControls();
      refresh();
      setInterval(tick, 250);
      // for scripts and tests: the viewers and the state (read-only use intended)
      window.mfpi = { views: views, state: state, setPlane: setPlane };
    })
    .catch((e) => message(String(e.message || e)));
})();
