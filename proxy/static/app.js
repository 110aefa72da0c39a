// quanttrap status page: polls /quanttrap/v1/status and draws the live table and two charts.
// Plain JS, no build step, nothing loaded from anywhere else.
(function () {
  "use strict";

  var STATUS_URL = "/quanttrap/v1/status";
  var COLORS = ["#3b6fd8", "#c8372d", "#2e8b57", "#d9822b", "#7a4fc9", "#1f9aa8", "#8c6d31"];
  var REGIME_TEXT = {
    anchor: "anchor",
    full_trap: "full trap",
    efficiency_trap: "efficiency trap",
    accuracy_trap: "accuracy trap",
    no_trap: "no trap",
    undetermined: "undetermined"
  };
  var pollMs = 5000;
  var lastOk = 0;

  function esc(s) {
    return String(s).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }

  function na(why) {
    return '<span class="na"' + (why ? ' title="' + esc(why) + '"' : "") + ">n/a</span>";
  }

  function num(x, digits) {
    return x === null || x === undefined ? null : Number(x).toFixed(digits);
  }

  // An estimate with its interval below it; scale 100 shows fractions as percentages.
  function iv(v, digits, scale, suffix, why) {
    if (!v) return na(why);
    scale = scale || 1;
    suffix = suffix || "";
    return (
      '<span class="num">' + num(v.estimate * scale, digits) + suffix + "</span>" +
      '<span class="ci">' + num(v.low * scale, digits) + " – " + num(v.high * scale, digits) + "</span>"
    );
  }

  function pillar(p, why) {
    if (!p || p.bounded === null || p.bounded === undefined) return na(why);
    var raw = p.raw ? "raw " + num(p.raw.low, 2) + " – " + num(p.raw.high, 2) : "";
    return '<span class="num">' + num(p.bounded, 3) + '</span><span class="ci">' + raw + "</span>";
  }

  function headline(v) {
    for (var i = 0; i < v.buckets.length; i++) {
      if (v.buckets[i].batch_size_bucket === v.headline_bucket) return v.buckets[i];
    }
    return null;
  }

  function energyCell(row) {
    var e = row.energy;
    if (!e.available) {
      return '<span class="na" title="' + esc(e.note || "") + '">unavailable</span>' +
        '<span class="ci">method none</span>';
    }
    return '<span class="num">' + num(e.j_per_query.estimate, 1) + " J</span>" +
      '<span class="ci">' + (e.j_per_token !== null ? num(e.j_per_token, 2) + " J/tok · " : "") + esc(e.method) + "</span>";
  }

  function regimeBadge(regime) {
    return '<span class="badge ' + esc(regime) + '">' + esc(REGIME_TEXT[regime] || regime) + "</span>";
  }

  // What the regime rests on: the anytime-valid verdicts, beyond their margins.
  function evidence(v, r) {
    if (v.is_anchor) return "reference";
    var sig = r.significant, parts = [];
    if (sig.less_accurate) parts.push("accuracy");
    if (sig.slower) parts.push("speed");
    if (sig.more_energy) parts.push("energy");
    if (parts.length) return "beyond margin: " + parts.join(", ");
    if (sig.less_accurate === null || sig.slower === null) return "needs more evidence";
    return "no loss beyond the margins";
  }

  // The confidence sequences since the epoch started, each against the margin it must clear.
  function verdictLines(r) {
    var vd = r.verdicts;
    if (!vd) return [];
    var m = vd.margins, out = [];
    function cs(x, digits, scale) {
      return "[" + num(x.low * scale, digits) + ", " + num(x.high * scale, digits) + "]";
    }
    var acc = vd.accuracy_difference_paired || vd.accuracy_difference;
    if (acc) {
      out.push("Δacc " + cs(acc, 1, 100) + " pts " + (vd.accuracy_difference_paired ? "paired" : "unpaired") +
        " vs −" + num(m.accuracy * 100, 1));
    }
    if (vd.speed_ratio) out.push("speed ×" + cs(vd.speed_ratio, 2, 1) + " vs ×" + num(1 - m.speed, 2));
    if (vd.energy_ratio) out.push("energy ×" + cs(vd.energy_ratio, 2, 1) + " vs ×" + num(1 + m.energy, 2));
    if (vd.held_from_previous_epoch.length) out.push("held from the previous epoch: " + vd.held_from_previous_epoch.join(", "));
    return out;
  }

  function missingFor(row, word) {
    if (!row) return "";
    for (var i = 0; i < row.missing.length; i++) {
      if (row.missing[i].indexOf(word) === 0) return row.missing[i];
    }
    return "";
  }

  function variantRow(v) {
    var r = headline(v);
    var name = "<b>" + esc(v.variant) + '</b><span class="bits">' + v.bits + "-bit</span>";
    if (!r) {
      return "<tr><td>" + name + '</td><td colspan="9" class="left na">no traffic in the window</td></tr>';
    }
    var s = r.samples;
    var where = '<span class="ci">batch ' + esc(r.batch_size_bucket) + " · " + s.requests + " req · " +
      s.graded + " graded</span>";
    var trap = v.trap ? '<span class="trap-on" title="significant, latched trap flag">● trap</span> · ' : "";
    return (
      "<tr>" +
      "<td>" + name + where + "</td>" +
      "<td>" + iv(r.accuracy, 1, 100, "%", "no graded evaluations") + "</td>" +
      "<td>" + iv(r.tokens_per_s, 1, 1, "", "no measured generation") + "</td>" +
      "<td>" + iv(r.cor, 2, 1, "", missingFor(r, "speed")) + "</td>" +
      "<td>" + energyCell(r) + "</td>" +
      "<td>" + pillar(r.pillars.trust, missingFor(r, "accuracy")) + "</td>" +
      "<td>" + pillar(r.pillars.economic, missingFor(r, "memory") || missingFor(r, "speed")) + "</td>" +
      "<td>" + pillar(r.pillars.energy, missingFor(r, "energy")) + "</td>" +
      "<td>" + iv(r.si, 3, 1, "", "needs all three pillars") + "</td>" +
      '<td class="left">' + regimeBadge(r.regime) + '<span class="ci">' + trap + esc(evidence(v, r)) + "</span>" +
      verdictLines(r).map(function (t) {
        return '<span class="ci verdict" title="anytime-valid confidence sequence since the epoch began, against its margin">' + esc(t) + "</span>";
      }).join("") +
      "</td>" +
      "</tr>"
    );
  }

  // -- charts (inline SVG) --------------------------------------------------------------------

  function lineChart(title, series, opts) {
    var W = 600, H = 150, L = 44, R = 10, T = 8, B = 22;
    var pts = [];
    series.forEach(function (s) { s.points.forEach(function (p) { pts.push(p); }); });
    var html = '<div class="chart"><h3>' + esc(title) + "</h3>";
    if (pts.length === 0) {
      return html + '<div class="msg">' + esc(opts.empty) + "</div></div>";
    }
    var t0 = Math.min.apply(null, pts.map(function (p) { return p[0]; }));
    var t1 = Math.max.apply(null, pts.map(function (p) { return p[0]; }));
    if (t1 - t0 < 60) t0 = t1 - 60;
    var ymax = opts.ymax !== undefined ? opts.ymax : Math.max.apply(null, pts.map(function (p) { return p[1]; })) * 1.15 || 1;
    var ymin = opts.ymin || 0;
    function x(t) { return L + (W - L - R) * (t - t0) / (t1 - t0); }
    function y(v) { return T + (H - T - B) * (1 - (v - ymin) / (ymax - ymin)); }
    var svg = '<svg viewBox="0 0 ' + W + " " + H + '" preserveAspectRatio="none" role="img" aria-label="' + esc(title) + '">';
    for (var k = 0; k <= 4; k++) {
      var v = ymin + (ymax - ymin) * k / 4;
      svg += '<line x1="' + L + '" x2="' + (W - R) + '" y1="' + y(v) + '" y2="' + y(v) + '" stroke="#e3e6ec"/>';
      svg += '<text x="' + (L - 6) + '" y="' + (y(v) + 4) + '" font-size="10" text-anchor="end" fill="#6b7385">' + num(v, opts.digits) + "</text>";
    }
    var span = (t1 - t0) / 60;
    svg += '<text x="' + L + '" y="' + (H - 6) + '" font-size="10" fill="#6b7385">−' + num(span, span < 10 ? 1 : 0) + " min</text>";
    svg += '<text x="' + (W - R) + '" y="' + (H - 6) + '" font-size="10" text-anchor="end" fill="#6b7385">now</text>';
    series.forEach(function (s) {
      if (s.band && s.band.length > 1) {
        var up = s.band.map(function (p) { return x(p[0]) + "," + y(p[2]); });
        var down = s.band.slice().reverse().map(function (p) { return x(p[0]) + "," + y(p[1]); });
        svg += '<polygon points="' + up.concat(down).join(" ") + '" fill="' + s.color + '" opacity="0.12"/>';
      }
      if (s.points.length === 1) {
        svg += '<circle cx="' + x(s.points[0][0]) + '" cy="' + y(s.points[0][1]) + '" r="3" fill="' + s.color + '"/>';
      } else {
        var d = s.points.map(function (p) { return x(p[0]) + "," + y(p[1]); }).join(" ");
        svg += '<polyline points="' + d + '" fill="none" stroke="' + s.color + '" stroke-width="2"' +
          (s.dashed ? ' stroke-dasharray="5,4"' : "") + "/>";
      }
    });
    svg += "</svg>";
    var legend = '<div class="legend">' + series.map(function (s) {
      return '<span><i style="background:' + s.color + '"></i>' + esc(s.name) + "</span>";
    }).join("") + "</div>";
    return html + svg + legend + "</div>";
  }

  function charts(model) {
    var si = [], energy = [], methods = {};
    model.variants.forEach(function (v, i) {
      var color = COLORS[i % COLORS.length];
      var h = v.history || [];
      if (v.is_anchor) {
        var line = h.map(function (p) { return [p.at, 1]; });
        si.push({ name: v.variant + " (anchor)", color: color, points: line, dashed: true });
      } else {
        si.push({
          name: v.variant,
          color: color,
          points: h.filter(function (p) { return p.si !== null; }).map(function (p) { return [p.at, p.si]; }),
          band: h.filter(function (p) { return p.si_low !== null; }).map(function (p) { return [p.at, p.si_low, p.si_high]; })
        });
      }
      var e = h.filter(function (p) { return p.j_per_query !== null; });
      e.forEach(function (p) { methods[p.energy_method] = true; });
      energy.push({ name: v.variant, color: color, points: e.map(function (p) { return [p.at, p.j_per_query]; }) });
    });
    var anySi = si.some(function (s) { return !s.dashed && s.points.length > 0; });
    var anyEnergy = energy.some(function (s) { return s.points.length > 0; });
    var mlist = Object.keys(methods).join(", ");
    return '<div class="charts">' +
      lineChart("Sustainability Index (headline bucket, with interval)", anySi ? si : [], {
        ymin: 0, ymax: 1.05, digits: 2,
        empty: "SI not available yet: it needs accuracy, speed, memory and energy for both sides."
      }) +
      lineChart("Energy per query, J" + (mlist ? " (" + mlist + ")" : ""), anyEnergy ? energy : [], {
        digits: 0,
        empty: "Energy unavailable: no method measured it (method none). Regimes use accuracy and speed only."
      }) +
      "</div>";
  }

  // The statistics behind the accuracy verdicts: unpaired difference and paired verdicts.
  function evidenceTable(model) {
    var rows = model.variants.filter(function (v) { return !v.is_anchor && headline(v); }).map(function (v) {
      var r = headline(v), p = r.paired, n = p.both_correct + p.anchor_only + p.variant_only + p.both_wrong;
      var d = r.accuracy_difference;
      return "<tr><td><b>" + esc(v.variant) + "</b></td>" +
        "<td>" + (d ? '<span class="num">' + num(d.estimate * 100, 1) + " pp</span>" +
          '<span class="ci">' + num(d.low * 100, 1) + " – " + num(d.high * 100, 1) + "</span>" : na("too few graded")) + "</td>" +
        '<td class="num">' + n + "</td>" +
        '<td class="num">' + p.anchor_only + "</td>" +
        '<td class="num">' + p.variant_only + "</td>" +
        "<td>" + (p.mcnemar_p === null ? na("no paired verdicts") : '<span class="num">' + fmtP(p.mcnemar_p) + "</span>") + "</td>" +
        "<td>" + iv(r.tokens_per_s && r.cor ? { estimate: 1 / (1 + r.cor.estimate), low: 1 / (1 + r.cor.high), high: 1 / (1 + r.cor.low) } : null, 2, 1, "×", missingFor(r, "speed")) + "</td>" +
        "<td>" + iv(r.pillars.energy.raw ? { estimate: 1 / r.pillars.energy.raw.estimate, low: 1 / r.pillars.energy.raw.high, high: 1 / r.pillars.energy.raw.low } : null, 2, 1, "×", missingFor(r, "energy")) + "</td>" +
        "</tr>";
    });
    if (!rows.length) return "";
    return '<div class="evidence"><h3>Evidence against the anchor (headline bucket)</h3>' +
      '<table class="compact"><thead><tr><th>Variant</th><th>Accuracy Δ</th><th>Paired prompts</th>' +
      "<th>Anchor only right</th><th>Variant only right</th><th>McNemar p</th>" +
      "<th>Speed ratio</th><th>Energy ratio</th></tr></thead><tbody>" + rows.join("") + "</tbody></table></div>";
  }

  // Shadow agreement by the primary's agent-hop position, and whether disagreement grows.
  var HOPS = ["0", "1", "2", "3-4", "5-8", "9-16", "17+"];

  function trendText(t) {
    if (!t) return na("no comparisons");
    var counts = t.first_hop.disagree + "/" + t.first_hop.compared + " at hop 0, " +
      t.later_hops.disagree + "/" + t.later_hops.compared + " after";
    if (!t.difference) {
      return na("needs " + t.min_samples + " comparable answers at hop 0 and after (" + counts + ")");
    }
    var d = t.difference;
    var answer = t.grows ? '<span class="trap-on">grows</span>' : '<span class="trap-off">not shown to grow</span>';
    return answer + ' <span class="num">' + (d.estimate >= 0 ? "+" : "") + num(d.estimate * 100, 1) + " pp</span>" +
      '<span class="ci">' + num(d.low * 100, 1) + " – " + num(d.high * 100, 1) + " pp, " +
      num(d.confidence * 100, 0) + "% valid at every look since the epoch · " + counts + "</span>";
  }

  function hopTable(model) {
    var pairs = (model.shadow_agreement || []).filter(function (a) { return a.by_hop && a.by_hop.length; });
    if (!pairs.length) return "";
    var used = HOPS.filter(function (h) {
      return pairs.some(function (a) { return a.by_hop.some(function (b) { return b.hop_bucket === h; }); });
    });
    var rows = pairs.map(function (a) {
      var cells = used.map(function (h) {
        var b = a.by_hop.filter(function (x) { return x.hop_bucket === h; })[0];
        if (!b) return "<td>" + na("no comparison at this hop") + "</td>";
        return "<td>" + iv(b.rate, 0, 100, "%", "nothing comparable") +
          '<span class="ci">' + (b.agree + b.disagree) + " compared" + (b.unknown ? ", " + b.unknown + " not" : "") + "</span></td>";
      }).join("");
      var wrong = Object.keys(a.verdicts || {}).filter(function (k) { return k !== "agree"; }).map(function (k) {
        return esc(k.replace(/_/g, " ")) + " " + a.verdicts[k];
      }).join(", ");
      return "<tr><td><b>" + esc(a.shadow) + "</b> vs " + esc(a.primary) + "</td>" + cells +
        '<td class="left">' + trendText(a.hop_trend) + "</td>" +
        '<td class="left">' + (wrong || '<span class="trap-off">nothing</span>') + "</td></tr>";
    });
    return '<div class="evidence"><h3>Shadow agreement by agent hop (window; Wilson intervals)</h3>' +
      '<div class="scroll"><table class="compact hops"><thead><tr><th>Shadow</th>' +
      used.map(function (h) { return "<th>hop " + esc(h) + "</th>"; }).join("") +
      '<th class="left">Disagreement after hop 0 vs at hop 0</th><th class="left">What differed</th>' +
      "</tr></thead><tbody>" + rows.join("") + "</tbody></table></div></div>";
  }

  function fmtP(p) {
    return p < 0.0001 ? "< 0.0001" : num(p, 4);
  }

  // -- page -----------------------------------------------------------------------------------

  // Shadow copies per batch-size bucket: the cap is shared by the buckets with traffic.
  function shadowCoverage(c) {
    if (!c) return "";
    var parts = c.buckets.filter(function (b) { return b.offered > 0; }).map(function (b) {
      return "batch " + esc(b.bucket) + ": " + b.run + " of " + b.offered + " run" +
        (b.dropped ? ", " + b.dropped + " dropped" : "");
    });
    return '<div class="agree" data-shadow-coverage><b>Shadow copies</b> · cap ' + c.cap +
      " shared by " + c.active_buckets + " active bucket(s) · " +
      (parts.length ? parts.join(" · ") : "none offered yet") + "</div>";
  }

  function budgetText(b) {
    if (!b) return "";
    return ", CPU " + num(b.cpu_used_cores * 100, 1) + "% of a core (budget " +
      num(b.cpu_budget_cores * 100, 1) + "%), limited by " + esc(b.limited_by);
  }

  function modelCard(m, status) {
    var rows = m.variants.map(variantRow).join("");
    var notes = {};
    m.variants.forEach(function (v) {
      var r = headline(v);
      if (r && !v.is_anchor) {
        r.missing.forEach(function (text) { notes[v.variant + " · " + text] = true; });
      }
      if (!v.is_anchor && v.b_star && v.b_star.batch_size !== null) {
        notes["B* for " + v.variant + " ≈ " + num(v.b_star.batch_size, 1) + " (" + v.b_star_note + ")"] = true;
      }
    });
    var agree = (m.shadow_agreement || []).map(function (a) {
      return esc(a.shadow) + " vs " + esc(a.primary) + ": " +
        (a.rate ? num(a.rate.estimate * 100, 1) + "% agree (" + num(a.rate.low * 100, 1) + "–" + num(a.rate.high * 100, 1) + "%, " + (a.agree + a.disagree) + " pairs)" : "no comparable pairs yet");
    });
    var noteList = Object.keys(notes);
    return (
      '<section class="card">' +
      "<h2>" + esc(m.model) + "</h2>" +
      '<div class="hint">anchor <b>' + esc(m.anchor) + "</b> · headline batch-size bucket per variant · window " +
      Math.round(status.window_s / 60) + " min</div>" +
      '<div class="scroll"><table><thead><tr>' +
      '<th>Variant</th><th>Accuracy</th><th>Tok/s</th><th>COR</th>' +
      '<th>Energy / query</th><th>Trust</th><th>Economic</th><th>Energy</th><th>SI</th><th class="left">Regime · evidence</th>' +
      "</tr></thead><tbody>" + rows + "</tbody></table></div>" +
      (agree.length ? '<div class="agree"><b>Shadow agreement</b> · ' + agree.join(" · ") + "</div>" : "") +
      shadowCoverage((status.shadow_sampling || {})[m.model]) +
      charts(m) +
      evidenceTable(m) +
      hopTable(m) +
      (noteList.length ? '<ul class="notes">' + noteList.map(function (n) { return "<li>" + esc(n) + "</li>"; }).join("") + "</ul>" : "") +
      "</section>"
    );
  }

  function render(status) {
    pollMs = Math.min(15000, Math.max(1000, (status.recompute_interval_s || 5) * 1000));
    var when = status.generated_at ? new Date(status.generated_at * 1000).toLocaleTimeString() : "–";
    var canary = status.canary && status.canary.enabled
      ? " · canaries " + status.canary.rate_per_minute + "/min (" + esc(status.canary.dataset) +
        budgetText(status.canary.budget) + ")"
      : " · canaries off";
    document.getElementById("meta").innerHTML =
      '<span class="dot"></span>updated ' + esc(when) + " · window " + Math.round(status.window_s / 60) +
      " min · " + Math.round(status.confidence * 100) + "% intervals" +
      (status.verdicts ? " · verdicts valid at every look since " +
        (status.verdicts.epoch_since ? new Date(status.verdicts.epoch_since * 1000).toLocaleString() : "start") +
        " (epoch " + Math.round(status.verdicts.epoch_s / 3600) + " h), margins: accuracy " +
        num(status.tolerances.accuracy * 100, 1) + " pts, speed " + num(status.tolerances.speed * 100, 0) +
        "%, energy " + num(status.tolerances.energy * 100, 0) + "%" : "") + canary;
    document.getElementById("conf").textContent = Math.round(status.confidence * 100) + "%";
    var main = document.getElementById("main");
    main.innerHTML = status.models.length
      ? status.models.map(function (m) { return modelCard(m, status); }).join("")
      : '<p class="empty">No models configured.</p>';
    main.setAttribute("data-rendered", String(status.generated_at));
  }

  function poll() {
    fetch(STATUS_URL, { cache: "no-store" })
      .then(function (r) {
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.json();
      })
      .then(function (status) {
        lastOk = Date.now();
        render(status);
      })
      .catch(function (err) {
        var meta = document.getElementById("meta");
        meta.innerHTML = '<span class="dot stale"></span><span class="error">status unavailable: ' + esc(err.message) + "</span>";
      })
      .then(function () { setTimeout(poll, pollMs); });
  }

  poll();
})();
